//! Theme-spotting metrics, computed exactly as the corpus evaluator `score_themes.py` does
//! (METRICS.md): per theme, predictions in descending score order are matched greedily to
//! unused true occurrences (IoU >= 0.5, or |start difference| <= 1 s, the closest/most
//! overlapping one first); precision, recall and F1 pooled over everything; P@1 and MAP over
//! queries (theme x recording with at least one true occurrence).

use std::collections::BTreeMap;

/// One interval with a score (GT rows carry their file order as the score, like the evaluator).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// Start (s).
    pub start_s: f64,
    /// End (s).
    pub end_s: f64,
    /// Confidence, higher first.
    pub score: f64,
}

/// Occurrences grouped by theme id.
pub type ByTheme = BTreeMap<String, Vec<Interval>>;

/// Matching criterion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// Temporal IoU >= 0.5.
    Iou,
    /// |start_pred - start_true| <= 1 s.
    Onset,
}

fn iou(a: &Interval, b: &Interval) -> f64 {
    let inter = (a.end_s.min(b.end_s) - a.start_s.max(b.start_s)).max(0.0);
    let union = a.end_s.max(b.end_s) - a.start_s.min(b.start_s);
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Hit flags of `pred` in ranked order (stable sort by descending score, as Python's `sorted`).
pub fn match_flags(gt: &[Interval], pred: &[Interval], crit: Criterion) -> Vec<bool> {
    let mut used = vec![false; gt.len()];
    let mut order: Vec<&Interval> = pred.iter().collect();
    // partial_cmp, not total_cmp: -0.0 and 0.0 must tie, as in Python.
    order.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
        .iter()
        .map(|p| {
            let mut best = -1.0f64;
            let mut bi: Option<usize> = None;
            for (i, g) in gt.iter().enumerate() {
                if used[i] {
                    continue;
                }
                let (v, ok) = match crit {
                    Criterion::Iou => {
                        let v = iou(p, g);
                        (v, v >= 0.5)
                    }
                    Criterion::Onset => {
                        let d = (p.start_s - g.start_s).abs();
                        (-d, d <= 1.0)
                    }
                };
                if ok && v > best {
                    best = v;
                    bi = Some(i);
                }
            }
            if let Some(i) = bi {
                used[i] = true;
                true
            } else {
                false
            }
        })
        .collect()
}

/// Accumulated counts for one criterion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accumulator {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// Missed true occurrences.
    pub fn_: usize,
    /// Per query: 1 when the top prediction is a hit.
    pub p_at_1: Vec<f64>,
    /// Per query: average precision.
    pub ap: Vec<f64>,
}

/// Final numbers for one criterion.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// hits / predictions.
    pub precision: f64,
    /// hits / true occurrences.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// Missed occurrences.
    pub fn_: usize,
    /// Share of queries whose top prediction is a hit.
    pub p_at_1: f64,
    /// Mean average precision over queries.
    pub map: f64,
    /// Number of queries (theme x recording with >= 1 true occurrence).
    pub n_queries: usize,
}

impl Accumulator {
    /// Add one recording: its true occurrences and predictions by theme id.
    pub fn add(&mut self, gt: &ByTheme, pred: &ByTheme, crit: Criterion) {
        let mut ids: Vec<&String> = gt.keys().chain(pred.keys()).collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let g = gt.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let p = pred.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let flags = match_flags(g, p, crit);
            let tp = flags.iter().filter(|&&f| f).count();
            self.tp += tp;
            self.fp += flags.len() - tp;
            self.fn_ += g.len() - tp;
            if !g.is_empty() {
                self.p_at_1.push(if flags.first() == Some(&true) {
                    1.0
                } else {
                    0.0
                });
                let mut hits = 0usize;
                let mut s = 0.0;
                for (r, &f) in flags.iter().enumerate() {
                    if f {
                        hits += 1;
                        s += hits as f64 / (r + 1) as f64;
                    }
                }
                self.ap.push(s / g.len() as f64);
            }
        }
    }

    /// The metrics so far.
    pub fn result(&self) -> Metrics {
        let ratio = |a: usize, b: usize| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let p = ratio(self.tp, self.tp + self.fp);
        let r = ratio(self.tp, self.tp + self.fn_);
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        Metrics {
            precision: p,
            recall: r,
            f1: if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            },
            tp: self.tp,
            fp: self.fp,
            fn_: self.fn_,
            p_at_1: mean(&self.p_at_1),
            map: mean(&self.ap),
            n_queries: self.p_at_1.len(),
        }
    }
}

/// Read a themes CSV with a header holding `theme_id,start_s,end_s` (and optionally `score`,
/// `transposition`), as the evaluator does: rows whose start/end do not parse are skipped; rows
/// without a score get `-row_index`; with `exact_only`, rows with a non-zero transposition are
/// dropped.
pub fn read_themes_csv(path: &std::path::Path, exact_only: bool) -> crate::Result<ByTheme> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
    parse_themes_csv(&text, exact_only).map_err(|reason| crate::Error::Parse {
        path: path.to_path_buf(),
        line: 1,
        reason,
    })
}

/// [`read_themes_csv`] on text.
pub fn parse_themes_csv(text: &str, exact_only: bool) -> Result<ByTheme, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty file")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(ci), Some(cs), Some(ce)) = (col("theme_id"), col("start_s"), col("end_s")) else {
        return Err("header needs theme_id,start_s,end_s".into());
    };
    let c_score = col("score");
    let c_tr = col("transposition");
    let mut out = ByTheme::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| f.get(c).copied().unwrap_or("");
        let (Ok(a), Ok(b)) = (get(cs).parse::<f64>(), get(ce).parse::<f64>()) else {
            continue;
        };
        if exact_only {
            if let Some(c) = c_tr {
                let t: f64 = get(c).parse().unwrap_or(0.0);
                if t as i64 != 0 {
                    continue;
                }
            }
        }
        let score = c_score
            .and_then(|c| get(c).parse::<f64>().ok())
            .unwrap_or(-(i as f64));
        out.entry(get(ci).to_string()).or_default().push(Interval {
            start_s: a,
            end_s: b,
            score,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(a: f64, b: f64, s: f64) -> Interval {
        Interval {
            start_s: a,
            end_s: b,
            score: s,
        }
    }

    #[test]
    fn hand_computed_example() {
        // GT: two occurrences. Predictions ranked: miss, hit, duplicate of the same hit, hit.
        let mut gt = ByTheme::new();
        gt.insert("t".into(), vec![iv(10.0, 15.0, 0.0), iv(30.0, 35.0, -1.0)]);
        let mut pr = ByTheme::new();
        pr.insert(
            "t".into(),
            vec![
                iv(50.0, 55.0, 0.9),
                iv(10.5, 15.5, 0.8),
                iv(10.2, 15.2, 0.7),
                iv(30.9, 36.0, 0.6),
            ],
        );
        let mut acc = Accumulator::default();
        acc.add(&gt, &pr, Criterion::Onset);
        let r = acc.result();
        assert_eq!((r.tp, r.fp, r.fn_), (2, 2, 0));
        assert_eq!(r.p_at_1, 0.0);
        // AP = (1/2) * (1/2 + 2/4) = 0.5
        assert!((r.map - 0.5).abs() < 1e-12);
        assert!((r.precision - 0.5).abs() < 1e-12 && (r.recall - 1.0).abs() < 1e-12);
    }

    #[test]
    fn iou_criterion_and_theme_without_gt() {
        let mut gt = ByTheme::new();
        gt.insert("a".into(), vec![iv(0.0, 4.0, 0.0)]);
        let mut pr = ByTheme::new();
        pr.insert("a".into(), vec![iv(1.0, 5.0, 1.0)]); // IoU 3/5
        pr.insert("b".into(), vec![iv(1.0, 5.0, 1.0)]); // no GT: false positive, no query
        let mut acc = Accumulator::default();
        acc.add(&gt, &pr, Criterion::Iou);
        let r = acc.result();
        assert_eq!((r.tp, r.fp, r.fn_, r.n_queries), (1, 1, 0, 1));
        assert_eq!(r.p_at_1, 1.0);
    }

    #[test]
    fn csv_parsing_follows_the_evaluator() {
        let t = "theme_id,start_s,end_s,transposition\nx,1,2,0\nx,bad,3,0\nx,5,6,1\n";
        let all = parse_themes_csv(t, false).unwrap();
        assert_eq!(all["x"].len(), 2);
        assert_eq!(all["x"][1].score, -2.0);
        let exact = parse_themes_csv(t, true).unwrap();
        assert_eq!(exact["x"].len(), 1);
        assert!(parse_themes_csv("a,b\n1,2\n", false).is_err());
    }
}
