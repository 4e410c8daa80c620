//! Feature and matrix CSV files: one row per line, comma-separated numbers, no header.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::Matrix;
use crate::{Error, Result};

/// Parses CSV text (one frame per line, comma-separated numbers, no header; blank lines are
/// skipped). `path` only names the source in error messages.
pub fn parse_csv(text: &str, path: &Path) -> Result<Matrix> {
    let mut data = Vec::new();
    let mut cols = None;
    let mut rows = 0usize;
    for (k, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let before = data.len();
        for field in line.split(',') {
            let field = field.trim();
            let v: f64 = field.parse().map_err(|_| Error::Parse {
                path: path.to_path_buf(),
                line: k + 1,
                reason: format!(
                    "'{field}' is not a number (expected comma-separated numbers, no header)"
                ),
            })?;
            if !v.is_finite() {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line: k + 1,
                    reason: format!("'{field}' is not a finite number"),
                });
            }
            data.push(v);
        }
        let n = data.len() - before;
        match cols {
            None => cols = Some(n),
            Some(c) if c != n => {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line: k + 1,
                    reason: format!("{n} values, but the first row has {c}"),
                })
            }
            _ => {}
        }
        rows += 1;
    }
    let Some(cols) = cols else {
        return Err(Error::Parse {
            path: path.to_path_buf(),
            line: 1,
            reason: "no rows".into(),
        });
    };
    Matrix::new(rows, cols, data)
}

/// Reads a CSV file (see [`parse_csv`]).
pub fn read_csv(path: &Path) -> Result<Matrix> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_csv(&text, path)
}

/// Writes `m` as CSV: one row per line, shortest round-trip formatting of each number.
pub fn write_csv(m: &Matrix, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    let mut line = String::new();
    for i in 0..m.rows() {
        line.clear();
        for (k, v) in m.row(i).iter().enumerate() {
            if k > 0 {
                line.push(',');
            }
            line.push_str(&v.to_string());
        }
        line.push('\n');
        w.write_all(line.as_bytes())
            .map_err(|e| Error::io(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let p = Path::new("x.csv");
        let m = parse_csv("1,2.5,-3\n\n4, 5e-3 ,6\n", p).unwrap();
        assert_eq!((m.rows(), m.cols()), (2, 3));
        assert_eq!(m.get(1, 1), 5e-3);
        let dir = std::env::temp_dir().join(format!("sdtw_io_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("m.csv");
        write_csv(&m, &f).unwrap();
        assert_eq!(read_csv(&f).unwrap(), m);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_csv_names_file_and_line() {
        let p = Path::new("feat.csv");
        let e = parse_csv("1,2\n3,x\n", p).unwrap_err().to_string();
        assert!(e.contains("feat.csv:2") && e.contains("'x'"), "{e}");
        let e = parse_csv("1,2\n3\n", p).unwrap_err().to_string();
        assert!(
            e.contains("feat.csv:2") && e.contains("first row has 2"),
            "{e}"
        );
        let e = parse_csv("perf_time_s,score_time_s\n1,2\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("feat.csv:1"), "{e}");
        assert!(parse_csv("\n\n", p).is_err());
        assert!(parse_csv("1,nan\n", p).is_err());
        assert!(read_csv(Path::new("/nonexistent/feat.csv")).is_err());
    }
}
