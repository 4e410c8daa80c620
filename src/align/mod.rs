//! Alignment: frame costs, offline DTW (full oracle and bounded-memory multiscale), the online
//! aligners (OLTW, soft-DTW) and the tracker that turns raw matches into reported positions.

pub mod cost;
pub mod dtw;
pub mod oltw;
pub mod onset_gate;
pub mod relocate;
pub mod soft_dtw;
pub mod soft_online;
pub mod tempo;
pub mod tracker;
pub mod transpose;
pub mod warp;

use crate::features::FeatureFrame;

/// What an online aligner reports for one performance frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AlignStep {
    /// Reference frame (fractional) matched to the centre of the performance frame.
    pub ref_frame: f64,
    /// Confidence in [0, 1]: 1 = a sharp, low-cost match.
    pub confidence: f32,
    /// Spread of the position estimate (standard deviation, reference frames).
    pub spread_frames: f32,
    /// Normalised accumulated cost of the match (mean local cost along the best path; lower
    /// is better). Comparable between aligners fed the same frames, e.g. under different
    /// transpositions.
    pub cost: f32,
}

/// An aligner that consumes performance frames one at a time against a fixed reference.
/// `step` is O(window) and does not allocate.
pub trait OnlineAligner: Send {
    /// Process the next performance frame.
    fn step(&mut self, frame: &FeatureFrame) -> AlignStep;
    /// Restart the alignment so that the next frame is matched near `ref_frame`
    /// (re-localisation after a jump, seek from a remote control).
    fn reset_to(&mut self, ref_frame: usize);
    /// Number of performance frames consumed since construction or the last reset.
    fn frames_seen(&self) -> usize;
    /// Short name for logs ("oltw", "soft").
    fn name(&self) -> &'static str;
    /// Semitones the performance is believed to be above the reference, or None while that is
    /// still being decided.
    fn key_shift(&self) -> Option<usize> {
        Some(0)
    }
}

/// Rotate the pitch classes of a frame: the result's class `c` is the input's class
/// `(c + shift) % 12`, so a performance transposed up by `shift` semitones is brought back to
/// the score's key.
pub fn transpose_frame(frame: &FeatureFrame, shift: usize) -> FeatureFrame {
    let n = crate::features::N_CHROMA;
    let mut out = *frame;
    for c in 0..n {
        out.chroma[c] = frame.chroma[(c + shift) % n];
        out.onset[c] = frame.onset[(c + shift) % n];
        out.attack[c] = frame.attack[(c + shift) % n];
    }
    out
}

/// Least-squares slope of `y(0), ..., y(n - 1)` against their index (units of y per step),
/// from values taken relative to `y(0)` so the sums stay small on long references; `None`
/// when fewer than two values leave no spread.
pub(crate) fn least_squares_slope(n: usize, y: impl Fn(usize) -> f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let y0 = y(0);
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for k in 0..n {
        let (x, v) = (k as f64, y(k) - y0);
        sx += x;
        sy += v;
        sxx += x * x;
        sxy += x * v;
    }
    let nf = n as f64;
    let den = nf * sxx - sx * sx;
    (den > 0.0).then(|| (nf * sxy - sx * sy) / den)
}

/// Least-squares slopes of the two halves of the last `min(frames_seen, ring.len())` values of
/// `ring`, a ring buffer written at `frames_seen % ring.len()` (an aligner's recent positions):
/// the tempo evidence both the soft aligner's tilt and its tempo model require to agree, since
/// a performer at another tempo shows it throughout while a stall or a jump shows in one half.
/// `None` when either half has too few values for a slope.
pub(crate) fn half_slopes(ring: &[f64], frames_seen: usize) -> Option<(f64, f64)> {
    let cap = ring.len();
    let n = frames_seen.min(cap);
    let start = frames_seen - n;
    let half = n / 2;
    let slope = |from: usize, len: usize| least_squares_slope(len, |k| ring[(from + k) % cap]);
    Some((slope(start, half)?, slope(start + half, n - half)?))
}

/// The search window of an online aligner for its next frame: `window_frames` reference
/// frames (fewer at the end of the reference) starting `back_fraction` of the window behind
/// `position`, never moving back once following has started (the previous column's cells keep
/// their meaning). Returns (first frame, length).
pub(crate) fn follow_window(
    reference_len: usize,
    window_frames: usize,
    back_fraction: f32,
    position: usize,
    started: bool,
    prev_lo: usize,
) -> (usize, usize) {
    let m = reference_len;
    let w = window_frames.min(m);
    let back = (w as f32 * back_fraction) as usize;
    let mut lo = position.saturating_sub(back).min(m - w);
    if started {
        lo = lo.max(prev_lo);
    }
    (lo, w.min(m - lo))
}

#[cfg(test)]
mod tests {
    use super::least_squares_slope;

    /// Against the textbook formula on absolute values, and exact on a line far from 0.
    #[test]
    fn least_squares_slope_matches_the_definition() {
        let ys: Vec<f64> = (0..57)
            .map(|k| ((k * 37 % 11) as f64).sin() * 3.0 + k as f64)
            .collect();
        let n = ys.len() as f64;
        let mx = (n - 1.0) / 2.0;
        let my = ys.iter().sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for (k, &y) in ys.iter().enumerate() {
            num += (k as f64 - mx) * (y - my);
            den += (k as f64 - mx) * (k as f64 - mx);
        }
        let got = least_squares_slope(ys.len(), |k| ys[k]).expect("slope");
        assert!((got - num / den).abs() < 1e-12, "{got} vs {}", num / den);
        let line = least_squares_slope(500, |k| 1e6 + 1.5 * k as f64).expect("slope");
        assert!((line - 1.5).abs() < 1e-12, "{line}");
        assert_eq!(least_squares_slope(1, |_| 3.0), None);
        assert_eq!(least_squares_slope(0, |_| 3.0), None);
    }
}
