//! Soft-DTW (Cuturi & Blondel, "Soft-DTW: a differentiable loss function for time-series",
//! ICML 2017) and the soft-DTW divergence (Blondel, Mensch & Vert, "Differentiable divergences
//! between time series", AISTATS 2021).
//!
//! For a cost matrix `C` (N x M) and smoothing γ > 0,
//! `SDTW^γ(C) = -γ log Σ_A exp(-⟨A, C⟩/γ)` over every monotone alignment matrix `A` from
//! (0, 0) to (N-1, M-1) with steps (1,0), (0,1), (1,1); γ → 0 gives the DTW cost. Its gradient
//! `E^γ(C) = ∂SDTW/∂C` is the expected alignment under the Gibbs distribution
//! `p(A) ∝ exp(-⟨A, C⟩/γ)`.
//!
//! - [`SoftDtw::value`] runs the forward recursion in `O(NM)` time and `O(min(N, M))` memory.
//! - [`SoftDtw::value_and_alignment`] adds the backward recursion for `E` (`O(NM)` memory).
//! - [`FeatureCost`] builds `C` from two feature sequences (squared Euclidean or cosine) and
//!   carries `E` back to a gradient with respect to the first sequence.
//! - [`SoftDtw::divergence`] is `D(X, Y) = SDTW(X, Y) - (SDTW(X, X) + SDTW(Y, Y))/2`.
//! - [`SoftDtw::batch_values`] and [`SoftDtw::batch_divergences`] run many pairs on the rayon
//!   pool.
//! - A Sakoe-Chiba band ([`SoftDtw::with_band`]) of half-width `W` frames admits the 0-based
//!   cell (i, j) iff `|j (N-1) - i (M-1)| ≤ W · min(N-1, M-1)`: the cells within `W` frames of
//!   the straight line from the first to the last cell, measured along the longer sequence.
//!   The definition is symmetric (`SDTW(C) = SDTW(Cᵀ)`), and a band too narrow to contain any
//!   path is an error that names the narrowest band that works.
//!
//! The fast recursions are in `kernel` (anti-diagonal sweeps, vectorised); the plain ones in
//! [`reference`] are what the tests compare against.

pub mod io;
pub(crate) mod kernel;
pub mod reference;

use rayon::prelude::*;

use crate::{Error, Result};
use kernel::{Geometry, StripeScratch, STRIPE_ROWS};

/// A dense row-major matrix of `f64`: cost matrices (N x M), expected alignments (N x M) and
/// feature sequences (frames x dimensions).
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// Wraps row-major `data`; its length must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::invalid(
                "matrix",
                format!("{rows} x {cols}"),
                format!("{} values given", data.len()),
            ));
        }
        Ok(Self { rows, cols, data })
    }

    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Entry (i, j) = `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Self { rows, cols, data }
    }

    /// From equal-length rows (e.g. one feature frame per row).
    pub fn from_rows<R: AsRef<[f64]>>(rows: &[R]) -> Result<Self> {
        let cols = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (k, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != cols {
                return Err(Error::invalid(
                    "matrix row",
                    k.to_string(),
                    format!("has {} values, the first row has {cols}", r.len()),
                ));
            }
            data.extend_from_slice(r);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Entry (i, j). Panics when out of range, like slice indexing.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of range"
        );
        self.data[i * self.cols + j]
    }

    /// Sets entry (i, j). Panics when out of range, like slice indexing.
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of range"
        );
        self.data[i * self.cols + j] = v;
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// All entries, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// All entries, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// The row-major storage.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// The transpose.
    pub fn transpose(&self) -> Matrix {
        Matrix::from_fn(self.cols, self.rows, |i, j| self.data[j * self.cols + i])
    }

    /// Largest absolute difference to `other` (∞ when the shapes differ).
    pub fn max_abs_diff(&self, other: &Matrix) -> f64 {
        if self.rows != other.rows || self.cols != other.cols {
            return f64::INFINITY;
        }
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }
}

/// Whether each 0-based cell of an `n x m` matrix is inside the Sakoe-Chiba band of half-width
/// `band` frames (all cells when `None`), straight from the definition in the module docs.
pub(crate) fn band_mask(n: usize, m: usize, band: Option<usize>) -> Vec<bool> {
    let k = n.min(m).saturating_sub(1) as i128;
    let mut mask = vec![true; n * m];
    if let Some(w) = band {
        for i in 0..n {
            for j in 0..m {
                let dev = (j as i128 * (n as i128 - 1) - i as i128 * (m as i128 - 1)).abs();
                mask[i * m + j] = dev <= w as i128 * k;
            }
        }
    }
    mask
}

/// Admitted column range of every row for the band (1-based, see [`Geometry`]); `None` when a
/// row is empty or two consecutive rows do not connect, i.e. no path fits in the band.
fn band_rows(n: usize, m: usize, band: Option<usize>) -> Option<Geometry> {
    let mut jlo = vec![0usize; n + 1];
    let mut jhi = vec![0usize; n + 1];
    let (nn, mm) = (n as i128, m as i128);
    let k = (nn.min(mm) - 1).max(0);
    for i in 1..=n {
        let (lo, hi) = match band {
            Some(w) if n > 1 && m > 1 => {
                let centre = (i as i128 - 1) * (mm - 1);
                let wk = w as i128 * k;
                // 0-based j with |j (n-1) - centre| <= wk.
                let lo = -(-(centre - wk)).div_euclid(nn - 1);
                let hi = (centre + wk).div_euclid(nn - 1);
                (lo.max(0) + 1, hi.min(mm - 1) + 1)
            }
            _ => (1, mm),
        };
        if lo > hi {
            return None;
        }
        jlo[i] = lo as usize;
        jhi[i] = hi as usize;
        if i > 1 && jlo[i] > jhi[i - 1] + 1 {
            return None;
        }
    }
    Some(Geometry { n, m, jlo, jhi })
}

fn geometry(n: usize, m: usize, band: Option<usize>) -> Result<Geometry> {
    if n == 0 || m == 0 {
        return Err(Error::invalid(
            "cost matrix",
            format!("{n} x {m}"),
            "soft-DTW needs at least one frame in each sequence",
        ));
    }
    if let Some(g) = band_rows(n, m, band) {
        return Ok(g);
    }
    // Admission grows with the width and everything fits at max(n, m): bisect the narrowest.
    let (mut bad, mut good) = (band.unwrap_or(0), n.max(m));
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if band_rows(n, m, Some(mid)).is_some() {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Err(Error::invalid(
        "band",
        format!("{} frames", band.unwrap_or(0)),
        format!(
            "admits no alignment path for a {n} x {m} cost matrix; the narrowest band that does \
             is {good} frames"
        ),
    ))
}

fn check_finite(what: &'static str, data: &[f64]) -> Result<()> {
    if let Some(k) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            what,
            data[k].to_string(),
            format!("entry {k} is not a finite number"),
        ));
    }
    Ok(())
}

/// Soft-DTW value and its gradient with respect to the cost matrix.
#[derive(Clone, Debug)]
pub struct SoftAlignment {
    /// `SDTW^γ(C)`.
    pub value: f64,
    /// `E^γ(C)` (N x M): expected alignment, entries in [0, 1], `E[0,0] = E[N-1,M-1] = 1`,
    /// zero outside the band.
    pub expected: Matrix,
}

/// The cost between two feature frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureCost {
    /// `‖x - y‖²`.
    SqEuclidean,
    /// `1 - ⟨x, y⟩ / (‖x‖ ‖y‖)`, and 1 when either vector is zero.
    Cosine,
}

impl std::str::FromStr for FeatureCost {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sqeuclidean" => Ok(FeatureCost::SqEuclidean),
            "cosine" => Ok(FeatureCost::Cosine),
            _ => Err(Error::invalid(
                "cost",
                s,
                "expected 'sqeuclidean' or 'cosine'",
            )),
        }
    }
}

fn check_pair(x: &Matrix, y: &Matrix) -> Result<()> {
    if x.cols() != y.cols() {
        return Err(Error::invalid(
            "feature dimensions",
            format!("{} and {}", x.cols(), y.cols()),
            "both sequences need the same number of values per frame",
        ));
    }
    check_finite("feature value", x.as_slice())?;
    check_finite("feature value", y.as_slice())
}

fn norms(x: &Matrix) -> Vec<f64> {
    (0..x.rows())
        .map(|i| x.row(i).iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect()
}

impl FeatureCost {
    /// The cost matrix `C[i, j] = cost(x_i, y_j)` between the frames (rows) of `x` (N x d)
    /// and `y` (M x d).
    pub fn matrix(self, x: &Matrix, y: &Matrix) -> Result<Matrix> {
        check_pair(x, y)?;
        let (n, m) = (x.rows(), y.rows());
        let mut out = vec![0.0f64; n * m];
        self.prepare(y).fill_rows(x, 0..n, &mut out);
        Matrix::new(n, m, out)
    }

    /// Precomputes what the cost needs from the column sequence `y`.
    fn prepare(self, y: &Matrix) -> PreparedCost {
        let m = y.rows();
        // Y transposed (d x M) so the inner loop runs over contiguous columns and vectorises.
        let mut yt = y.transpose().into_vec();
        let ny = norms(y);
        if self == FeatureCost::Cosine {
            for row in yt.chunks_exact_mut(m.max(1)) {
                for (v, &nyj) in row.iter_mut().zip(&ny) {
                    if nyj > 0.0 {
                        *v /= nyj;
                    }
                }
            }
        }
        PreparedCost {
            kind: self,
            yt,
            ny,
            m,
        }
    }

    /// `∂/∂x Σ_ij E[i, j] cost(x_i, y_j)` (N x d): the chain rule from a gradient `e` with
    /// respect to the cost matrix to the first sequence.
    #[allow(clippy::needless_range_loop)] // i, j, k index several arrays at once
    pub fn grad_first(self, x: &Matrix, y: &Matrix, e: &Matrix) -> Result<Matrix> {
        check_pair(x, y)?;
        if e.rows() != x.rows() || e.cols() != y.rows() {
            return Err(Error::invalid(
                "gradient shape",
                format!("{} x {}", e.rows(), e.cols()),
                format!("expected {} x {}", x.rows(), y.rows()),
            ));
        }
        let (n, m, dim) = (x.rows(), y.rows(), x.cols());
        let mut g = Matrix::zeros(n, dim);
        match self {
            FeatureCost::SqEuclidean => {
                // 2 (rowsum(E)_i x_i - (E Y)_i)
                for i in 0..n {
                    let er = e.row(i);
                    let gi = &mut g.data[i * dim..(i + 1) * dim];
                    let mut s = 0.0;
                    for (j, &eij) in er.iter().enumerate() {
                        if eij != 0.0 {
                            s += eij;
                            for (gk, &yk) in gi.iter_mut().zip(y.row(j)) {
                                *gk -= eij * yk;
                            }
                        }
                    }
                    for (gk, &xk) in gi.iter_mut().zip(x.row(i)) {
                        *gk = 2.0 * (*gk + s * xk);
                    }
                }
            }
            FeatureCost::Cosine => {
                // ∂c/∂x = -(ŷ - cos(x, y) x̂) / ‖x‖, zero when either vector is zero.
                let nx = norms(x);
                let ny = norms(y);
                for i in 0..n {
                    if nx[i] == 0.0 {
                        continue;
                    }
                    let xi = x.row(i);
                    let gi = &mut g.data[i * dim..(i + 1) * dim];
                    for j in 0..m {
                        let eij = e.get(i, j);
                        if eij == 0.0 || ny[j] == 0.0 {
                            continue;
                        }
                        let yj = y.row(j);
                        let dot: f64 = xi.iter().zip(yj).map(|(a, b)| a * b).sum();
                        let cos = dot / (nx[i] * ny[j]);
                        for k in 0..dim {
                            gi[k] -= eij * (yj[k] / ny[j] - cos * xi[k] / nx[i]) / nx[i];
                        }
                    }
                }
            }
        }
        Ok(g)
    }
}

/// A cost ready to fill rows of `C` against a fixed column sequence.
struct PreparedCost {
    kind: FeatureCost,
    /// Column sequence transposed (d x m); unit-normalised columns for the cosine cost.
    yt: Vec<f64>,
    ny: Vec<f64>,
    m: usize,
}

impl PreparedCost {
    /// Writes rows `rows` of `C` (cost of `x`'s frames against the columns) into `out`,
    /// row-major with `m` columns.
    fn fill_rows(&self, x: &Matrix, rows: std::ops::Range<usize>, out: &mut [f64]) {
        let m = self.m;
        for (i, row) in rows.zip(out.chunks_exact_mut(m.max(1))) {
            row.fill(0.0);
            match self.kind {
                FeatureCost::SqEuclidean => {
                    for (k, &xk) in x.row(i).iter().enumerate() {
                        for (o, &v) in row.iter_mut().zip(&self.yt[k * m..(k + 1) * m]) {
                            let diff = xk - v;
                            *o += diff * diff;
                        }
                    }
                }
                FeatureCost::Cosine => {
                    let nx = x.row(i).iter().map(|v| v * v).sum::<f64>().sqrt();
                    if nx == 0.0 {
                        row.fill(1.0);
                        continue;
                    }
                    for (k, &xk) in x.row(i).iter().enumerate() {
                        let xk = xk / nx;
                        for (o, &v) in row.iter_mut().zip(&self.yt[k * m..(k + 1) * m]) {
                            *o += xk * v;
                        }
                    }
                    for (o, &nyj) in row.iter_mut().zip(&self.ny) {
                        *o = if nyj > 0.0 { 1.0 - *o } else { 1.0 };
                    }
                }
            }
        }
    }
}

/// Soft-DTW with a fixed smoothing γ and optional Sakoe-Chiba band. Cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftDtw {
    gamma: f64,
    band: Option<usize>,
}

impl SoftDtw {
    /// Soft-DTW with smoothing `gamma` (> 0, finite; same unit as the costs).
    pub fn new(gamma: f64) -> Result<Self> {
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(Error::invalid(
                "gamma",
                gamma.to_string(),
                "must be a finite number > 0",
            ));
        }
        Ok(Self { gamma, band: None })
    }

    /// Restricts alignments to the Sakoe-Chiba band of half-width `half_width_frames` (see the
    /// module docs for the definition on unequal lengths).
    pub fn with_band(mut self, half_width_frames: usize) -> Self {
        self.band = Some(half_width_frames);
        self
    }

    /// The smoothing γ.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The band half-width in frames, if any.
    pub fn band(&self) -> Option<usize> {
        self.band
    }

    /// `SDTW^γ(C)` in `O(min(N, M))` memory.
    pub fn value(&self, cost: &Matrix) -> Result<f64> {
        check_finite("cost", cost.as_slice())?;
        value_unchecked::<false>(cost, self.gamma, self.band)
    }

    /// `SDTW^γ(C)` and the expected alignment `E^γ(C)` (backward recursion, `O(NM)`).
    pub fn value_and_alignment(&self, cost: &Matrix) -> Result<SoftAlignment> {
        self.value_and_alignment_owned(cost.clone())
    }

    /// As [`SoftDtw::value_and_alignment`], reusing the cost matrix's storage for `E`, so the
    /// peak memory is two N x M matrices of `f64` (16 bytes a cell).
    pub fn value_and_alignment_owned(&self, cost: Matrix) -> Result<SoftAlignment> {
        check_finite("cost", cost.as_slice())?;
        let (n, m) = (cost.rows(), cost.cols());
        let g = geometry(n, m, self.band)?;
        let lay = kernel::diag_layout(&g);
        let mut buf = cost.into_vec();
        // Diagonal-major costs: every sweep below reads and writes whole diagonals.
        let mut cd = vec![0.0f64; lay.cells];
        kernel::relayout(&mut buf, &mut cd, &g, &lay, false);
        let mut store = vec![0.0f64; lay.cells];
        let value = kernel::forward_full(&cd, &g, &lay, self.gamma, &mut store);
        kernel::backward(&mut cd, &g, &lay, self.gamma, &store);
        drop(store);
        if lay.cells != n * m {
            buf.fill(0.0); // outside the band
        }
        kernel::relayout(&mut buf, &mut cd, &g, &lay, true);
        Ok(SoftAlignment {
            value,
            expected: Matrix::new(n, m, buf)?,
        })
    }

    /// `SDTW^γ` between two feature sequences (frames are rows).
    /// Costs are computed a stripe of rows at a time, so memory stays `O(min(N, M))`.
    pub fn value_features(&self, x: &Matrix, y: &Matrix, cost: FeatureCost) -> Result<f64> {
        check_pair(x, y)?;
        value_features_unchecked::<false>(x, y, cost, self.gamma, self.band)
    }

    /// `SDTW^γ(X, Y)` and its gradient with respect to `X` (N x d).
    pub fn grad_features(
        &self,
        x: &Matrix,
        y: &Matrix,
        cost: FeatureCost,
    ) -> Result<(f64, Matrix)> {
        let al = self.value_and_alignment_owned(cost.matrix(x, y)?)?;
        Ok((al.value, cost.grad_first(x, y, &al.expected)?))
    }

    /// Soft-DTW divergence `D(X, Y) = SDTW(X, Y) - (SDTW(X, X) + SDTW(Y, Y))/2`: zero for
    /// `X = Y`, and non-negative for both costs here (their Gibbs kernels are positive
    /// definite; Blondel, Mensch & Vert 2021, Prop. 2).
    pub fn divergence(&self, x: &Matrix, y: &Matrix, cost: FeatureCost) -> Result<f64> {
        let xy = self.value_features(x, y, cost)?;
        let xx = self.value_features(x, x, cost)?;
        let yy = self.value_features(y, y, cost)?;
        Ok(xy - 0.5 * (xx + yy))
    }

    /// The divergence and its gradient with respect to `X` (N x d). `SDTW(X, X)` depends on
    /// `X` through both arguments; both costs are symmetric, so the second-argument part is
    /// the first-argument chain rule applied to `Eᵀ`.
    pub fn divergence_grad(
        &self,
        x: &Matrix,
        y: &Matrix,
        cost: FeatureCost,
    ) -> Result<(f64, Matrix)> {
        let (xy, mut g) = self.grad_features(x, y, cost)?;
        let axx = self.value_and_alignment_owned(cost.matrix(x, x)?)?;
        let yy = self.value_features(y, y, cost)?;
        let g1 = cost.grad_first(x, x, &axx.expected)?;
        let g2 = cost.grad_first(x, x, &axx.expected.transpose())?;
        for ((gv, a), b) in g.data.iter_mut().zip(&g1.data).zip(&g2.data) {
            *gv -= 0.5 * (a + b);
        }
        Ok((xy - 0.5 * (axx.value + yy), g))
    }

    /// `SDTW^γ(X_k, Y_k)` for every pair, in parallel on the current rayon pool (use
    /// `ThreadPool::install` to choose the thread count). One result per pair, in order.
    pub fn batch_values(&self, pairs: &[(Matrix, Matrix)], cost: FeatureCost) -> Vec<Result<f64>> {
        pairs
            .par_iter()
            .map(|(x, y)| self.value_features(x, y, cost))
            .collect()
    }

    /// `D(X_k, Y_k)` for every pair, in parallel on the current rayon pool.
    pub fn batch_divergences(
        &self,
        pairs: &[(Matrix, Matrix)],
        cost: FeatureCost,
    ) -> Vec<Result<f64>> {
        pairs
            .par_iter()
            .map(|(x, y)| self.divergence(x, y, cost))
            .collect()
    }
}

/// Forward recursion stripe by stripe; `fill(i0, i1, block)` writes the costs of rows
/// `i0..=i1` (1-based) of the oriented problem, row-major with `g.m` columns.
fn sweep<const HARD: bool>(
    g: &Geometry,
    gamma: f64,
    mut fill: impl FnMut(usize, usize, &mut [f64]),
) -> f64 {
    let m = g.m;
    let mut top = kernel::initial_top(m);
    let mut sc = StripeScratch::new();
    let mut block = vec![0.0f64; STRIPE_ROWS * m];
    let mut i0 = 1;
    while i0 <= g.n {
        let i1 = (i0 + STRIPE_ROWS - 1).min(g.n);
        let blk = &mut block[..(i1 + 1 - i0) * m];
        fill(i0, i1, blk);
        kernel::forward_stripe::<HARD>(blk, g, i0, i1, gamma, &mut top, &mut sc);
        i0 = i1 + 1;
    }
    top[m]
}

/// Value from a cost matrix, oriented so that the stripes run along the longer side and the
/// carried row is the shorter one (memory `O(min(N, M))`).
fn value_unchecked<const HARD: bool>(
    cost: &Matrix,
    gamma: f64,
    band: Option<usize>,
) -> Result<f64> {
    let (n, m) = (cost.rows(), cost.cols());
    let g = geometry(n, m, band)?;
    let c = cost.as_slice();
    let v = if n >= m {
        sweep::<HARD>(&g, gamma, |i0, i1, blk| {
            blk.copy_from_slice(&c[(i0 - 1) * m..i1 * m]);
        })
    } else {
        let gt = g.transposed();
        sweep::<HARD>(&gt, gamma, |i0, i1, blk| {
            let b = i1 + 1 - i0;
            for j in 0..n {
                for (k, &v) in c[j * m + i0 - 1..j * m + i1].iter().enumerate() {
                    blk[k * n + j] = v;
                }
            }
            debug_assert_eq!(blk.len(), b * n);
        })
    };
    Ok(v)
}

/// Value between feature sequences, the longer one along the stripes.
fn value_features_unchecked<const HARD: bool>(
    x: &Matrix,
    y: &Matrix,
    cost: FeatureCost,
    gamma: f64,
    band: Option<usize>,
) -> Result<f64> {
    // Both costs are symmetric, so swapping the sequences transposes C.
    let (rows, cols) = if x.rows() >= y.rows() { (x, y) } else { (y, x) };
    let g = geometry(rows.rows(), cols.rows(), band)?;
    let prep = cost.prepare(cols);
    Ok(sweep::<HARD>(&g, gamma, |i0, i1, blk| {
        prep.fill_rows(rows, i0 - 1..i1, blk);
    }))
}

/// The DTW cost (γ → 0 limit of soft-DTW) in `O(min(N, M))` memory.
pub fn dtw(cost: &Matrix, band: Option<usize>) -> Result<f64> {
    check_finite("cost", cost.as_slice())?;
    value_unchecked::<true>(cost, 1.0, band)
}

/// The DTW cost and an optimal path (0-based cells from (0, 0) to (N-1, M-1)); ties prefer
/// the diagonal step. `O(NM)` memory.
pub fn dtw_path(cost: &Matrix, band: Option<usize>) -> Result<(f64, Vec<(usize, usize)>)> {
    check_finite("cost", cost.as_slice())?;
    let (n, m) = (cost.rows(), cost.cols());
    let g = geometry(n, m, band)?;
    let w = m + 1;
    let mut r = vec![f64::INFINITY; (n + 1) * w];
    r[0] = 0.0;
    for i in 1..=n {
        for j in g.jlo[i]..=g.jhi[i] {
            let best = r[(i - 1) * w + j - 1]
                .min(r[(i - 1) * w + j])
                .min(r[i * w + j - 1]);
            r[i * w + j] = cost.get(i - 1, j - 1) + best;
        }
    }
    let (mut i, mut j) = (n, m);
    let mut path = vec![(n - 1, m - 1)];
    while (i, j) != (1, 1) {
        let cands = [(i - 1, j - 1), (i - 1, j), (i, j - 1)];
        let mut best = cands[0];
        for &c in &cands[1..] {
            if r[c.0 * w + c.1] < r[best.0 * w + best.1] {
                best = c;
            }
        }
        (i, j) = best;
        path.push((i - 1, j - 1));
    }
    path.reverse();
    Ok((r[n * w + m], path))
}

#[cfg(test)]
mod tests;
