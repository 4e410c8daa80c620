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
    let mut dot = 0.0f32;
    let mut d2 = 0.0f32;
    for k in 0..N_CHROMA {
        dot += a.chroma[k] * b.chroma[k];
        let d = a.onset[k] - b.onset[k];
        d2 += d * d;
    }
    (1.0 - dot).max(0.0) + 0.5 * w.onset * d2
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!((frame_cost(&a, &b, w) - 1.5).abs() < 1e-6);
    }
}
