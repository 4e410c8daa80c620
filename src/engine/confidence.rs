//! The reported confidence: a probability that the position is within 300 ms of where the
//! performer is.
//!
//! The aligner's own measure (the share of its posterior mass near the position, see
//! `SoftOnline`) says how sharp the match is, not whether it is the right place: after a
//! jump into music the piece has twice, or while a relocation is still to come, the follower
//! can be sharply and confidently wrong. So the follower keeps a few pieces of [`Evidence`]
//! per frame — how well the performance still matches the reference where it is (fast and
//! slow), how long since it last jumped, whether another place fits as well — and
//! [`ConfidenceModel`] turns them into a probability by logistic regression.
//!
//! The coefficients were fitted on the development corpus (`eval --mode follow
//! --fit-confidence` refits them and prints the calibration of a leave-one-piece-out
//! cross-validation, so the table shows how it does on pieces it was not fitted on).

/// What the confidence is computed from, per frame (also in each
/// [`PositionEvent`](crate::output::PositionEvent), for evaluation and diagnosis).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evidence {
    /// The aligner's posterior mass near its position (0-1).
    pub mass: f32,
    /// The aligner's spread (s of score time).
    pub spread_s: f32,
    /// Cosine distance between the performance's chroma and the reference's at the
    /// position, smoothed over about 0.4 s (0 = the same, 1 = orthogonal).
    pub fit_fast: f32,
    /// The same smoothed over about 2 s.
    pub fit_slow: f32,
    /// Performance seconds since the follower last jumped, was reset or sought (capped at
    /// [`Evidence::SETTLED_S`]).
    pub since_jump_s: f32,
    /// After a jump into music the piece has more than once, the other places are still
    /// being followed (1) or not (0).
    pub doubt: f32,
    /// The pause gate is holding the position (nothing to hear): 1, else 0.
    pub holding: f32,
    /// The fit smoothed over about 10 s: what this performance's match usually is (timbre,
    /// room and texture differ between pieces; `fit_slow` above it means worse than usual).
    pub fit_usual: f32,
    /// The lowest recent mass, recovering by 0.02 a frame (a dip within the last second).
    pub mass_recent_min: f32,
    /// The tracker's tempo (score s per performance s).
    pub tempo: f32,
    /// How far the reported position is from the aligner's raw match (s of score time): the
    /// tracker's flow between matches, its lag compensation.
    pub flow_s: f32,
    /// How long the position has waited at the next onset not heard yet (performance s).
    pub waiting_s: f32,
}

impl Evidence {
    /// Longest time since a jump that still counts (s): beyond it a follower is settled.
    pub const SETTLED_S: f32 = 10.0;

    /// The model's inputs, in the order of [`ConfidenceModel::weights`].
    pub fn inputs(&self) -> [f32; N_INPUTS] {
        [
            self.mass,
            self.spread_s.min(2.0),
            self.fit_fast,
            self.fit_slow,
            (self.since_jump_s / Self::SETTLED_S).min(1.0),
            self.doubt,
            self.holding,
            self.fit_slow - self.fit_usual,
            self.mass_recent_min,
            if self.tempo > 0.0 {
                self.tempo.ln().abs().min(2.0)
            } else {
                2.0
            },
            self.flow_s.abs().min(2.0),
            self.waiting_s.min(2.0),
        ]
    }
}

/// Number of model inputs ([`Evidence::inputs`]).
pub const N_INPUTS: usize = 12;

/// Number of knots of [`ConfidenceModel::knots`].
pub const N_KNOTS: usize = 16;

/// From [`Evidence`] to the probability that the position is within 300 ms: a linear score
/// (fitted by logistic regression, so it ranks positions by how likely they are right),
/// mapped to a probability by a monotone piecewise-linear curve fitted by isotonic regression
/// (the logistic curve itself is too sure in the middle and too shy at the top, measured).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfidenceModel {
    /// Intercept of the score.
    pub bias: f32,
    /// One weight per input of [`Evidence::inputs`].
    pub weights: [f32; N_INPUTS],
    /// `(score, probability)` knots, scores increasing, probabilities not decreasing;
    /// constant beyond the first and the last.
    pub knots: [(f32, f32); N_KNOTS],
}

impl Default for ConfidenceModel {
    /// The model fitted on the development corpus's 35 cases (`eval --mode follow
    /// --fit-confidence`, default settings; 4686 scored events of 17 pieces). Left out one
    /// piece at a time, its calibration on the left-out pieces: events at confidence 0.5-0.6
    /// 74.2 % within 300 ms, 0.6-0.7 58.9 %, 0.7-0.8 80.9 %, 0.8-0.9 89.5 %, 0.9-1.0 97.8 %
    /// (73.9 % of events); at 0.95 and above 98.8 % (66.0 % of events).
    // A fitted weight happens to come out near -π/3.
    #[allow(clippy::approx_constant)]
    fn default() -> Self {
        Self {
            bias: 2.3535,
            weights: [
                0.9859, -2.9913, -4.1708, -2.3584, -0.0193, 0.0962, -0.2059, -0.6744, 1.8149,
                -1.0472, -1.6324, -1.5242,
            ],
            knots: [
                (-2.6894, 0.0100),
                (1.6460, 0.8209),
                (2.2414, 0.8780),
                (2.6335, 0.8822),
                (2.8977, 0.9275),
                (3.1605, 0.9416),
                (3.3570, 0.9791),
                (3.5327, 0.9848),
                (3.6856, 0.9848),
                (3.8234, 0.9900),
                (3.9396, 0.9900),
                (4.0711, 0.9900),
                (4.1842, 0.9900),
                (4.2829, 0.9900),
                (4.3977, 0.9900),
                (5.0045, 0.9900),
            ],
        }
    }
}

impl ConfidenceModel {
    /// The linear score of `evidence` (higher: more likely right).
    pub fn score(&self, evidence: &Evidence) -> f32 {
        let x = evidence.inputs();
        self.bias + self.weights.iter().zip(&x).map(|(w, v)| w * v).sum::<f32>()
    }

    /// The probability (0-1) that a position with `evidence` is within 300 ms.
    pub fn probability(&self, evidence: &Evidence) -> f32 {
        self.probability_of_score(self.score(evidence))
    }

    /// The probability (0-1) at linear score `z` (the knots' curve).
    pub fn probability_of_score(&self, z: f32) -> f32 {
        if z.is_nan() {
            return 0.0;
        }
        let k = &self.knots;
        if z <= k[0].0 {
            return k[0].1;
        }
        for w in k.windows(2) {
            let ((z0, p0), (z1, p1)) = (w[0], w[1]);
            if z <= z1 {
                let f = if z1 > z0 { (z - z0) / (z1 - z0) } else { 1.0 };
                return p0 + f * (p1 - p0);
            }
        }
        k[N_KNOTS - 1].1
    }
}

/// The running part of the evidence: smoothed fit and time since the last jump.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EvidenceTracker {
    fit_fast: Option<f32>,
    fit_slow: Option<f32>,
    fit_usual: Option<f32>,
    mass_recent_min: Option<f32>,
    frames_since_jump: u32,
}

/// Per-frame smoothing of the fit (frames of 20 ms: about 0.4 s and 2 s).
const FAST: f32 = 0.05;
const SLOW: f32 = 0.01;
const USUAL: f32 = 0.002;
/// Recovery of the recent minimum of the mass per frame (from 0 to 1 in 1 s).
const MASS_RECOVERY: f32 = 0.02;

/// The running values of [`EvidenceTracker::update`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Running {
    pub fit_fast: f32,
    pub fit_slow: f32,
    pub fit_usual: f32,
    pub mass_recent_min: f32,
    pub frames_since_jump: u32,
}

impl EvidenceTracker {
    /// The follower jumped, was reset or sought: the fit and the time start again (the usual
    /// fit is the performance's, it stays).
    pub(crate) fn jumped(&mut self) {
        *self = Self {
            fit_usual: self.fit_usual,
            ..Self::default()
        };
    }

    /// One frame, matched with local cost `cost` (`1 - cos` between the performance's chroma
    /// and the reference's where it was matched; NaN counts as a poor match) and posterior
    /// mass `mass`.
    pub(crate) fn update(&mut self, cost: f32, mass: f32) -> Running {
        let cost = if cost.is_finite() {
            cost.clamp(0.0, 2.0)
        } else {
            1.0
        };
        let smooth = |avg: &mut Option<f32>, a: f32| {
            let v = avg.map_or(cost, |m| m + a * (cost - m));
            *avg = Some(v);
            v
        };
        let fit_fast = smooth(&mut self.fit_fast, FAST);
        let fit_slow = smooth(&mut self.fit_slow, SLOW);
        let fit_usual = smooth(&mut self.fit_usual, USUAL);
        let mass = if mass.is_finite() { mass } else { 0.0 };
        let mass_recent_min = self
            .mass_recent_min
            .map_or(mass, |m| mass.min(m + MASS_RECOVERY));
        self.mass_recent_min = Some(mass_recent_min);
        self.frames_since_jump = self.frames_since_jump.saturating_add(1);
        Running {
            fit_fast,
            fit_slow,
            fit_usual,
            mass_recent_min,
            frames_since_jump: self.frames_since_jump,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_follows_the_knots_of_the_weighted_inputs() {
        let model = ConfidenceModel {
            bias: -1.0,
            weights: [2.0, 0.0, -3.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            knots: std::array::from_fn(|i| {
                let z = -4.0 + i as f32 * 8.0 / (N_KNOTS - 1) as f32;
                (z, 1.0 / (1.0 + (-z).exp()))
            }),
        };
        let e = Evidence {
            mass: 0.5,
            fit_fast: 0.2,
            since_jump_s: 5.0,
            ..Evidence::default()
        };
        let z: f32 = -1.0 + 2.0 * 0.5 - 3.0 * 0.2 + 0.5;
        assert!((model.score(&e) - z).abs() < 1e-6);
        // Between two knots, linear: close to the logistic they sample.
        let p = model.probability(&e);
        assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 0.01, "{p}");
        // Constant beyond the ends, and exactly the knots at the knots.
        assert_eq!(model.probability_of_score(-100.0), model.knots[0].1);
        assert_eq!(
            model.probability_of_score(100.0),
            model.knots[N_KNOTS - 1].1
        );
        assert_eq!(
            model.probability_of_score(model.knots[3].0),
            model.knots[3].1
        );
        let nan = Evidence {
            mass: f32::NAN,
            ..e
        };
        assert_eq!(model.probability(&nan), 0.0);
    }
}
