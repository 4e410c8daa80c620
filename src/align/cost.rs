//! The local cost between two feature frames, shared by every aligner.
//!
//! `cost = (1 - <chroma_a, chroma_b>) + onset_weight * |onset_a - onset_b|^2 / 2 + offset`:
//! cosine distance of the (unit-norm) chroma vectors, plus the squared Euclidean distance of
//! the onset-chroma vectors (the DLNCO idea of synctoolbox: sharpens alignment at note onsets,
//! where chroma alone changes slowly), plus a constant that makes every visited cell cost
//! something (a smoothness prior for offline DTW, see [`CostWeights::offset`]).

use crate::features::{Chroma, FeatureFrame, N_CHROMA};

/// Weights of the cost terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostWeights {
    /// Weight of the onset term relative to the chroma term.
    pub onset: f32,
    /// Constant added to every frame cost (cost units). Under offline DTW with diagonal weight
    /// 1 every path from (0, 0) to (i, j) visits `i + 1 + h` cells, `h` its horizontal steps, so
    /// the offset charges each step that moves the reference on without the performance: a
    /// prior for the straighter of two paths that match about equally well. synctoolbox has the
    /// same prior in its cost (cosine distance rescaled to [1, 2]). 0 leaves the cost as it
    /// was. Online aligners compare cells of one column, which a constant does not shift in
    /// the same way; the soft aligner has its own step penalty
    /// ([`crate::align::soft_online::SoftOnlineConfig::step_penalty`]).
    pub offset: f32,
}

impl Default for CostWeights {
    fn default() -> Self {
        Self {
            onset: 3.0,
            offset: 0.0,
        }
    }
}

impl CostWeights {
    /// Weights for offline alignment. A global path needs the onset term less than an online
    /// aligner, which must decide at each frame; measured on the dev corpus, onset weight 1
    /// gave 92.0 % of events within 100 ms against 90.4 % with the online weight 3.
    pub const OFFLINE: CostWeights = CostWeights {
        onset: 1.0,
        offset: 0.0,
    };

    /// Weights for offline alignment against a reference recording: two recordings share
    /// their onsets (attacks, not a synthesiser's), so the onset term can weigh much more.
    /// Measured on the dev corpus against `reference.flac` (15 cases, log compression 10000),
    /// within 50 / 100 ms: onset weight 3 84.4 / 91.9 %, 4 86.2 / 92.6 %, 5 86.7 / 92.9 %,
    /// 6 86.6 / 92.9 %; against the score the offline optimum stays at 1.
    ///
    /// Offset 0.15: two recordings of one piece (two singers, two pianos, their rubato) leave
    /// long stretches where a path a beat early or late matches about as well as the right one;
    /// the offset prefers the path that does not wander. Measured on the dev corpus against
    /// `reference.flac` (`eval --mode align --against audio`, with the level-relative silence
    /// of [`crate::features::FeatureConfig::silence_below_peak_db`]; 25 target cases pooled,
    /// within 50 / 100 / 300 ms; in brackets the real-recording pair within 300 ms): offset 0
    /// 85.3 / 91.6 / 97.2 % (92.9, 92.9), 0.1 87.1 / 93.6 / 98.0 % (98.2, 98.2), 0.15 86.8 /
    /// 93.4 / 98.0 % (98.2, 98.2), 0.2 86.6 / 93.4 / 98.1 % (100, 100), 0.25 86.0 / 92.9 /
    /// 97.9 % (100, 100). Every offset costs the rendered chorale with fermatas (`bwv66_6`) 2
    /// of its 46 events within 300 ms: a held note is a run of steps the prior charges.
    pub const OFFLINE_AUDIO: CostWeights = CostWeights {
        onset: 5.0,
        offset: 0.15,
    };
}

/// Cost between two frames (>= 0).
#[inline]
pub fn frame_cost(a: &FeatureFrame, b: &FeatureFrame, w: CostWeights) -> f32 {
    // Four independent partial sums: a single running sum is a chain of dependent float adds
    // that the compiler may not reorder, so it cannot use SIMD lanes; this form vectorises.
    const LANES: usize = 4;
    let mut dot = [0.0f32; LANES];
    let mut d2 = [0.0f32; LANES];
    for m in 0..N_CHROMA / LANES {
        for l in 0..LANES {
            let k = m * LANES + l;
            dot[l] += a.chroma[k] * b.chroma[k];
            let d = a.onset[k] - b.onset[k];
            d2[l] += d * d;
        }
    }
    let dot = (dot[0] + dot[1]) + (dot[2] + dot[3]);
    let d2 = (d2[0] + d2[1]) + (d2[2] + d2[3]);
    (1.0 - dot).max(0.0) + 0.5 * w.onset * d2 + w.offset
}

/// `1 - cos` between two chroma vectors of any norm (1 when either is zero): how far a frame
/// is from the reference frame it is matched to, for re-localisation.
pub fn cosine_distance(a: &Chroma, b: &Chroma) -> f32 {
    let (mut d, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    let n = (na * nb).sqrt();
    if n > 0.0 {
        1.0 - d / n
    } else {
        1.0
    }
}

/// A reference stored feature-major (`2 · N_CHROMA` rows of one value per reference frame), so
/// the costs of one performance frame against a run of reference frames vectorise across
/// frames. Build it once and share it (`Arc`) between the aligners of one follower.
#[derive(Clone, Debug)]
pub struct TransposedReference {
    values: Vec<f32>,
    frames: usize,
}

impl TransposedReference {
    /// Transpose `reference`.
    pub fn new(reference: &[FeatureFrame]) -> Self {
        let n = reference.len();
        let mut values = vec![0.0f32; 2 * N_CHROMA * n];
        for (j, f) in reference.iter().enumerate() {
            for k in 0..N_CHROMA {
                values[k * n + j] = f.chroma[k];
                values[(N_CHROMA + k) * n + j] = f.onset[k];
            }
        }
        Self { values, frames: n }
    }

    /// Number of reference frames.
    pub fn len(&self) -> usize {
        self.frames
    }

    /// The sum of frame `j`'s onset vector (0 where nothing starts).
    pub fn onset_strength(&self, j: usize) -> f32 {
        let n = self.frames;
        (0..N_CHROMA)
            .map(|k| self.values[(N_CHROMA + k) * n + j])
            .sum()
    }

    /// True for an empty reference.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// `out[k] = frame_cost(frame, reference[lo + k])` for `k < out.len()`: the same operations
    /// in the same order as [`frame_cost`] (four partial sums, then their pairwise sum), so
    /// the same bits, eight reference frames at a time.
    pub fn costs(&self, frame: &FeatureFrame, lo: usize, w: CostWeights, out: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if crate::align::soft_dtw::kernel::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
            return unsafe { self.costs_avx2(frame, lo, w, out) };
        }
        self.costs_impl(frame, lo, w, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn costs_avx2(&self, frame: &FeatureFrame, lo: usize, w: CostWeights, out: &mut [f64]) {
        self.costs_impl(frame, lo, w, out)
    }

    #[inline(always)]
    fn costs_impl(&self, frame: &FeatureFrame, lo: usize, w: CostWeights, out: &mut [f64]) {
        const LANES: usize = 4;
        const W: usize = 16;
        let n = self.frames;
        let len = out.len().min(n.saturating_sub(lo));
        let rt = &self.values;
        let mut k0 = 0;
        while k0 + W <= len {
            let j0 = lo + k0;
            let mut dot = [[0.0f32; W]; LANES];
            let mut d2 = [[0.0f32; W]; LANES];
            for m in 0..N_CHROMA / LANES {
                for l in 0..LANES {
                    let k = m * LANES + l;
                    let (a, o) = (frame.chroma[k], frame.onset[k]);
                    let rc = &rt[k * n + j0..k * n + j0 + W];
                    let ro = &rt[(N_CHROMA + k) * n + j0..(N_CHROMA + k) * n + j0 + W];
                    for t in 0..W {
                        dot[l][t] += a * rc[t];
                        let d = o - ro[t];
                        d2[l][t] += d * d;
                    }
                }
            }
            // Whole-array passes, so the combination and the widening to f64 stay vector
            // operations instead of W scalar conversions and stores.
            let mut cost = [0.0f32; W];
            for t in 0..W {
                let dt = (dot[0][t] + dot[1][t]) + (dot[2][t] + dot[3][t]);
                let dd = (d2[0][t] + d2[1][t]) + (d2[2][t] + d2[3][t]);
                cost[t] = (1.0 - dt).max(0.0) + 0.5 * w.onset * dd + w.offset;
            }
            for (o, &c) in out[k0..k0 + W].iter_mut().zip(&cost) {
                *o = f64::from(c);
            }
            k0 += W;
        }
        for (k, o) in out.iter_mut().enumerate().take(len).skip(k0) {
            let j = lo + k;
            let mut dot = [0.0f32; LANES];
            let mut d2 = [0.0f32; LANES];
            for m in 0..N_CHROMA / LANES {
                for l in 0..LANES {
                    let c = m * LANES + l;
                    dot[l] += frame.chroma[c] * rt[c * n + j];
                    let d = frame.onset[c] - rt[(N_CHROMA + c) * n + j];
                    d2[l] += d * d;
                }
            }
            let dt = (dot[0] + dot[1]) + (dot[2] + dot[3]);
            let dd = (d2[0] + d2[1]) + (d2[2] + d2[3]);
            *o = f64::from((1.0 - dt).max(0.0) + 0.5 * w.onset * dd + w.offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transposed, vectorised costs are bit-identical to [`frame_cost`].
    #[test]
    fn transposed_costs_equal_frame_cost_bit_for_bit() {
        let frames: Vec<FeatureFrame> = (0..37)
            .map(|j| {
                let mut f = FeatureFrame::default();
                for k in 0..N_CHROMA {
                    f.chroma[k] = ((j * 13 + k * 7) as f32 * 0.61).sin().abs();
                    f.onset[k] = ((j * 5 + k) as f32 * 0.27).cos().max(0.0);
                }
                f
            })
            .collect();
        let t = TransposedReference::new(&frames);
        let w = CostWeights {
            onset: 3.0,
            offset: 0.25,
        };
        for lo in [0usize, 1, 5, 20, 36] {
            for len in [0usize, 1, 7, 8, 9, 17, 40] {
                let mut out = vec![f64::NAN; len];
                t.costs(&frames[3], lo, w, &mut out);
                let valid = len.min(frames.len() - lo);
                for k in 0..valid {
                    let want = f64::from(frame_cost(&frames[3], &frames[lo + k], w));
                    assert_eq!(out[k].to_bits(), want.to_bits(), "lo {lo} k {k}");
                }
            }
        }
    }

    /// The lane-split sums equal the plain definition.
    #[test]
    fn matches_the_definition() {
        let mut a = FeatureFrame::default();
        let mut b = FeatureFrame::default();
        for k in 0..N_CHROMA {
            a.chroma[k] = (k as f32 * 0.37).sin().abs();
            b.chroma[k] = (k as f32 * 0.91).cos().abs();
            a.onset[k] = (k as f32 * 1.3).sin().max(0.0);
            b.onset[k] = (k as f32 * 0.2).cos().max(0.0);
        }
        let w = CostWeights {
            onset: 2.0,
            offset: 0.125,
        };
        let dot: f32 = (0..N_CHROMA).map(|k| a.chroma[k] * b.chroma[k]).sum();
        let d2: f32 = (0..N_CHROMA)
            .map(|k| (a.onset[k] - b.onset[k]).powi(2))
            .sum();
        let want = (1.0 - dot).max(0.0) + 0.5 * 2.0 * d2 + 0.125;
        assert!((frame_cost(&a, &b, w) - want).abs() < 1e-5);
    }

    #[test]
    fn identical_frames_cost_zero_and_orthogonal_cost_one() {
        let mut a = FeatureFrame::default();
        a.chroma[0] = 1.0;
        let mut b = FeatureFrame::default();
        b.chroma[5] = 1.0;
        let w = CostWeights::default();
        assert_eq!(frame_cost(&a, &a, w), 0.0);
        assert!((frame_cost(&a, &b, w) - 1.0).abs() < 1e-6);
        b.onset[3] = 1.0;
        assert!((frame_cost(&a, &b, w) - (1.0 + 0.5 * w.onset)).abs() < 1e-6);
    }
}
