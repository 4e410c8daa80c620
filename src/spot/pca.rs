//! Principal component analysis for shingle vectors: covariance of a sample, eigenvectors by
//! the cyclic Jacobi method (exact to rounding for a symmetric matrix, no dependency), projection
//! onto the `k` leading components.

/// A fitted projection `y = W (x - mean)`, `W` holding `k` orthonormal rows of length `dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca {
    /// Input dimension.
    pub dim: usize,
    /// Output dimension.
    pub k: usize,
    /// Mean of the sample (`dim`).
    pub mean: Vec<f32>,
    /// Components, row-major `k x dim`, by decreasing variance.
    pub components: Vec<f32>,
    /// Variance along each component (`k`).
    pub variances: Vec<f32>,
}

/// Eigen-decomposition of a symmetric `n x n` matrix (row-major) by cyclic Jacobi rotations.
/// Returns `(eigenvalues, eigenvectors as columns, row-major n x n)`, unsorted.
pub fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-22 * total.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let app = a[p * n + p];
                let aqq = a[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- J^T A J on rows/columns p and q.
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

impl Pca {
    /// Fit on `samples` (row-major, `dim` per row), keeping `k <= dim` components.
    pub fn fit(samples: &[f32], dim: usize, k: usize) -> crate::Result<Pca> {
        if dim == 0 || samples.len() < 2 * dim.max(1) || !samples.len().is_multiple_of(dim) {
            return Err(crate::Error::invalid(
                "PCA sample",
                format!("{} values of dimension {dim}", samples.len()),
                "need at least two whole rows",
            ));
        }
        if k == 0 || k > dim {
            return Err(crate::Error::invalid(
                "PCA dimension",
                k.to_string(),
                format!("must be 1..={dim}"),
            ));
        }
        let n = samples.len() / dim;
        let mut mean = vec![0.0f64; dim];
        for row in samples.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0f64; dim * dim];
        let mut centred = vec![0.0f64; dim];
        for row in samples.chunks_exact(dim) {
            for (c, (&x, m)) in centred.iter_mut().zip(row.iter().zip(&mean)) {
                *c = x as f64 - m;
            }
            for i in 0..dim {
                let ci = centred[i];
                for j in i..dim {
                    cov[i * dim + j] += ci * centred[j];
                }
            }
        }
        for i in 0..dim {
            for j in i..dim {
                let v = cov[i * dim + j] / (n - 1) as f64;
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        let (vals, vecs) = jacobi_eigen(&cov, dim);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
        let mut components = Vec::with_capacity(k * dim);
        for &c in order.iter().take(k) {
            components.extend((0..dim).map(|r| vecs[r * dim + c] as f32));
        }
        Ok(Pca {
            dim,
            k,
            mean: mean.iter().map(|&m| m as f32).collect(),
            components,
            variances: order.iter().take(k).map(|&c| vals[c] as f32).collect(),
        })
    }

    /// Project one row (`dim` values) into `out` (`k` values).
    pub fn project(&self, x: &[f32], out: &mut [f32]) {
        for (o, w) in out.iter_mut().zip(self.components.chunks_exact(self.dim)) {
            let mut s = 0.0f32;
            for ((xi, mi), wi) in x.iter().zip(&self.mean).zip(w) {
                s += (xi - mi) * wi;
            }
            *o = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_reconstructs_the_matrix() {
        let n = 6;
        let mut a = vec![0.0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = ((i * 7 + j * 3) % 11) as f64 - 5.0;
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
        }
        let (vals, v) = jacobi_eigen(&a, n);
        // A = V diag(vals) V^T, V orthonormal.
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| v[i * n + k] * vals[k] * v[j * n + k]).sum();
                assert!((r - a[i * n + j]).abs() < 1e-9, "{i},{j}");
                let o: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                assert!((o - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn finds_the_dominant_direction() {
        // Points along (1, 2, 2)/3 with small noise in other directions.
        let mut s = Vec::new();
        for i in 0..200 {
            let t = (i as f32 - 99.5) / 10.0;
            let e = ((i * 37) % 13) as f32 / 130.0 - 0.05;
            s.extend([t / 3.0 + e, 2.0 * t / 3.0 - e, 2.0 * t / 3.0]);
        }
        let p = Pca::fit(&s, 3, 1).unwrap();
        let c = &p.components;
        let cos = (c[0] + 2.0 * c[1] + 2.0 * c[2]).abs() / 3.0;
        assert!(cos > 0.999, "{c:?}");
        let mut y = [0.0f32];
        p.project(&[1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0], &mut y);
        assert!((y[0].abs() - 1.0).abs() < 0.01);
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Pca::fit(&[1.0, 2.0, 3.0], 3, 1).is_err());
        assert!(Pca::fit(&[0.0; 12], 3, 4).is_err());
    }
}
