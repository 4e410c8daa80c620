//! Peak picking on a matching function Δ: minima under the threshold τ, each followed by an
//! exclusion neighbourhood ρ (FMP C7S2.2), plus suppression of hits that overlap an accepted
//! one by more than half of the shorter.

/// One candidate match: the optimal path ending at database frame `end` (inclusive) starting at
/// `start`, with cost Δ(end) and the index of the query variant (scale, transposition) that
/// gave it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// First database frame of the match.
    pub start: usize,
    /// Last database frame of the match (inclusive).
    pub end: usize,
    /// Δ(end): mean local cost along the path (0 = identical).
    pub cost: f32,
    /// Index of the query variant.
    pub variant: usize,
}

/// A matching function over database frames, already minimised over query variants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatchCurve {
    /// Δ(m); `INFINITY` where no match can end.
    pub delta: Vec<f32>,
    /// Start frame of the optimal path ending at `m`.
    pub start: Vec<u32>,
    /// Variant achieving Δ(m).
    pub variant: Vec<u16>,
}

impl MatchCurve {
    /// A curve of `m` frames with no match anywhere.
    pub fn empty(m: usize) -> Self {
        Self {
            delta: vec![f32::INFINITY; m],
            start: vec![0; m],
            variant: vec![0; m],
        }
    }

    /// Point-wise minimum with `other` (same length); ties keep `self`.
    pub fn merge_min(&mut self, other: &MatchCurve) {
        for i in 0..self.delta.len().min(other.delta.len()) {
            if other.delta[i] < self.delta[i] {
                self.delta[i] = other.delta[i];
                self.start[i] = other.start[i];
                self.variant[i] = other.variant[i];
            }
        }
    }
}

/// Peak-picking parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakParams {
    /// τ: largest Δ accepted.
    pub tau: f32,
    /// ρ as a fraction of the accepted match's length: end frames closer than this to an
    /// accepted end are excluded.
    pub rho_fraction: f32,
    /// Maximum number of peaks.
    pub top_k: usize,
}

fn overlaps_too_much(a: (usize, usize), b: (usize, usize)) -> bool {
    let inter = (a.1.min(b.1) + 1).saturating_sub(a.0.max(b.0));
    let shorter = (a.1 - a.0 + 1).min(b.1 - b.0 + 1);
    2 * inter > shorter
}

fn accept(accepted: &[Peak], p: &Peak, rho_fraction: f32) -> bool {
    accepted.iter().all(|a| {
        let rho = (rho_fraction * (a.end - a.start + 1) as f32)
            .ceil()
            .max(1.0) as usize;
        a.end.abs_diff(p.end) >= rho && !overlaps_too_much((a.start, a.end), (p.start, p.end))
    })
}

/// Greedy peak picking: in increasing order of Δ, accept a frame when Δ ≤ τ, it lies outside
/// the exclusion neighbourhood of every accepted peak and does not overlap one by more than
/// half. Returns peaks best first.
pub fn pick_peaks(curve: &MatchCurve, params: &PeakParams) -> Vec<Peak> {
    let mut order: Vec<usize> = (0..curve.delta.len())
        .filter(|&m| curve.delta[m].is_finite() && curve.delta[m] <= params.tau)
        .collect();
    order.sort_by(|&a, &b| curve.delta[a].total_cmp(&curve.delta[b]).then(a.cmp(&b)));
    let mut out: Vec<Peak> = Vec::new();
    for m in order {
        if out.len() >= params.top_k {
            break;
        }
        let p = Peak {
            start: (curve.start[m] as usize).min(m),
            end: m,
            cost: curve.delta[m],
            variant: curve.variant[m] as usize,
        };
        if accept(&out, &p, params.rho_fraction) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: repeatedly take the arg-min of what is left, as the librosa peer does, and
    /// drop it if it conflicts with an accepted peak.
    fn pick_reference(curve: &MatchCurve, params: &PeakParams) -> Vec<Peak> {
        let mut left: Vec<Option<f32>> = curve.delta.iter().map(|&d| Some(d)).collect();
        let mut out: Vec<Peak> = Vec::new();
        while out.len() < params.top_k {
            let mut best: Option<(usize, f32)> = None;
            for (m, d) in left.iter().enumerate() {
                if let Some(d) = d {
                    if d.is_finite() && best.is_none_or(|(_, b)| *d < b) {
                        best = Some((m, *d));
                    }
                }
            }
            let Some((m, d)) = best else { break };
            if d > params.tau {
                break;
            }
            left[m] = None;
            let p = Peak {
                start: (curve.start[m] as usize).min(m),
                end: m,
                cost: d,
                variant: curve.variant[m] as usize,
            };
            let ok = out.iter().all(|a| {
                let rho = (params.rho_fraction * (a.end - a.start + 1) as f32)
                    .ceil()
                    .max(1.0) as usize;
                let inter = (a.end.min(p.end) + 1).saturating_sub(a.start.max(p.start));
                let shorter = (a.end - a.start + 1).min(p.end - p.start + 1);
                a.end.abs_diff(p.end) >= rho && 2 * inter <= shorter
            });
            if ok {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn two_separated_minima_are_found_in_order() {
        let mut c = MatchCurve::empty(40);
        for m in 0..40 {
            c.delta[m] = 0.9;
            c.start[m] = m.saturating_sub(5) as u32;
        }
        c.delta[10] = 0.1;
        c.delta[11] = 0.15;
        c.delta[30] = 0.2;
        let p = pick_peaks(
            &c,
            &PeakParams {
                tau: 0.5,
                rho_fraction: 0.5,
                top_k: 10,
            },
        );
        assert_eq!(p.iter().map(|p| p.end).collect::<Vec<_>>(), vec![10, 30]);
        assert_eq!(p[0].start, 5);
    }

    proptest! {
        #[test]
        fn greedy_equals_reference(
            vals in proptest::collection::vec(0u8..20, 1..60),
            lens in proptest::collection::vec(0usize..12, 60),
            tau in 0u8..20,
            rho in 0.0f32..1.5,
            k in 1usize..8,
        ) {
            let n = vals.len();
            let curve = MatchCurve {
                delta: vals.iter().map(|&v| v as f32 / 10.0).collect(),
                start: (0..n).map(|m| m.saturating_sub(lens[m]) as u32).collect(),
                variant: vec![0; n],
            };
            let params = PeakParams { tau: tau as f32 / 10.0, rho_fraction: rho, top_k: k };
            prop_assert_eq!(pick_peaks(&curve, &params), pick_reference(&curve, &params));
        }
    }
}
