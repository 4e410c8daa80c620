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
//! - [`SoftDtw::value_and_alignment`] adds the backward recursion for `E` (`O(NM)` memory):
//!   the forward pass stores the soft-min weights of every cell (the Gibbs probabilities of
//!   its three predecessors, 16 bytes a cell), so the backward pass is a weighted sum with no
//!   exponential: `E[i,j] = Σ over the successors s of E[s] · weight of (i,j) in s`.
//! - [`FeatureCost`] builds `C` from two feature sequences (squared Euclidean or cosine) and
//!   carries `E` back to a gradient with respect to the first sequence. The `*_features`
//!   functions ([`SoftDtw::value_features`], [`SoftDtw::alignment_features`],
//!   [`SoftDtw::grad_features`], [`dtw_features`]) compute the costs on the fly and never
//!   store `C`; [`SoftDtw::value_features_threads`] pipelines one large value over threads.
//! - [`SoftDtw::divergence`] is `D(X, Y) = SDTW(X, Y) - (SDTW(X, X) + SDTW(Y, Y))/2`.
//! - [`SoftDtw::batch_values`] and [`SoftDtw::batch_divergences`] run many pairs on the rayon
//!   pool.
//! - A Sakoe-Chiba band ([`SoftDtw::with_band`]) of half-width `W` frames admits the 0-based
//!   cell (i, j) iff `|j (N-1) - i (M-1)| ≤ W · min(N-1, M-1)`: the cells within `W` frames of
//!   the straight line from the first to the last cell, measured along the longer sequence.
//!   The definition is symmetric (`SDTW(C) = SDTW(Cᵀ)`), and a band too narrow to contain any
//!   path is an error that names the narrowest band that works.
//!
//! The fast recursions are in `kernel` (stripes of 64 rows swept along their anti-diagonals,
//! vectorised); the plain ones in [`mod@reference`] are what the tests compare against.

pub mod io;
pub(crate) mod kernel;
pub mod reference;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::{Error, Result};
use kernel::{DiagCost, DiagSink, Geometry, StripeScratch, STRIPE_ROWS};

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
    /// peak memory is the matrix plus the forward weights: 24 bytes a cell.
    pub fn value_and_alignment_owned(&self, cost: Matrix) -> Result<SoftAlignment> {
        check_finite("cost", cost.as_slice())?;
        let (n, m) = (cost.rows(), cost.cols());
        let g = geometry(n, m, self.band)?;
        let mut buf = cost.into_vec();
        let (value, ws) = {
            let c = &buf;
            forward_sweep_store(
                &g,
                self.gamma,
                RowMajor {
                    c,
                    cols: m,
                    transposed: false,
                },
            )
        };
        if self.band.is_some() {
            buf.fill(0.0); // outside the band
        }
        backward_sweep(
            &g,
            &ws,
            RowMajorSink {
                e: &mut buf,
                cols: m,
            },
        );
        Ok(SoftAlignment {
            value,
            expected: Matrix::new(n, m, buf)?,
        })
    }

    /// `SDTW^γ(X, Y)` and the expected alignment `E` (N x M) between two feature sequences,
    /// the costs computed on the fly (no cost matrix is stored).
    pub fn alignment_features(
        &self,
        x: &Matrix,
        y: &Matrix,
        cost: FeatureCost,
    ) -> Result<SoftAlignment> {
        check_pair(x, y)?;
        let (n, m) = (x.rows(), y.rows());
        let g = geometry(n, m, self.band)?;
        let f = DiagFeatures::new(cost, x, y);
        let (value, ws) = forward_sweep_store(&g, self.gamma, &f);
        let buf = if self.band.is_some() {
            let mut buf = vec![0.0f64; n * m]; // outside the band
            backward_sweep(
                &g,
                &ws,
                RowMajorSink {
                    e: &mut buf,
                    cols: m,
                },
            );
            buf
        } else {
            // Every cell is put exactly once: no need to clear 8 bytes a cell first.
            let mut buf: Vec<f64> = Vec::with_capacity(n * m);
            backward_sweep(
                &g,
                &ws,
                UninitSink {
                    e: &mut buf.spare_capacity_mut()[..n * m],
                    cols: m,
                },
            );
            // SAFETY: without a band the stripes cover rows 1..=n and each stripe's diagonals
            // cover every column 1..=m, so the sweep has written all n·m entries.
            unsafe { buf.set_len(n * m) };
            buf
        };
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

    /// As [`SoftDtw::value_features`] on `threads` threads (0: one per core; the stripes of
    /// rows pipelined, each a diagonal behind the one above), with the same result to the bit.
    /// Worth it for one large pair; for many pairs prefer [`SoftDtw::batch_values`].
    pub fn value_features_threads(
        &self,
        x: &Matrix,
        y: &Matrix,
        cost: FeatureCost,
        threads: usize,
    ) -> Result<f64> {
        check_pair(x, y)?;
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            t => t,
        };
        let (rows, cols) = if x.rows() >= y.rows() { (x, y) } else { (y, x) };
        if threads < 2 || rows.rows() <= STRIPE_ROWS {
            return value_features_unchecked::<false>(x, y, cost, self.gamma, self.band);
        }
        let g = geometry(rows.rows(), cols.rows(), self.band)?;
        let f = DiagFeatures::new(cost, rows, cols);
        Ok(sweep_pipelined::<false, _>(&g, self.gamma, &f, threads))
    }

    /// `SDTW^γ(X, Y)` and its gradient with respect to `X` (N x d).
    pub fn grad_features(
        &self,
        x: &Matrix,
        y: &Matrix,
        cost: FeatureCost,
    ) -> Result<(f64, Matrix)> {
        check_pair(x, y)?;
        let g = geometry(x.rows(), y.rows(), self.band)?;
        let f = DiagFeatures::new(cost, x, y);
        let (value, ws) = forward_sweep_store(&g, self.gamma, &f);
        let mut sink = JacobianSink::new(&f, &g);
        backward_sweep(&g, &ws, &mut sink);
        Ok((value, sink.gradient(x)?))
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

/// Feature sequences laid out for reading costs along anti-diagonals: lane `k` of diagonal `d`
/// starting at row `i` is row frame `i + k` against column frame `d - i - k` (1-based), so the
/// rows are stored transposed and the columns transposed and reversed, both contiguous in `k`.
struct DiagFeatures {
    kind: FeatureCost,
    dim: usize,
    n: usize,
    m: usize,
    /// Row frames transposed (dim x n); unit-normalised (zero for a zero frame) for cosine.
    xt: Vec<f64>,
    /// Column frames transposed and reversed (dim x m): `yr[k * m + q]` is frame `m - 1 - q`.
    yr: Vec<f64>,
}

impl DiagFeatures {
    fn new(kind: FeatureCost, x: &Matrix, y: &Matrix) -> Self {
        let (n, m, dim) = (x.rows(), y.rows(), x.cols());
        // Cosine: each frame over its norm, as `FeatureCost::matrix` does (bit for bit).
        let scaled = |v: &Matrix, i: usize, k: usize| -> f64 {
            let row = v.row(i);
            if kind == FeatureCost::Cosine {
                let nv = row.iter().map(|a| a * a).sum::<f64>().sqrt();
                if nv > 0.0 {
                    row[k] / nv
                } else {
                    0.0
                }
            } else {
                row[k]
            }
        };
        let mut xt = vec![0.0; dim * n];
        for i in 0..n {
            for k in 0..dim {
                xt[k * n + i] = scaled(x, i, k);
            }
        }
        let mut yr = vec![0.0; dim * m];
        for j in 0..m {
            for k in 0..dim {
                yr[k * m + (m - 1 - j)] = scaled(y, j, k);
            }
        }
        Self {
            kind,
            dim,
            n,
            m,
            xt,
            yr,
        }
    }
}

impl DiagFeatures {
    /// Costs of lanes `k0..k0 + L` of the diagonal whose lane 0 reads row column `xb` and
    /// reversed column `q0`. The sum over dimensions stays in registers; the order of the
    /// operations is that of [`FeatureCost::matrix`], so both give the same bits.
    #[inline(always)]
    fn lanes<const L: usize>(&self, xb: usize, q0: usize, k0: usize, out: &mut [f64]) {
        let (n, m) = (self.n, self.m);
        let mut acc = [0.0f64; L];
        for k in 0..self.dim {
            let xs = &self.xt[k * n + xb + k0..k * n + xb + k0 + L];
            let ys = &self.yr[k * m + q0 + k0..k * m + q0 + k0 + L];
            match self.kind {
                FeatureCost::SqEuclidean => {
                    for l in 0..L {
                        let diff = xs[l] - ys[l];
                        acc[l] += diff * diff;
                    }
                }
                FeatureCost::Cosine => {
                    for l in 0..L {
                        acc[l] += xs[l] * ys[l];
                    }
                }
            }
        }
        let out = &mut out[k0..k0 + L];
        match self.kind {
            FeatureCost::SqEuclidean => out.copy_from_slice(&acc),
            // A zero frame has all-zero unit coordinates: cost exactly 1, as defined.
            FeatureCost::Cosine => {
                for l in 0..L {
                    out[l] = 1.0 - acc[l];
                }
            }
        }
    }
}

impl DiagCost for &DiagFeatures {
    #[inline(always)]
    fn fill(&mut self, d: usize, i: usize, out: &mut [f64]) {
        let w = out.len();
        let (xb, q0) = (i - 1, self.m + i - d);
        let mut k0 = 0;
        while k0 + 8 <= w {
            self.lanes::<8>(xb, q0, k0, out);
            k0 += 8;
        }
        while k0 < w {
            self.lanes::<1>(xb, q0, k0, out);
            k0 += 1;
        }
    }
}

/// Accumulates, from `E`, what the chain rule to the row sequence needs: `Σ_j E[i, j]` and
/// `Σ_j E[i, j] y_j` (with `y_j` as [`DiagFeatures`] stores it: raw for the squared Euclidean
/// cost, unit for cosine). Only one stripe of `E` is held at a time.
struct JacobianSink<'a> {
    f: &'a DiagFeatures,
    g: &'a Geometry,
    /// Column frames row-major (m x dim), scaled as in `f`.
    y: Vec<f64>,
    /// `E` of the stripe being swept: row `(i - 1) mod STRIPE_ROWS`, 0-based column.
    block: Vec<f64>,
    rowsum: Vec<f64>,
    /// `Σ_j E[i, j] y_j`, row-major (n x dim).
    ey: Vec<f64>,
}

impl<'a> JacobianSink<'a> {
    fn new(f: &'a DiagFeatures, g: &'a Geometry) -> Self {
        let (m, dim) = (f.m, f.dim);
        let mut y = vec![0.0; m * dim];
        for j in 0..m {
            for k in 0..dim {
                y[j * dim + k] = f.yr[k * m + (m - 1 - j)];
            }
        }
        Self {
            f,
            g,
            y,
            block: vec![0.0; STRIPE_ROWS * m],
            rowsum: vec![0.0; f.n],
            ey: vec![0.0; f.dim * f.n],
        }
    }

    /// Row sums and `E Y` of rows `i0..=i1` from the block, over each row's admitted columns.
    #[inline(always)]
    fn accumulate_impl(&mut self, i0: usize, i1: usize) {
        let (m, dim) = (self.f.m, self.f.dim);
        for i in i0..=i1 {
            let (lo, hi) = (self.g.jlo[i] - 1, self.g.jhi[i]);
            let row = &self.block[((i - 1) % STRIPE_ROWS) * m..][..m];
            let acc = &mut self.ey[(i - 1) * dim..i * dim];
            let mut s = 0.0;
            if dim == 12 {
                // The common chroma case, with the accumulators in registers.
                let mut a = [0.0f64; 12];
                for (&e, yj) in row[lo..hi]
                    .iter()
                    .zip(self.y[lo * 12..hi * 12].chunks_exact(12))
                {
                    s += e;
                    for k in 0..12 {
                        a[k] += e * yj[k];
                    }
                }
                acc.copy_from_slice(&a);
            } else {
                let ys = self.y[lo * dim..hi * dim].chunks_exact(dim.max(1));
                for (&e, yj) in row[lo..hi].iter().zip(ys) {
                    s += e;
                    for (a, &yk) in acc.iter_mut().zip(yj) {
                        *a += e * yk;
                    }
                }
            }
            self.rowsum[i - 1] = s;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn accumulate_avx2(&mut self, i0: usize, i1: usize) {
        self.accumulate_impl(i0, i1)
    }

    /// `∂/∂x Σ_ij E[i, j] cost(x_i, y_j)` (N x d), as [`FeatureCost::grad_first`] defines it.
    fn gradient(&self, x: &Matrix) -> Result<Matrix> {
        let (n, dim) = (self.f.n, self.f.dim);
        let mut g = vec![0.0; n * dim];
        for i in 0..n {
            let xi = x.row(i);
            let ey = &self.ey[i * dim..(i + 1) * dim];
            let gi = &mut g[i * dim..(i + 1) * dim];
            match self.f.kind {
                FeatureCost::SqEuclidean => {
                    // 2 (rowsum(E)_i x_i - (E Y)_i)
                    for k in 0..dim {
                        gi[k] = 2.0 * (self.rowsum[i] * xi[k] - ey[k]);
                    }
                }
                FeatureCost::Cosine => {
                    // -(v - x̂ (x̂·v)) / ‖x‖ with v = Σ_j E[i, j] ŷ_j; zero for a zero frame.
                    let nx = xi.iter().map(|a| a * a).sum::<f64>().sqrt();
                    if nx == 0.0 {
                        continue;
                    }
                    let proj: f64 = (0..dim).map(|k| xi[k] / nx * ey[k]).sum();
                    for k in 0..dim {
                        gi[k] = -(ey[k] - xi[k] / nx * proj) / nx;
                    }
                }
            }
        }
        Matrix::new(n, dim, g)
    }
}

impl DiagSink for JacobianSink<'_> {
    #[inline(always)]
    fn put(&mut self, d: usize, i: usize, e: &[f64]) {
        let m = self.f.m;
        let mut idx = ((i - 1) % STRIPE_ROWS) * m + (d - i - 1);
        for &v in e {
            self.block[idx] = v;
            idx += m - 1;
        }
    }

    fn stripe_done(&mut self, i0: usize, i1: usize) {
        #[cfg(target_arch = "x86_64")]
        if kernel::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
            return unsafe { self.accumulate_avx2(i0, i1) };
        }
        self.accumulate_impl(i0, i1)
    }
}

/// [`RowMajorSink`] into memory not yet initialised.
struct UninitSink<'a> {
    e: &'a mut [std::mem::MaybeUninit<f64>],
    cols: usize,
}

impl DiagSink for UninitSink<'_> {
    #[inline(always)]
    fn put(&mut self, d: usize, i: usize, e: &[f64]) {
        let m = self.cols;
        let mut idx = (i - 1) * m + (d - i - 1);
        for &v in e {
            self.e[idx].write(v);
            idx += m - 1;
        }
    }
}

/// Costs read along anti-diagonals from a row-major matrix with `cols` columns, or from its
/// transpose.
#[derive(Clone, Copy)]
struct RowMajor<'a> {
    c: &'a [f64],
    cols: usize,
    transposed: bool,
}

impl DiagCost for RowMajor<'_> {
    #[inline(always)]
    fn fill(&mut self, d: usize, i: usize, out: &mut [f64]) {
        let (c, cols) = (self.c, self.cols);
        // Along an anti-diagonal the row-major index moves by cols - 1 (1 - cols transposed).
        if self.transposed {
            // Cell (i', j') of the transpose is c[(j' - 1) * cols + (i' - 1)].
            let mut idx = (d - i - 1) * cols + (i - 1);
            for o in out.iter_mut() {
                *o = c[idx];
                idx = idx.wrapping_sub(cols - 1);
            }
        } else {
            let mut idx = (i - 1) * cols + (d - i - 1);
            for o in out.iter_mut() {
                *o = c[idx];
                idx += cols - 1;
            }
        }
    }
}

/// Puts `E` along anti-diagonals into a row-major matrix with `cols` columns.
struct RowMajorSink<'a> {
    e: &'a mut [f64],
    cols: usize,
}

impl DiagSink for RowMajorSink<'_> {
    #[inline(always)]
    fn put(&mut self, d: usize, i: usize, e: &[f64]) {
        let m = self.cols;
        let mut idx = (i - 1) * m + (d - i - 1);
        for &v in e {
            self.e[idx] = v;
            idx += m - 1;
        }
    }
}

/// Forward recursion stripe by stripe, value only; `cost` as in [`kernel::forward_stripe`].
fn sweep<const HARD: bool>(g: &Geometry, gamma: f64, mut cost: impl DiagCost) -> f64 {
    let mut top = kernel::initial_top(g.m);
    let mut sc = StripeScratch::new();
    let mut i0 = 1;
    while i0 <= g.n {
        let i1 = (i0 + STRIPE_ROWS - 1).min(g.n);
        kernel::forward_stripe::<HARD, false, _, _, _>(
            &mut cost,
            g,
            i0,
            i1,
            gamma,
            top.as_mut_slice(),
            &kernel::Sequential,
            &mut sc,
            &mut [],
        );
        i0 = i1 + 1;
    }
    top[g.m]
}

/// [`sweep`] on `threads` threads: stripe `s` runs on thread `s mod threads`, one diagonal
/// behind the stripe above it (a pipeline), all sharing one boundary row. Same arithmetic as
/// [`sweep`], so the same bits.
fn sweep_pipelined<const HARD: bool, C: DiagCost + Copy + Send + Sync>(
    g: &Geometry,
    gamma: f64,
    cost: C,
    threads: usize,
) -> f64 {
    let m = g.m;
    let top: Vec<AtomicU64> = (0..=m)
        .map(|j| AtomicU64::new(if j == 0 { 0.0f64 } else { kernel::BIG }.to_bits()))
        .collect();
    let stripes: Vec<(usize, usize)> = (1..=g.n)
        .step_by(STRIPE_ROWS)
        .map(|i0| (i0, (i0 + STRIPE_ROWS - 1).min(g.n)))
        .collect();
    let progress: Vec<AtomicUsize> = stripes.iter().map(|_| AtomicUsize::new(0)).collect();
    let complete = AtomicUsize::new(usize::MAX);
    let run = |t: usize| {
        let mut cost = cost;
        let mut sc = StripeScratch::new();
        for s in (t..stripes.len()).step_by(threads) {
            let (i0, i1) = stripes[s];
            let sync = kernel::Pipelined {
                above: if s == 0 { &complete } else { &progress[s - 1] },
                mine: &progress[s],
            };
            kernel::forward_stripe::<HARD, false, _, _, _>(
                &mut cost,
                g,
                i0,
                i1,
                gamma,
                &top[..],
                &sync,
                &mut sc,
                &mut [],
            );
        }
    };
    // Real threads, not rayon tasks: every stripe spins on the one above, so all must run.
    std::thread::scope(|scope| {
        for t in 1..threads {
            let run = &run;
            scope.spawn(move || run(t));
        }
        run(0);
    });
    f64::from_bits(top[m].load(Ordering::Acquire))
}

/// The forward pass's soft-min weights, stripe by stripe (16 bytes a cell).
struct WeightStore {
    data: Vec<f64>,
    /// `(i0, i1, offset)` of every stripe.
    stripes: Vec<(usize, usize, usize)>,
}

/// Forward recursion keeping the weights for [`backward_sweep`]; returns `R[n, m]`.
fn forward_sweep_store(g: &Geometry, gamma: f64, mut cost: impl DiagCost) -> (f64, WeightStore) {
    let mut stripes = Vec::with_capacity(g.n.div_ceil(STRIPE_ROWS));
    let mut total = 0usize;
    let mut i0 = 1;
    while i0 <= g.n {
        let i1 = (i0 + STRIPE_ROWS - 1).min(g.n);
        stripes.push((i0, i1, total));
        total += kernel::stripe_store_len(g, i0, i1);
        i0 = i1 + 1;
    }
    let mut data = take_store(total);
    let mut top = kernel::initial_top(g.m);
    let mut sc = StripeScratch::new();
    for &(i0, i1, off) in &stripes {
        let len = kernel::stripe_store_len(g, i0, i1);
        kernel::forward_stripe::<false, true, _, _, _>(
            &mut cost,
            g,
            i0,
            i1,
            gamma,
            top.as_mut_slice(),
            &kernel::Sequential,
            &mut sc,
            &mut data[off..off + len],
        );
    }
    (top[g.m], WeightStore { data, stripes })
}

/// Weight stores up to this many values (32 MB) stay with their thread between calls, so a
/// run of same-sized problems does not allocate and clear them again. Stale entries are
/// harmless: they are old weights (finite), and the backward sweep only ever multiplies the
/// weight of a cell by that cell's `E`, which is 0 for every cell this call did not write.
const STORE_CACHE_MAX: usize = 1 << 22;

thread_local! {
    static STORE_CACHE: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_store(total: usize) -> Vec<f64> {
    let mut v = if total <= STORE_CACHE_MAX {
        STORE_CACHE
            .try_with(|c| std::mem::take(&mut *c.borrow_mut()))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    v.resize(total, 0.0);
    v
}

impl Drop for WeightStore {
    fn drop(&mut self) {
        if self.data.capacity() <= STORE_CACHE_MAX {
            let data = std::mem::take(&mut self.data);
            // During thread teardown the cache is gone: then the store is simply freed.
            let _ = STORE_CACHE.try_with(|c| *c.borrow_mut() = data);
        }
    }
}

/// Backward recursion over every stripe, last first; `out(d, i, e)` receives `E` of the
/// cells `(i + k, d - i - k)` (1-based), each admitted cell once.
fn backward_sweep(g: &Geometry, ws: &WeightStore, mut out: impl DiagSink) {
    let mut sc = kernel::BackScratch::new(g.m);
    for &(i0, i1, off) in ws.stripes.iter().rev() {
        let len = kernel::stripe_store_len(g, i0, i1);
        kernel::backward_stripe(g, i0, i1, &ws.data[off..off + len], &mut sc, &mut out);
        out.stripe_done(i0, i1);
    }
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
        sweep::<HARD>(
            &g,
            gamma,
            RowMajor {
                c,
                cols: m,
                transposed: false,
            },
        )
    } else {
        sweep::<HARD>(
            &g.transposed(),
            gamma,
            RowMajor {
                c,
                cols: m,
                transposed: true,
            },
        )
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
    let f = DiagFeatures::new(cost, rows, cols);
    Ok(sweep::<HARD>(&g, gamma, &f))
}

/// The DTW cost between two feature sequences (frames are rows), the costs computed on the
/// fly, in `O(min(N, M))` memory.
pub fn dtw_features(x: &Matrix, y: &Matrix, cost: FeatureCost, band: Option<usize>) -> Result<f64> {
    check_pair(x, y)?;
    value_features_unchecked::<true>(x, y, cost, 1.0, band)
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
