//! Theme spotting and audio matching (Müller, Kurth & Clausen 2005; FMP C7; Zalkow & Müller
//! 2020/2021): find where a short query occurs in a recording, a stream or a collection.
//!
//! Everything works on CENS frames ([`crate::features::cens`]) computed from the follower's
//! chroma stage (so the tuning estimated there applies):
//! - [`dtw`]: subsequence DTW, column by column, start of the best path carried along;
//! - [`matcher`]: the query at R tempo scalings (and 12 transpositions), matching function Δ
//!   by subsequence DTW or diagonal matching, minimised over variants;
//! - [`peaks`]: minima under τ with an exclusion neighbourhood ρ;
//! - [`streaming`]: the same matcher fed one frame at a time (`follow --themes`);
//! - [`query`]: files (audio, MIDI) to chroma, themes files;
//! - the corpus evaluation, as `score_themes.py` computes it, is [`crate::eval::themes`];
//! - [`index`], [`pca`], [`ivf`]: audio matching over a collection (CENS shingles, PCA,
//!   inverted-file nearest neighbours, versioned index file).
//!
//! [`relocate`] finds where the last seconds of a performance are in a reference (the
//! follower's recovery after a jump); [`spot_files`] is the `spot` subcommand's search.
//!
//! Measured on the dev corpus (`eval --mode themes`, i.e. [`crate::eval::themes::eval_themes`] with the defaults and
//! transpositions on; 17 recordings, 43 queries per query kind), onset criterion:
//! MIDI queries P@1 0.884, MAP 0.886; audio queries P@1 0.837, MAP 0.836 (IoU criterion: 0.884 /
//! 0.898 and 0.884 / 0.899). The librosa CENS + subsequence-DTW peer scores MAP 0.55-0.56.
//! Speed: a 180 s recording searched for 10 themes at 50 tempo scalings in 0.35 s wall
//! (`benches/spot.rs`, 2 cores), 4.5 s with the 12 transpositions.

pub mod dtw;
pub mod index;
pub mod ivf;
pub mod matcher;
pub mod pca;
pub mod peaks;
pub mod query;
pub mod streaming;

pub use matcher::{FrameHit, MatchMethod, MatchParams};
pub use peaks::PeakParams;
pub use query::{MidiMode, ThemeFile};
pub use streaming::{StreamHit, StreamingSpotter};

use crate::features::cens::{cens, CensConfig};
use crate::features::{Chroma, FeatureConfig};

/// A match in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Start of the occurrence (s in the searched material).
    pub start_s: f64,
    /// End of the occurrence (s).
    pub end_s: f64,
    /// Δ: mean cosine distance along the path (0 = identical).
    pub cost: f32,
    /// Confidence, higher is better: `1 - cost`.
    pub score: f32,
    /// Occurrence length / query length.
    pub tempo_scale: f32,
    /// Transposition of the occurrence relative to the query (semitones, -5..=6).
    pub transpose: i8,
}

/// Everything the spotter needs to know, with the defaults used by `spot` and `eval`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpotConfig {
    /// The chroma stage.
    pub features: FeatureConfig,
    /// CENS on top of it.
    pub cens: CensConfig,
    /// Matching and peak picking.
    pub matching: MatchParams,
    /// How MIDI queries (and MIDI searched material) become chroma.
    pub midi_mode: MidiMode,
}

impl Default for SpotConfig {
    /// The follower's chroma stage with log compression 1 instead of its default (nearly linear
    /// energy makes the melody stand out of the accompaniment: dev-corpus onset MAP for audio
    /// queries 0.836 at 1, 0.784 at 100), and MIDI as note templates (MAP 0.886 vs 0.86 for
    /// rendered MIDI).
    fn default() -> Self {
        Self {
            features: FeatureConfig {
                log_compression: 1.0,
                ..FeatureConfig::default()
            },
            cens: CensConfig::default(),
            matching: MatchParams::default(),
            midi_mode: MidiMode::Template,
        }
    }
}

/// Start time (s) of CENS frame `j`: the centre of the chroma frame it is centred on, clamped
/// at 0.
pub fn cens_frame_start_s(j: usize, feat: &FeatureConfig, cens: &CensConfig) -> f64 {
    feat.frame_centre_s(cens.input_frame(j)).max(0.0)
}

/// CENS of a query: leading and trailing silence trimmed first, so that the match starts and
/// ends with the music.
pub fn query_cens(chroma: &[Chroma], cfg: &CensConfig) -> Vec<Chroma> {
    cens(query::trim_silence(chroma), cfg)
}

/// Frame hits to seconds.
pub fn to_seconds(hits: &[FrameHit], feat: &FeatureConfig, cens: &CensConfig) -> Vec<Hit> {
    hits.iter()
        .map(|h| Hit {
            start_s: cens_frame_start_s(h.start, feat, cens),
            end_s: cens_frame_start_s(h.end + 1, feat, cens),
            cost: h.cost,
            score: 1.0 - h.cost,
            tempo_scale: h.tempo_scale,
            transpose: h.transpose,
        })
        .collect()
}

/// Find where the recent performance (`recent`, chroma frames, oldest first) occurs in the
/// reference (`reference`, chroma frames), for re-locating the follower after a jump. Hits are
/// best first, times in seconds of the reference; `tempo_scale` is the length of the matched
/// reference span / the length of `recent`, so above 1 the performer plays faster than the
/// reference.
pub fn relocate(
    recent: &[Chroma],
    reference: &[Chroma],
    cfg: &SpotConfig,
) -> crate::Result<Vec<Hit>> {
    let q = query_cens(recent, &cfg.cens);
    let db = cens(reference, &cfg.cens);
    let hits = matcher::search(&q, &db, &cfg.matching)?;
    Ok(to_seconds(&hits, &cfg.features, &cfg.cens))
}

/// A hit of a named theme in a named recording, ranked among that theme's hits.
#[derive(Clone, Debug, PartialEq)]
pub struct ThemeHit {
    /// Theme id.
    pub theme_id: String,
    /// The searched file.
    pub recording: std::path::PathBuf,
    /// 1-based rank among the hits of this theme over all recordings (best first).
    pub rank: usize,
    /// Where and how well.
    pub hit: Hit,
}

/// Search every theme in every recording (audio or MIDI files), in parallel. Keeps the
/// `cfg.matching.peaks.top_k` best hits of each theme over all recordings, ordered by theme
/// (as given) then rank.
pub fn spot_files(
    themes: &[ThemeFile],
    recordings: &[std::path::PathBuf],
    cfg: &SpotConfig,
    reader: &dyn query::ChromaReader,
) -> crate::Result<Vec<ThemeHit>> {
    use rayon::prelude::*;
    cfg.matching.validate()?;
    let queries: Vec<Vec<Chroma>> = themes
        .par_iter()
        .map(|t| {
            let c = reader.read(&t.path, &cfg.features, cfg.midi_mode)?;
            let q = query_cens(&c, &cfg.cens);
            if q.is_empty() {
                return Err(crate::Error::invalid(
                    "theme",
                    t.path.display().to_string(),
                    "is silent (no frame with sound)",
                ));
            }
            Ok(q)
        })
        .collect::<crate::Result<_>>()?;
    let dbs: Vec<Vec<Chroma>> = recordings
        .par_iter()
        .map(|r| {
            Ok(cens(
                &reader.read(r, &cfg.features, cfg.midi_mode)?,
                &cfg.cens,
            ))
        })
        .collect::<crate::Result<_>>()?;
    let q_refs: Vec<&[Chroma]> = queries.iter().map(Vec::as_slice).collect();
    let d_refs: Vec<&[Chroma]> = dbs.iter().map(Vec::as_slice).collect();
    let all = matcher::search_many(&q_refs, &d_refs, &cfg.matching)?;
    let mut out = Vec::new();
    for (t, per_db) in themes.iter().zip(all) {
        let mut hits: Vec<(usize, Hit)> = per_db
            .iter()
            .enumerate()
            .flat_map(|(d, fh)| {
                to_seconds(fh, &cfg.features, &cfg.cens)
                    .into_iter()
                    .map(move |h| (d, h))
            })
            .collect();
        hits.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
        hits.truncate(cfg.matching.peaks.top_k);
        out.extend(hits.into_iter().enumerate().map(|(i, (d, h))| ThemeHit {
            theme_id: t.id.clone(),
            recording: recordings[d].clone(),
            rank: i + 1,
            hit: h,
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(len: usize, seed: u64) -> Vec<Chroma> {
        let mut rng = crate::test_util::Rng::new(seed);
        let mut s = 0;
        (0..len)
            .map(|i| {
                if i % 15 == 0 {
                    s = rng.next_u64() >> 33;
                }
                let mut c = [0.02f32; 12];
                c[(s % 12) as usize] = 1.0;
                c[((s / 12) % 12) as usize] += 0.5;
                let n = c.iter().map(|v| v * v).sum::<f32>().sqrt();
                c.map(|v| v / n)
            })
            .collect()
    }

    #[test]
    fn relocate_finds_recent_frames_in_reference_at_their_tempo() {
        let reference = seq(6000, 17); // 2 minutes
                                       // The performer plays reference seconds 70..78 at 1.25x speed: 8 s become 6.4 s.
        let src = &reference[3500..3900];
        let recent: Vec<Chroma> = (0..320).map(|i| src[(i as f32 * 1.25) as usize]).collect();
        let hits = relocate(&recent, &reference, &SpotConfig::default()).unwrap();
        let h = hits[0];
        assert!((h.start_s - 70.0).abs() < 0.5, "{h:?}");
        assert!((h.end_s - 78.0).abs() < 0.6, "{h:?}");
        assert!((h.tempo_scale - 1.25).abs() < 0.1, "{h:?}");
    }
}
