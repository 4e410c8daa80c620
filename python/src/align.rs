//! Offline alignment of a whole performance (`scorefollow align`, same settings and numbers).

use std::ffi::CString;
use std::path::PathBuf;

use anyhow::Context;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1};
use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;

use scorefollow::audio::load::{align_samples, realign_at_performed_tempo};
use scorefollow::cli::common::ReferenceArgs;
use scorefollow::engine::{AlignConfig, AlignSettings};

use crate::{audio_input, detached, invalid, samples_vec, AudioInput};

/// (perf_time_s, score_time_s[, beat, bar]) per performance frame; a `UserWarning` when the
/// open end looks false, as `scorefollow align` warns.
#[pyfunction]
#[pyo3(signature = (path, samples, sample_rate, score, reference, full_end, beats))]
#[allow(clippy::too_many_arguments)]
fn align<'py>(
    py: Python<'py>,
    path: Option<PathBuf>,
    samples: Option<PyReadonlyArray1<'py, f32>>,
    sample_rate: Option<u32>,
    score: Option<PathBuf>,
    reference: Option<PathBuf>,
    full_end: bool,
    beats: bool,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let view = samples.as_ref().map(samples_vec);
    let input = audio_input(path, view.as_deref(), sample_rate)?;
    let (rows, early_end) = detached(py, move || {
        let which = ReferenceArgs {
            score,
            reference,
            ..ReferenceArgs::default()
        };
        // As `scorefollow align`: the presets of the reference kind.
        let config = AlignConfig::new(
            which.kind()?,
            &AlignSettings {
                full_end,
                ..AlignSettings::default()
            },
        )?;
        let reference = which.load(&config.features, &config.rendering)?;
        let audio =
            input
                .mono_at(config.features.sample_rate_hz)
                .with_context(|| match &input {
                    AudioInput::File(p) => format!("reading the performance {}", p.display()),
                    AudioInput::Samples { .. } => "resampling the performance".to_string(),
                })?;
        if audio.is_empty() {
            anyhow::bail!("the performance has no audio samples");
        }
        let alignment = align_samples(&audio, &reference, config.dtw, |_, _| {});
        // As `scorefollow align`: a printed score is aligned again at the tempo the first
        // pass found.
        let (reference, alignment) = realign_at_performed_tempo(
            &audio,
            which.path()?,
            reference,
            alignment,
            &config.features,
            &config.rendering,
            &which.score_options(false)?,
            config.dtw,
        )?;
        let cols = if beats { 4 } else { 2 };
        let mut out = Array2::<f64>::zeros((alignment.rows.len(), cols));
        for (mut row, &(t, s)) in out.rows_mut().into_iter().zip(&alignment.rows) {
            row[0] = t;
            row[1] = s;
            if beats {
                let (beat, bar, _) = reference.musical_position(s);
                row[2] = beat;
                row[3] = if beat.is_finite() {
                    bar as f64
                } else {
                    f64::NAN
                };
            }
        }
        Ok((out, alignment.early_end.map(|e| e.to_string())))
    })?;
    if let Some(message) = early_end {
        // As `scorefollow align` warns on stderr: a UserWarning the caller can filter or
        // turn into an error.
        let message = CString::new(message).map_err(|e| invalid(e.to_string()))?;
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &message, 2)?;
    }
    Ok(rows.into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(align, m)?)?;
    Ok(())
}
