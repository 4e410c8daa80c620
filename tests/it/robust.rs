//! Reliability: what the follower does with hostile or unusual input and long runs.
//!
//! * feature CSVs (the `softdtw` input) fuzzed with proptest: random text and mutations of a
//!   valid file never panic, and every refusal names the file and a line (the cue, page,
//!   theme, index and OSC-control parsers are fuzzed in their own modules);
//! * audio edge cases through the library decoder, the replay source and `follow --replay`:
//!   wrong extensions, absurd sample rates, NaN/inf samples, 8 channels, a truncated file;
//! * a 10-hour input replayed in a child process whose peak memory (VmHWM) must stay small,
//!   which proves the replay decodes incrementally;
//! * simulated dropouts (`follow --drop`) reach `/scorefollow/status` and the summary, and the
//!   follower still reaches the end of the piece;
//! * two followers on two threads give exactly the positions each gives alone;
//! * an hour-long soak (ignored by default; `cargo test --release --test robust -- --ignored
//!   soak --nocapture`) that fails if memory grows or frames get slower.

use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use scorefollow::align::soft_dtw::io::parse_csv;
use scorefollow::audio::replay::{ReplayOptions, Speed};
use scorefollow::audio::{load_mono, probe, Capture, MonoDecoder};
use scorefollow::engine::{
    self, FollowConfig, FollowSettings, Follower, FollowerEvent, ReferenceKind, Source,
};
use scorefollow::features::FeatureConfig;
use scorefollow::output::{Event, PositionEvent, Sink};
use scorefollow::score::reference::Reference;
use scorefollow::Error;

// ---------------------------------------------------------------------------------------------
// Helpers.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scorefollow"))
}

fn tmp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scorefollow-robust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// The 44-byte header of a canonical PCM (tag 1) or float (tag 3) WAV file whose data chunk
/// holds `data_bytes` bytes. Rates are written as given, however absurd.
fn wav_header(rate: u32, channels: u16, bits: u16, tag: u16, data_bytes: u32) -> Vec<u8> {
    let block_align = channels * bits / 8;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36u32.wrapping_add(data_bytes)).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.wrapping_mul(block_align as u32).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}

fn pcm16_wav(rate: u32, channels: u16, interleaved: &[f32]) -> Vec<u8> {
    let mut b = wav_header(rate, channels, 16, 1, (interleaved.len() * 2) as u32);
    for &x in interleaved {
        let v = (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// A float WAV; more than two channels use WAVE_FORMAT_EXTENSIBLE as the format requires.
fn float_wav(rate: u32, channels: u16, interleaved: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = interleaved.iter().flat_map(|x| x.to_le_bytes()).collect();
    if channels <= 2 {
        let mut b = wav_header(rate, channels, 32, 3, data.len() as u32);
        b.extend_from_slice(&data);
        return b;
    }
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&0xFFFEu16.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * channels as u32 * 4).to_le_bytes());
    fmt.extend_from_slice(&(channels * 4).to_le_bytes());
    fmt.extend_from_slice(&32u16.to_le_bytes());
    fmt.extend_from_slice(&22u16.to_le_bytes());
    fmt.extend_from_slice(&32u16.to_le_bytes());
    fmt.extend_from_slice(&((1u32 << channels) - 1).to_le_bytes());
    // KSDATAFORMAT_SUBTYPE_IEEE_FLOAT.
    fmt.extend_from_slice(&3u32.to_le_bytes());
    fmt.extend_from_slice(&[
        0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
    ]);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&((4 + 8 + fmt.len() + 8 + data.len()) as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    b.extend_from_slice(&fmt);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    b
}

fn sine(rate: u32, f_hz: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f_hz * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp_path(name);
    std::fs::write(&p, bytes).expect("write fixture");
    p
}

fn names(err: &Error, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name {}: {msg}",
        path.display()
    );
}

/// Every sample of a max-speed replay, and the source's counters at the end.
fn replay_all(path: &Path) -> (Vec<f32>, scorefollow::audio::StatsSnapshot) {
    let mut cap = Capture::replay(
        path,
        ReplayOptions {
            speed: Speed::Max,
            ..ReplayOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut all = Vec::new();
    let mut buf = vec![0.0f32; 4096];
    loop {
        let n = cap.pop_samples(&mut buf);
        all.extend_from_slice(&buf[..n]);
        if n == 0 {
            if cap.is_drained() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    cap.join().unwrap_or_else(|e| panic!("{e}"));
    (all, cap.stats.snapshot())
}

/// Run `scorefollow follow` on a replay against the Bach score; returns (success, stderr).
fn follow_cli(replay: &Path, extra: &[&str]) -> (bool, String) {
    let out = bin()
        .args(["follow", "--speed", "max", "--print-every", "0", "--replay"])
        .arg(replay)
        .arg("--score")
        .arg(root().join("scores/bach_bwv66_6/score.mid"))
        .args(extra)
        .output()
        .expect("run scorefollow");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    (out.status.success(), stderr)
}

/// Peak and current resident memory of this process (kB), from /proc/self/status.
fn proc_status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// 1. Feature CSV fuzzing (the parser lives in align::soft_dtw::io).

const FEATURES: &str = "0.1,0.2,0.3\n0.4,0.5,0.6\n\n1e-3, -2.5 ,3\n";

/// Mutations of a valid input: (kind, position, argument); positions wrap.
fn mutate(input: &str, edits: &[(u8, u32, u32)]) -> String {
    const PIECES: &[&str] = &[
        ",", "\n", "nan", "inf", "-", "1e999", "0x1", " ", "1,2", "\u{e9}", ",,", "1.2.3", "",
    ];
    let mut b = input.as_bytes().to_vec();
    for &(kind, pos, arg) in edits {
        let at = pos as usize % (b.len() + 1);
        match kind % 4 {
            0 => b.truncate(at),
            1 if !b.is_empty() => {
                let i = pos as usize % b.len();
                b[i] ^= 1 << (arg % 8);
            }
            2 => {
                let p = PIECES[arg as usize % PIECES.len()].as_bytes();
                b.splice(at..at, p.iter().copied());
            }
            3 => {
                let n = (arg as usize % 8).min(b.len() - at);
                b.drain(at..at + n);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn check_features(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("fuzz_features.csv");
    match parse_csv(text, path) {
        Ok(m) => {
            prop_assert!(m.rows() >= 1 && m.cols() >= 1);
            for i in 0..m.rows() {
                prop_assert!(m.row(i).iter().all(|v| v.is_finite()));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains("fuzz_features.csv"), "{}", msg);
            match e {
                Error::Parse { line, reason, .. } => {
                    prop_assert!(!reason.trim().is_empty());
                    prop_assert!(line >= 1 && line <= text.lines().count().max(1));
                }
                other => {
                    // Matrix construction errors: they must still say something.
                    prop_assert!(!other.to_string().trim().is_empty());
                }
            }
        }
    }
    Ok(())
}

#[test]
fn valid_feature_csv_parses() {
    let m = parse_csv(FEATURES, Path::new("f.csv")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((m.rows(), m.cols()), (3, 3));
    assert_eq!(m.row(2), &[1e-3, -2.5, 3.0]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn feature_csv_never_panics_on_random_text(s in "[0-9eE.,+\\- \\nnaif]{0,80}") {
        check_features(&s)?;
    }

    #[test]
    fn feature_csv_never_panics_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..120)) {
        check_features(&String::from_utf8_lossy(&b))?;
    }

    #[test]
    fn feature_csv_never_panics_on_mutations(
        edits in proptest::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 0..5),
    ) {
        check_features(&mutate(FEATURES, &edits))?;
    }
}

/// Through the `softdtw` command: a damaged feature CSV is a one-line error naming the file.
#[test]
fn softdtw_refuses_bad_feature_files_in_one_line() {
    let good = write("good_features.csv", FEATURES.as_bytes());
    for (name, text) in [
        ("ragged.csv", "1,2,3\n4,5\n"),
        ("words.csv", "a,b,c\n"),
        ("nan.csv", "1,nan,3\n"),
        ("empty.csv", ""),
    ] {
        let bad = write(name, text.as_bytes());
        let out = bin()
            .arg("softdtw")
            .arg(&bad)
            .arg(&good)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Audio edge cases.

/// Symphonia probes by content, so a file's extension is only a hint: a WAV named .mp3 and a
/// FLAC named .wav decode exactly as under their own names.
#[test]
fn wrong_extensions_decode_by_content() {
    let x = sine(22_050, 440.0, 22_050);
    let wav = write("tone.wav", &pcm16_wav(22_050, 1, &x));
    let wav_as_mp3 = write("tone_really_wav.mp3", &pcm16_wav(22_050, 1, &x));
    assert_eq!(
        load_mono(&wav_as_mp3, 22_050).unwrap_or_else(|e| panic!("{e}")),
        load_mono(&wav, 22_050).unwrap_or_else(|e| panic!("{e}"))
    );
    let flac = root().join("tests/data/tone440_stereo_44k.flac");
    let flac_as_wav = write(
        "tone_really_flac.wav",
        &std::fs::read(&flac).expect("fixture"),
    );
    assert_eq!(
        probe(&flac_as_wav).unwrap_or_else(|e| panic!("{e}")),
        probe(&flac).unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(
        load_mono(&flac_as_wav, 22_050).unwrap_or_else(|e| panic!("{e}")),
        load_mono(&flac, 22_050).unwrap_or_else(|e| panic!("{e}"))
    );
    // And through the command line.
    let (ok, stderr) = follow_cli(&wav_as_mp3, &[]);
    assert!(ok, "{stderr}");
}

/// 0 Hz, 1 Hz and 10 MHz headers (hand-made) are refused by probe, load_mono, the replay
/// source and `follow --replay`, each time naming the file; never a panic or a division by 0.
#[test]
fn absurd_sample_rates_are_refused_naming_the_file() {
    for rate in [0u32, 1, 10_000_000] {
        let p = write(
            &format!("rate_{rate}hz.wav"),
            &pcm16_wav(rate, 1, &[0.1; 400]),
        );
        names(&probe(&p).expect_err("probe"), &p);
        names(&load_mono(&p, 22_050).expect_err("load_mono"), &p);
        names(
            &MonoDecoder::open(&p, None).expect_err("streaming decoder"),
            &p,
        );
        names(
            &Capture::replay(&p, ReplayOptions::default()).expect_err("replay"),
            &p,
        );
        let (ok, stderr) = follow_cli(&p, &[]);
        assert!(!ok, "{rate} Hz accepted");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("rate_{rate}hz.wav")), "{stderr}");
    }
}

/// Zero-length and truncated files through the replay path: an empty file is refused naming
/// it; a WAV cut mid-sample replays what it holds, and `follow` follows it to there and ends
/// with exit code 3 naming the file (`tests/it/stage.rs` checks the outputs).
#[test]
fn zero_length_and_truncated_files_through_replay() {
    let empty = write("zero.wav", b"");
    names(
        &Capture::replay(&empty, ReplayOptions::default()).expect_err("empty"),
        &empty,
    );
    let x = sine(22_050, 440.0, 22_050 * 3);
    let full = pcm16_wav(22_050, 1, &x);
    let cut = write("cut.wav", &full[..full.len() / 2 + 1]);
    let (got, stats) = replay_all(&cut);
    let whole = (full.len() / 2 + 1 - 44) / 2;
    assert!(
        got.len() <= whole && got.len() + 4096 >= whole,
        "{}",
        got.len()
    );
    assert_eq!(stats.samples_pushed, got.len() as u64);
    assert_eq!(stats.samples_dropped, 0);
    let (ok, stderr) = follow_cli(&cut, &[]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("scorefollow: input {} is damaged", cut.display())),
        "{stderr}"
    );
}

/// NaN and infinite samples in a float WAV are replaced by 0 and counted in the replay
/// source's counters (the decoder scrubs them, so the ring never sees them) and in the
/// `follow` summary.
#[test]
fn nonfinite_samples_are_scrubbed_and_counted_by_the_replay() {
    let mut x = sine(22_050, 440.0, 22_050);
    let bad = [10usize, 11, 500, 9_999, 22_049];
    for (k, &i) in bad.iter().enumerate() {
        x[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][k % 3];
    }
    let p = write("nonfinite.wav", &float_wav(22_050, 1, &x));
    let (got, stats) = replay_all(&p);
    assert_eq!(got.len(), x.len());
    for (i, (g, w)) in got.iter().zip(&x).enumerate() {
        if bad.contains(&i) {
            assert_eq!(*g, 0.0, "sample {i}");
        } else {
            assert_eq!(g, w, "sample {i}");
        }
    }
    assert_eq!(stats.samples_nonfinite, bad.len() as u64);
    // The command line reports the count at the end of the run.
    let (ok, stderr) = follow_cli(&p, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: 5 NaN or infinite input samples were replaced by 0"),
        "{stderr}"
    );
}

/// An 8-channel float WAV replays as the per-frame mean of its channels (non-finite values
/// count as 0 in the mean).
#[test]
fn eight_channel_float_replay_is_downmixed() {
    let frames = 5_000;
    let mut x = Vec::with_capacity(frames * 8);
    for i in 0..frames {
        for c in 0..8 {
            x.push(((i * 8 + c) % 97) as f32 / 97.0 - 0.5);
        }
    }
    x[3 * 8 + 5] = f32::NAN;
    let p = write("eight.wav", &float_wav(22_050, 8, &x));
    assert_eq!(probe(&p).map(|i| i.channels).ok(), Some(8));
    let (got, stats) = replay_all(&p);
    let want: Vec<f32> = x
        .chunks_exact(8)
        .map(|f| {
            f.iter()
                .map(|v| if v.is_finite() { *v } else { 0.0 })
                .sum::<f32>()
                / 8.0
        })
        .collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 1e-6, "frame {i}: {g} vs {w}");
    }
    assert_eq!(stats.samples_nonfinite, 1);
}

// ---------------------------------------------------------------------------------------------
// 2b. A 10-hour input is streamed, not loaded.

const TEN_HOURS_S: u64 = 10 * 3600;
const TEN_HOUR_RATE: u32 = 8_000;
const CHILD_ENV: &str = "SCOREFOLLOW_ROBUST_TEN_HOUR_FILE";

/// Child half of [`ten_hour_replay_streams_in_bounded_memory`]: replay the file named in the
/// environment at full speed, check every sample, print the count and the peak memory.
/// Without the environment variable (a plain `--ignored` run) there is nothing to do.
#[test]
#[ignore = "run as a child process by ten_hour_replay_streams_in_bounded_memory"]
fn ten_hour_replay_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let before_kb = proc_status_kb("VmHWM:").unwrap_or(0);
    let mut cap = Capture::replay(
        Path::new(&path),
        ReplayOptions {
            speed: Speed::Max,
            period_frames: 4096,
            ..ReplayOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0.0f32; 1 << 16];
    let (mut n, mut nonzero) = (0u64, 0u64);
    loop {
        let k = cap.pop_samples(&mut buf);
        n += k as u64;
        nonzero += buf[..k].iter().filter(|&&v| v != 0.0).count() as u64;
        if k == 0 {
            if cap.is_drained() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    cap.join().unwrap_or_else(|e| panic!("{e}"));
    let peak_kb = proc_status_kb("VmHWM:").unwrap_or(u64::MAX);
    println!(
        "TEN_HOUR samples={n} nonzero={nonzero} vmhwm_before_kb={before_kb} vmhwm_kb={peak_kb}"
    );
}

/// A WAV whose header states 10 hours at 8 kHz (576 MB of 16-bit samples) is made as a sparse
/// file (no disk blocks for the silent data), replayed at full speed in a child process, and
/// the child's peak resident memory must stay under 64 MB, while the decoded audio alone
/// would take 1152 MB as f32: the replay decodes incrementally. Every sample must arrive.
#[test]
fn ten_hour_replay_streams_in_bounded_memory() {
    let samples = TEN_HOURS_S * TEN_HOUR_RATE as u64;
    let data_bytes = samples * 2;
    let path = tmp_path("ten_hours_8k.wav");
    {
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&wav_header(TEN_HOUR_RATE, 1, 16, 1, data_bytes as u32))
            .expect("header");
        // Extending the length writes nothing: the data reads as zeros (silence).
        f.set_len(44 + data_bytes).expect("set_len");
    }
    let info = probe(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.duration_s, Some(TEN_HOURS_S as f64));
    let t0 = Instant::now();
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "robust::ten_hour_replay_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, &path)
        .output()
        .expect("child");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("TEN_HOUR ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} missing in {line}"))
    };
    eprintln!(
        "10-hour replay: {} samples in {:.1} s, child peak RSS (VmHWM) {} kB (before replay {} kB)",
        field("samples"),
        t0.elapsed().as_secs_f64(),
        field("vmhwm_kb"),
        field("vmhwm_before_kb")
    );
    assert_eq!(field("samples"), samples);
    assert_eq!(field("nonzero"), 0);
    assert!(field("vmhwm_kb") < 64 * 1024, "{line}");
}

// ---------------------------------------------------------------------------------------------
// 4. Dropouts.

/// `follow --drop 0.1:3` on the Bach chorale: a /scorefollow/status "drops" message with a
/// positive count arrives over UDP, the run exits 0, the summary line counts the dropped
/// samples, and the positions still reach the end of the piece.
#[test]
fn simulated_dropouts_are_reported_and_survived() {
    let dir = root().join("scores/bach_bwv66_6");
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    crate::common::enlarge_receive_buffer(&rx);
    rx.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let port = rx.local_addr().expect("addr").port();
    let csv = tmp_path("drops.csv");
    let child = bin()
        .args([
            "follow",
            "--speed",
            "max",
            "--print-every",
            "0",
            "--osc-rate",
            "5",
        ])
        .args(["--drop", "0.1:3"])
        .arg("--osc")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--replay")
        .arg(dir.join("performance.flac"))
        .arg("--score")
        .arg(dir.join("score.mid"))
        .arg("--out")
        .arg(&csv)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let mut buf = [0u8; rosc::decoder::MTU];
    let mut drops_reported = Vec::new();
    let mut end_count = None;
    while let Ok((n, _)) = rx.recv_from(&mut buf) {
        let Ok((_, rosc::OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) else {
            continue;
        };
        if m.addr != "/scorefollow/status" {
            continue;
        }
        let count = match m.args.get(2) {
            Some(rosc::OscType::Int(i)) => *i as i64,
            Some(rosc::OscType::Long(i)) => *i,
            other => panic!("status without a count: {other:?}"),
        };
        match m.args.first() {
            Some(rosc::OscType::String(s)) if s == "drops" => drops_reported.push(count),
            Some(rosc::OscType::String(s)) if s == "end" => {
                end_count = Some(count);
                break;
            }
            _ => {}
        }
    }
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        drops_reported.iter().any(|&c| c > 0),
        "no drops status: {drops_reported:?}"
    );
    assert!(drops_reported.windows(2).all(|w| w[0] <= w[1]));
    let end = end_count.expect("end status");
    assert!(end >= *drops_reported.last().unwrap_or(&0));
    // About 10 % of 38.9 s at 44.1 kHz.
    let total = 38.9 * 44_100.0;
    assert!(
        (end as f64) > 0.03 * total && (end as f64) < 0.2 * total,
        "{end} of {total}"
    );
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("followed "))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    assert!(
        summary.contains(&format!(", {end} samples dropped")),
        "{summary}"
    );
    let reference = crate::common::score_reference(&dir.join("score.mid"));
    let text = std::fs::read_to_string(&csv).expect("csv");
    let last_score_s: f64 = text
        .lines()
        .last()
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.parse().ok())
        .expect("last row");
    assert!(
        last_score_s > reference.duration_s() - 3.0,
        "ended at {last_score_s} of {}",
        reference.duration_s()
    );
    let _ = std::fs::remove_file(csv);
    // Bad values and misuse are refused with a message about --drop, before any audio.
    let score = dir.join("score.mid");
    let perf = dir.join("performance.flac");
    for args in [
        vec!["--replay", perf.to_str().unwrap_or(""), "--drop", "1.5"],
        vec!["--replay", perf.to_str().unwrap_or(""), "--drop", "0.1:x"],
        vec!["--live", "--drop", "0.1"],
    ] {
        let out = bin()
            .arg("follow")
            .args(&args)
            .arg("--score")
            .arg(&score)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("--drop"), "{args:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Two followers in one process.

/// Positions of one follower over `audio` (at the analysis rate), pushed in uneven blocks.
fn follow_alone(reference: Arc<Reference>, audio: &[f32]) -> Vec<PositionEvent> {
    let mut f = Follower::new(reference, &FollowConfig::default()).expect("follower");
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < audio.len() {
        let n = [512usize, 1024, 77, 4096][k % 4].min(audio.len() - i);
        out.extend(f.push(&audio[i..i + n], 0).filter_map(|ev| match ev {
            FollowerEvent::Position(p) => Some(p),
            _ => None,
        }));
        i += n;
        k += 1;
    }
    out
}

/// Two followers sharing one reference (with two performances: the recording, and the
/// recording after 1.5 s of silence) and a third on another piece, on three threads at once,
/// give bit for bit the positions each gives alone.
#[test]
fn concurrent_followers_match_solo_runs() {
    let cfg = FeatureConfig::default();
    let rate = cfg.sample_rate_hz;
    let load = |piece: &str, secs: f64| {
        let dir = root().join("scores").join(piece);
        let r = crate::common::score_reference(&dir.join("score.mid"));
        let mut a = load_mono(&dir.join("performance.flac"), rate).expect("audio");
        a.truncate((secs * rate as f64) as usize);
        (r, a)
    };
    let (bach, bach_audio) = load("bach_bwv66_6", 25.0);
    let (mozart, mozart_audio) = load("mozart_k331", 25.0);
    let mut delayed = vec![0.0f32; (1.5 * rate as f64) as usize];
    delayed.extend_from_slice(&bach_audio);
    let jobs: Vec<(Arc<Reference>, &[f32])> = vec![
        (bach.clone(), &bach_audio),
        (bach.clone(), &delayed),
        (mozart.clone(), &mozart_audio),
    ];
    let alone: Vec<Vec<PositionEvent>> = jobs
        .iter()
        .map(|(r, a)| follow_alone(r.clone(), a))
        .collect();
    let together: Vec<Vec<PositionEvent>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(r, a)| {
                let r = r.clone();
                s.spawn(move || follow_alone(r, a))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("follower thread"))
            .collect()
    });
    for (k, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert!(a.len() > 1000, "job {k}: {} frames", a.len());
        assert_eq!(a.len(), t.len(), "job {k}");
        for (x, y) in a.iter().zip(t) {
            assert_eq!(x, y, "job {k}");
        }
    }
    // The two performances of one score really are followed differently (the test would
    // prove nothing if every job produced the same stream).
    assert_ne!(alone[0][200].score_time_s, alone[1][200].score_time_s);
}

// ---------------------------------------------------------------------------------------------
// 3. Soak: one hour at full speed.

/// Keeps only the last score time and samples resident memory every minute of audio (no
/// per-event storage, so the sink itself cannot grow).
struct SoakSink {
    next_sample_s: f64,
    rss_kb: Arc<std::sync::Mutex<Vec<(f64, u64)>>>,
    last_score_s: Arc<std::sync::Mutex<f64>>,
}

impl Sink for SoakSink {
    fn handle(&mut self, event: &Event) -> scorefollow::Result<()> {
        if let Event::Position(p) = event {
            if let Ok(mut v) = self.last_score_s.lock() {
                *v = p.score_time_s;
            }
            if p.perf_time_s >= self.next_sample_s {
                self.next_sample_s += 60.0;
                if let (Some(kb), Ok(mut v)) = (proc_status_kb("VmRSS:"), self.rss_kb.lock()) {
                    v.push((p.perf_time_s, kb));
                }
            }
        }
        Ok(())
    }
}

fn percentile_us(v: &[u32], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    engine::run::percentile_ns(&s, p) / 1000.0
}

/// Phase 1 of the soak: `scorefollow::follow` with a replay `Capture`, exactly as `follow --replay
/// --speed max` runs, resident memory sampled every minute of audio. Returns the last
/// reported score time (s).
fn soak_engine(label: &str, config: &FollowConfig, reference: Arc<Reference>, path: &Path) -> f64 {
    let rss = Arc::new(std::sync::Mutex::new(Vec::new()));
    let last_score = Arc::new(std::sync::Mutex::new(0.0f64));
    let sink = SoakSink {
        next_sample_s: 0.0,
        rss_kb: rss.clone(),
        last_score_s: last_score.clone(),
    };
    let capture = Capture::replay(
        path,
        ReplayOptions {
            speed: Speed::Max,
            ..ReplayOptions::default()
        },
    )
    .expect("replay");
    let rss_before_kb = proc_status_kb("VmRSS:").unwrap_or(0);
    let summary = scorefollow::follow(
        config,
        Source::new(reference, capture),
        vec![Box::new(sink)],
    )
    .expect("run");
    let rss_end_kb = proc_status_kb("VmRSS:").unwrap_or(0);
    let samples = rss.lock().map(|v| v.clone()).unwrap_or_default();
    let (first_s, first_kb) = samples.first().copied().expect("rss samples");
    let (last_s, last_kb) = samples.last().copied().expect("rss samples");
    let peak_kb = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let last_score_s = last_score.lock().map(|v| *v).unwrap_or(f64::NAN);
    eprintln!(
        "soak [{label}] follow: {:.0} s of audio in {:.1} s ({:.0}x real time), {} frames, {} dropped samples, {} dropped events, last score time {last_score_s:.1} s",
        summary.audio_s,
        summary.wall_s,
        summary.realtime_factor(),
        summary.frames,
        summary.dropped_samples,
        summary.dropped_events
    );
    eprintln!(
        "soak [{label}] RSS: before the run {rss_before_kb} kB, at {first_s:.0} s {first_kb} kB, at {last_s:.0} s {last_kb} kB, after the run {rss_end_kb} kB, peak of the minute samples {peak_kb} kB"
    );
    eprintln!(
        "soak [{label}] per-frame over the hour (engine): p50 {:.1} us, p99 {:.1} us",
        summary.frame_us_percentile(50.0),
        summary.frame_us_percentile(99.0)
    );
    assert!(summary.audio_s > 3599.0, "{}", summary.audio_s);
    assert_eq!(summary.dropped_samples, 0);
    // Growth is measured from the end of the first minute: during the first seconds the
    // transposition trial holds 12 aligners (each with its copy of the reference frames), so
    // the very first sample can be far above the steady state.
    let (base_s, base_kb) = samples
        .iter()
        .copied()
        .find(|s| s.0 >= 60.0)
        .unwrap_or((first_s, first_kb));
    let growth_kb = last_kb.saturating_sub(base_kb);
    eprintln!(
        "soak [{label}] RSS growth from {base_s:.0} s ({base_kb} kB) to {last_s:.0} s: {growth_kb} kB"
    );
    assert!(
        growth_kb < 20 * 1024,
        "[{label}] RSS grew by {growth_kb} kB over the hour"
    );
    last_score_s
}

/// Phase 2 of the soak: the same `Follower` fed by a streaming decoder, every frame timed in
/// order (as `scorefollow::follow` times them). Fails if the last 10 minutes' p99 exceeds twice the
/// first 10 minutes' (taken from 0:30, after the transposition trial that runs 12 aligners).
fn soak_frame_times(label: &str, config: &FollowConfig, reference: Arc<Reference>, path: &Path) {
    let cfg = &config.features;
    let mut dec = MonoDecoder::open(path, Some(cfg.sample_rate_hz)).expect("decoder");
    let mut follower = Follower::new(reference, config).expect("follower");
    let mut frame_ns: Vec<u32> = Vec::with_capacity(3600 * 50 + 16);
    let mut chunk = Vec::new();
    while dec.next_chunk(&mut chunk).expect("decode") {
        let mut last = Instant::now();
        for ev in follower.push(&chunk, 0) {
            if let FollowerEvent::Position(_) = ev {
                let now = Instant::now();
                frame_ns.push(now.duration_since(last).as_nanos().min(u32::MAX as u128) as u32);
                last = now;
            }
        }
    }
    let fps = cfg.frame_rate_hz();
    let at = |s: f64| ((s * fps) as usize).min(frame_ns.len());
    let first = &frame_ns[at(30.0)..at(600.0)];
    let last10 = &frame_ns[at(3000.0)..];
    let (f50, f99) = (percentile_us(first, 50.0), percentile_us(first, 99.0));
    let (l50, l99) = (percentile_us(last10, 50.0), percentile_us(last10, 99.0));
    eprintln!(
        "soak [{label}] per-frame, first 10 min (0:30-10:00): p50 {f50:.1} us p99 {f99:.1} us; last 10 min: p50 {l50:.1} us p99 {l99:.1} us ({} frames)",
        frame_ns.len()
    );
    assert!(
        l99 <= 2.0 * f99,
        "[{label}] last-10-minute p99 {l99} us > 2 x {f99} us"
    );
}

/// One hour of audio (the Bach performance looped, a 22.05 kHz mono WAV written once to the
/// target directory) replayed at full speed, against two references:
/// * the Bach score (39 s): the usual case of a short reference; after the first pass the
///   follower sits at the end of the score while the loop goes on;
/// * the hour itself as an audio reference: the follower's window travels a 180 000-frame
///   reference, and its position must reach the end of the hour.
///
/// Each runs [`soak_engine`] (memory must not grow by 20 MB) and [`soak_frame_times`]
/// (frames must not get slower).
#[test]
#[ignore = "soak: one hour of audio; run with cargo test --release --test it -- --ignored soak --nocapture"]
fn soak_one_hour_replay() {
    let cfg = FeatureConfig::default();
    let rate = cfg.sample_rate_hz;
    let dir = root().join("scores/bach_bwv66_6");
    let hour = 3600usize * rate as usize;
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak_one_hour_22k.wav");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(44 + 2 * hour as u64) {
        let take = load_mono(&dir.join("performance.flac"), rate).expect("audio");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        f.write_all(&wav_header(rate, 1, 16, 1, (2 * hour) as u32))
            .expect("write");
        for i in 0..hour {
            let v = (take[i % take.len()] * 32768.0)
                .round()
                .clamp(-32768.0, 32767.0) as i16;
            f.write_all(&v.to_le_bytes()).expect("write");
        }
        f.flush().expect("flush");
    }

    let score = crate::common::score_reference(&dir.join("score.mid"));
    let score_config = FollowConfig::default();
    soak_engine("score", &score_config, score.clone(), &path);
    soak_frame_times("score", &score_config, score, &path);

    let t0 = Instant::now();
    let recording_config =
        FollowConfig::try_from(FollowSettings::for_kind(ReferenceKind::Recording)).expect("valid");
    let long = Arc::new(
        scorefollow::audio::load::load_reference(
            &path,
            ReferenceKind::Recording,
            &recording_config.features,
            &recording_config.rendering,
        )
        .expect("hour reference"),
    );
    eprintln!(
        "soak [hour reference] built in {:.1} s, {:.0} s long",
        t0.elapsed().as_secs_f64(),
        long.duration_s()
    );
    let end_s = soak_engine("hour reference", &recording_config, long.clone(), &path);
    assert!(end_s > 3590.0, "the position stopped at {end_s} s of 3600");
    soak_frame_times("hour reference", &recording_config, long, &path);
}
