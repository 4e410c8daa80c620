//! The score follower for Python: samples at any rate in, one position record per analysis
//! frame out, events (key found, relocations, themes) on the side.
//!
//! Built as `scorefollow follow` builds its follower: the plain options become
//! `engine::FollowSettings`, validated into a `FollowConfig` (the presets by reference kind live
//! there), the reference is loaded with the config's features and rendering, and
//! `engine::Follower::push(samples, capture_wall_ns)` is pulled frame by frame. The input is
//! resampled to the analysis rate with the same `StreamResampler` as the follow loop's, so the
//! same samples give the same positions however they are cut into chunks.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use scorefollow::audio::load::load_themes;
use scorefollow::audio::StreamResampler;
use scorefollow::cli::common::{parse_transpose, parse_tuning, ReferenceArgs};
use scorefollow::engine::{
    AlignerKind, AmbiguousReport, FollowConfig, FollowSettings, Follower, FollowerEvent,
    RelocateMode, RelocationReport, WrittenPitch,
};
use scorefollow::output::PositionEvent;

use crate::{detached, invalid, samples_vec};

/// Bytes of one position record; the layout is `POSITION_DTYPE` in `scorefollow/__init__.py`.
const RECORD_BYTES: usize = 56 + 12 + LABEL_BYTES;
/// Bytes of the measure label at the end of a record (UTF-8, zero-padded).
const LABEL_BYTES: usize = 16;

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
    out.extend_from_slice(&p.pass.to_ne_bytes());
    out.extend_from_slice(&p.page.to_ne_bytes());
    out.extend_from_slice(&p.system.to_ne_bytes());
    let mut label = [0u8; LABEL_BYTES];
    let text = p.label.as_str().as_bytes();
    let n = text.len().min(LABEL_BYTES);
    label[..n].copy_from_slice(&text[..n]);
    out.extend_from_slice(&label);
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
    /// Several places fit after a jump (music the piece has more than once).
    Ambiguous(AmbiguousReport),
}

struct State {
    follower: Follower,
    analysis_rate: u32,
    input_rate: Option<u32>,
    resampler: Option<StreamResampler>,
    resampled: Vec<f32>,
    clean: Vec<f32>,
    events: Vec<EventRow>,
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
        let Self {
            follower,
            events,
            frames,
            perf_time_s,
            ..
        } = self;
        if bad > 0 {
            events.push(EventRow::NonFinite {
                perf_time_s: *perf_time_s,
                samples: bad,
            });
        }
        for ev in follower.push(input, wall_ns) {
            match ev {
                FollowerEvent::Position(p) => {
                    write_record(records, &p);
                    *frames += 1;
                    *perf_time_s = p.perf_time_s;
                }
                FollowerEvent::Relocated(r) => events.push(EventRow::Relocated(r)),
                FollowerEvent::Ambiguous(a) => events.push(EventRow::Ambiguous(a)),
                // Theme occurrences come after the chunk's last frame.
                FollowerEvent::Theme(t) => events.push(EventRow::Theme {
                    perf_time_s: *perf_time_s,
                    theme_id: t.theme_id,
                    start_s: t.start_s,
                    end_s: t.end_s,
                    score: t.score,
                }),
            }
        }
        let now = self.perf_time_s;
        if !self.key_seen {
            if let Some(k) = self.follower.key_shift() {
                self.key_seen = true;
                self.events.push(EventRow::Key {
                    perf_time_s: now,
                    key_shift: k,
                });
            }
        }
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
    #[pyo3(signature = (score, reference, aligner, window_s, start_s, tuning, transpose, relocate, structure, themes, written_pitch))]
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
        written_pitch: &str,
    ) -> PyResult<Self> {
        let aligner: AlignerKind = aligner.parse().map_err(|e| invalid(format!("{e}")))?;
        let written_pitch: WrittenPitch =
            written_pitch.parse().map_err(|e| invalid(format!("{e}")))?;
        let relocate: RelocateMode = relocate.parse().map_err(|e| invalid(format!("{e}")))?;
        let tuning = tuning
            .map(|t| parse_tuning(&t).map_err(|e| invalid(format!("invalid tuning {e}"))))
            .transpose()?;
        let transpose = parse_transpose(transpose)
            .map_err(|e| invalid(format!("invalid transpose {e}")))?
            .0;
        let (follower, reference) = detached(py, move || {
            let which = ReferenceArgs {
                score,
                reference,
                ..ReferenceArgs::default()
            };
            let config = FollowConfig::try_from(FollowSettings {
                aligner,
                window_s,
                start_score_s: start_s,
                tuning: tuning.unwrap_or_default(),
                transpose,
                relocate,
                written_pitch,
                ..FollowSettings::for_kind(which.kind()?)
            })?;
            let reference =
                which.load_structured(&config.features, &config.rendering, structure.as_deref())?;
            let mut follower = Follower::new(reference.clone(), &config)?;
            if let Some(p) = &themes {
                follower = follower.with_themes(
                    load_themes(p, config.theme_tau)
                        .with_context(|| format!("loading the themes {}", p.display()))?,
                );
            }
            Ok((follower, reference))
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
                        d.set_item("confidence", r.confidence)?;
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
                    EventRow::Ambiguous(a) => {
                        d.set_item("kind", "ambiguous")?;
                        d.set_item("perf_time_s", a.perf_time_s)?;
                        let candidates: Vec<(f64, i32)> = a.candidates[..a.n].to_vec();
                        d.set_item("candidates", candidates)?;
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
