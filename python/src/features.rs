//! Audio decoding and the chroma / CENS features (what `scorefollow chroma` writes).

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use scorefollow::audio::decode::MonoDecoder;
use scorefollow::audio::load::read_chroma;
use scorefollow::features::cens::{cens as cens_of, CensConfig};
use scorefollow::features::{self, Chroma, FeatureConfig, N_CHROMA};
use scorefollow::score::reference::{is_score_path, Reference, ScoreRendering};
use scorefollow::spot::{MidiMode, SpotConfig};

use crate::{audio_input, detached, invalid, matrix_parts, samples_vec, AudioInput};

/// Decode a whole file to mono float32 at its own rate or at `sample_rate`.
#[pyfunction]
#[pyo3(signature = (path, sample_rate))]
fn load_audio<'py>(
    py: Python<'py>,
    path: PathBuf,
    sample_rate: Option<u32>,
) -> PyResult<(Bound<'py, PyArray1<f32>>, u32)> {
    let (samples, rate) = detached(py, move || {
        let mut dec = MonoDecoder::open(&path, sample_rate)?;
        let rate = dec.output_rate_hz();
        let mut all = Vec::with_capacity(dec.expected_len().unwrap_or(0) as usize);
        let mut chunk = Vec::new();
        while dec.next_chunk(&mut chunk)? {
            all.extend_from_slice(&chunk);
        }
        Ok((all, rate))
    })?;
    Ok((PyArray1::from_vec(py, samples), rate))
}

/// A file decoded chunk by chunk at its own rate (for `follow_file`: a long recording is never
/// held whole in memory).
#[pyclass(name = "_AudioReader", module = "scorefollow._scorefollow")]
struct AudioReader {
    decoder: Mutex<MonoDecoder>,
    rate: u32,
}

#[pymethods]
impl AudioReader {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let decoder = detached(py, move || Ok(MonoDecoder::open(&path, None)?))?;
        let rate = decoder.output_rate_hz();
        Ok(Self {
            decoder: Mutex::new(decoder),
            rate,
        })
    }

    /// The rate of the chunks (Hz): the file's own.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The next chunk of mono samples, or None at the end of the file.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray1<f32>>>> {
        let chunk = detached(py, || {
            let mut dec = self
                .decoder
                .lock()
                .map_err(|_| anyhow::anyhow!("the reader failed earlier"))?;
            let mut chunk = Vec::new();
            Ok(dec.next_chunk(&mut chunk)?.then_some(chunk))
        })?;
        Ok(chunk.map(|c| PyArray1::from_vec(py, c)))
    }
}

fn chroma_rows(frames: &[features::FeatureFrame], onset: bool) -> Array2<f32> {
    let cols = if onset { 2 * N_CHROMA } else { N_CHROMA };
    let mut out = Array2::<f32>::zeros((frames.len(), cols));
    for (mut row, f) in out.rows_mut().into_iter().zip(frames) {
        for (k, v) in f.chroma.iter().enumerate() {
            row[k] = *v;
        }
        if onset {
            for (k, v) in f.onset.iter().enumerate() {
                row[N_CHROMA + k] = *v;
            }
        }
    }
    out
}

/// Chroma frames (and onset chroma) of a file or of samples, as `scorefollow chroma` computes
/// them: MIDI rendered as the follower's reference, audio at its estimated tuning unless one
/// is given.
#[pyfunction]
#[pyo3(signature = (path, samples, sample_rate, tuning, onset))]
fn chroma<'py>(
    py: Python<'py>,
    path: Option<PathBuf>,
    samples: Option<PyReadonlyArray1<'py, f32>>,
    sample_rate: Option<u32>,
    tuning: Option<f32>,
    onset: bool,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    if let Some(t) = tuning {
        if !t.is_finite() {
            return Err(invalid(format!(
                "invalid tuning '{t}': give a number of cents"
            )));
        }
    }
    let view = samples.as_ref().map(samples_vec);
    let input = audio_input(path, view.as_deref(), sample_rate)?;
    let rows = detached(py, move || {
        let cfg = FeatureConfig::default();
        let frames = match &input {
            AudioInput::File(p) if is_score_path(p) => {
                Reference::from_score_file(p, &cfg, &ScoreRendering::default())?
                    .frames
                    .to_vec()
            }
            _ => {
                let audio = input.mono_at(cfg.sample_rate_hz)?;
                match tuning {
                    Some(t) => features::extract_with_tuning(&audio, &cfg, t).frames,
                    None => features::extract(&audio, &cfg).frames,
                }
            }
        };
        Ok(chroma_rows(&frames, onset))
    })?;
    Ok(rows.into_pyarray(py))
}

/// Audio time (s) of the centre of each of `n` chroma frames (the `time_s` column of
/// `scorefollow chroma`).
#[pyfunction]
fn frame_times(py: Python<'_>, n: usize) -> Bound<'_, PyArray1<f64>> {
    let cfg = FeatureConfig::default();
    PyArray1::from_vec(py, (0..n).map(|k| cfg.frame_centre_s(k)).collect())
}

/// CENS frames of chroma frames given as an (n, 12) array, or of a file or samples (chroma
/// with the theme spotter's settings first).
#[pyfunction]
#[pyo3(signature = (path, samples, sample_rate, chroma, smooth_frames, downsample, midi_mode))]
#[allow(clippy::too_many_arguments)]
fn cens<'py>(
    py: Python<'py>,
    path: Option<PathBuf>,
    samples: Option<PyReadonlyArray1<'py, f32>>,
    sample_rate: Option<u32>,
    chroma: Option<PyReadonlyArray2<'py, f64>>,
    smooth_frames: usize,
    downsample: usize,
    midi_mode: &str,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    if smooth_frames == 0 || downsample == 0 {
        return Err(invalid(format!(
            "invalid CENS parameters smooth_frames={smooth_frames}, downsample={downsample}: both must be >= 1"
        )));
    }
    let mode: MidiMode = midi_mode
        .parse()
        .map_err(|e: scorefollow::Error| invalid(e.to_string()))?;
    let cfg = CensConfig {
        smooth_frames,
        downsample,
    };
    let given: Option<Vec<Chroma>> = match &chroma {
        Some(c) => {
            let (data, rows, cols) = matrix_parts(c);
            if cols != N_CHROMA {
                return Err(invalid(format!(
                    "chroma has {cols} columns: expected {N_CHROMA} (one per pitch class)"
                )));
            }
            if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
                return Err(invalid(format!(
                    "chroma entry ({}, {}) is not a finite number",
                    bad / N_CHROMA,
                    bad % N_CHROMA
                )));
            }
            let mut out = vec![[0.0f32; N_CHROMA]; rows];
            for (f, row) in out.iter_mut().zip(data.chunks_exact(N_CHROMA)) {
                for (d, v) in f.iter_mut().zip(row) {
                    *d = *v as f32;
                }
            }
            Some(out)
        }
        None => None,
    };
    let view = samples.as_ref().map(samples_vec);
    let input = match given {
        Some(_) if path.is_some() || view.is_some() => {
            return Err(invalid("give chroma, a file path or samples, not several"))
        }
        Some(_) => None,
        None => Some(audio_input(path, view.as_deref(), sample_rate)?),
    };
    let frames = detached(py, move || {
        let chroma = match (given, input) {
            (Some(c), _) => c,
            (None, Some(input)) => {
                let feat = SpotConfig::default().features;
                match &input {
                    AudioInput::File(p) => read_chroma(p, &feat, mode)?,
                    AudioInput::Samples { .. } => {
                        features::extract(&input.mono_at(feat.sample_rate_hz)?, &feat).chroma()
                    }
                }
            }
            (None, None) => anyhow::bail!("give chroma, a file path or samples"),
        };
        let out = cens_of(&chroma, &cfg);
        let mut a = Array2::<f32>::zeros((out.len(), N_CHROMA));
        for (mut row, f) in a.rows_mut().into_iter().zip(&out) {
            for (d, v) in row.iter_mut().zip(f) {
                *d = *v;
            }
        }
        Ok(a)
    })?;
    Ok(frames.into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_audio, m)?)?;
    m.add_function(wrap_pyfunction!(chroma, m)?)?;
    m.add_function(wrap_pyfunction!(frame_times, m)?)?;
    m.add_function(wrap_pyfunction!(cens, m)?)?;
    m.add_class::<AudioReader>()?;
    Ok(())
}
