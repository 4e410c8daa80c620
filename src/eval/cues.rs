//! Cue timing (METRICS.md, "Cue timing"; the corpus's `score_cues.py`): a cue on every 4th
//! ground-truth event of each case with a score and no skip or repeat, fired by the same
//! [`CueState`] the show's cue sink runs, on the positions the follower reported.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::alignment::{AlignmentReport, CaseResult};
use crate::output::cues::{CuePoint, CueSettings, CueState, Firing, OnSkip};
use crate::output::PositionEvent;
use crate::{Error, Result};

/// One cue of a case: id, score time (s), and the performance time (s) at which the performer
/// reached it (the ground-truth event it sits on).
#[derive(Clone, Debug, PartialEq)]
pub struct CaseCue {
    /// `c0`, `c1`, ... as `score_cues.py --make` names them.
    pub id: String,
    /// Where it is in the score (s).
    pub score_s: f64,
    /// When the performer got there (s).
    pub true_perf_s: f64,
}

/// The cues of a case as `score_cues.py` places them: every 4th ground-truth event, at least
/// 3 s into the score and 1 s of score after the previous cue.
pub fn case_cues(gt: &(Vec<f64>, Vec<f64>)) -> Vec<CaseCue> {
    let mut out = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for (i, (&p, &s)) in gt.0.iter().zip(&gt.1).enumerate() {
        if i % 4 != 0 || s < 3.0 || s - last < 1.0 {
            continue;
        }
        out.push(CaseCue {
            id: format!("c{}", out.len()),
            score_s: s,
            true_perf_s: p,
        });
        last = s;
    }
    out
}

/// One firing: the cue's index, the position that fired it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CueFiring {
    /// Index into the case's cues.
    pub cue: usize,
    /// Performance time of the position that fired it (s).
    pub perf_time_s: f64,
    /// The heard score position that fired it (s).
    pub score_s: f64,
}

/// Run the cue logic of the show over `positions` for `cues` (lead 0, skipped cues fire, the
/// default firing settings), as the cue sink would have fired them live.
pub fn fire(positions: &[PositionEvent], cues: &[CaseCue]) -> Vec<CueFiring> {
    let points: Vec<CuePoint> = cues
        .iter()
        .map(|c| CuePoint {
            score_s: c.score_s,
            lead_s: 0.0,
            on_skip: OnSkip::Fire,
        })
        .collect();
    let mut state = CueState::new(points, CueSettings::default());
    let mut fired: Vec<Firing> = Vec::with_capacity(cues.len());
    let mut out = Vec::new();
    for p in positions {
        state.update(p.heard_score_s, p.tempo, p.confidence, &mut fired);
        out.extend(fired.iter().map(|f| CueFiring {
            cue: f.index,
            perf_time_s: p.perf_time_s,
            score_s: p.heard_score_s,
        }));
    }
    out
}

/// A case's cue figures (`score_cues.py`'s summary).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CueSummary {
    /// Cues placed.
    pub cues: usize,
    /// Cues that fired at least once.
    pub fired: usize,
    /// Cues that never fired.
    pub missed: usize,
    /// Cues that fired more than once.
    pub fired_more_than_once: usize,
    /// |error| quantiles of first firings (ms): p50, p90, max.
    pub abs_err_ms: [f64; 3],
    /// The earliest first firing (ms; negative = early).
    pub earliest_ms: f64,
    /// First firings more than 300 ms early.
    pub early_over_300ms: usize,
    /// First firings more than 300 ms late.
    pub late_over_300ms: usize,
}

/// Per cue: the error (ms) of its first firing, or None, and how often it fired.
pub fn cue_errors(cues: &[CaseCue], firings: &[CueFiring]) -> Vec<(Option<f64>, usize)> {
    cues.iter()
        .enumerate()
        .map(|(k, c)| {
            let times: Vec<f64> = firings
                .iter()
                .filter(|f| f.cue == k)
                .map(|f| f.perf_time_s)
                .collect();
            let first = times.iter().copied().fold(f64::INFINITY, f64::min);
            (
                first
                    .is_finite()
                    .then_some(1000.0 * (first - c.true_perf_s)),
                times.len(),
            )
        })
        .collect()
}

/// The summary of per-cue errors, with `score_cues.py`'s quantile convention (the value at
/// index floor(q (n - 1)) of the sorted |errors|).
pub fn summarize(per_cue: &[(Option<f64>, usize)]) -> CueSummary {
    let errs: Vec<f64> = per_cue.iter().filter_map(|c| c.0).collect();
    let mut a: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
    a.sort_by(f64::total_cmp);
    let q = |x: f64| {
        if a.is_empty() {
            f64::NAN
        } else {
            a[(x * (a.len() - 1) as f64) as usize]
        }
    };
    CueSummary {
        cues: per_cue.len(),
        fired: errs.len(),
        missed: per_cue.len() - errs.len(),
        fired_more_than_once: per_cue.iter().filter(|c| c.1 > 1).count(),
        abs_err_ms: [q(0.5), q(0.9), q(1.0)],
        earliest_ms: errs.iter().copied().fold(f64::NAN, f64::min),
        early_over_300ms: errs.iter().filter(|&&e| e < -300.0).count(),
        late_over_300ms: errs.iter().filter(|&&e| e > 300.0).count(),
    }
}

/// The cases cue timing is measured on: a score, no skip or repeat.
pub fn is_cue_case(r: &CaseResult) -> bool {
    r.case.score.is_some() && !r.case.case.contains("skip") && !r.case.case.contains("repeat")
}

/// Cue timing over the follow runs of `report`: per case and pooled, and the firing logs in
/// `log_dir/<piece>/<case>.csv` (`cue_id,perf_time_s,score_time_s,cue_score_s`, which
/// `score_cues.py --batch` reads).
pub fn cue_report(report: &AlignmentReport, log_dir: &Path) -> Result<CueReport> {
    let mut cases = Vec::new();
    let mut pooled = Vec::new();
    for r in report.results.iter().filter(|r| is_cue_case(r)) {
        let gt = super::read_xy(&r.case.gt_csv)?;
        let cues = case_cues(&gt);
        let firings = fire(&r.positions, &cues);
        write_log(
            &log_dir
                .join(&r.case.piece)
                .join(format!("{}.csv", r.case.case)),
            &cues,
            &firings,
        )?;
        let per_cue = cue_errors(&cues, &firings);
        cases.push((r.key.clone(), summarize(&per_cue)));
        pooled.extend(per_cue);
    }
    Ok(CueReport {
        pooled: summarize(&pooled),
        cases,
        log_dir: log_dir.to_path_buf(),
    })
}

fn write_log(path: &Path, cues: &[CaseCue], firings: &[CueFiring]) -> Result<()> {
    let io = |e| Error::io(path, e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    writeln!(w, "cue_id,perf_time_s,score_time_s,cue_score_s").map_err(io)?;
    for f in firings {
        let c = &cues[f.cue];
        writeln!(
            w,
            "{},{:.4},{:.4},{:.4}",
            c.id, f.perf_time_s, f.score_s, c.score_s
        )
        .map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Cue timing per case and pooled; `Display` prints the table.
#[derive(Clone, Debug)]
pub struct CueReport {
    /// `piece/case` and its figures.
    pub cases: Vec<(String, CueSummary)>,
    /// Every cue of every case.
    pub pooled: CueSummary,
    /// Where the firing logs are.
    pub log_dir: PathBuf,
}

impl std::fmt::Display for CueReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        writeln!(
            s,
            "\ncue timing ({} cases, cue logs in {}): error = first firing - arrival, ms\n",
            self.cases.len(),
            self.log_dir.display()
        )?;
        writeln!(
            s,
            "| case | cues | missed | twice | p50 | p90 | max | earliest | early >300 | late >300 |"
        )?;
        writeln!(s, "|---|---|---|---|---|---|---|---|---|---|")?;
        let row = |s: &mut String, name: &str, c: &CueSummary| {
            writeln!(
                s,
                "| {name} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
                c.cues,
                c.missed,
                c.fired_more_than_once,
                c.abs_err_ms[0],
                c.abs_err_ms[1],
                c.abs_err_ms[2],
                c.earliest_ms,
                c.early_over_300ms,
                c.late_over_300ms
            )
        };
        for (name, c) in &self.cases {
            row(&mut s, name, c)?;
        }
        row(&mut s, "POOLED", &self.pooled)?;
        let early_cases = self
            .cases
            .iter()
            .filter(|(_, c)| c.early_over_300ms > 0)
            .count();
        write!(
            s,
            "\ncases with a cue more than 300 ms early: {early_cases} of {}",
            self.cases.len()
        )?;
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_sit_on_every_fourth_event_after_3_s_and_1_s_apart() {
        let gt: (Vec<f64>, Vec<f64>) = (
            (0..40).map(|k| k as f64 * 0.5).collect(),
            (0..40).map(|k| k as f64 * 0.25).collect(),
        );
        let cues = case_cues(&gt);
        let s: Vec<f64> = cues.iter().map(|c| c.score_s).collect();
        // Events 0, 4, 8, ... at score 0, 1, 2, ...: from 3 s on, every other one (1 s apart).
        assert_eq!(s, [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(cues[0].id, "c0");
        assert_eq!(cues[0].true_perf_s, 6.0);
    }

    #[test]
    fn errors_count_first_firings_repeats_and_misses() {
        let cues = vec![
            CaseCue {
                id: "c0".into(),
                score_s: 3.0,
                true_perf_s: 10.0,
            },
            CaseCue {
                id: "c1".into(),
                score_s: 4.0,
                true_perf_s: 11.0,
            },
            CaseCue {
                id: "c2".into(),
                score_s: 5.0,
                true_perf_s: 12.0,
            },
        ];
        let f = |cue, t| CueFiring {
            cue,
            perf_time_s: t,
            score_s: 0.0,
        };
        let per = cue_errors(&cues, &[f(0, 9.5), f(1, 11.1), f(0, 10.2)]);
        assert_eq!(per[0], (Some(-500.0), 2));
        assert!((per[1].0.unwrap_or(0.0) - 100.0).abs() < 1e-6);
        assert_eq!(per[2], (None, 0));
        let s = summarize(&per);
        assert_eq!(
            (s.cues, s.fired, s.missed, s.fired_more_than_once),
            (3, 2, 1, 1)
        );
        assert_eq!(s.early_over_300ms, 1);
        assert_eq!(s.earliest_ms, -500.0);
        assert!((s.abs_err_ms[0] - 100.0).abs() < 1e-6);
        assert_eq!(s.abs_err_ms[2], 500.0);
    }
}
