//! Evaluation against ground truth, with the metrics of the corpus's `METRICS.md`
//! (`score_alignment.py`): for every ground-truth event the predicted score time at its
//! performance time (interpolated, or with `hold` the latest prediction at or before it), the
//! absolute error in ms, and the share of events within 50/100/200/300/500/1000 ms.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::Error;

/// Thresholds (ms) of the `le_X_ms_pct` metrics.
pub const THRESH_MS: [f64; 6] = [50.0, 100.0, 200.0, 300.0, 500.0, 1000.0];

/// Error statistics of one case or a pool of cases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Number of ground-truth events.
    pub n: usize,
    /// Mean absolute error (ms).
    pub mean_ms: f64,
    /// Median absolute error (ms).
    pub median_ms: f64,
    /// 90th percentile (ms), as `score_alignment.py` takes it.
    pub p90_ms: f64,
    /// Largest error (ms).
    pub max_ms: f64,
    /// % of events within each of [`THRESH_MS`].
    pub le_pct: [f64; 6],
}

impl Metrics {
    /// % of events within `ms` (one of [`THRESH_MS`]).
    pub fn le(&self, ms: f64) -> f64 {
        THRESH_MS
            .iter()
            .position(|&t| t == ms)
            .map(|k| self.le_pct[k])
            .unwrap_or(f64::NAN)
    }
}

/// Statistics of a list of absolute errors (ms).
pub fn summarize(errors_ms: &[f64]) -> Metrics {
    if errors_ms.is_empty() {
        return Metrics::default();
    }
    let mut e = errors_ms.to_vec();
    e.sort_by(f64::total_cmp);
    let n = e.len();
    let median = if n % 2 == 1 {
        e[n / 2]
    } else {
        0.5 * (e[n / 2 - 1] + e[n / 2])
    };
    let mut le_pct = [0.0; 6];
    for (k, t) in THRESH_MS.iter().enumerate() {
        le_pct[k] = 100.0 * e.iter().filter(|&&x| x <= *t).count() as f64 / n as f64;
    }
    Metrics {
        n,
        mean_ms: e.iter().sum::<f64>() / n as f64,
        median_ms: median,
        p90_ms: e[((0.9 * n as f64) as usize).min(n - 1)],
        max_ms: e[n - 1],
        le_pct,
    }
}

/// Predicted score time at performance time `t` from prediction rows sorted by time.
pub fn predict(px: &[f64], py: &[f64], t: f64, hold: bool) -> f64 {
    if px.is_empty() {
        return f64::NAN;
    }
    if t <= px[0] {
        return py[0];
    }
    if t >= px[px.len() - 1] {
        return py[py.len() - 1];
    }
    let i = px.partition_point(|&x| x <= t) - 1;
    if hold {
        return py[i];
    }
    let (x0, x1, y0, y1) = (px[i], px[i + 1], py[i], py[i + 1]);
    if x1 <= x0 {
        return y1;
    }
    y0 + (y1 - y0) * (t - x0) / (x1 - x0)
}

/// Absolute errors (ms) of predictions against ground truth.
pub fn errors_ms(gt: &(Vec<f64>, Vec<f64>), pred: &(Vec<f64>, Vec<f64>), hold: bool) -> Vec<f64> {
    let mut order: Vec<usize> = (0..pred.0.len()).collect();
    order.sort_by(|&a, &b| pred.0[a].total_cmp(&pred.0[b]));
    let px: Vec<f64> = order.iter().map(|&i| pred.0[i]).collect();
    let py: Vec<f64> = order.iter().map(|&i| pred.1[i]).collect();
    gt.0.iter()
        .zip(&gt.1)
        .map(|(&t, &s)| 1000.0 * (predict(&px, &py, t, hold) - s).abs())
        .collect()
}

/// Read the `perf_time_s` and `score_time_s` columns of a CSV with a header (rows that do not
/// parse are skipped, as the reference evaluator does).
pub fn read_xy(path: &Path) -> crate::Result<(Vec<f64>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| Error::Parse {
                path: path.to_path_buf(),
                line: 1,
                reason: format!("no '{name}' column in the header"),
            })
    };
    let (cx, cy) = (col("perf_time_s")?, col("score_time_s")?);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if let (Some(x), Some(y)) = (f.get(cx), f.get(cy)) {
            if let (Ok(x), Ok(y)) = (x.trim().parse::<f64>(), y.trim().parse::<f64>()) {
                xs.push(x);
                ys.push(y);
            }
        }
    }
    Ok((xs, ys))
}

/// Performance times (s) of the skips and repeats of a case (`case.json` next to its ground
/// truth, `jumps[]` of type skip or repeat); empty when the case has none or no `case.json`.
pub fn case_jumps_s(case: &CorpusCase) -> Vec<f64> {
    let Some(path) = case.gt_csv.parent().map(|d| d.join("case.json")) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut out: Vec<f64> = v
        .get("jumps")
        .and_then(|j| j.as_array())
        .map(|a| {
            a.iter()
                .filter(|j| {
                    matches!(
                        j.get("type").and_then(|t| t.as_str()),
                        Some("skip" | "repeat")
                    )
                })
                .filter_map(|j| j.get("perf_time_s").and_then(|t| t.as_f64()))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(f64::total_cmp);
    out
}

/// Errors of the events that are not within `exclude_s` after a jump (`jumps_s`, performance
/// times), the way the robustness targets are scored.
pub fn errors_outside_jumps(
    gt_times_s: &[f64],
    errors_ms: &[f64],
    jumps_s: &[f64],
    exclude_s: f64,
) -> Vec<f64> {
    gt_times_s
        .iter()
        .zip(errors_ms)
        .filter(|(&t, _)| !jumps_s.iter().any(|&j| t >= j && t < j + exclude_s))
        .map(|(_, &e)| e)
        .collect()
}

/// Time (s) from a jump at `jump_s` until the follower is back: the first ground-truth event
/// after the jump from which every event in the next `hold_s` seconds is within `tol_ms`.
/// None if it never comes back.
pub fn recovery_s(
    gt_times_s: &[f64],
    errors_ms: &[f64],
    jump_s: f64,
    tol_ms: f64,
    hold_s: f64,
) -> Option<f64> {
    let after: Vec<(f64, f64)> = gt_times_s
        .iter()
        .zip(errors_ms)
        .filter(|(&t, _)| t >= jump_s)
        .map(|(&t, &e)| (t, e))
        .collect();
    (0..after.len())
        .find(|&i| {
            after[i..]
                .iter()
                .take_while(|(t, _)| *t <= after[i].0 + hold_s)
                .all(|(_, e)| *e <= tol_ms)
        })
        .map(|i| after[i].0 - jump_s)
}

/// One row of the corpus `index.csv`.
#[derive(Clone, Debug)]
pub struct CorpusCase {
    /// Piece id.
    pub piece: String,
    /// Case id.
    pub case: String,
    /// Case kind (human_midi, synthetic_warp, real_recording, robustness).
    pub kind: String,
    /// Performance audio.
    pub performance: PathBuf,
    /// Reference audio.
    pub reference: PathBuf,
    /// MIDI score, if the piece has one.
    pub score: Option<PathBuf>,
    /// Ground truth.
    pub gt_csv: PathBuf,
    /// Theme ground truth, if any.
    pub themes_gt: Option<PathBuf>,
    /// Duration of the performance (s).
    pub duration_s: f64,
}

impl CorpusCase {
    /// `piece/case`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.piece, self.case)
    }

    /// True for the cases the main accuracy targets leave out (their own issue).
    pub fn is_jump_or_transpose(&self) -> bool {
        ["robust_skip", "robust_repeat", "robust_transpose"].contains(&self.case.as_str())
    }
}

/// Read `CORPUS_DIR/index.csv`.
pub fn read_index(corpus_dir: &Path) -> crate::Result<Vec<CorpusCase>> {
    let path = corpus_dir.join("index.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let idx: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |k: &str| -> crate::Result<&str> {
            idx.get(k)
                .and_then(|&i| f.get(i))
                .copied()
                .ok_or_else(|| Error::Parse {
                    path: path.clone(),
                    line: n + 2,
                    reason: format!("missing column '{k}'"),
                })
        };
        let opt = |k: &str| -> Option<PathBuf> {
            get(k)
                .ok()
                .filter(|s| !s.is_empty())
                .map(|s| corpus_dir.join(s))
        };
        out.push(CorpusCase {
            piece: get("piece")?.to_string(),
            case: get("case")?.to_string(),
            kind: get("kind")?.to_string(),
            performance: corpus_dir.join(get("performance")?),
            reference: corpus_dir.join(get("reference")?),
            score: opt("score"),
            gt_csv: corpus_dir.join(get("gt_csv")?),
            themes_gt: opt("themes_gt"),
            duration_s: get("duration_s")?.parse().unwrap_or(0.0),
        });
    }
    Ok(out)
}

/// One line of a results table.
pub struct Row<'a>(pub &'a str, pub &'a Metrics);

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.1;
        write!(
            f,
            "| {:<48} | {:>5} | {:>7.1} | {:>7.1} |",
            self.0, m.n, m.mean_ms, m.median_ms
        )?;
        for p in m.le_pct {
            write!(f, " {p:>5.1} |")?;
        }
        Ok(())
    }
}

/// Header of the results table.
pub fn table_header() -> String {
    let mut s = format!(
        "| {:<48} | {:>5} | {:>7} | {:>7} |",
        "case", "n", "mean ms", "med ms"
    );
    for t in THRESH_MS {
        s.push_str(&format!(" {:>5} |", format!("<={t}")));
    }
    s.push('\n');
    s.push_str(&format!(
        "|{}|{}|{}|{}|",
        "-".repeat(50),
        "-".repeat(7),
        "-".repeat(9),
        "-".repeat(9)
    ));
    for _ in THRESH_MS {
        s.push_str(&format!("{}|", "-".repeat(7)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_interpolates_and_holds() {
        let px = [0.0, 1.0, 2.0];
        let py = [10.0, 20.0, 40.0];
        assert_eq!(predict(&px, &py, -1.0, false), 10.0);
        assert_eq!(predict(&px, &py, 0.5, false), 15.0);
        assert_eq!(predict(&px, &py, 0.5, true), 10.0);
        assert_eq!(predict(&px, &py, 1.0, true), 20.0);
        assert_eq!(predict(&px, &py, 1.5, false), 30.0);
        assert_eq!(predict(&px, &py, 3.0, true), 40.0);
    }

    #[test]
    fn recovery_and_exclusion_by_hand() {
        let t = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let e = [
            10.0, 10.0, 900.0, 800.0, 50.0, 700.0, 20.0, 30.0, 10.0, 10.0,
        ];
        // Jump at 2.5: bad at 3, 4; good at 5 but bad at 6 (within 2 s); good from 7 on.
        assert_eq!(recovery_s(&t, &e, 2.5, 300.0, 2.0), Some(7.0 - 2.5));
        assert_eq!(recovery_s(&t, &e, 2.5, 1000.0, 2.0), Some(0.5));
        assert_eq!(recovery_s(&t, &[900.0; 10], 2.5, 300.0, 2.0), None);
        let kept = errors_outside_jumps(&t, &e, &[2.5], 5.0);
        assert_eq!(kept, vec![10.0, 10.0, 30.0, 10.0, 10.0]);
    }

    #[test]
    fn summary_matches_hand_computation() {
        let m = summarize(&[10.0, 40.0, 120.0, 250.0, 2000.0, 90.0]);
        assert_eq!(m.n, 6);
        assert!((m.median_ms - 105.0).abs() < 1e-12);
        assert_eq!(m.p90_ms, 2000.0);
        assert_eq!(m.max_ms, 2000.0);
        assert!((m.le(50.0) - 100.0 * 2.0 / 6.0).abs() < 1e-9);
        assert!((m.le(300.0) - 100.0 * 5.0 / 6.0).abs() < 1e-9);
        assert_eq!(summarize(&[]).n, 0);
    }
}

/// Index of the latest prediction at or before `t` (the causal reading; the first one before
/// any), from prediction times sorted ascending. None without predictions.
pub fn held_index(px: &[f64], t: f64) -> Option<usize> {
    if px.is_empty() {
        return None;
    }
    Some(px.partition_point(|&x| x <= t).saturating_sub(1))
}

/// One 0.1-wide confidence bin of the calibration table (METRICS.md, "Confidence
/// calibration").
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CalibrationBin {
    /// Lower edge of the bin (0, 0.1, ..., 0.9; the last bin includes 1).
    pub lower: f64,
    /// Events whose position came with a confidence in the bin.
    pub n: usize,
    /// % of them within 300 ms.
    pub le300_pct: f64,
    /// % of them within 100 ms.
    pub le100_pct: f64,
}

/// The calibration table of `(confidence, error ms)` pairs: ten bins of 0.1 (an event with a
/// NaN confidence counts in the lowest).
pub fn calibration(events: &[(f32, f64)]) -> [CalibrationBin; 10] {
    let mut bins: [CalibrationBin; 10] = std::array::from_fn(|k| CalibrationBin {
        lower: k as f64 / 10.0,
        ..CalibrationBin::default()
    });
    let mut ok = [[0usize; 2]; 10];
    for &(c, e) in events {
        let k = if c.is_finite() {
            ((c.clamp(0.0, 1.0) * 10.0) as usize).min(9)
        } else {
            0
        };
        bins[k].n += 1;
        ok[k][0] += usize::from(e <= 300.0);
        ok[k][1] += usize::from(e <= 100.0);
    }
    for (b, o) in bins.iter_mut().zip(ok) {
        if b.n > 0 {
            b.le300_pct = 100.0 * o[0] as f64 / b.n as f64;
            b.le100_pct = 100.0 * o[1] as f64 / b.n as f64;
        }
    }
    bins
}

/// A step of the reported position that METRICS.md counts as a false jump.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FalseJump {
    /// Performance time of the frame after the step (s).
    pub perf_time_s: f64,
    /// Score time before the step (s).
    pub from_score_s: f64,
    /// Score time after the step (s).
    pub to_score_s: f64,
    /// Error at the next ground-truth event (s of score).
    pub error_s: f64,
}

/// False jumps (METRICS.md, "Jumps"): every step of the reported position of more than 2 s of
/// score between two consecutive frames (`rows`: perf time, score time, in order) that lands
/// more than 2 s of score from the ground truth at the next ground-truth event.
pub fn false_jumps(rows: &[(f64, f64)], gt: &(Vec<f64>, Vec<f64>)) -> Vec<FalseJump> {
    let px: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let py: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let mut out = Vec::new();
    for w in 1..rows.len() {
        let (from, (t, to)) = (rows[w - 1].1, rows[w]);
        if (to - from).abs() <= 2.0 {
            continue;
        }
        let k = gt.0.partition_point(|&g| g < t);
        let Some((&gt_t, &gt_s)) = gt.0.get(k).zip(gt.1.get(k)) else {
            continue;
        };
        let error_s = (predict(&px, &py, gt_t, true) - gt_s).abs();
        if error_s > 2.0 {
            out.push(FalseJump {
                perf_time_s: t,
                from_score_s: from,
                to_score_s: to,
                error_s,
            });
        }
    }
    out
}

#[cfg(test)]
mod trust_tests {
    use super::*;

    #[test]
    fn calibration_bins_by_tenths_and_counts_shares() {
        let events = [
            (0.95, 10.0),
            (0.91, 400.0),
            (1.0, 50.0),
            (0.05, 2000.0),
            (f32::NAN, 10.0),
            (0.55, 150.0),
        ];
        let t = calibration(&events);
        assert_eq!(t[9].n, 3);
        assert!((t[9].le300_pct - 200.0 / 3.0).abs() < 1e-9);
        assert!((t[9].le100_pct - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(t[0].n, 2);
        assert_eq!(t[0].le300_pct, 50.0);
        assert_eq!((t[5].n, t[5].le300_pct, t[5].le100_pct), (1, 100.0, 0.0));
        assert_eq!(t.iter().map(|b| b.n).sum::<usize>(), events.len());
    }

    #[test]
    fn a_false_jump_lands_far_from_the_truth_and_a_true_one_does_not() {
        // Truth: score = perf time, with a skip at 10 s from score 10 to 20.
        let gt: (Vec<f64>, Vec<f64>) = (
            (0..30).map(|k| k as f64).collect(),
            (0..30)
                .map(|k| if k < 10 { k as f64 } else { k as f64 + 10.0 })
                .collect(),
        );
        // The follower jumps correctly at 10.5 s, then wrongly to 50 s at 20.5 s.
        let rows: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                let t = i as f64 * 0.5;
                let s = if t < 10.5 {
                    t
                } else if t < 20.5 {
                    t + 10.0
                } else {
                    t + 30.0
                };
                (t, s)
            })
            .collect();
        let f = false_jumps(&rows, &gt);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].perf_time_s, 20.5);
        assert!((f[0].error_s - 20.0).abs() < 1e-9);
    }

    #[test]
    fn held_index_is_the_latest_at_or_before() {
        let px = [0.0, 1.0, 2.0];
        assert_eq!(held_index(&px, -1.0), Some(0));
        assert_eq!(held_index(&px, 1.0), Some(1));
        assert_eq!(held_index(&px, 1.5), Some(1));
        assert_eq!(held_index(&px, 9.0), Some(2));
        assert_eq!(held_index(&[], 1.0), None);
    }
}
