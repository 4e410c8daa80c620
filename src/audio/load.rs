//! Files in: the edge that reads scores and recordings from disk, decodes audio and hands the
//! core plain samples, frames and scores. The core (features, score, align, spot) never
//! decodes a file itself; it is given what this module reads.

use std::path::Path;

use super::decode::load_mono;
use crate::align::dtw::{align_multiscale, path_to_ref_per_perf, DtwOptions};
use crate::engine::config::ReferenceKind;
use crate::engine::ThemeSpotting;
use crate::features::{self, Chroma, FeatureConfig};
use crate::score::reference::is_score_path;
use crate::score::reference::{
    written_pitch_verdict, PitchVerdict, Reference, ScoreRendering, WRITTEN_PITCH_ENOUGH_FRAMES,
    WRITTEN_PITCH_MIN_FRAMES,
};
use crate::score::{Score, ScoreOptions};
use crate::spot::query::{midi_chroma, read_themes_file, MidiMode};
use crate::spot::streaming::StreamingSpotter;
use crate::spot::SpotConfig;
use crate::{Error, Result};

/// The reference at `path`: a score rendered with `rendering`, or a recording decoded; both
/// analysed with `features`. Fails on a reference without a single frame.
pub fn load_reference(
    path: &Path,
    kind: ReferenceKind,
    features: &FeatureConfig,
    rendering: &ScoreRendering,
) -> Result<Reference> {
    load_reference_with(path, kind, features, rendering, &ScoreOptions::default())
}

/// As [`load_reference`], a score read with `options` (the order of a MusicXML score's
/// measures, a MIDI score's pickup; added in this version).
pub fn load_reference_with(
    path: &Path,
    kind: ReferenceKind,
    features: &FeatureConfig,
    rendering: &ScoreRendering,
    options: &ScoreOptions,
) -> Result<Reference> {
    let reference = match kind {
        ReferenceKind::Score => {
            let score = Score::load_with(path, options)?;
            Reference::from_score(score, path, features, rendering)
        }
        ReferenceKind::Recording => {
            let samples = load_mono(path, features.sample_rate_hz)?;
            Reference::from_samples(&samples, path, features)?
        }
    };
    if reference.is_empty() {
        return Err(Error::invalid(
            "reference",
            path.display().to_string(),
            "has no audio frames",
        ));
    }
    Ok(reference)
}

/// The chroma of a query or recording file (the [`crate::spot::query::ChromaReader`] of the
/// command line): a score (MIDI or MusicXML) by `mode`, anything else decoded and analysed.
pub fn read_chroma(path: &Path, feat: &FeatureConfig, mode: MidiMode) -> Result<Vec<Chroma>> {
    if is_score_path(path) {
        midi_chroma(path, feat, mode)
    } else {
        let samples = load_mono(path, feat.sample_rate_hz)?;
        Ok(features::extract(&samples, feat).chroma())
    }
}

/// The themes of a themes file (TOML or CSV, see `scorefollow spot --help`), ready to be spotted
/// alongside following with decision threshold `tau`.
pub fn load_themes(themes_file: &Path, tau: f32) -> Result<ThemeSpotting> {
    let themes = read_themes_file(themes_file)?;
    let mut cfg = SpotConfig::default();
    cfg.matching.peaks.tau = tau;
    let spotter =
        StreamingSpotter::from_theme_files(&themes, &cfg.features, &cfg, 0.3, &read_chroma)?;
    Ok(ThemeSpotting {
        spotter,
        ids: themes.into_iter().map(|t| t.id).collect(),
        features: cfg.features,
    })
}

/// The alignment of one performance: score time for each performance frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Alignment {
    /// (perf_time_s, score_time_s) per performance frame (frame centres).
    pub rows: Vec<(f64, f64)>,
    /// Set when an open end looks like a false one (see [`EarlyEnd`]); added in this version.
    pub early_end: Option<EarlyEnd>,
}

/// An open-ended alignment that crawls to an end short of the reference's: the performance's
/// last [`EARLY_END_TAIL_S`] move through under [`EARLY_END_MAX_PACE`] times as much of the
/// reference, and more than [`EARLY_END_MIN_LEFT_S`] of the reference is left. An excerpt's
/// last bars move at its usual pace; in a noisy recording (a historical one, a distant
/// microphone in a hall) the ends compare almost alike and the least costly can be one far
/// too early (measured: the 1933 Winterreise recording in a small room, see README *Real
/// rooms*).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyEnd {
    /// Where the alignment ends (reference seconds).
    pub end_s: f64,
    /// Where the reference ends (reference seconds).
    pub reference_end_s: f64,
    /// How far the performance's last [`EARLY_END_TAIL_S`] moved in the reference (s).
    pub tail_advance_s: f64,
}

impl std::fmt::Display for EarlyEnd {
    /// The warning `align` gives (the command line, `eval` and the Python package alike).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the alignment ends at {:.1} s of the reference's {:.1} s, and the performance's \
             last {EARLY_END_TAIL_S:.0} s move through only {:.1} s of it: if the performance \
             plays on to the end, align again with --full-end",
            self.end_s, self.reference_end_s, self.tail_advance_s
        )
    }
}

impl Alignment {
    /// Log [`Self::early_end`], with the remedy, as a warning.
    pub fn warn_of_an_early_end(&self) {
        if let Some(e) = self.early_end {
            tracing::warn!("{e}");
        }
    }
}

/// Align the recording at `performance` to `reference` offline (multiscale DTW with `opts`);
/// `progress(done, total)` on the finest level.
pub fn align_file(
    performance: &Path,
    reference: &Reference,
    opts: DtwOptions,
    progress: impl FnMut(usize, usize),
) -> Result<Alignment> {
    let audio = load_mono(performance, reference.config.sample_rate_hz)?;
    Ok(align_samples(&audio, reference, opts, progress))
}

/// Performance seconds of each window [`performed_tempo_scale`] measures a tempo over.
const TEMPO_WINDOW_S: f64 = 10.0;

/// The performer's tempo over `alignment` as a multiple of the score's (score seconds per
/// performance second): the median over consecutive 10 s windows, so a skip or a repeat,
/// which moves the score position in one window, does not count. None when no window moves
/// forward.
pub fn performed_tempo_scale(alignment: &Alignment) -> Option<f64> {
    let rows = &alignment.rows;
    let mut scales = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let (t0, s0) = rows[i];
        let j = i + rows[i..].partition_point(|r| r.0 < t0 + TEMPO_WINDOW_S);
        if j >= rows.len() {
            break;
        }
        let (t1, s1) = rows[j];
        let f = (s1 - s0) / (t1 - t0);
        if f.is_finite() && f > 0.0 {
            scales.push(f);
        }
        i = j;
    }
    if scales.is_empty() {
        let (&(t0, s0), &(t1, s1)) = (rows.first()?, rows.last()?);
        let f = (s1 - s0) / (t1 - t0);
        return (f.is_finite() && f > 0.0).then_some(f.clamp(0.05, 20.0));
    }
    scales.sort_by(f64::total_cmp);
    Some(scales[scales.len() / 2].clamp(0.05, 20.0))
}

/// Align a printed score (MusicXML) at the performer's tempo: `first` (the score at its tempo
/// marks, read from `path` with `options`) was aligned to `audio` as `alignment`; the score is
/// rendered again at the tempo that alignment found ([`performed_tempo_scale`]) and aligned once
/// more.
/// A printed score's marks are often not the performer's tempo (120 quarter notes a minute
/// when it has none), and the rendering's note lengths and the aligner's step costs both fit
/// the performance better at its own tempo. Any other reference, a score given a tempo
/// (`options.qpm`) or laid out as written for a structure file is returned as it is.
#[allow(clippy::too_many_arguments)]
pub fn realign_at_performed_tempo(
    audio: &[f32],
    path: &Path,
    first: std::sync::Arc<Reference>,
    alignment: Alignment,
    features: &FeatureConfig,
    rendering: &ScoreRendering,
    options: &ScoreOptions,
    dtw: DtwOptions,
) -> Result<(std::sync::Arc<Reference>, Alignment)> {
    let printed = first.score().is_some_and(|s| s.printed.is_some());
    if !printed
        || options.qpm.is_some()
        || first.unfolding.is_some()
        || options.repeats == crate::score::RepeatMode::AsWritten
    {
        return Ok((first, alignment));
    }
    let Some(scale) = performed_tempo_scale(&alignment) else {
        return Ok((first, alignment));
    };
    let options = ScoreOptions {
        tempo_scale: Some(scale),
        ..*options
    };
    let second = load_reference_with(path, ReferenceKind::Score, features, rendering, &options)?;
    let again = align_samples(audio, &second, dtw, |_, _| {});
    Ok((std::sync::Arc::new(second), again))
}

/// Align a performance given as mono samples at the reference's analysis rate
/// (`reference.config.sample_rate_hz`), as [`align_file`] aligns a file (the Python package
/// hands samples in).
pub fn align_samples(
    audio: &[f32],
    reference: &Reference,
    opts: DtwOptions,
    progress: impl FnMut(usize, usize),
) -> Alignment {
    let cfg = &reference.config;
    let perf = features::extract(audio, cfg);
    let mut path = align_multiscale(&perf.frames, &reference.frames, opts, progress);
    if let Some(written) = reference.written_pitch.as_deref() {
        // A printed score with transposing parts: aligned at written pitch too, and the
        // alignment that matches those parts clearly better is kept (as the follower's trial).
        let other = align_multiscale(&perf.frames, &written.frames, opts, |_, _| {});
        let sounding_fit = written_pitch_fit(&perf.frames, reference, reference, &path);
        let written_fit = written_pitch_fit(&perf.frames, reference, written, &other);
        if let (Some((s, n)), Some((w, m))) = (sounding_fit, written_fit) {
            // The whole performance is heard: what is still undecided after it is sounding.
            let frames = n.min(m).max(WRITTEN_PITCH_ENOUGH_FRAMES);
            if written_pitch_verdict(s, w, frames) == PitchVerdict::Written {
                tracing::info!(
                    "the transposing parts are played as written (mean match {w:.3} against \
                     {s:.3} at sounding pitch): aligned at written pitch"
                );
                path = other;
            }
        }
    }
    let ref_of = path_to_ref_per_perf(&path, perf.len());
    let early_end = opts
        .open_end
        .then(|| early_end(&ref_of, reference.frames.len(), cfg.hop_s()))
        .flatten()
        .map(|(end, last, tail_advance_s)| EarlyEnd {
            end_s: reference.score_time_s(end),
            reference_end_s: reference.score_time_s(last),
            tail_advance_s,
        });
    let rows = ref_of
        .iter()
        .enumerate()
        .map(|(i, &j)| (cfg.frame_centre_s(i).max(0.0), reference.score_time_s(j)))
        .collect();
    Alignment { rows, early_end }
}

/// The end of a performance an [`EarlyEnd`] looks at (s).
pub const EARLY_END_TAIL_S: f64 = 10.0;
/// The pace (reference seconds per performance second) under which an [`EarlyEnd`]'s tail
/// crawls: a third.
pub const EARLY_END_MAX_PACE: f64 = 0.3;
/// The reference left after an [`EarlyEnd`] (s): a final fermata crawls too, into the end.
pub const EARLY_END_MIN_LEFT_S: f64 = 5.0;

/// The shape [`EarlyEnd`] describes, from the reference frame of each performance
/// frame (`ref_of`) of a reference of `ref_frames` frames of `hop_s` seconds: the last
/// reference frame reached, the reference's last frame, and how far (s) the performance's
/// last [`EARLY_END_TAIL_S`] moved in the reference.
fn early_end(ref_of: &[f64], ref_frames: usize, hop_s: f64) -> Option<(f64, f64, f64)> {
    let tail = (EARLY_END_TAIL_S / hop_s).round() as usize;
    let end = *ref_of.last()?;
    let last = ref_frames.checked_sub(1)? as f64;
    let tail_start = *ref_of.get(ref_of.len().checked_sub(tail + 1)?)?;
    let left_s = (last - end) * hop_s;
    let advanced_s = (end - tail_start) * hop_s;
    (left_s > EARLY_END_MIN_LEFT_S && advanced_s < EARLY_END_MAX_PACE * EARLY_END_TAIL_S)
        .then_some((end, last, advanced_s))
}

/// The mean local match (cosine distance) of `path` between the performance and `rendering`
/// over the pairs whose reference frame tells `reference`'s two renderings apart, and their
/// count; None when fewer than [`WRITTEN_PITCH_MIN_FRAMES`] do.
fn written_pitch_fit(
    perf: &[features::FeatureFrame],
    reference: &Reference,
    rendering: &Reference,
    path: &[(usize, usize)],
) -> Option<(f64, u32)> {
    let (mut sum, mut n) = (0.0f64, 0u32);
    for &(i, j) in path {
        if let (Some(p), Some(r)) = (perf.get(i), rendering.frames.get(j)) {
            if reference.written_pitch_differs_at(j) {
                sum += f64::from(crate::align::cost::cosine_distance(&p.chroma, &r.chroma));
                n += 1;
            }
        }
    }
    (n >= WRITTEN_PITCH_MIN_FRAMES).then(|| (sum / f64::from(n), n))
}

#[cfg(test)]
mod tempo_tests {
    use super::*;

    /// An alignment of `rows` (no early end).
    fn aligned(rows: Vec<(f64, f64)>) -> Alignment {
        Alignment {
            rows,
            early_end: None,
        }
    }

    /// A performer at 0.8x the score's tempo with a skip of 30 score seconds in one window:
    /// the median over 10 s windows is 0.8, the skip does not count.
    #[test]
    fn the_performed_tempo_scale_ignores_a_skip() {
        let rows: Vec<(f64, f64)> = (0..3000)
            .map(|i| {
                let t = i as f64 * 0.02;
                let skip = if t >= 25.0 { 30.0 } else { 0.0 };
                (t, 0.8 * t + skip)
            })
            .collect();
        let f = performed_tempo_scale(&aligned(rows)).expect("a tempo");
        assert!((f - 0.8).abs() < 1e-9, "{f}");
        // Shorter than a window: the whole of it; standing still: none.
        let short: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64 * 0.02, 1.5 * i as f64 * 0.02))
            .collect();
        let f = performed_tempo_scale(&aligned(short)).expect("a tempo");
        assert!((f - 1.5).abs() < 1e-9, "{f}");
        let still: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64 * 0.02, 3.0)).collect();
        assert_eq!(performed_tempo_scale(&aligned(still)), None);
        assert_eq!(performed_tempo_scale(&aligned(vec![])), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_end_is_a_crawl_short_of_the_reference_end() {
        let hop_s = 0.02;
        // 60 s of performance: 50 s through the reference at its pace, then 10 s through 1 s.
        let crawl: Vec<f64> = (0..3000)
            .map(|i| {
                if i < 2500 {
                    i as f64
                } else {
                    2500.0 + (i - 2500) as f64 * 0.1
                }
            })
            .collect();
        let (end, last, advanced_s) = early_end(&crawl, 6000, hop_s).expect("reported");
        assert!(
            (end - 2549.9).abs() < 1e-9 && last == 5999.0,
            "{end} {last}"
        );
        assert!((advanced_s - 1.0).abs() < 0.05, "{advanced_s}");
        // The same crawl into the reference's last 5 s: a final fermata, not reported.
        assert_eq!(early_end(&crawl, 2700, hop_s), None);
        // An excerpt that stops halfway at its usual pace: not reported.
        let excerpt: Vec<f64> = (0..3000).map(|i| i as f64 * 0.9).collect();
        assert_eq!(early_end(&excerpt, 6000, hop_s), None);
        // Shorter than the tail looked at: nothing to say.
        assert_eq!(early_end(&crawl[..400], 6000, hop_s), None);
        assert_eq!(early_end(&[], 6000, hop_s), None);
    }
}
