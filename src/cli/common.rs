//! Pieces shared by the subcommands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::features::FeatureConfig;
use crate::score::reference::{is_score_path, Reference};

/// The reference to follow or align against: a MIDI score or a recording.
#[derive(Debug, Clone, Args)]
pub struct ReferenceArgs {
    /// The score: MIDI, or MusicXML (.musicxml, .xml, .mxl; repeats unfolded as performed,
    /// bars are printed measure numbers). Tempo map, bars and beats are used.
    #[arg(long, value_name = "SCORE", conflicts_with = "reference")]
    pub score: Option<PathBuf>,
    /// A reference recording of the piece (WAV, FLAC, MP3, OGG) instead of a score.
    #[arg(long, value_name = "AUDIO")]
    pub reference: Option<PathBuf>,
}

impl ReferenceArgs {
    /// The chosen path.
    pub fn path(&self) -> anyhow::Result<&Path> {
        match (&self.score, &self.reference) {
            (Some(p), None) | (None, Some(p)) => Ok(p),
            _ => bail!("give the piece to follow: --score SCORE.mid or --reference AUDIO"),
        }
    }

    /// Whether the piece is a recording (`--reference` with an audio file), not a score.
    pub fn is_recording(&self) -> anyhow::Result<bool> {
        Ok(self.score.is_none() && !is_score_path(self.path()?))
    }

    /// Load it (MIDI by extension for --score; --reference may also be a MIDI file).
    pub fn load(&self, cfg: &FeatureConfig) -> anyhow::Result<Arc<Reference>> {
        let path = self.path()?;
        let r = if self.score.is_some() {
            Reference::from_midi(path, cfg)
        } else {
            Reference::load(path, cfg)
        };
        let r = r.with_context(|| format!("loading the reference {}", path.display()))?;
        if r.is_empty() {
            bail!("the reference {} has no audio frames", path.display());
        }
        Ok(Arc::new(r))
    }
}

/// Parse a speed: a positive factor or "max".
pub fn parse_speed(s: &str) -> Result<crate::audio::replay::Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(crate::audio::replay::Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(crate::audio::replay::Speed::Factor(x)),
        _ => Err(format!(
            "'{s}' is not a speed: give a positive factor (1.0 = real time) or 'max'"
        )),
    }
}
