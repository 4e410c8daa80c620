//! Reading a score of either kind: MIDI (`.mid`, `.midi`, `.smf`, `.kar`) or MusicXML
//! (`.musicxml`, `.xml`, `.mxl`), by extension.

use std::path::Path;

use super::musicxml::{MusicXmlOptions, RepeatMode};
use super::Score;
use crate::{Error, Result};

/// How a score is read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScoreOptions {
    /// MusicXML: the order of the measures (repeats as performed by default).
    pub repeats: RepeatMode,
    /// MIDI: the length of the pickup (anacrusis) in quarter notes, so that bar numbers match
    /// the print ([`Score::set_pickup_quarters`]); None = no pickup. A MusicXML score gives
    /// its own measures: a pickup given for one is an error.
    pub pickup_quarters: Option<f64>,
    /// MusicXML: play the score at this constant tempo (quarter notes a minute) instead of its
    /// tempo marks (added in this version); None: the marks. A MIDI score keeps its own.
    pub qpm: Option<f64>,
    /// MusicXML: play every tempo mark this many times faster (added in this version); None:
    /// as marked.
    pub tempo_scale: Option<f64>,
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// True when `path` has a MusicXML extension (`.musicxml`, `.xml`, `.mxl`).
pub fn is_musicxml_path(path: &Path) -> bool {
    matches!(extension(path).as_deref(), Some("musicxml" | "xml" | "mxl"))
}

/// True when `path` names a score file by its extension, MIDI or MusicXML: the follower
/// renders it rather than decoding it.
pub fn is_score_path(path: &Path) -> bool {
    crate::score::reference::is_midi_path(path) || is_musicxml_path(path)
}

impl Score {
    /// Read the score at `path` with `options`: MusicXML for `.musicxml`/`.xml`/`.mxl`,
    /// MIDI for anything else.
    pub fn load_with(path: &Path, options: &ScoreOptions) -> Result<Score> {
        if is_musicxml_path(path) {
            if let Some(p) = options.pickup_quarters {
                return Err(Error::invalid(
                    "pickup",
                    p.to_string(),
                    format!(
                        "{} is MusicXML, whose measures give the pickup; --pickup is for MIDI \
                         scores",
                        path.display()
                    ),
                ));
            }
            return Score::load_musicxml(
                path,
                &MusicXmlOptions {
                    repeats: options.repeats,
                    qpm: options.qpm,
                    tempo_scale: options.tempo_scale,
                },
            );
        }
        let mut score = Score::load_midi(path)?;
        if let Some(p) = options.pickup_quarters {
            score.set_pickup_quarters(p)?;
        }
        Ok(score)
    }
}
