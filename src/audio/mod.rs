//! The audio input edge: files, replayed recordings and (feature `live`) sound cards.
//!
//! # For the engine: how to consume a [`Capture`]
//!
//! Live input (`Capture::live`, feature `live`) and a replayed recording ([`Capture::replay`]) produce the
//! same [`Capture`]; the engine's loop is identical for both:
//!
//! ```no_run
//! use scorefollow::audio::{Capture, ReplayOptions, StreamResampler};
//! use scorefollow::features::ANALYSIS_RATE_HZ;
//! # fn main() -> scorefollow::Result<()> {
//! let mut cap = Capture::replay("take.flac".as_ref(), ReplayOptions::default())?;
//! let mut rs = if cap.sample_rate_hz != ANALYSIS_RATE_HZ {
//!     Some(StreamResampler::new(cap.sample_rate_hz, ANALYSIS_RATE_HZ)?)
//! } else {
//!     None
//! };
//! let mut block = vec![0.0f32; 1024];
//! let mut analysed = Vec::with_capacity(8192);
//! loop {
//!     let n = cap.pop_samples(&mut block);
//!     if n == 0 {
//!         if cap.is_drained() { break; }
//!         std::thread::sleep(std::time::Duration::from_millis(2));
//!         continue;
//!     }
//!     analysed.clear();
//!     match &mut rs {
//!         Some(rs) => { rs.process(&block[..n], &mut analysed); }
//!         None => analysed.extend_from_slice(&block[..n]),
//!     }
//!     // feed `analysed` to features::StreamingExtractor ...
//!     // latency: pop stamps with end_sample <= samples popped so far; for a frame
//!     // completed now, latency_ns = cap.now_ns() - stamp.wall_ns.
//!     while let Some(_stamp) = cap.pop_stamp() {}
//! }
//! let stats = cap.stats.snapshot(); // samples_dropped etc.
//! let report = cap.join()?;
//! # Ok(()) }
//! ```
//!
//! * Samples in the ring are mono `f32` at [`Capture::sample_rate_hz`] (the device's or the
//!   file's rate; replay can deliver at another rate with [`ReplayOptions::rate_hz`]).
//! * [`BlockStamp`]s say when each block entered the ring, in ns since [`Capture::epoch`]; the
//!   engine subtracts them from [`Capture::now_ns`] to report capture-to-result latency. Add
//!   [`StreamResampler::output_delay_samples`] when a resampler sits in between.
//! * Lost samples (ring full, device xrun, simulated xrun) are counted in
//!   [`SourceStats::samples_dropped`]; the ring stays contiguous, so the engine sees a jump in
//!   the music, not a gap.
//! * End of a replay: [`Capture::is_finished`] becomes true after the last push; stop when it
//!   is set and the ring is empty ([`Capture::is_drained`]), then [`Capture::join`] for the
//!   report or a mid-file decoding error. Live input only finishes after [`Capture::stop`].
//!
//! Replay decodes at the file's native rate by default, mirroring a sound card, so the same
//! resampling path is exercised offline as live; `ReplayOptions { rate_hz:
//! Some(ANALYSIS_RATE_HZ), .. }` decodes straight to the analysis rate instead.

pub mod decode;
#[cfg(feature = "live")]
pub mod live;
pub mod load;
pub mod replay;
pub mod resample;
pub mod ring;
pub mod room;
pub mod wav;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ringbuf::traits::{Consumer, Observer};

use crate::Result;

pub use decode::{load_mono, probe, AudioInfo, InputError, MonoDecoder};
#[cfg(feature = "live")]
pub use live::{list_input_devices, DeviceInfo, LiveOptions};
pub use replay::{ReplayOptions, SourceReport, Speed};
pub use resample::StreamResampler;
pub use ring::{
    push_block, BlockStamp, CallbackState, SampleConsumer, SourceStats, StampConsumer,
    StatsSnapshot,
};

/// Where a [`Capture`]'s samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// A recording replayed as live input.
    Replay {
        /// The file.
        path: PathBuf,
    },
    /// A sound-card input.
    Live {
        /// The device identifier as opened (e.g. `alsa:default`).
        device: String,
    },
}

enum Handle {
    Replay(replay::ReplayHandle),
    #[cfg(feature = "live")]
    Live(live::LiveHandle),
    Stopped,
}

/// A running audio source and the consumer ends of its rings. See the module docs for how
/// to consume it.
pub struct Capture {
    /// Mono `f32` samples at `sample_rate_hz`.
    pub consumer: SampleConsumer,
    /// One [`BlockStamp`] per block pushed.
    pub stamps: StampConsumer,
    /// Rate of the samples in `consumer` (Hz).
    pub sample_rate_hz: u32,
    /// Counters: pushed, dropped, blocks, worst callback time.
    pub stats: Arc<SourceStats>,
    /// Set when the source will push nothing more (end of a replayed file, or stopped).
    pub finished: Arc<AtomicBool>,
    /// The instant [`BlockStamp::wall_ns`] counts from.
    pub epoch: Instant,
    /// What is being captured.
    pub kind: SourceKind,
    handle: Handle,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("kind", &self.kind)
            .field("sample_rate_hz", &self.sample_rate_hz)
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

/// Ring capacity for `ring_s` seconds at `rate_hz`, at least a few periods.
fn ring_samples(rate_hz: u32, ring_s: f64, period_frames: usize) -> usize {
    ((rate_hz as f64 * ring_s).ceil() as usize).max(4 * period_frames)
}

impl Capture {
    /// Replay a recording as if it were live input (see [`replay`] for pacing and drops).
    /// File errors (missing, empty, not audio) are returned here; a decoding error met later
    /// is returned by [`join`](Self::join).
    pub fn replay(path: &Path, opts: ReplayOptions) -> Result<Capture> {
        let epoch = Instant::now();
        let mut ends = None;
        let (handle, rate) = replay::start(path, &opts, |rate| {
            let cap = ring_samples(rate, opts.ring_s, opts.period_frames);
            let e = ring::channel(cap, opts.period_frames, epoch);
            let cb = e.callback;
            ends = Some((e.samples, e.stamps, e.stats));
            cb
        })?;
        let (consumer, stamps, stats) = ends
            .ok_or_else(|| crate::Error::Other("replay source did not create its ring".into()))?;
        let finished = Arc::clone(&handle.finished);
        Ok(Capture {
            consumer,
            stamps,
            sample_rate_hz: rate,
            stats,
            finished,
            epoch,
            kind: SourceKind::Replay {
                path: path.to_path_buf(),
            },
            handle: Handle::Replay(handle),
        })
    }

    /// Open a sound-card input: `device` is an identifier from [`list_input_devices`] (e.g.
    /// `alsa:scorein`) or a device name, `None` = the default input.
    #[cfg(feature = "live")]
    pub fn live(device: Option<&str>, opts: LiveOptions) -> Result<Capture> {
        let epoch = Instant::now();
        let started = live::start(device, &opts, epoch)?;
        Ok(Capture {
            consumer: started.samples,
            stamps: started.stamps,
            sample_rate_hz: started.sample_rate_hz,
            stats: started.stats,
            finished: Arc::clone(&started.handle.finished),
            epoch,
            kind: SourceKind::Live {
                device: started.device_id,
            },
            handle: Handle::Live(started.handle),
        })
    }

    /// Nanoseconds since [`epoch`](Self::epoch), on the same clock as [`BlockStamp::wall_ns`].
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Pop up to `out.len()` mono samples; returns how many were written.
    pub fn pop_samples(&mut self, out: &mut [f32]) -> usize {
        self.consumer.pop_slice(out)
    }

    /// Pop the oldest unread [`BlockStamp`]. Its samples are already in the ring (the audio
    /// thread pushes a block's samples before its stamp).
    pub fn pop_stamp(&mut self) -> Option<BlockStamp> {
        self.stamps.try_pop()
    }

    /// True when the source will push nothing more (end of a replayed file, or stopped).
    /// Samples may still be waiting in the ring.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// True when the source has finished and every sample has been popped.
    pub fn is_drained(&self) -> bool {
        self.is_finished() && self.consumer.is_empty()
    }

    /// Ask the source to stop pushing, without waiting. Idempotent and cheap. A replay stops
    /// at the next period boundary; a live stream is closed by its owner thread. In both
    /// cases [`is_finished`](Self::is_finished) becomes true once nothing more will come.
    pub fn stop(&mut self) {
        match &mut self.handle {
            Handle::Replay(h) => h.request_stop(),
            #[cfg(feature = "live")]
            Handle::Live(h) => h.request_stop(),
            Handle::Stopped => {}
        }
    }

    /// Wait for the source's thread to end and return its report, or the error it met
    /// (a decoding error in the middle of a replayed file, a device error). A replay is
    /// waited for until its file ends (keep popping meanwhile, or call
    /// [`stop`](Self::stop) first); live input never ends by itself, so it is stopped first.
    /// Later calls return an empty report.
    pub fn join(&mut self) -> Result<SourceReport> {
        let r = match std::mem::replace(&mut self.handle, Handle::Stopped) {
            Handle::Replay(mut h) => h.join(),
            #[cfg(feature = "live")]
            Handle::Live(mut h) => {
                h.request_stop();
                h.join()
            }
            Handle::Stopped => Ok(SourceReport::default()),
        };
        self.finished.store(true, Ordering::Release);
        r
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
        let _ = self.join();
    }
}
