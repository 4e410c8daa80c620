//! Theme spotting (`scorefollow spot`) and the audio-matching index (`scorefollow index`),
//! with the command line's defaults.

use std::path::PathBuf;

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use scorefollow::audio::load::read_chroma;
use scorefollow::spot::index::{collect_files, Index, IndexConfig, IndexQuery};
use scorefollow::spot::query::{read_themes_file, ThemeFile};
use scorefollow::spot::{spot_files, MatchMethod, MidiMode, SpotConfig};

use crate::{audio_input, detached, invalid, samples_vec, AudioInput};

/// One spotted occurrence: (theme_id, recording, rank, start_s, end_s, score, cost,
/// tempo_scale, transpose).
type SpotRow = (String, String, usize, f64, f64, f32, f32, f32, i8);

fn parse_mode(midi_mode: &str) -> PyResult<MidiMode> {
    midi_mode
        .parse()
        .map_err(|e: scorefollow::Error| invalid(e.to_string()))
}

/// Every occurrence of the themes in the recordings.
#[pyfunction]
#[pyo3(signature = (themes, themes_file, recordings, top, transpose, tau, scales, min_scale, max_scale, method, midi_mode))]
#[allow(clippy::too_many_arguments)]
fn spot(
    py: Python<'_>,
    themes: Vec<(Option<String>, PathBuf)>,
    themes_file: Option<PathBuf>,
    recordings: Vec<PathBuf>,
    top: usize,
    transpose: bool,
    tau: f32,
    scales: usize,
    min_scale: f32,
    max_scale: f32,
    method: &str,
    midi_mode: &str,
) -> PyResult<Vec<SpotRow>> {
    let mut cfg = SpotConfig {
        midi_mode: parse_mode(midi_mode)?,
        ..SpotConfig::default()
    };
    let m = &mut cfg.matching;
    m.method = method
        .parse::<MatchMethod>()
        .map_err(|e| invalid(e.to_string()))?;
    m.transpose = transpose;
    m.n_scales = scales;
    m.min_scale = min_scale;
    m.max_scale = max_scale;
    m.peaks.tau = tau;
    m.peaks.top_k = top;
    if top == 0 {
        return Err(invalid("invalid top 0: must be at least 1"));
    }
    if recordings.is_empty() {
        return Err(invalid("no recording given: give the files to search"));
    }
    detached(py, move || {
        let mut all: Vec<ThemeFile> = themes
            .into_iter()
            .map(|(id, path)| match id {
                Some(id) => ThemeFile { id, path },
                None => ThemeFile::from_path(&path),
            })
            .collect();
        if let Some(f) = &themes_file {
            all.extend(read_themes_file(f)?);
        }
        if all.is_empty() {
            anyhow::bail!("no theme given: give theme files or a themes file");
        }
        let hits = spot_files(&all, &recordings, &cfg, &read_chroma)?;
        Ok(hits
            .into_iter()
            .map(|h| {
                (
                    h.theme_id,
                    h.recording.display().to_string(),
                    h.rank,
                    h.hit.start_s,
                    h.hit.end_s,
                    h.hit.score,
                    h.hit.cost,
                    h.hit.tempo_scale,
                    h.hit.transpose,
                )
            })
            .collect())
    })
}

/// An audio-matching index over a collection of recordings (`scorefollow index`).
#[pyclass(name = "_Index", module = "scorefollow._scorefollow", frozen)]
struct PyIndex {
    index: Index,
}

/// One index hit: (recording, start_s, end_s, score, tempo_scale).
type IndexRow = (String, f64, f64, f32, f32);

#[pymethods]
impl PyIndex {
    /// Index every audio or MIDI file under the given folders (or the files themselves).
    #[staticmethod]
    #[pyo3(signature = (paths, shingle_len, shingle_hop, pca, nprobe, exact_below, midi_mode))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        paths: Vec<PathBuf>,
        shingle_len: usize,
        shingle_hop: usize,
        pca: usize,
        nprobe: usize,
        exact_below: usize,
        midi_mode: &str,
    ) -> PyResult<Self> {
        let mode = parse_mode(midi_mode)?;
        let cfg = IndexConfig {
            shingle_len,
            shingle_hop,
            pca_dims: pca,
            nprobe,
            exact_below,
            ..IndexConfig::default()
        };
        let index = detached(py, move || {
            let files = collect_files(&paths)?;
            if files.is_empty() {
                anyhow::bail!("no audio or MIDI file found under the given folders");
            }
            Ok(Index::build_from_files(cfg, &files, mode, &read_chroma)?)
        })?;
        Ok(Self { index })
    }

    /// Read an index written by `save` or `scorefollow index build`.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let index = detached(py, move || Ok(Index::load(&path)?))?;
        Ok(Self { index })
    }

    /// Write the index to a file (`scorefollow index query` reads it).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        detached(py, || Ok(self.index.save(&path)?))
    }

    /// The indexed recordings' names (paths as given at build time), in index order.
    #[getter]
    fn recordings(&self) -> Vec<String> {
        self.index
            .recordings
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// Number of shingles indexed.
    #[getter]
    fn n_shingles(&self) -> usize {
        self.index.n_shingles()
    }

    /// Where a clip (file or samples) occurs in the collection, best first.
    #[pyo3(signature = (path, samples, sample_rate, top, scales, midi_mode))]
    #[allow(clippy::too_many_arguments)]
    fn query<'py>(
        &self,
        py: Python<'py>,
        path: Option<PathBuf>,
        samples: Option<PyReadonlyArray1<'py, f32>>,
        sample_rate: Option<u32>,
        top: usize,
        scales: usize,
        midi_mode: &str,
    ) -> PyResult<Vec<IndexRow>> {
        if top == 0 {
            return Err(invalid("invalid top 0: must be at least 1"));
        }
        let mode = parse_mode(midi_mode)?;
        let view = samples.as_ref().map(samples_vec);
        let input = audio_input(path, view.as_deref(), sample_rate)?;
        let q = IndexQuery {
            top,
            n_scales: scales,
            ..IndexQuery::default()
        };
        detached(py, move || {
            let hits = match &input {
                AudioInput::File(p) => self.index.query_file(p, &q, mode, &read_chroma)?,
                AudioInput::Samples { .. } => {
                    let feat = self.index.config.features();
                    let mono = input.mono_at(feat.sample_rate_hz)?;
                    let chroma = scorefollow::features::extract(&mono, &feat).chroma();
                    self.index.query_chroma(&chroma, &q)?
                }
            };
            Ok(hits
                .into_iter()
                .map(|h| (h.recording, h.start_s, h.end_s, h.score, h.tempo_scale))
                .collect())
        })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(spot, m)?)?;
    m.add_class::<PyIndex>()?;
    Ok(())
}
