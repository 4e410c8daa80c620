//! The real-time promise of the follower's core: once following has settled (the key trial
//! over), `Follower::push` allocates nothing, whichever aligner runs, while the tempo model
//! switches scales, and while the re-localiser searches the whole reference and jumps. Counted
//! by a global allocator that counts the allocations of the current thread only (other tests
//! run on other threads), in the spirit of assert_no_alloc.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use scorefollow::engine::{
    AlignerKind, FollowConfig, FollowSettings, Follower, FollowerEvent, RelocateMode,
};
use scorefollow::score::reference::Reference;

/// Counts the allocations (and reallocations) each thread makes.
pub struct CountingAlloc;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: a thread being torn down has no counter, and must not panic in here.
    let _ = COUNT.try_with(|n| n.set(n.get() + 1));
}

/// Allocations this thread has made so far.
pub fn allocations_on_this_thread() -> u64 {
    COUNT.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// const-initialised thread-locals, whose access never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The allocations `f` makes on this thread.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = allocations_on_this_thread();
    let r = f();
    (r, allocations_on_this_thread() - before)
}

/// Feed `samples` in chunks of 4096 to a follower; count the allocations after `settle_s` of
/// audio. Returns (allocations, frames counted, jumps made after settling).
fn steady_state(
    reference: Arc<Reference>,
    settings: FollowSettings,
    samples: &[f32],
    settle_s: f64,
) -> (u64, usize, usize) {
    let config = FollowConfig::try_from(settings).expect("valid settings");
    let settle = (settle_s * config.features.sample_rate_hz as f64) as usize;
    let mut follower = Follower::new(reference, &config).expect("follower");
    for chunk in samples[..settle].chunks(4096) {
        follower.push(chunk, 0).for_each(drop);
    }
    let ((frames, jumps), allocations) = allocations_in(|| {
        let (mut frames, mut jumps) = (0, 0);
        for chunk in samples[settle..].chunks(4096) {
            for ev in follower.push(chunk, 0) {
                match ev {
                    FollowerEvent::Position(_) => frames += 1,
                    FollowerEvent::Relocated(_) => jumps += 1,
                    FollowerEvent::Theme(_) | FollowerEvent::Ambiguous(_) => {}
                }
            }
        }
        (frames, jumps)
    });
    (allocations, frames, jumps)
}

/// The soft aligner with its tempo model (the default) and OLTW on the bundled Mozart score
/// played at 1.5x its pace (the tempo model moves to a faster scaling after the key trial).
#[test]
fn steady_state_push_does_not_allocate() {
    let (reference, audio, _) = crate::common::mozart_at_tempo(1.5);
    for aligner in [AlignerKind::Soft, AlignerKind::Oltw] {
        let settings = FollowSettings {
            aligner,
            ..FollowSettings::default()
        };
        let (allocations, frames, _) = steady_state(reference.clone(), settings, &audio, 13.0);
        assert!(frames > 1000, "{aligner:?}: only {frames} frames counted");
        assert_eq!(
            allocations, 0,
            "{aligner:?}: {allocations} allocations in {frames} frames"
        );
    }
}

/// A performer who skips 10 s of the piece: the re-localiser searches the whole reference,
/// checks a candidate with its shadow aligner and jumps, all without allocating.
#[test]
fn relocation_search_and_jump_do_not_allocate() {
    let (reference, audio, _) = crate::common::mozart_at_tempo(1.0);
    let sr = 22_050.0;
    let (a, b) = ((20.0 * sr) as usize, (30.0 * sr) as usize);
    let mut skipped = audio[..a].to_vec();
    skipped.extend_from_slice(&audio[b..]);
    let settings = FollowSettings {
        relocate: RelocateMode::On,
        ..FollowSettings::default()
    };
    let (allocations, frames, jumps) = steady_state(reference, settings, &skipped, 13.0);
    assert!(jumps >= 1, "no jump after the skip ({frames} frames)");
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {frames} frames, {jumps} jumps"
    );
}
