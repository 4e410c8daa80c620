//! CSV position logs, one row per frame as reported live; the JSON-lines log ([`super::jsonl`])
//! through the same [`FileSink`]; the cue log (`--cue-log`, [`CueLogFile`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::cues::{FiredCue, FiringObserver};
use super::jsonl::EventLog;
use super::{Event, Sink};
use crate::Error;

/// The CSV header (the column contract users' scripts rely on).
/// `pass,page,system,label` were appended in this version (after the six columns of earlier
/// versions, which keep their places).
pub const CSV_HEADER: &str =
    "perf_time_s,score_time_s,beat,bar,tempo,confidence,pass,page,system,label";

/// The cue log's header (what `score_cues.py` reads; added in this version).
pub const CUE_LOG_HEADER: &str = "cue_id,perf_time_s,score_time_s,cue_score_s";

/// Output format of a [`FileSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// `perf_time_s,score_time_s,beat,bar,tempo,confidence,pass,page,system,label`
    /// ([`CSV_HEADER`]).
    Csv,
    /// The JSON-lines event log: one object per line with a `type`, positions with the CSV's
    /// fields plus `spread_s` and `heard_score_s`, and every other event (see
    /// [`super::jsonl`]).
    JsonLines,
}

enum Inner {
    Csv { path: PathBuf, out: BufWriter<File> },
    Jsonl(EventLog),
}

/// Writes positions (CSV) or every event (JSON lines) to a file.
pub struct FileSink {
    inner: Inner,
}

impl FileSink {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path, format: FileFormat) -> crate::Result<Self> {
        let inner = match format {
            FileFormat::Csv => {
                let file = File::create(path).map_err(|e| Error::io(path, e))?;
                let mut out = BufWriter::new(file);
                writeln!(out, "{CSV_HEADER}").map_err(|e| Error::io(path, e))?;
                Inner::Csv {
                    path: path.to_path_buf(),
                    out,
                }
            }
            FileFormat::JsonLines => Inner::Jsonl(EventLog::create(path)?),
        };
        Ok(Self { inner })
    }

    /// The JSON-lines log this sink writes, for the cue sinks to write their firings to
    /// (`None` for CSV).
    pub fn event_log(&self) -> Option<EventLog> {
        match &self.inner {
            Inner::Jsonl(log) => Some(log.clone()),
            Inner::Csv { .. } => None,
        }
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        String::new()
    }
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break: a printed
/// measure label is the user's text.
pub(crate) struct CsvField<'a>(pub(crate) &'a str);

impl std::fmt::Display for CsvField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.contains([',', '"', '\n', '\r']) {
            write!(f, "\"{}\"", self.0.replace('"', "\"\""))
        } else {
            f.write_str(self.0)
        }
    }
}

impl Sink for FileSink {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        match &mut self.inner {
            Inner::Jsonl(log) => log.write_event(event),
            Inner::Csv { path, out } => {
                let Event::Position(p) = event else {
                    return Ok(());
                };
                writeln!(
                    out,
                    "{:.4},{:.4},{},{},{:.4},{:.4},{},{},{},{}",
                    p.perf_time_s,
                    p.score_time_s,
                    num(p.beat),
                    p.bar,
                    p.tempo,
                    p.confidence,
                    p.pass,
                    p.page,
                    p.system,
                    CsvField(p.label.as_str())
                )
                .map_err(|e| Error::io(&*path, e))
            }
        }
    }

    fn finish(&mut self) -> crate::Result<()> {
        match &mut self.inner {
            Inner::Jsonl(log) => log.finish(),
            Inner::Csv { path, out } => out.flush().map_err(|e| Error::io(&*path, e)),
        }
    }
}

/// The cue log (`follow --cue-log FILE.csv`, added in this version): one row
/// `cue_id,perf_time_s,score_time_s,cue_score_s` per firing of a cue of the cue file by the
/// follower (`score_time_s` is the heard position that fired it), flushed row by row. Page
/// turns and cues fired by hand are not in it (they are in the JSON-lines log); the
/// corpus's `score_cues.py` scores it.
pub struct CueLogFile {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
}

impl CueLogFile {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path) -> crate::Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "{CUE_LOG_HEADER}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: Mutex::new(out),
        })
    }
}

impl FiringObserver for CueLogFile {
    fn fired(&self, c: &FiredCue) -> crate::Result<()> {
        if c.manual || c.page.is_some() {
            return Ok(());
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| Error::Other("cue log poisoned".into()))?;
        writeln!(
            out,
            "{},{:.4},{:.4},{:.4}",
            c.id, c.perf_time_s, c.at_score_s, c.cue_score_s
        )
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::PositionEvent;

    /// The columns of earlier versions keep their places; pass, page, system and label follow,
    /// a label with a comma or quote quoted.
    #[test]
    fn position_rows_append_the_printed_columns() {
        let p = std::env::temp_dir().join(format!("sf_pos_{}.csv", std::process::id()));
        let mut sink = FileSink::create(&p, FileFormat::Csv).unwrap();
        let mut ev = PositionEvent {
            perf_time_s: 1.0,
            score_time_s: 2.5,
            beat: 5.0,
            bar: 4,
            tempo: 1.0,
            confidence: 0.5,
            pass: 2,
            page: 1,
            system: 3,
            label: "4a".into(),
            ..Default::default()
        };
        sink.handle(&Event::Position(ev)).unwrap();
        ev.label = "4,\"b\"".into();
        ev.beat = f64::NAN;
        sink.handle(&Event::Position(ev)).unwrap();
        sink.finish().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        assert_eq!(
            text,
            "perf_time_s,score_time_s,beat,bar,tempo,confidence,pass,page,system,label\n\
             1.0000,2.5000,5.0000,4,1.0000,0.5000,2,1,3,4a\n\
             1.0000,2.5000,,4,1.0000,0.5000,2,1,3,\"4,\"\"b\"\"\"\n"
        );
    }

    #[test]
    fn cue_log_has_a_row_per_firing_of_the_cue_file() {
        let p = std::env::temp_dir().join(format!("sf_cuelog_{}.csv", std::process::id()));
        let log = CueLogFile::create(&p).unwrap();
        let mut c = FiredCue {
            id: "c0".into(),
            cue_score_s: 4.0,
            at_score_s: 4.012,
            perf_time_s: 5.25,
            capture_wall_ns: 1,
            sent_wall_ns: 2,
            skipped: false,
            manual: false,
            page: None,
        };
        log.fired(&c).unwrap();
        c.manual = true;
        log.fired(&c).unwrap();
        c.manual = false;
        c.page = Some(2);
        c.id = "page-2".into();
        log.fired(&c).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "cue_id,perf_time_s,score_time_s,cue_score_s\nc0,5.2500,4.0120,4.0000\n"
        );
        let _ = std::fs::remove_file(&p);
    }
}
