//! Headless live capture through cpal and the ALSA `file` plugin (RUST-STACK.md §2): no sound
//! card needed. An asoundrc in a temporary directory (found through `XDG_CONFIG_HOME`) defines
//!
//! * `scorein`: reads a raw f32 mono file generated here, at the exact rate and format the
//!   app opens (no `plug` conversion, which corrupts the stream), unpaced (about 1000x real
//!   time, because the `null` slave is always ready);
//! * `scorefifo`: reads a FIFO that a feeder thread (opened `O_RDWR`, so cpal's second open of
//!   the PCM cannot hit EPIPE) writes one period at a time at real pace.
//!
//! If ALSA cannot provide the device, the tests fail when `CI=true` and are skipped with a
//! printed reason otherwise.
#![cfg(feature = "live")]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use scorefollow::audio::{list_input_devices, Capture, LiveOptions};

const RATE: u32 = 48_000;
const PERIOD: u32 = 480;

struct Setup {
    dir: PathBuf,
    file_samples: Vec<f32>,
    fifo: PathBuf,
    /// Held open (read+write) for the whole run: opening a FIFO for reading blocks until it
    /// has a writer, and ALSA opens `scorefifo` whenever devices are listed or probed.
    _fifo_keepalive: std::fs::File,
}

/// alsa-lib reads its configuration once per process, so every test shares one setup, and
/// the tests run one at a time (they would also compete for the FIFO).
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("scorefollow-live-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("alsa")).unwrap();
        let file_samples = test_signal(RATE as usize);
        let raw = dir.join("in_48k_mono_f32.raw");
        std::fs::write(&raw, to_bytes(&file_samples)).unwrap();
        let fifo = dir.join("in.fifo");
        let _ = std::fs::remove_file(&fifo);
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success(), "mkfifo failed");
        let conf = format!(
            r#"pcm.scorein {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
    hint {{ show on description "CI virtual input" }}
}}
pcm.scorefifo {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{fifo}"
    format "raw"
    hint {{ show on description "CI paced input" }}
}}
pcm.!default "scorein"
"#,
            raw = raw.display(),
            fifo = fifo.display()
        );
        std::fs::write(dir.join("alsa/asoundrc"), conf).unwrap();
        // Before any ALSA call in this process (all tests go through setup() first).
        std::env::set_var("XDG_CONFIG_HOME", &dir);
        let keepalive = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        Setup {
            dir,
            file_samples,
            fifo,
            _fifo_keepalive: keepalive,
        }
    })
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A signal in which every sample differs from its neighbours, so a skipped or repeated
/// period cannot go unnoticed.
fn test_signal(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / RATE as f64;
            (0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() + (i % 97) as f64 * 1e-4) as f32
        })
        .collect()
}

fn to_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Open a device, or decide what a missing device means: a failure in CI, a skip locally.
fn open_or_skip(device: &str, opts: LiveOptions) -> Option<Capture> {
    match Capture::live(Some(device), opts) {
        Ok(c) => Some(c),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            if ci {
                panic!("ALSA virtual device {device} unavailable in CI: {e}");
            }
            eprintln!("SKIPPED: ALSA virtual device {device} unavailable ({e}); set CI=true to fail instead");
            None
        }
    }
}

/// Pop until `n` samples arrived or `timeout` passed; returns the samples and, for each
/// sample count reached, the instant it was reached (one entry per pop).
fn collect(cap: &mut Capture, n: usize, timeout: Duration) -> (Vec<f32>, Vec<(usize, Instant)>) {
    let mut got = Vec::with_capacity(n);
    let mut times = Vec::new();
    let mut buf = vec![0.0f32; 4096];
    let deadline = Instant::now() + timeout;
    while got.len() < n && Instant::now() < deadline {
        let want = (n - got.len()).min(buf.len());
        let k = cap.pop_samples(&mut buf[..want]);
        if k == 0 {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        got.extend_from_slice(&buf[..k]);
        times.push((got.len(), Instant::now()));
    }
    (got, times)
}

#[test]
fn the_virtual_devices_are_listed() {
    let s = setup();
    let _g = serial();
    let devices = match list_input_devices() {
        Ok(d) => d,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "cannot list devices in CI: {e}"
            );
            eprintln!("SKIPPED: cannot list devices ({e})");
            return;
        }
    };
    let ids: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    if !ids.contains(&"alsa:scorein") {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "alsa:scorein not listed (config in {}): {ids:?}",
            s.dir.display()
        );
        eprintln!("SKIPPED: alsa:scorein not listed: {ids:?}");
        return;
    }
    assert!(ids.contains(&"alsa:scorefifo"), "{ids:?}");
    // An unknown name is an error that lists what exists.
    let e = Capture::live(Some("no-such-device"), LiveOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-device") && msg.contains("alsa:scorein"),
        "{msg}"
    );
}

#[test]
fn captured_samples_equal_the_file() {
    let s = setup();
    let _g = serial();
    let opts = LiveOptions {
        sample_rate_hz: Some(RATE),
        buffer_frames: Some(PERIOD),
        ring_s: 10.0,
    };
    let Some(mut cap) = open_or_skip("alsa:scorein", opts) else {
        return;
    };
    assert_eq!(cap.sample_rate_hz, RATE);
    let n = s.file_samples.len();
    let (got, _) = collect(&mut cap, n, Duration::from_secs(20));
    cap.stop();
    let _ = cap.join();
    assert_eq!(got.len(), n, "only {} of {n} samples arrived", got.len());
    for (i, (a, b)) in got.iter().zip(&s.file_samples).enumerate() {
        assert!((a - b).abs() <= 1e-6, "sample {i}: {a} vs {b}");
    }
    // Also by the bare name, without the host prefix.
    let opts = LiveOptions {
        sample_rate_hz: Some(RATE),
        buffer_frames: Some(PERIOD),
        ring_s: 10.0,
    };
    let mut cap = Capture::live(Some("scorein"), opts).unwrap();
    let (got, _) = collect(&mut cap, 4800, Duration::from_secs(20));
    assert_eq!(&got[..], &s.file_samples[..4800]);
    let stats = cap.stats.snapshot();
    assert!(stats.blocks > 0 && stats.worst_block_ns > 0);
}

#[test]
fn a_paced_fifo_arrives_at_real_pace() {
    let s = setup();
    let _g = serial();
    let seconds = 1.5;
    let total = (RATE as f64 * seconds) as usize;
    let signal = test_signal(total);
    // O_RDWR: never blocks on open, and keeps the FIFO alive across cpal's two PCM opens.
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&s.fifo)
        .unwrap();
    let opts = LiveOptions {
        sample_rate_hz: Some(RATE),
        buffer_frames: Some(PERIOD),
        ring_s: 5.0,
    };
    let Some(mut cap) = open_or_skip("alsa:scorefifo", opts) else {
        return;
    };
    let bytes = to_bytes(&signal);
    let period_bytes = PERIOD as usize * 4;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done_feeder = std::sync::Arc::clone(&done);
    let feeder = std::thread::spawn(move || {
        let t0 = Instant::now();
        let silence = vec![0u8; period_bytes];
        let mut k = 0usize;
        // The signal, then silence until the capture is closed: the FIFO has a writer all
        // along (the keep-alive handle), so ALSA's blocking read would never return and the
        // stream could not be closed if the data stopped.
        while !done_feeder.load(std::sync::atomic::Ordering::Acquire) {
            let due = t0 + Duration::from_secs_f64(k as f64 * PERIOD as f64 / RATE as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let chunk = bytes
                .get(k * period_bytes..(k + 1) * period_bytes)
                .unwrap_or(&silence);
            // One period per write: alsa-lib pads short reads, so writes are whole periods.
            fifo.write_all(chunk).unwrap();
            k += 1;
        }
    });
    let (got, times) = collect(&mut cap, total, Duration::from_secs(10));
    cap.stop();
    let _ = cap.join();
    done.store(true, std::sync::atomic::Ordering::Release);
    feeder.join().unwrap();
    assert_eq!(
        got.len(),
        total,
        "only {} of {total} samples arrived",
        got.len()
    );
    for (i, (a, b)) in got.iter().zip(&signal).enumerate() {
        assert!((a - b).abs() <= 1e-6, "sample {i}: {a} vs {b}");
    }
    // Time between the arrival of sample 0.1 s and of sample 1.1 s: one second of audio
    // must take about one second of wall time (unpaced it would take about 1 ms).
    let at = |n: usize| {
        times
            .iter()
            .find(|(k, _)| *k >= n)
            .map(|(_, t)| *t)
            .unwrap()
    };
    let span = at((1.1 * RATE as f64) as usize).duration_since(at((0.1 * RATE as f64) as usize));
    let span_s = span.as_secs_f64();
    assert!(
        (0.9..1.15).contains(&span_s),
        "1 s of audio arrived over {span_s} s"
    );
}
