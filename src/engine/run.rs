//! Threads, ring and channel around the [`Follower`]: the audio input's ring is read on the
//! follow thread, each frame's events go through a bounded channel to an output thread that
//! hands them to the sinks, so a slow sink never stalls the audio path.
//!
//! [`follow`] is the library's one entry point for following (the command line, `eval`, the
//! tests and the Python package call it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::config::FollowConfig;
use super::follower::{Follower, FollowerEvent, RelocationReport, ThemeSpotting};
use crate::audio::Capture;
use crate::control::ControlCommand;
use crate::output::{
    AmbiguousEvent, Candidate, Event, RelocationEvent, Sink, StatusEvent, StatusKind,
};
use crate::score::reference::Reference;
use crate::{Error, Result};

/// What is followed: the reference, the audio input, and what else steers the run.
pub struct Source {
    /// The score or recording followed (analysed with the config's features).
    pub reference: Arc<Reference>,
    /// The audio input: a replayed recording or a sound card.
    pub audio: Capture,
    /// Theme spotting on the same input.
    pub themes: Option<ThemeSpotting>,
    /// Remote-control commands, applied between audio blocks.
    pub control: Option<Receiver<ControlCommand>>,
    /// Set to stop following: the input is closed, what it had already captured is still
    /// followed, every event reaches the sinks and the run ends normally (an `end` status,
    /// the summary). A signal handler or `/scorefollow/quit` sets it.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Source {
    /// Follow `audio` against `reference`.
    pub fn new(reference: Arc<Reference>, audio: Capture) -> Self {
        Self {
            reference,
            audio,
            themes: None,
            control: None,
            stop: None,
        }
    }

    /// Also spot these themes.
    pub fn with_themes(mut self, themes: Option<ThemeSpotting>) -> Self {
        self.themes = themes;
        self
    }

    /// Obey these remote-control commands.
    pub fn with_control(mut self, control: Option<Receiver<ControlCommand>>) -> Self {
        self.control = control;
        self
    }

    /// Stop when this flag is set.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
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
    /// The key followed at the end (semitones the performance is above the score), None if
    /// the key trial had not ended.
    pub key_shift: Option<usize>,
    /// The replayed file could not be decoded to its end (truncated, damaged): it was followed
    /// as far as it decoded and every output was written; this says where and why it
    /// stopped (added in this version).
    pub input_error: Option<crate::audio::InputError>,
    /// Per OSC target (of every sink that sends: positions, cues, page turns): datagrams
    /// sent and failed, the first error (added in this version).
    pub osc_delivery: Vec<crate::output::osc::TargetReport>,
    /// The run ended because its stop flag was set (a signal, `/scorefollow/quit`), not
    /// because the input ended (added in this version).
    pub stopped: bool,
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

/// How long a stopped source may take to push what it holds and say it has finished.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// What the output thread reports when its sinks have finished.
struct OutputReport {
    /// The first error of each sink that had one.
    errors: Vec<String>,
    /// Datagrams per OSC target, over every sink.
    delivery: Vec<crate::output::osc::TargetReport>,
}

/// The sinks on their own thread behind a bounded channel.
struct Output {
    tx: Sender<Event>,
    thread: std::thread::JoinHandle<OutputReport>,
    dropped: u64,
}

impl Output {
    /// Room for 8192 events: 160 s of positions at 50 frames/s.
    const CAPACITY: usize = 8192;

    fn start(sinks: Vec<Box<dyn Sink>>) -> Result<Self> {
        let (tx, rx) = bounded::<Event>(Self::CAPACITY);
        let thread = std::thread::Builder::new()
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
                OutputReport {
                    errors: errors.into_iter().flatten().collect(),
                    delivery: crate::output::osc::merge_reports(
                        sinks.iter().flat_map(|s| s.delivery()),
                    ),
                }
            })
            .map_err(|e| Error::Other(format!("cannot start output thread: {e}")))?;
        Ok(Self {
            tx,
            thread,
            dropped: 0,
        })
    }

    /// Never blocks the follow thread: an event the sinks cannot take in time is counted.
    fn send(&mut self, ev: Event) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(ev) {
            self.dropped += 1;
        }
    }

    fn status(&mut self, kind: StatusKind, perf_time_s: f64, dropped_samples: u64, frames: u64) {
        self.send(Event::Status(StatusEvent {
            kind,
            perf_time_s,
            dropped_samples,
            frames,
        }));
    }

    /// Close the channel, wait for the sinks to finish; (events dropped, their report).
    fn finish(self) -> Result<(u64, OutputReport)> {
        drop(self.tx);
        let report = self
            .thread
            .join()
            .map_err(|_| Error::Other("output thread panicked".into()))?;
        Ok((self.dropped, report))
    }
}

/// The follow thread's state between audio blocks.
struct FollowLoop {
    follower: Follower,
    /// From the input's rate to the analysis rate, when they differ.
    resampler: Option<crate::audio::StreamResampler>,
    output: Output,
    summary: FollowSummary,
    /// Samples popped from the ring, at the input's rate.
    chunk: Vec<f32>,
    resampled: Vec<f32>,
    popped_samples: u64,
    reported_drops: u64,
    paused: bool,
}

impl FollowLoop {
    /// Samples popped from the ring at a time.
    const CHUNK: usize = 1 << 14;

    fn obey(&mut self, cmd: ControlCommand) {
        match cmd {
            ControlCommand::Start => self.paused = false,
            ControlCommand::Stop => self.paused = true,
            ControlCommand::Reset => self.follower.restart(),
            ControlCommand::Seek { score_s } => self.follower.seek(score_s),
        }
    }

    /// Follow the ring's samples up to sample `target_end` (all there is when `draining`),
    /// whose newest was captured at `wall_ns`.
    fn follow_until(
        &mut self,
        capture: &mut Capture,
        target_end: u64,
        wall_ns: u64,
        draining: bool,
    ) {
        while self.popped_samples < target_end {
            let want = ((target_end - self.popped_samples).min(Self::CHUNK as u64)) as usize;
            let got = capture.pop_samples(&mut self.chunk[..want]);
            if got == 0 {
                if draining {
                    break;
                }
                std::thread::yield_now();
                continue;
            }
            self.popped_samples += got as u64;
            if self.paused {
                // Keep draining the ring so the input never overflows while paused.
                continue;
            }
            let input: &[f32] = match self.resampler.as_mut() {
                Some(r) => {
                    self.resampled.clear();
                    r.process(&self.chunk[..got], &mut self.resampled);
                    &self.resampled
                }
                None => &self.chunk[..got],
            };
            let (summary, output) = (&mut self.summary, &mut self.output);
            // A frame's time runs from the end of the previous frame to its position (a jump
            // made on it included).
            let mut frame_start = Instant::now();
            for ev in self.follower.push(input, wall_ns) {
                match ev {
                    FollowerEvent::Position(p) => {
                        let now = Instant::now();
                        let ns = now.duration_since(frame_start).as_nanos();
                        summary
                            .frame_times
                            .record_ns(ns.min(u64::MAX as u128) as u64);
                        frame_start = now;
                        summary.frames += 1;
                        summary.audio_s = p.perf_time_s;
                        output.send(Event::Position(p));
                    }
                    FollowerEvent::Relocated(r) => {
                        tracing::info!(
                            "re-located at {:.2} s: score {:.2} s -> {:.2} s (match {:.3})",
                            r.perf_time_s,
                            r.from_score_s,
                            r.to_score_s,
                            r.cost
                        );
                        summary.relocations.push(r);
                        output.status(
                            StatusKind::Relocated,
                            r.perf_time_s,
                            capture.stats.snapshot().samples_dropped,
                            summary.frames,
                        );
                        output.send(Event::Relocation(RelocationEvent {
                            perf_time_s: r.perf_time_s,
                            from_score_s: r.from_score_s,
                            to_score_s: r.to_score_s,
                            confidence: r.confidence,
                            key_shift: r.key_shift,
                            capture_wall_ns: wall_ns,
                        }));
                    }
                    FollowerEvent::Ambiguous(a) => {
                        tracing::info!("ambiguous at {:.2} s: {} places fit", a.perf_time_s, a.n);
                        output.send(Event::Ambiguous(AmbiguousEvent {
                            perf_time_s: a.perf_time_s,
                            candidates: a.candidates[..a.n]
                                .iter()
                                .map(|&(score_s, bar)| Candidate { score_s, bar })
                                .collect(),
                            capture_wall_ns: wall_ns,
                        }));
                    }
                    FollowerEvent::Theme(t) => output.send(Event::Theme(t)),
                }
            }
        }
    }

    /// A status message when the input dropped samples since the last one.
    fn report_drops(&mut self, capture: &Capture) {
        let dropped = capture.stats.snapshot().samples_dropped;
        if dropped > self.reported_drops {
            self.reported_drops = dropped;
            let (t, frames) = (self.summary.audio_s, self.summary.frames);
            self.output.status(StatusKind::Drops, t, dropped, frames);
        }
    }
}

/// Follow `source` until its input ends (or its stop flag is set), sending every event to
/// every sink on an output thread.
pub fn follow(
    config: &FollowConfig,
    source: Source,
    sinks: Vec<Box<dyn Sink>>,
) -> Result<FollowSummary> {
    let Source {
        reference,
        audio: mut capture,
        themes,
        control,
        stop,
    } = source;
    let mut follower = Follower::new(reference.clone(), config)?;
    if let Some(t) = themes {
        follower = follower.with_themes(t);
    }
    let analysis_rate = reference.config.sample_rate_hz;
    let resampler = if capture.sample_rate_hz != analysis_rate {
        Some(crate::audio::StreamResampler::new(
            capture.sample_rate_hz,
            analysis_rate,
        )?)
    } else {
        None
    };
    let mut run = FollowLoop {
        follower,
        resampler,
        output: Output::start(sinks)?,
        summary: FollowSummary::default(),
        chunk: vec![0.0f32; FollowLoop::CHUNK],
        resampled: Vec::with_capacity(FollowLoop::CHUNK * 4 + 1024),
        popped_samples: 0,
        reported_drops: 0,
        paused: false,
    };
    run.output.status(StatusKind::Start, 0.0, 0, 0);
    let start = Instant::now();
    let mut stop_asked: Option<Instant> = None;
    loop {
        while let Some(cmd) = control.as_ref().and_then(|c| c.try_recv().ok()) {
            run.obey(cmd);
        }
        if stop_asked.is_none() && stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            capture.stop();
            stop_asked = Some(Instant::now());
        }
        // After a stop the source still pushes what it holds (a replay up to its next period,
        // a sound card its last callback): keep following until it says it has finished, so
        // the outputs end at the last frame captured. A source that never says so is given
        // up on after STOP_GRACE.
        let given_up = stop_asked.is_some_and(|t| t.elapsed() > STOP_GRACE);
        // One block stamp at a time: process the samples up to its end, so every frame knows
        // when its newest sample was captured. The audio thread pushes a block's samples
        // before its stamp, so they are already in the ring.
        let (target_end, wall_ns, draining) = match capture.pop_stamp() {
            Some(st) => (st.end_sample, st.wall_ns, false),
            None if capture.is_finished() || given_up => {
                (u64::MAX, capture.epoch.elapsed().as_nanos() as u64, true)
            }
            None => {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
        };
        run.follow_until(&mut capture, target_end, wall_ns, draining);
        run.report_drops(&capture);
        if draining {
            break;
        }
    }
    let FollowLoop {
        follower,
        output,
        mut summary,
        ..
    } = run;
    summary.wall_s = start.elapsed().as_secs_f64();
    let report = capture.join();
    summary.dropped_samples = capture.stats.snapshot().samples_dropped;
    summary.key_shift = follower.key_shift();
    summary.stopped = stop_asked.is_some();
    let mut output = output;
    output.status(
        StatusKind::End,
        summary.audio_s,
        summary.dropped_samples,
        summary.frames,
    );
    let (dropped_events, out) = output.finish()?;
    summary.dropped_events = dropped_events;
    summary.sink_errors = out.errors;
    summary.osc_delivery = out.delivery;
    summary.input_error = report?.input_error;
    Ok(summary)
}

#[cfg(test)]
mod tests {
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
