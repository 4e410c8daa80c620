//! The interpretation switcher measured on a corpus: for two performances A and B of one piece
//! (the cases of kind `human_midi` or `real_recording`), every ground-truth event of A is
//! mapped to B with [`Versions::map`]; the truth is B's performance time at the event's score
//! time, interpolated linearly between B's neighbouring ground-truth events. Both directions of
//! every pair, each alignment built as `scorefollow switch A B` builds it (B aligned to A, or
//! both to the score).

use std::fmt;
use std::path::Path;

use super::{read_index, read_xy, summarize, table_header, CorpusCase, Metrics, Row};
use crate::web::versions::{AlignCache, Versions};

/// One direction of one pair.
#[derive(Clone, Debug)]
pub struct SwitchCase {
    /// `piece: A -> B`.
    pub label: String,
    /// Errors of the mapped times (ms), one per ground-truth event of A with a truth in B.
    pub errors_ms: Vec<f64>,
    /// Their statistics.
    pub metrics: Metrics,
}

/// Every direction of every pair, and the pool.
#[derive(Clone, Debug)]
pub struct SwitchReport {
    /// What the recordings were aligned to.
    pub against: &'static str,
    /// One per direction.
    pub cases: Vec<SwitchCase>,
    /// All events of all directions.
    pub pooled: Metrics,
}

impl fmt::Display for SwitchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nscorefollow eval --mode switch: {} directions, aligned {}; error of the mapped time in B for each ground-truth event of A\n",
            self.cases.len(),
            self.against
        )?;
        writeln!(f, "{}", table_header())?;
        for c in &self.cases {
            writeln!(f, "{}", Row(&c.label, &c.metrics))?;
        }
        writeln!(
            f,
            "{}",
            Row(
                &format!("POOLED ({} directions)", self.cases.len()),
                &self.pooled
            )
        )
    }
}

/// The pairs of performances: in each piece, every two cases that are performances (kind
/// `human_midi` or `real_recording`), once each.
pub fn switch_pairs(cases: &[CorpusCase]) -> Vec<(CorpusCase, CorpusCase)> {
    let perf: Vec<&CorpusCase> = cases
        .iter()
        .filter(|c| c.kind == "human_midi" || c.kind == "real_recording")
        .collect();
    let mut out = Vec::new();
    for (i, a) in perf.iter().enumerate() {
        for b in &perf[i + 1..] {
            if a.piece == b.piece {
                out.push(((*a).clone(), (*b).clone()));
            }
        }
    }
    out
}

/// B's performance time at score time `score_s`, linear between B's neighbouring ground-truth
/// events (`gt` = perf times, score times, sorted by perf time); None outside B's events.
pub fn truth_at(gt: &(Vec<f64>, Vec<f64>), score_s: f64) -> Option<f64> {
    let (perf, score) = gt;
    let i = score.partition_point(|&s| s < score_s);
    if i < score.len() && score[i] == score_s {
        return Some(perf[i]);
    }
    if i == 0 || i >= score.len() {
        return None;
    }
    let (x0, x1, s0, s1) = (perf[i - 1], perf[i], score[i - 1], score[i]);
    (s1 > s0).then(|| x0 + (x1 - x0) * (score_s - s0) / (s1 - s0))
}

/// Errors (ms) of mapping every event of `gt_a` from version `a` to version `b`.
pub fn map_errors_ms(
    versions: &Versions,
    a: usize,
    b: usize,
    gt_a: &(Vec<f64>, Vec<f64>),
    gt_b: &(Vec<f64>, Vec<f64>),
) -> crate::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(gt_a.0.len());
    for (&perf_a, &score_s) in gt_a.0.iter().zip(&gt_a.1) {
        if let Some(truth) = truth_at(gt_b, score_s) {
            out.push(1000.0 * (versions.map(a, b, perf_a)? - truth).abs());
        }
    }
    Ok(out)
}

/// Measure every pair of `corpus_dir` whose `piece/case` keys both contain one of `filters`
/// (all pairs when empty), aligned to the score (`to_score`, where the piece has one) or
/// the second recording to the first.
pub fn eval_switch(
    corpus_dir: &Path,
    filters: &[String],
    to_score: bool,
) -> crate::Result<SwitchReport> {
    let keep = |c: &CorpusCase| filters.is_empty() || filters.iter().any(|f| c.key().contains(f));
    let pairs: Vec<_> = switch_pairs(&read_index(corpus_dir)?)
        .into_iter()
        .filter(|(a, b)| keep(a) && keep(b))
        .collect();
    let mut cases = Vec::new();
    for (a, b) in pairs {
        let score = if to_score { a.score.as_deref() } else { None };
        let recordings = [a.performance.clone(), b.performance.clone()];
        let versions = Versions::build(&recordings, score, &AlignCache::none(), |_| {})?;
        let (gt_a, gt_b) = (read_xy(&a.gt_csv)?, read_xy(&b.gt_csv)?);
        for (from, to, ca, cb, ga, gb) in
            [(0, 1, &a, &b, &gt_a, &gt_b), (1, 0, &b, &a, &gt_b, &gt_a)]
        {
            let errors_ms = map_errors_ms(&versions, from, to, ga, gb)?;
            let metrics = summarize(&errors_ms);
            cases.push(SwitchCase {
                label: format!("{}: {} -> {}", ca.piece, ca.case, cb.case),
                errors_ms,
                metrics,
            });
        }
    }
    let all: Vec<f64> = cases
        .iter()
        .flat_map(|c| c.errors_ms.iter().copied())
        .collect();
    Ok(SwitchReport {
        against: if to_score {
            "both to the score"
        } else {
            "the second recording to the first"
        },
        pooled: summarize(&all),
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::warp::WarpMap;
    use crate::web::versions::{Common, Version};
    use std::path::PathBuf;

    #[test]
    fn truth_interpolates_between_neighbouring_events() {
        let gt = (vec![1.0, 2.0, 4.0], vec![0.0, 1.0, 2.0]);
        assert_eq!(truth_at(&gt, 0.0), Some(1.0));
        assert_eq!(truth_at(&gt, 1.5), Some(3.0));
        assert_eq!(truth_at(&gt, 2.0), Some(4.0));
        assert_eq!(truth_at(&gt, 2.5), None);
        assert_eq!(truth_at(&gt, -0.1), None);
    }

    /// Two versions whose maps are the ground truth give no error; a shifted one gives the
    /// shift.
    #[test]
    fn exact_maps_give_no_error() {
        let gt_a = (vec![1.0, 2.0, 3.0], vec![0.0, 1.0, 2.0]);
        let gt_b = (vec![0.5, 2.5, 4.5], vec![0.0, 1.0, 2.0]);
        let version = |gt: &(Vec<f64>, Vec<f64>), shift: f64| Version {
            path: PathBuf::from("x.flac"),
            duration_s: 10.0,
            to_common: WarpMap::from_monotone(
                &gt.0
                    .iter()
                    .zip(&gt.1)
                    .map(|(&p, &s)| (p + shift, s))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|e| panic!("{e}")),
            cached: false,
        };
        let mk = |shift_b: f64| Versions {
            versions: vec![version(&gt_a, 0.0), version(&gt_b, shift_b)],
            common: Common::FirstRecording,
            common_duration_s: 3.0,
        };
        let e = map_errors_ms(&mk(0.0), 0, 1, &gt_a, &gt_b).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.iter().all(|&x| x < 1e-9), "{e:?}");
        let e = map_errors_ms(&mk(0.1), 0, 1, &gt_a, &gt_b).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.iter().all(|&x| (x - 100.0).abs() < 1e-6), "{e:?}");
    }
}
