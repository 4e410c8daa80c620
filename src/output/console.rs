//! Live positions on the terminal, for a person watching.

use std::io::Write;

use super::{Event, Sink, StatusKind};

/// Prints a line every `interval_s` of performance time, and status changes.
pub struct ConsoleSink {
    interval_s: f64,
    next_s: f64,
}

impl ConsoleSink {
    /// A console sink printing every `interval_s` seconds of audio.
    pub fn new(interval_s: f64) -> Self {
        Self {
            interval_s,
            next_s: 0.0,
        }
    }
}

impl Sink for ConsoleSink {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        let mut out = std::io::stdout().lock();
        match event {
            Event::Position(p) if p.perf_time_s >= self.next_s => {
                self.next_s = p.perf_time_s + self.interval_s;
                let bar = if p.bar > 0 {
                    format!("bar {:>3} beat {:>4.2}", p.bar, p.beat_in_bar)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "{:>8.2} s  ->  score {:>8.2} s  {}  tempo {:>4.2}  confidence {:>3.0}%",
                    p.perf_time_s,
                    p.score_time_s,
                    bar,
                    p.tempo,
                    100.0 * p.confidence
                );
            }
            Event::Status(s) => {
                let _ = match s.kind {
                    StatusKind::Start => writeln!(out, "following..."),
                    StatusKind::Drops => writeln!(
                        out,
                        "warning: {} samples dropped so far (input overrun)",
                        s.dropped_samples
                    ),
                    StatusKind::End => writeln!(
                        out,
                        "end: {} frames, {:.2} s of audio, {} samples dropped",
                        s.frames, s.perf_time_s, s.dropped_samples
                    ),
                    StatusKind::Relocated => writeln!(
                        out,
                        "re-located after a jump (at {:.2} s of audio)",
                        s.perf_time_s
                    ),
                };
            }
            Event::Theme(t) => {
                let _ = writeln!(
                    out,
                    "theme {} at {:.2}-{:.2} s (score {:.2})",
                    t.theme_id, t.start_s, t.end_s, t.score
                );
            }
            _ => {}
        }
        Ok(())
    }
}
