//! The score follower for Python: samples at any rate in, one position record per analysis
//! frame out, events (key found, relocations, themes) on the side.
//!
//! PORTING NOTE (the only file written against the follower's current API): it builds
//! `engine::FollowOptions` the way `scorefollow follow` does (cli/follow.rs: reference loaded
//! with `FeatureConfig::for_following`, the OLTW window from `window_s`, tuning, transposition,
//! relocation, structure, themes) and drives `engine::Follower::push(samples, wall_ns, |ev|..)`
//! with a callback, polling `relocations()` / `key_shift()` / `push_themes` for the events.
//! When `engine::{FollowConfig, Follower}` lands: build the `FollowConfig` from the same plain
//! settings (its presets by reference kind replace `for_following` and the window arithmetic
//! here), construct `Follower::new(reference, &config)`, and turn the iterator of events that
//! `follower.push(samples, capture_wall_ns)` returns into the records (positions) and
//! `EventRow`s (everything else) below. The Python side (records' dtype, events' dicts) does
//! not change.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use scorefollow::align::oltw::{OltwConfig, StepPattern};
use scorefollow::audio::StreamResampler;
use scorefollow::cli::common::ReferenceArgs;
use scorefollow::cli::follow::{parse_transpose, parse_tuning, TuningArg};
use scorefollow::engine::{
    AlignerKind, FollowOptions, Follower, RelocateMode, RelocationReport, ThemeSpotting,
};
use scorefollow::features::FeatureConfig;
use scorefollow::output::PositionEvent;

use crate::{detached, invalid, samples_vec};

/// Bytes of one position record; the layout is `POSITION_DTYPE` in `scorefollow/__init__.py`.
const RECORD_BYTES: usize = 56;

/// One position as the record Python views through `POSITION_DTYPE` (native byte order,
/// fields at their natural alignment, no padding).
fn write_record(out: &mut Vec<u8>, p: &PositionEvent) {
    out.extend_from_slice(&p.perf_time_s.to_ne_bytes());
    out.extend_from_slice(&p.score_time_s.to_ne_bytes());
    out.extend_from_slice(&p.beat.to_ne_bytes());
    out.extend_from_slice(&p.bar.to_ne_bytes());
    out.extend_from_slice(&p.tempo.to_ne_bytes());
    out.extend_from_slice(&p.confidence.to_ne_bytes());
    out.extend_from_slice(&p.spread_s.to_ne_bytes());
    out.extend_from_slice(&p.heard_score_s.to_ne_bytes());
    out.extend_from_slice(&p.beat_in_bar.to_ne_bytes());
}

/// Something besides a position, kept until `events()` collects it.
enum EventRow {
    /// The key trial ended: the performance is `key_shift` semitones above the score.
    Key { perf_time_s: f64, key_shift: usize },
    /// The follower jumped after a skip or a repeat of the performer.
    Relocated(RelocationReport),
    /// A theme occurrence (with `themes=`).
    Theme {
        perf_time_s: f64,
        theme_id: String,
        start_s: f64,
        end_s: f64,
        score: f32,
    },
    /// NaN or infinite input samples were replaced by silence.
    NonFinite { perf_time_s: f64, samples: u64 },
}

struct State {
    follower: Follower,
    analysis_rate: u32,
    input_rate: Option<u32>,
    resampler: Option<StreamResampler>,
    resampled: Vec<f32>,
    clean: Vec<f32>,
    events: Vec<EventRow>,
    relocations_seen: usize,
    key_seen: bool,
    frames: u64,
    perf_time_s: f64,
    epoch: Instant,
}

impl State {
    /// Follow `samples` (mono, `rate` Hz); the new positions are appended to `records`.
    fn push(&mut self, samples: &[f32], rate: u32, records: &mut Vec<u8>) -> anyhow::Result<()> {
        match self.input_rate {
            None => {
                if rate != self.analysis_rate {
                    self.resampler = Some(StreamResampler::new(rate, self.analysis_rate)?);
                }
                self.input_rate = Some(rate);
            }
            Some(r) if r != rate => anyhow::bail!(
                "sample_rate changed from {r} to {rate} Hz: a Follower follows one stream at one rate; make a new Follower"
            ),
            Some(_) => {}
        }
        // As the live input does: a NaN or an infinity is silence, counted.
        let mut input = samples;
        let bad = samples.iter().filter(|x| !x.is_finite()).count() as u64;
        if bad > 0 {
            self.clean.clear();
            self.clean
                .extend(samples.iter().map(|&x| if x.is_finite() { x } else { 0.0 }));
            input = &self.clean;
        }
        let input: &[f32] = match self.resampler.as_mut() {
            Some(r) => {
                self.resampled.clear();
                r.process(input, &mut self.resampled);
                &self.resampled
            }
            None => input,
        };
        let wall_ns = self.epoch.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        records.reserve(RECORD_BYTES * (input.len() / 400 + 2));
        let (frames, perf_time_s) = (&mut self.frames, &mut self.perf_time_s);
        self.follower.push(input, wall_ns, |ev| {
            write_record(records, ev);
            *frames += 1;
            *perf_time_s = ev.perf_time_s;
        });
        let now = self.perf_time_s;
        if bad > 0 {
            self.events.push(EventRow::NonFinite {
                perf_time_s: now,
                samples: bad,
            });
        }
        let events = &mut self.events;
        self.follower.push_themes(input, |t| {
            events.push(EventRow::Theme {
                perf_time_s: now,
                theme_id: t.theme_id,
                start_s: t.start_s,
                end_s: t.end_s,
                score: t.score,
            })
        });
        if !self.key_seen {
            if let Some(k) = self.follower.key_shift() {
                self.key_seen = true;
                self.events.push(EventRow::Key {
                    perf_time_s: now,
                    key_shift: k,
                });
            }
        }
        let relocations = self.follower.relocations();
        for r in &relocations[self.relocations_seen.min(relocations.len())..] {
            self.events.push(EventRow::Relocated(*r));
        }
        self.relocations_seen = relocations.len();
        Ok(())
    }
}

/// The follower: see `scorefollow.Follower`.
#[pyclass(name = "_Follower", module = "scorefollow._scorefollow", frozen)]
struct PyFollower {
    state: Mutex<State>,
    duration_s: f64,
    is_score: bool,
}

impl PyFollower {
    fn lock(&self) -> anyhow::Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| anyhow::anyhow!("this Follower failed earlier; make a new one"))
    }
}

#[pymethods]
impl PyFollower {
    #[new]
    #[pyo3(signature = (score, reference, aligner, window_s, start_s, tuning, transpose, relocate, structure, themes))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        score: Option<PathBuf>,
        reference: Option<PathBuf>,
        aligner: &str,
        window_s: f64,
        start_s: f64,
        tuning: Option<String>,
        transpose: &str,
        relocate: &str,
        structure: Option<PathBuf>,
        themes: Option<PathBuf>,
    ) -> PyResult<Self> {
        let aligner: AlignerKind = aligner.parse().map_err(|e| invalid(format!("{e}")))?;
        let relocate: RelocateMode = relocate.parse().map_err(|e| invalid(format!("{e}")))?;
        let tuning = tuning
            .map(|t| parse_tuning(&t).map_err(|e| invalid(format!("invalid tuning {e}"))))
            .transpose()?;
        let transpose = parse_transpose(transpose)
            .map_err(|e| invalid(format!("invalid transpose {e}")))?
            .0;
        if !(window_s > 0.5 && window_s.is_finite()) {
            return Err(invalid(format!(
                "invalid window_s '{window_s}': give at least 0.5 seconds"
            )));
        }
        if !start_s.is_finite() {
            return Err(invalid(format!(
                "invalid start_s '{start_s}': give a score time in seconds"
            )));
        }
        let (follower, reference) = detached(py, move || {
            let which = ReferenceArgs { score, reference };
            let cfg = FeatureConfig::for_following(which.is_recording()?);
            let mut reference = which.load(&cfg)?;
            if let Some(path) = &structure {
                let sections = reference
                    .read_structure(path)
                    .with_context(|| format!("reading the structure file {}", path.display()))?;
                reference = Arc::new(reference.unfold(&sections)?);
            }
            let opts = FollowOptions {
                aligner,
                oltw: OltwConfig {
                    window_frames: (window_s * cfg.frame_rate_hz()).round() as usize,
                    steps: StepPattern::Symmetric,
                    ..OltwConfig::default()
                },
                perf_tuning_cents: match tuning {
                    Some(TuningArg::Cents(c)) => Some(c),
                    _ => None,
                },
                track_tuning: tuning == Some(TuningArg::Auto),
                start_score_s: start_s,
                transpose,
                relocate,
                themes: match &themes {
                    Some(p) => Some(
                        ThemeSpotting::load(p)
                            .with_context(|| format!("loading the themes {}", p.display()))?,
                    ),
                    None => None,
                },
                ..FollowOptions::default()
            };
            Ok((Follower::new(reference.clone(), &opts), reference))
        })?;
        Ok(Self {
            duration_s: reference.duration_s(),
            is_score: reference.score().is_some(),
            state: Mutex::new(State {
                follower,
                analysis_rate: reference.config.sample_rate_hz,
                input_rate: None,
                resampler: None,
                resampled: Vec::with_capacity(1 << 16),
                clean: Vec::new(),
                events: Vec::new(),
                relocations_seen: 0,
                key_seen: false,
                frames: 0,
                perf_time_s: 0.0,
                epoch: Instant::now(),
            }),
        })
    }

    /// Follow the next samples; returns the new positions as packed records (see
    /// `POSITION_DTYPE`).
    fn push<'py>(
        &self,
        py: Python<'py>,
        samples: PyReadonlyArray1<'py, f32>,
        sample_rate: u32,
    ) -> PyResult<Bound<'py, PyArray1<u8>>> {
        if sample_rate == 0 {
            return Err(invalid(
                "invalid sample_rate 0: give the rate of the samples in Hz",
            ));
        }
        let view = samples_vec(&samples);
        let view: &[f32] = &view;
        let records = detached(py, || {
            let mut records = Vec::new();
            self.lock()?.push(view, sample_rate, &mut records)?;
            Ok(records)
        })?;
        Ok(PyArray1::from_vec(py, records))
    }

    /// The events since the last call, oldest first, as dicts with a `kind`.
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let rows: Vec<EventRow> = std::mem::take(&mut self.lock().map_err(crate::py_err)?.events);
        rows.into_iter()
            .map(|row| {
                let d = PyDict::new(py);
                match row {
                    EventRow::Key {
                        perf_time_s,
                        key_shift,
                    } => {
                        d.set_item("kind", "key")?;
                        d.set_item("perf_time_s", perf_time_s)?;
                        d.set_item("key_shift", key_shift)?;
                    }
                    EventRow::Relocated(r) => {
                        d.set_item("kind", "relocated")?;
                        d.set_item("perf_time_s", r.perf_time_s)?;
                        d.set_item("suspect_since_s", r.suspect_since_s)?;
                        d.set_item("from_score_s", r.from_score_s)?;
                        d.set_item("to_score_s", r.to_score_s)?;
                        d.set_item("cost", r.cost)?;
                        d.set_item("from_key_shift", r.from_key_shift)?;
                        d.set_item("key_shift", r.key_shift)?;
                    }
                    EventRow::Theme {
                        perf_time_s,
                        theme_id,
                        start_s,
                        end_s,
                        score,
                    } => {
                        d.set_item("kind", "theme")?;
                        d.set_item("perf_time_s", perf_time_s)?;
                        d.set_item("theme_id", theme_id)?;
                        d.set_item("start_s", start_s)?;
                        d.set_item("end_s", end_s)?;
                        d.set_item("score", score)?;
                    }
                    EventRow::NonFinite {
                        perf_time_s,
                        samples,
                    } => {
                        d.set_item("kind", "nonfinite")?;
                        d.set_item("perf_time_s", perf_time_s)?;
                        d.set_item("samples", samples)?;
                    }
                }
                Ok(d)
            })
            .collect()
    }

    /// Restart following at score time `score_s` (seconds of the score).
    fn seek(&self, py: Python<'_>, score_s: f64) -> PyResult<()> {
        if !score_s.is_finite() {
            return Err(invalid(format!(
                "invalid score_s '{score_s}': give a score time in seconds"
            )));
        }
        detached(py, || {
            self.lock()?.follower.seek(score_s);
            Ok(())
        })
    }

    /// Semitones the performance is above the score (0-11), or None during the key trial.
    #[getter]
    fn key_shift(&self) -> PyResult<Option<usize>> {
        Ok(self.lock().map_err(crate::py_err)?.follower.key_shift())
    }

    /// Frames followed so far.
    #[getter]
    fn frames(&self) -> PyResult<u64> {
        Ok(self.lock().map_err(crate::py_err)?.frames)
    }

    /// Duration of the reference (s).
    #[getter]
    fn reference_duration_s(&self) -> f64 {
        self.duration_s
    }

    /// True against a MIDI score (beats and bars are reported), false against a recording.
    #[getter]
    fn is_score(&self) -> bool {
        self.is_score
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFollower>()?;
    m.add("_RECORD_BYTES", RECORD_BYTES)?;
    Ok(())
}
