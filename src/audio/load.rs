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
use crate::score::reference::{Reference, ScoreRendering};
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
    let path = align_multiscale(&perf.frames, &reference.frames, opts, progress);
    let ref_of = path_to_ref_per_perf(&path, perf.len());
    let rows = ref_of
        .iter()
        .enumerate()
        .map(|(i, &j)| (cfg.frame_centre_s(i).max(0.0), reference.score_time_s(j)))
        .collect();
    Alignment { rows }
}
