//! score stage.

pub mod midi;
pub mod reference;
pub mod structure;
pub mod synth;
pub mod timemap;
pub mod voicing;

pub use midi::{Marker, MarkerKind, Note, Score};
pub use timemap::{BarBeat, MeterMap, TempoMap, TickTiming};
