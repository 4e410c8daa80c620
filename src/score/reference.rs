//! The reference a performance is followed against: feature frames plus the maps from a
//! reference frame to score seconds, beats and bars.
//!
//! A MIDI score is rendered by the built-in synthesiser ([`crate::score::synth`]) and analysed
//! by the same chroma extractor as the performance, so both sides go through identical
//! windowing and filterbank smearing. A recording is decoded, resampled to the analysis rate and
//! analysed with its estimated tuning.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::features::{self, FeatureConfig, FeatureFrame};
use crate::score::structure::{self, Section, Unfolding};
use crate::score::Score;

/// What the reference was built from.
#[derive(Clone, Debug)]
pub enum ReferenceOrigin {
    /// A score (bar/beat available).
    Score(Box<Score>),
    /// An audio recording.
    Recording,
}

/// How a score is rendered into the reference's audio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRendering {
    /// Amplitude (x) of the top voice when a keyboard-like score is rendered
    /// ([`crate::score::voicing`]); 1 renders every note as written.
    pub melody_gain: f32,
}

impl Default for ScoreRendering {
    /// The follower's rendering: the top voice of a keyboard-like score
    /// [`crate::score::voicing::MELODY_GAIN`] times louder.
    fn default() -> Self {
        Self {
            melody_gain: crate::score::voicing::MELODY_GAIN,
        }
    }
}

/// The velocity every note of a printed score (MusicXML) is rendered at in the reference,
/// whatever its dynamics marks say (mf is 80). The marks are read (`score midi` writes
/// them), but a reference rendered with them followed worse: a pp accompaniment under a p
/// solo shifts the balance between the parts, and the chroma's log compression turns the
/// level into a change of shape, while the performer's dynamics are their own. Measured on
/// the development corpus (`eval --score-format musicxml`, each piece's MusicXML at the
/// tempo of its score.mid, 21 cases): within 300 ms 93.6 % with the marks, 95.1 % at one
/// level (score.mid, whose notes all have velocity 78: 95.4 %); the Schubert impromptu 84.0
/// -> 96.0 %, the Weber concertino 68.4 -> 85.0 %, no case more than 1.7 points worse.
pub const PRINTED_VELOCITY: u8 = 80;

/// `score` with the notes of its transposing parts (a printed score's parts with a
/// `<transpose>`) moved back to written pitch; None when no part transposes by other than
/// whole octaves (an octave changes no pitch class: both renderings would match alike). A
/// part is moved by its transposition at its end (a part that changes instrument midway, a
/// clarinet in A then in B-flat, is moved by the last).
pub fn written_pitch_score(score: &Score) -> Option<Score> {
    let printed = score.printed.as_ref()?;
    let shifts: Vec<i32> = printed
        .parts
        .iter()
        .map(|p| p.transpose_semitones)
        .collect();
    if shifts.iter().all(|&t| t.rem_euclid(12) == 0) {
        return None;
    }
    let mut written = score.clone();
    for n in &mut written.notes {
        let t = shifts.get(n.track).copied().unwrap_or(0);
        n.pitch = (i32::from(n.pitch) - t).clamp(0, 127) as u8;
    }
    Some(written)
}

/// Cosine distance between the chroma of a score's two renderings (sounding and written pitch,
/// [`Reference::written_pitch`]) above which a frame tells them apart.
pub const WRITTEN_PITCH_DIFFER: f32 = 0.05;

/// Frames that tell a score's two renderings apart ([`Reference::written_pitch_differs_at`])
/// the comparison needs before it decides (2 s).
pub const WRITTEN_PITCH_MIN_FRAMES: u32 = 100;

/// Frames after which the comparison decides on a smaller difference (10 s).
pub const WRITTEN_PITCH_ENOUGH_FRAMES: u32 = 500;

/// Which rendering of a score with transposing parts a performance plays, by the mean local
/// match (cosine distance between the performance's chroma and each rendering's, over the
/// frames that tell them apart) at sounding and at written pitch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PitchVerdict {
    /// Sounding pitch (as the score says): it matches at least as well.
    Sounding,
    /// Written pitch: it matches clearly better.
    Written,
    /// Not yet clear: written pitch matches a little better.
    Undecided,
}

/// The verdict after `frames` frames that tell the renderings apart. From
/// [`WRITTEN_PITCH_MIN_FRAMES`] on, written pitch wins when its mismatch is under 0.8 of
/// sounding pitch's, sounding pitch when it matches at least as well; from
/// [`WRITTEN_PITCH_ENOUGH_FRAMES`] on, written pitch wins under 0.9 of it, else sounding pitch.
/// A part played a tone away from a rendering mismatches it in every note it plays: Weber's
/// clarinet at written pitch 0.19 against 0.66; the bundled chorale with its alto (one voice of
/// four) marked as a B-flat instrument but sung as written 0.09 against 0.14, and with the alto
/// properly transposed 0.15 against 0.06 the other way.
pub fn written_pitch_verdict(sounding_fit: f64, written_fit: f64, frames: u32) -> PitchVerdict {
    if frames < WRITTEN_PITCH_MIN_FRAMES || !(sounding_fit.is_finite() && written_fit.is_finite()) {
        return PitchVerdict::Undecided;
    }
    if written_fit < 0.8 * sounding_fit {
        PitchVerdict::Written
    } else if written_fit >= sounding_fit {
        PitchVerdict::Sounding
    } else if frames >= WRITTEN_PITCH_ENOUGH_FRAMES {
        if written_fit < 0.9 * sounding_fit {
            PitchVerdict::Written
        } else {
            PitchVerdict::Sounding
        }
    } else {
        PitchVerdict::Undecided
    }
}

/// Reference features and time maps.
#[derive(Clone, Debug)]
pub struct Reference {
    /// The file it came from.
    pub path: PathBuf,
    /// Feature frames at the analysis frame rate.
    pub frames: Arc<[FeatureFrame]>,
    /// The extractor configuration used.
    pub config: FeatureConfig,
    /// Tuning used for the reference features (cents).
    pub tuning_cents: f32,
    /// A score or a recording.
    pub origin: ReferenceOrigin,
    /// When the reference is unfolded along a structure file ([`Reference::unfold`]): the map
    /// from its frames back to the score's.
    pub unfolding: Option<Arc<Unfolding>>,
    /// A printed score with transposing parts (`<transpose>`: a B-flat clarinet, a horn in F)
    /// is rendered at sounding pitch; this is the same score with those parts at written
    /// pitch, for a performance (or a file exported from a concert-pitch view) that plays
    /// them as written. The follower listens to both at the start
    /// ([`crate::engine::Follower`]) and keeps the one that matches clearly better.
    pub written_pitch: Option<Arc<Reference>>,
}

/// A position in the score's own terms ([`Reference::score_position`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScorePosition<'a> {
    /// Score time (s of the score's timeline, as written when a structure file unfolds it).
    pub time_s: f64,
    /// Quarter-note beats from the start of the score (the unfolded score for MusicXML);
    /// NaN against a recording.
    pub beat: f64,
    /// Bar: the printed measure number of a MusicXML score (0 for a pickup numbered 0; "4a"
    /// is bar 4), a MIDI score's bar counted from 1 (0 for a pickup given with
    /// `--pickup`); 0 against a recording.
    pub bar: i32,
    /// Beat within the bar, 1-based, in units of the time signature's denominator; NaN
    /// against a recording.
    pub beat_in_bar: f64,
    /// Pass through this bar, 1-based: the second time through a repeat is 2. With a
    /// structure file, the how-many-th time its sections play this place; else 1 for MIDI
    /// scores and recordings.
    pub pass: u32,
    /// Page of the printed score (1-based); 0 when the score has no layout (MIDI, recordings).
    pub page: u32,
    /// System on that page (1-based); 0 without a layout.
    pub system: u32,
    /// The printed measure label ("12", "4a") of a MusicXML score; None otherwise.
    pub label: Option<&'a str>,
}

impl ScorePosition<'_> {
    /// Write the measure's label as the outputs report it: the printed label of a MusicXML
    /// score, a MIDI score's bar number (it stands for its label), nothing against a
    /// recording (whose beat is NaN). Allocates nothing of its own.
    pub fn write_label(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        match self.label {
            Some(text) => out.write_str(text),
            None if self.beat.is_finite() => write!(out, "{}", self.bar),
            None => Ok(()),
        }
    }
}

/// True when `path` has a MIDI extension.
pub fn is_midi_path(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("mid" | "midi" | "smf" | "kar")
    )
}

pub use crate::score::load::{is_musicxml_path, is_score_path};

impl Reference {
    /// Build from a score file (see [`is_score_path`]), rendered with `rendering`.
    pub fn from_score_file(
        path: &Path,
        cfg: &FeatureConfig,
        rendering: &ScoreRendering,
    ) -> crate::Result<Self> {
        let score = Score::load(path)?;
        Ok(Self::from_score(score, path, cfg, rendering))
    }

    /// Build from an already parsed score.
    pub fn from_score(
        score: Score,
        path: &Path,
        cfg: &FeatureConfig,
        rendering: &ScoreRendering,
    ) -> Self {
        let written = written_pitch_score(&score)
            .map(|w| Arc::new(Self::render_score(w, path, cfg, rendering)));
        Self {
            written_pitch: written,
            ..Self::render_score(score, path, cfg, rendering)
        }
    }

    /// The score rendered and analysed, as it is (no written-pitch variant).
    fn render_score(
        score: Score,
        path: &Path,
        cfg: &FeatureConfig,
        rendering: &ScoreRendering,
    ) -> Self {
        let mut gains = crate::score::voicing::reference_note_gains(&score, rendering.melody_gain);
        if score.printed.is_some() {
            // A printed score's dynamics marks are rendered at one level (see
            // `PRINTED_VELOCITY`): each note's gain undoes its velocity.
            for (g, n) in gains.iter_mut().zip(&score.notes) {
                *g *= f32::from(PRINTED_VELOCITY) / f32::from(n.velocity.max(1));
            }
        }
        let audio = crate::score::synth::render_voiced(
            &score,
            cfg.sample_rate_hz,
            &crate::score::synth::SynthOptions::default(),
            |i| gains[i],
        );
        // The synthesiser is tuned to A4 = 440 Hz exactly.
        let feats = features::extract_with_tuning(&audio, cfg, 0.0);
        Self {
            path: path.to_path_buf(),
            frames: feats.frames.into(),
            config: cfg.clone(),
            tuning_cents: 0.0,
            origin: ReferenceOrigin::Score(Box::new(score)),
            unfolding: None,
            written_pitch: None,
        }
    }

    /// Build from a recording's samples (mono, at `cfg.sample_rate_hz`, decoded by the caller:
    /// [`crate::audio::load`]); `path` names it in messages.
    pub fn from_samples(samples: &[f32], path: &Path, cfg: &FeatureConfig) -> crate::Result<Self> {
        if samples.is_empty() {
            return Err(crate::Error::Audio {
                path: path.to_path_buf(),
                reason: "no audio samples".into(),
            });
        }
        let feats = features::extract(samples, cfg);
        Ok(Self {
            path: path.to_path_buf(),
            frames: feats.frames.into(),
            config: cfg.clone(),
            tuning_cents: feats.tuning_cents,
            origin: ReferenceOrigin::Recording,
            unfolding: None,
            written_pitch: None,
        })
    }

    /// Reference frames at which notes start, sorted: the score's note onsets for MIDI, peaks
    /// of the onset strength for audio.
    pub fn onset_frames(&self) -> Vec<u32> {
        let mut out: Vec<u32> = match self.score() {
            Some(score) => score
                .notes
                .iter()
                .filter(|n| !n.is_drum)
                .map(|n| self.config.frame_at_s(n.onset_s))
                .flat_map(|f| -> Vec<u32> {
                    match &self.unfolding {
                        Some(u) => u.to_unfolded(f).map(|g| g as u32).collect(),
                        None => vec![f as u32],
                    }
                })
                .collect(),
            None => {
                let strength: Vec<f32> = self.frames.iter().map(|f| f.onset.iter().sum()).collect();
                (0..strength.len())
                    .filter(|&k| {
                        let lo = k.saturating_sub(3);
                        let hi = (k + 4).min(strength.len());
                        strength[k] > 0.3 && strength[lo..hi].iter().all(|&x| x <= strength[k])
                    })
                    .map(|k| k as u32)
                    .collect()
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// True when the written-pitch rendering ([`Reference::written_pitch`]) sounds other than
    /// this one at reference frame `j`: the transposing parts play there.
    pub fn written_pitch_differs_at(&self, j: usize) -> bool {
        let Some(written) = self.written_pitch.as_deref() else {
            return false;
        };
        match (self.frames.get(j), written.frames.get(j)) {
            (Some(a), Some(b)) => {
                crate::align::cost::cosine_distance(&a.chroma, &b.chroma) > WRITTEN_PITCH_DIFFER
            }
            _ => false,
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The score, for MIDI references.
    pub fn score(&self) -> Option<&Score> {
        match &self.origin {
            ReferenceOrigin::Score(s) => Some(s),
            ReferenceOrigin::Recording => None,
        }
    }

    /// Score time (s) of a (fractional) reference frame: the frame's centre, at least 0 (in
    /// the score as written when the reference is unfolded).
    pub fn score_time_s(&self, ref_frame: f64) -> f64 {
        let frame = match &self.unfolding {
            Some(u) => u.to_score(ref_frame),
            None => ref_frame,
        };
        let lag = 0.5 * self.config.window_samples as f64 / self.config.sample_rate_hz as f64;
        ((frame + 1.0) * self.config.hop_s() - lag).max(0.0)
    }

    /// Reference frame whose centre is at score time `t_s` (its first occurrence when the
    /// reference is unfolded).
    pub fn frame_at_score_s(&self, t_s: f64) -> usize {
        let frame = self.config.frame_at_s(t_s);
        let frame = match &self.unfolding {
            Some(u) => u.to_unfolded(frame).next().unwrap_or(0),
            None => frame,
        };
        frame.min(self.frames.len().saturating_sub(1))
    }

    /// Fractional reference frame at score time `t_s` (the inverse of
    /// [`Reference::score_time_s`]; its first occurrence when the reference is unfolded).
    pub fn ref_frame_at_score_s(&self, t_s: f64) -> f64 {
        let lag = 0.5 * self.config.window_samples as f64 / self.config.sample_rate_hz as f64;
        let frame = ((t_s + lag) / self.config.hop_s() - 1.0).max(0.0);
        match &self.unfolding {
            Some(u) => u
                .to_unfolded(frame.floor() as usize)
                .next()
                .map_or(frame, |k| k as f64 + frame.fract()),
            None => frame,
        }
    }

    /// Read a structure file (see [`crate::score::structure`]) against this reference.
    pub fn read_structure(&self, path: &Path) -> crate::Result<Vec<Section>> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
        let duration_s = self.duration_s();
        let bar_to_s = |bar: i32, end: bool| -> Option<f64> {
            let score = self.score()?;
            if bar < 0 || bar > score.bar_count() {
                return None;
            }
            if !end {
                return score.s_at_bar_beat(bar, 1.0);
            }
            if bar == score.bar_count() {
                return Some(duration_s);
            }
            score.s_at_bar_beat(bar + 1, 1.0)
        };
        structure::parse(path, &text, duration_s, bar_to_s)
    }

    /// This reference laid out in the order of `sections` (written repeats, cuts): the
    /// follower then follows the sections in that order, while every position it reports is
    /// a time in the score as written. Fails on an already unfolded reference.
    pub fn unfold(&self, sections: &[Section]) -> crate::Result<Reference> {
        if self.unfolding.is_some() {
            return Err(crate::Error::invalid(
                "structure",
                self.path.display().to_string(),
                "the reference is already unfolded",
            ));
        }
        let n = self.frames.len();
        let ranges: Vec<(usize, usize)> = sections
            .iter()
            .map(|s| {
                (
                    self.config.frame_at_s(s.start_s).min(n),
                    self.config.frame_at_s(s.end_s).min(n),
                )
            })
            .collect();
        let unfolding = Unfolding::new(&ranges);
        if unfolding.is_empty() {
            return Err(crate::Error::invalid(
                "structure",
                self.path.display().to_string(),
                "its sections contain no frame of the reference",
            ));
        }
        let frames: Vec<FeatureFrame> = unfolding
            .segments
            .iter()
            .flat_map(|&(_, s, l)| self.frames[s..s + l].iter().copied())
            .collect();
        let written_pitch = match &self.written_pitch {
            Some(w) => Some(Arc::new(w.unfold(sections)?)),
            None => None,
        };
        Ok(Reference {
            frames: frames.into(),
            unfolding: Some(Arc::new(unfolding)),
            written_pitch,
            ..self.clone()
        })
    }

    /// Duration of the reference (s).
    pub fn duration_s(&self) -> f64 {
        self.frames.len() as f64 * self.config.hop_s()
    }

    /// The position at (fractional, unfolded) reference frame `ref_frame` in the score's own
    /// terms: score time, beats, the printed bar and beat, the pass, page, system and label
    /// (see [`ScorePosition`]). Allocates nothing: the follower calls it every frame.
    pub fn score_position(&self, ref_frame: f64) -> ScorePosition<'_> {
        let time_s = self.score_time_s(ref_frame);
        let structure_pass = self
            .unfolding
            .as_deref()
            .map_or(1, |u| u.pass_at(ref_frame));
        // Off the printed page: no page, system or label.
        let unprinted = |beat: f64, bar: i32, beat_in_bar: f64| ScorePosition {
            time_s,
            beat,
            bar,
            beat_in_bar,
            pass: structure_pass,
            page: 0,
            system: 0,
            label: None,
        };
        let Some(score) = self.score() else {
            return unprinted(f64::NAN, 0, f64::NAN);
        };
        let beat = score.beat_at_s(time_s);
        match score.printed.as_deref() {
            Some(layout) => match layout.position_at_beat(beat) {
                Some(p) => ScorePosition {
                    time_s,
                    beat,
                    bar: p.bar,
                    beat_in_bar: p.beat,
                    // A structure file lays the score out as written: its passes are the
                    // file's; otherwise the unfolded score's own.
                    pass: if self.unfolding.is_some() {
                        structure_pass
                    } else {
                        p.pass
                    },
                    page: p.page,
                    system: p.system,
                    label: Some(p.label),
                },
                None => unprinted(beat, 0, f64::NAN),
            },
            None => {
                let bb = score.meter_map.bar_beat_at_beat(beat);
                unprinted(beat, bb.bar, bb.beat)
            }
        }
    }

    /// (beat, bar, beat in bar) at score time `t_s` for score references (a MusicXML score's
    /// printed measure numbers); (NaN, 0, NaN) else.
    pub fn musical_position(&self, t_s: f64) -> (f64, i32, f64) {
        match self.score() {
            Some(s) => {
                let bb = s.bar_beat_at_s(t_s);
                (s.beat_at_s(t_s), bb.bar, bb.beat)
            }
            None => (f64::NAN, 0, f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict's rule spelt out on a grid of cases.
    #[test]
    fn the_written_pitch_verdict_waits_for_enough_evidence() {
        use PitchVerdict::*;
        let cases = [
            // (sounding, written, frames, verdict)
            (0.66, 0.19, 99, Undecided),
            (0.66, 0.19, 100, Written),
            (0.06, 0.15, 100, Sounding),
            (0.10, 0.10, 100, Sounding),
            (0.10, 0.085, 100, Undecided),
            (0.10, 0.085, 499, Undecided),
            (0.10, 0.085, 500, Written),
            (0.10, 0.095, 500, Sounding),
            (f64::NAN, 0.1, 600, Undecided),
        ];
        for (s, w, n, want) in cases {
            assert_eq!(written_pitch_verdict(s, w, n), want, "{s} {w} {n}");
        }
    }
}
