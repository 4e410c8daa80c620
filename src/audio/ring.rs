//! The lock-free hand-over between the audio thread (sound-card callback, or the replay thread
//! standing in for it) and the feature thread.
//!
//! Two single-producer single-consumer rings (ringbuf 0.6 `HeapRb`) are created together:
//!
//! * a sample ring of mono `f32` samples at the source rate;
//! * a small stamp ring of [`BlockStamp`]s, one per pushed block, so the consumer can measure
//!   the latency from "the block reached the ring" to "a frame using it was analysed".
//!
//! [`push_block`] is the entire body of the audio callback. It downmixes into a scratch buffer
//! allocated up front, pushes, and counts what did not fit. It never allocates, locks, logs or
//! blocks. It reads the clock with [`Instant::now`] twice per block; on Linux x86-64 that is a
//! `clock_gettime(CLOCK_MONOTONIC)` served by the vDSO without entering the kernel, which is why
//! it is acceptable on the real-time path.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ringbuf::traits::{Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Producer half of the sample ring (mono `f32` samples at the source rate).
pub type SampleProducer = HeapProd<f32>;
/// Consumer half of the sample ring (mono `f32` samples at the source rate). Pop with
/// `ringbuf::traits::Consumer::pop_slice`.
pub type SampleConsumer = HeapCons<f32>;
/// Producer half of the stamp ring.
pub type StampProducer = HeapProd<BlockStamp>;
/// Consumer half of the stamp ring. Pop with `ringbuf::traits::Consumer::try_pop`.
pub type StampConsumer = HeapCons<BlockStamp>;

/// When a block of samples entered the sample ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStamp {
    /// Number of mono samples pushed into the ring so far, including this block. This counts
    /// in the consumer's index space: the sample the consumer pops as its `n`-th (0-based) is
    /// in this block iff `previous.end_sample <= n < end_sample`. Dropped samples are not
    /// counted here (see [`SourceStats::samples_dropped`]).
    pub end_sample: u64,
    /// Nanoseconds since the capture's shared epoch (`Capture::epoch`) when the block was
    /// pushed.
    pub wall_ns: u64,
}

/// Counters shared between the audio thread (writer) and everyone else (readers). All are
/// monotone; readers use relaxed loads and may see slightly stale values.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Mono samples that entered the sample ring.
    pub samples_pushed: AtomicU64,
    /// Mono samples lost: the ring was full (consumer too slow), or the replay source
    /// simulated an xrun.
    pub samples_dropped: AtomicU64,
    /// Input samples that were NaN or infinite and were replaced by 0 before pushing.
    pub samples_nonfinite: AtomicU64,
    /// Blocks handed to [`push_block`].
    pub blocks: AtomicU64,
    /// Stamps that did not fit in the stamp ring (the consumer does not read stamps).
    pub stamps_dropped: AtomicU64,
    /// Longest time spent inside one [`push_block`] call (ns).
    pub worst_block_ns: AtomicU64,
    /// Largest absolute mono sample pushed since the last [`SourceStats::take_peak`], as
    /// `f32` bits (non-negative floats order like their bits).
    pub peak_bits: AtomicU32,
}

/// A plain copy of [`SourceStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`SourceStats::samples_pushed`].
    pub samples_pushed: u64,
    /// See [`SourceStats::samples_dropped`].
    pub samples_dropped: u64,
    /// See [`SourceStats::samples_nonfinite`].
    pub samples_nonfinite: u64,
    /// See [`SourceStats::blocks`].
    pub blocks: u64,
    /// See [`SourceStats::stamps_dropped`].
    pub stamps_dropped: u64,
    /// See [`SourceStats::worst_block_ns`].
    pub worst_block_ns: u64,
}

impl SourceStats {
    /// The input's peak level (absolute sample value, 0-1 for full scale) since the last
    /// call, and start measuring anew (for a level meter).
    pub fn take_peak(&self) -> f32 {
        f32::from_bits(self.peak_bits.swap(0, Ordering::Relaxed))
    }

    /// Read all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            samples_pushed: self.samples_pushed.load(Ordering::Relaxed),
            samples_dropped: self.samples_dropped.load(Ordering::Relaxed),
            samples_nonfinite: self.samples_nonfinite.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
            stamps_dropped: self.stamps_dropped.load(Ordering::Relaxed),
            worst_block_ns: self.worst_block_ns.load(Ordering::Relaxed),
        }
    }
}

/// Everything the audio callback owns. Built by [`channel`]; moved into the callback closure
/// (or the replay thread).
pub struct CallbackState {
    samples: SampleProducer,
    stamps: StampProducer,
    scratch: Box<[f32]>,
    stats: Arc<SourceStats>,
    epoch: Instant,
    pushed_total: u64,
}

impl std::fmt::Debug for CallbackState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackState")
            .field("scratch_frames", &self.scratch.len())
            .field("pushed_total", &self.pushed_total)
            .finish_non_exhaustive()
    }
}

impl CallbackState {
    /// Free space in the sample ring (mono samples).
    pub fn vacant_samples(&self) -> usize {
        self.samples.vacant_len()
    }

    /// Capacity of the sample ring (mono samples).
    pub fn capacity_samples(&self) -> usize {
        self.samples.capacity().get()
    }

    /// The shared counters.
    pub fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }

    /// Count `n` mono samples as lost without pushing them (a simulated or reported xrun).
    pub fn count_dropped(&self, n: u64) {
        self.stats.samples_dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// The receiving ends of a [`channel`].
pub struct RingEnds {
    /// What the audio callback owns.
    pub callback: CallbackState,
    /// Mono samples, popped by the feature thread.
    pub samples: SampleConsumer,
    /// One stamp per pushed block, popped by the feature thread.
    pub stamps: StampConsumer,
    /// The shared counters.
    pub stats: Arc<SourceStats>,
}

/// Create the sample ring (`capacity_samples` mono samples), the stamp ring and the callback
/// state. `scratch_frames` is the downmix scratch size (frames); larger blocks are processed
/// in pieces of that size, so it only affects speed, never correctness. `epoch` is the
/// instant [`BlockStamp::wall_ns`] counts from.
pub fn channel(capacity_samples: usize, scratch_frames: usize, epoch: Instant) -> RingEnds {
    let capacity_samples = capacity_samples.max(1);
    let scratch_frames = scratch_frames.max(1);
    let (samples, samples_cons) = HeapRb::<f32>::new(capacity_samples).split();
    // One stamp per block; blocks are at least a few dozen frames in practice, and losing a
    // stamp only coarsens the latency estimate, so a ring of this size is ample.
    let stamp_capacity = (capacity_samples / 32).clamp(64, 1 << 16);
    let (stamps, stamps_cons) = HeapRb::<BlockStamp>::new(stamp_capacity).split();
    let stats = Arc::new(SourceStats::default());
    RingEnds {
        callback: CallbackState {
            samples,
            stamps,
            scratch: vec![0.0; scratch_frames].into_boxed_slice(),
            stats: Arc::clone(&stats),
            epoch,
            pushed_total: 0,
        },
        samples: samples_cons,
        stamps: stamps_cons,
        stats,
    }
}

/// THE AUDIO CALLBACK BODY. Downmix `interleaved` (`channels` samples per frame; a trailing
/// partial frame is ignored) to mono by the mean, replace non-finite samples by 0, push into
/// the sample ring, count what does not fit as dropped (never waits), push one
/// [`BlockStamp`], and update the counters.
///
/// Real-time safe: no allocation, no lock, no logging, no syscall (the two `Instant::now()`
/// calls are vDSO clock reads). Verified by `tests/audio.rs` under a counting allocator.
pub fn push_block(interleaved: &[f32], channels: usize, state: &mut CallbackState) {
    let t0 = Instant::now();
    if channels == 0 {
        return;
    }
    let frames = interleaved.len() / channels;
    let scale = 1.0 / channels as f32;
    let mut nonfinite = 0u64;
    let mut pushed = 0u64;
    let mut dropped = 0u64;
    let mut peak = 0.0f32;
    let piece_frames = state.scratch.len();
    let mut start = 0;
    while start < frames {
        let n = piece_frames.min(frames - start);
        let src = &interleaved[start * channels..(start + n) * channels];
        let dst = &mut state.scratch[..n];
        if channels == 1 {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = if x.is_finite() {
                    x
                } else {
                    nonfinite += 1;
                    0.0
                };
            }
        } else {
            for (d, frame) in dst.iter_mut().zip(src.chunks_exact(channels)) {
                let mut sum = 0.0f32;
                for &x in frame {
                    if x.is_finite() {
                        sum += x;
                    } else {
                        nonfinite += 1;
                    }
                }
                *d = sum * scale;
            }
        }
        peak = dst.iter().fold(peak, |m, &x| m.max(x.abs()));
        let ok = state.samples.push_slice(dst);
        pushed += ok as u64;
        dropped += (n - ok) as u64;
        start += n;
    }
    state.pushed_total += pushed;
    let stats = &state.stats;
    let now = Instant::now();
    let wall_ns = now.saturating_duration_since(state.epoch).as_nanos() as u64;
    if state
        .stamps
        .try_push(BlockStamp {
            end_sample: state.pushed_total,
            wall_ns,
        })
        .is_err()
    {
        stats.stamps_dropped.fetch_add(1, Ordering::Relaxed);
    }
    stats.samples_pushed.fetch_add(pushed, Ordering::Relaxed);
    if dropped > 0 {
        stats.samples_dropped.fetch_add(dropped, Ordering::Relaxed);
    }
    if nonfinite > 0 {
        stats
            .samples_nonfinite
            .fetch_add(nonfinite, Ordering::Relaxed);
    }
    stats.blocks.fetch_add(1, Ordering::Relaxed);
    stats.peak_bits.fetch_max(peak.to_bits(), Ordering::Relaxed);
    let spent = now.saturating_duration_since(t0).as_nanos() as u64;
    stats.worst_block_ns.fetch_max(spent, Ordering::Relaxed);
}

/// Reference downmix: the obviously-correct form `push_block` is tested against. Mean over
/// channels with non-finite samples counted as 0; a trailing partial frame is ignored.
pub fn downmix_reference(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 0 {
        return Vec::new();
    }
    interleaved
        .chunks_exact(channels)
        .map(|f| {
            f.iter()
                .map(|&x| if x.is_finite() { x } else { 0.0 })
                .sum::<f32>()
                / channels as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ringbuf::traits::Consumer;

    #[test]
    fn stamps_count_pushed_samples_only() {
        let mut ends = channel(10, 4, Instant::now());
        push_block(&[1.0; 12], 2, &mut ends.callback); // 6 mono samples
        push_block(&[1.0; 12], 2, &mut ends.callback); // 4 fit, 2 dropped
        let a = ends.stamps.try_pop().unwrap();
        let b = ends.stamps.try_pop().unwrap();
        assert_eq!(a.end_sample, 6);
        assert_eq!(b.end_sample, 10);
        assert!(b.wall_ns >= a.wall_ns);
        let s = ends.stats.snapshot();
        assert_eq!(s.samples_pushed, 10);
        assert_eq!(s.samples_dropped, 2);
        assert_eq!(s.blocks, 2);
    }

    #[test]
    fn nonfinite_replaced_and_counted() {
        let mut ends = channel(16, 8, Instant::now());
        push_block(&[f32::NAN, 1.0, f32::INFINITY, 0.5], 1, &mut ends.callback);
        let mut out = [9.0f32; 4];
        assert_eq!(ends.samples.pop_slice(&mut out), 4);
        assert_eq!(out, [0.0, 1.0, 0.0, 0.5]);
        assert_eq!(ends.stats.snapshot().samples_nonfinite, 2);
    }

    proptest! {
        #[test]
        fn push_block_matches_reference(
            channels in 1usize..9,
            frames in 0usize..300,
            scratch in 1usize..64,
            seed in any::<u64>(),
        ) {
            let mut x = seed | 1;
            let data: Vec<f32> = (0..frames * channels + channels / 2)
                .map(|_| {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    (x % 2001) as f32 / 1000.0 - 1.0
                })
                .collect();
            let mut ends = channel(4096, scratch, Instant::now());
            push_block(&data, channels, &mut ends.callback);
            let mut got = vec![0.0f32; frames];
            prop_assert_eq!(ends.samples.pop_slice(&mut got), frames);
            let want = downmix_reference(&data, channels);
            prop_assert_eq!(want.len(), frames);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-6, "{} vs {}", g, w);
            }
            // The peak is that of the downmix, then starts anew.
            let peak = want.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
            prop_assert!((ends.stats.take_peak() - peak).abs() <= 1e-6);
            prop_assert_eq!(ends.stats.take_peak(), 0.0);
        }

        #[test]
        fn pushed_plus_dropped_is_offered(
            cap in 1usize..200,
            blocks in proptest::collection::vec(0usize..100, 1..20),
        ) {
            let mut ends = channel(cap, 16, Instant::now());
            let mut offered = 0u64;
            for b in &blocks {
                push_block(&vec![0.25; *b], 1, &mut ends.callback);
                offered += *b as u64;
            }
            let s = ends.stats.snapshot();
            prop_assert_eq!(s.samples_pushed + s.samples_dropped, offered);
            prop_assert_eq!(s.samples_pushed, offered.min(cap as u64));
            prop_assert_eq!(s.blocks, blocks.len() as u64);
        }
    }
}
