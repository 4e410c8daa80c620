//! Multi-scale, optionally transposition-invariant matching of CENS queries against a CENS
//! database (FMP C7S2: diagonal matching and subsequence DTW; Müller, Kurth & Clausen 2005).
//!
//! A query of `N` CENS frames is matched at `R` tempo scalings `s` (geometric from
//! `min_scale` to `max_scale`): the scaled query has `N_s = round(N s)` frames, frame `n` being
//! query frame `floor((n + 1/2) / s)`. Because CENS is smooth at its own frame rate,
//! nearest-frame resampling loses nothing measurable against interpolation, and it lets every
//! scaling reuse one local cost matrix `C(n, m) = 1 - <q_n, x_m>` per transposition. With
//! transpositions on, the query is also cyclically shifted by `k = 0..11` semitones (pitch class
//! `p` of the query matched against `p + k` of the database).

use rayon::prelude::*;

use super::dtw::SubseqDtw;
use super::peaks::{pick_peaks, MatchCurve, Peak, PeakParams};
use crate::features::{Chroma, N_CHROMA};

/// How Δ is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchMethod {
    /// Subsequence DTW with step sizes (1,1), (2,1), (1,2).
    Dtw,
    /// Diagonal matching: the mean cost along the diagonal of the scaled query.
    Diagonal,
}

impl std::str::FromStr for MatchMethod {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "dtw" => Ok(Self::Dtw),
            "diagonal" => Ok(Self::Diagonal),
            _ => Err(crate::Error::invalid(
                "match method",
                s,
                "expected 'dtw' or 'diagonal'",
            )),
        }
    }
}

/// Matcher parameters (in CENS frames unless stated).
#[derive(Clone, Debug, PartialEq)]
pub struct MatchParams {
    /// Number of tempo scalings R (>= 1).
    pub n_scales: usize,
    /// Smallest scaling (occurrence length / query length).
    pub min_scale: f32,
    /// Largest scaling.
    pub max_scale: f32,
    /// Also try the 11 non-trivial cyclic transpositions.
    pub transpose: bool,
    /// Added to Δ of every transposed variant, so that a transposed match must be clearly
    /// better than the untransposed one to win (0.1 measured best: without it, turning
    /// transpositions on lowered the dev-corpus MAP, with it, it raises it).
    pub transpose_penalty: f32,
    /// Weight of the DTW step (2,1) that skips a query frame (see [`super::dtw`]). Above 1 it
    /// discourages matching the query to a much shorter span; 4 measured best on the dev
    /// corpus (MIDI queries, onset MAP with 31-frame smoothing: 0.814 at 1, 0.822 at 1.5, 0.854 at 3,
    /// 0.873 at 4).
    pub skip_weight: f32,
    /// Δ computation.
    pub method: MatchMethod,
    /// Peak picking (τ, ρ, K).
    pub peaks: PeakParams,
}

impl Default for MatchParams {
    fn default() -> Self {
        Self {
            n_scales: 15,
            min_scale: 0.5,
            max_scale: 2.0,
            transpose: false,
            transpose_penalty: 0.1,
            skip_weight: 4.0,
            method: MatchMethod::Dtw,
            peaks: PeakParams {
                tau: 0.6,
                rho_fraction: 0.5,
                top_k: 10,
            },
        }
    }
}

impl MatchParams {
    /// The R tempo scalings, geometric from `min_scale` to `max_scale`.
    pub fn scales(&self) -> Vec<f32> {
        let r = self.n_scales.max(1);
        if r == 1 {
            return vec![(self.min_scale * self.max_scale).sqrt()];
        }
        let (a, b) = (self.min_scale.ln(), self.max_scale.ln());
        (0..r)
            .map(|i| (a + (b - a) * i as f32 / (r - 1) as f32).exp())
            .collect()
    }

    /// The transpositions tried (semitones upwards).
    pub fn shifts(&self) -> Vec<u8> {
        if self.transpose {
            (0..N_CHROMA as u8).collect()
        } else {
            vec![0]
        }
    }

    /// Check the parameters; every public entry point calls this.
    pub fn validate(&self) -> crate::Result<()> {
        let bad =
            |what: &'static str, v: String, why: &str| Err(crate::Error::invalid(what, v, why));
        if self.n_scales == 0 || self.n_scales > 1000 {
            return bad(
                "number of tempo scalings",
                self.n_scales.to_string(),
                "must be 1..=1000",
            );
        }
        if !(self.min_scale > 0.0 && self.min_scale <= self.max_scale && self.max_scale.is_finite())
        {
            return bad(
                "tempo scaling range",
                format!("{}..{}", self.min_scale, self.max_scale),
                "need 0 < min <= max",
            );
        }
        let ok = |w: f32| w.is_finite() && w >= 0.0;
        if !ok(self.skip_weight) || !ok(self.transpose_penalty) {
            return bad(
                "DTW weights",
                format!(
                    "skip {} transpose penalty {}",
                    self.skip_weight, self.transpose_penalty
                ),
                "must be finite and >= 0",
            );
        }
        if self.peaks.tau.is_nan()
            || self.peaks.rho_fraction.is_nan()
            || self.peaks.rho_fraction < 0.0
        {
            return bad(
                "peak parameters",
                format!("tau {} rho {}", self.peaks.tau, self.peaks.rho_fraction),
                "must be numbers, rho >= 0",
            );
        }
        Ok(())
    }
}

/// One query variant: tempo scaling and transposition, with its frame map.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Tempo scaling s (occurrence length / query length).
    pub scale: f32,
    /// Transposition (semitones upwards, 0..12).
    pub shift: u8,
    /// Scaled frame `n` uses query frame `index[n]`.
    pub index: Vec<u32>,
}

/// The frame map of a query of `n` frames scaled by `s` (at least 2 frames when `n >= 2`).
pub fn scale_index(n: usize, s: f32) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    let ns = ((n as f32 * s).round() as usize).max(n.min(2));
    (0..ns)
        .map(|i| (((i as f32 + 0.5) / s) as usize).min(n - 1) as u32)
        .collect()
}

/// All variants of a query of `n` frames.
pub fn variants(n: usize, params: &MatchParams) -> Vec<Variant> {
    let mut out = Vec::new();
    for shift in params.shifts() {
        for &scale in &params.scales() {
            out.push(Variant {
                scale,
                shift,
                index: scale_index(n, scale),
            });
        }
    }
    out
}

/// `<roll(q, k), x>` for all 12 `k`: pitch class `p` of `q` against `p + k` of `x`.
#[inline]
pub fn shifted_dots(q: &Chroma, x: &Chroma) -> [f32; N_CHROMA] {
    let mut out = [0.0f32; N_CHROMA];
    for (k, o) in out.iter_mut().enumerate() {
        let mut s = 0.0;
        for p in 0..N_CHROMA {
            s += q[p] * x[(p + k) % N_CHROMA];
        }
        *o = s;
    }
    out
}

#[inline]
fn dot_shift(q: &Chroma, x: &Chroma, k: usize) -> f32 {
    let mut s = 0.0;
    for p in 0..N_CHROMA {
        s += q[p] * x[(p + k) % N_CHROMA];
    }
    s
}

/// Local cost matrix for transposition `k`, column-major: `c[m * N + n] = 1 - <roll(q_n,k), x_m>`.
pub fn cost_matrix(query: &[Chroma], db: &[Chroma], k: usize) -> Vec<f32> {
    let n = query.len();
    let mut c = vec![0.0f32; n * db.len()];
    for (m, x) in db.iter().enumerate() {
        for (i, q) in query.iter().enumerate() {
            c[m * n + i] = 1.0 - dot_shift(q, x, k);
        }
    }
    c
}

/// Δ for one variant given the column-major cost matrix of its transposition.
fn curve_for_variant(
    cost: &[f32],
    n: usize,
    m_len: usize,
    v: &Variant,
    vid: u16,
    params: &MatchParams,
) -> MatchCurve {
    let ns = v.index.len();
    let penalty = if v.shift == 0 {
        0.0
    } else {
        params.transpose_penalty
    };
    let mut curve = MatchCurve::empty(m_len);
    match params.method {
        MatchMethod::Dtw => {
            let mut dtw = SubseqDtw::new(ns, params.skip_weight);
            for m in 0..m_len {
                let col = &cost[m * n..(m + 1) * n];
                let (d, s) = dtw.step(|i| col[v.index[i] as usize]);
                curve.delta[m] = d / ns as f32 + penalty;
                curve.start[m] = s;
                curve.variant[m] = vid;
            }
        }
        MatchMethod::Diagonal => {
            for m in ns.saturating_sub(1)..m_len {
                let s0 = m + 1 - ns;
                let mut acc = 0.0f32;
                for (i, &qi) in v.index.iter().enumerate() {
                    acc += cost[(s0 + i) * n + qi as usize];
                }
                curve.delta[m] = acc / ns as f32 + penalty;
                curve.start[m] = s0 as u32;
                curve.variant[m] = vid;
            }
        }
    }
    curve
}

/// The matching function of one query against one database, minimised over all variants.
/// Returns the curve and the variant table its `variant` entries index.
pub fn matching_curve(
    query: &[Chroma],
    db: &[Chroma],
    params: &MatchParams,
) -> crate::Result<(MatchCurve, Vec<Variant>)> {
    params.validate()?;
    let vars = variants(query.len(), params);
    if query.is_empty() || db.is_empty() {
        return Ok((MatchCurve::empty(db.len()), vars));
    }
    let n = query.len();
    let m_len = db.len();
    let shifts = params.shifts();
    let per_shift: Vec<MatchCurve> = shifts
        .par_iter()
        .map(|&k| {
            let cost = cost_matrix(query, db, k as usize);
            let mut best = MatchCurve::empty(m_len);
            for (vid, v) in vars.iter().enumerate() {
                if v.shift != k {
                    continue;
                }
                let c = curve_for_variant(&cost, n, m_len, v, vid as u16, params);
                best.merge_min(&c);
            }
            best
        })
        .collect();
    let mut curve = MatchCurve::empty(m_len);
    for c in &per_shift {
        curve.merge_min(c);
    }
    Ok((curve, vars))
}

/// One occurrence found by [`search`], in database (CENS) frames.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameHit {
    /// First database frame.
    pub start: usize,
    /// Last database frame (inclusive).
    pub end: usize,
    /// Δ at the end frame (0 = identical, about 1 = unrelated).
    pub cost: f32,
    /// Tempo scaling: occurrence length / query length (frames of the matched span).
    pub tempo_scale: f32,
    /// Transposition of the occurrence relative to the query (semitones, -5..=6).
    pub transpose: i8,
}

/// Map a transposition 0..12 upwards to the nearest signed interval (-5..=6).
pub fn signed_shift(k: u8) -> i8 {
    let k = (k % 12) as i8;
    if k > 6 {
        k - 12
    } else {
        k
    }
}

fn to_hits(peaks: &[Peak], vars: &[Variant], n_query: usize) -> Vec<FrameHit> {
    peaks
        .iter()
        .map(|p| {
            let v = &vars[p.variant];
            FrameHit {
                start: p.start,
                end: p.end,
                cost: p.cost,
                // The span of the optimal path, not the variant's nominal scaling: with DTW
                // steps several neighbouring variants reach almost the same cost.
                tempo_scale: (p.end - p.start + 1) as f32 / n_query.max(1) as f32,
                transpose: signed_shift(v.shift),
            }
        })
        .collect()
}

/// Search one query in one database: matching curve over all variants, then peak picking.
/// Hits are best (lowest cost) first.
pub fn search(
    query: &[Chroma],
    db: &[Chroma],
    params: &MatchParams,
) -> crate::Result<Vec<FrameHit>> {
    let (curve, vars) = matching_curve(query, db, params)?;
    Ok(to_hits(
        &pick_peaks(&curve, &params.peaks),
        &vars,
        query.len(),
    ))
}

/// Search many queries in many databases in parallel. `out[q][d]` holds the hits of query `q`
/// in database `d`.
pub fn search_many(
    queries: &[&[Chroma]],
    dbs: &[&[Chroma]],
    params: &MatchParams,
) -> crate::Result<Vec<Vec<Vec<FrameHit>>>> {
    params.validate()?;
    let pairs: Vec<(usize, usize)> = (0..queries.len())
        .flat_map(|q| (0..dbs.len()).map(move |d| (q, d)))
        .collect();
    let flat: Vec<crate::Result<Vec<FrameHit>>> = pairs
        .par_iter()
        .map(|&(q, d)| search(queries[q], dbs[d], params))
        .collect();
    let mut out = vec![vec![Vec::new(); dbs.len()]; queries.len()];
    for ((q, d), r) in pairs.into_iter().zip(flat) {
        out[q][d] = r?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded random unit chroma.
    pub(crate) fn random_seq(len: usize, seed: u64) -> Vec<Chroma> {
        let mut rng = crate::test_util::Rng::new(seed);
        (0..len).map(|_| rng.chroma()).collect()
    }

    fn roll(c: &Chroma, k: usize) -> Chroma {
        let mut o = [0.0; N_CHROMA];
        for p in 0..N_CHROMA {
            o[(p + k) % N_CHROMA] = c[p];
        }
        o
    }

    fn stretch(seq: &[Chroma], s: f32) -> Vec<Chroma> {
        scale_index(seq.len(), s)
            .into_iter()
            .map(|i| seq[i as usize])
            .collect()
    }

    #[test]
    fn scales_are_geometric_and_cover_the_range() {
        let p = MatchParams {
            n_scales: 5,
            min_scale: 0.5,
            max_scale: 2.0,
            ..Default::default()
        };
        let s = p.scales();
        assert_eq!(s.len(), 5);
        assert!((s[0] - 0.5).abs() < 1e-6 && (s[4] - 2.0).abs() < 1e-5);
        for w in s.windows(2) {
            assert!((w[1] / w[0] - 2f32.sqrt()).abs() < 1e-4);
        }
    }

    #[test]
    fn shifted_dots_match_explicit_roll() {
        let a = random_seq(1, 3)[0];
        let b = random_seq(1, 4)[0];
        let d = shifted_dots(&a, &b);
        for (k, dk) in d.iter().enumerate() {
            let r = roll(&a, k);
            let e: f32 = r.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dk - e).abs() < 1e-6);
            assert!((dot_shift(&a, &b, k) - e).abs() < 1e-6);
        }
    }

    #[test]
    fn finds_planted_occurrences_at_their_tempo() {
        let query = random_seq(30, 7);
        let mut db = random_seq(400, 11);
        // Occurrence 1 at frame 50, original tempo; occurrence 2 at 250, sqrt(2) times longer
        // (a scaling on the grid of 9 from 0.5 to 2).
        db.splice(50..80, query.iter().copied());
        let slow = stretch(&query, 2f32.sqrt());
        let slow_end = 250 + slow.len() - 1;
        db.splice(250..250 + slow.len(), slow.iter().copied());
        for method in [MatchMethod::Dtw, MatchMethod::Diagonal] {
            let params = MatchParams {
                n_scales: 9,
                method,
                ..Default::default()
            };
            let hits = search(&query, &db, &params).unwrap();
            let mut found: Vec<(usize, usize)> =
                hits.iter().take(2).map(|h| (h.start, h.end)).collect();
            found.sort();
            assert!(
                found[0].0.abs_diff(50) <= 1 && found[0].1.abs_diff(79) <= 1,
                "{method:?} {found:?}"
            );
            assert!(
                found[1].0.abs_diff(250) <= 2 && found[1].1.abs_diff(slow_end) <= 2,
                "{method:?} {found:?}"
            );
            assert!(hits[0].cost < 0.05);
            let slow_hit = hits.iter().find(|h| h.start.abs_diff(250) <= 2).unwrap();
            assert!((slow_hit.tempo_scale - 2f32.sqrt()).abs() < 0.05);
        }
    }

    #[test]
    fn transposed_occurrence_needs_transpose_option() {
        let query = random_seq(25, 5);
        let mut db = random_seq(300, 9);
        let up3: Vec<Chroma> = query.iter().map(|c| roll(c, 3)).collect();
        db.splice(100..125, up3);
        let off = search(&query, &db, &MatchParams::default()).unwrap();
        assert!(off.first().is_none_or(|h| h.cost > 0.1));
        let params = MatchParams {
            transpose: true,
            ..Default::default()
        };
        let on = search(&query, &db, &params).unwrap();
        assert_eq!(on[0].transpose, 3);
        // The reported cost includes the transposition penalty.
        assert!(on[0].start.abs_diff(100) <= 1 && on[0].cost < 0.05 + params.transpose_penalty);
    }

    #[test]
    fn dtw_curve_equals_full_reference_per_variant() {
        let query = random_seq(9, 21);
        let db = random_seq(40, 22);
        let params = MatchParams {
            n_scales: 3,
            ..Default::default()
        };
        let vars = variants(query.len(), &params);
        let cost = cost_matrix(&query, &db, 0);
        for (vid, v) in vars.iter().enumerate() {
            let c = curve_for_variant(&cost, query.len(), db.len(), v, vid as u16, &params);
            let full: Vec<Vec<f32>> = v
                .index
                .iter()
                .map(|&qi| {
                    db.iter()
                        .map(|x| 1.0 - dot_shift(&query[qi as usize], x, 0))
                        .collect()
                })
                .collect();
            let r = super::super::dtw::subsequence_dtw_full(&full, params.skip_weight);
            for (got, full) in c.delta.iter().zip(&r) {
                let want = full.0 / v.index.len() as f32;
                assert!((got - want).abs() < 1e-5 || (want.is_infinite() && got.is_infinite()));
            }
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let p = MatchParams {
            min_scale: 2.0,
            max_scale: 0.5,
            ..Default::default()
        };
        assert!(search(&random_seq(5, 1), &random_seq(20, 2), &p).is_err());
    }

    #[test]
    fn empty_inputs_give_no_hits() {
        let p = MatchParams::default();
        assert!(search(&[], &random_seq(20, 2), &p).unwrap().is_empty());
        assert!(search(&random_seq(5, 1), &[], &p).unwrap().is_empty());
    }
}
