//! A recording replayed as if it were a sound card.
//!
//! A thread decodes the file with [`MonoDecoder`] and hands it to the ring in periods of
//! `period_frames` through the very same [`push_block`] the live callback uses, so the engine
//! cannot tell the two apart.
//!
//! * [`Speed::Factor`]`(s)`: paced. Period `k` (0-based) is pushed when its last sample would
//!   have been captured, `start + (k + 1) * period / (rate * s)`; the thread sleeps until then.
//!   A consumer that falls behind loses samples exactly as with a real device (counted in
//!   [`SourceStats::samples_dropped`]).
//! * [`Speed::Max`]: as fast as the consumer takes it. The thread waits for ring space instead
//!   of dropping: it is not a real-time device, and for offline runs losing audio because the
//!   analysis is momentarily slower than the decoder would only add noise to the results.
//!
//! `drop_chunks` simulates xruns: the file is cut into 50 ms chunks and each is discarded with
//! the given probability (seeded, reproducible). Discarded samples are counted as dropped and
//! still take their time in paced mode, as a real overrun would.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::decode::{InputError, MonoDecoder};
use super::ring::{push_block, CallbackState, SourceStats};
use crate::{Error, Result};

/// Length of a simulated xrun chunk (s).
pub const DROP_CHUNK_S: f64 = 0.05;

/// How fast a replay runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Paced at real time times this factor (> 0; 1.0 = real time, 2.0 = twice as fast).
    Factor(f64),
    /// As fast as the consumer takes samples; never drops for lack of ring space.
    Max,
}

/// Options for a replayed source.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayOptions {
    /// Frames per period (one `push_block` call). Default 256.
    pub period_frames: usize,
    /// Pace. Default real time.
    pub speed: Speed,
    /// Simulated xruns: (probability that a 50 ms chunk is discarded, RNG seed).
    pub drop_chunks: Option<(f64, u64)>,
    /// Rate to deliver at: `None` (default) = the file's own rate, like a sound card would;
    /// the consumer then resamples exactly as for live input. `Some(r)` decodes straight to
    /// `r` Hz (e.g. the analysis rate, which saves the consumer's resampler).
    pub rate_hz: Option<u32>,
    /// Sample ring capacity (s of audio at the delivered rate). Default 2 s.
    pub ring_s: f64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            period_frames: 256,
            speed: Speed::Factor(1.0),
            drop_chunks: None,
            rate_hz: None,
            ring_s: 2.0,
        }
    }
}

impl ReplayOptions {
    /// Check the values; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.period_frames == 0 || self.period_frames > 1 << 20 {
            return Err(Error::invalid(
                "period_frames",
                self.period_frames.to_string(),
                "must be within 1..=1048576",
            ));
        }
        if let Speed::Factor(s) = self.speed {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid(
                    "replay speed",
                    s.to_string(),
                    "must be a positive finite factor",
                ));
            }
        }
        if let Some((p, _)) = self.drop_chunks {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(
                    "drop probability",
                    p.to_string(),
                    "must be within 0..=1",
                ));
            }
        }
        if !(self.ring_s.is_finite() && self.ring_s > 0.0 && self.ring_s <= 600.0) {
            return Err(Error::invalid(
                "ring length",
                format!("{} s", self.ring_s),
                "must be within (0, 600] s",
            ));
        }
        Ok(())
    }
}

/// What a source thread reports when it ends (live sources report only `stopped_early`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceReport {
    /// Mono samples taken from the decoder.
    pub samples_decoded: u64,
    /// Samples discarded by the xrun simulation.
    pub samples_simulated_drops: u64,
    /// True when the thread was stopped before the end of the file.
    pub stopped_early: bool,
    /// The file could not be decoded to its end (truncated, damaged, an error mid-stream):
    /// everything before was replayed.
    pub input_error: Option<InputError>,
}

/// The running replay thread.
#[derive(Debug)]
pub struct ReplayHandle {
    thread: Option<JoinHandle<Result<SourceReport>>>,
    stop: Arc<AtomicBool>,
    /// Set (Release) when the thread has pushed its last sample, on success or failure.
    pub finished: Arc<AtomicBool>,
    /// The shared counters.
    pub stats: Arc<SourceStats>,
}

impl ReplayHandle {
    /// Ask the thread to stop at the next period boundary (does not wait).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Wait for the thread to end; returns its report or the decoding error it met.
    pub fn join(&mut self) -> Result<SourceReport> {
        match self.thread.take() {
            None => Ok(SourceReport::default()),
            Some(t) => t
                .join()
                .map_err(|_| Error::Other("replay thread panicked".into()))?,
        }
    }
}

impl Drop for ReplayHandle {
    fn drop(&mut self) {
        self.request_stop();
        let _ = self.join();
    }
}

/// Sets the finished flag however the thread exits.
struct FinishGuard(Arc<AtomicBool>);
impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Open `path` (errors are reported here, synchronously) and start the replay thread feeding
/// `state`. Returns the handle and the delivered rate (Hz).
pub(crate) fn start(
    path: &Path,
    opts: &ReplayOptions,
    make_state: impl FnOnce(u32) -> CallbackState,
) -> Result<(ReplayHandle, u32)> {
    opts.validate()?;
    let decoder = MonoDecoder::open(path, opts.rate_hz)?;
    let rate = decoder.output_rate_hz();
    let state = make_state(rate);
    let stats = Arc::clone(state.stats());
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        decoder,
        state,
        opts: opts.clone(),
        rate_hz: rate,
        stop: Arc::clone(&stop),
    };
    let guard = FinishGuard(Arc::clone(&finished));
    let thread = std::thread::Builder::new()
        .name("scorefollow-replay".into())
        .spawn(move || {
            let _guard = guard;
            worker.run()
        })
        .map_err(|e| Error::Other(format!("cannot start the replay thread: {e}")))?;
    Ok((
        ReplayHandle {
            thread: Some(thread),
            stop,
            finished,
            stats,
        },
        rate,
    ))
}

/// SplitMix64: a tiny, well-mixed, seedable generator (no dependency needed for coin flips).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(pub u64);
impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Decides, chunk by chunk, which samples the xrun simulation discards.
#[derive(Clone, Debug)]
pub(crate) struct DropPlan {
    chunk_samples: u64,
    prob: f64,
    rng: SplitMix64,
    chunk_index: u64,
    chunk_dropped: bool,
}

impl DropPlan {
    pub(crate) fn new(rate_hz: u32, prob: f64, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let first = rng.next_f64() < prob;
        Self {
            chunk_samples: ((rate_hz as f64 * DROP_CHUNK_S).round() as u64).max(1),
            prob,
            rng,
            chunk_index: 0,
            chunk_dropped: first,
        }
    }

    /// For the stream position `pos` (samples), whether it is dropped and how many samples
    /// from `pos` on share that fate (to the end of its chunk).
    pub(crate) fn at(&mut self, pos: u64) -> (bool, u64) {
        let idx = pos / self.chunk_samples;
        while self.chunk_index < idx {
            self.chunk_index += 1;
            self.chunk_dropped = self.rng.next_f64() < self.prob;
        }
        let end = (idx + 1) * self.chunk_samples;
        (self.chunk_dropped, end - pos)
    }
}

struct Worker {
    decoder: MonoDecoder,
    state: CallbackState,
    opts: ReplayOptions,
    rate_hz: u32,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) -> Result<SourceReport> {
        let period = self.opts.period_frames;
        let mut report = SourceReport::default();
        let mut drops = self
            .opts
            .drop_chunks
            .map(|(p, seed)| DropPlan::new(self.rate_hz, p, seed));
        let mut pending: Vec<f32> = Vec::with_capacity(period * 4);
        let mut chunk: Vec<f32> = Vec::new();
        let mut pos: u64 = 0; // stream samples handed on (pushed, dropped or simulated-dropped)
        let start = Instant::now();
        let mut at_end = false;
        let mut nonfinite_reported = 0u64;
        loop {
            if self.stop.load(Ordering::Acquire) {
                report.stopped_early = true;
                break;
            }
            while !at_end && pending.len() < period {
                match self.decoder.next_chunk(&mut chunk) {
                    Ok(true) => {
                        report.samples_decoded += chunk.len() as u64;
                        pending.extend_from_slice(&chunk);
                    }
                    Ok(false) => {
                        at_end = true;
                        report.input_error = self.decoder.damage();
                    }
                    // Nothing decoded at all: a failure, not an early end.
                    Err(e) if report.samples_decoded == 0 => return Err(e),
                    // Mid-stream (the codec failed, the rate changed): keep what was decoded
                    // and say where it stopped.
                    Err(e) => {
                        at_end = true;
                        let reason = match e {
                            Error::Audio { reason, .. } => reason,
                            other => other.to_string(),
                        };
                        report.input_error = Some(self.decoder.input_error(reason));
                    }
                }
                // The decoder already replaced NaN/inf by 0, so push_block cannot see them:
                // carry its count over, or a replay would report a damaged file as clean.
                let scrubbed = self.decoder.nonfinite_samples();
                if scrubbed > nonfinite_reported {
                    self.state
                        .stats()
                        .samples_nonfinite
                        .fetch_add(scrubbed - nonfinite_reported, Ordering::Relaxed);
                    nonfinite_reported = scrubbed;
                }
            }
            if pending.is_empty() {
                break;
            }
            let n = period.min(pending.len());
            match self.opts.speed {
                Speed::Factor(s) => {
                    let due_s = (pos + n as u64) as f64 / (self.rate_hz as f64 * s);
                    let due = start + Duration::from_secs_f64(due_s);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                Speed::Max => {
                    if !self.wait_for_space(n) {
                        report.stopped_early = true;
                        break;
                    }
                }
            }
            report.samples_simulated_drops += self.deliver(&pending[..n], pos, drops.as_mut());
            pos += n as u64;
            pending.drain(..n);
        }
        Ok(report)
    }

    /// Wait until `n` samples fit; false if asked to stop meanwhile.
    fn wait_for_space(&self, n: usize) -> bool {
        let n = n.min(self.state.capacity_samples());
        let mut spins = 0u32;
        while self.state.vacant_samples() < n {
            if self.stop.load(Ordering::Acquire) {
                return false;
            }
            if spins < 64 {
                std::thread::yield_now();
                spins += 1;
            } else {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        true
    }

    /// Push one period, minus what the xrun simulation discards. Returns samples discarded.
    fn deliver(&mut self, block: &[f32], pos: u64, drops: Option<&mut DropPlan>) -> u64 {
        let Some(plan) = drops else {
            push_block(block, 1, &mut self.state);
            return 0;
        };
        let mut discarded = 0;
        let mut i = 0usize;
        while i < block.len() {
            let (dropped, run) = plan.at(pos + i as u64);
            let n = (run as usize).min(block.len() - i);
            if dropped {
                self.state.count_dropped(n as u64);
                discarded += n as u64;
            } else {
                push_block(&block[i..i + n], 1, &mut self.state);
            }
            i += n;
        }
        discarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_plan_matches_per_sample_reference() {
        // Reference: draw one coin per chunk in order, then look up each sample's chunk.
        let (rate, p, seed) = (1000u32, 0.3, 42u64);
        let chunk = 50u64;
        let mut rng = SplitMix64(seed);
        let coins: Vec<bool> = (0..40).map(|_| rng.next_f64() < p).collect();
        let mut plan = DropPlan::new(rate, p, seed);
        let mut pos = 0u64;
        while pos < 40 * chunk {
            let (d, run) = plan.at(pos);
            assert!((1..=chunk).contains(&run));
            for q in pos..pos + run {
                assert_eq!(d, coins[(q / chunk) as usize], "sample {q}");
            }
            pos += run.min(7); // jump by uneven steps, as periods do
        }
        let frac = coins.iter().filter(|&&c| c).count() as f64 / coins.len() as f64;
        assert!(frac > 0.1 && frac < 0.6, "{frac}");
    }

    #[test]
    fn options_are_validated() {
        let ok = ReplayOptions::default();
        assert!(ok.validate().is_ok());
        for bad in [
            ReplayOptions {
                period_frames: 0,
                ..ok.clone()
            },
            ReplayOptions {
                speed: Speed::Factor(0.0),
                ..ok.clone()
            },
            ReplayOptions {
                speed: Speed::Factor(f64::NAN),
                ..ok.clone()
            },
            ReplayOptions {
                drop_chunks: Some((1.5, 1)),
                ..ok.clone()
            },
            ReplayOptions {
                ring_s: 0.0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
