//! The follow loop, one for live and replayed input.
//!
//! [`Follower`] is the pure core: samples at the analysis rate in, one [`PositionEvent`] per
//! frame out (features -> online aligner -> tracker -> musical position). [`run`] wires it
//! between a [`Capture`] (audio thread + SPSC ring) and the sinks, which run on their own output
//! thread behind a bounded channel so a slow sink never stalls the audio path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, TrySendError};

use crate::align::oltw::{Oltw, OltwConfig};
use crate::align::relocate::{RelocateConfig, Relocation, Relocator};
use crate::align::soft_online::{SoftOnline, SoftOnlineConfig};
use crate::align::tempo::{TempoAdaptive, TempoAdaptiveConfig, TempoScales};
use crate::align::tracker::{Tracker, TrackerConfig};
use crate::align::transpose::KeyTrial;
use crate::align::OnlineAligner;
use crate::audio::Capture;
use crate::features::{FeatureConfig, StreamingExtractor};
use crate::output::control::ControlCommand;
use crate::output::{Event, PositionEvent, Sink, StatusEvent, StatusKind, ThemeEvent};
use crate::score::reference::Reference;
use crate::spot::streaming::StreamingSpotter;

/// Which online aligner follows the performance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AlignerKind {
    /// Windowed online time warping (Dixon 2005).
    Oltw,
    /// Online soft-DTW: the expected position under the normalised forward weights. The
    /// default: on the development corpus it beats OLTW at every threshold (README).
    #[default]
    Soft,
}

impl std::str::FromStr for AlignerKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "oltw" => Ok(AlignerKind::Oltw),
            "soft" => Ok(AlignerKind::Soft),
            _ => Err(crate::Error::invalid(
                "aligner",
                s,
                "expected 'oltw' or 'soft'",
            )),
        }
    }
}

/// Options of the follower.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// Which aligner.
    pub aligner: AlignerKind,
    /// OLTW parameters (window etc.).
    pub oltw: OltwConfig,
    /// Tuning of the performance (cents); None = assume A4 = 440 Hz.
    pub perf_tuning_cents: Option<f32>,
    /// Estimate the performance's tuning from the first seconds and keep checking it
    /// ([`crate::features::tuning::TuningTracker`]), starting from `perf_tuning_cents`. Off by
    /// default: the semitone filterbank interpolates between bands, so 30-40 cents off is
    /// followed without it, and on the measured cases tracking helped a performance 45 cents
    /// sharp at 50-100 ms but cost a few points on one 40 cents flat (see README).
    pub track_tuning: bool,
    /// Score time (s) to start following from.
    pub start_score_s: f64,
    /// Transposition of the performance relative to the score (semitones up, 0-11), or None
    /// to detect it during the first [`FollowOptions::key_trial_s`] seconds.
    pub transpose: Option<usize>,
    /// Length of the key-detection trial (s of audio).
    pub key_trial_s: f64,
    /// Let the reported position flow at the local tempo inside held notes (see
    /// [`Tracker`]).
    pub flow_in_notes: bool,
    /// Frames whose largest chroma entry is below this carry no pitch information (silence,
    /// noise: a flat unit chroma has entries of 0.289): the aligner is not stepped and the
    /// position holds, so a pause does not drift. 0 disables.
    pub pause_chroma_max: f32,
    /// Frames whose semitone spectral flatness is above this are noise, not music: held like
    /// a pause (0.08: measured between music, below 0.05, and pink noise, above 0.1). 1
    /// disables.
    pub pause_flatness: f32,
    /// Theme spotting on the incoming audio (`follow --themes`).
    pub themes: Option<ThemeSpotting>,
    /// Remote-control commands ([`crate::output::control`]), polled once per audio block.
    pub control: Option<crossbeam_channel::Receiver<ControlCommand>>,
    /// When to re-locate after jumps of the performer.
    pub relocate: RelocateMode,
    /// How (thresholds, query lengths).
    pub relocate_config: RelocateConfig,
    /// Run the soft aligner on the reference at several tempo scalings, on the one nearest the
    /// performer's tempo ([`crate::align::tempo`]). False gives the plain soft aligner of
    /// earlier versions (Dixon's step pattern, the tempo tilt against scores), for comparison.
    pub tempo_model: bool,
}

/// When the follower re-locates itself after a jump of the performer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RelocateMode {
    /// The default: re-locate, against a score and against a recording. Measured on the
    /// development corpus (soft aligner with its tempo model, within 300 ms): against the score
    /// it recovers from the skip and repeat cases (42.3 / 44.1 % -> 94.8 / 93.2 %) and never
    /// fires on the other cases; against the reference recordings likewise (42.3 / 45.3 % ->
    /// 87.6 / 93.2 %, the 15 other cases unchanged at 92.3 %). Measured in an earlier version
    /// (before the tempo model) it made wrong jumps between two singers' recordings of a song
    /// (59 % -> 46 %) and `auto` meant "against a score only"; this version makes none there,
    /// with the tempo model or without it.
    #[default]
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl std::str::FromStr for RelocateMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "auto" => Ok(RelocateMode::Auto),
            "on" => Ok(RelocateMode::On),
            "off" => Ok(RelocateMode::Off),
            _ => Err(crate::Error::invalid(
                "relocate",
                s,
                "expected 'auto', 'on' or 'off'",
            )),
        }
    }
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            aligner: AlignerKind::Soft,
            oltw: OltwConfig::default(),
            perf_tuning_cents: None,
            track_tuning: false,
            start_score_s: 0.0,
            transpose: None,
            key_trial_s: 12.0,
            flow_in_notes: true,
            pause_chroma_max: 0.4,
            pause_flatness: 0.08,
            themes: None,
            control: None,
            relocate: RelocateMode::Auto,
            relocate_config: RelocateConfig::default(),
            tempo_model: true,
        }
    }
}

/// Theme spotting alongside following: its own chroma stage (the spotter's settings differ
/// from the follower's) feeding a [`StreamingSpotter`].
#[derive(Clone, Debug)]
pub struct ThemeSpotting {
    /// The spotter, built from the theme files.
    pub spotter: StreamingSpotter,
    /// Theme ids, in the spotter's order.
    pub ids: Vec<String>,
    /// The chroma configuration the spotter expects.
    pub features: FeatureConfig,
}

impl ThemeSpotting {
    /// Load the themes of a themes file (TOML or CSV, see `scorefollow spot --help`).
    pub fn load(themes_file: &std::path::Path) -> crate::Result<Self> {
        let themes = crate::spot::query::read_themes_file(themes_file)?;
        let mut cfg = crate::spot::SpotConfig::default();
        // A live show wants few false cues: τ 0.4 (the offline default 0.6 is tuned for
        // ranking). Measured on the development corpus with the streaming spotter: onset
        // P@1 / MAP 0.837 / 0.814 for MIDI queries.
        cfg.matching.peaks.tau = 0.4;
        let spotter = StreamingSpotter::from_theme_files(&themes, &cfg.features, &cfg, 0.3)?;
        Ok(Self {
            spotter,
            ids: themes.into_iter().map(|t| t.id).collect(),
            features: cfg.features,
        })
    }
}

struct ThemeState {
    spotting: ThemeSpotting,
    extractor: StreamingExtractor,
    hits: Vec<crate::spot::streaming::StreamHit>,
}

/// Features -> aligner -> tracker -> positions, for one performance against one reference.
/// Independent instances do not share state (two followers in one process do not interfere).
pub struct Follower {
    reference: Arc<Reference>,
    extractor: StreamingExtractor,
    /// The aligner, behind the transposition it follows in (one shift once the key is known;
    /// a confirmed relocation into another key switches it).
    aligner: KeyTrial,
    tracker: Tracker,
    config: FeatureConfig,
    pause_chroma_max: f32,
    pause_flatness: f32,
    last: Option<crate::align::tracker::Tracked>,
    themes: Option<ThemeState>,
    relocator: Option<Relocator>,
    relocator_key: Option<usize>,
    /// The aligner that checks a candidate jump (fed frames in the candidate's key, brought to
    /// the score's), and whether it is running.
    shadow: Option<Box<dyn OnlineAligner>>,
    shadow_active: bool,
    relocations: Vec<RelocationReport>,
}

/// A jump the follower made to follow the performer (after a skip or a repeat).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelocationReport {
    /// Performance time (s) at which the jump was confirmed.
    pub perf_time_s: f64,
    /// Performance time (s) at which the match started to go bad (about when the performer
    /// jumped).
    pub suspect_since_s: f64,
    /// Score time (s) the follower left.
    pub from_score_s: f64,
    /// Score time (s) it continued from.
    pub to_score_s: f64,
    /// Mean CENS distance of the confirming match (0 = identical).
    pub cost: f32,
    /// Key (semitones the performance is above the score, 0-11) the follower was in.
    pub from_key_shift: usize,
    /// Key it continued in (differs from `from_key_shift` after a change of key).
    pub key_shift: usize,
}

impl Follower {
    /// A follower at `opts.start_score_s` in `reference`.
    pub fn new(reference: Arc<Reference>, opts: &FollowOptions) -> Self {
        let config = reference.config.clone();
        let extractor = StreamingExtractor::new(&config, opts.perf_tuning_cents.unwrap_or(0.0));
        let extractor = if opts.track_tuning {
            extractor.with_tuning_tracking()
        } else {
            extractor
        };
        // One feature-major copy of the reference for every aligner (12 in the key trial, plus
        // the relocation shadow): for a one-hour reference that is 17 MB, not 220.
        let transposed = Arc::new(crate::align::cost::TransposedReference::new(
            &reference.frames,
        ));
        // The soft follower runs on the reference at several tempo scalings (the tempo model of
        // `align::tempo`); the scaled copies are built once and shared by every aligner.
        let tempo_scales = (opts.aligner == AlignerKind::Soft && opts.tempo_model).then(|| {
            Arc::new(TempoScales::new(
                &reference.frames,
                transposed.clone(),
                &TempoScales::default_scales(),
            ))
        });
        // Without the tempo model: the tempo tilt reads the aligner's long-run slope as the
        // performer's tempo, which holds against a MIDI score (steady reference tempo) but not
        // against another recording, whose own tempo wanders (it cost the real-recording case
        // of the development corpus 3.5 % within 300 ms).
        let tempo_tilt = if reference.score().is_some() {
            SoftOnlineConfig::default().tempo_tilt
        } else {
            0.0
        };
        let make = || -> Box<dyn OnlineAligner> {
            match &tempo_scales {
                None if opts.aligner == AlignerKind::Oltw => Box::new(Oltw::with_transposed(
                    reference.frames.clone(),
                    transposed.clone(),
                    opts.oltw,
                )),
                None => Box::new(SoftOnline::with_transposed(
                    reference.frames.clone(),
                    transposed.clone(),
                    SoftOnlineConfig {
                        window_frames: opts.oltw.window_frames,
                        back_fraction: opts.oltw.back_fraction,
                        weights: opts.oltw.weights,
                        tempo_tilt,
                        ..SoftOnlineConfig::default()
                    },
                )),
                Some(scales) => {
                    // Against a recording: a step penalty and a closer tempo scale (realrec).
                    let recording = reference.score().is_none();
                    let soft = TempoAdaptive::soft_config_for(
                        SoftOnlineConfig {
                            window_frames: opts.oltw.window_frames,
                            back_fraction: opts.oltw.back_fraction,
                            weights: opts.oltw.weights,
                            ..SoftOnlineConfig::default()
                        },
                        recording,
                    );
                    Box::new(TempoAdaptive::new(
                        scales.clone(),
                        soft,
                        TempoAdaptiveConfig::for_reference(recording),
                    ))
                }
            }
        };
        // A single-key KeyTrial passes frames of shift 0 through untouched; it is there so a
        // relocation can switch the key.
        let mut aligner = match opts.transpose {
            Some(k) => KeyTrial::new(&[k], 0, make),
            None => {
                let trial_frames = (opts.key_trial_s * config.frame_rate_hz()).round() as usize;
                let shifts: Vec<usize> = (0..crate::features::N_CHROMA).collect();
                KeyTrial::new(&shifts, trial_frames, make)
            }
        };
        if opts.start_score_s > 0.0 {
            aligner.reset_to(reference.frame_at_score_s(opts.start_score_s));
        }
        let lag_s = extractor.centre_lag_s();
        // The onset allowance is for a score's exact onsets: a recording's detected onsets are
        // not where a frame or two of lag is the whole error (measured against the dev
        // corpus's reference recordings: le50 51.4 -> 43.9 % with it).
        let onset_allowance_frames = if reference.score().is_some() {
            TrackerConfig::default().onset_allowance_frames
        } else {
            0.0
        };
        let mut tracker = Tracker::new(TrackerConfig {
            lag_frames: lag_s * config.frame_rate_hz(),
            onset_allowance_frames,
            ..TrackerConfig::default()
        });
        if opts.flow_in_notes {
            tracker = tracker.with_onsets(reference.onset_frames().into());
        }
        let relocate = match opts.relocate {
            RelocateMode::Auto | RelocateMode::On => true,
            RelocateMode::Off => false,
        };
        let shadow = relocate.then(make);
        let relocator = relocate.then(|| opts.relocate_config.clone()).map(|cfg| {
            let chroma: Vec<crate::features::Chroma> =
                reference.frames.iter().map(|f| f.chroma).collect();
            Relocator::new(&chroma, config.frame_rate_hz(), cfg)
        });
        Self {
            reference,
            extractor,
            aligner,
            tracker,
            config,
            // Measured on the development corpus: holding silent and noise-like frames fixes
            // the soft aligner's drift through a noisy pause (49 % -> 98 % within 300 ms) but
            // makes OLTW lose a quiet string-quartet case (79 % -> 0.3 %); OLTW holds its own
            // position through pauses (its argmin does not drift), so it gets no hold.
            pause_chroma_max: if opts.aligner == AlignerKind::Oltw {
                0.0
            } else {
                opts.pause_chroma_max
            },
            pause_flatness: if opts.aligner == AlignerKind::Oltw {
                1.0
            } else {
                opts.pause_flatness
            },
            last: None,
            relocator,
            relocator_key: None,
            shadow,
            shadow_active: false,
            relocations: Vec::with_capacity(16),
            themes: opts.themes.clone().map(|spotting| ThemeState {
                extractor: StreamingExtractor::new(&spotting.features, 0.0),
                hits: Vec::with_capacity(16),
                spotting,
            }),
        }
    }

    /// Feed the same samples as [`Follower::push`] to the theme spotter, if any; each
    /// occurrence is reported once, shortly after it ends.
    pub fn push_themes(&mut self, samples: &[f32], mut on_theme: impl FnMut(ThemeEvent)) {
        let Some(state) = self.themes.as_mut() else {
            return;
        };
        let ThemeState {
            spotting,
            extractor,
            hits,
        } = state;
        extractor.push(samples, |_, frame| {
            spotting.spotter.push(&frame.chroma, hits)
        });
        for h in hits.drain(..) {
            on_theme(ThemeEvent {
                theme_id: spotting.ids.get(h.theme).cloned().unwrap_or_default(),
                start_s: h.hit.start_s,
                end_s: h.hit.end_s,
                score: h.hit.score,
            });
        }
    }

    /// The reference followed.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Feed samples at the analysis rate. `capture_wall_ns` is when the newest of them entered
    /// the ring; `on_position` gets one event per completed frame.
    pub fn push(
        &mut self,
        samples: &[f32],
        capture_wall_ns: u64,
        mut on_position: impl FnMut(&PositionEvent),
    ) {
        let Self {
            reference,
            extractor,
            aligner,
            tracker,
            config,
            pause_chroma_max,
            pause_flatness,
            last,
            themes: _,
            relocator,
            relocator_key,
            relocations,
            shadow,
            shadow_active,
        } = self;
        extractor.push(samples, |k, frame| {
            let peak = frame.chroma.iter().copied().fold(0.0f32, f32::max);
            let pause = peak < *pause_chroma_max || frame.flatness > *pause_flatness;
            let tracked = match *last {
                // Nothing to hear: hold the position (and the aligner's state).
                Some(held) if pause => {
                    if let (Some(r), Some(shift)) = (relocator.as_mut(), *relocator_key) {
                        let c = crate::align::transpose_frame(frame, shift).chroma;
                        r.push(&c, f32::NAN, held.ref_frame_now);
                    }
                    held
                }
                _ => {
                    let step = aligner.step(frame);
                    let mut tracked = tracker.update(&step);
                    if let Some(jump) = relocate_step(
                        relocator.as_mut(),
                        relocator_key,
                        aligner.key_shift(),
                        frame,
                        reference,
                        step.ref_frame,
                        shadow.as_deref_mut().filter(|_| *shadow_active),
                    ) {
                        match jump {
                            RelocateOutcome::Candidate(cand) => {
                                if let Some(sh) = shadow.as_mut() {
                                    sh.reset_to(cand.ref_frame.round().max(0.0) as usize);
                                    *shadow_active = true;
                                }
                            }
                            RelocateOutcome::Rejected => *shadow_active = false,
                            RelocateOutcome::Confirmed {
                                ref_frame,
                                cost,
                                suspect_for_frames,
                                from_key_shift,
                                key_shift,
                            } => {
                                *shadow_active = false;
                                if key_shift != from_key_shift {
                                    tracing::info!(
                                        "key change at {:.2} s: performance now {key_shift} \
                                         semitones above the score (was {from_key_shift})",
                                        config.frame_end_s(k)
                                    );
                                    aligner.set_shift(key_shift);
                                }
                                aligner.reset_to(ref_frame.round().max(0.0) as usize);
                                tracker.reset();
                                let to = tracker.update(&crate::align::AlignStep {
                                    ref_frame,
                                    confidence: step.confidence,
                                    spread_frames: step.spread_frames,
                                    cost,
                                });
                                relocations.push(RelocationReport {
                                    perf_time_s: config.frame_end_s(k),
                                    suspect_since_s: config
                                        .frame_end_s(k.saturating_sub(suspect_for_frames)),
                                    from_score_s: reference.score_time_s(tracked.ref_frame_now),
                                    to_score_s: reference.score_time_s(to.ref_frame_now),
                                    cost,
                                    from_key_shift,
                                    key_shift,
                                });
                                tracked = to;
                            }
                        }
                    }
                    tracked
                }
            };
            *last = Some(tracked);
            let score_time_s = reference.score_time_s(tracked.ref_frame_now);
            let (beat, bar, beat_in_bar) = reference.musical_position(score_time_s);
            let ev = PositionEvent {
                frame: k as u64,
                perf_time_s: config.frame_end_s(k),
                score_time_s,
                heard_score_s: reference.score_time_s(tracked.heard_ref_frame),
                beat,
                bar,
                beat_in_bar,
                tempo: tracked.tempo as f32,
                confidence: tracked.confidence,
                spread_s: (tracked.spread_frames as f64 * config.hop_s()) as f32,
                capture_wall_ns,
            };
            on_position(&ev);
        });
    }

    /// Restart following at score time `score_s` (seek).
    pub fn seek(&mut self, score_s: f64) {
        self.aligner
            .reset_to(self.reference.frame_at_score_s(score_s));
        self.tracker.reset();
        self.last = None;
        if let Some(r) = self.relocator.as_mut() {
            r.reset();
        }
    }

    /// The jumps made so far to follow the performer, oldest first.
    pub fn relocations(&self) -> &[RelocationReport] {
        &self.relocations
    }

    /// The key followed: semitones the performance is above the score (0-11), or None while
    /// the key trial is still running. Follows confirmed changes of key.
    pub fn key_shift(&self) -> Option<usize> {
        self.aligner.key_shift()
    }
}

/// What the relocator asks the follower to do after a frame.
enum RelocateOutcome {
    /// Start the shadow aligner at this candidate.
    Candidate(Relocation),
    /// The shadow matched no better: stop it.
    Rejected,
    /// Jump: continue from the shadow's position, in the shadow's key (semitones the
    /// performance is above the score).
    Confirmed {
        ref_frame: f64,
        cost: f32,
        suspect_for_frames: usize,
        from_key_shift: usize,
        key_shift: usize,
    },
}

/// Feed the relocator one frame (in the score's key, once the key is known), stepping the
/// shadow aligner when a candidate is being checked (with the frame in the candidate's key).
/// `key` remembers the key the relocator's history was heard in.
fn relocate_step(
    relocator: Option<&mut Relocator>,
    key: &mut Option<usize>,
    key_now: Option<usize>,
    frame: &crate::features::FeatureFrame,
    reference: &Reference,
    ref_frame: f64,
    shadow: Option<&mut (dyn OnlineAligner + 'static)>,
) -> Option<RelocateOutcome> {
    let r = relocator?;
    let shift = key_now?;
    if *key != Some(shift) {
        r.reset();
        *key = Some(shift);
    }
    let in_key = if shift == 0 {
        *frame
    } else {
        crate::align::transpose_frame(frame, shift)
    };
    let local_cost = |f: &crate::features::FeatureFrame, at: f64| {
        let idx = (at.round().max(0.0) as usize).min(reference.frames.len().saturating_sub(1));
        reference.frames.get(idx).map_or(f32::NAN, |rf| {
            crate::align::cost::cosine_distance(&f.chroma, &rf.chroma)
        })
    };
    let main_cost = local_cost(&in_key, ref_frame);
    let candidate = r.push(&in_key.chroma, main_cost, ref_frame);
    if let Some(c) = candidate {
        return Some(RelocateOutcome::Candidate(c));
    }
    let shadow = shadow?;
    let key_change = r.verifying_key_change()?;
    let in_new_key = if key_change == 0 {
        in_key
    } else {
        crate::align::transpose_frame(&in_key, key_change)
    };
    let s = shadow.step(&in_new_key);
    let suspect_for_frames = r.suspect_for_frames();
    match r.verify(main_cost, local_cost(&in_new_key, s.ref_frame))? {
        true => Some(RelocateOutcome::Confirmed {
            ref_frame: s.ref_frame,
            cost: s.cost,
            suspect_for_frames,
            from_key_shift: shift,
            key_shift: (shift + key_change) % crate::features::N_CHROMA,
        }),
        false => Some(RelocateOutcome::Rejected),
    }
}

/// What a run reports at the end.
#[derive(Clone, Debug, Default)]
pub struct FollowSummary {
    /// Frames processed.
    pub frames: u64,
    /// Audio processed (s).
    pub audio_s: f64,
    /// Wall time of the run (s).
    pub wall_s: f64,
    /// Samples dropped by the input (ring full or simulated xruns).
    pub dropped_samples: u64,
    /// Events the output thread could not take in time (dropped, counted).
    pub dropped_events: u64,
    /// Per-frame processing time (features + aligner + tracker): a histogram of fixed size, so
    /// a run of days does not grow.
    pub frame_times: FrameTimes,
    /// Errors reported by sinks (first of each sink), as text.
    pub sink_errors: Vec<String>,
    /// Jumps the follower made to follow the performer.
    pub relocations: Vec<RelocationReport>,
}

impl FollowSummary {
    /// Real-time factor: audio seconds per wall second.
    pub fn realtime_factor(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.audio_s / self.wall_s
        } else {
            f64::INFINITY
        }
    }

    /// Percentile (0..=100) of the per-frame processing time (µs).
    pub fn frame_us_percentile(&self, p: f64) -> f64 {
        self.frame_times.percentile_ns(p) / 1000.0
    }
}

/// Histogram of durations with about 1 % relative resolution from 100 ns to 100 ms (shorter
/// and longer ones go to the end buckets): percentiles of a run of any length in 11 kB.
#[derive(Clone, Debug)]
pub struct FrameTimes {
    counts: Vec<u64>,
    total: u64,
}

impl Default for FrameTimes {
    fn default() -> Self {
        Self {
            counts: vec![0; Self::BUCKETS],
            total: 0,
        }
    }
}

impl FrameTimes {
    const MIN_NS: f64 = 100.0;
    const RATIO: f64 = 1.01;
    /// ln(1e8 / 1e2) / ln(1.01), rounded up.
    const BUCKETS: usize = 1390;

    fn bucket(ns: f64) -> usize {
        if ns <= Self::MIN_NS {
            return 0;
        }
        (((ns / Self::MIN_NS).ln() / Self::RATIO.ln()) as usize).min(Self::BUCKETS - 1)
    }

    /// Count one duration (ns).
    pub fn record_ns(&mut self, ns: u64) {
        self.counts[Self::bucket(ns as f64)] += 1;
        self.total += 1;
    }

    /// Number of durations counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Percentile (0..=100) in ns: the geometric centre of the bucket holding it (NaN when
    /// empty).
    pub fn percentile_ns(&self, p: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((p / 100.0).clamp(0.0, 1.0) * (self.total - 1) as f64).round() as u64;
        let mut seen = 0u64;
        for (k, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::MIN_NS * Self::RATIO.powf(k as f64 + 0.5);
            }
        }
        Self::MIN_NS * Self::RATIO.powf(Self::BUCKETS as f64)
    }
}

/// Percentile of sorted nanosecond values.
pub fn percentile_ns(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64
}

/// Follow `capture` against `reference` until the input ends (or `stop` is set), sending every
/// event to every sink on an output thread. Returns the summary and the sinks (for their logs).
pub fn run(
    mut capture: Capture,
    reference: Arc<Reference>,
    opts: &FollowOptions,
    sinks: Vec<Box<dyn Sink>>,
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> crate::Result<(FollowSummary, Vec<Box<dyn Sink>>)> {
    let (tx, rx) = bounded::<Event>(8192);
    let output = std::thread::Builder::new()
        .name("scorefollow-output".into())
        .spawn(move || {
            let mut sinks = sinks;
            let mut errors: Vec<Option<String>> = vec![None; sinks.len()];
            for ev in rx.iter() {
                for (s, err) in sinks.iter_mut().zip(errors.iter_mut()) {
                    if let Err(e) = s.handle(&ev) {
                        if err.is_none() {
                            tracing::error!("output: {e}");
                            *err = Some(e.to_string());
                        }
                    }
                }
            }
            for (s, err) in sinks.iter_mut().zip(errors.iter_mut()) {
                if let Err(e) = s.finish() {
                    err.get_or_insert(e.to_string());
                }
            }
            (sinks, errors.into_iter().flatten().collect::<Vec<_>>())
        })
        .map_err(|e| crate::Error::Other(format!("cannot start output thread: {e}")))?;

    let analysis_rate = reference.config.sample_rate_hz;
    let mut resampler = if capture.sample_rate_hz != analysis_rate {
        Some(crate::audio::StreamResampler::new(
            capture.sample_rate_hz,
            analysis_rate,
        )?)
    } else {
        None
    };
    let mut follower = Follower::new(reference.clone(), opts);
    let mut summary = FollowSummary::default();
    let mut dropped_events = 0u64;
    let send = |ev: Event, dropped: &mut u64| {
        if let Err(TrySendError::Full(_)) = tx.try_send(ev) {
            *dropped += 1;
        }
    };
    send(
        Event::Status(StatusEvent {
            kind: StatusKind::Start,
            perf_time_s: 0.0,
            dropped_samples: 0,
            frames: 0,
        }),
        &mut dropped_events,
    );

    let start = Instant::now();
    let chunk_cap = 1 << 14;
    let mut chunk = vec![0.0f32; chunk_cap];
    let mut resampled: Vec<f32> = Vec::with_capacity(chunk_cap * 4 + 1024);
    let mut popped_samples: u64 = 0;
    let mut last_reported_drops = 0u64;
    let mut frame_times = FrameTimes::default();
    let mut paused = false;
    let mut reported_relocations = 0usize;
    loop {
        if let Some(control) = opts.control.as_ref() {
            while let Ok(cmd) = control.try_recv() {
                match cmd {
                    ControlCommand::Start => paused = false,
                    ControlCommand::Stop => paused = true,
                    ControlCommand::Reset => follower.seek(opts.start_score_s),
                    ControlCommand::Seek { score_s } => follower.seek(score_s),
                }
            }
        }
        let stopped = stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
        if stopped {
            capture.stop();
        }
        // One block stamp at a time: process the samples up to its end, so every frame knows
        // when its newest sample was captured. The audio thread pushes a block's samples
        // before its stamp, so they are already in the ring.
        let (target_end, wall_ns, draining) = match capture.pop_stamp() {
            Some(st) => (st.end_sample, st.wall_ns, false),
            None if capture.is_finished() || stopped => {
                (u64::MAX, capture.epoch.elapsed().as_nanos() as u64, true)
            }
            None => {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
        };
        while popped_samples < target_end {
            let want = ((target_end - popped_samples).min(chunk_cap as u64)) as usize;
            let got = capture.pop_samples(&mut chunk[..want]);
            if got == 0 {
                if draining {
                    break;
                }
                std::thread::yield_now();
                continue;
            }
            popped_samples += got as u64;
            if paused {
                // Keep draining the ring so the input never overflows while paused.
                continue;
            }
            let input: &[f32] = match resampler.as_mut() {
                Some(r) => {
                    resampled.clear();
                    r.process(&chunk[..got], &mut resampled);
                    &resampled
                }
                None => &chunk[..got],
            };
            let mut last_frame_end = Instant::now();
            follower.push(input, wall_ns, |ev| {
                let now = Instant::now();
                let ns = now.duration_since(last_frame_end).as_nanos();
                frame_times.record_ns(ns.min(u64::MAX as u128) as u64);
                last_frame_end = now;
                summary.frames += 1;
                summary.audio_s = ev.perf_time_s;
                send(Event::Position(*ev), &mut dropped_events);
            });
            follower.push_themes(input, |t| send(Event::Theme(t), &mut dropped_events));
            while reported_relocations < follower.relocations().len() {
                let r = follower.relocations()[reported_relocations];
                reported_relocations += 1;
                tracing::info!(
                    "re-located at {:.2} s: score {:.2} s -> {:.2} s (match {:.3})",
                    r.perf_time_s,
                    r.from_score_s,
                    r.to_score_s,
                    r.cost
                );
                send(
                    Event::Status(StatusEvent {
                        kind: StatusKind::Relocated,
                        perf_time_s: r.perf_time_s,
                        dropped_samples: capture.stats.snapshot().samples_dropped,
                        frames: summary.frames,
                    }),
                    &mut dropped_events,
                );
            }
        }
        let dropped = capture.stats.snapshot().samples_dropped;
        if dropped > last_reported_drops {
            last_reported_drops = dropped;
            send(
                Event::Status(StatusEvent {
                    kind: StatusKind::Drops,
                    perf_time_s: summary.audio_s,
                    dropped_samples: dropped,
                    frames: summary.frames,
                }),
                &mut dropped_events,
            );
        }
        if draining {
            break;
        }
    }
    summary.wall_s = start.elapsed().as_secs_f64();
    let report = capture.join();
    summary.dropped_samples = capture.stats.snapshot().samples_dropped;
    send(
        Event::Status(StatusEvent {
            kind: StatusKind::End,
            perf_time_s: summary.audio_s,
            dropped_samples: summary.dropped_samples,
            frames: summary.frames,
        }),
        &mut dropped_events,
    );
    drop(tx);
    let (sinks, sink_errors) = output
        .join()
        .map_err(|_| crate::Error::Other("output thread panicked".into()))?;
    summary.dropped_events = dropped_events;
    summary.sink_errors = sink_errors;
    summary.relocations = follower.relocations().to_vec();
    summary.frame_times = frame_times;
    report?;
    Ok((summary, sinks))
}

#[cfg(test)]
mod frame_times_tests {
    use super::*;

    #[test]
    fn histogram_percentiles_match_sorted_values_within_a_percent() {
        let mut h = FrameTimes::default();
        let mut v: Vec<u64> = (0..10_000u64)
            .map(|i| 1_000 + (i * 7919) % 90_000)
            .collect();
        for &x in &v {
            h.record_ns(x);
        }
        v.sort_unstable();
        for p in [0.0, 10.0, 50.0, 90.0, 99.0, 100.0] {
            let exact = v[((p / 100.0) * (v.len() - 1) as f64).round() as usize] as f64;
            let got = h.percentile_ns(p);
            assert!((got / exact - 1.0).abs() < 0.011, "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.len(), 10_000);
        assert!(FrameTimes::default().percentile_ns(50.0).is_nan());
    }
}
