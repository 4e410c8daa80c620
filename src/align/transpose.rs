//! Key detection while following: for the first seconds, one aligner per transposition
//! (12 cyclic shifts of the performance's pitch classes) runs side by side; the report comes
//! from the one with the lowest normalised path cost. Once the trial ends only that one goes on,
//! so the steady-state cost is a single aligner's.

use super::{transpose_frame, AlignStep, OnlineAligner};
use crate::features::{FeatureFrame, N_CHROMA};

/// Runs aligners under several transpositions and keeps the best.
pub struct KeyTrial {
    /// (shift in semitones, aligner), best first after the trial.
    candidates: Vec<(usize, Box<dyn OnlineAligner>)>,
    trial_frames: usize,
    frames_seen: usize,
    best: usize,
    /// Normalised cost of each candidate at the last frame.
    last_costs: Vec<f32>,
}

impl KeyTrial {
    /// `make()` builds one aligner per candidate shift (`shifts`, semitones up); the trial
    /// lasts `trial_frames` performance frames.
    pub fn new(
        shifts: &[usize],
        trial_frames: usize,
        mut make: impl FnMut() -> Box<dyn OnlineAligner>,
    ) -> Self {
        let candidates: Vec<(usize, Box<dyn OnlineAligner>)> =
            shifts.iter().map(|&s| (s % N_CHROMA, make())).collect();
        Self {
            last_costs: vec![f32::INFINITY; candidates.len()],
            candidates,
            trial_frames,
            frames_seen: 0,
            best: 0,
        }
    }

    /// The transposition currently believed (semitones the performance is above the score).
    pub fn shift(&self) -> usize {
        self.candidates[self.best].0
    }

    /// True while several transpositions are still being compared.
    pub fn in_trial(&self) -> bool {
        self.candidates.len() > 1
    }

    /// Follow on in another key (semitones the performance is above the score, taken modulo
    /// 12): the kept aligner is fed frames transposed by `shift` from the next frame on, and
    /// [`OnlineAligner::key_shift`] reports it. The aligner's state is kept; callers that
    /// change key at a new position follow with [`OnlineAligner::reset_to`]. During the trial
    /// this ends it, keeping the best candidate so far.
    pub fn set_shift(&mut self, shift: usize) {
        if self.in_trial() {
            self.prune(1);
        }
        let shift = shift % N_CHROMA;
        if self.candidates[self.best].0 != shift {
            // The follower logs the change at info level with its time.
            tracing::debug!(
                "key change: performance is now {shift} semitones above the score (was {})",
                self.candidates[self.best].0
            );
            self.candidates[self.best].0 = shift;
        }
    }
}

impl KeyTrial {
    /// Keep the `keep` candidates of least normalised cost.
    fn prune(&mut self, keep: usize) {
        let mut ranked: Vec<(f32, usize)> = self.last_costs.iter().copied().zip(0..).collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut kept: Vec<usize> = ranked.iter().take(keep).map(|r| r.1).collect();
        kept.sort_unstable();
        let mut all: Vec<Option<(usize, Box<dyn OnlineAligner>)>> =
            self.candidates.drain(..).map(Some).collect();
        self.candidates = kept.iter().filter_map(|&k| all[k].take()).collect();
        self.best = 0;
        self.last_costs.truncate(self.candidates.len());
        if self.candidates.len() == 1 {
            tracing::info!(
                "key trial: performance is {} semitones above the score",
                self.shift()
            );
        }
    }
}

impl OnlineAligner for KeyTrial {
    fn step(&mut self, frame: &FeatureFrame) -> AlignStep {
        let mut best_step = AlignStep {
            cost: f32::INFINITY,
            ..AlignStep::default()
        };
        for (k, (shift, aligner)) in self.candidates.iter_mut().enumerate() {
            let f = if *shift == 0 {
                *frame
            } else {
                transpose_frame(frame, *shift)
            };
            let s = aligner.step(&f);
            self.last_costs[k] = s.cost;
            if s.cost < best_step.cost || k == 0 && !best_step.cost.is_finite() {
                best_step = s;
                self.best = k;
            }
        }
        self.frames_seen += 1;
        // Progressive pruning keeps the trial cheap: after a sixth of the trial (2 s of the
        // default 12), keep the 4 best keys; after a third, the 2 best; at the end, the best.
        // Measured on the development corpus: the same key and the same accuracy on every
        // case as pruning at a half and three quarters, with both aligners, at about half the
        // trial's cost (12x100 + 4x100 + 2x400 = 2400 aligner steps over 600 frames instead of
        // 12x300 + 4x150 + 2x150 = 4500).
        if self.in_trial() {
            let keep = if self.frames_seen >= self.trial_frames {
                1
            } else if self.frames_seen * 3 >= self.trial_frames {
                2
            } else if self.frames_seen * 6 >= self.trial_frames {
                4
            } else {
                self.candidates.len()
            };
            if keep < self.candidates.len() {
                self.prune(keep);
            }
        }
        best_step
    }

    fn reset_to(&mut self, ref_frame: usize) {
        for (_, a) in &mut self.candidates {
            a.reset_to(ref_frame);
        }
    }

    fn frames_seen(&self) -> usize {
        self.frames_seen
    }

    fn name(&self) -> &'static str {
        if self.in_trial() {
            "key-trial"
        } else {
            self.candidates[self.best].1.name()
        }
    }

    fn key_shift(&self) -> Option<usize> {
        (!self.in_trial()).then(|| self.shift())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::oltw::{Oltw, OltwConfig};
    use std::sync::Arc;

    #[test]
    fn finds_the_transposition_and_follows() {
        let mut rng = crate::test_util::Rng::new(3);
        let mut next = || rng.next_f32();
        let reference: Vec<FeatureFrame> = (0..1500)
            .map(|k| {
                let mut f = FeatureFrame::default();
                // Slowly changing "harmony": a new random chord every 10 frames.
                let _ = k;
                for c in 0..N_CHROMA {
                    f.chroma[c] = next().powi(4);
                }
                crate::features::chroma::normalize(&mut f.chroma);
                f
            })
            .collect();
        // The performance is the reference played 3 semitones higher.
        let perf: Vec<FeatureFrame> = reference
            .iter()
            .map(|f| transpose_frame(f, N_CHROMA - 3))
            .collect();
        let frames: Arc<[FeatureFrame]> = reference.into();
        let mut trial = KeyTrial::new(&(0..12).collect::<Vec<_>>(), 200, || {
            Box::new(Oltw::new(frames.clone(), OltwConfig::default()))
        });
        let mut last = AlignStep::default();
        for f in &perf[..600] {
            last = trial.step(f);
        }
        assert_eq!(trial.shift(), 3);
        assert!(!trial.in_trial());
        assert_eq!(last.ref_frame, 599.0);
    }

    /// After the trial found the key, the performer goes up two more semitones: switching the
    /// kept aligner's shift makes it follow on, and the reported key follows.
    #[test]
    fn set_shift_follows_a_change_of_key() {
        let mut rng = crate::test_util::Rng::new(5);
        let mut next = || rng.next_f32();
        let reference: Vec<FeatureFrame> = (0..1200)
            .map(|_| {
                let mut f = FeatureFrame::default();
                for c in 0..N_CHROMA {
                    f.chroma[c] = next().powi(4);
                }
                crate::features::chroma::normalize(&mut f.chroma);
                f
            })
            .collect();
        // 3 semitones up until frame 500, then 5.
        let perf: Vec<FeatureFrame> = reference
            .iter()
            .enumerate()
            .map(|(t, f)| transpose_frame(f, N_CHROMA - if t < 500 { 3 } else { 5 }))
            .collect();
        let frames: Arc<[FeatureFrame]> = reference.into();
        let mut trial = KeyTrial::new(&(0..12).collect::<Vec<_>>(), 200, || {
            Box::new(Oltw::new(frames.clone(), OltwConfig::default()))
        });
        for f in &perf[..500] {
            trial.step(f);
        }
        assert_eq!(trial.key_shift(), Some(3));
        trial.set_shift(5 + N_CHROMA);
        assert_eq!(trial.key_shift(), Some(5));
        assert_eq!(trial.name(), "oltw");
        let mut last = AlignStep::default();
        for f in &perf[500..900] {
            last = trial.step(f);
        }
        assert_eq!(last.ref_frame, 899.0);
    }
}
