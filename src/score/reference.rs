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
use crate::score::Score;

/// What the reference was built from.
#[derive(Clone, Debug)]
pub enum ReferenceKind {
    /// A MIDI score (bar/beat available).
    Midi(Box<Score>),
    /// An audio recording.
    Audio,
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
    /// MIDI score or audio.
    pub kind: ReferenceKind,
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

impl Reference {
    /// Build from a MIDI file or an audio file, by extension.
    pub fn load(path: &Path, cfg: &FeatureConfig) -> crate::Result<Self> {
        if is_midi_path(path) {
            Self::from_midi(path, cfg)
        } else {
            Self::from_audio(path, cfg)
        }
    }

    /// Build from a MIDI score.
    pub fn from_midi(path: &Path, cfg: &FeatureConfig) -> crate::Result<Self> {
        let score = Score::load(path)?;
        Ok(Self::from_score(score, path, cfg))
    }

    /// Build from an already parsed score.
    pub fn from_score(score: Score, path: &Path, cfg: &FeatureConfig) -> Self {
        let audio = crate::score::synth::render(&score, cfg.sample_rate_hz);
        // The synthesiser is tuned to A4 = 440 Hz exactly.
        let feats = features::extract_with_tuning(&audio, cfg, 0.0);
        Self {
            path: path.to_path_buf(),
            frames: feats.frames.into(),
            config: cfg.clone(),
            tuning_cents: 0.0,
            kind: ReferenceKind::Midi(Box::new(score)),
        }
    }

    /// Build from an audio recording.
    pub fn from_audio(path: &Path, cfg: &FeatureConfig) -> crate::Result<Self> {
        let audio = crate::audio::decode::load_mono(path, cfg.sample_rate_hz)?;
        if audio.is_empty() {
            return Err(crate::Error::Audio {
                path: path.to_path_buf(),
                reason: "no audio samples".into(),
            });
        }
        let feats = features::extract(&audio, cfg);
        Ok(Self {
            path: path.to_path_buf(),
            frames: feats.frames.into(),
            config: cfg.clone(),
            tuning_cents: feats.tuning_cents,
            kind: ReferenceKind::Audio,
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
                .map(|n| self.config.frame_at_s(n.onset_s) as u32)
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
        match &self.kind {
            ReferenceKind::Midi(s) => Some(s),
            ReferenceKind::Audio => None,
        }
    }

    /// Score time (s) of a (fractional) reference frame: the frame's centre, at least 0.
    pub fn score_time_s(&self, ref_frame: f64) -> f64 {
        let lag = 0.5 * self.config.window_samples as f64 / self.config.sample_rate_hz as f64;
        ((ref_frame + 1.0) * self.config.hop_s() - lag).max(0.0)
    }

    /// Reference frame whose centre is at score time `t_s`.
    pub fn frame_at_score_s(&self, t_s: f64) -> usize {
        self.config
            .frame_at_s(t_s)
            .min(self.frames.len().saturating_sub(1))
    }

    /// Duration of the reference (s).
    pub fn duration_s(&self) -> f64 {
        self.frames.len() as f64 * self.config.hop_s()
    }

    /// (beat, bar, beat in bar) at score time `t_s` for MIDI references; (NaN, 0, NaN) else.
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
