//! The local cost between two feature frames, shared by every aligner.
//!
//! `cost = (1 - <chroma_a, chroma_b>) + onset_weight * |onset_a - onset_b|^2 / 2`:
//! cosine distance of the (unit-norm) chroma vectors, plus the squared Euclidean distance of
//! the onset-chroma vectors (the DLNCO idea of synctoolbox: sharpens alignment at note onsets,
//! where chroma alone changes slowly).

use crate::features::{FeatureFrame, N_CHROMA};

/// Weights of the cost terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostWeights {
    /// Weight of the onset term relative to the chroma term.
    pub onset: f32,
}

impl Default for CostWeights {
    fn default() -> Self {
        Self { onset: 3.0 }
    }
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
    (1.0 - dot).max(0.0) + 0.5 * w.onset * d2
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let w = CostWeights { onset: 2.0 };
        let dot: f32 = (0..N_CHROMA).map(|k| a.chroma[k] * b.chroma[k]).sum();
        let d2: f32 = (0..N_CHROMA)
            .map(|k| (a.onset[k] - b.onset[k]).powi(2))
            .sum();
        let want = (1.0 - dot).max(0.0) + 0.5 * 2.0 * d2;
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
