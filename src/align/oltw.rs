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
use super::soft_dtw::kernel::exp_nonpos;
#[cfg(target_arch = "x86_64")]
use super::soft_dtw::kernel::has_avx2_fma;
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
    /// The previous column shifted to the current window (costs, then path weights), one
    /// longer than the window: scratch of the symmetric hot path.
    pad: Vec<f64>,
    pad_w: Vec<f64>,
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
            pad: vec![f64::INFINITY; w + 1],
            pad_w: vec![0.0; w + 1],
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
    /// order, with the same strict comparisons as the general loop in `step`. It runs in two
    /// passes: the diagonal and vertical candidates of every cell are independent of each
    /// other (a vector loop over the previous column shifted into `pad`), and only the
    /// horizontal step is a serial chain, one add and one compare per cell.
    #[inline(always)]
    fn symmetric_column_impl(&mut self, i: usize, lo: usize, len: usize, lam: f64) {
        const INF: f64 = f64::INFINITY;
        let start_j = self.start_j;
        let k_start = start_j.saturating_sub(lo).min(len);
        let costs = &self.costs[..len];
        let (cur, cur_w) = (&mut self.cur[..len], &mut self.cur_w[..len]);
        cur[..k_start].fill(INF);
        cur_w[..k_start].fill(0.0);
        if i == 0 {
            // Only the start cell, and horizontal moves from it.
            cur[k_start..].fill(INF);
            cur_w[k_start..].fill(0.0);
            if start_j >= lo && k_start < len {
                cur[k_start] = costs[k_start];
                cur_w[k_start] = 1.0;
            }
        } else {
            // pv[k], pw[k]: the previous column at reference frame lo + k - 1 (infinite
            // cost outside it), so the candidates of cell k read pv[k] and pv[k + 1].
            let (plo, plen) = (self.prev_lo, self.prev_len);
            let (pv, pw) = (&mut self.pad[..len + 1], &mut self.pad_w[..len + 1]);
            pv.fill(INF);
            pw.fill(0.0);
            let a0 = (plo + 1).saturating_sub(lo);
            let a1 = (plo + plen + 1).saturating_sub(lo).min(len + 1);
            if a0 < a1 {
                let (q0, q1) = (a0 + lo - 1 - plo, a1 + lo - 1 - plo);
                pv[a0..a1].copy_from_slice(&self.prev[q0..q1]);
                pw[a0..a1].copy_from_slice(&self.prev_w[q0..q1]);
            }
            for k in k_start..len {
                let d = costs[k];
                let diag = lam * pv[k] + 2.0 * d;
                let up = lam * pv[k + 1] + d;
                // Diagonal first; the vertical step wins only if strictly cheaper.
                let take_up = up < diag;
                let c = if take_up { up } else { diag };
                let w = if take_up {
                    lam * pw[k + 1] + 1.0
                } else {
                    lam * pw[k] + 2.0
                };
                cur[k] = c;
                cur_w[k] = if c < INF { w } else { 0.0 };
            }
        }
        // The horizontal step, last and strict, as in the general loop.
        // Selects and unconditional stores: whether the horizontal step wins is data-dependent,
        // and a branch on it would be mispredicted often.
        let (mut left_c, mut left_w) = (INF, 0.0f64);
        for ((c, w), &d) in cur[k_start..]
            .iter_mut()
            .zip(cur_w[k_start..].iter_mut())
            .zip(&costs[k_start..])
        {
            let h = left_c + d;
            let take = h < *c;
            left_c = if take { h } else { *c };
            left_w = if take { left_w + 1.0 } else { *w };
            *c = left_c;
            *w = left_w;
        }
    }

    fn symmetric_column(&mut self, i: usize, lo: usize, len: usize, lam: f64) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
            return unsafe { self.symmetric_column_avx2(i, lo, len, lam) };
        }
        self.symmetric_column_impl(i, lo, len, lam)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn symmetric_column_avx2(&mut self, i: usize, lo: usize, len: usize, lam: f64) {
        self.symmetric_column_impl(i, lo, len, lam)
    }
}

/// Sums over the normalised costs `norms` of a window for the spread and the confidence,
/// relative to the best cell `best_k` (cost `best_norm`): `(Σw, Σw·x, Σw·x², Σnorm, count)`
/// with `x = k - best_k` and `w = exp(-(norm - best_norm)·sharpness)`, zero once the exponent
/// is below -20 (negligible next to the best cell's 1). Infinite costs count in nothing.
/// Branch-free, so it vectorises; the exponential is the soft-DTW kernel's polynomial.
#[inline(always)]
fn spread_sums_impl<const F: bool>(
    norms: &[f64],
    scratch: &mut [f64],
    k0: usize,
    best_k: usize,
    best_norm: f64,
    sharpness: f64,
) -> [f64; 5] {
    let weights = &mut scratch[..norms.len()];
    for (w, &norm) in weights.iter_mut().zip(norms) {
        let z = (norm - best_norm) * sharpness;
        // An infinite cost gives z = ∞ and weight 0.
        let e = exp_nonpos::<F>(-z);
        *w = if z <= 20.0 { e } else { 0.0 };
    }
    // Four independent partial sums per quantity: one running sum is a chain of dependent
    // float adds the compiler may not reorder, so it would neither vectorise nor pipeline.
    const LANES: usize = 4;
    let mut acc = [[0.0f64; LANES]; 5];
    let x0 = k0 as f64 - best_k as f64;
    let add = |acc: &mut [[f64; LANES]; 5], l: usize, w: f64, norm: f64, x: f64| {
        let finite = norm.is_finite();
        acc[0][l] += w;
        acc[1][l] += w * x;
        acc[2][l] += w * x * x;
        acc[3][l] += if finite { norm } else { 0.0 };
        acc[4][l] += if finite { 1.0 } else { 0.0 };
    };
    let full = norms.len() / LANES * LANES;
    for c in (0..full).step_by(LANES) {
        for l in 0..LANES {
            add(
                &mut acc,
                l,
                weights[c + l],
                norms[c + l],
                x0 + (c + l) as f64,
            );
        }
    }
    for c in full..norms.len() {
        add(&mut acc, c - full, weights[c], norms[c], x0 + c as f64);
    }
    acc.map(|a| (a[0] + a[1]) + (a[2] + a[3]))
}

fn spread_sums(
    norms: &[f64],
    scratch: &mut [f64],
    k0: usize,
    best_k: usize,
    best_norm: f64,
    sharp: f64,
) -> [f64; 5] {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { spread_sums_avx2(norms, scratch, k0, best_k, best_norm, sharp) };
    }
    spread_sums_impl::<false>(norms, scratch, k0, best_k, best_norm, sharp)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn spread_sums_avx2(
    norms: &[f64],
    scratch: &mut [f64],
    k0: usize,
    best_k: usize,
    best_norm: f64,
    sharp: f64,
) -> [f64; 5] {
    spread_sums_impl::<true>(norms, scratch, k0, best_k, best_norm, sharp)
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
        // Normalised costs first (a vector loop), then the argmin (a light serial one).
        for ((norm, &c), &w) in self.costs[..len]
            .iter_mut()
            .zip(&self.cur[..len])
            .zip(&self.cur_w[..len])
        {
            *norm = if w > 0.0 { c / w } else { f64::INFINITY };
        }
        let mut best_k = 0usize;
        let mut best_norm = f64::INFINITY;
        for (k, &norm) in self.costs[..len].iter().enumerate() {
            if norm <= best_norm && norm.is_finite() {
                best_norm = norm;
                best_k = k;
            }
        }
        // Spread and confidence from soft weights around the best cell; only cells near it
        // matter for the spread, which bounds the exponentials.
        let sharp = self.cfg.spread_sharpness as f64;
        let (k0, k1) = (best_k.saturating_sub(100), (best_k + 101).min(len));
        let [sw, sj, sjj, norm_sum, count] = spread_sums(
            &self.costs[k0..k1],
            &mut self.pad,
            k0,
            best_k,
            best_norm,
            sharp,
        );
        let var = if sw > 0.0 {
            (sjj / sw - (sj / sw).powi(2)).max(0.0)
        } else {
            0.0
        };
        let mean_norm = norm_sum / count.max(1.0);
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

    fn random_frames(n: usize, seed: u64) -> Vec<FeatureFrame> {
        crate::test_util::random_frames(n, seed, false)
    }

    /// Every column of the hot path, with moving bounded windows and a start past frame 0,
    /// against the recursion written out cell by cell: the previous column looked up by
    /// reference frame (infinite outside its window), the three candidates in the pattern's
    /// order with strict comparisons.
    #[test]
    fn hot_path_columns_equal_the_cell_by_cell_recursion() {
        let reference = random_frames(90, 11);
        // A performance that dwells, then rushes, so the window moves at varying speed.
        let perf: Vec<FeatureFrame> = (0..70)
            .map(|i| reference[((i * i) / 60 + 5).min(89)])
            .collect();
        for (start, window, memory) in [(0usize, 16usize, 1.0f32), (7, 24, 1.0), (3, 90, 0.97)] {
            let cfg = OltwConfig {
                window_frames: window,
                memory,
                ..OltwConfig::default()
            };
            let w = cfg.weights;
            let lam = memory as f64;
            let mut oltw = Oltw::new(reference.clone().into(), cfg);
            oltw.reset_to(start);
            // (lo, costs, weights) of the previous column.
            let mut prev: Option<(usize, Vec<f64>, Vec<f64>)> = None;
            for (i, f) in perf.iter().enumerate() {
                oltw.step(f);
                let (lo, len) = (oltw.prev_lo, oltw.prev_len);
                let (mut col, mut colw) = (vec![f64::INFINITY; len], vec![0.0f64; len]);
                for k in 0..len {
                    let j = lo + k;
                    if j < start {
                        continue;
                    }
                    let d = frame_cost(f, &reference[j], w) as f64;
                    let mut best = if i == 0 && j == start {
                        (d, 1.0)
                    } else {
                        (f64::INFINITY, 0.0)
                    };
                    if let Some((plo, pc, pw)) = &prev {
                        let at = |t: usize| {
                            (t >= *plo && t < plo + pc.len()).then(|| (pc[t - plo], pw[t - plo]))
                        };
                        if let Some((c, cw)) = j.checked_sub(1).and_then(at) {
                            if lam * c + 2.0 * d < best.0 {
                                best = (lam * c + 2.0 * d, lam * cw + 2.0);
                            }
                        }
                        if let Some((c, cw)) = at(j) {
                            if lam * c + d < best.0 {
                                best = (lam * c + d, lam * cw + 1.0);
                            }
                        }
                    }
                    if k > 0 && col[k - 1] + d < best.0 {
                        best = (col[k - 1] + d, colw[k - 1] + 1.0);
                    }
                    col[k] = best.0;
                    colw[k] = best.1;
                }
                for k in 0..len {
                    let (got, want) = (oltw.prev[k], col[k]);
                    assert!(
                        got == want || (got - want).abs() <= 1e-12 * want.abs(),
                        "start {start} window {window}: column {i}, cell {k}: {got} vs {want}"
                    );
                    if want.is_finite() {
                        assert_eq!(oltw.prev_w[k], colw[k], "column {i}, cell {k} weight");
                    }
                }
                prev = Some((lo, col, colw));
            }
        }
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
