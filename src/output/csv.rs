//! CSV and JSON-lines position logs, one row per frame as reported live.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Event, Sink};
use crate::Error;

/// The CSV header (the column contract users' scripts rely on).
pub const CSV_HEADER: &str = "perf_time_s,score_time_s,beat,bar,tempo,confidence";

/// Output format of a [`FileSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// `perf_time_s,score_time_s,beat,bar,tempo,confidence`.
    Csv,
    /// One JSON object per line with the same fields plus `spread_s`.
    JsonLines,
}

/// Writes positions to a file.
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    format: FileFormat,
}

impl FileSink {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path, format: FileFormat) -> crate::Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::new(file);
        if format == FileFormat::Csv {
            writeln!(out, "{CSV_HEADER}").map_err(|e| Error::io(path, e))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            out,
            format,
        })
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        String::new()
    }
}

impl Sink for FileSink {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        let Event::Position(p) = event else {
            return Ok(());
        };
        let res = match self.format {
            FileFormat::Csv => writeln!(
                self.out,
                "{:.4},{:.4},{},{},{:.4},{:.4}",
                p.perf_time_s,
                p.score_time_s,
                num(p.beat),
                p.bar,
                p.tempo,
                p.confidence
            ),
            FileFormat::JsonLines => {
                let v = serde_json::json!({
                    "perf_time_s": p.perf_time_s,
                    "score_time_s": p.score_time_s,
                    "beat": if p.beat.is_finite() { Some(p.beat) } else { None },
                    "bar": p.bar,
                    "tempo": p.tempo,
                    "confidence": p.confidence,
                    "spread_s": p.spread_s,
                });
                writeln!(self.out, "{v}")
            }
        };
        res.map_err(|e| Error::io(&self.path, e))
    }

    fn finish(&mut self) -> crate::Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}
