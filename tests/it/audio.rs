//! The audio input edge: decoding (WAV written here byte by byte, FLAC/MP3/Ogg fixtures in
//! tests/data), error messages, resampling, the real-time callback under an
//! allocation-counting allocator, and the replay source.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use scorefollow::audio::ring::{channel, push_block};
use scorefollow::audio::{
    load_mono, probe, Capture, MonoDecoder, ReplayOptions, Speed, StreamResampler,
};
use scorefollow::Error;

use crate::alloc::allocations_on_this_thread as allocs_on_this_thread;

// ---------------------------------------------------------------------------------------------
// Fixtures.

#[derive(Clone, Copy, PartialEq)]
enum WavFormat {
    Pcm16,
    Float32,
}

/// A canonical RIFF/WAVE file. More than two channels use WAVE_FORMAT_EXTENSIBLE, as the spec
/// requires.
fn wav_bytes(rate: u32, channels: u16, fmt: WavFormat, interleaved: &[f32]) -> Vec<u8> {
    let bytes_per_sample: u16 = match fmt {
        WavFormat::Pcm16 => 2,
        WavFormat::Float32 => 4,
    };
    let mut data = Vec::with_capacity(interleaved.len() * bytes_per_sample as usize);
    for &x in interleaved {
        match fmt {
            WavFormat::Pcm16 => {
                let v = (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                data.extend_from_slice(&v.to_le_bytes());
            }
            WavFormat::Float32 => data.extend_from_slice(&x.to_le_bytes()),
        }
    }
    let tag: u16 = match fmt {
        WavFormat::Pcm16 => 1,
        WavFormat::Float32 => 3,
    };
    let extensible = channels > 2;
    let mut fmt_chunk = Vec::new();
    fmt_chunk.extend_from_slice(&(if extensible { 0xFFFEu16 } else { tag }).to_le_bytes());
    fmt_chunk.extend_from_slice(&channels.to_le_bytes());
    fmt_chunk.extend_from_slice(&rate.to_le_bytes());
    let block_align = channels * bytes_per_sample;
    fmt_chunk.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
    fmt_chunk.extend_from_slice(&block_align.to_le_bytes());
    fmt_chunk.extend_from_slice(&(bytes_per_sample * 8).to_le_bytes());
    if extensible {
        fmt_chunk.extend_from_slice(&22u16.to_le_bytes());
        fmt_chunk.extend_from_slice(&(bytes_per_sample * 8).to_le_bytes());
        let mask: u32 = (1u32 << channels) - 1;
        fmt_chunk.extend_from_slice(&mask.to_le_bytes());
        // KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: {tag}-0000-0010-8000-00aa00389b71
        fmt_chunk.extend_from_slice(&(tag as u32).to_le_bytes());
        fmt_chunk.extend_from_slice(&[
            0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + fmt_chunk.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt_chunk.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt_chunk);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

fn tmp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scorefollow-audio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_wav(name: &str, rate: u32, channels: u16, fmt: WavFormat, data: &[f32]) -> PathBuf {
    let p = tmp_path(name);
    std::fs::write(&p, wav_bytes(rate, channels, fmt, data)).unwrap();
    p
}

fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn sine(rate: u32, f_hz: f64, n: usize, amp: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * f_hz * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

/// Amplitude of the component at `f_hz` (single-bin DFT, exact for any frequency).
fn tone_amplitude(x: &[f32], rate: u32, f_hz: f64) -> f64 {
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (n, &v) in x.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * f_hz * n as f64 / rate as f64;
        re += v as f64 * ph.cos();
        im += v as f64 * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

/// The frequency (Hz, 10 Hz grid from 50 Hz to Nyquist) with the largest amplitude.
fn peak_hz(x: &[f32], rate: u32) -> f64 {
    let mut best = (0.0, 0.0);
    let mut f = 50.0;
    while f < rate as f64 / 2.0 {
        let a = tone_amplitude(x, rate, f);
        if a > best.1 {
            best = (f, a);
        }
        f += 10.0;
    }
    best.0
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

fn assert_names(err: &Error, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Decoding.

#[test]
fn pcm16_mono_values_are_exact() {
    let vals: Vec<f32> = (0..1000)
        .map(|i| ((i * 37) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let q: Vec<f32> = vals
        .iter()
        .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) / 32768.0)
        .collect();
    let p = write_wav("pcm16_mono.wav", 22_050, 1, WavFormat::Pcm16, &vals);
    let got = load_mono(&p, 22_050).unwrap();
    assert_eq!(got, q);
    let info = probe(&p).unwrap();
    assert_eq!(info.sample_rate_hz, 22_050);
    assert_eq!(info.channels, 1);
    assert_eq!(info.frames, Some(1000));
    assert!((info.duration_s.unwrap() - 1000.0 / 22_050.0).abs() < 1e-12);
}

#[test]
fn float_stereo_downmix_is_the_mean() {
    let frames = 777;
    let mut inter = Vec::new();
    for i in 0..frames {
        inter.push(i as f32 / frames as f32);
        inter.push(-0.25);
    }
    let p = write_wav("f32_stereo.wav", 44_100, 2, WavFormat::Float32, &inter);
    let got = load_mono(&p, 44_100).unwrap();
    assert_eq!(got.len(), frames);
    for (i, g) in got.iter().enumerate() {
        let want = (i as f32 / frames as f32 - 0.25) / 2.0;
        assert!((g - want).abs() < 1e-7, "{i}: {g} vs {want}");
    }
    assert_eq!(probe(&p).unwrap().channels, 2);
}

#[test]
fn eight_channel_pcm16_downmix() {
    let frames = 300;
    let mut inter = Vec::new();
    for i in 0..frames {
        for c in 0..8 {
            inter.push(((c as f32 - 3.5) * 0.1) + (i % 10) as f32 * 0.01);
        }
    }
    let p = write_wav("pcm16_8ch.wav", 48_000, 8, WavFormat::Pcm16, &inter);
    assert_eq!(probe(&p).unwrap().channels, 8);
    let got = load_mono(&p, 48_000).unwrap();
    assert_eq!(got.len(), frames);
    for (i, g) in got.iter().enumerate() {
        let q: f32 = inter[i * 8..i * 8 + 8]
            .iter()
            .map(|&x| (x * 32768.0).round() / 32768.0)
            .sum::<f32>()
            / 8.0;
        assert!((g - q).abs() < 1e-6, "{i}: {g} vs {q}");
    }
}

#[test]
fn sine_48k_to_22050_keeps_frequency_and_level() {
    let x = sine(48_000, 1000.0, 48_000, 0.5);
    let p = write_wav("sine1k_48k.wav", 48_000, 1, WavFormat::Float32, &x);
    let y = load_mono(&p, 22_050).unwrap();
    assert_eq!(y.len(), 22_050);
    let mid = &y[1000..y.len() - 1000];
    assert_eq!(peak_hz(mid, 22_050), 1000.0);
    let want_rms = 0.5 / 2f64.sqrt();
    let r = rms(mid);
    assert!((r / want_rms - 1.0).abs() < 0.01, "rms {r} vs {want_rms}");
}

#[test]
fn sine_44100_stereo_pcm16_to_22050() {
    let mono = sine(44_100, 1000.0, 44_100, 0.5);
    let inter: Vec<f32> = mono.iter().flat_map(|&v| [v, v]).collect();
    let p = write_wav("sine1k_44k_st.wav", 44_100, 2, WavFormat::Pcm16, &inter);
    let y = load_mono(&p, 22_050).unwrap();
    assert_eq!(y.len(), 22_050);
    let mid = &y[1000..y.len() - 1000];
    assert_eq!(peak_hz(mid, 22_050), 1000.0);
    assert!((rms(mid) / (0.5 / 2f64.sqrt()) - 1.0).abs() < 0.01);
}

#[test]
fn streaming_decoder_equals_load_mono() {
    let x = sine(48_000, 330.0, 100_000, 0.4);
    let p = write_wav("stream.wav", 48_000, 1, WavFormat::Pcm16, &x);
    let whole = load_mono(&p, 22_050).unwrap();
    let mut dec = MonoDecoder::open(&p, Some(22_050)).unwrap();
    assert_eq!(dec.output_rate_hz(), 22_050);
    let mut chunks = 0;
    let mut cat = Vec::new();
    let mut c = Vec::new();
    while dec.next_chunk(&mut c).unwrap() {
        assert!(!c.is_empty());
        chunks += 1;
        cat.extend_from_slice(&c);
    }
    assert!(chunks > 5, "expected streaming, got {chunks} chunk(s)");
    assert_eq!(cat, whole);
    // Exhausted: stays at end.
    assert!(!dec.next_chunk(&mut c).unwrap());
    assert!(c.is_empty());
}

#[test]
fn nan_and_inf_are_replaced_by_zero() {
    let vals = [0.5, f32::NAN, -0.5, f32::INFINITY, f32::NEG_INFINITY, 0.25];
    let p = write_wav("nan.wav", 22_050, 1, WavFormat::Float32, &vals);
    let mut dec = MonoDecoder::open(&p, None).unwrap();
    let mut c = Vec::new();
    let mut all = Vec::new();
    while dec.next_chunk(&mut c).unwrap() {
        all.extend_from_slice(&c);
    }
    assert_eq!(all, vec![0.5, 0.0, -0.5, 0.0, 0.0, 0.25]);
    assert_eq!(dec.nonfinite_samples(), 3);
}

#[test]
fn truncated_file_yields_what_is_there() {
    let x = sine(22_050, 440.0, 22_050, 0.5);
    let full = wav_bytes(22_050, 1, WavFormat::Pcm16, &x);
    // Cut in the middle of a sample, well into the data.
    let cut = full.len() / 2 + 1;
    let p = tmp_path("truncated.wav");
    std::fs::write(&p, &full[..cut]).unwrap();
    let y = load_mono(&p, 22_050).unwrap();
    let header = 44;
    let whole_samples = (cut - header) / 2;
    // symphonia reads PCM in packets; everything up to the last complete packet must come out.
    assert!(y.len() <= whole_samples, "{} > {}", y.len(), whole_samples);
    assert!(
        y.len() >= whole_samples - 4096,
        "{} << {}",
        y.len(),
        whole_samples
    );
    for (i, (a, b)) in y.iter().zip(&x).enumerate() {
        assert!((a - b).abs() <= 1.0 / 32768.0, "{i}");
    }
}

#[test]
fn header_only_file_is_an_error_naming_it() {
    let full = wav_bytes(22_050, 1, WavFormat::Pcm16, &sine(22_050, 440.0, 1000, 0.5));
    let p = tmp_path("header_only.wav");
    std::fs::write(&p, &full[..44]).unwrap();
    let e = load_mono(&p, 22_050).unwrap_err();
    assert!(matches!(e, Error::Audio { .. }), "{e}");
    assert_names(&e, &p);
}

#[test]
fn empty_file_is_an_error_naming_it() {
    let p = tmp_path("empty.wav");
    std::fs::write(&p, b"").unwrap();
    for e in [load_mono(&p, 22_050).unwrap_err(), probe(&p).unwrap_err()] {
        assert!(matches!(e, Error::Audio { .. }), "{e}");
        assert!(e.to_string().contains("empty"), "{e}");
        assert_names(&e, &p);
    }
}

#[test]
fn text_file_named_wav_is_an_error_naming_it() {
    let p = tmp_path("notes.wav");
    std::fs::write(&p, "this is not audio, just a text file\n".repeat(20)).unwrap();
    let e = load_mono(&p, 22_050).unwrap_err();
    assert!(matches!(e, Error::Audio { .. }), "{e}");
    assert_names(&e, &p);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let p = tmp_path("does_not_exist.flac");
    let e = load_mono(&p, 22_050).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_names(&e, &p);
    let e = Capture::replay(&p, ReplayOptions::default()).unwrap_err();
    assert_names(&e, &p);
}

#[test]
fn absurd_rates_are_errors_naming_the_file() {
    for rate in [0u32, 100, 5_000_000] {
        let p = tmp_path(&format!("rate_{rate}.wav"));
        std::fs::write(&p, wav_bytes(rate, 1, WavFormat::Pcm16, &[0.1; 64])).unwrap();
        let e = load_mono(&p, 22_050).unwrap_err();
        assert_names(&e, &p);
    }
    // A bad target rate is an invalid value, not a file problem.
    let p = write_wav("ok.wav", 22_050, 1, WavFormat::Pcm16, &[0.1; 64]);
    assert!(matches!(
        load_mono(&p, 0).unwrap_err(),
        Error::Invalid { .. }
    ));
}

/// `want_rms`: RMS of the fixture between 0.1 s and 0.9 s as measured by `sox FILE -n trim 0.1
/// 0.8 stat` (libFLAC / libmad / libvorbis decoders); lossy encoders change the level a little.
fn check_tone_fixture(name: &str, native_rate: u32, channels: usize, want: f64, level_tol: f64) {
    let p = data_file(name);
    let info = probe(&p).unwrap();
    assert_eq!(info.sample_rate_hz, native_rate, "{name}");
    assert_eq!(info.channels, channels, "{name}");
    let y = load_mono(&p, 22_050).unwrap();
    let secs = y.len() as f64 / 22_050.0;
    assert!((secs - 1.0).abs() < 0.08, "{name}: {secs} s");
    let mid = &y[2000..y.len() - 2000];
    assert_eq!(peak_hz(mid, 22_050), 440.0, "{name}");
    let r = rms(mid);
    assert!(
        (r / want - 1.0).abs() < level_tol,
        "{name}: rms {r} vs {want}"
    );
}

#[test]
fn flac_fixture() {
    check_tone_fixture("tone440_stereo_44k.flac", 44_100, 2, 0.353553, 0.01);
}

#[test]
fn mp3_fixture() {
    check_tone_fixture("tone440_mono_22k.mp3", 22_050, 1, 0.329013, 0.03);
}

#[test]
fn ogg_vorbis_fixture() {
    check_tone_fixture("tone440_stereo_44k.ogg", 44_100, 2, 0.356109, 0.03);
}

#[test]
fn flac_native_rate_matches_the_reference_decoder_exactly() {
    // tests/data/tone440_stereo_44k.first1000.f32: the first 1000 stereo frames as decoded by
    // sox (libFLAC), raw little-endian f32 interleaved. FLAC is lossless, so our mono mean of
    // them must be exact.
    let raw = std::fs::read(data_file("tone440_stereo_44k.first1000.f32")).unwrap();
    let reference: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(reference.len(), 2000);
    let y = load_mono(&data_file("tone440_stereo_44k.flac"), 44_100).unwrap();
    assert_eq!(y.len(), 44_100);
    for i in 0..1000 {
        let want = (reference[2 * i] + reference[2 * i + 1]) / 2.0;
        assert_eq!(y[i], want, "frame {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Real-time path.

#[test]
fn push_block_never_allocates_even_when_the_ring_is_full() {
    let ends = channel(4096, 256, Instant::now());
    let mut cb = ends.callback;
    let stereo: Vec<f32> = (0..1024).map(|i| (i % 17) as f32 * 0.01).collect();
    let mono: Vec<f32> = vec![0.1; 300];
    let weird: Vec<f32> = vec![f32::NAN; 8 * 100 + 3];
    let before = allocs_on_this_thread();
    // Nobody pops: the ring fills after a few blocks and every later block is dropped.
    for i in 0..5000 {
        match i % 3 {
            0 => push_block(&stereo, 2, &mut cb),
            1 => push_block(&mono, 1, &mut cb),
            _ => push_block(&weird, 8, &mut cb),
        }
    }
    let after = allocs_on_this_thread();
    assert_eq!(after - before, 0, "push_block allocated");
    let s = ends.stats.snapshot();
    assert_eq!(s.samples_pushed, 4096);
    assert!(s.samples_dropped > 1_000_000);
    assert_eq!(s.blocks, 5000);
    // The counter itself must work, or the zero above proves nothing.
    let v: Vec<u8> = Vec::with_capacity(10);
    assert!(allocs_on_this_thread() > after);
    drop(v);
}

#[test]
fn push_block_never_allocates_while_a_consumer_drains() {
    use ringbuf::traits::Consumer;
    let ends = channel(1024, 128, Instant::now());
    let mut cb = ends.callback;
    let mut cons = ends.samples;
    let mut stamps = ends.stamps;
    let reader = std::thread::spawn(move || {
        let mut buf = [0.0f32; 300];
        let mut got = 0u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while got < 200 * 256 && Instant::now() < deadline {
            got += cons.pop_slice(&mut buf) as u64;
            while stamps.try_pop().is_some() {}
            std::thread::yield_now();
        }
        got
    });
    let block = vec![0.3f32; 512];
    let before = allocs_on_this_thread();
    let mut sent = 0;
    while sent < 200 {
        if cb.vacant_samples() >= 256 {
            push_block(&block, 2, &mut cb);
            sent += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    assert_eq!(allocs_on_this_thread() - before, 0);
    assert_eq!(reader.join().unwrap(), 200 * 256);
    assert_eq!(ends.stats.snapshot().samples_dropped, 0);
}

#[test]
fn stream_resampler_process_does_not_allocate() {
    for (fin, fout) in [(48_000, 22_050), (44_100, 22_050), (44_101, 22_050)] {
        let mut rs = StreamResampler::new(fin, fout).unwrap();
        let input = sine(fin, 440.0, 256, 0.5);
        let mut out = Vec::with_capacity(rs.max_output_len(256) + 16);
        let before = allocs_on_this_thread();
        let mut total = 0;
        for _ in 0..2000 {
            out.clear();
            total += rs.process(&input, &mut out);
        }
        assert_eq!(allocs_on_this_thread() - before, 0, "{fin}->{fout}");
        let want = 2000.0 * 256.0 * fout as f64 / fin as f64;
        assert!(
            (total as f64 - want).abs() < 3000.0,
            "{fin}->{fout}: {total} vs {want}"
        );
        assert_eq!(rs.errors(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Replay.

fn drain(cap: &mut Capture) -> Vec<f32> {
    let mut all = Vec::new();
    let mut buf = vec![0.0f32; 1000];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = cap.pop_samples(&mut buf);
        all.extend_from_slice(&buf[..n]);
        if n == 0 {
            if cap.is_drained() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    all
}

#[test]
fn replay_at_max_speed_delivers_every_sample_in_order() {
    let x = sine(44_100, 440.0, 44_100 * 3, 0.5);
    let p = write_wav("replay_max.wav", 44_100, 1, WavFormat::Float32, &x);
    // A ring much smaller than the file: Max must wait for space, not drop.
    let opts = ReplayOptions {
        speed: Speed::Max,
        ring_s: 0.05,
        ..ReplayOptions::default()
    };
    let mut cap = Capture::replay(&p, opts).unwrap();
    assert_eq!(cap.sample_rate_hz, 44_100);
    let got = drain(&mut cap);
    assert_eq!(got, x);
    let report = cap.join().unwrap();
    assert_eq!(report.samples_decoded, x.len() as u64);
    let s = cap.stats.snapshot();
    assert_eq!(s.samples_dropped, 0);
    assert_eq!(s.samples_pushed, x.len() as u64);
    // One stamp per period. The consumer above did not read stamps, so once the small stamp
    // ring was full the newer ones were counted as dropped; the kept ones are the oldest.
    assert_eq!(s.blocks, (x.len() as u64).div_ceil(256));
    let mut popped = 0u64;
    let mut prev = None::<scorefollow::audio::BlockStamp>;
    while let Some(st) = cap.pop_stamp() {
        popped += 1;
        assert_eq!(st.end_sample, popped * 256);
        if let Some(p) = prev {
            assert!(st.wall_ns >= p.wall_ns);
        }
        prev = Some(st);
    }
    assert!(popped > 0);
    assert_eq!(popped + s.stamps_dropped, s.blocks);
}

#[test]
fn replay_can_deliver_at_the_analysis_rate() {
    let x = sine(48_000, 1000.0, 48_000, 0.5);
    let p = write_wav("replay_rate.wav", 48_000, 1, WavFormat::Pcm16, &x);
    let opts = ReplayOptions {
        speed: Speed::Max,
        rate_hz: Some(22_050),
        ..ReplayOptions::default()
    };
    let mut cap = Capture::replay(&p, opts).unwrap();
    assert_eq!(cap.sample_rate_hz, 22_050);
    let got = drain(&mut cap);
    assert_eq!(got, load_mono(&p, 22_050).unwrap());
}

#[test]
fn paced_replay_runs_at_the_requested_speed() {
    let x = sine(22_050, 440.0, 22_050, 0.5); // 1 s
    let p = write_wav("replay_paced.wav", 22_050, 1, WavFormat::Pcm16, &x);
    for speed in [2.0, 4.0] {
        let t0 = Instant::now();
        let mut cap = Capture::replay(
            &p,
            ReplayOptions {
                speed: Speed::Factor(speed),
                ..ReplayOptions::default()
            },
        )
        .unwrap();
        let got = drain(&mut cap);
        let took = t0.elapsed().as_secs_f64();
        let want = 1.0 / speed;
        assert_eq!(got.len(), x.len());
        assert!(
            took >= want * 0.97 && took < want + 0.25,
            "speed {speed}: {took} s for {want} s"
        );
    }
}

#[test]
fn simulated_xruns_drop_whole_chunks_reproducibly() {
    let n = 22_050 * 2;
    // A ramp makes every sample identifiable.
    let x: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
    let p = write_wav("replay_drops.wav", 22_050, 1, WavFormat::Float32, &x);
    let run = |seed| {
        let mut cap = Capture::replay(
            &p,
            ReplayOptions {
                speed: Speed::Max,
                drop_chunks: Some((0.3, seed)),
                ..ReplayOptions::default()
            },
        )
        .unwrap();
        let got = drain(&mut cap);
        let rep = cap.join().unwrap();
        (got, rep, cap.stats.snapshot())
    };
    let (a, rep, s) = run(7);
    let chunk = (22_050.0 * 0.05f64).round() as usize;
    assert_eq!(s.samples_pushed + s.samples_dropped, n as u64);
    assert_eq!(rep.samples_simulated_drops, s.samples_dropped);
    assert!(s.samples_dropped > 0 && s.samples_dropped < n as u64);
    // What arrived is the file minus whole aligned 50 ms chunks, in order.
    let kept: Vec<f32> = x
        .chunks(chunk)
        .filter(|c| a.contains(&c[0]))
        .flatten()
        .copied()
        .collect();
    assert_eq!(a, kept);
    assert_eq!(s.samples_dropped, (n - kept.len()) as u64);
    let (b, _, _) = run(7);
    assert_eq!(a, b);
    let (c, _, _) = run(8);
    assert_ne!(a, c);
}

#[test]
fn paced_replay_with_a_stalled_consumer_drops_and_counts() {
    let x = sine(22_050, 440.0, 22_050, 0.5);
    let p = write_wav("replay_stall.wav", 22_050, 1, WavFormat::Pcm16, &x);
    let cap = Capture::replay(
        &p,
        ReplayOptions {
            speed: Speed::Factor(8.0),
            ring_s: 0.1,
            ..ReplayOptions::default()
        },
    )
    .unwrap();
    while !cap.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = cap.stats.snapshot();
    assert_eq!(s.samples_pushed, 2205); // 0.1 s ring
    assert_eq!(s.samples_dropped, 22_050 - 2205);
}

#[test]
fn stop_ends_a_replay_early() {
    let x = sine(22_050, 440.0, 22_050 * 10, 0.5);
    let p = write_wav("replay_stop.wav", 22_050, 1, WavFormat::Pcm16, &x);
    let mut cap = Capture::replay(&p, ReplayOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    cap.stop();
    let rep = cap.join().unwrap();
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert!(rep.stopped_early);
    assert!(cap.is_finished());
    assert!(cap.finished.load(Ordering::Acquire));
    assert!(cap.stats.snapshot().samples_pushed < x.len() as u64 / 2);
}
