//! Fitting the confidence model ([`crate::engine::confidence`]) on a follow evaluation, and
//! checking it on pieces it was not fitted on.
//!
//! Every scored event (a ground-truth row, with the position the follower held then) is a
//! sample: its [`Evidence`] and whether the position was within 300 ms. A logistic regression
//! is fitted by Newton's method (iteratively reweighted least squares) with a small ridge
//! penalty. The cross-validation leaves one piece out at a time (all its cases), fits on the
//! others and predicts the left-out piece: the calibration table of those predictions is
//! what to expect on new music.

use std::collections::BTreeSet;

use super::alignment::AlignmentReport;
use crate::engine::confidence::{ConfidenceModel, Evidence, N_INPUTS, N_KNOTS};

/// One scored event.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Index of the piece (in [`Samples::pieces`]).
    pub piece: usize,
    /// What the confidence is computed from.
    pub evidence: Evidence,
    /// Error of the held position (ms).
    pub error_ms: f64,
}

/// Every scored event of an evaluation, with the pieces they come from.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Piece names.
    pub pieces: Vec<String>,
    /// The events.
    pub samples: Vec<Sample>,
}

/// The events of a follow evaluation (its positions carry their evidence).
pub fn samples(report: &AlignmentReport) -> Samples {
    let pieces: Vec<String> = report
        .results
        .iter()
        .map(|r| r.case.piece.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut samples = Vec::new();
    for r in &report.results {
        let piece = pieces.iter().position(|p| *p == r.case.piece).unwrap_or(0);
        let times: Vec<f64> = r.positions.iter().map(|p| p.perf_time_s).collect();
        for (&t, &error_ms) in r.gt_times_s.iter().zip(&r.errors_ms) {
            if let Some(p) = super::held_index(&times, t).and_then(|i| r.positions.get(i)) {
                if error_ms.is_finite() {
                    samples.push(Sample {
                        piece,
                        evidence: p.evidence,
                        error_ms,
                    });
                }
            }
        }
    }
    Samples { pieces, samples }
}

/// Ridge penalty on the weights (not the bias): keeps the fit stable when an input hardly
/// varies in the training set.
const RIDGE: f64 = 1.0;

/// Fit the model on `samples` (within 300 ms = 1): the linear score by logistic regression,
/// then the curve from score to probability by isotonic regression, its knots at evenly
/// spaced quantiles of the score.
pub fn fit<'a>(samples: impl Iterator<Item = &'a Sample> + Clone) -> ConfidenceModel {
    let linear = fit_logistic(samples.clone());
    let mut scored: Vec<(f32, f64)> = samples
        .map(|s| {
            (
                linear.score(&s.evidence),
                if s.error_ms.abs() <= 300.0 { 1.0 } else { 0.0 },
            )
        })
        .filter(|(z, _)| z.is_finite())
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fitted = isotonic(&scored.iter().map(|s| s.1).collect::<Vec<_>>());
    let knots = std::array::from_fn(|i| {
        if scored.is_empty() {
            return (i as f32, 0.5);
        }
        let at = i * (scored.len() - 1) / (N_KNOTS - 1);
        // No position is certain, none hopeless: the dev corpus is a sample.
        (scored[at].0, fitted[at].clamp(0.01, 0.99) as f32)
    });
    ConfidenceModel { knots, ..linear }
}

/// The non-decreasing sequence closest to `y` in least squares (pool adjacent violators).
pub fn isotonic(y: &[f64]) -> Vec<f64> {
    // Blocks of (sum, count), merged while a block's mean is below the one before.
    let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(y.len());
    for &v in y {
        blocks.push((v, 1));
        while blocks.len() > 1 {
            let (s1, n1) = blocks[blocks.len() - 1];
            let (s0, n0) = blocks[blocks.len() - 2];
            if s0 / n0 as f64 <= s1 / n1 as f64 {
                break;
            }
            blocks.pop();
            if let Some(last) = blocks.last_mut() {
                *last = (s0 + s1, n0 + n1);
            }
        }
    }
    blocks
        .iter()
        .flat_map(|&(s, n)| std::iter::repeat_n(s / n as f64, n))
        .collect()
}

/// The linear score alone, fitted by logistic regression (its knots sample the logistic).
fn fit_logistic<'a>(samples: impl Iterator<Item = &'a Sample> + Clone) -> ConfidenceModel {
    const D: usize = N_INPUTS + 1;
    let row = |s: &Sample| {
        let x = s.evidence.inputs();
        let mut r = [1.0f64; D];
        for (r, v) in r[1..].iter_mut().zip(x) {
            *r = f64::from(v);
        }
        (r, if s.error_ms.abs() <= 300.0 { 1.0 } else { 0.0 })
    };
    let mut beta = [0.0f64; D];
    for _ in 0..50 {
        // Gradient and Hessian of the penalised negative log-likelihood.
        let mut g = [0.0f64; D];
        let mut h = [[0.0f64; D]; D];
        for s in samples.clone() {
            let (x, y) = row(s);
            let z: f64 = x.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let w = (p * (1.0 - p)).max(1e-9);
            for i in 0..D {
                g[i] += (p - y) * x[i];
                for j in 0..D {
                    h[i][j] += w * x[i] * x[j];
                }
            }
        }
        for i in 1..D {
            g[i] += RIDGE * beta[i];
            h[i][i] += RIDGE;
        }
        let Some(step) = solve(h, g) else {
            break;
        };
        let mut change = 0.0f64;
        for (b, d) in beta.iter_mut().zip(step) {
            *b -= d;
            change = change.max(d.abs());
        }
        if change < 1e-7 {
            break;
        }
    }
    let mut weights = [0.0f32; N_INPUTS];
    for (w, b) in weights.iter_mut().zip(&beta[1..]) {
        *w = *b as f32;
    }
    ConfidenceModel {
        bias: beta[0] as f32,
        weights,
        ..ConfidenceModel::default()
    }
}

/// Solve `a x = b` by Gaussian elimination with partial pivoting; None if singular.
fn solve<const D: usize>(mut a: [[f64; D]; D], mut b: [f64; D]) -> Option<[f64; D]> {
    for col in 0..D {
        let pivot = (col..D).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for r in col + 1..D {
            let f = a[r][col] / pivot_row[col];
            for (x, p) in a[r][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0.0; D];
    for r in (0..D).rev() {
        let s: f64 = (r + 1..D).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

/// Leave one piece out at a time: each event's probability from a model fitted on the other
/// pieces, with its error, as `(confidence, error ms)` for [`super::calibration`].
pub fn cross_validated(all: &Samples) -> Vec<(f32, f64)> {
    let mut out = Vec::with_capacity(all.samples.len());
    for piece in 0..all.pieces.len() {
        let model = fit(all.samples.iter().filter(|s| s.piece != piece));
        out.extend(
            all.samples
                .iter()
                .filter(|s| s.piece == piece)
                .map(|s| (model.probability(&s.evidence), s.error_ms)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Rng;

    #[test]
    fn solve_matches_a_known_system() {
        let a = [[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]];
        let x = [1.0, -2.0, 0.5];
        let b: [f64; 3] = std::array::from_fn(|i| (0..3).map(|j| a[i][j] * x[j]).sum());
        let got = solve(a, b).unwrap_or_else(|| panic!("singular"));
        for (g, e) in got.iter().zip(x) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
        assert!(solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 2.0]).is_none());
    }

    /// Isotonic regression by brute force: the least-squares non-decreasing fit of a short
    /// 0/1 sequence takes its values among the means of its runs, so try every
    /// non-decreasing assignment on a grid of those.
    fn isotonic_oracle(y: &[f64]) -> f64 {
        let n = y.len();
        let mut grid: Vec<f64> = Vec::new();
        for i in 0..n {
            for j in i + 1..=n {
                grid.push(y[i..j].iter().sum::<f64>() / (j - i) as f64);
            }
        }
        grid.sort_by(f64::total_cmp);
        grid.dedup();
        let mut best = f64::INFINITY;
        let mut pick = vec![0usize; n];
        loop {
            if pick.windows(2).all(|w| w[0] <= w[1]) {
                let e: f64 = pick
                    .iter()
                    .zip(y)
                    .map(|(&g, v)| (grid[g] - v).powi(2))
                    .sum();
                best = best.min(e);
            }
            let mut k = 0;
            while k < n {
                pick[k] += 1;
                if pick[k] < grid.len() {
                    break;
                }
                pick[k] = 0;
                k += 1;
            }
            if k == n {
                return best;
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn isotonic_is_monotone_and_as_close_as_the_best(y in proptest::collection::vec(0u8..2, 1..6)) {
            let y: Vec<f64> = y.into_iter().map(f64::from).collect();
            let f = isotonic(&y);
            proptest::prop_assert!(f.windows(2).all(|w| w[0] <= w[1] + 1e-12));
            let e: f64 = f.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum();
            proptest::prop_assert!((e - isotonic_oracle(&y)).abs() < 1e-9, "{:?} -> {:?}", y, f);
        }
    }

    #[test]
    fn fit_recovers_a_logistic_relation() {
        // y ~ Bernoulli(sigmoid(-2 + 5 mass)): the fit finds about that.
        let mut rng = Rng::new(7);
        let samples: Vec<Sample> = (0..20_000)
            .map(|_| {
                let mass = rng.next_f32();
                let p = 1.0 / (1.0 + (-(-2.0 + 5.0 * mass)).exp());
                let ok = rng.next_f32() < p;
                Sample {
                    piece: 0,
                    evidence: Evidence {
                        mass,
                        ..Evidence::default()
                    },
                    error_ms: if ok { 0.0 } else { 1000.0 },
                }
            })
            .collect();
        let m = fit(samples.iter());
        assert!((m.bias + 2.0).abs() < 0.2, "{m:?}");
        // The curve is close to the logistic it was drawn from.
        for z in [-1.5f32, 0.0, 1.5, 2.5] {
            let p = m.probability_of_score(z);
            assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 0.06, "{z}: {p}");
        }
        assert!((m.weights[0] - 5.0).abs() < 0.3, "{m:?}");
        assert!(m.weights[1..].iter().all(|w| w.abs() < 1e-3), "{m:?}");
    }
}
