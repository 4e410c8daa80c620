//! Soft-DTW on float64 matrices: value, expected alignment, gradients, divergence, batches
//! (`scorefollow::align::soft_dtw`, as `scorefollow softdtw` uses it).

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use scorefollow::align::soft_dtw::{self as sdtw, FeatureCost, Matrix, SoftDtw};

use crate::{detached, invalid, matrix_parts};

/// The cost argument: a frame cost between two sequences, or a cost matrix given as `x`.
#[derive(Clone, Copy)]
enum Cost {
    Features(FeatureCost),
    Precomputed,
}

fn parse_cost(cost: &str) -> PyResult<Cost> {
    if cost == "precomputed" {
        return Ok(Cost::Precomputed);
    }
    cost.parse::<FeatureCost>()
        .map(Cost::Features)
        .map_err(|_| {
            invalid(format!(
                "invalid cost '{cost}': expected 'sqeuclidean', 'cosine' or 'precomputed'"
            ))
        })
}

fn solver(gamma: f64, band: Option<usize>) -> anyhow::Result<SoftDtw> {
    let sd = SoftDtw::new(gamma)?;
    Ok(match band {
        Some(w) => sd.with_band(w),
        None => sd,
    })
}

/// A matrix's values (row-major), rows and columns, borrowed from numpy when contiguous.
type Parts<'a> = (std::borrow::Cow<'a, [f64]>, usize, usize);

fn to_matrix<'a>(a: &'a PyReadonlyArray2<'_, f64>) -> Parts<'a> {
    matrix_parts(a)
}

fn build(parts: &Parts<'_>) -> anyhow::Result<Matrix> {
    Ok(Matrix::new(parts.1, parts.2, parts.0.to_vec())?)
}

/// The sequences of a call: (X, Some(Y)) for a frame cost, (C, None) for a cost matrix.
fn operands<'a>(
    cost: Cost,
    x: &'a PyReadonlyArray2<'_, f64>,
    y: Option<&'a PyReadonlyArray2<'_, f64>>,
) -> PyResult<(Parts<'a>, Option<Parts<'a>>)> {
    match (cost, y) {
        (Cost::Features(_), Some(y)) => Ok((to_matrix(x), Some(to_matrix(y)))),
        (Cost::Features(_), None) => Err(invalid(
            "Y is missing: give two sequences (frames as rows), or cost='precomputed' with a cost matrix as X",
        )),
        (Cost::Precomputed, None) => Ok((to_matrix(x), None)),
        (Cost::Precomputed, Some(_)) => Err(invalid(
            "cost='precomputed' takes the cost matrix as X and no Y",
        )),
    }
}

fn matrix_to_py<'py>(py: Python<'py>, m: Matrix) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (rows, cols) = (m.rows(), m.cols());
    let a = Array2::from_shape_vec((rows, cols), m.into_vec())
        .map_err(|e| invalid(format!("internal error: {e}")))?;
    Ok(a.into_pyarray(py))
}

/// Soft-DTW value; two sequences' value on `threads` threads (0: one per core), the same bits.
#[pyfunction]
#[pyo3(signature = (x, y, gamma, cost, band, threads))]
fn soft_dtw(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    y: Option<PyReadonlyArray2<'_, f64>>,
    gamma: f64,
    cost: &str,
    band: Option<usize>,
    threads: usize,
) -> PyResult<f64> {
    let kind = parse_cost(cost)?;
    let (xp, yp) = operands(kind, &x, y.as_ref())?;
    detached(py, move || {
        let sd = solver(gamma, band)?;
        let x = build(&xp)?;
        Ok(match (kind, yp) {
            (Cost::Features(c), Some(yp)) => {
                sd.value_features_threads(&x, &build(&yp)?, c, threads)?
            }
            _ => sd.value(&x)?,
        })
    })
}

/// Soft-DTW value and its gradient: E (N x M) with respect to the costs, or N x d with respect
/// to X.
#[pyfunction]
#[pyo3(signature = (x, y, gamma, cost, band, wrt))]
fn soft_dtw_grad<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: Option<PyReadonlyArray2<'py, f64>>,
    gamma: f64,
    cost: &str,
    band: Option<usize>,
    wrt: &str,
) -> PyResult<(f64, Bound<'py, PyArray2<f64>>)> {
    let kind = parse_cost(cost)?;
    let to_x = match wrt {
        "cost" => false,
        "x" | "X" => true,
        _ => {
            return Err(invalid(format!(
                "invalid wrt '{wrt}': expected 'cost' (the expected alignment E) or 'X'"
            )))
        }
    };
    if to_x && matches!(kind, Cost::Precomputed) {
        return Err(invalid(
            "wrt='X' needs the sequences: with cost='precomputed' only wrt='cost' is defined",
        ));
    }
    let (xp, yp) = operands(kind, &x, y.as_ref())?;
    let (value, m) = detached(py, move || {
        let sd = solver(gamma, band)?;
        let x = build(&xp)?;
        Ok(match (kind, yp) {
            (Cost::Features(c), Some(yp)) => {
                let y = build(&yp)?;
                if to_x {
                    sd.grad_features(&x, &y, c)?
                } else {
                    let al = sd.alignment_features(&x, &y, c)?;
                    (al.value, al.expected)
                }
            }
            _ => {
                let al = sd.value_and_alignment_owned(x)?;
                (al.value, al.expected)
            }
        })
    })?;
    Ok((value, matrix_to_py(py, m)?))
}

/// Soft-DTW divergence, optionally with its gradient with respect to X.
#[pyfunction]
#[pyo3(signature = (x, y, gamma, cost, band, grad))]
fn soft_dtw_divergence<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    gamma: f64,
    cost: &str,
    band: Option<usize>,
    grad: bool,
) -> PyResult<(f64, Option<Bound<'py, PyArray2<f64>>>)> {
    let c = match parse_cost(cost)? {
        Cost::Features(c) => c,
        Cost::Precomputed => {
            return Err(invalid(
                "the divergence needs the sequences (it aligns each with itself): cost='precomputed' is not defined for it",
            ))
        }
    };
    let (xp, yp) = (to_matrix(&x), to_matrix(&y));
    let (value, g) = detached(py, move || {
        let sd = solver(gamma, band)?;
        let (x, y) = (build(&xp)?, build(&yp)?);
        Ok(if grad {
            let (v, g) = sd.divergence_grad(&x, &y, c)?;
            (v, Some(g))
        } else {
            (sd.divergence(&x, &y, c)?, None)
        })
    })?;
    let g = g.map(|g| matrix_to_py(py, g)).transpose()?;
    Ok((value, g))
}

/// DTW cost (γ -> 0) between two sequences.
#[pyfunction]
#[pyo3(signature = (x, y, cost, band))]
fn dtw(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    y: Option<PyReadonlyArray2<'_, f64>>,
    cost: &str,
    band: Option<usize>,
) -> PyResult<f64> {
    let kind = parse_cost(cost)?;
    let (xp, yp) = operands(kind, &x, y.as_ref())?;
    detached(py, move || {
        let x = build(&xp)?;
        Ok(match (kind, yp) {
            (Cost::Features(c), Some(yp)) => sdtw::dtw_features(&x, &build(&yp)?, c, band)?,
            _ => sdtw::dtw(&x, band)?,
        })
    })
}

/// Soft-DTW values (or divergences) of many pairs, in parallel.
#[pyfunction]
#[pyo3(signature = (xs, ys, gamma, cost, band, divergence))]
fn soft_dtw_batch<'py>(
    py: Python<'py>,
    xs: Vec<PyReadonlyArray2<'py, f64>>,
    ys: Option<Vec<PyReadonlyArray2<'py, f64>>>,
    gamma: f64,
    cost: &str,
    band: Option<usize>,
    divergence: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let kind = parse_cost(cost)?;
    let pairs: Vec<_> =
        match (kind, &ys) {
            (Cost::Features(_), Some(ys)) => {
                if ys.len() != xs.len() {
                    return Err(invalid(format!(
                        "{} sequences X but {} sequences Y: give one Y per X",
                        xs.len(),
                        ys.len()
                    )));
                }
                xs.iter()
                    .zip(ys)
                    .map(|(x, y)| (to_matrix(x), Some(to_matrix(y))))
                    .collect()
            }
            (Cost::Features(_), None) => return Err(invalid(
                "Ys is missing: give one Y per X, or cost='precomputed' with cost matrices as Xs",
            )),
            (Cost::Precomputed, None) if !divergence => {
                xs.iter().map(|x| (to_matrix(x), None)).collect()
            }
            (Cost::Precomputed, _) => {
                return Err(invalid(
                    "cost='precomputed' takes the cost matrices as Xs, no Ys, and no divergence",
                ))
            }
        };
    let values = detached(py, move || {
        use rayon::prelude::*;
        let sd = solver(gamma, band)?;
        pairs
            .par_iter()
            .enumerate()
            .map(|(k, (xp, yp))| -> anyhow::Result<f64> {
                let one = || -> anyhow::Result<f64> {
                    let x = build(xp)?;
                    Ok(match (kind, yp) {
                        (Cost::Features(c), Some(yp)) => {
                            let y = build(yp)?;
                            if divergence {
                                sd.divergence(&x, &y, c)?
                            } else {
                                sd.value_features(&x, &y, c)?
                            }
                        }
                        _ => sd.value(&x)?,
                    })
                };
                one().map_err(|e| anyhow::anyhow!("pair {k}: {e:#}"))
            })
            .collect::<anyhow::Result<Vec<f64>>>()
    })?;
    Ok(PyArray1::from_vec(py, values))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(soft_dtw, m)?)?;
    m.add_function(wrap_pyfunction!(soft_dtw_grad, m)?)?;
    m.add_function(wrap_pyfunction!(soft_dtw_divergence, m)?)?;
    m.add_function(wrap_pyfunction!(dtw, m)?)?;
    m.add_function(wrap_pyfunction!(soft_dtw_batch, m)?)?;
    Ok(())
}
