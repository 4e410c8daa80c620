//! Keeps every position in memory (for evaluation and tests).

use std::sync::{Arc, Mutex};

use super::{Event, PositionEvent, Sink};

/// Collects positions; clone the handle before handing the sink to the engine.
#[derive(Clone, Default)]
pub struct MemorySink {
    /// The positions received so far.
    pub positions: Arc<Mutex<Vec<PositionEvent>>>,
}

impl MemorySink {
    /// Take the collected positions.
    pub fn take(&self) -> Vec<PositionEvent> {
        match self.positions.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl Sink for MemorySink {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        if let Event::Position(p) = event {
            if let Ok(mut v) = self.positions.lock() {
                v.push(*p);
            }
        }
        Ok(())
    }
}
