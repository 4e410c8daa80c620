//! A tempo model for the online soft aligner: the reference is kept at several time scalings
//! (as the audio matcher's tempo scalings, Müller/Kurth/Clausen 2005), and the aligner runs on
//! the one nearest the performer's tempo, so the performer's path is close to the diagonal.
//!
//! Why: Dixon's symmetric step pattern charges every reference frame crossed, so a path at slope
//! `r` (reference frames per performance frame) pays about `1 + r` local costs per frame and
//! the diagonal is the cheapest way through any passage whose frames all match about equally
//! well. In a uniform texture (an arpeggiated harmony held for half a bar) a performer playing
//! 1.5x the score's tempo is then followed at slope 1, falling behind until the harmony
//! changes: measured on the development corpus's 1.5x case, at 7 of its 64 beats the raw match
//! was a whole beat (0.89 s) or more behind, 6 of them with a confidence of 0.9 or more. On a reference played
//! 1.5x faster the same performer is on the diagonal again, and the step pattern can then
//! prefer the diagonal outright (diagonal weight 1, [`TempoAdaptive::soft_config`]): that is
//! the tempo prior.
//!
//! [`TempoAdaptive`] fits the performer's tempo from its own positions (score frames per
//! performance frame over the last seconds, both halves of the history agreeing) and, when it
//! is well away from the scaling in use, hands the alignment over to the nearest scaling with
//! [`SoftOnline::adopt`]: the column, re-sampled, not a restart. Positions are reported in
//! frames of the unscaled reference.

use std::sync::Arc;

use super::cost::TransposedReference;
use super::soft_online::{SoftOnline, SoftOnlineConfig};
use super::{AlignStep, OnlineAligner};
use crate::features::{Chroma, FeatureFrame, N_CHROMA};

/// The reference at time scale `score_frames_per_frame` (how many frames of `frames` one
/// frame of the result spans; above 1 the piece is faster). Frame `k` of the result covers
/// `[k·s, (k+1)·s)` of the original: its chroma is the overlap-weighted sum of the chroma
/// there, L2-normalised again; its onset vector the element-wise maximum there (an onset
/// trace is a decaying peak: a mean would blunt the peak a performance frame shows at the same
/// note); its energy and flatness the overlap-weighted means. A scale of 1 returns the frames
/// unchanged.
pub fn rescale_frames(frames: &[FeatureFrame], score_frames_per_frame: f64) -> Vec<FeatureFrame> {
    let s = score_frames_per_frame;
    if s == 1.0 || frames.is_empty() || !(s.is_finite() && s > 0.0) {
        return frames.to_vec();
    }
    let n = frames.len();
    let out_len = ((n as f64 / s).ceil() as usize).max(1);
    let mut out = Vec::with_capacity(out_len);
    for k in 0..out_len {
        let (a, b) = (k as f64 * s, ((k + 1) as f64 * s).min(n as f64));
        let mut chroma = [0.0f64; N_CHROMA];
        let mut onset = [0.0f64; N_CHROMA];
        let mut attack = [0.0f64; N_CHROMA];
        let (mut energy, mut flatness, mut total) = (0.0f64, 0.0f64, 0.0f64);
        let first = (a.floor() as usize).min(n - 1);
        let mut j = first;
        while j < n && (j as f64) < b {
            let overlap = ((j + 1) as f64).min(b) - (j as f64).max(a);
            if overlap > 0.0 {
                let f = &frames[j];
                for c in 0..N_CHROMA {
                    chroma[c] += overlap * f64::from(f.chroma[c]);
                    onset[c] = onset[c].max(f64::from(f.onset[c]));
                    attack[c] = attack[c].max(f64::from(f.attack[c]));
                }
                energy += overlap * f64::from(f.energy);
                flatness += overlap * f64::from(f.flatness);
                total += overlap;
            }
            j += 1;
        }
        if total <= 0.0 {
            out.push(frames[first]);
            continue;
        }
        out.push(FeatureFrame {
            chroma: normalised(&chroma).unwrap_or(frames[first].chroma),
            onset: onset.map(|x| x as f32),
            energy: (energy / total) as f32,
            flatness: (flatness / total) as f32,
            attack: attack.map(|x| x as f32),
        });
    }
    out
}

/// `v / |v|`, or None for a (near) zero vector.
fn normalised(v: &[f64; N_CHROMA]) -> Option<Chroma> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    (norm > 1e-12).then(|| v.map(|x| (x / norm) as f32))
}

/// The reference at each time scale, built once per follower and shared by its aligners.
#[derive(Debug)]
pub struct TempoScales {
    /// (score frames per frame, the reference at that scale), in increasing scale.
    versions: Vec<(f64, Arc<TransposedReference>)>,
    /// Index of scale 1.
    unit: usize,
}

impl TempoScales {
    /// Steps per octave of tempo of [`TempoScales::default_scales`]: 6 (12 % apart), so any
    /// tempo from 0.5x to 2x is within 6 % of a scale. Measured on the development corpus
    /// (`eval --mode follow`, 15 cases, within 50 / 300 ms): 6 steps 75.6 / 95.9 %, 4 steps
    /// 75.3 / 95.6 %, 3 steps 74.9 / 95.6 % (the 0.6x case 98.4, 97.1, 97.6 %).
    pub const STEPS_PER_OCTAVE: i32 = 6;

    /// The default scales: 2^(k/6) for k = -6..=6, 0.5x to 2x the score's tempo. Memory: the
    /// thirteen feature-major copies hold 14.3x the reference's frames, 96 bytes each (41 MB
    /// for 10 minutes of reference at 50 frames/s).
    pub fn default_scales() -> Vec<f64> {
        let n = Self::STEPS_PER_OCTAVE;
        (-n..=n)
            .map(|k| 2f64.powf(f64::from(k) / f64::from(n)))
            .collect()
    }

    /// The reference `frames` (its feature-major form `unit`, shared) at each of `scales`
    /// (score frames per frame; 1 is added when missing, non-positive ones are dropped).
    pub fn new(frames: &[FeatureFrame], unit: Arc<TransposedReference>, scales: &[f64]) -> Self {
        let mut s: Vec<f64> = scales
            .iter()
            .copied()
            .filter(|s| s.is_finite() && *s > 0.0)
            .collect();
        s.push(1.0);
        s.sort_by(f64::total_cmp);
        s.dedup();
        let versions: Vec<(f64, Arc<TransposedReference>)> = s
            .iter()
            .map(|&scale| {
                let t = if scale == 1.0 {
                    unit.clone()
                } else {
                    Arc::new(TransposedReference::new(&rescale_frames(frames, scale)))
                };
                (scale, t)
            })
            .collect();
        let unit = versions.iter().position(|v| v.0 == 1.0).unwrap_or(0);
        Self { versions, unit }
    }
}

/// Parameters of [`TempoAdaptive`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TempoAdaptiveConfig {
    /// Performance frames of positions the tempo is fitted over (500 = 10 s at 50 frames/s).
    pub history_frames: usize,
    /// Frames seen (since the start or the last reset) before the scale may change. 250 (5 s):
    /// measured on the development corpus (15 cases within 300 ms, and the 1.5x-tempo case),
    /// 100, 150 and 200 frames gave 95.8, 95.9 and 95.9 % (89.1, 89.1 and 92.2 %), 250 gives
    /// 96.1 % (92.2 %): a fit over a shorter history moves on noise.
    pub min_frames: usize,
    /// How far (natural log of the ratio) the fitted tempo must be from the scale in use
    /// before the aligner moves to the scale nearest that tempo. 0.25 (28 %): measured on the
    /// development corpus, 0.14 switched back and forth through the tempo changes of a
    /// synthetic warp and cost it 6 points within 300 ms (89.1 -> 83.4 % with 3 steps per
    /// octave); 0.2, 0.25 and 0.3 gave 95.8, 95.9 and 95.9 % on the 15 cases.
    pub switch_log_margin: f64,
    /// Performance frames of a start-up trial (0: none): from the start, every scale's
    /// aligner is fed each frame and the one with the lowest path cost is followed; after
    /// these frames the best goes on alone. For a printed score, whose tempo mark is not the
    /// performer's (see [`TempoAdaptiveConfig::for_printed_score`]).
    pub startup_frames: usize,
}

impl TempoAdaptiveConfig {
    /// For a printed score (MusicXML): its tempo mark is a guess (120 quarter notes a minute
    /// when the file has none), and performers of the development corpus play at 0.3x to 1.8x
    /// it, so the scale is chosen from the first seconds by the start-up trial.
    pub fn for_printed_score() -> Self {
        Self {
            startup_frames: STARTUP_FRAMES,
            ..Self::default()
        }
    }

    /// The configuration against a reference *recording* (`recording`) or a score: see
    /// [`TempoAdaptiveConfig::for_recording`].
    pub fn for_reference(recording: bool) -> Self {
        if recording {
            Self::for_recording()
        } else {
            Self::default()
        }
    }

    /// Against a reference recording the scale follows the performer more closely (switch
    /// margin 0.1, 11 %, instead of 0.25): the aligner's step penalty
    /// ([`TempoAdaptive::soft_config_for_recording`]) holds it near the scale's tempo, so the
    /// scale must not stay 20 % off while a singer takes a passage slower than the reference
    /// did. Measured with that penalty on the dev corpus against `reference.flac`
    /// (`eval --mode follow --against audio`, 25 target cases pooled, within 50 / 100 / 300
    /// ms; in brackets the real-recording pair within 300 ms): margin 0.25 63.1 / 78.5 / 94.8 %
    /// (75.0, 83.9), 0.15 62.3 / 78.7 / 95.1 % (78.6, 83.9), 0.1 63.8 / 79.6 / 95.2 % (83.9,
    /// 83.9), 0.06 62.9 / 79.3 / 95.2 % (80.4, 83.9).
    pub fn for_recording() -> Self {
        Self {
            switch_log_margin: 0.1,
            ..Self::default()
        }
    }
}

impl Default for TempoAdaptiveConfig {
    fn default() -> Self {
        Self {
            history_frames: 500,
            min_frames: 250,
            switch_log_margin: 0.25,
            startup_frames: 0,
        }
    }
}

/// Frames of a printed score's start-up trial ([`TempoAdaptiveConfig::startup_frames`]): 250
/// (5 s), as long as the tempo fit waits ([`TempoAdaptiveConfig::min_frames`]). Measured on the
/// development corpus (`eval --mode follow --score-format musicxml`, 32 cases, mean over cases
/// within 100 / 300 ms): without the trial 69.5 / 83.0 %, with it 71.2 / 85.1 % (the Chopin
/// skip case 53.6 -> 91.8 % within 300 ms, Schubert at 1.5x 79.7 -> 87.5, the chorale BWV
/// 66.6 82.6 -> 91.3; the worst loss the Chopin etude with noise, 59.8 -> 55.3 % within 100
/// ms). Scales below 0.5x (to 0.35x) as well measured the same (85.2 %) at 7.5x the memory.
/// Costing 13 aligners for those seconds (within a frame's budget).
pub const STARTUP_FRAMES: usize = 250;

/// Frames of the start-up trial before its best scale is followed (earlier, scale 1).
const STARTUP_SETTLE_FRAMES: usize = 50;

/// Frames between tempo fits (a pass over the history, about 2 µs).
const REFIT_FRAMES: usize = 16;

/// The online soft aligner with a tempo model: one [`SoftOnline`] per scale of a
/// [`TempoScales`], the one nearest the performer's tempo stepping (see the module doc).
/// Allocates in [`TempoAdaptive::new`] only.
pub struct TempoAdaptive {
    scales: Arc<TempoScales>,
    aligners: Vec<SoftOnline>,
    active: usize,
    cfg: TempoAdaptiveConfig,
    /// The last reported positions (unscaled reference frames), a ring.
    recent: Vec<f64>,
    frames_seen: usize,
    switches: usize,
    /// In the start-up trial: every scale is stepped.
    trial: bool,
    /// Each scale's last step in the trial.
    trial_steps: Vec<AlignStep>,
}

impl TempoAdaptive {
    /// An aligner at the start of the reference, on scale 1, with `soft` for every scale.
    pub fn new(scales: Arc<TempoScales>, soft: SoftOnlineConfig, cfg: TempoAdaptiveConfig) -> Self {
        let aligners = scales
            .versions
            .iter()
            .map(|(_, t)| SoftOnline::from_transposed(t.clone(), soft))
            .collect();
        let n_scales = scales.versions.len();
        Self {
            active: scales.unit,
            scales,
            aligners,
            cfg,
            recent: vec![0.0; cfg.history_frames.max(4)],
            frames_seen: 0,
            switches: 0,
            trial: cfg.startup_frames > 0,
            trial_steps: vec![
                AlignStep {
                    ref_frame: 0.0,
                    confidence: 0.0,
                    spread_frames: 0.0,
                    cost: f32::INFINITY,
                };
                n_scales
            ],
        }
    }

    /// The trial's scale with the lowest path cost.
    fn trial_best(&self) -> usize {
        let mut best = self.active;
        for (k, st) in self.trial_steps.iter().enumerate() {
            if st.cost < self.trial_steps[best].cost {
                best = k;
            }
        }
        best
    }

    /// `base` with the step pattern and corrections this aligner is tuned for: diagonal weight 1,
    /// length correction 0.75, no tempo tilt. On a reference scaled to the performer's tempo
    /// the performer's path is near the diagonal, so the diagonal can be preferred (weight 1
    /// instead of Dixon's 2: a stall followed by a jump then costs more than moving on), which
    /// is the tempo prior that carries the position through passages whose frames all match
    /// alike; the tilt never engages here (the residual tempo is inside its dead zone).
    /// Measured on the development corpus (`eval --mode follow`, 15 cases, within 50 / 300 ms):
    /// diagonal weight 1 with length correction 0.75 75.8 / 96.1 %; 1 and 0.5 75.4 / 94.8; 1 and
    /// 1.0 72.4 / 94.1; 1.5 and 0.75 73.7 / 95.1; 2 and 0.75 72.1 / 93.6; 2 and 0.5 (the plain
    /// aligner's defaults) 72.8 / 93.5 % (the alternatives measured before the length
    /// correction ignored positive costs, which moved one event of one case).
    pub fn soft_config(base: SoftOnlineConfig) -> SoftOnlineConfig {
        SoftOnlineConfig {
            diagonal_weight: 1.0,
            length_correction: 0.75,
            tempo_tilt: 0.0,
            ..base
        }
    }

    /// [`TempoAdaptive::soft_config`] for a reference *recording* (`recording`) or a score.
    pub fn soft_config_for(base: SoftOnlineConfig, recording: bool) -> SoftOnlineConfig {
        if recording {
            Self::soft_config_for_recording(base)
        } else {
            Self::soft_config(base)
        }
    }

    /// [`TempoAdaptive::soft_config`] with a step penalty of 0.2
    /// ([`SoftOnlineConfig::step_penalty`]), for a reference recording. Two performances of a
    /// piece leave long stretches where a position a beat early or late matches about as well
    /// as the right one (another voicing, articulation and rubato, repeated accompaniment
    /// chords), and the plain recursion wanders between them; the penalty keeps the path near
    /// the diagonal of the scaled reference unless the evidence says otherwise. Against a
    /// score it stays 0: a score's reference has no rubato of its own, so the performer's whole
    /// timing must bend the path; measured against the score, 0.2 (with margin 0.1) lifted the
    /// 25 target cases from 94.4 to 95.5 % within 300 ms but cost the Bach chorales with
    /// fermatas 7-16 points and a Chopin skip case 34. Measured against `reference.flac`
    /// (with [`TempoAdaptiveConfig::for_recording`], 25 target cases pooled, within 50 / 100 /
    /// 300 ms; in brackets the real-recording pair within 300 ms): penalty 0 60.2 / 75.9 /
    /// 92.9 % (71.4, 73.2), 0.1 62.4 / 77.8 / 94.2 % (78.6, 78.6), 0.2 63.8 / 79.6 / 95.2 %
    /// (83.9, 83.9), 0.3 61.8 / 78.3 / 95.2 % (83.9, 82.1). Against the release before it
    /// (60.2 without both) the rendered chorale with fermatas and beat jitter (`bwv7_7`) loses
    /// 12 and 21 points within 50 and 100 ms, the Schumann case 7 and 9.
    pub fn soft_config_for_recording(base: SoftOnlineConfig) -> SoftOnlineConfig {
        SoftOnlineConfig {
            step_penalty: 0.2,
            ..Self::soft_config(base)
        }
    }

    /// Score frames per frame of the scale in use.
    pub fn scale(&self) -> f64 {
        self.scales.versions[self.active].0
    }

    /// How many times the scale has changed.
    pub fn switches(&self) -> usize {
        self.switches
    }

    /// Move to the scale nearest `score_frames_per_frame` now (e.g. before the start, for a
    /// performer known to play at another tempo), carrying the alignment across.
    pub fn set_scale(&mut self, score_frames_per_frame: f64) {
        let to = self.nearest(score_frames_per_frame);
        self.switch_to(to);
    }

    /// Hand the alignment over from the scale in use to scale `to` ([`SoftOnline::adopt`]).
    fn switch_to(&mut self, to: usize) {
        if to == self.active {
            return;
        }
        let own_per_from = self.scale() / self.scales.versions[to].0;
        let (from, into) = if to < self.active {
            let (lo, hi) = self.aligners.split_at_mut(self.active);
            (&hi[0], &mut lo[to])
        } else {
            let (lo, hi) = self.aligners.split_at_mut(to);
            (&lo[self.active], &mut hi[0])
        };
        into.adopt(from, own_per_from);
        self.active = to;
        self.switches += 1;
    }

    fn nearest(&self, tempo: f64) -> usize {
        let lt = tempo.max(1e-9).ln();
        let mut best = self.active;
        let mut best_d = f64::INFINITY;
        for (k, (s, _)) in self.scales.versions.iter().enumerate() {
            let d = (s.ln() - lt).abs();
            if d < best_d {
                best_d = d;
                best = k;
            }
        }
        best
    }

    /// The scale the tempo of the history calls for, if it differs from the one in use: both
    /// halves of the history must be beyond the margin on the same side (an aligner that
    /// stalled or jumped shows a one-sided slope; a performer at another tempo shows it
    /// throughout), and the nearer of the two decides.
    fn wanted_scale(&self) -> Option<usize> {
        let n = self.frames_seen.min(self.recent.len());
        if self.frames_seen < self.cfg.min_frames || n < 8 {
            return None;
        }
        let (t1, t2) = super::half_slopes(&self.recent, self.frames_seen)?;
        if !(t1 > 0.0 && t2 > 0.0) {
            return None;
        }
        let ls = self.scale().ln();
        let (d1, d2) = (t1.ln() - ls, t2.ln() - ls);
        let margin = self.cfg.switch_log_margin;
        if d1 * d2 <= 0.0 || d1.abs().min(d2.abs()) <= margin {
            return None;
        }
        let tempo = if d1.abs() < d2.abs() { t1 } else { t2 };
        let k = self.nearest(tempo);
        (k != self.active).then_some(k)
    }
}

impl OnlineAligner for TempoAdaptive {
    fn step(&mut self, frame: &FeatureFrame) -> AlignStep {
        if self.trial {
            for (a, st) in self.aligners.iter_mut().zip(self.trial_steps.iter_mut()) {
                *st = a.step(frame);
            }
            if self.frames_seen >= STARTUP_SETTLE_FRAMES
                && self.frames_seen.is_multiple_of(REFIT_FRAMES)
            {
                let best = self.trial_best();
                if best != self.active {
                    // Every scale has followed along: the best is taken as it stands.
                    self.active = best;
                    self.switches += 1;
                }
            }
            if self.frames_seen + 1 >= self.cfg.startup_frames {
                self.trial = false;
            }
            let s = self.scale();
            let step = self.trial_steps[self.active];
            let ref_frame = step.ref_frame * s;
            let cap = self.recent.len();
            self.recent[self.frames_seen % cap] = ref_frame;
            self.frames_seen += 1;
            return AlignStep {
                ref_frame,
                spread_frames: step.spread_frames * s as f32,
                ..step
            };
        }
        if self.frames_seen.is_multiple_of(REFIT_FRAMES) {
            if let Some(to) = self.wanted_scale() {
                self.switch_to(to);
            }
        }
        let s = self.scale();
        let step = self.aligners[self.active].step(frame);
        let ref_frame = step.ref_frame * s;
        let cap = self.recent.len();
        self.recent[self.frames_seen % cap] = ref_frame;
        self.frames_seen += 1;
        AlignStep {
            ref_frame,
            spread_frames: step.spread_frames * s as f32,
            ..step
        }
    }

    fn reset_to(&mut self, ref_frame: usize) {
        // A jump ends the start-up trial: the scales no longer follow the same place.
        self.trial = false;
        let s = self.scale();
        self.aligners[self.active].reset_to((ref_frame as f64 / s).round() as usize);
        self.frames_seen = 0;
    }

    fn frames_seen(&self) -> usize {
        self.frames_seen
    }

    fn name(&self) -> &'static str {
        "soft"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference of distinct harmonies, each held for `len` frames, with an onset at the
    /// start of each: inside a block every frame matches alike (the uniform texture where a
    /// tempo-blind aligner falls behind).
    fn blocks(n_blocks: usize, len: usize) -> Vec<FeatureFrame> {
        let mut out = Vec::new();
        for b in 0..n_blocks {
            let root = (b * 7 + b / 3) % N_CHROMA;
            for k in 0..len {
                let mut chroma = [0.05f64; N_CHROMA];
                chroma[root] = 1.0;
                chroma[(root + 4) % N_CHROMA] = 0.7;
                chroma[(root + 7) % N_CHROMA] = 0.5;
                let mut onset = [0.0f32; N_CHROMA];
                if k < 3 {
                    onset[root] = 0.5f32.powi(k as i32);
                }
                out.push(FeatureFrame {
                    chroma: normalised(&chroma).expect("nonzero"),
                    onset,
                    energy: 1.0,
                    flatness: 0.1,
                    attack: onset,
                });
            }
        }
        out
    }

    fn adaptive(reference: &[FeatureFrame]) -> TempoAdaptive {
        adaptive_with(reference, TempoAdaptiveConfig::default())
    }

    /// A tempo-adaptive soft aligner on the default scales of `reference`, configured by `cfg`.
    fn adaptive_with(reference: &[FeatureFrame], cfg: TempoAdaptiveConfig) -> TempoAdaptive {
        let unit = Arc::new(TransposedReference::new(reference));
        let scales = Arc::new(TempoScales::new(
            reference,
            unit,
            &TempoScales::default_scales(),
        ));
        TempoAdaptive::new(
            scales,
            TempoAdaptive::soft_config(SoftOnlineConfig::default()),
            cfg,
        )
    }

    #[test]
    fn rescaling_by_one_is_the_identity_and_lengths_follow_the_scale() {
        let r = blocks(5, 30);
        assert_eq!(rescale_frames(&r, 1.0), r);
        for s in [0.5, 0.8, 1.5, 2.0, 3.0] {
            assert_eq!(
                rescale_frames(&r, s).len(),
                (150.0 / s).ceil() as usize,
                "scale {s}"
            );
        }
    }

    /// At scale 2 each block of 30 frames becomes 15 frames of the same chroma, at 0.5 it
    /// becomes 60; the onset peak keeps its height (a maximum, not a mean).
    #[test]
    fn rescaled_blocks_keep_their_content_at_the_scaled_times() {
        let r = blocks(6, 30);
        for (s, len) in [(2.0, 15), (0.5, 60)] {
            let out = rescale_frames(&r, s);
            for (k, f) in out.iter().enumerate() {
                let block = k / len;
                for c in 0..N_CHROMA {
                    let want = r[block * 30 + 10].chroma[c];
                    assert!((f.chroma[c] - want).abs() < 1e-6, "scale {s} frame {k}");
                }
            }
            for block in 0..6 {
                let peak = out[block * len..(block + 1) * len]
                    .iter()
                    .map(|f| f.onset.iter().copied().fold(0.0f32, f32::max))
                    .fold(0.0f32, f32::max);
                assert_eq!(peak, 1.0, "scale {s} block {block}");
            }
        }
    }

    /// A performer at the reference's tempo: the scale never changes, and every step is the
    /// plain soft aligner's, bit for bit.
    #[test]
    fn at_the_reference_tempo_it_is_the_plain_soft_aligner() {
        let r = blocks(40, 30);
        let perf = r.clone();
        let mut tempo = adaptive(&r);
        let mut plain = SoftOnline::new(
            r.clone().into(),
            TempoAdaptive::soft_config(SoftOnlineConfig::default()),
        );
        for (i, f) in perf.iter().enumerate() {
            let (a, b) = (tempo.step(f), plain.step(f));
            assert_eq!(a.ref_frame.to_bits(), b.ref_frame.to_bits(), "frame {i}");
            assert_eq!(a.confidence.to_bits(), b.confidence.to_bits(), "frame {i}");
            assert_eq!(a.cost.to_bits(), b.cost.to_bits(), "frame {i}");
        }
        assert_eq!(tempo.switches(), 0);
        assert_eq!(tempo.scale(), 1.0);
    }

    /// Largest |position - truth| (reference frames) over frames `from..` of a performance of
    /// `r` at `tempo` times its pace.
    fn max_error(
        aligner: &mut dyn OnlineAligner,
        r: &[FeatureFrame],
        tempo: f64,
        from: usize,
    ) -> f64 {
        let perf = rescale_frames(r, tempo);
        let mut worst = 0.0f64;
        for (i, f) in perf.iter().enumerate() {
            let step = aligner.step(f);
            if i >= from {
                worst = worst.max((step.ref_frame - (i as f64 + 0.5) * tempo).abs());
            }
        }
        worst
    }

    /// A performer at 1.5x and at 0.6x the reference's pace: once the history shows it, the
    /// aligner moves to a scale within one step of that tempo and follows within 12 frames.
    /// (On these clean blocks a tempo-blind aligner follows too; the corpus case that needs
    /// the tempo model is in `tests/follow.rs`.)
    #[test]
    fn a_fast_or_slow_performer_moves_to_the_nearest_scale() {
        let r = blocks(120, 30);
        for tempo in [1.5, 0.6] {
            let mut a = adaptive(&r);
            let worst = max_error(&mut a, &r, tempo, 600);
            assert!(
                (a.scale() / tempo).ln().abs() < 2f64.ln() / 6.0,
                "tempo {tempo}: scale {}",
                a.scale()
            );
            assert!(a.switches() >= 1);
            // Inside a block every frame is alike: a few frames of play (measured: 8.8 at 0.6x).
            assert!(worst < 12.0, "tempo {tempo}: {worst:.2} frames");
        }
    }

    /// The start-up trial: every scale is followed from the start, the cheapest path is
    /// reported; during the trial and after it, the position stays on the performer at 0.7x
    /// and 1.4x the reference's pace, and a reset ends the trial.
    #[test]
    fn the_start_up_trial_follows_an_off_tempo_performer_from_the_start() {
        let r = blocks(60, 30);
        for tempo in [0.7, 1.4] {
            let mut a = adaptive_with(&r, TempoAdaptiveConfig::for_printed_score());
            assert!(a.trial);
            let worst = max_error(&mut a, &r, tempo, 100);
            assert!(!a.trial, "the trial ends after {STARTUP_FRAMES} frames");
            assert!(worst < 12.0, "tempo {tempo}: {worst:.2} frames");
        }
        let a = adaptive(&r);
        assert!(!a.trial, "no trial by default");
        let mut b = adaptive_with(&r, TempoAdaptiveConfig::for_printed_score());
        b.reset_to(300);
        assert!(!b.trial, "a reset ends the trial");
    }

    /// A switch carries the alignment across: the position just after it is where the
    /// performer is, not a restart.
    #[test]
    fn switching_scale_mid_piece_keeps_the_position() {
        let r = blocks(60, 30);
        let perf = rescale_frames(&r, 1.26);
        let mut a = adaptive(&r);
        for f in &perf[..200] {
            a.step(f);
        }
        a.set_scale(1.26);
        assert_eq!(a.switches(), 1);
        for (i, f) in perf.iter().enumerate().skip(200).take(100) {
            let step = a.step(f);
            let truth = (i as f64 + 0.5) * 1.26;
            assert!(
                (step.ref_frame - truth).abs() < 6.0,
                "frame {i}: {} vs {truth}",
                step.ref_frame
            );
        }
    }
}
