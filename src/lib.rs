//! # scorefollow
//!
//! A score follower: it listens to a performance (live input or a recording replayed as live
//! input) and reports, frame by frame, where in the piece the performer is.
//!
//! ```text
//! audio (cpal | replayed file) --SPSC ring--> features (STFT -> semitones -> chroma)
//!     --> align (OLTW | soft-DTW, against a Reference from MIDI or audio)
//!     --> events --> sinks (OSC, CSV, JSON lines, cues)
//! ```
//!
//! One module per pipeline stage. The DSP and alignment core ([`features`], [`align`],
//! [`spot`]) is pure: it takes frames and returns frames and does not allocate per frame after
//! construction. Input/output and threads live at the edges ([`audio`], [`output`], [`engine`]).
//!
//! Real-time contract: the audio callback (or the replay thread standing in for it) only
//! converts samples, pushes them into a lock-free ring and counts what it had to drop. It never
//! allocates, locks, logs or makes a syscall.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod align;
pub mod audio;
pub mod cli;
pub mod control;
pub mod engine;
pub mod error;
pub mod eval;
pub mod features;
pub mod output;
pub mod plot;
pub mod score;
pub mod spot;
#[cfg(test)]
pub(crate) mod test_util;
pub mod web;

pub use engine::{follow, FollowConfig, FollowSettings, Follower, Source};
pub use error::{Error, Result};
