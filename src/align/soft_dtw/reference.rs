//! Straightforward soft-DTW, written to be obviously correct rather than fast: the full
//! `(N+1) x (M+1)` matrix with `+∞` borders, `std` exp/ln, row by row (Cuturi & Blondel 2017,
//! Algorithms 1 and 2). The fast kernels are tested against these; benches use them as the
//! "naive" baseline.

use super::{band_mask, Matrix};

/// Soft-min of `values` by log-sum-exp around the minimum (γ > 0); `+∞` entries drop out.
pub fn softmin(values: &[f64], gamma: f64) -> f64 {
    let m = values.iter().copied().fold(f64::INFINITY, f64::min);
    if m == f64::INFINITY {
        return f64::INFINITY;
    }
    let s: f64 = values.iter().map(|&v| (-(v - m) / gamma).exp()).sum();
    m - gamma * s.ln()
}

/// Accumulated soft cost `R` (size `(N+1) x (M+1)`, row 0 and column 0 the `+∞` border,
/// `R[0,0] = 0`); cells outside the band (when given, half-width in frames) are `+∞`.
/// `gamma = 0` gives hard DTW.
pub fn forward(cost: &Matrix, gamma: f64, band: Option<usize>) -> Vec<Vec<f64>> {
    let (n, m) = (cost.rows(), cost.cols());
    let mask = band_mask(n, m, band);
    let mut r = vec![vec![f64::INFINITY; m + 1]; n + 1];
    r[0][0] = 0.0;
    for i in 1..=n {
        for j in 1..=m {
            if !mask[(i - 1) * m + (j - 1)] {
                continue;
            }
            let prev = [r[i - 1][j - 1], r[i - 1][j], r[i][j - 1]];
            let s = if gamma == 0.0 {
                prev.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                softmin(&prev, gamma)
            };
            r[i][j] = cost.get(i - 1, j - 1) + s;
        }
    }
    r
}

/// `SDTW^γ(C)`, or DTW for `gamma = 0`.
pub fn value(cost: &Matrix, gamma: f64, band: Option<usize>) -> f64 {
    let r = forward(cost, gamma, band);
    r[cost.rows()][cost.cols()]
}

/// Expected alignment `E = ∂ SDTW^γ(C) / ∂C` by the backward recursion (γ > 0).
pub fn expected_alignment(cost: &Matrix, gamma: f64, band: Option<usize>) -> Matrix {
    let (n, m) = (cost.rows(), cost.cols());
    let r = forward(cost, gamma, band);
    // Padded copies: R = -∞ beyond the last row/column so those neighbours get weight 0.
    let mut rp = vec![vec![f64::NEG_INFINITY; m + 2]; n + 2];
    let mut cp = vec![vec![0.0; m + 2]; n + 2];
    for i in 1..=n {
        for j in 1..=m {
            rp[i][j] = r[i][j];
            cp[i][j] = cost.get(i - 1, j - 1);
        }
    }
    rp[n + 1][m + 1] = r[n][m];
    let mut e = vec![vec![0.0; m + 2]; n + 2];
    e[n + 1][m + 1] = 1.0;
    for i in (1..=n).rev() {
        for j in (1..=m).rev() {
            if rp[i][j] == f64::INFINITY {
                continue; // outside the band
            }
            let weight = |rn: f64, cn: f64| {
                if rn.is_infinite() {
                    0.0
                } else {
                    ((rn - cn - rp[i][j]) / gamma).exp()
                }
            };
            e[i][j] = e[i + 1][j] * weight(rp[i + 1][j], cp[i + 1][j])
                + e[i][j + 1] * weight(rp[i][j + 1], cp[i][j + 1])
                + e[i + 1][j + 1] * weight(rp[i + 1][j + 1], cp[i + 1][j + 1]);
        }
    }
    // The padded corner stood in for "the end"; (N, M) itself has E = 1.
    Matrix::from_fn(n, m, |i, j| e[i + 1][j + 1])
}

/// Hard DTW path (0-based cells from (0,0) to (N-1,M-1)) by backtracking the `γ = 0` matrix;
/// ties prefer the diagonal step.
pub fn dtw_path(cost: &Matrix, band: Option<usize>) -> Vec<(usize, usize)> {
    let r = forward(cost, 0.0, band);
    let (mut i, mut j) = (cost.rows(), cost.cols());
    let mut path = vec![(i - 1, j - 1)];
    while (i, j) != (1, 1) {
        let cands = [(i - 1, j - 1), (i - 1, j), (i, j - 1)];
        let mut best = cands[0];
        for &c in &cands[1..] {
            if r[c.0][c.1] < r[best.0][best.1] {
                best = c;
            }
        }
        (i, j) = best;
        path.push((i - 1, j - 1));
    }
    path.reverse();
    path
}
