//! score stage.

pub mod load;
pub mod midi;
pub mod musicxml;
mod position;
pub mod reference;
pub mod smf;
pub mod structure;
pub mod synth;
pub mod timemap;
pub mod voicing;

pub use load::ScoreOptions;
pub use midi::{Marker, MarkerKind, Note, Score};
pub use musicxml::{PrintedLayout, PrintedPosition, RepeatMode};
pub use timemap::{BarBeat, MeterMap, TempoMap, TickTiming};
