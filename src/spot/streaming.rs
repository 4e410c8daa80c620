//! Streaming theme spotter for `follow --themes`: push one chroma frame at a time, get each
//! occurrence of each theme once, shortly after it ends.
//!
//! Per frame: the streaming CENS stage may output one CENS frame; for it, every theme advances
//! one column of subsequence DTW for each of its variants (tempo scalings x transpositions),
//! which gives Δ(m) at the newest frame `m` with the start of its path. A theme keeps the best
//! candidate with Δ ≤ τ since its last report; the candidate is reported once `confirm`
//! CENS frames have passed without a better one, and later candidates whose end lies within ρ of
//! a reported hit, or that overlap it by more than half, are dropped (a causal form of the
//! offline peak picking in [`super::peaks`]).
//!
//! Latency from the end of an occurrence to its report ([`StreamingSpotter::latency_s`]):
//! half the chroma window + the CENS look-ahead (half the smoothing window) + `confirm` CENS
//! frames. With the defaults (2048-sample window, 21-frame smoothing, downsampling 5 at 50
//! frames/s, `confirm_s` 0.3) that is 0.046 + 0.20 + 0.30 = 0.55 s, within the 1 s budget.
//!
//! Cost per CENS frame: one 12-dimensional dot product per query frame and transposition plus
//! one DTW cell per scaled query frame and variant; no allocation after [`StreamingSpotter::new`]
//! (reports are pushed into the caller's `Vec`, which allocates only when it grows).
//!
//! Use from the engine (`follow --themes FILE`):
//! ```text
//! let themes = spot::query::read_themes_file(path)?;            // ids + files
//! let mut sp = StreamingSpotter::from_theme_files(&themes, &extractor_cfg, &SpotConfig::default(), 0.3)?;
//! // per chroma frame from the follower's extractor:
//! sp.push(&frame.chroma, &mut reports);
//! for r in reports.drain(..) {  // send /scorefollow/theme themes[r.theme].id, r.hit.start_s, r.hit.end_s, r.hit.score
//! }
//! // at end of stream: sp.finish(&mut reports)
//! ```
//!
//! Measured on the dev corpus (`examples/theme_eval.rs stream=1`, spotter chroma settings,
//! τ = 0.4, transpositions on): onset P@1 / MAP 0.837 / 0.814 for MIDI queries, 0.791 / 0.811 for
//! audio queries; largest delay from an occurrence's end to its report 0.45 s.

use super::dtw::SubseqDtw;
use super::matcher::{signed_shift, variants, MatchParams, Variant};
use super::{cens_frame_start_s, Hit};
use crate::features::cens::{CensConfig, StreamingCens};
use crate::features::{Chroma, FeatureConfig};

/// A theme occurrence reported by the streaming spotter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamHit {
    /// Index of the theme (order given to [`StreamingSpotter::new`]).
    pub theme: usize,
    /// Where and how well it matched (times in seconds of the input stream).
    pub hit: Hit,
    /// Stream time (s) of the chroma frame whose arrival triggered the report.
    pub reported_at_s: f64,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    start: usize,
    end: usize,
    cost: f32,
    variant: usize,
}

#[derive(Clone, Debug)]
struct ThemeState {
    query: Vec<Chroma>,
    variants: Vec<Variant>,
    runs: Vec<SubseqDtw>,
    cand: Option<Candidate>,
    last: Option<Candidate>,
}

/// The streaming matcher. See the module docs for the algorithm and latency.
#[derive(Clone, Debug)]
pub struct StreamingSpotter {
    feat: FeatureConfig,
    cens_cfg: CensConfig,
    cens: StreamingCens,
    params: MatchParams,
    confirm: usize,
    themes: Vec<ThemeState>,
    /// Scratch: local costs of the newest frame per transposition, `[k][n]`.
    col: Vec<Vec<f32>>,
    shifts: Vec<u8>,
    m: usize,
    chroma_frames: usize,
}

impl StreamingSpotter {
    /// A spotter for the given theme queries (CENS frames, from [`super::query_cens`]).
    /// `confirm_s` is how long (s) a candidate must stay the best before it is reported.
    pub fn new(
        queries: Vec<Vec<Chroma>>,
        feat: &FeatureConfig,
        cens: &CensConfig,
        params: &MatchParams,
        confirm_s: f64,
    ) -> crate::Result<Self> {
        params.validate()?;
        if !(confirm_s.is_finite() && confirm_s >= 0.0) {
            return Err(crate::Error::invalid(
                "confirmation delay",
                confirm_s.to_string(),
                "must be >= 0 seconds",
            ));
        }
        let mut themes = Vec::with_capacity(queries.len());
        let mut max_n = 0;
        for (i, q) in queries.into_iter().enumerate() {
            if q.is_empty() {
                return Err(crate::Error::invalid(
                    "theme query",
                    i.to_string(),
                    "has no frames",
                ));
            }
            max_n = max_n.max(q.len());
            let vars = variants(q.len(), params);
            let runs = vars
                .iter()
                .map(|v| SubseqDtw::new(v.index.len(), params.skip_weight))
                .collect();
            themes.push(ThemeState {
                query: q,
                variants: vars,
                runs,
                cand: None,
                last: None,
            });
        }
        let cens_hop_s = feat.hop_s() * cens.step() as f64;
        let shifts = params.shifts();
        Ok(Self {
            feat: feat.clone(),
            cens_cfg: cens.clone(),
            cens: StreamingCens::new(cens),
            params: params.clone(),
            confirm: (confirm_s / cens_hop_s).ceil() as usize,
            themes,
            col: vec![vec![0.0; max_n]; shifts.len()],
            shifts,
            m: 0,
            chroma_frames: 0,
        })
    }

    /// A spotter for theme files (MIDI or audio, e.g. from
    /// [`super::query::read_themes_file`]), for a stream whose chroma comes from an extractor
    /// configured with `feat` (queries are analysed with the same configuration, so they match
    /// the stream). Uses `cfg.cens`, `cfg.matching` and `cfg.midi_mode`; ids are in `themes`.
    pub fn from_theme_files(
        themes: &[super::ThemeFile],
        feat: &FeatureConfig,
        cfg: &super::SpotConfig,
        confirm_s: f64,
        reader: &dyn super::query::ChromaReader,
    ) -> crate::Result<Self> {
        let mut queries = Vec::with_capacity(themes.len());
        for t in themes {
            let c = reader.read(&t.path, feat, cfg.midi_mode)?;
            let q = super::query_cens(&c, &cfg.cens);
            if q.is_empty() {
                return Err(crate::Error::invalid(
                    "theme",
                    t.path.display().to_string(),
                    "is silent (no frame with sound)",
                ));
            }
            queries.push(q);
        }
        Self::new(queries, feat, &cfg.cens, &cfg.matching, confirm_s)
    }

    /// Worst-case delay (s) between the end of an occurrence in the audio and its report.
    pub fn latency_s(&self) -> f64 {
        let half_window_s = 0.5 * self.feat.window_samples as f64 / self.feat.sample_rate_hz as f64;
        let frames = self.cens.latency_frames() + self.confirm * self.cens_cfg.step();
        half_window_s + frames as f64 * self.feat.hop_s()
    }

    /// Number of themes.
    pub fn n_themes(&self) -> usize {
        self.themes.len()
    }

    /// Back to the state after `new` (a new stream starts).
    pub fn reset(&mut self) {
        self.cens.reset();
        for t in &mut self.themes {
            t.runs.iter_mut().for_each(SubseqDtw::reset);
            t.cand = None;
            t.last = None;
        }
        self.m = 0;
        self.chroma_frames = 0;
    }

    /// Push one chroma frame; reports are appended to `out` (which is not cleared).
    pub fn push(&mut self, chroma: &Chroma, out: &mut Vec<StreamHit>) {
        self.chroma_frames += 1;
        if let Some(x) = self.cens.push(chroma) {
            self.step_cens(&x, out);
        }
    }

    /// End of stream: process the pending CENS frames and report every remaining candidate.
    pub fn finish(&mut self, out: &mut Vec<StreamHit>) {
        for x in self.cens.flush() {
            self.step_cens(&x, out);
        }
        let now = self.now_s();
        for ti in 0..self.themes.len() {
            if let Some(c) = self.themes[ti].cand.take() {
                out.push(self.report(ti, c, now));
                self.themes[ti].last = Some(c);
            }
        }
    }

    fn now_s(&self) -> f64 {
        self.feat.frame_end_s(self.chroma_frames.saturating_sub(1))
    }

    fn report(&self, ti: usize, c: Candidate, now_s: f64) -> StreamHit {
        let t = &self.themes[ti];
        let v = &t.variants[c.variant];
        StreamHit {
            theme: ti,
            hit: Hit {
                start_s: cens_frame_start_s(c.start, &self.feat, &self.cens_cfg),
                end_s: cens_frame_start_s(c.end + 1, &self.feat, &self.cens_cfg),
                cost: c.cost,
                score: 1.0 - c.cost,
                tempo_scale: (c.end - c.start + 1) as f32 / t.query.len() as f32,
                transpose: signed_shift(v.shift),
            },
            reported_at_s: now_s,
        }
    }

    fn conflicts(&self, last: &Candidate, c: &Candidate) -> bool {
        let len = last.end - last.start + 1;
        let rho = (self.params.peaks.rho_fraction * len as f32)
            .ceil()
            .max(1.0) as usize;
        let inter = (last.end.min(c.end) + 1).saturating_sub(last.start.max(c.start));
        let shorter = len.min(c.end - c.start + 1);
        c.end.abs_diff(last.end) < rho || 2 * inter > shorter
    }

    fn step_cens(&mut self, x: &Chroma, out: &mut Vec<StreamHit>) {
        let m = self.m;
        self.m += 1;
        let now = self.now_s();
        for ti in 0..self.themes.len() {
            let n = self.themes[ti].query.len();
            for (si, &k) in self.shifts.iter().enumerate() {
                for i in 0..n {
                    let q = &self.themes[ti].query[i];
                    let mut s = 0.0;
                    for p in 0..12 {
                        s += q[p] * x[(p + k as usize) % 12];
                    }
                    self.col[si][i] = 1.0 - s;
                }
            }
            let mut best: Option<Candidate> = None;
            let t = &mut self.themes[ti];
            for (vi, (v, run)) in t.variants.iter().zip(t.runs.iter_mut()).enumerate() {
                let si = self.shifts.iter().position(|&k| k == v.shift).unwrap_or(0);
                let col = &self.col[si];
                let (d, start) = run.step(|i| col[v.index[i] as usize]);
                let penalty = if v.shift == 0 {
                    0.0
                } else {
                    self.params.transpose_penalty
                };
                let cost = d / v.index.len() as f32 + penalty;
                if cost.is_finite() && best.is_none_or(|b| cost < b.cost) {
                    best = Some(Candidate {
                        start: (start as usize).min(m),
                        end: m,
                        cost,
                        variant: vi,
                    });
                }
            }
            if let Some(b) = best {
                let blocked = self.themes[ti]
                    .last
                    .as_ref()
                    .is_some_and(|l| self.conflicts(l, &b));
                let t = &mut self.themes[ti];
                if b.cost <= self.params.peaks.tau
                    && !blocked
                    && t.cand.is_none_or(|c| b.cost < c.cost)
                {
                    t.cand = Some(b);
                }
            }
            if let Some(c) = self.themes[ti].cand {
                if m >= c.end + self.confirm {
                    let h = self.report(ti, c, now);
                    out.push(h);
                    let t = &mut self.themes[ti];
                    t.last = Some(c);
                    t.cand = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spot::matcher::{search, MatchParams};
    use crate::spot::peaks::PeakParams;

    fn chroma_seq(len: usize, seed: u64) -> Vec<Chroma> {
        let mut rng = crate::test_util::Rng::new(seed);
        let mut s = 0;
        (0..len)
            .map(|i| {
                // A new random pitch-class pair every 10 frames (a "chord" lasting 0.2 s).
                if i % 10 == 0 {
                    s = rng.next_u64() >> 33;
                }
                let mut c = [0.02f32; 12];
                c[(s % 12) as usize] = 1.0;
                c[((s / 12) % 12) as usize] += 0.6;
                let n = c.iter().map(|v| v * v).sum::<f32>().sqrt();
                c.map(|v| v / n)
            })
            .collect()
    }

    #[test]
    fn reports_each_planted_occurrence_once_within_latency() {
        let feat = FeatureConfig::default();
        let cens = CensConfig::default();
        let theme = chroma_seq(250, 3); // 5 s at 50 frames/s
        let mut stream = chroma_seq(3000, 99);
        stream.splice(500..750, theme.iter().copied());
        stream.splice(2000..2250, theme.iter().copied());
        let q = crate::features::cens::cens(&theme, &cens);
        let params = MatchParams {
            n_scales: 5,
            min_scale: 0.8,
            max_scale: 1.25,
            peaks: PeakParams {
                tau: 0.15,
                rho_fraction: 0.5,
                top_k: 10,
            },
            ..Default::default()
        };
        let mut sp = StreamingSpotter::new(vec![q.clone()], &feat, &cens, &params, 0.3).unwrap();
        assert!(sp.latency_s() < 1.0);
        let mut hits = Vec::new();
        for c in &stream {
            sp.push(c, &mut hits);
        }
        sp.finish(&mut hits);
        assert_eq!(hits.len(), 2, "{hits:?}");
        for (h, t0) in hits.iter().zip([10.0, 40.0]) {
            assert!((h.hit.start_s - t0).abs() < 0.3, "{h:?}");
            assert!((h.hit.end_s - (t0 + 5.0)).abs() < 0.4, "{h:?}");
            let true_end_s = t0 + 5.0;
            assert!(h.reported_at_s - true_end_s <= 1.0, "{h:?}");
            assert!(h.reported_at_s >= h.hit.end_s);
        }
        // Same occurrences as the offline search.
        let db = crate::features::cens::cens(&stream, &cens);
        let off = search(&q, &db, &params).unwrap();
        assert_eq!(off.len(), 2);
    }

    #[test]
    fn reset_replays_identically() {
        let feat = FeatureConfig::default();
        let cens = CensConfig::default();
        let theme = chroma_seq(200, 5);
        let mut stream = chroma_seq(1000, 7);
        stream.splice(300..500, theme.iter().copied());
        let q = crate::features::cens::cens(&theme, &cens);
        let params = MatchParams {
            n_scales: 3,
            peaks: PeakParams {
                tau: 0.2,
                rho_fraction: 0.5,
                top_k: 10,
            },
            ..Default::default()
        };
        let mut sp = StreamingSpotter::new(vec![q], &feat, &cens, &params, 0.3).unwrap();
        let run = |sp: &mut StreamingSpotter| {
            let mut h = Vec::new();
            for c in &stream {
                sp.push(c, &mut h);
            }
            sp.finish(&mut h);
            h
        };
        let a = run(&mut sp);
        sp.reset();
        let b = run(&mut sp);
        assert_eq!(a, b);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn empty_query_is_refused() {
        let r = StreamingSpotter::new(
            vec![vec![]],
            &FeatureConfig::default(),
            &CensConfig::default(),
            &MatchParams::default(),
            0.3,
        );
        assert!(r.is_err());
    }
}
