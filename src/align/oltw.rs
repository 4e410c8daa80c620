//! Online time warping (Dixon 2005, "Live tracking of musical performances using on-line time
//! warping", DAFx), in the windowed form used for score following: for every performance frame
//! the accumulated-cost column is computed over a bounded window of reference frames that
//! follows the current position, so each step is O(window) and allocation-free.
//!
//! Recursion (Dixon §3, symmetric weights): D(i,j) = min(D(i-1,j-1) + 2d, D(i-1,j) + d,
//! D(i,j-1) + d). The position after frame i is the reference frame of least normalised cost
//! D(i,j) / (i + j + 1) in the current column (Dixon's path-end choice). Horizontal runs inside
//! one column are capped (Dixon's MaxRunCount, §3.2) through the window's forward reach.

use std::sync::Arc;

use super::cost::{CostWeights, TransposedReference};
use super::{AlignStep, OnlineAligner};
use crate::features::FeatureFrame;

/// Local step pattern of the online recursion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPattern {
    /// Dixon's steps (1,0), (0,1), (1,1) with weights 1, 1, 2: any tempo, but skipping a
    /// reference frame costs a whole cell.
    Symmetric,
    /// Slope-constrained steps (1,1), (1,2), (2,1) with weights 2, 3, 3 (FMP §3.2.2.2):
    /// tempo ratios from 0.5 to 2 with no penalty for skipping frames inside that range.
    /// Weights equal the step length in i + j, so normalisation by i + j stays valid.
    Constrained,
}

/// OLTW parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OltwConfig {
    /// Step pattern.
    pub steps: StepPattern,
    /// Reference frames in the search window (500 = 10 s at 50 frames/s).
    pub window_frames: usize,
    /// Share of the window kept behind the current position (for small backward corrections).
    pub back_fraction: f32,
    /// Frame cost weights.
    pub weights: CostWeights,
    /// Forgetting factor per performance frame applied to the accumulated cost (1 = Dixon's
    /// plain accumulation). Below 1, old evidence fades (0.99: time constant 2 s at 50
    /// frames/s) so the match reacts as fast late in a piece as early on. The path weight is
    /// accumulated with the same factor and the position compares cost / weight.
    pub memory: f32,
    /// Sharpness of the soft weighting used for confidence and spread (per unit normalised
    /// cost).
    pub spread_sharpness: f32,
}

impl Default for OltwConfig {
    fn default() -> Self {
        Self {
            steps: StepPattern::Symmetric,
            window_frames: 500,
            back_fraction: 0.25,
            weights: CostWeights::default(),
            spread_sharpness: 60.0,
            memory: 1.0,
        }
    }
}

/// Windowed online DTW aligner.
pub struct Oltw {
    reference: Arc<[FeatureFrame]>,
    /// The reference feature-major, for vectorised window costs (shared between aligners).
    reference_t: Arc<TransposedReference>,
    /// Local costs of the current window.
    costs: Vec<f64>,
    cfg: OltwConfig,
    prev: Vec<f64>,
    prev2: Vec<f64>,
    cur: Vec<f64>,
    prev_w: Vec<f64>,
    prev2_w: Vec<f64>,
    cur_w: Vec<f64>,
    prev_lo: usize,
    prev_len: usize,
    prev2_lo: usize,
    prev2_len: usize,
    start_j: usize,
    frames_seen: usize,
    position: usize,
}

impl Oltw {
    /// A new aligner at the start of `reference`.
    pub fn new(reference: Arc<[FeatureFrame]>, cfg: OltwConfig) -> Self {
        let transposed = Arc::new(TransposedReference::new(&reference));
        Self::with_transposed(reference, transposed, cfg)
    }

    /// A new aligner sharing an already transposed reference (the same frames as
    /// `reference`): the aligners of a key trial need one copy, not twelve.
    pub fn with_transposed(
        reference: Arc<[FeatureFrame]>,
        reference_t: Arc<TransposedReference>,
        cfg: OltwConfig,
    ) -> Self {
        let w = cfg.window_frames.max(2);
        debug_assert_eq!(reference.len(), reference_t.len());
        Self {
            reference,
            reference_t,
            costs: vec![0.0; w],
            cfg,
            prev: vec![f64::INFINITY; w],
            prev2: vec![f64::INFINITY; w],
            cur: vec![f64::INFINITY; w],
            prev_w: vec![0.0; w],
            prev2_w: vec![0.0; w],
            cur_w: vec![0.0; w],
            prev_lo: 0,
            prev_len: 0,
            prev2_lo: 0,
            prev2_len: 0,
            start_j: 0,
            frames_seen: 0,
            position: 0,
        }
    }

    /// Current window start and length for the next frame.
    fn window(&self) -> (usize, usize) {
        super::follow_window(
            self.reference.len(),
            self.cur.len(),
            self.cfg.back_fraction,
            self.position,
            self.frames_seen > 0,
            self.prev_lo,
        )
    }
}

impl Oltw {
    /// The column of the symmetric pattern, the hot path: the same candidates, in the same
    /// order, with the same strict comparisons as the general loop in `step`, without its
    /// per-cell closures and window checks (the window never moves back, so the previous
    /// column is the current one shifted by `lo - prev_lo`).
    fn symmetric_column(&mut self, i: usize, lo: usize, len: usize, lam: f64) {
        let (plo, plen) = (self.prev_lo, self.prev_len);
        let start_j = self.start_j;
        let shift = lo as isize - plo as isize;
        let (prev, prev_w) = (&self.prev[..], &self.prev_w[..]);
        let (cur, cur_w) = (&mut self.cur[..len], &mut self.cur_w[..len]);
        let costs = &self.costs[..len];
        let mut left = (f64::INFINITY, 0.0f64);
        for k in 0..len {
            let j = lo + k;
            if j < start_j {
                cur[k] = f64::INFINITY;
                cur_w[k] = 0.0;
                left = (f64::INFINITY, 0.0);
                continue;
            }
            let d = costs[k];
            let mut best = if i == 0 && j == start_j {
                (d, 1.0)
            } else {
                (f64::INFINITY, 0.0)
            };
            if i > 0 {
                // Previous-column index of reference frame j (may be out of its window).
                let pj = k as isize + shift;
                if j > 0 && pj >= 1 && ((pj - 1) as usize) < plen {
                    let q = (pj - 1) as usize;
                    let c = lam * prev[q] + 2.0 * d;
                    if c < best.0 {
                        best = (c, lam * prev_w[q] + 2.0);
                    }
                }
                if pj >= 0 && (pj as usize) < plen {
                    let q = pj as usize;
                    let c = lam * prev[q] + d;
                    if c < best.0 {
                        best = (c, lam * prev_w[q] + 1.0);
                    }
                }
            }
            if k > 0 {
                let c = left.0 + d;
                if c < best.0 {
                    best = (c, left.1 + 1.0);
                }
            }
            cur[k] = best.0;
            cur_w[k] = best.1;
            left = best;
        }
    }
}

impl OnlineAligner for Oltw {
    fn step(&mut self, frame: &FeatureFrame) -> AlignStep {
        let m = self.reference.len();
        if m == 0 {
            return AlignStep::default();
        }
        let (lo, len) = self.window();
        let i = self.frames_seen;
        let weights = self.cfg.weights;
        let lam = self.cfg.memory as f64;
        let (plo, plen, p2lo, p2len) = (self.prev_lo, self.prev_len, self.prev2_lo, self.prev2_len);
        self.reference_t
            .costs(frame, lo, weights, &mut self.costs[..len]);
        if self.cfg.steps == StepPattern::Symmetric {
            self.symmetric_column(i, lo, len, lam);
        } else {
            for k in 0..len {
                let j = lo + k;
                if j < self.start_j {
                    self.cur[k] = f64::INFINITY;
                    self.cur_w[k] = 0.0;
                    continue;
                }
                let d = self.costs[k];
                // (accumulated cost, accumulated weight) of the best predecessor plus this step.
                let mut best = if i == 0 && j == self.start_j {
                    (d, 1.0)
                } else {
                    (f64::INFINITY, 0.0)
                };
                let mut consider = |cost: f64, weight: f64, decay: f64, step: f64| {
                    let c = decay * cost + step * d;
                    if c < best.0 {
                        best = (c, decay * weight + step);
                    }
                };
                let in_prev = |jj: usize| jj >= plo && jj < plo + plen;
                match self.cfg.steps {
                    StepPattern::Symmetric => {
                        if i > 0 {
                            if j > 0 && in_prev(j - 1) {
                                consider(
                                    self.prev[j - 1 - plo],
                                    self.prev_w[j - 1 - plo],
                                    lam,
                                    2.0,
                                );
                            }
                            if in_prev(j) {
                                consider(self.prev[j - plo], self.prev_w[j - plo], lam, 1.0);
                            }
                        }
                        if k > 0 {
                            consider(self.cur[k - 1], self.cur_w[k - 1], 1.0, 1.0);
                        }
                    }
                    StepPattern::Constrained => {
                        if i > 0 && j > 0 {
                            if in_prev(j - 1) {
                                consider(
                                    self.prev[j - 1 - plo],
                                    self.prev_w[j - 1 - plo],
                                    lam,
                                    2.0,
                                );
                            }
                            if j > 1 && in_prev(j - 2) {
                                consider(
                                    self.prev[j - 2 - plo],
                                    self.prev_w[j - 2 - plo],
                                    lam,
                                    3.0,
                                );
                            }
                            if i > 1 && j > p2lo && j - 1 < p2lo + p2len {
                                consider(
                                    self.prev2[j - 1 - p2lo],
                                    self.prev2_w[j - 1 - p2lo],
                                    lam * lam,
                                    3.0,
                                );
                            }
                        }
                    }
                }
                self.cur[k] = best.0;
                self.cur_w[k] = best.1;
            }
        }
        // Position: least normalised cost (cost / path weight) in this column. Ties (cells of
        // a held note) go to the later frame. The local costs are not needed any more: their
        // buffer keeps the normalised costs for the spread below.
        let mut best_k = 0usize;
        let mut best_norm = f64::INFINITY;
        for (k, ((norm, &c), &w)) in self.costs[..len]
            .iter_mut()
            .zip(&self.cur[..len])
            .zip(&self.cur_w[..len])
            .enumerate()
        {
            *norm = if w > 0.0 { c / w } else { f64::INFINITY };
            if *norm <= best_norm && norm.is_finite() {
                best_norm = *norm;
                best_k = k;
            }
        }
        let norm_at = |k: usize| -> f64 { self.costs[k] };
        // Spread and confidence from soft weights around the best cell.
        let sharp = self.cfg.spread_sharpness as f64;
        let (mut sw, mut sj, mut sjj, mut mean_norm, mut count) = (0.0, 0.0, 0.0, 0.0, 0usize);
        // Only cells near the best matter for the spread; this bounds the exp() calls.
        let (k0, k1) = (best_k.saturating_sub(100), (best_k + 101).min(len));
        for k in k0..k1 {
            let norm = norm_at(k);
            if !norm.is_finite() {
                continue;
            }
            mean_norm += norm;
            count += 1;
            let z = (norm - best_norm) * sharp;
            if z > 20.0 {
                // exp(-20) is negligible next to the best cell's weight of 1.
                continue;
            }
            let w = (-z).exp();
            let x = k as f64 - best_k as f64;
            sw += w;
            sj += w * x;
            sjj += w * x * x;
        }
        let var = if sw > 0.0 {
            (sjj / sw - (sj / sw).powi(2)).max(0.0)
        } else {
            0.0
        };
        mean_norm /= count.max(1) as f64;
        let confidence = if mean_norm > 0.0 && best_norm.is_finite() {
            (1.0 - best_norm / mean_norm).clamp(0.0, 1.0) as f32
        } else {
            0.0
        };
        // Rotate columns: prev2 <- prev <- cur.
        std::mem::swap(&mut self.prev2, &mut self.prev);
        std::mem::swap(&mut self.prev, &mut self.cur);
        std::mem::swap(&mut self.prev2_w, &mut self.prev_w);
        std::mem::swap(&mut self.prev_w, &mut self.cur_w);
        self.prev2_lo = self.prev_lo;
        self.prev2_len = self.prev_len;
        self.prev_lo = lo;
        self.prev_len = len;
        self.frames_seen += 1;
        self.position = lo + best_k;
        AlignStep {
            ref_frame: self.position as f64,
            confidence,
            spread_frames: var.sqrt() as f32,
            cost: best_norm as f32,
        }
    }

    fn reset_to(&mut self, ref_frame: usize) {
        let m = self.reference.len();
        self.start_j = ref_frame.min(m.saturating_sub(1));
        self.position = self.start_j;
        self.frames_seen = 0;
        self.prev_lo = 0;
        self.prev_len = 0;
        self.prev2_lo = 0;
        self.prev2_len = 0;
    }

    fn frames_seen(&self) -> usize {
        self.frames_seen
    }

    fn name(&self) -> &'static str {
        "oltw"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::cost::frame_cost;
    use crate::align::dtw::{dtw_full_matrix, path_to_ref_per_perf};
    use crate::features::N_CHROMA;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32) / (1u64 << 31) as f32
    }

    fn random_frames(n: usize, seed: u64) -> Vec<FeatureFrame> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let mut f = FeatureFrame::default();
                for c in 0..N_CHROMA {
                    f.chroma[c] = lcg(&mut s).powi(4);
                }
                crate::features::chroma::normalize(&mut f.chroma);
                f
            })
            .collect()
    }

    /// With an unlimited window the OLTW column is exactly the DTW matrix row, so on a
    /// noise-free time-stretched sequence it recovers the exact path, like full offline DTW.
    #[test]
    fn unlimited_window_recovers_exact_stretch() {
        let reference = random_frames(300, 11);
        // Every reference frame held for 1 or 2 performance frames (tempo 0.5x..1x).
        let mut perf = Vec::new();
        let mut gt = Vec::new();
        for (j, f) in reference.iter().enumerate() {
            let reps = 1 + (j * 7 % 3 == 0) as usize;
            for _ in 0..reps {
                perf.push(*f);
                gt.push(j);
            }
        }
        let cfg = OltwConfig {
            window_frames: 10_000,
            ..OltwConfig::default()
        };
        let mut oltw = Oltw::new(reference.clone().into(), cfg);
        let online: Vec<usize> = perf
            .iter()
            .map(|f| oltw.step(f).ref_frame as usize)
            .collect();
        assert_eq!(online, gt);

        // Offline oracle agrees.
        let w = CostWeights::default();
        let (n, m) = (perf.len(), reference.len());
        let cost: Vec<f32> = (0..n * m)
            .map(|k| frame_cost(&perf[k / m], &reference[k % m], w))
            .collect();
        // OLTW uses the symmetric step weights (diagonal 2), so the oracle does too.
        let path = dtw_full_matrix(&cost, n, m, false, 2.0).path;
        let off = path_to_ref_per_perf(&path, n);
        assert!(off.iter().zip(&gt).all(|(a, &b)| *a as usize == b));
    }

    #[test]
    fn bounded_window_follows_a_faster_performance() {
        let reference = random_frames(3000, 5);
        // Performance 1.5x faster: skips every third reference frame.
        let perf: Vec<FeatureFrame> = (0..3000)
            .filter(|j| j % 3 != 2)
            .map(|j| reference[j])
            .collect();
        let cfg = OltwConfig {
            steps: StepPattern::Constrained,
            ..OltwConfig::default()
        };
        let mut oltw = Oltw::new(reference.clone().into(), cfg);
        let mut last = 0.0;
        for (i, f) in perf.iter().enumerate() {
            let s = oltw.step(f);
            let want = (i / 2 * 3 + i % 2) as f64;
            // After a short warm-up (the normalised cost of a few random frames is noisy).
            if i >= 30 {
                assert!(
                    (s.ref_frame - want).abs() <= 1.0,
                    "frame {i}: {} vs {want}",
                    s.ref_frame
                );
            }
            last = s.ref_frame;
        }
        assert!(last >= 2990.0);
    }

    #[test]
    fn reset_restarts_at_the_given_frame() {
        let reference = random_frames(2000, 9);
        let mut oltw = Oltw::new(reference.clone().into(), OltwConfig::default());
        for f in &reference[..100] {
            oltw.step(f);
        }
        oltw.reset_to(1200);
        let mut s = AlignStep::default();
        for f in &reference[1200..1300] {
            s = oltw.step(f);
        }
        assert_eq!(s.ref_frame, 1299.0);
        assert!(s.confidence > 0.5, "{}", s.confidence);
    }
}
