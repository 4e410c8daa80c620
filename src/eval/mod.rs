//! Evaluation on a corpus laid out like the development corpus (`index.csv`, `pieces/`):
//! alignment metrics of its `METRICS.md` ([`metrics`]), the follower and the offline aligner
//! run over every case ([`alignment`]), cue timing ([`cues`]), theme spotting ([`themes`], with
//! the metrics of `score_themes.py` in [`theme_metrics`]), the interpretation switcher
//! ([`switch`]). An edge: it reads files and decodes audio.

pub mod alignment;
pub mod calibrate;
pub mod cues;
pub mod metrics;
pub mod switch;
pub mod theme_metrics;
pub mod themes;

pub use metrics::*;
