//! The follower assembled: its configuration, its pure core and the threads around it.
//!
//! - [`config`]: what a user chooses ([`FollowSettings`]) and the one validated
//!   [`FollowConfig`] (presets by reference kind are chosen there and nowhere else);
//! - [`confidence`]: the reported confidence, a probability fitted on evidence;
//! - [`follower`]: the pure core, [`Follower`], pulled one frame at a time;
//! - [`run`]: the audio ring, the follow thread, the output channel and the sinks;
//!   [`follow`] is the library's entry point.

pub mod confidence;
pub mod config;
pub mod follower;
pub mod run;

pub use config::{
    AlignConfig, AlignSettings, AlignerConfig, AlignerKind, FollowConfig, FollowSettings,
    ReferenceKind, RelocateMode, TuningSetting, WrittenPitch,
};
pub use follower::{
    AmbiguousReport, Events, Follower, FollowerEvent, RelocationReport, ThemeSpotting,
};
pub use run::{follow, FollowSummary, FrameTimes, Source};
