//! The JSON-lines event log (`follow --jsonl`): one JSON object per line, in the order things
//! happened, every line with a `type`:
//!
//! | type | keys after `type` |
//! |---|---|
//! | `position` | perf_time_s, score_time_s, beat (null without a score), bar, tempo, confidence, spread_s, heard_score_s, pass, page, system, label |
//! | `status` | state (`start`, `drops`, `relocated`, `end`), perf_time_s, dropped_samples, frames |
//! | `relocation` | perf_time_s, from_score_s, to_score_s, confidence, key_shift, capture_wall_ns |
//! | `ambiguous` | perf_time_s, candidates (`[{"score_s", "bar"}]`, the one followed first), capture_wall_ns |
//! | `cue` | id, perf_time_s, score_time_s, cue_score_s, capture_wall_ns, sent_wall_ns, skipped, manual |
//! | `page` | page, id, then as `cue` |
//! | `theme` | id, start_s, end_s, score |
//!
//! Times in s; `*_wall_ns` in ns since the capture started; a number that is not finite is
//! `null`. A `cue` or `page` line comes right after the `position` line that fired it
//! (`score_time_s` is the heard position that fired it; both times are null for a cue fired
//! by hand). Lines are written by hand into the file's buffer: no allocation per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::cues::{FiredCue, FiringObserver};
use super::{Event, Sink};
use crate::Error;

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    /// After the sinks finished, a line (a cue fired by hand) is flushed as it is written.
    finished: bool,
}

/// A JSON-lines event log: a [`Sink`] for the engine's events and a [`FiringObserver`] for
/// the cue sinks, writing to one file. Clones share the file.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Writer>>,
}

impl EventLog {
    /// Create (truncate) `path`.
    pub fn create(path: &Path) -> crate::Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Writer {
                path: path.to_path_buf(),
                out: BufWriter::new(file),
                finished: false,
            })),
        })
    }

    fn with<F>(&self, write: F) -> crate::Result<()>
    where
        F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
    {
        let mut w = self
            .inner
            .lock()
            .map_err(|_| Error::Other("event log poisoned".into()))?;
        let w = &mut *w;
        let mut r = write(&mut w.out);
        if r.is_ok() && w.finished {
            r = w.out.flush();
        }
        r.map_err(|e| Error::io(&w.path, e))
    }

    /// Write one event's line.
    pub fn write_event(&self, event: &Event) -> crate::Result<()> {
        self.with(|out| event_line(out, event))
    }

    /// Write one firing's line.
    pub fn write_firing(&self, cue: &FiredCue) -> crate::Result<()> {
        self.with(|out| firing_line(out, cue))
    }

    /// Flush, and flush every later line as it is written.
    pub fn finish(&self) -> crate::Result<()> {
        let mut w = self
            .inner
            .lock()
            .map_err(|_| Error::Other("event log poisoned".into()))?;
        w.finished = true;
        let path = w.path.clone();
        w.out.flush().map_err(|e| Error::io(path, e))
    }
}

impl Sink for EventLog {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        self.write_event(event)
    }

    fn finish(&mut self) -> crate::Result<()> {
        EventLog::finish(self)
    }
}

impl FiringObserver for EventLog {
    fn fired(&self, cue: &FiredCue) -> crate::Result<()> {
        self.write_firing(cue)
    }

    fn flush(&self) -> crate::Result<()> {
        self.finish()
    }
}

/// One JSON object being written: `{"type":"..."` then `,"key":value` pairs, then `}\n`.
struct Obj<'a, W: Write> {
    w: &'a mut W,
}

impl<'a, W: Write> Obj<'a, W> {
    fn new(w: &'a mut W, kind: &str) -> std::io::Result<Self> {
        write!(w, "{{\"type\":\"{kind}\"")?;
        Ok(Self { w })
    }

    /// A number as serde_json writes it (shortest text that reads back, `3.0` not `3`,
    /// `null` when not finite), so the position lines read as they did before.
    fn num<T: serde::Serialize>(self, key: &str, x: T) -> std::io::Result<Self> {
        write!(self.w, ",\"{key}\":")?;
        serde_json::to_writer(&mut *self.w, &x).map_err(std::io::Error::other)?;
        Ok(self)
    }

    fn f64(self, key: &str, x: f64) -> std::io::Result<Self> {
        self.num(key, x)
    }

    fn f32(self, key: &str, x: f32) -> std::io::Result<Self> {
        self.num(key, x)
    }

    fn int(self, key: &str, x: impl std::fmt::Display) -> std::io::Result<Self> {
        write!(self.w, ",\"{key}\":{x}")?;
        Ok(self)
    }

    fn str(self, key: &str, s: &str) -> std::io::Result<Self> {
        write!(self.w, ",\"{key}\":")?;
        serde_json::to_writer(&mut *self.w, s).map_err(std::io::Error::other)?;
        Ok(self)
    }

    fn end(self) -> std::io::Result<()> {
        self.w.write_all(b"}\n")
    }
}

fn event_line<W: Write>(w: &mut W, event: &Event) -> std::io::Result<()> {
    match event {
        Event::Position(p) => Obj::new(w, "position")?
            .f64("perf_time_s", p.perf_time_s)?
            .f64("score_time_s", p.score_time_s)?
            .f64("beat", p.beat)?
            .int("bar", p.bar)?
            .f32("tempo", p.tempo)?
            .f32("confidence", p.confidence)?
            .f32("spread_s", p.spread_s)?
            .f64("heard_score_s", p.heard_score_s)?
            .int("pass", p.pass)?
            .int("page", p.page)?
            .int("system", p.system)?
            .str("label", p.label.as_str())?
            .end(),
        Event::Status(s) => Obj::new(w, "status")?
            .str("state", s.kind.as_str())?
            .f64("perf_time_s", s.perf_time_s)?
            .int("dropped_samples", s.dropped_samples)?
            .int("frames", s.frames)?
            .end(),
        Event::Relocation(r) => Obj::new(w, "relocation")?
            .f64("perf_time_s", r.perf_time_s)?
            .f64("from_score_s", r.from_score_s)?
            .f64("to_score_s", r.to_score_s)?
            .f32("confidence", r.confidence)?
            .int("key_shift", r.key_shift)?
            .int("capture_wall_ns", r.capture_wall_ns)?
            .end(),
        Event::Ambiguous(a) => {
            let o = Obj::new(w, "ambiguous")?.f64("perf_time_s", a.perf_time_s)?;
            write!(o.w, ",\"candidates\":[")?;
            for (i, c) in a.candidates.iter().enumerate() {
                if i > 0 {
                    o.w.write_all(b",")?;
                }
                o.w.write_all(b"{\"score_s\":")?;
                serde_json::to_writer(&mut *o.w, &c.score_s).map_err(std::io::Error::other)?;
                write!(o.w, ",\"bar\":{}}}", c.bar)?;
            }
            o.w.write_all(b"]")?;
            o.int("capture_wall_ns", a.capture_wall_ns)?.end()
        }
        Event::Theme(t) => Obj::new(w, "theme")?
            .str("id", &t.theme_id)?
            .f64("start_s", t.start_s)?
            .f64("end_s", t.end_s)?
            .f32("score", t.score)?
            .end(),
    }
}

fn firing_line<W: Write>(w: &mut W, c: &FiredCue) -> std::io::Result<()> {
    let o = match c.page {
        Some(page) => Obj::new(w, "page")?.int("page", page)?,
        None => Obj::new(w, "cue")?,
    };
    o.str("id", &c.id)?
        .f64("perf_time_s", c.perf_time_s)?
        .f64("score_time_s", c.at_score_s)?
        .f64("cue_score_s", c.cue_score_s)?
        .int("capture_wall_ns", c.capture_wall_ns)?
        .int("sent_wall_ns", c.sent_wall_ns)?
        .int("skipped", c.skipped)?
        .int("manual", c.manual)?
        .end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{
        AmbiguousEvent, Candidate, PositionEvent, RelocationEvent, StatusEvent, StatusKind,
        ThemeEvent,
    };
    use serde_json::Value;

    fn line(ev: &Event) -> Value {
        let mut buf = Vec::new();
        event_line(&mut buf, ev).unwrap();
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&buf).unwrap()
    }

    /// Every event type gives one valid JSON line with its type and fields; numbers are the
    /// shortest text that reads back to the same value (an f32 as serde_json writes it).
    #[test]
    fn every_event_is_one_json_line_with_its_type() {
        let p = PositionEvent {
            perf_time_s: 1.02,
            score_time_s: 0.987_654_321,
            heard_score_s: 0.95,
            beat: f64::NAN,
            bar: 0,
            tempo: 1.1,
            confidence: 0.9,
            spread_s: 0.05,
            pass: 2,
            page: 3,
            system: 1,
            label: "4\"a".into(),
            ..Default::default()
        };
        let v = line(&Event::Position(p));
        assert_eq!(
            v,
            serde_json::json!({"type": "position", "perf_time_s": 1.02, "score_time_s": 0.987654321,
                "beat": null, "bar": 0, "tempo": 1.1, "confidence": 0.9, "spread_s": 0.05,
                "heard_score_s": 0.95, "pass": 2, "page": 3, "system": 1, "label": "4\"a"})
        );
        let v = line(&Event::Status(StatusEvent {
            kind: StatusKind::End,
            perf_time_s: 3.0,
            dropped_samples: 7,
            frames: 150,
        }));
        assert_eq!(
            v,
            serde_json::json!({"type": "status", "state": "end", "perf_time_s": 3.0, "dropped_samples": 7, "frames": 150})
        );
        let v = line(&Event::Relocation(RelocationEvent {
            perf_time_s: 12.5,
            from_score_s: 10.0,
            to_score_s: 30.25,
            confidence: 0.75,
            key_shift: 2,
            capture_wall_ns: 99,
        }));
        assert_eq!(v["type"], "relocation");
        assert_eq!(v["to_score_s"], 30.25);
        assert_eq!(v["key_shift"], 2);
        let v = line(&Event::Ambiguous(AmbiguousEvent {
            perf_time_s: 4.0,
            candidates: vec![
                Candidate {
                    score_s: 2.5,
                    bar: 3,
                },
                Candidate {
                    score_s: 30.5,
                    bar: 19,
                },
            ],
            capture_wall_ns: 5,
        }));
        assert_eq!(
            v["candidates"],
            serde_json::json!([{"score_s": 2.5, "bar": 3}, {"score_s": 30.5, "bar": 19}])
        );
        let v = line(&Event::Theme(ThemeEvent {
            theme_id: "a \"quoted\"\nid".into(),
            start_s: 1.0,
            end_s: 2.0,
            score: 0.5,
        }));
        assert_eq!(v["id"], "a \"quoted\"\nid");
    }

    #[test]
    fn cue_and_page_lines_carry_their_times() {
        let mut c = FiredCue {
            id: "go".into(),
            cue_score_s: 4.0,
            at_score_s: 4.01,
            perf_time_s: 5.0,
            capture_wall_ns: 1_000,
            sent_wall_ns: 1_200,
            skipped: false,
            manual: false,
            page: None,
        };
        let mut buf = Vec::new();
        firing_line(&mut buf, &c).unwrap();
        c.page = Some(3);
        c.manual = true;
        c.perf_time_s = f64::NAN;
        c.at_score_s = f64::NAN;
        firing_line(&mut buf, &c).unwrap();
        let lines: Vec<Value> = buf
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"type": "cue", "id": "go", "perf_time_s": 5.0, "score_time_s": 4.01,
                "cue_score_s": 4.0, "capture_wall_ns": 1000, "sent_wall_ns": 1200, "skipped": false, "manual": false})
        );
        assert_eq!(lines[1]["type"], "page");
        assert_eq!(lines[1]["page"], 3);
        assert!(lines[1]["perf_time_s"].is_null());
    }
}
