//! Real recordings (issue 18): what a real recording does to the follower that a rendering
//! does not, on the bundled Mozart performance. A quiet recording (its level 45 dB down) is
//! followed as well as at full level, since silence is judged against the recording's own
//! peak; a reference recording that begins with 3 s of silence is entered on its first note,
//! however long that silence is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use scorefollow::audio::replay::{ReplayOptions, Speed};
use scorefollow::audio::Capture;
use scorefollow::engine::{FollowConfig, FollowSettings, ReferenceKind, Source};
use scorefollow::eval;
use scorefollow::output::memory::MemorySink;
use scorefollow::output::Sink;
use scorefollow::score::reference::Reference;

fn mozart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scores/mozart_k331")
}

/// A mono 32-bit float WAV file (lossless for quiet signals, unlike 16-bit PCM).
fn write_wav_f32(path: &Path, rate: u32, samples: &[f32]) {
    let data: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 4).to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).expect("write wav");
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sf_realrec_{}_{name}", std::process::id()))
}

/// The default follower's configuration for a reference of `kind`.
fn config(kind: ReferenceKind) -> FollowConfig {
    FollowConfig::try_from(FollowSettings::for_kind(kind)).expect("valid settings")
}

/// Follow `performance` against `reference` (of `kind`) with the default settings; the causal
/// errors (ms) at the ground truth, whose score times are shifted by `gt_shift_s`.
fn follow(
    performance: &Path,
    reference: Arc<Reference>,
    kind: ReferenceKind,
    gt_shift_s: f64,
) -> Vec<f64> {
    let capture = Capture::replay(
        performance,
        ReplayOptions {
            speed: Speed::Max,
            ..ReplayOptions::default()
        },
    )
    .expect("replay");
    let memory = MemorySink::default();
    let sinks: Vec<Box<dyn Sink>> = vec![Box::new(memory.clone())];
    scorefollow::follow(&config(kind), Source::new(reference, capture), sinks).expect("run");
    let rows = memory.take();
    let pred = (
        rows.iter().map(|r| r.perf_time_s).collect(),
        rows.iter().map(|r| r.score_time_s).collect(),
    );
    let (t, s) = eval::read_xy(&mozart().join("gt.csv")).expect("gt");
    let gt = (t, s.iter().map(|x| x + gt_shift_s).collect());
    eval::errors_ms(&gt, &pred, true)
}

fn le(errors: &[f64], ms: f64) -> f64 {
    100.0 * errors.iter().filter(|&&e| e <= ms).count() as f64 / errors.len() as f64
}

/// The performance 45 dB down (peaks near -45 dBFS, its soft passages near -70 dBFS) against
/// the score: as accurate as at full level. With silence at a fixed -40 dBFS (the extractor
/// before issue 18) nearly every frame of it was silence and the follower held still.
#[test]
fn a_quiet_recording_is_followed_as_at_full_level() {
    let score_cfg = config(ReferenceKind::Score);
    let cfg = &score_cfg.features;
    let reference = Arc::new(
        Reference::from_score_file(&mozart().join("score.mid"), cfg, &score_cfg.rendering)
            .expect("score"),
    );
    let loud = scorefollow::audio::decode::load_mono(
        &mozart().join("performance.flac"),
        cfg.sample_rate_hz,
    )
    .expect("decode");
    let gain = 10f32.powf(-45.0 / 20.0);
    let quiet: Vec<f32> = loud.iter().map(|x| x * gain).collect();
    let path = temp("quiet.wav");
    write_wav_f32(&path, cfg.sample_rate_hz, &quiet);
    let at_full = follow(
        &mozart().join("performance.flac"),
        reference.clone(),
        ReferenceKind::Score,
        0.0,
    );
    let at_quiet = follow(&path, reference, ReferenceKind::Score, 0.0);
    let _ = std::fs::remove_file(&path);
    assert!(
        le(&at_full, 300.0) >= 86.0,
        "full level: {}",
        le(&at_full, 300.0)
    );
    assert!(
        le(&at_quiet, 300.0) >= le(&at_full, 300.0) - 5.0,
        "quiet {} vs full {}",
        le(&at_quiet, 300.0),
        le(&at_full, 300.0)
    );
}

/// A reference recording (the score rendered, so its time is score time) that begins with
/// 3 s of silence, followed by the performance, whose first note comes after 1 s: from its
/// second event on (the first falls on the first note, before the follower has heard it) the
/// events are found where they are, not seconds late as when the follower had to start at
/// the reference's first frame and walk through its silence.
#[test]
fn a_reference_recording_is_entered_on_its_first_note() {
    let cfg = config(ReferenceKind::Recording).features;
    let score = scorefollow::score::Score::load(&mozart().join("score.mid")).expect("score");
    let rendered = scorefollow::score::synth::render(&score, cfg.sample_rate_hz);
    let lead_s = 3.0;
    let mut audio = vec![0.0f32; (lead_s * cfg.sample_rate_hz as f64) as usize];
    audio.extend(rendered);
    let path = temp("reference.wav");
    let reference = Arc::new(Reference::from_samples(&audio, &path, &cfg).expect("reference"));
    let errors = follow(
        &mozart().join("performance.flac"),
        reference,
        ReferenceKind::Recording,
        lead_s,
    );
    let first = &errors[1..9];
    assert!(
        first.iter().all(|&e| e <= 300.0),
        "first events (ms): {first:?}"
    );
    assert!(le(&errors, 300.0) >= 86.0, "{}", le(&errors, 300.0));
}
