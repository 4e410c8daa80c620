//! The native part of the `scorefollow` Python package (`scorefollow._scorefollow`).
//!
//! Thin: every function converts its arguments, releases the GIL, calls the library and turns
//! the result into numpy arrays. The user-facing signatures, docstrings and dataclasses live in
//! `scorefollow/__init__.py`; this module's stubs are `scorefollow/_scorefollow.pyi`.
//!
//! Errors: the library's one-line messages become `ScorefollowError`; a panic (a bug) is caught
//! before it reaches Python and becomes a `ScorefollowError` too, never a `PanicException`.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

mod align;
mod features;
mod follower;
mod softdtw;
mod spot;

pyo3::create_exception!(
    scorefollow,
    ScorefollowError,
    PyException,
    "An error reported by scorefollow: bad input (a file that cannot be read or decoded, an \
     invalid option, mismatched shapes), with the same one-line message as the command line."
);

/// A library error as a Python exception, with its context chain on one line.
pub(crate) fn py_err(e: anyhow::Error) -> PyErr {
    ScorefollowError::new_err(format!("{e:#}"))
}

/// A Python exception for invalid arguments, with a one-line message.
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    ScorefollowError::new_err(msg.into())
}

/// Run `work` with the GIL released. Errors become `ScorefollowError`; so does a panic, which
/// is caught here so that none crosses into Python.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> anyhow::Result<T> + Send,
) -> PyResult<T> {
    py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(work)))
        .map_err(|payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            invalid(format!(
                "internal error (a bug in scorefollow, please report it): {what}"
            ))
        })?
        .map_err(py_err)
}

/// Samples handed in from Python: a contiguous view when numpy gives one, else a copy.
pub(crate) fn samples_vec<'a>(a: &'a PyReadonlyArray1<'_, f32>) -> std::borrow::Cow<'a, [f32]> {
    match a.as_slice() {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

/// A float64 matrix handed in from Python, as row-major values and its shape.
pub(crate) fn matrix_parts<'a>(
    a: &'a PyReadonlyArray2<'_, f64>,
) -> (std::borrow::Cow<'a, [f64]>, usize, usize) {
    let (rows, cols) = a.as_array().dim();
    let data = match a.as_slice() {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(a.as_array().iter().copied().collect()),
    };
    (data, rows, cols)
}

/// The samples with every NaN or infinity replaced by 0 (copied only when there is one).
pub(crate) fn scrub_nonfinite(samples: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    if samples.iter().all(|x| x.is_finite()) {
        std::borrow::Cow::Borrowed(samples)
    } else {
        std::borrow::Cow::Owned(
            samples
                .iter()
                .map(|&x| if x.is_finite() { x } else { 0.0 })
                .collect(),
        )
    }
}

/// Audio given either as a file or as samples at a rate.
pub(crate) enum AudioInput<'a> {
    /// A file (any format the library decodes), by path.
    File(PathBuf),
    /// Mono samples at `rate` Hz.
    Samples { samples: &'a [f32], rate: u32 },
}

impl AudioInput<'_> {
    /// Mono samples at `rate_hz`: decoded (and resampled) from the file, or resampled from
    /// the samples given (as the decoder does: the filter delay removed).
    pub(crate) fn mono_at(&self, rate_hz: u32) -> anyhow::Result<Vec<f32>> {
        Ok(match self {
            AudioInput::File(p) => scorefollow::audio::decode::load_mono(p, rate_hz)?,
            AudioInput::Samples { samples, rate } => {
                if *rate == 0 {
                    anyhow::bail!("invalid sample_rate 0: give the rate of the samples in Hz");
                }
                // As the decoder and the live input do: a NaN or infinity is silence.
                let clean = scrub_nonfinite(samples);
                scorefollow::audio::resample::resample_all(&clean, *rate, rate_hz)?
            }
        })
    }
}

/// The audio argument of a function taking `path_or_samples` and `sample_rate`.
pub(crate) fn audio_input<'a>(
    path: Option<PathBuf>,
    samples: Option<&'a [f32]>,
    sample_rate: Option<u32>,
) -> PyResult<AudioInput<'a>> {
    match (path, samples, sample_rate) {
        (Some(p), None, _) => Ok(AudioInput::File(p)),
        (None, Some(s), Some(rate)) => Ok(AudioInput::Samples { samples: s, rate }),
        (None, Some(_), None) => Err(invalid(
            "samples given without sample_rate: give the rate of the samples in Hz",
        )),
        _ => Err(invalid("give a file path or an array of samples")),
    }
}

#[pymodule]
fn _scorefollow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ScorefollowError", m.py().get_type::<ScorefollowError>())?;
    m.add("ANALYSIS_RATE_HZ", scorefollow::features::ANALYSIS_RATE_HZ)?;
    m.add(
        "FRAME_RATE_HZ",
        scorefollow::features::FeatureConfig::default().frame_rate_hz(),
    )?;
    softdtw::register(m)?;
    features::register(m)?;
    align::register(m)?;
    spot::register(m)?;
    follower::register(m)?;
    Ok(())
}
