//! Online soft-DTW aligner: the soft-DTW forward recursion (Cuturi & Blondel 2017, eq. 2) run
//! over the same bounded, moving window of reference frames as OLTW ([`super::oltw`]), one
//! performance frame (one column) per step.
//!
//! Recursion with Dixon's symmetric step weights (diagonal weight 2 by default, 1 gives the
//! plain soft-DTW recursion of [`super::soft_dtw`]):
//! `R(i,j) = softmin_γ(R(i-1,j-1) + w·d, R(i-1,j) + d, R(i,j-1) + d)`.
//! The reported position is the expected reference frame under weights over the current
//! column, normalised to sum 1, and its spread is their standard deviation (frames):
//! - [`PositionWeighting::Forward`]: the forward weights `exp(-R(i,j)/γ)` themselves;
//! - [`PositionWeighting::PathLength`]: `exp(-s · R(i,j)/(i + j + 1))`, the soft version of
//!   OLTW's choice of the least path-length-normalised cost (longer paths to later reference
//!   frames collect more cost, which biases the plain forward weights backwards).
//!
//! Per step, in the probability domain: the column is kept as weights `P = exp(-(R - o)/γ)`
//! scaled so the largest is 1 (the offset `o` carries the scale), and the soft-min recursion
//! multiplies out to `T(j) = f_j·P(j-1) + u_j·P(j) + h_j·T(j-1)` with per-cell factors
//! `exp(-(cost)/γ)`: one exponential per cell, independent across cells (vectorised), a
//! multiply-add on the serial chain, and no logarithm; the position weights are the column
//! itself times the length correction. Weights below 1e-200 of the best are pruned (a beam
//! of 460·γ cost units). Columns whose costs spread beyond the domain's range take the
//! log-domain recursion, and a γ below [`PROBABILITY_DOMAIN_MIN_GAMMA`] keeps the log domain
//! throughout. There the horizontal dependency unrolls to a prefix log-sum-exp,
//! `R(i,j) = S_j + softmin_{k<=j}(a_k - S_k, b_k - S_k)` with `S` the prefix sums of the
//! local costs and `a, b` the diagonal and vertical candidates, computed against the running
//! minimum: no exp/log on the serial chain, nothing to overflow or underflow for any γ.

use std::sync::Arc;

use super::cost::{CostWeights, TransposedReference};
#[cfg(target_arch = "x86_64")]
use super::soft_dtw::kernel::has_avx2_fma;
use super::soft_dtw::kernel::{exp_nonpos, exp_nonpos_or_zero, fmadd, ln_pos, BIG};
use super::{AlignStep, OnlineAligner};
use crate::features::FeatureFrame;

/// How the column is turned into position weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PositionWeighting {
    /// Forward weights `exp(-R/γ)`, normalised over the window.
    Forward,
    /// `exp(-sharpness · R/(path length))`, normalised over the window.
    PathLength {
        /// Per unit of path-length-normalised cost.
        sharpness: f64,
    },
}

/// Parameters of the online soft aligner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftOnlineConfig {
    /// Smoothing γ of the soft-min (cost units; the frame cost is in [0, ~3]).
    pub gamma: f64,
    /// Reference frames in the window (500 = 10 s at 50 frames/s).
    pub window_frames: usize,
    /// Share of the window kept behind the current position.
    pub back_fraction: f32,
    /// Frame cost weights.
    pub weights: CostWeights,
    /// Weight of the diagonal step (2 = Dixon's symmetric pattern, 1 = plain soft-DTW).
    pub diagonal_weight: f64,
    /// Position weights.
    pub position: PositionWeighting,
    /// Confidence = weight mass within this many frames of the expected position.
    pub confidence_radius_frames: f64,
    /// How much of the path-length bias of the forward weights to remove (0 = none, 1 = all).
    /// Under Dixon's symmetric pattern a path to a cell one frame further in the reference
    /// has one more unit of weight, so it has accumulated about one more mean local cost:
    /// plain forward weights favour cells behind the performer when it plays faster than
    /// the reference and ahead when slower. Subtracting `length_correction` x the path's
    /// accumulated soft cost per unit of weight (`R / (i + j + 1)`) per reference frame was
    /// meant to remove that; note that the soft-min's path-entropy term makes that quantity
    /// negative on nearly every frame (measured on the development corpus: below 0 on 95-100 %
    /// of frames in 14 of the 15 cases, median -0.017 to -0.15), so in effect this term tilts
    /// the weights slightly *backwards*, which is what the measured optimum of 0.5 reflects.
    /// Positive values (a poor match) are taken as 0: a forward tilt from them fed itself.
    pub length_correction: f64,
    /// Tempo-aware tilt (cost units per reference frame, per unit of tempo excess): the
    /// forward weights are tilted by `tempo_tilt x e` per reference frame, towards later
    /// frames when the aligner's own long-run tempo (reference frames per performance frame)
    /// is well above 1 and towards earlier ones when well below, where `e` is that tempo's
    /// distance from 1 beyond [`SoftOnlineConfig::tempo_dead_zone`] (the smaller of the two
    /// halves of the history, 0 if they disagree), clamped to [-0.5, 1].
    /// Why: the symmetric pattern charges one unit of weight per reference frame crossed, so
    /// a path at slope `r` pays about `(1 + r)` local costs per performance frame; in passages
    /// where every cell costs about the same (a sustained harmony) the weights therefore
    /// settle at the start of the passage, and the faster the performer the further behind
    /// they fall. No single tempo-blind correction serves both ends: on the development corpus
    /// (length correction off) a constant forward tilt of 0.08 lifts the 1.5x case from 59 to
    /// 77 % within 300 ms but drops the 0.6x case from 87 to 71 %, and a backward one of 0.04
    /// does the reverse (36 and 94 %). 0 disables.
    pub tempo_tilt: f64,
    /// Tempo deviation from 1 (reference frames per performance frame) inside which the tilt
    /// is 0, so a performance near the reference tempo is aligned exactly as without it
    /// (the other corrections were tuned there).
    pub tempo_dead_zone: f64,
    /// Performance frames of the aligner's own positions the tempo is fitted over
    /// (least-squares slope; 500 = 10 s at 50 frames/s: long enough not to follow the
    /// aligner's own stalls and jumps).
    pub tempo_history_frames: usize,
    /// Frames seen (since the start or the last reset) before the tilt applies.
    pub tempo_min_frames: usize,
    /// Extra cost (cost units) of every vertical and horizontal step, on top of the step's
    /// local cost: the path pays for each frame it holds the reference or runs ahead of the
    /// diagonal, so between two positions that match about equally well it keeps to the one
    /// the diagonal leads to. On a reference scaled to the performer's tempo
    /// ([`crate::align::tempo::TempoAdaptive`]) that is a prior for the local tempo to stay
    /// near the scale's. 0 (the default) is the plain recursion.
    pub step_penalty: f64,
}

impl Default for SoftOnlineConfig {
    /// Tempo tilt 0.5 with a dead zone of 0.3, fitted over 10 s after 5 s: measured with
    /// `scorefollow eval --mode follow` on the development corpus (18 cases, causal), the 1.5x
    /// case le50/le100/le300 17.2 / 20.3 / 57.8 -> 29.7 / 31.2 / 71.9 %, the 0.6x case
    /// 55.7 / 73.7 / 91.8 -> 69.2 / 80.1 / 94.2 %, every other case against a MIDI score
    /// unchanged. Refitting the tilt every frame instead: tilt 0.5 gave 70.3 % on the 1.5x
    /// case, 0.75 and 1 lost ground again (65.6, 64.1 %), dead zones 0.25 and 0.35 gave the
    /// same 70.3 %. Against a recorded reference the plain follower (`--tempo-model off`)
    /// turns the tilt off (see `engine`): it cost the real-recording case 3.5 % at 300 ms, and
    /// without the both-halves check of the tempo it was lost there. The default follower runs
    /// [`crate::align::tempo::TempoAdaptive`] instead, which follows a performer at another
    /// tempo on a scaled reference and needs no tilt.
    ///
    /// Length correction 0.5: measured on the development corpus (same 15 cases) le300
    /// 88.8 % at 0, 90.5 at 0.3, 91.3 at 0.4, 91.6 at 0.5, 91.3 at 0.6, 91.6 at 0.7 and a lost
    /// case at 1.
    ///
    /// Otherwise chosen on the development corpus (15 cases, 2298 events, causal scoring, same
    /// pipeline as OLTW): forward weights with γ = 0.3 gave le50/le100/le300/le1000 = 59.0 /
    /// 71.6 / 85.6 / 93.7 % against OLTW's 45.1 / 55.7 / 74.3 / 91.6; every γ in 0.2..=0.35
    /// beat OLTW at every threshold, γ = 0.1 and γ ≥ 0.5 did not.
    fn default() -> Self {
        Self {
            gamma: 0.3,
            window_frames: 500,
            back_fraction: 0.25,
            weights: CostWeights::default(),
            diagonal_weight: 2.0,
            position: PositionWeighting::Forward,
            confidence_radius_frames: 5.0,
            length_correction: 0.5,
            tempo_tilt: 0.5,
            tempo_dead_zone: 0.3,
            tempo_history_frames: 500,
            tempo_min_frames: 250,
            step_penalty: 0.0,
        }
    }
}

/// Column weights below this (relative to the column's largest, which is 1) are set to 0:
/// they are more than 460 nats below the best cell, so no position, spread or later column
/// can feel them, and keeping them would drift into subnormal numbers, whose arithmetic costs
/// the processor a hundred times more.
const TINY: f64 = 1e-200;

/// Largest exponent (nats) of one step's factors `exp(-(w·d - d_min)/γ)` in the probability
/// domain. With weights >= [`TINY`] every product then stays a normal number
/// (`1e-200 · e^-240 > 1e-305`); a column whose costs spread further (only for γ far below
/// the default, or absurd costs) takes the log-domain path instead.
const MAX_STEP_EXPONENT: f64 = 240.0;

/// Below this γ the aligner keeps its column as accumulated costs (the log domain) throughout.
/// Weights below `TINY` are pruned in the probability domain: a beam 460·γ cost units wide
/// around the best cell, 23 units at γ = 0.05 and 138 at the default 0.3 (a frame's local
/// cost is 0..~3). At γ much smaller than that, a cell that far behind can still win a few
/// frames later, so small γ gets the exact log-domain recursion, as hard DTW would.
pub const PROBABILITY_DOMAIN_MIN_GAMMA: f64 = 0.05;

/// A position weight below e^-40 (4e-18) of the best cell's moves the mean by less than 1e-14
/// frames over a whole window: blocks of them are set to 0 without exponentials.
const SKIP_EXPONENT: f64 = 40.0;

/// Windowed online soft-DTW aligner. Allocates in [`SoftOnline::new`] only.
pub struct SoftOnline {
    /// Reference frames.
    reference_len: usize,
    /// The reference feature-major, so a window's frame costs vectorise across frames
    /// (shared between the aligners of one follower).
    reference_t: Arc<TransposedReference>,
    cfg: SoftOnlineConfig,
    /// Whether the column is kept as accumulated costs (γ below
    /// [`PROBABILITY_DOMAIN_MIN_GAMMA`]) rather than weights.
    log_state: bool,
    /// The previous column: forward weights `exp(-(R - prev_offset)/γ)` (the largest is 1,
    /// 0 marks an unreachable or negligible cell, below [`TINY`]); in the log state the
    /// accumulated costs `R` themselves (`BIG` where unreachable).
    prev: Vec<f64>,
    /// `R = prev_offset - γ·ln(prev)`.
    prev_offset: f64,
    /// This column (weights, or accumulated costs inside the log-domain step).
    cur: Vec<f64>,
    cur_offset: f64,
    /// Window offset of this column's largest weight (1).
    cur_best: usize,
    /// Local costs of this column.
    cost: Vec<f64>,
    /// Step factors, then candidates and scratch.
    diag: Vec<f64>,
    vert: Vec<f64>,
    /// Scratch: in the probability-domain step the horizontal factors, the shifted previous
    /// column and the diagonal-plus-vertical terms; in the log-domain step the running
    /// minima, rescale factors and prefix sums.
    mins: Vec<f64>,
    fbuf: Vec<f64>,
    gbuf: Vec<f64>,
    prev_lo: usize,
    prev_len: usize,
    start_j: usize,
    /// Last reference frame the path may start at (>= `start_j`): a fresh aligner may start
    /// anywhere before the reference's first note, a reset one only at its frame.
    start_hi: usize,
    frames_seen: usize,
    position: usize,
    /// Mean local cost per unit of path weight of the last reported path (for
    /// [`SoftOnlineConfig::length_correction`]).
    mean_cost: f64,
    /// Columns computed in the log domain (see [`MAX_STEP_EXPONENT`]).
    log_domain_columns: usize,
    /// The last reported positions (reference frames), a ring of
    /// [`SoftOnlineConfig::tempo_history_frames`], for the tempo of the tilt.
    recent: Vec<f64>,
    /// The tempo tilt in use (cost units per reference frame), refitted every
    /// [`TILT_REFIT_FRAMES`] frames.
    tilt: f64,
}

/// Frames between refits of the tempo tilt: the fit costs about 2 µs (a pass over 10 s of
/// positions, measured as 16.5-18.0 -> 18.8-19.2 µs per step when done every frame) and a
/// 10 s slope hardly moves in 16 frames (0.3 s).
const TILT_REFIT_FRAMES: usize = 16;

impl SoftOnline {
    /// A new aligner at the start of `reference`. `gamma` must be > 0 and finite (clamped to
    /// 1e-6 otherwise, so a bad value cannot produce NaN positions).
    pub fn new(reference: Arc<[FeatureFrame]>, cfg: SoftOnlineConfig) -> Self {
        let transposed = Arc::new(TransposedReference::new(&reference));
        Self::from_transposed(transposed, cfg)
    }

    /// A new aligner sharing an already transposed reference (the same frames as
    /// `reference`): the aligners of a key trial need one copy, not twelve.
    pub fn with_transposed(
        reference: Arc<[FeatureFrame]>,
        reference_t: Arc<TransposedReference>,
        cfg: SoftOnlineConfig,
    ) -> Self {
        debug_assert_eq!(reference.len(), reference_t.len());
        Self::from_transposed(reference_t, cfg)
    }

    /// A new aligner on a feature-major reference alone (the aligner reads nothing else).
    pub fn from_transposed(
        reference_t: Arc<TransposedReference>,
        mut cfg: SoftOnlineConfig,
    ) -> Self {
        if !(cfg.gamma.is_finite() && cfg.gamma > 0.0) {
            cfg.gamma = 1e-6;
        }
        let w = cfg.window_frames.max(2);
        let start_hi = free_start_frames(&reference_t);
        let log_state = cfg.gamma < PROBABILITY_DOMAIN_MIN_GAMMA;
        let empty = if log_state { BIG } else { 0.0 };
        Self {
            reference_len: reference_t.len(),
            reference_t,
            cfg,
            log_state,
            prev: vec![empty; w],
            prev_offset: 0.0,
            cur: vec![empty; w],
            cur_offset: 0.0,
            cur_best: 0,
            cost: vec![0.0; w],
            diag: vec![BIG; w],
            vert: vec![BIG; w],
            mins: vec![BIG; w],
            fbuf: vec![0.0; w + 1],
            gbuf: vec![0.0; w],
            prev_lo: 0,
            prev_len: 0,
            start_j: 0,
            start_hi,
            frames_seen: 0,
            position: 0,
            mean_cost: 0.0,
            log_domain_columns: 0,
            recent: vec![0.0; cfg.tempo_history_frames.max(2)],
            tilt: 0.0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SoftOnlineConfig {
        &self.cfg
    }

    /// Accumulated soft costs `R` of the last column (`BIG`, 1e280, where unreachable or
    /// negligible) and the reference frame of its first entry. Allocates: for inspection and
    /// tests, not for the per-frame path.
    pub fn column(&self) -> (usize, Vec<f64>) {
        let costs = self.prev[..self.prev_len]
            .iter()
            .map(|&v| self.accumulated_cost(v, self.prev_offset))
            .collect();
        (self.prev_lo, costs)
    }

    /// A column entry as accumulated cost `R` (`BIG` where unreachable).
    #[inline(always)]
    fn accumulated_cost(&self, entry: f64, offset: f64) -> f64 {
        if self.log_state {
            entry
        } else if entry > 0.0 {
            offset - self.cfg.gamma * entry.ln()
        } else {
            BIG
        }
    }

    /// How many columns so far were computed in the log domain from the probability-domain
    /// state (their costs spread beyond what the domain holds at this γ; see
    /// `MAX_STEP_EXPONENT`). Not counted in the log state.
    pub fn log_domain_columns(&self) -> usize {
        self.log_domain_columns
    }

    /// Take over `from`'s alignment on this aligner's reference, which is the same piece on a
    /// time axis `own_per_from` times as fine (reference frames here per reference frame of
    /// `from`): the column, its scale, the path's start and the position history are carried
    /// across, so following goes on where it was instead of restarting from one cell (a
    /// restart forgets which neighbouring positions were still plausible). Each cell here takes
    /// the best of the cells of `from` that fall on it (the nearest one where none does).
    /// Both aligners must share γ and the window size; allocates nothing.
    pub fn adopt(&mut self, from: &SoftOnline, own_per_from: f64) {
        let m = self.reference_len;
        if m == 0 || !(own_per_from.is_finite() && own_per_from > 0.0) {
            return;
        }
        let to_own = |j: f64| ((j * own_per_from).round().max(0.0) as usize).min(m - 1);
        self.frames_seen = from.frames_seen;
        self.start_j = to_own(from.start_j as f64);
        self.start_hi = to_own(from.start_hi as f64).max(self.start_j);
        self.position = to_own(from.position as f64);
        self.mean_cost = from.mean_cost;
        for (d, &v) in self.recent.iter_mut().zip(&from.recent) {
            *d = v * own_per_from;
        }
        // Cost per reference frame: per frame here, 1/own_per_from of it.
        self.tilt = from.tilt / own_per_from;
        // Aligners of one configuration share the domain; any other pair restarts here.
        if from.frames_seen == 0 || from.prev_len == 0 || from.log_state != self.log_state {
            if from.log_state != self.log_state {
                self.frames_seen = 0;
                self.start_j = self.position;
                self.start_hi = self.start_j;
            }
            self.prev_lo = 0;
            self.prev_len = 0;
            return;
        }
        let (lo, len) = super::follow_window(
            m,
            self.cur.len(),
            self.cfg.back_fraction,
            self.position,
            false,
            0,
        );
        let (flo, flen) = (from.prev_lo as f64, from.prev_len);
        // Both in the same domain: the cell's best is the largest weight, or the least cost.
        let log = self.log_state;
        let empty = if log { BIG } else { 0.0 };
        let better = |a: f64, b: f64| if log { a.min(b) } else { a.max(b) };
        // `from`'s entry at its frame `j`, or `empty` outside its column.
        let entry = |j: f64| {
            let k = j - flo;
            if k >= 0.0 && (k as usize) < flen {
                from.prev[k as usize]
            } else {
                empty
            }
        };
        for k in 0..len {
            let centre = (lo + k) as f64 / own_per_from;
            let half = 0.5 / own_per_from;
            let (a, b) = ((centre - half).ceil(), (centre + half).ceil());
            let mut v = empty;
            let mut j = a;
            while j < b {
                v = better(v, entry(j));
                j += 1.0;
            }
            if a >= b {
                v = entry(centre.round());
            }
            self.prev[k] = v;
        }
        self.prev_lo = lo;
        self.prev_len = len;
        self.prev_offset = from.prev_offset;
        if !log {
            // The largest weight must be 1 again (it may not have fallen on a cell here).
            let (top, _) = first_maximum(&self.prev[..len]);
            if top > 0.0 {
                let inv = 1.0 / top;
                for p in &mut self.prev[..len] {
                    let q = *p * inv;
                    *p = if q < TINY { 0.0 } else { q };
                }
                self.prev_offset -= self.cfg.gamma * top.ln();
            }
        }
    }

    /// The tempo tilt (cost units per reference frame) for the next column, from the slope of
    /// the positions reported so far ([`SoftOnlineConfig::tempo_tilt`]); 0 until
    /// [`SoftOnlineConfig::tempo_min_frames`] frames have been seen.
    fn tempo_tilt(&self) -> f64 {
        let n = self.frames_seen.min(self.recent.len());
        if self.cfg.tempo_tilt == 0.0 || self.frames_seen < self.cfg.tempo_min_frames || n < 4 {
            return 0.0;
        }
        // Both halves of the history must agree: a performer who plays fast or slow does so
        // throughout, while an aligner that has stalled or jumped shows a one-sided slope, and
        // tilting it further that way would feed its own error (measured: without this check
        // the real-recording case stalled after a slow stretch, the backward tilt held it
        // there and it was lost for the remaining 100 s).
        let Some((s1, s2)) = super::half_slopes(&self.recent, self.frames_seen) else {
            return 0.0;
        };
        let (e1, e2) = (self.tempo_excess(s1), self.tempo_excess(s2));
        if e1 * e2 <= 0.0 {
            return 0.0;
        }
        let excess = if e1.abs() < e2.abs() { e1 } else { e2 };
        self.cfg.tempo_tilt * excess.clamp(-0.5, 1.0)
    }

    /// A slope of the reported positions (reference frames per performance frame) as its
    /// distance from 1 beyond [`SoftOnlineConfig::tempo_dead_zone`] (signed; 0 inside it).
    fn tempo_excess(&self, slope: f64) -> f64 {
        let dev = slope.clamp(0.25, 4.0) - 1.0;
        dev.signum() * (dev.abs() - self.cfg.tempo_dead_zone).max(0.0)
    }

    /// Current window start and length for the next frame (as OLTW: never moves back).
    fn window(&self) -> (usize, usize) {
        super::follow_window(
            self.reference_len,
            self.cur.len(),
            self.cfg.back_fraction,
            self.position,
            self.frames_seen > 0,
            self.prev_lo,
        )
    }

    /// One column in the probability domain from the local costs `cost[k]` of reference frames
    /// `lo + k`: `T(j) = f_j·P(i-1, j-1) + u_j·P(i-1, j) + h_j·T(j-1)` with
    /// `u = exp(-(d - d_min)/γ)`, `f = exp(-(w·d - d_min)/γ)`, `h = exp(-d/γ)`, which is the
    /// soft-min recursion multiplied out (`T = exp(-(R - offset - d_min)/γ)`). One exponential
    /// per cell (two for diagonal weights other than 1 and 2), all independent, and a
    /// multiply-add on the serial chain; no logarithm. Fills `cur`,
    /// `cur_offset`, `cur_best`; returns false, touching nothing, when this column's costs
    /// spread too far for the domain ([`MAX_STEP_EXPONENT`]).
    #[inline(always)]
    fn column_prob<const F: bool>(&mut self, lo: usize, len: usize) -> bool {
        let gamma = self.cfg.gamma;
        let inv_gamma = 1.0 / gamma;
        let w = self.cfg.diagonal_weight;
        let (d_min, d_max) = min_max(&self.cost[..len]);
        // Written so that NaN anywhere fails it.
        let pen = self.cfg.step_penalty;
        let in_range = w >= 1.0
            && d_min >= 0.0
            && pen >= 0.0
            && (w * d_max - d_min).max(d_max + pen) * inv_gamma <= MAX_STEP_EXPONENT;
        if !in_range {
            return false;
        }
        let (cost, u, f, h) = (
            &self.cost[..len],
            &mut self.vert[..len],
            &mut self.diag[..len],
            &mut self.mins[..len],
        );
        // h = u·e^{-d_min/γ}; for w = 2, f = u·h; for w = 1, f = u.
        let z = (-d_min * inv_gamma).exp();
        for k in 0..len {
            let uk = exp_nonpos::<F>(-(cost[k] - d_min) * inv_gamma);
            u[k] = uk;
            h[k] = uk * z;
        }
        if w == 1.0 {
            f.copy_from_slice(u);
        } else if w == 2.0 {
            for k in 0..len {
                f[k] = u[k] * h[k];
            }
        } else {
            for k in 0..len {
                f[k] = exp_nonpos::<F>(-(w * cost[k] - d_min) * inv_gamma);
            }
        }
        // The step penalty multiplies the vertical and horizontal factors (not the start cells).
        let q = if pen > 0.0 {
            let q = (-pen * inv_gamma).exp();
            for hk in h.iter_mut() {
                *hk *= q;
            }
            q
        } else {
            1.0
        };
        let i = self.frames_seen;
        let b = &mut self.gbuf[..len];
        let base = if i == 0 {
            // The path starts at (0, j) for j in start_j..=start_hi with that cell's cost
            // (weight 1, not w).
            b.fill(0.0);
            let (a, z) = (self.start_j.max(lo), self.start_hi.min(lo + len - 1));
            if a <= z {
                b[a - lo..=z - lo].copy_from_slice(&u[a - lo..=z - lo]);
            }
            0.0
        } else {
            // pv[k] = previous column at reference frame lo + k - 1 (0 outside it).
            let (plo, plen) = (self.prev_lo, self.prev_len);
            let pv = &mut self.fbuf[..len + 1];
            pv.fill(0.0);
            let (a0, a1) = (lo.max(plo + 1), (lo + len + 1).min(plo + plen + 1));
            if a0 < a1 {
                pv[a0 - lo..a1 - lo].copy_from_slice(&self.prev[a0 - 1 - plo..a1 - 1 - plo]);
            }
            if q == 1.0 {
                for k in 0..len {
                    b[k] = f[k] * pv[k] + u[k] * pv[k + 1];
                }
            } else {
                for k in 0..len {
                    b[k] = f[k] * pv[k] + q * u[k] * pv[k + 1];
                }
            }
            let before = self.start_j.saturating_sub(lo).min(len);
            b[..before].fill(0.0);
            self.prev_offset
        };
        // The serial chain: a multiply-add per cell, and a flush of the negligible so the
        // chain never decays into subnormals. When 8 steps cannot decay a value >= TINY that
        // far (h >= e^-30), the flush is needed once per 8 cells only, off the chain's
        // critical path 7 times in 8; the normalisation below flushes the rest.
        let mut t = 0.0f64;
        let (cur, h, b) = (&mut self.cur[..len], &*h, &*b);
        if 8.0 * (d_max + pen) * inv_gamma <= 240.0 {
            for ((c, h), b) in cur.chunks_mut(8).zip(h.chunks(8)).zip(b.chunks(8)) {
                for ((c, &hk), &bk) in c.iter_mut().zip(h).zip(b) {
                    t = fmadd::<F>(hk, t, bk);
                    *c = t;
                }
                t = if t < TINY { 0.0 } else { t };
            }
        } else {
            for ((c, &hk), &bk) in cur.iter_mut().zip(h).zip(b) {
                t = fmadd::<F>(hk, t, bk);
                t = if t < TINY { 0.0 } else { t };
                *c = t;
            }
        }
        let (m, k_best) = first_maximum(&self.cur[..len]);
        self.cur_best = k_best;
        if m > 0.0 {
            let inv_m = 1.0 / m;
            for c in &mut self.cur[..len] {
                let p = *c * inv_m;
                *c = if p < TINY { 0.0 } else { p };
            }
            self.cur_offset = base + d_min - gamma * m.ln();
        } else {
            // Nothing reachable in the window: an all-zero column, as an all-BIG one before.
            self.cur_offset = base + d_min;
        }
        true
    }

    /// One column in the log domain (the recursion on accumulated costs): for columns whose
    /// costs spread beyond [`MAX_STEP_EXPONENT`]. Converts the previous column to costs, steps,
    /// and converts the result back to weights.
    #[inline(always)]
    fn column_log<const F: bool>(&mut self, lo: usize, len: usize) {
        let gamma = self.cfg.gamma;
        let inv_gamma = 1.0 / gamma;
        if self.frames_seen > 0 {
            let offset = self.prev_offset;
            for p in &mut self.prev[..self.prev_len] {
                *p = if *p > 0.0 {
                    offset - gamma * ln_pos::<F>(*p)
                } else {
                    BIG
                };
            }
        }
        self.column_step::<F>(lo, len);
        let (r_min, k_best) = first_minimum(&self.cur[..len]);
        self.cur_best = k_best;
        if r_min >= 0.5 * BIG {
            self.cur[..len].fill(0.0);
            self.cur_offset = 0.0;
            return;
        }
        for c in &mut self.cur[..len] {
            let p = exp_nonpos_or_zero::<F>(-(*c - r_min) * inv_gamma);
            *c = if p < TINY { 0.0 } else { p };
        }
        self.cur_offset = r_min;
        self.log_domain_columns += 1;
    }

    #[inline(always)]
    fn column_impl<const F: bool>(&mut self, lo: usize, len: usize) {
        if self.log_state {
            self.column_step::<F>(lo, len);
            self.cur_best = first_minimum(&self.cur[..len]).1;
        } else if !self.column_prob::<F>(lo, len) {
            self.column_log::<F>(lo, len);
        }
    }

    /// One column of the log-domain recursion from precomputed local costs `cost[k]` of
    /// reference frames `lo + k`, with `prev` holding the previous column's accumulated costs;
    /// fills `self.cur[..len]` with accumulated costs.
    #[inline(always)]
    fn column_step<const F: bool>(&mut self, lo: usize, len: usize) {
        let gamma = self.cfg.gamma;
        let inv_gamma = 1.0 / gamma;
        let wdiag = self.cfg.diagonal_weight;
        let pen = self.cfg.step_penalty;
        let i = self.frames_seen;
        let (plo, plen) = (self.prev_lo, self.prev_len);
        let prev = &self.prev;
        if i == 0 {
            for k in 0..len {
                let j = lo + k;
                let d = self.cost[k];
                // The path starts at (0, start_j) with that cell's cost.
                self.diag[k] = if (self.start_j..=self.start_hi).contains(&j) {
                    d
                } else {
                    BIG
                };
                self.vert[k] = BIG;
            }
        } else {
            // pv[k] = previous column at reference frame lo + k - 1 (BIG outside it), so the
            // candidates are two shifted vector adds. BIG + d rounds to BIG, as before.
            let pv = &mut self.fbuf[..len + 1];
            pv.fill(BIG);
            // t = lo + k runs over a0..a1, where frame t - 1 is in the previous column.
            let (a0, a1) = (lo.max(plo + 1), (lo + len + 1).min(plo + plen + 1));
            if a0 < a1 {
                pv[a0 - lo..a1 - lo].copy_from_slice(&prev[a0 - 1 - plo..a1 - 1 - plo]);
            }
            let (diag, vert, cost) = (
                &mut self.diag[..len],
                &mut self.vert[..len],
                &self.cost[..len],
            );
            for k in 0..len {
                let d = cost[k];
                diag[k] = pv[k] + wdiag * d;
                vert[k] = pv[k + 1] + d + pen;
            }
            let before = self.start_j.saturating_sub(lo).min(len);
            diag[..before].fill(BIG);
            vert[..before].fill(BIG);
        }
        // The horizontal recurrence R_k = softmin(a_k, b_k, R_{k-1} + d_k) unrolls to
        // R_k = S_k + softmin_{j<=k}(a_j - S_j, b_j - S_j) with S the prefix sums of d: a
        // prefix log-sum-exp, computed against the running minimum so every term is in (0, 1]
        // and the running sum in [1, 2k + 2] (no overflow, no underflow, whatever γ).
        let mut s_acc = 0.0f64;
        let mut run_min = BIG;
        for k in 0..len {
            s_acc += self.cost[k] + pen;
            let ua = self.diag[k] - s_acc;
            let ub = self.vert[k] - s_acc;
            // A plain compare-and-select, not f64::min: no NaN can occur here (unreachable
            // cells hold BIG), and min's NaN handling triples the latency of this serial chain.
            run_min = if ua < run_min { ua } else { run_min };
            run_min = if ub < run_min { ub } else { run_min };
            self.diag[k] = ua;
            self.vert[k] = ub;
            self.gbuf[k] = s_acc;
            self.mins[k] = run_min;
        }
        // Independent per cell (vectorised): the rescale factor of the running sum where the
        // minimum drops, and this cell's two terms.
        let mins = &self.mins[..len];
        let fbuf = &mut self.fbuf[..len];
        fbuf[0] = exp_nonpos_or_zero::<F>(-(BIG - mins[0]) * inv_gamma);
        self.diag[0] = exp_nonpos_or_zero::<F>(-(self.diag[0] - mins[0]) * inv_gamma)
            + exp_nonpos_or_zero::<F>(-(self.vert[0] - mins[0]) * inv_gamma);
        // Rescale factors: exactly 1 where the running minimum stays (exp(0) = 1), which is
        // most of the window once past the best cell, so whole runs skip the exponential.
        let mut k0 = 1;
        while k0 < len {
            let k1 = (k0 + 8).min(len);
            let (f, m0, m1) = (&mut fbuf[k0..k1], &mins[k0 - 1..k1 - 1], &mins[k0..k1]);
            if m0 == m1 {
                f.fill(1.0);
            } else {
                for ((f, &m0), &m1) in f.iter_mut().zip(m0).zip(m1) {
                    *f = exp_nonpos_or_zero::<F>(-(m0 - m1) * inv_gamma);
                }
            }
            k0 = k1;
        }
        for ((d, &v), &m1) in self.diag[1..len]
            .iter_mut()
            .zip(&self.vert[1..len])
            .zip(&mins[1..])
        {
            *d = exp_nonpos_or_zero::<F>(-(*d - m1) * inv_gamma)
                + exp_nonpos_or_zero::<F>(-(v - m1) * inv_gamma);
        }
        let mut p = 0.0f64;
        for ((c, &f), &g) in self.cur[..len]
            .iter_mut()
            .zip(&*fbuf)
            .zip(&self.diag[..len])
        {
            // The factor is exactly 1 wherever the running minimum holds (most cells): an add
            // alone then, which halves the latency of this serial chain and gives the same bits.
            p = if f == 1.0 { p + g } else { p * f + g };
            *c = p;
        }
        for ((c, &s), &m) in self.cur[..len].iter_mut().zip(&self.gbuf[..len]).zip(mins) {
            let r = s + m - gamma * ln_pos::<F>(c.max(1.0));
            *c = if r >= 0.5 * BIG { BIG } else { r };
        }
    }
}

impl SoftOnline {
    /// Position weights from scores (`weight = exp(best - score)`) into `self.diag[..len]`;
    /// returns their sum and first moment (in window offsets), and the range of cells outside
    /// which every weight is 0. The general path: any weighting, any correction.
    #[inline(always)]
    fn weights_from_scores<const F: bool>(
        &mut self,
        len: usize,
        best: f64,
        score: &[f64],
    ) -> (f64, f64, usize, usize) {
        let (w, sc) = (&mut self.diag[..len], &score[..len]);
        let (mut k_lo, mut k_hi) = (len, 0usize);
        let mut k0 = 0;
        while k0 < len {
            let k1 = (k0 + 8).min(len);
            if sc[k0..k1].iter().all(|&s| best - s < -SKIP_EXPONENT) {
                w[k0..k1].fill(0.0);
            } else {
                for (wk, &s) in w[k0..k1].iter_mut().zip(&sc[k0..k1]) {
                    *wk = exp_nonpos_or_zero::<F>(best - s);
                }
                k_lo = k_lo.min(k0);
                k_hi = k1;
            }
            k0 = k1;
        }
        if k_lo >= k_hi {
            return (0.0, 0.0, 0, 0);
        }
        let (sw, sj) = lane_moments(&self.diag[k_lo..k_hi], k_lo);
        (sw, sj, k_lo, k_hi)
    }

    /// Forward position weights `P_k · e^{α(k - best)}` (the column's weights times the length
    /// correction, anchored at the column's largest weight) into `self.diag`, straight from the
    /// probability-domain column: no logarithm, and exponentials only where the weight can
    /// matter. Blocks of 8 cells whose weight is surely below e^-40 of the best cell's (bounded
    /// through the float exponent of the block's largest `P`) are set to 0 without any, which
    /// also narrows the returned range to where the mass is. Returns `None`, touching
    /// nothing, when the correction grows too steeply across the kept range for one scale.
    #[inline(always)]
    fn weights_direct<const F: bool>(
        &mut self,
        len: usize,
        alpha: f64,
        best: usize,
    ) -> Option<(f64, f64, usize, usize)> {
        const BLOCK: usize = 8;
        let p = &self.cur[..len];
        let x_at = |k: usize| alpha * (k as f64 - best as f64);
        // An upper bound of ln(P) for P > 0 from its float exponent alone.
        let ln_upper = |v: f64| ((v.to_bits() >> 52) as f64 - 1022.0) * std::f64::consts::LN_2;
        let kept = |k0: usize| {
            let k1 = (k0 + BLOCK).min(len);
            let p_max = p[k0..k1]
                .iter()
                .fold(0.0f64, |m, &v| if v > m { v } else { m });
            p_max > 0.0 && ln_upper(p_max) + x_at(k0).max(x_at(k1 - 1)) >= -SKIP_EXPONENT
        };
        let first = (0..len).step_by(BLOCK).find(|&k0| kept(k0))?;
        let last = (first..len).step_by(BLOCK).rev().find(|&k0| kept(k0))?;
        let (k_lo, k_hi) = (first, (last + BLOCK).min(len));
        // One scale for the whole range: every argument of exp_nonpos below is in
        // [-(SKIP_EXPONENT + BLOCK·|α|) - top, 0], which must stay inside its domain (-708).
        let top = x_at(k_lo).max(x_at(k_hi - 1));
        if SKIP_EXPONENT + BLOCK as f64 * alpha.abs() + top.max(0.0) > 700.0 {
            return None;
        }
        let scale = top.exp();
        let w = &mut self.diag[..len];
        let mut k0 = k_lo;
        while k0 < k_hi {
            let k1 = (k0 + BLOCK).min(k_hi);
            if kept(k0) {
                for k in k0..k1 {
                    w[k] = p[k] * (exp_nonpos::<F>(x_at(k) - top) * scale);
                }
            } else {
                w[k0..k1].fill(0.0);
            }
            k0 = k1;
        }
        let (sw, sj) = lane_moments(&self.diag[k_lo..k_hi], k_lo);
        Some((sw, sj, k_lo, k_hi))
    }

    /// The position weights of the current column into `self.diag`: `(sum, first moment, k_lo,
    /// k_hi, fallback cell)`, the fallback being where to report when no weight is positive.
    #[inline(always)]
    fn position_weights<const F: bool>(
        &mut self,
        lo: usize,
        len: usize,
    ) -> (f64, f64, usize, usize, usize) {
        let gamma = self.cfg.gamma;
        let best = self.cur_best;
        if !self.log_state && self.cur[best] <= 0.0 {
            return (0.0, 0.0, 0, 0, 0);
        }
        if let (PositionWeighting::Forward, false) = (self.cfg.position, self.log_state) {
            let alpha =
                position_tilt(self.cfg.length_correction, self.mean_cost, self.tilt) / gamma;
            if let Some((sw, sj, k_lo, k_hi)) = self.weights_direct::<F>(len, alpha, best) {
                return (sw, sj, k_lo, k_hi, best);
            }
        }
        // Through accumulated costs: scores in `vert` (scratch after the column step), +∞
        // where a cell is unreachable.
        let i = self.frames_seen;
        let (offset, log_state) = (self.cur_offset, self.log_state);
        let per_frame = position_tilt(self.cfg.length_correction, self.mean_cost, self.tilt);
        let (cur, vert) = (&self.cur[..len], &mut self.vert[..len]);
        let cost_of = |v: f64| {
            if log_state {
                v
            } else if v > 0.0 {
                offset - gamma * ln_pos::<F>(v)
            } else {
                BIG
            }
        };
        match self.cfg.position {
            PositionWeighting::Forward => {
                let inv_gamma = 1.0 / gamma;
                for (k, (v, &c)) in vert.iter_mut().zip(cur).enumerate() {
                    let r = cost_of(c);
                    *v = if r >= 0.5 * BIG {
                        f64::INFINITY
                    } else {
                        (r - per_frame * k as f64) * inv_gamma
                    };
                }
            }
            PositionWeighting::PathLength { sharpness } => {
                for (k, (v, &c)) in vert.iter_mut().zip(cur).enumerate() {
                    let steps = (i + (lo + k).saturating_sub(self.start_j) + 1) as f64;
                    let r = cost_of(c);
                    *v = if r >= 0.5 * BIG {
                        f64::INFINITY
                    } else {
                        sharpness * r / steps
                    };
                }
            }
        }
        let (best_score, best_k) = first_minimum(vert);
        let scores = std::mem::take(&mut self.vert);
        let (sw, sj, k_lo, k_hi) = self.weights_from_scores::<F>(len, best_score, &scores);
        self.vert = scores;
        (sw, sj, k_lo, k_hi, best_k)
    }

    /// Window costs, the column and its position weights, dispatched once per frame to the
    /// AVX2+FMA build of the same code where the CPU has it.
    fn advance(&mut self, lo: usize, len: usize) -> (f64, f64, usize, usize, usize) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
            return unsafe { self.advance_avx2(lo, len) };
        }
        self.column_impl::<false>(lo, len);
        self.position_weights::<false>(lo, len)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn advance_avx2(&mut self, lo: usize, len: usize) -> (f64, f64, usize, usize, usize) {
        self.column_impl::<true>(lo, len);
        self.position_weights::<true>(lo, len)
    }

    /// `self.cost[k] = frame_cost(frame, reference[lo + k])` for `k < len`, vectorised
    /// across reference frames, bit-identical to [`frame_cost`].
    fn window_costs(&mut self, frame: &FeatureFrame, lo: usize, len: usize) {
        self.reference_t
            .costs(frame, lo, self.cfg.weights, &mut self.cost[..len]);
    }
}

/// The reference frame of the first note (the first frame whose onset strength reaches
/// [`FIRST_NOTE_ONSET`]), if within the first [`FREE_START_MAX_FRAMES`]: a fresh aligner may
/// start at any frame before it, since the silence a recording begins with says nothing about
/// the performance's (measured: the 2006 recording of the dev corpus's real-recording pair
/// starts 0.66 s before its first chord, the 1933 one 0.24 s).
fn free_start_frames(reference: &TransposedReference) -> usize {
    let cap = FREE_START_MAX_FRAMES.min(reference.len());
    (0..cap)
        .find(|&j| reference.onset_strength(j) >= FIRST_NOTE_ONSET)
        .unwrap_or(0)
}

/// Onset strength (sum of the onset vector, which each frame's extractor normalises by its
/// running maximum) that marks the reference's first note.
const FIRST_NOTE_ONSET: f32 = 0.5;
/// The free start covers at most this many reference frames (5 s at 50 frames/s).
const FREE_START_MAX_FRAMES: usize = 250;

/// The position weights' tilt (cost units per reference frame): the length correction
/// and the tempo tilt. The length correction uses the path's cost per unit of weight only
/// where it is negative (the soft-min's entropy, on nearly every frame): a positive one
/// means the match is poor, and tilting forwards by it fed itself (measured in a
/// modulation test: after a key change the position ran 10 s ahead in one second).
/// A free function, not a method: measured, calling it as a method of `self` in
/// `position_weights` made the whole soft step 35 % slower (p50 8.6 -> 11.8 µs).
#[inline(always)]
fn position_tilt(length_correction: f64, mean_cost: f64, tilt: f64) -> f64 {
    length_correction * mean_cost.min(0.0) + tilt
}

/// `(Σ w_c, Σ w_c · (k0 + c))` in four lanes: one running sum is a serial chain of dependent
/// adds.
#[inline(always)]
fn lane_moments(ws: &[f64], k0: usize) -> (f64, f64) {
    let (mut sw, mut sj) = ([0.0f64; 4], [0.0f64; 4]);
    let full = ws.len() / 4 * 4;
    for c in (0..full).step_by(4) {
        for l in 0..4 {
            sw[l] += ws[c + l];
            sj[l] += ws[c + l] * (k0 + c + l) as f64;
        }
    }
    for (c, &w) in ws.iter().enumerate().skip(full) {
        sw[0] += w;
        sj[0] += w * (k0 + c) as f64;
    }
    let sum = |a: [f64; 4]| (a[0] + a[1]) + (a[2] + a[3]);
    (sum(sw), sum(sj))
}

/// Smallest and largest value (NaN in, NaN out: the caller's range check then fails), in
/// four lanes.
#[inline(always)]
fn min_max(values: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = ([f64::INFINITY; 4], [f64::NEG_INFINITY; 4]);
    let mut nan = false;
    let full = values.len() / 4 * 4;
    for c in (0..full).step_by(4) {
        for l in 0..4 {
            let v = values[c + l];
            lo[l] = if v < lo[l] { v } else { lo[l] };
            hi[l] = if v > hi[l] { v } else { hi[l] };
            nan |= v.is_nan();
        }
    }
    for &v in &values[full..] {
        lo[0] = if v < lo[0] { v } else { lo[0] };
        hi[0] = if v > hi[0] { v } else { hi[0] };
        nan |= v.is_nan();
    }
    if nan {
        return (f64::NAN, f64::NAN);
    }
    let (a, b) = (
        lo[0].min(lo[1]).min(lo[2].min(lo[3])),
        hi[0].max(hi[1]).max(hi[2].max(hi[3])),
    );
    (a, b)
}

/// The largest value and the first index holding it (`(-∞, 0)` for an empty slice or NaN):
/// a lane-parallel maximum, then a scan for its first occurrence (cheaper than carrying
/// indices through the lanes).
fn first_maximum(values: &[f64]) -> (f64, usize) {
    const LANES: usize = 4;
    let mut best = [f64::NEG_INFINITY; LANES];
    let full = values.len() / LANES * LANES;
    for c in (0..full).step_by(LANES) {
        for l in 0..LANES {
            let v = values[c + l];
            best[l] = if v > best[l] { v } else { best[l] };
        }
    }
    let mut b = (best[0].max(best[1])).max(best[2].max(best[3]));
    for &v in &values[full..] {
        b = if v > b { v } else { b };
    }
    match values.iter().position(|&v| v == b) {
        Some(k) => (b, k),
        None => (f64::NEG_INFINITY, 0),
    }
}

/// The smallest value and the first index holding it (`(∞, 0)` for no finite value). Four
/// lanes, each keeping its first minimum, so the compare chain is four times shorter than a
/// single running minimum's.
fn first_minimum(values: &[f64]) -> (f64, usize) {
    const LANES: usize = 4;
    let mut best = [f64::INFINITY; LANES];
    let mut at = [0usize; LANES];
    let full = values.len() / LANES * LANES;
    for c in (0..full).step_by(LANES) {
        for l in 0..LANES {
            let v = values[c + l];
            let better = v < best[l];
            best[l] = if better { v } else { best[l] };
            at[l] = if better { c + l } else { at[l] };
        }
    }
    let (mut b, mut k) = (f64::INFINITY, 0usize);
    for l in 0..LANES {
        if best[l] < b || (best[l] == b && best[l].is_finite() && at[l] < k) {
            b = best[l];
            k = at[l];
        }
    }
    for (c, &v) in values.iter().enumerate().skip(full) {
        if v < b {
            b = v;
            k = c;
        }
    }
    (b, k)
}

impl OnlineAligner for SoftOnline {
    fn step(&mut self, frame: &FeatureFrame) -> AlignStep {
        let m = self.reference_len;
        if m == 0 {
            return AlignStep::default();
        }
        let (lo, len) = self.window();
        self.window_costs(frame, lo, len);
        let i = self.frames_seen;
        if i.is_multiple_of(TILT_REFIT_FRAMES) {
            self.tilt = self.tempo_tilt();
        }
        let (sw, sj, k_lo, k_hi, fallback_k) = self.advance(lo, len);
        let (mean_k, var, mass) = if sw > 0.0 && sw.is_finite() {
            let mean = sj / sw;
            // Weights are 0 outside k_lo..k_hi; partial sums in lanes, as above.
            let (mut sv, mut near) = ([0.0f64; 4], [0.0f64; 4]);
            let radius = self.cfg.confidence_radius_frames;
            for (c, &w) in self.diag[k_lo..k_hi].iter().enumerate() {
                let x = (k_lo + c) as f64 - mean;
                sv[c % 4] += w * x * x;
                near[c % 4] += if x.abs() <= radius { w } else { 0.0 };
            }
            let sum = |a: [f64; 4]| (a[0] + a[1]) + (a[2] + a[3]);
            (mean, (sum(sv) / sw).max(0.0), sum(near) / sw)
        } else {
            (fallback_k as f64, 0.0, 0.0)
        };
        let ref_frame = lo as f64 + mean_k;
        let cell = (mean_k.round() as usize).min(len - 1);
        let steps = (i + (lo + cell).saturating_sub(self.start_j) + 1) as f64;
        let r = self.accumulated_cost(self.cur[cell], self.cur_offset);
        let norm_cost = if r < 0.5 * BIG {
            r / steps
        } else {
            f64::INFINITY
        };
        if norm_cost.is_finite() {
            self.mean_cost = norm_cost;
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.prev_offset = self.cur_offset;
        self.prev_lo = lo;
        self.prev_len = len;
        let cap = self.recent.len();
        self.recent[self.frames_seen % cap] = ref_frame;
        self.frames_seen += 1;
        self.position = (ref_frame.round() as usize).min(m - 1);
        AlignStep {
            ref_frame,
            confidence: mass as f32,
            spread_frames: var.sqrt() as f32,
            cost: norm_cost as f32,
        }
    }

    fn reset_to(&mut self, ref_frame: usize) {
        let m = self.reference_len;
        self.start_j = ref_frame.min(m.saturating_sub(1));
        self.start_hi = self.start_j;
        self.position = self.start_j;
        self.frames_seen = 0;
        self.prev_lo = 0;
        self.prev_len = 0;
        self.prev_offset = 0.0;
        self.mean_cost = 0.0;
    }

    fn frames_seen(&self) -> usize {
        self.frames_seen
    }

    fn name(&self) -> &'static str {
        "soft"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::cost::frame_cost;
    use crate::align::soft_dtw::{reference, Matrix};
    use crate::features::N_CHROMA;

    fn random_frames(n: usize, seed: u64) -> Vec<FeatureFrame> {
        crate::test_util::random_frames(n, seed, true)
    }

    fn cost_matrix(perf: &[FeatureFrame], reference: &[FeatureFrame]) -> Matrix {
        let w = CostWeights::default();
        Matrix::from_fn(perf.len(), reference.len(), |i, j| {
            f64::from(frame_cost(&perf[i], &reference[j], w))
        })
    }

    /// Plain weighted recursion over the full matrix (std exp/ln): the oracle for the
    /// diagonal weight 2 case.
    fn weighted_forward(c: &Matrix, gamma: f64, w: f64) -> Vec<Vec<f64>> {
        let (n, m) = (c.rows(), c.cols());
        let mut r = vec![vec![f64::INFINITY; m]; n];
        for i in 0..n {
            for j in 0..m {
                let d = c.get(i, j);
                let mut cands = vec![];
                if i == 0 && j == 0 {
                    cands.push(d);
                }
                if i > 0 && j > 0 {
                    cands.push(r[i - 1][j - 1] + w * d);
                }
                if i > 0 {
                    cands.push(r[i - 1][j] + d);
                }
                if j > 0 {
                    cands.push(r[i][j - 1] + d);
                }
                r[i][j] = reference::softmin(&cands, gamma);
            }
        }
        r
    }

    /// The column against an oracle row: every cell whose weight is within e^-300 of the row's
    /// best is exact to 1e-9; the others carry no weight the aligner could feel, and must not
    /// be reported as cheaper than that (they are exact, or `BIG` once below 1e-200).
    fn assert_column_matches(col: &[f64], want: &[f64], gamma: f64, what: &str) {
        let best = want.iter().copied().fold(f64::INFINITY, f64::min);
        for (j, (&got, &want)) in col.iter().zip(want).enumerate() {
            if want - best <= 300.0 * gamma {
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{what} ({j}): {got} vs {want}"
                );
            } else {
                assert!(got >= best + 250.0 * gamma, "{what} ({j}): {got} vs {want}");
            }
        }
    }

    /// From γ = 0.001 (the log state: every cell exact) to γ = 1 (the probability domain).
    #[test]
    fn unbounded_window_column_equals_offline_soft_dtw_row() {
        let refr = random_frames(90, 1);
        let perf = random_frames(40, 2);
        let c = cost_matrix(&perf, &refr);
        for &gamma in &[0.001, 0.005, 0.01, 0.1, 1.0] {
            let cfg = SoftOnlineConfig {
                gamma,
                window_frames: 1000,
                diagonal_weight: 1.0,
                ..SoftOnlineConfig::default()
            };
            let mut al = SoftOnline::new(refr.clone().into(), cfg);
            let r = reference::forward(&c, gamma, None);
            for (i, f) in perf.iter().enumerate() {
                al.step(f);
                let (lo, col) = al.column();
                assert_eq!((lo, col.len()), (0, 90));
                assert_column_matches(&col, &r[i + 1][1..91], gamma, &format!("γ={gamma} {i}"));
            }
            if gamma < PROBABILITY_DOMAIN_MIN_GAMMA {
                // No pruning at all in the log state.
                let (_, col) = al.column();
                for (j, &got) in col.iter().enumerate() {
                    let want = r[40][j + 1];
                    assert!((got - want).abs() <= 1e-9 * want.max(1.0), "γ={gamma} {j}");
                }
            }
            assert_eq!(al.log_domain_columns(), 0);
        }
    }

    #[test]
    fn symmetric_weights_match_the_weighted_oracle() {
        let refr = random_frames(70, 3);
        let perf = random_frames(30, 4);
        let c = cost_matrix(&perf, &refr);
        for gamma in [0.002, 0.01, 0.05, 0.3] {
            let mut al = SoftOnline::new(
                refr.clone().into(),
                SoftOnlineConfig {
                    gamma,
                    window_frames: 1000,
                    ..SoftOnlineConfig::default()
                },
            );
            let r = weighted_forward(&c, gamma, 2.0);
            for (i, f) in perf.iter().enumerate() {
                al.step(f);
                let (_, col) = al.column();
                assert_column_matches(&col, &r[i], gamma, &format!("γ={gamma} {i}"));
            }
        }
    }

    /// A moving window over a long reference: each column against the oracle over the same
    /// window (cells outside it unreachable), with the window placement the aligner chose,
    /// for both diagonal weights and a weight the probability domain takes through an
    /// exponential of its own (1.5); in the last run every 10th frame has absurd onsets (a
    /// local cost near 400), so those columns go through the log domain and back (with
    /// diagonal weight 1 there: under weight 2 such frames are crossed by vertical steps at
    /// half the price, the path stalls at its start and the window would not move).
    #[test]
    fn moving_window_columns_equal_the_windowed_oracle() {
        let refr = random_frames(400, 21);
        // A performance that follows the reference at 1.25x (so the window moves), with noise.
        let noise = random_frames(150, 22);
        let perf: Vec<FeatureFrame> = (0..150)
            .map(|i| {
                let mut f = refr[(i * 5 / 4 + 5).min(399)];
                for c in 0..N_CHROMA {
                    f.chroma[c] = 0.7 * f.chroma[c] + 0.3 * noise[i].chroma[c];
                    f.onset[c] = 0.5 * (f.onset[c] + noise[i].onset[c]);
                }
                f
            })
            .collect();
        let c = cost_matrix(&perf, &refr);
        let mut spiky = perf.clone();
        for f in spiky.iter_mut().step_by(10) {
            f.onset = [5.0; N_CHROMA];
        }
        let c_spiky = cost_matrix(&spiky, &refr);
        for (w, gamma, spikes) in [
            (1.0, 0.1, false),
            (2.0, 0.3, false),
            (1.5, 0.2, false),
            (1.0, 0.3, true),
        ] {
            let (perf, c) = if spikes {
                (&spiky, &c_spiky)
            } else {
                (&perf, &c)
            };
            let mut al = SoftOnline::new(
                refr.clone().into(),
                SoftOnlineConfig {
                    gamma,
                    window_frames: 60,
                    diagonal_weight: w,
                    ..SoftOnlineConfig::default()
                },
            );
            // The oracle row over the previous window, recomputed on the new one.
            let mut prev: Option<(usize, Vec<f64>)> = None;
            for (i, f) in perf.iter().enumerate() {
                al.step(f);
                let (lo, col) = al.column();
                let want: Vec<f64> = (0..col.len())
                    .scan(f64::INFINITY, |left, k| {
                        let j = lo + k;
                        let d = c.get(i, j);
                        let mut cands = vec![*left + d];
                        match &prev {
                            None => {
                                if j == 0 {
                                    cands.push(d);
                                }
                            }
                            Some((plo, p)) => {
                                let at = |jj: usize| {
                                    jj.checked_sub(*plo)
                                        .and_then(|x| p.get(x).copied())
                                        .unwrap_or(f64::INFINITY)
                                };
                                if j > 0 {
                                    cands.push(at(j - 1) + w * d);
                                }
                                cands.push(at(j) + d);
                            }
                        }
                        let finite: Vec<f64> =
                            cands.into_iter().filter(|x| x.is_finite()).collect();
                        *left = if finite.is_empty() {
                            f64::INFINITY
                        } else {
                            reference::softmin(&finite, gamma)
                        };
                        Some(*left)
                    })
                    .collect();
                assert_column_matches(&col, &want, gamma, &format!("w={w} γ={gamma} {i}"));
                // Carry the oracle, not the aligner's column, so errors cannot cancel.
                prev = Some((lo, want));
            }
            assert!(al.column().0 > 100, "the window did not move");
            assert_eq!(al.log_domain_columns(), if spikes { 15 } else { 0 });
        }
    }

    /// The direct forward weights (probability domain, correction factor by exponentials)
    /// against the same weights taken through logarithms, on real columns, with corrections
    /// that grow either way across the window.
    #[test]
    fn direct_position_weights_equal_the_logarithmic_ones() {
        let refr = random_frames(300, 31);
        let mut al = SoftOnline::new(
            refr.clone().into(),
            SoftOnlineConfig {
                window_frames: 120,
                ..SoftOnlineConfig::default()
            },
        );
        for f in refr.iter().take(80) {
            al.step(f);
        }
        let perf = random_frames(30, 32);
        for (n, f) in perf.iter().enumerate() {
            let (lo, len) = al.window();
            al.window_costs(f, lo, len);
            al.column_impl::<false>(lo, len);
            let best = al.cur_best;
            for alpha in [0.0, 0.02, 0.7, -0.3, 3.0] {
                let Some((sw, sj, k_lo, k_hi)) = al.weights_direct::<false>(len, alpha, best)
                else {
                    // Only a steep correction may be refused (it goes through logarithms).
                    assert!(alpha.abs() >= 3.0, "frame {n} α={alpha} refused");
                    continue;
                };
                let direct: Vec<f64> = (0..len)
                    .map(|k| {
                        if (k_lo..k_hi).contains(&k) {
                            al.diag[k] / sw
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let scores: Vec<f64> = al.cur[..len]
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| {
                        if p > 0.0 {
                            -p.ln() - alpha * k as f64
                        } else {
                            f64::INFINITY
                        }
                    })
                    .collect();
                let (b, _) = first_minimum(&scores);
                let (sw2, sj2, lo2, hi2) = al.weights_from_scores::<false>(len, b, &scores);
                for (k, &d) in direct.iter().enumerate() {
                    let want = if (lo2..hi2).contains(&k) {
                        al.diag[k] / sw2
                    } else {
                        0.0
                    };
                    assert!(
                        (d - want).abs() <= 1e-12,
                        "frame {n} α={alpha} cell {k}: {d} vs {want}"
                    );
                }
                assert!((sj / sw - sj2 / sw2).abs() <= 1e-9, "frame {n} α={alpha}");
            }
            al.step(f);
        }
    }

    /// On a noise-free time-stretched copy of the reference the expected position stays
    /// within a frame or two of the truth, with a small spread, for both weightings.
    #[test]
    fn follows_a_stretched_performance() {
        let refr = random_frames(600, 11);
        let mut perf = Vec::new();
        let mut gt = Vec::new();
        for (j, f) in refr.iter().enumerate() {
            let reps = 1 + (j * 7 % 3 == 0) as usize;
            for _ in 0..reps {
                perf.push(*f);
                gt.push(j as f64);
            }
        }
        // The path-length-normalised weights track the truth; the plain forward weights
        // (exp(-R/γ)) lag, since paths to later reference frames collect more cost.
        for (position, bound) in [
            (PositionWeighting::PathLength { sharpness: 1000.0 }, 2.5),
            (PositionWeighting::PathLength { sharpness: 300.0 }, 4.0),
            (PositionWeighting::Forward, 30.0),
        ] {
            let cfg = SoftOnlineConfig {
                gamma: 0.1,
                window_frames: 200,
                position,
                ..SoftOnlineConfig::default()
            };
            let mut al = SoftOnline::new(refr.clone().into(), cfg);
            let mut worst: f64 = 0.0;
            for (f, &g) in perf.iter().zip(&gt).skip(20) {
                let s = al.step(f);
                worst = worst.max((s.ref_frame - g).abs());
                assert!(s.spread_frames.is_finite() && (0.0..=1.0).contains(&s.confidence));
            }
            assert!(worst <= bound, "{position:?}: worst error {worst} frames");
        }
    }

    #[test]
    fn default_config_follows_a_stretched_performance() {
        let refr = random_frames(600, 12);
        let mut al = SoftOnline::new(refr.clone().into(), SoftOnlineConfig::default());
        let mut worst: f64 = 0.0;
        let mut k = 0;
        for (j, f) in refr.iter().enumerate() {
            for _ in 0..(1 + (j % 4 == 0) as usize) {
                let s = al.step(f);
                if k >= 20 {
                    worst = worst.max((s.ref_frame - j as f64).abs());
                }
                k += 1;
            }
        }
        assert!(worst <= 3.0, "worst error {worst} frames");
    }

    /// A reference of `blocks` passages of `len` identical frames each (a sustained
    /// harmony: every cell of a passage costs the same), with an onset at each passage start.
    fn block_frames(blocks: usize, len: usize, seed: u64) -> Vec<FeatureFrame> {
        let distinct = random_frames(blocks, seed);
        let mut out = Vec::with_capacity(blocks * len);
        for f in distinct {
            for k in 0..len {
                let mut g = f;
                if k > 0 {
                    g.onset = [0.0; N_CHROMA];
                }
                out.push(g);
            }
        }
        out
    }

    /// Mean signed error (frames, > 0 = ahead) over a performance that plays `refr` at `speed`
    /// reference frames per performance frame, after the first `skip` frames; and the
    /// aligner afterwards.
    fn follow_at(
        refr: &[FeatureFrame],
        speed: f64,
        cfg: SoftOnlineConfig,
        skip: usize,
    ) -> (f64, SoftOnline) {
        let mut al = SoftOnline::new(refr.to_vec().into(), cfg);
        let (mut sum, mut n) = (0.0, 0usize);
        let mut i = 0usize;
        loop {
            let truth = i as f64 * speed;
            let j = truth.round() as usize;
            if j >= refr.len() {
                break;
            }
            let s = al.step(&refr[j]);
            if i >= skip {
                sum += s.ref_frame - truth;
                n += 1;
            }
            i += 1;
        }
        (sum / n.max(1) as f64, al)
    }

    /// Near the reference tempo the tilt is exactly 0: the same positions, bit for bit, as
    /// without it.
    #[test]
    fn tempo_tilt_is_zero_near_the_reference_tempo() {
        let refr = block_frames(60, 20, 21);
        let on = SoftOnlineConfig::default();
        let off = SoftOnlineConfig {
            tempo_tilt: 0.0,
            ..on
        };
        let mut a = SoftOnline::new(refr.clone().into(), on);
        let mut b = SoftOnline::new(refr.clone().into(), off);
        for i in 0..900 {
            let f = &refr[((i as f64 * 1.2) as usize).min(refr.len() - 1)];
            assert_eq!(
                a.step(f).ref_frame.to_bits(),
                b.step(f).ref_frame.to_bits(),
                "{i}"
            );
        }
    }

    /// The tilt's sign follows the tempo: forward for a fast performance, backward for a slow
    /// one, none before `tempo_min_frames`.
    #[test]
    fn tempo_tilt_follows_the_tempo() {
        let refr = block_frames(120, 20, 22);
        let cfg = SoftOnlineConfig::default();
        let fresh = SoftOnline::new(refr.clone().into(), cfg);
        assert_eq!(fresh.tempo_tilt(), 0.0);
        let (_, fast) = follow_at(&refr[..1200], 1.8, cfg, 0);
        assert!(fast.tempo_tilt() > 0.0, "{}", fast.tempo_tilt());
        let (_, slow) = follow_at(&refr[..400], 0.45, cfg, 0);
        assert!(slow.tempo_tilt() < 0.0, "{}", slow.tempo_tilt());
    }

    /// Played 1.8x faster than the reference, the tilt moves the expected position forwards
    /// (its direction; its size was measured on real features, see the config's defaults:
    /// on these synthetic passages the untilted weights lag little and the tilt overshoots).
    #[test]
    fn tempo_tilt_moves_a_fast_performance_forwards() {
        let refr = block_frames(150, 30, 23);
        let on = SoftOnlineConfig::default();
        let off = SoftOnlineConfig {
            tempo_tilt: 0.0,
            ..on
        };
        let (with, _) = follow_at(&refr, 1.8, on, 300);
        let (without, _) = follow_at(&refr, 1.8, off, 300);
        assert!(
            with > without + 1.0,
            "mean signed error {with:.2} frames with the tilt, {without:.2} without"
        );
    }

    #[test]
    fn reset_starts_at_the_requested_frame() {
        let refr = random_frames(400, 5);
        let mut al = SoftOnline::new(refr.clone().into(), SoftOnlineConfig::default());
        for f in &refr[..50] {
            al.step(f);
        }
        al.reset_to(250);
        assert_eq!(al.frames_seen(), 0);
        let mut last = AlignStep::default();
        for f in &refr[250..300] {
            last = al.step(f);
        }
        assert!((last.ref_frame - 299.0).abs() <= 2.0, "{}", last.ref_frame);
        assert_eq!(al.name(), "soft");
    }

    /// Adopting an aligner's state at ratio 1 continues exactly where it was: the next 100
    /// steps equal the original's bit for bit (probability and log state, tilt on).
    #[test]
    fn adopting_at_ratio_one_continues_bit_for_bit() {
        let refr: Arc<[FeatureFrame]> = random_frames(400, 21).into();
        let perf = random_frames(220, 22);
        for gamma in [0.3, 0.02] {
            let cfg = SoftOnlineConfig {
                gamma,
                window_frames: 120,
                tempo_min_frames: 20,
                tempo_history_frames: 40,
                ..SoftOnlineConfig::default()
            };
            let mut a = SoftOnline::new(refr.clone(), cfg);
            for f in &perf[..120] {
                a.step(f);
            }
            let mut b = SoftOnline::new(refr.clone(), cfg);
            b.adopt(&a, 1.0);
            for (i, f) in perf.iter().enumerate().skip(120) {
                let (sa, sb) = (a.step(f), b.step(f));
                assert_eq!(
                    sa.ref_frame.to_bits(),
                    sb.ref_frame.to_bits(),
                    "γ {gamma} frame {i}"
                );
                assert_eq!(
                    sa.confidence.to_bits(),
                    sb.confidence.to_bits(),
                    "γ {gamma} frame {i}"
                );
                assert_eq!(
                    sa.spread_frames.to_bits(),
                    sb.spread_frames.to_bits(),
                    "γ {gamma} frame {i}"
                );
                assert_eq!(sa.cost.to_bits(), sb.cost.to_bits(), "γ {gamma} frame {i}");
            }
        }
    }

    #[test]
    fn window_costs_equal_frame_cost_bit_for_bit() {
        let refr: Arc<[FeatureFrame]> = random_frames(203, 5).into();
        let perf = random_frames(2, 6);
        let mut al = SoftOnline::new(refr.clone(), SoftOnlineConfig::default());
        for (lo, len) in [(0, 203), (7, 100), (195, 8), (190, 13), (0, 3)] {
            al.window_costs(&perf[1], lo, len);
            for k in 0..len {
                let want = f64::from(frame_cost(&perf[1], &refr[lo + k], al.cfg.weights));
                assert_eq!(al.cost[k].to_bits(), want.to_bits(), "lo {lo} k {k}");
            }
        }
    }

    /// The lane-parallel minimum and maximum against the plain first-minimum scan, ties
    /// included.
    #[test]
    fn first_minimum_equals_the_serial_scan() {
        let mut rng = crate::test_util::Rng::new(5);
        for len in [0usize, 1, 3, 4, 5, 8, 13, 64, 501] {
            for round in 0..20 {
                // Few distinct values, so ties are common; some infinities.
                let v: Vec<f64> = (0..len)
                    .map(|_| {
                        let x = (rng.next_f32() * 6.0).floor() as f64;
                        if x >= 5.0 && round % 2 == 0 {
                            f64::INFINITY
                        } else {
                            x
                        }
                    })
                    .collect();
                let (mut b, mut k) = (f64::INFINITY, 0usize);
                for (i, &x) in v.iter().enumerate() {
                    if x < b {
                        b = x;
                        k = i;
                    }
                }
                assert_eq!(first_minimum(&v), (b, k), "{v:?}");
                // The maximum of the negated values, by the same scan.
                let neg: Vec<f64> = v.iter().map(|&x| -x).collect();
                let want = if len == 0 {
                    (f64::NEG_INFINITY, 0)
                } else {
                    (-b, k)
                };
                assert_eq!(first_maximum(&neg), want, "{neg:?}");
            }
        }
    }

    #[test]
    fn bad_gamma_and_empty_reference_do_not_panic() {
        let refr = random_frames(30, 6);
        let mut al = SoftOnline::new(
            refr.clone().into(),
            SoftOnlineConfig {
                gamma: f64::NAN,
                ..SoftOnlineConfig::default()
            },
        );
        let s = al.step(&refr[0]);
        assert!(s.ref_frame.is_finite());
        let empty: Arc<[FeatureFrame]> = Vec::new().into();
        let mut al = SoftOnline::new(empty, SoftOnlineConfig::default());
        assert_eq!(al.step(&refr[0]), AlignStep::default());
    }

    /// The recursion with a step penalty and a set of start cells, over the full matrix (std
    /// exp/ln): `R(i,j) = softmin(R(i-1,j-1) + w·d, R(i-1,j) + d + p, R(i,j-1) + d + p)`,
    /// and `R(0,j) = d` for the start cells `j` in `starts` (then the horizontal moves).
    fn penalised_forward(
        c: &Matrix,
        gamma: f64,
        w: f64,
        pen: f64,
        starts: std::ops::RangeInclusive<usize>,
    ) -> Vec<Vec<f64>> {
        let (n, m) = (c.rows(), c.cols());
        let mut r = vec![vec![f64::INFINITY; m]; n];
        for i in 0..n {
            for j in 0..m {
                let d = c.get(i, j);
                let mut cands = vec![];
                if i == 0 && starts.contains(&j) {
                    cands.push(d);
                }
                if i > 0 && j > 0 {
                    cands.push(r[i - 1][j - 1] + w * d);
                }
                if i > 0 {
                    cands.push(r[i - 1][j] + d + pen);
                }
                if j > 0 {
                    cands.push(r[i][j - 1] + d + pen);
                }
                r[i][j] = reference::softmin(&cands, gamma);
            }
        }
        r
    }

    /// Both domains (γ below and above [`PROBABILITY_DOMAIN_MIN_GAMMA`]) and both diagonal
    /// weights against the penalised oracle.
    #[test]
    fn step_penalty_matches_the_penalised_oracle() {
        let refr = random_frames(70, 31);
        let perf = random_frames(30, 32);
        let c = cost_matrix(&perf, &refr);
        for w in [1.0, 2.0] {
            for gamma in [0.002, 0.01, 0.05, 0.3] {
                for pen in [0.1, 0.7] {
                    let mut al = SoftOnline::new(
                        refr.clone().into(),
                        SoftOnlineConfig {
                            gamma,
                            window_frames: 1000,
                            diagonal_weight: w,
                            step_penalty: pen,
                            ..SoftOnlineConfig::default()
                        },
                    );
                    let r = penalised_forward(&c, gamma, w, pen, 0..=0);
                    for (i, f) in perf.iter().enumerate() {
                        al.step(f);
                        let (_, col) = al.column();
                        let what = format!("w={w} γ={gamma} p={pen} {i}");
                        assert_column_matches(&col, &r[i], gamma, &what);
                    }
                }
            }
        }
    }

    /// A performance that follows a reference whose cells all cost alike (every frame the same
    /// harmony) drifts ahead under the plain recursion, which sums ever more paths into the
    /// later cells of a column; a step penalty keeps it much nearer the diagonal.
    #[test]
    fn step_penalty_keeps_a_flat_passage_on_the_diagonal() {
        let mut f = FeatureFrame::default();
        f.chroma[0] = 1.0;
        let refr: Vec<FeatureFrame> = vec![f; 300];
        // The performance plays the same harmony with another voicing: every cell costs alike.
        let mut p = f;
        p.chroma[7] = 0.5;
        crate::features::chroma::normalize(&mut p.chroma);
        let drift = |pen: f64| {
            let mut al = SoftOnline::new(
                refr.clone().into(),
                SoftOnlineConfig {
                    diagonal_weight: 1.0,
                    step_penalty: pen,
                    length_correction: 0.0,
                    tempo_tilt: 0.0,
                    ..SoftOnlineConfig::default()
                },
            );
            let mut last = AlignStep::default();
            for _ in 0..100 {
                last = al.step(&p);
            }
            last.ref_frame - 99.0
        };
        // Measured: 172 frames ahead after 100 without the penalty, 23 with 0.2.
        let (plain, penalised) = (drift(0.0), drift(0.2));
        assert!(plain > 100.0, "plain {plain}");
        assert!(
            penalised.abs() < plain / 4.0,
            "plain {plain} penalised {penalised}"
        );
    }

    /// A reference that begins with 20 silent frames (no onset) may be entered anywhere in
    /// them: the columns equal the oracle with those start cells, and a performance that
    /// starts with the music is placed on it at once, not 20 frames behind.
    #[test]
    fn a_fresh_aligner_may_start_anywhere_before_the_first_note() {
        let silent = FeatureFrame {
            chroma: crate::features::SILENT_CHROMA,
            ..FeatureFrame::default()
        };
        let mut refr = vec![silent; 20];
        refr.extend(random_frames(80, 41));
        let perf: Vec<FeatureFrame> = refr[20..50].to_vec();
        let c = cost_matrix(&perf, &refr);
        for gamma in [0.01, 0.3] {
            let cfg = SoftOnlineConfig {
                gamma,
                window_frames: 1000,
                diagonal_weight: 1.0,
                ..SoftOnlineConfig::default()
            };
            let mut al = SoftOnline::new(refr.clone().into(), cfg);
            let r = penalised_forward(&c, gamma, 1.0, 0.0, 0..=20);
            let mut last = AlignStep::default();
            for (i, f) in perf.iter().enumerate() {
                last = al.step(f);
                let (_, col) = al.column();
                assert_column_matches(&col, &r[i], gamma, &format!("γ={gamma} {i}"));
            }
            assert!(
                (last.ref_frame - 49.0).abs() < 2.0,
                "γ={gamma}: {}",
                last.ref_frame
            );
            // A reset aligner starts where it is told, and only there.
            al.reset_to(20);
            al.step(&perf[0]);
            let (lo, col) = al.column();
            let start = 20 - lo;
            assert!(col[..start].iter().all(|&v| v >= BIG * 0.5), "γ={gamma}");
        }
    }
}
