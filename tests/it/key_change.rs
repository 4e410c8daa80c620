//! A change of key while following: the bundled K. 331 score rendered by the crate's synth as a
//! "performance" that goes up a semitone after 25 s of score time and plays on (at a slightly
//! different tempo from the score). The follower must detect the new key through
//! re-localisation, continue in it at the right place, and must not change key on the same
//! material without the modulation. Ground truth is exact: the performance is the score with
//! its times scaled.

use std::path::PathBuf;
use std::sync::Arc;

use scorefollow::engine::{FollowConfig, FollowSettings, RelocateMode, RelocationReport};
use scorefollow::features::FeatureConfig;
use scorefollow::score::reference::Reference;
use scorefollow::score::Score;

/// Score time (s) from which the performance is a semitone up.
const MODULATION_SCORE_S: f64 = 25.0;
/// Performance time = score time x STRETCH (the performer is 4 % faster than the score).
const STRETCH: f64 = 0.96;
/// Score time (s) at which the performance stops.
const END_SCORE_S: f64 = 60.0;

fn score_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scores/mozart_k331/score.mid")
}

/// The score's notes up to `END_SCORE_S`, times scaled by `STRETCH`, those starting at or after
/// `modulate_at_s` (score time) `semitones` higher (lower when negative).
fn performance_score(score: &Score, modulate_at_s: f64, semitones: i32) -> Score {
    let mut perf = score.clone();
    perf.notes.retain(|n| n.onset_s < END_SCORE_S);
    for n in &mut perf.notes {
        if n.onset_s >= modulate_at_s {
            n.pitch = (n.pitch as i32 + semitones).clamp(0, 127) as u8;
        }
        n.onset_s *= STRETCH;
        n.offset_s *= STRETCH;
        n.key_offset_s *= STRETCH;
    }
    perf.duration_s = perf.notes.iter().map(|n| n.offset_s).fold(0.0, f64::max);
    perf
}

struct Run {
    /// (perf_time_s, score_time_s) per frame.
    rows: Vec<(f64, f64)>,
    jumps: Vec<RelocationReport>,
    key_at_end: Option<usize>,
}

/// Follow with the key detected by the trial at the start, as in a default run.
fn follow(samples: &[f32], reference: Arc<Reference>, mode: RelocateMode) -> Run {
    follow_in(samples, reference, mode, None)
}

fn follow_in(
    samples: &[f32],
    reference: Arc<Reference>,
    mode: RelocateMode,
    transpose: Option<usize>,
) -> Run {
    let config = FollowConfig::try_from(FollowSettings {
        relocate: mode,
        transpose,
        ..FollowSettings::default()
    })
    .expect("valid settings");
    let run = crate::common::follow_in_chunks(reference, &config, samples, 4096);
    Run {
        rows: run.rows,
        jumps: run.jumps,
        key_at_end: run.key_at_end,
    }
}

/// Percentage of frames at performance time >= `from_s` reported within 300 ms of the truth.
fn within_300ms_from(run: &Run, from_s: f64) -> f64 {
    let scored: Vec<bool> = run
        .rows
        .iter()
        .filter(|r| r.0 >= from_s)
        .map(|&(t, s)| (s - t / STRETCH).abs() <= 0.3)
        .collect();
    assert!(!scored.is_empty(), "no frames after {from_s} s");
    100.0 * scored.iter().filter(|&&b| b).count() as f64 / scored.len() as f64
}

fn key_changes(run: &Run) -> Vec<&RelocationReport> {
    run.jumps
        .iter()
        .filter(|j| j.key_shift != j.from_key_shift)
        .collect()
}

#[test]
fn a_modulation_is_followed_in_the_new_key() {
    let cfg = FeatureConfig::default();
    let score = Score::load(&score_path()).expect("bundled score parses");
    let reference = Arc::new(Reference::from_score(
        score.clone(),
        &score_path(),
        &cfg,
        &Default::default(),
    ));
    let modulated = scorefollow::score::synth::render(
        &performance_score(&score, MODULATION_SCORE_S, 1),
        cfg.sample_rate_hz,
    );
    let plain = scorefollow::score::synth::render(
        &performance_score(&score, f64::INFINITY, 0),
        cfg.sample_rate_hz,
    );
    let modulation_s = MODULATION_SCORE_S * STRETCH;

    let on = follow(&modulated, reference.clone(), RelocateMode::Auto);
    let off = follow(&modulated, reference.clone(), RelocateMode::Off);
    let clean = follow(&plain, reference.clone(), RelocateMode::Auto);
    let acc_on = within_300ms_from(&on, modulation_s + 5.0);
    let acc_off = within_300ms_from(&off, modulation_s + 5.0);
    let acc_clean = within_300ms_from(&clean, modulation_s + 5.0);
    eprintln!(
        "modulated, re-check auto (on against a score): key at end {:?}, {acc_on:.1} % within 300 ms from \
         modulation + 5 s; jumps {:?}",
        on.key_at_end, on.jumps
    );
    eprintln!(
        "modulated, re-check off: key at end {:?}, {acc_off:.1} % within 300 ms from \
         modulation + 5 s",
        off.key_at_end
    );
    eprintln!(
        "not modulated, re-check auto (on against a score): key at end {:?}, {acc_clean:.1} % within 300 ms over the \
         same frames; jumps {:?}",
        clean.key_at_end, clean.jumps
    );

    // (a) The change is detected within a few seconds, to one semitone up.
    let changes = key_changes(&on);
    let first = changes.first().expect("the key change was detected");
    assert_eq!(first.key_shift, 1, "{first:?}");
    assert!(
        first.perf_time_s > modulation_s && first.perf_time_s < modulation_s + 5.0,
        "key change confirmed at {:.2} s, modulation at {modulation_s:.2} s",
        first.perf_time_s
    );
    assert!(
        (first.to_score_s - first.perf_time_s / STRETCH).abs() < 0.5,
        "continued at score {:.2} s, truth {:.2} s",
        first.to_score_s,
        first.perf_time_s / STRETCH
    );
    assert_eq!(on.key_at_end, Some(1));
    // (b) It follows in the new key, about as well as it follows the unmodulated material.
    assert!(
        acc_on >= 85.0,
        "{acc_on:.1} % within 300 ms after the modulation"
    );
    assert!(
        acc_on >= acc_clean - 5.0,
        "{acc_on:.1} % after the modulation, {acc_clean:.1} % on the same frames unmodulated"
    );
    // Without the re-check the follower stays in the old key and is lost.
    assert_eq!(off.key_at_end, Some(0));
    assert!(
        acc_on > acc_off + 30.0,
        "{acc_on:.1} % with the re-check, {acc_off:.1} % without"
    );
    // (c) No key change without a modulation, and the same material is followed as well.
    assert!(key_changes(&clean).is_empty(), "{:?}", clean.jumps);
    assert_eq!(clean.key_at_end, Some(0));
    assert!(acc_clean >= 85.0, "{acc_clean:.1} % within 300 ms");
}

/// A singer who drifts a semitone down, followed with the key given (`--transpose 0`): the
/// follower ends in shift 11 (the performance is 11 semitones above the score, modulo the
/// octave) and follows on.
#[test]
fn a_drift_down_is_followed_with_the_key_given() {
    let cfg = FeatureConfig::default();
    let score = Score::load(&score_path()).expect("bundled score parses");
    let reference = Arc::new(Reference::from_score(
        score.clone(),
        &score_path(),
        &cfg,
        &Default::default(),
    ));
    let flat = scorefollow::score::synth::render(
        &performance_score(&score, MODULATION_SCORE_S, -1),
        cfg.sample_rate_hz,
    );
    let modulation_s = MODULATION_SCORE_S * STRETCH;
    let run = follow_in(&flat, reference, RelocateMode::Auto, Some(0));
    let acc = within_300ms_from(&run, modulation_s + 5.0);
    eprintln!(
        "drift down, key given: key at end {:?}, {acc:.1} % within 300 ms from modulation + 5 s; \
         jumps {:?}",
        run.key_at_end, run.jumps
    );
    let changes = key_changes(&run);
    let first = changes.first().expect("the key change was detected");
    assert_eq!(
        (first.from_key_shift, first.key_shift),
        (0, 11),
        "{first:?}"
    );
    assert!(
        first.perf_time_s > modulation_s && first.perf_time_s < modulation_s + 5.0,
        "key change confirmed at {:.2} s, modulation at {modulation_s:.2} s",
        first.perf_time_s
    );
    assert_eq!(run.key_at_end, Some(11));
    assert!(acc >= 85.0, "{acc:.1} % within 300 ms after the modulation");
}
