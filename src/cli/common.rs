//! Pieces shared by the subcommands: the reference to follow or align against, the follower's
//! flags (shared by `follow` and `eval`), option parsers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::align::oltw::{OltwConfig, StepPattern};
use crate::engine::{
    AlignerKind, FollowSettings, ReferenceKind, RelocateMode, TuningSetting, WrittenPitch,
};
use crate::features::FeatureConfig;
use crate::score::reference::{is_musicxml_path, Reference, ScoreRendering};
use crate::score::{RepeatMode, ScoreOptions};

/// The reference to follow or align against: a score or a recording.
#[derive(Debug, Clone, Default, Args)]
pub struct ReferenceArgs {
    /// The score: MIDI, or MusicXML (.musicxml, .xml, .mxl; repeats unfolded as performed,
    /// bars are printed measure numbers). Tempo map, bars and beats are used.
    #[arg(long, value_name = "SCORE", conflicts_with = "reference")]
    pub score: Option<PathBuf>,
    /// A reference recording of the piece (WAV, FLAC, MP3, OGG) instead of a score.
    #[arg(long, value_name = "AUDIO")]
    pub reference: Option<PathBuf>,
    /// How a score file is read.
    #[command(flatten)]
    pub reading: ScoreReadingArgs,
}

/// How a score file is read: the flags the subcommands that read a score share (`follow`,
/// `align`, `switch`, `score`).
#[derive(Debug, Clone, Default, Args)]
pub struct ScoreReadingArgs {
    /// MusicXML: play every section once (no repeat is taken; the last ending of each group).
    /// D.C., D.S., Fine and codas are still followed.
    #[arg(long)]
    pub no_repeats: bool,
    /// MIDI: the pickup (anacrusis) in quarter notes, so bars and beats match the print
    /// (bar 0 is the pickup: a one-quarter pickup in 4/4 is bar 0 beat 4).
    #[arg(long, value_name = "QUARTERS")]
    pub pickup: Option<f64>,
    /// MusicXML: the performer's tempo (quarter notes a minute), when it is known: the score
    /// is rendered at this constant tempo instead of its marks (120 without one). Without it,
    /// `follow` chooses among tempo scalings in the first seconds and `align` aligns twice,
    /// the second time at the tempo the first found.
    #[arg(long, value_name = "QPM")]
    pub tempo: Option<f64>,
}

impl ScoreReadingArgs {
    /// The options a score is loaded with, its measures in the order `repeats` gives.
    pub fn options(&self, repeats: RepeatMode) -> ScoreOptions {
        ScoreOptions {
            qpm: self.tempo,
            tempo_scale: None,
            repeats,
            pickup_quarters: self.pickup,
        }
    }
}

impl ReferenceArgs {
    /// The chosen path.
    pub fn path(&self) -> anyhow::Result<&Path> {
        match (&self.score, &self.reference) {
            (Some(p), None) | (None, Some(p)) => Ok(p),
            _ => bail!("give the piece to follow: --score SCORE.mid or --reference AUDIO"),
        }
    }

    /// A score (`--score`, or `--reference` with a score file) or a recording.
    pub fn kind(&self) -> anyhow::Result<ReferenceKind> {
        Ok(if self.score.is_some() {
            ReferenceKind::Score
        } else {
            ReferenceKind::of_path(self.path()?)
        })
    }

    /// How the score is read: `--no-repeats`, `--pickup`, and with a structure file a
    /// MusicXML score laid out as written (every measure once, in print order), for the
    /// structure file to give the order. Refuses the flags a file of another kind has no
    /// use for.
    pub fn score_options(&self, structure: bool) -> anyhow::Result<ScoreOptions> {
        let path = self.path()?;
        let score = self.kind()? == ReferenceKind::Score;
        let musicxml = score && is_musicxml_path(path);
        let ScoreReadingArgs {
            no_repeats,
            pickup,
            tempo,
        } = self.reading;
        if no_repeats && !musicxml {
            bail!(
                "--no-repeats is for MusicXML scores: {} has no repeat signs (a structure file \
                 gives the order of a MIDI score's sections)",
                path.display()
            );
        }
        if no_repeats && structure {
            bail!("--no-repeats and --structure both give the order of the measures: give one");
        }
        if let Some(p) = pickup {
            if !score || musicxml {
                bail!(
                    "--pickup {p} is for MIDI scores: {} {}",
                    path.display(),
                    if musicxml {
                        "is MusicXML, whose measures give the pickup"
                    } else {
                        "is a recording"
                    }
                );
            }
        }
        if let Some(q) = tempo {
            if !musicxml {
                bail!(
                    "--tempo {q} is for MusicXML scores: {} keeps its own tempo",
                    path.display()
                );
            }
            if !(q.is_finite() && (4.0..=1000.0).contains(&q)) {
                bail!("--tempo {q}: give quarter notes a minute, from 4 to 1000");
            }
        }
        Ok(self
            .reading
            .options(match (musicxml && structure, no_repeats) {
                (true, _) => RepeatMode::AsWritten,
                (false, true) => RepeatMode::NoRepeats,
                (false, false) => RepeatMode::Performed,
            }))
    }

    /// Load it, analysed with `features` (a score rendered with `rendering`).
    pub fn load(
        &self,
        features: &FeatureConfig,
        rendering: &ScoreRendering,
    ) -> anyhow::Result<Arc<Reference>> {
        self.load_structured(features, rendering, None)
    }

    /// Load it and lay it out in the order of the `structure` file, if one is given (bars of
    /// a MusicXML score are then printed measure numbers, each measure once in print order).
    pub fn load_structured(
        &self,
        features: &FeatureConfig,
        rendering: &ScoreRendering,
        structure: Option<&Path>,
    ) -> anyhow::Result<Arc<Reference>> {
        let path = self.path()?;
        let options = self.score_options(structure.is_some())?;
        let r = crate::audio::load::load_reference_with(
            path,
            self.kind()?,
            features,
            rendering,
            &options,
        )
        .with_context(|| format!("loading the reference {}", path.display()))?;
        let Some(structure) = structure else {
            return Ok(Arc::new(r));
        };
        let sections = r
            .read_structure(structure)
            .with_context(|| format!("reading the structure file {}", structure.display()))?;
        Ok(Arc::new(r.unfold(&sections)?))
    }
}

/// The follower's flags, the same for `follow` and `eval`; [`FollowerArgs::settings`] maps them
/// to [`FollowSettings`], which [`crate::engine::FollowConfig::try_from`] validates.
#[derive(Debug, Clone, Args)]
pub struct FollowerArgs {
    /// Which follower: soft (online soft-DTW, the default) or oltw (online time warping).
    #[arg(long, default_value = "soft")]
    pub aligner: AlignerKind,
    /// How far ahead and behind the follower looks (s of the score).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub window_s: f64,
    /// Start following at this score time (s) instead of the beginning.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub start_s: f64,
    /// Tuning of the performer in cents from A4 = 440 Hz (e.g. 10 for A = 442.5 Hz), or
    /// 'auto' to estimate it from the first seconds and keep checking it.
    #[arg(long, value_name = "CENTS|auto", value_parser = parse_tuning, allow_negative_numbers = true)]
    pub tuning: Option<TuningSetting>,
    /// Transposition of the performer in semitones up from the score (0-11), or 'auto' to
    /// detect it during the first seconds.
    #[arg(long, default_value = "auto", value_parser = parse_transpose, allow_negative_numbers = true)]
    pub transpose: TransposeArg,
    /// Re-locate after the performer jumps (skips, repeats, restarts): 'auto' (the default:
    /// against scores and recordings), 'on' or 'off'. Each jump is reported as
    /// /scorefollow/status "relocated".
    #[arg(long, default_value = "auto", value_name = "auto|on|off")]
    pub relocate: RelocateMode,
    /// The pitch a MusicXML score's transposing parts (a B-flat clarinet, a horn in F) are
    /// followed at: 'auto' (the default: sounding pitch, and written pitch alongside until
    /// those parts have played 2 s, then the one the performance matches), 'sounding' or
    /// 'written'.
    #[arg(long, default_value = "auto", value_name = "auto|sounding|written")]
    pub written_pitch: WrittenPitch,
    /// Weight of the onset term in the frame cost (tuning knob) [default: 3 for follow, 1 for
    /// align against a score, 5 against a recording].
    #[arg(long, help_heading = "Tuning knobs")]
    pub onset_weight: Option<f32>,
    /// Log compression factor of the chroma (tuning knob) [default: 100 for follow against a
    /// score, 1000 against a recording; 1000 and 10000 for align].
    #[arg(long, help_heading = "Tuning knobs")]
    pub log_compression: Option<f32>,
    /// The soft follower's tempo model: on (the reference at several tempo scalings) or off
    /// (the plain soft aligner, for comparison) (tuning knob).
    #[arg(long, default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set, help_heading = "Tuning knobs")]
    pub tempo_model: bool,
    /// Amplitude of the top voice when a piano-like score is rendered as the reference (tuning
    /// knob; 1 = as written) [default: 1.4 for follow, 1 for align].
    #[arg(long, help_heading = "Tuning knobs")]
    pub melody_gain: Option<f32>,
    /// FFT window (samples at 22 050 Hz) (tuning knob) [default: 2048].
    #[arg(long, help_heading = "Tuning knobs")]
    pub fft_window: Option<usize>,
    /// OLTW forgetting factor per frame (tuning knob; 1 = plain accumulation).
    #[arg(long, default_value_t = OltwConfig::default().memory, help_heading = "Tuning knobs")]
    pub memory: f32,
    /// Largest chroma entry below which a frame counts as a pause (tuning knob; 0 = off).
    #[arg(long, default_value_t = FollowSettings::default().pause_chroma_max, help_heading = "Tuning knobs")]
    pub pause_chroma_max: f32,
    /// Spectral flatness above which a frame counts as noise (tuning knob; 1 = off).
    #[arg(long, default_value_t = FollowSettings::default().pause_flatness, help_heading = "Tuning knobs")]
    pub pause_flatness: f32,
    /// Do not let the position flow inside held notes (tuning knob).
    #[arg(long, help_heading = "Tuning knobs")]
    pub no_flow: bool,
    /// OLTW step pattern (symmetric: Dixon; constrained: tempo 0.5x-2x) (tuning knob).
    #[arg(long, default_value = "symmetric", value_parser = parse_steps, help_heading = "Tuning knobs")]
    pub steps: StepPattern,
}

impl FollowerArgs {
    /// The settings these flags choose, against a reference of `kind`.
    pub fn settings(&self, kind: ReferenceKind) -> FollowSettings {
        FollowSettings {
            reference_kind: kind,
            aligner: self.aligner,
            window_s: self.window_s,
            oltw_steps: self.steps,
            oltw_memory: self.memory,
            tempo_model: self.tempo_model,
            transpose: self.transpose.0,
            tuning: self.tuning.unwrap_or_default(),
            start_score_s: self.start_s,
            relocate: self.relocate,
            written_pitch: self.written_pitch,
            flow_in_notes: !self.no_flow,
            pause_chroma_max: self.pause_chroma_max,
            pause_flatness: self.pause_flatness,
            onset_weight: self.onset_weight,
            log_compression: self.log_compression,
            melody_gain: self.melody_gain,
            fft_window_samples: self.fft_window,
            ..FollowSettings::default()
        }
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

/// A transposition option: None = detect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransposeArg(pub Option<usize>);

/// Parse a transposition: "auto" or semitones (negative values wrap: -1 = 11).
pub fn parse_transpose(s: &str) -> Result<TransposeArg, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(TransposeArg(None));
    }
    match s.parse::<i32>() {
        Ok(k) if (-11..=11).contains(&k) => Ok(TransposeArg(Some(k.rem_euclid(12) as usize))),
        _ => Err(format!("'{s}': give 'auto' or semitones from -11 to 11")),
    }
}

/// Parse `--tuning`: 'auto' or a number of cents.
pub fn parse_tuning(s: &str) -> Result<TuningSetting, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(TuningSetting::Track);
    }
    match s.parse::<f32>() {
        Ok(c) if c.is_finite() => Ok(TuningSetting::Fixed(c)),
        _ => Err(format!("'{s}': give 'auto' or a number of cents")),
    }
}

/// `on` / `off`.
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected 'on' or 'off', got '{s}'")),
    }
}

fn parse_steps(s: &str) -> Result<StepPattern, String> {
    match s {
        "symmetric" => Ok(StepPattern::Symmetric),
        "constrained" => Ok(StepPattern::Constrained),
        _ => Err(format!("'{s}': expected symmetric or constrained")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_option_parses_cents_and_auto() {
        assert_eq!(parse_tuning("auto"), Ok(TuningSetting::Track));
        assert_eq!(parse_tuning("AUTO"), Ok(TuningSetting::Track));
        assert_eq!(parse_tuning("-12.5"), Ok(TuningSetting::Fixed(-12.5)));
        assert!(parse_tuning("sharp").is_err());
        assert!(parse_tuning("NaN").is_err());
    }

    #[test]
    fn transpose_option_wraps_negative_semitones() {
        assert_eq!(parse_transpose("auto"), Ok(TransposeArg(None)));
        assert_eq!(parse_transpose("-1"), Ok(TransposeArg(Some(11))));
        assert_eq!(parse_transpose("2"), Ok(TransposeArg(Some(2))));
        assert!(parse_transpose("12").is_err());
    }
}
