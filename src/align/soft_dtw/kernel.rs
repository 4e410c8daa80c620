//! The fast soft-DTW recursions: anti-diagonal sweeps with a branch-free, vectorisable soft-min.
//!
//! Cells on one anti-diagonal `d = i + j` of the accumulated-cost matrix `R` depend only on
//! diagonals `d - 1` and `d - 2`, so a whole diagonal is computed by one loop without a
//! loop-carried dependency; the compiler vectorises it (AVX2 + FMA when the CPU has them,
//! selected at run time). Each diagonal is kept in a buffer indexed by the row `i`, so the
//! three predecessors of cell `i` sit at `p2[i - 1]` (diagonal step), `p1[i - 1]` (from above)
//! and `p1[i]` (from the left): contiguous loads. The matrix is swept in stripes of
//! [`STRIPE_ROWS`] rows, each passing its last row on to the next stripe, so diagonals are
//! short (cache-resident) and long enough (64 cells) to keep the vector units busy.
//!
//! The value-and-gradient sweep also stores, per cell, the weights of its diagonal and upper
//! predecessors (the left one has the rest); the backward sweep walks the stripes bottom up
//! and the diagonals right to left, forming `E` from those weights with no exponential.
//!
//! Soft-min of three values (Cuturi & Blondel 2017, eq. 1) as `m - γ ln(1 + e₁ + e₂)` with `m`
//! the minimum and `e₁, e₂ = exp(-(x - m)/γ)` of the other two: two exponentials and one
//! logarithm per cell, each argument bounded (`x - m ≤ 0`, `1 ≤ 1 + e₁ + e₂ ≤ 3`), which is
//! what lets the polynomial [`exp_nonpos`] and [`ln_1_3`] be short and exact to about 1e-15.
//!
//! Unreachable cells hold the finite sentinel [`BIG`] rather than `+∞`, so no `∞ - ∞` can
//! produce a NaN inside the vector loop.

/// Stand-in for `+∞` in the recursions: far above any reachable accumulated cost (costs are at
/// most about 1e6 per cell times at most 2^40 cells) and still far from overflow when divided
/// by a small γ.
pub(crate) const BIG: f64 = 1e280;

/// Which cells of the N x M matrix are inside the band: for each row `i` in `1..=n`
/// (1-based, index 0 unused), the admitted 1-based columns `jlo[i]..=jhi[i]`.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub n: usize,
    pub m: usize,
    pub jlo: Vec<usize>,
    pub jhi: Vec<usize>,
}

impl Geometry {
    /// The same band on the transposed matrix (the band is symmetric by construction).
    pub fn transposed(&self) -> Geometry {
        // Row j of the transpose admits the rows i whose column range holds j.
        let (n, m) = (self.m, self.n);
        let mut jlo = vec![0usize; n + 1];
        let mut jhi = vec![0usize; n + 1];
        let mut lo_ptr = 1usize;
        let mut hi_ptr = 0usize;
        for j in 1..=n {
            while lo_ptr <= self.n && self.jhi[lo_ptr] < j {
                lo_ptr += 1;
            }
            while hi_ptr < self.n && self.jlo[hi_ptr + 1] <= j {
                hi_ptr += 1;
            }
            jlo[j] = lo_ptr;
            jhi[j] = hi_ptr;
        }
        Geometry { n, m, jlo, jhi }
    }
}

/// Iterates the row interval of each anti-diagonal `d = i + j` (1-based), `d = 2..=n + m`.
/// The interval is `lo..=hi`; it is empty (`lo == hi + 1`) on diagonals a narrow band skips.
struct Diagonals<'a> {
    g: &'a Geometry,
    lo: usize,
    hi: usize,
}

impl<'a> Diagonals<'a> {
    fn new(g: &'a Geometry) -> Self {
        Self { g, lo: 1, hi: 0 }
    }

    /// Row interval of diagonal `d`; call with increasing `d`.
    #[inline]
    fn advance(&mut self, d: usize) -> (usize, usize) {
        let g = self.g;
        while self.lo <= g.n && self.lo + g.jhi[self.lo] < d {
            self.lo += 1;
        }
        while self.hi < g.n && self.hi + 1 + g.jlo[self.hi + 1] <= d {
            self.hi += 1;
        }
        (self.lo, self.hi)
    }
}

#[inline(always)]
pub(crate) fn fmadd<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `exp(x)` for `x ≤ 0` (larger `x` is clamped to 0), relative error below 5e-16; returns
/// `exp(-708)` ≈ 3e-308 for anything below -708, for `-∞` and for NaN.
#[inline(always)]
pub(crate) fn exp_nonpos<const F: bool>(x: f64) -> f64 {
    // Round-to-nearest by the 1.5·2^52 trick: integer conversions do not vectorise on AVX2.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // fdlibm's split of ln 2: n · LN2_HI is exact for |n| < 2^11.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Compare-and-select, not clamp() or f64::max/min: NaN fails `x > -708` and becomes -708
    // (so a NaN input gives ~0 instead of NaN), and each select is one vector instruction where
    // max/min's NaN handling costs three.
    let x = if x > -708.0 { x } else { -708.0 };
    let x = if x < 0.0 { x } else { 0.0 };
    let y = fmadd::<F>(x, LOG2E, MAGIC);
    let n = y - MAGIC;
    let r = fmadd::<F>(n, -LN2_HI, x);
    let r = fmadd::<F>(n, -LN2_LO, r);
    // Taylor series to degree 12 on |r| ≤ ln2/2: truncation below 2.4e-16 relative.
    // Estrin's scheme: a dependency chain of 5 operations instead of Horner's 12, which is
    // what bounds the sweeps (their vectors are independent, the chain inside each is not).
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = fmadd::<F>(r, 1.0, 1.0);
    let q1 = fmadd::<F>(r, 1.0 / 6.0, 0.5);
    let q2 = fmadd::<F>(r, 1.0 / 120.0, 1.0 / 24.0);
    let q3 = fmadd::<F>(r, 1.0 / 5_040.0, 1.0 / 720.0);
    let q4 = fmadd::<F>(r, 1.0 / 362_880.0, 1.0 / 40_320.0);
    let q5 = fmadd::<F>(r, 1.0 / 39_916_800.0, 1.0 / 3_628_800.0);
    let s0 = fmadd::<F>(q1, r2, q0);
    let s1 = fmadd::<F>(q3, r2, q2);
    let s2 = fmadd::<F>(q5, r2, q4);
    let t0 = fmadd::<F>(s1, r4, s0);
    let t1 = fmadd::<F>(1.0 / 479_001_600.0, r4, s2);
    let p = fmadd::<F>(t1, r8, t0);
    let k = (y.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let scale = f64::from_bits((k.wrapping_add(1023) as u64) << 52);
    p * scale
}

/// `exp(x)` for `x ≤ 0`, exactly 0 below -708 (where [`exp_nonpos`] saturates).
#[inline(always)]
pub(crate) fn exp_nonpos_or_zero<const F: bool>(x: f64) -> f64 {
    let e = exp_nonpos::<F>(x);
    if x < -708.0 {
        0.0
    } else {
        e
    }
}

/// `ln(s)` for any normal `s > 0`, relative error below 1e-15 (not for 0, subnormals, ∞, NaN).
#[inline(always)]
pub(crate) fn ln_pos<const F: bool>(s: f64) -> f64 {
    // s = 2^e · mant with mant in [1, 2); integer-to-float through the 2^52 trick.
    const MAGIC: f64 = 4_503_599_627_370_496.0; // 2^52
    let bits = s.to_bits();
    let e_biased = bits >> 52;
    let mant = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    let e = f64::from_bits(e_biased | MAGIC.to_bits()) - MAGIC - 1023.0;
    ln_1_3::<F>(mant) + e * std::f64::consts::LN_2
}

/// `ln(s)` for `s` in `[1, 3]`, relative error below 1e-15 (outside that range: wrong).
#[inline(always)]
pub(crate) fn ln_1_3<const F: bool>(s: f64) -> f64 {
    let big = s > 1.5;
    let mant = if big { 0.5 * s } else { s };
    let k = if big { std::f64::consts::LN_2 } else { 0.0 };
    // ln(mant) = 2 atanh(z), z = (mant - 1)/(mant + 1) in [-1/7, 1/5]: z² ≤ 0.04, 13 terms.
    let z = (mant - 1.0) / (mant + 1.0);
    let z2 = z * z;
    // Σ_{k=0..12} z2^k / (2k + 1) by Estrin's scheme (see `exp_nonpos`).
    let z4 = z2 * z2;
    let z8 = z4 * z4;
    let q0 = fmadd::<F>(z2, 1.0 / 3.0, 1.0);
    let q1 = fmadd::<F>(z2, 1.0 / 7.0, 1.0 / 5.0);
    let q2 = fmadd::<F>(z2, 1.0 / 11.0, 1.0 / 9.0);
    let q3 = fmadd::<F>(z2, 1.0 / 15.0, 1.0 / 13.0);
    let q4 = fmadd::<F>(z2, 1.0 / 19.0, 1.0 / 17.0);
    let q5 = fmadd::<F>(z2, 1.0 / 23.0, 1.0 / 21.0);
    let s0 = fmadd::<F>(q1, z4, q0);
    let s1 = fmadd::<F>(q3, z4, q2);
    let s2 = fmadd::<F>(q5, z4, q4);
    let t0 = fmadd::<F>(s1, z8, s0);
    let t1 = fmadd::<F>(1.0 / 25.0, z8, s2);
    let p = fmadd::<F>(t1, z8 * z8, t0);
    fmadd::<F>(2.0 * z, p, k)
}

/// Soft-min of three values with smoothing `gamma` (`inv_gamma` = 1/γ); hard min when `HARD`.
#[inline(always)]
pub(crate) fn softmin3<const F: bool, const HARD: bool>(
    a: f64,
    b: f64,
    c: f64,
    gamma: f64,
    inv_gamma: f64,
) -> f64 {
    let lo = a.min(b);
    let hi = a.max(b);
    let m = lo.min(c);
    if HARD {
        return m;
    }
    let t = lo.max(c);
    let mid = t.min(hi);
    let mx = t.max(hi);
    let e1 = exp_nonpos::<F>((m - mid) * inv_gamma);
    let e2 = exp_nonpos::<F>((m - mx) * inv_gamma);
    m - gamma * ln_1_3::<F>(1.0 + e1 + e2)
}

/// Rows per stripe: the sweeps run along the anti-diagonals of a stripe of `STRIPE_ROWS` rows,
/// so a diagonal holds up to 64 independent cells (16 AVX2 vectors, enough to hide the latency
/// of the soft-min) while the live diagonals stay in L1.
pub(crate) const STRIPE_ROWS: usize = 64;

/// `out[k] = c[k] + softmin(diag[k], up[k], left[k])`.
///
/// Stage by stage over the whole diagonal (sort, exponentials, logarithm): each stage is a
/// short loop of independent vectors, so the out-of-order core overlaps the long polynomial
/// chains of several vectors instead of waiting on one.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn diag_step<const F: bool, const HARD: bool>(
    c: &[f64],
    diag: &[f64],
    up: &[f64],
    left: &[f64],
    out: &mut [f64],
    gamma: f64,
    inv_gamma: f64,
    tmp: &mut StageTmp,
) {
    let w = out.len();
    debug_assert!(w <= STRIPE_ROWS);
    let (c, diag, up, left) = (&c[..w], &diag[..w], &up[..w], &left[..w]);
    if HARD {
        for k in 0..w {
            out[k] = c[k] + softmin3::<F, true>(diag[k], up[k], left[k], gamma, inv_gamma);
        }
        return;
    }
    let (mn, x1, x2) = (&mut tmp.mn[..w], &mut tmp.x1[..w], &mut tmp.x2[..w]);
    for k in 0..w {
        let (a, b, cc) = (diag[k], up[k], left[k]);
        let lo = a.min(b);
        let hi = a.max(b);
        let m = lo.min(cc);
        let t = lo.max(cc);
        mn[k] = m;
        x1[k] = (m - t.min(hi)) * inv_gamma;
        x2[k] = (m - t.max(hi)) * inv_gamma;
    }
    for k in 0..w {
        x1[k] = exp_nonpos::<F>(x1[k]);
        x2[k] = exp_nonpos::<F>(x2[k]);
    }
    for k in 0..w {
        out[k] = c[k] + (mn[k] - gamma * ln_1_3::<F>(1.0 + x1[k] + x2[k]));
    }
}

/// As [`diag_step`], also writing the weights of the diagonal and up predecessors
/// `(∂/∂diag, ∂/∂up)` of the soft-min, the Gibbs probabilities of those predecessors (the
/// left one has the rest). Storing them makes the backward recursion exponential-free.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn diag_step_weights<const F: bool>(
    c: &[f64],
    diag: &[f64],
    up: &[f64],
    left: &[f64],
    out: &mut [f64],
    wd: &mut [f64],
    wu: &mut [f64],
    gamma: f64,
    inv_gamma: f64,
    tmp: &mut StageTmp,
) {
    let w = out.len();
    debug_assert!(w <= STRIPE_ROWS);
    let (c, diag, up, left) = (&c[..w], &diag[..w], &up[..w], &left[..w]);
    let (wd, wu) = (&mut wd[..w], &mut wu[..w]);
    let (mn, md, x1, x2) = (
        &mut tmp.mn[..w],
        &mut tmp.md[..w],
        &mut tmp.x1[..w],
        &mut tmp.x2[..w],
    );
    for k in 0..w {
        let (a, b, cc) = (diag[k], up[k], left[k]);
        let lo = a.min(b);
        let hi = a.max(b);
        let m = lo.min(cc);
        let t = lo.max(cc);
        let mid = t.min(hi);
        mn[k] = m;
        md[k] = mid;
        x1[k] = (m - mid) * inv_gamma;
        x2[k] = (m - t.max(hi)) * inv_gamma;
    }
    for k in 0..w {
        // Exactly 0 for unreachable (BIG) neighbours, so cells outside the band get weight 0.
        x1[k] = exp_nonpos_or_zero::<F>(x1[k]);
        x2[k] = exp_nonpos_or_zero::<F>(x2[k]);
    }
    for k in 0..w {
        let (e1, e2, m, mid) = (x1[k], x2[k], mn[k], md[k]);
        let s = 1.0 + e1 + e2;
        let inv_s = 1.0 / s;
        let (a, b) = (diag[k], up[k]);
        // Ties give equal values the same exponential, so matching by value is exact.
        let ea = if a == m {
            1.0
        } else if a == mid {
            e1
        } else {
            e2
        };
        let eb = if b == m {
            1.0
        } else if b == mid {
            e1
        } else {
            e2
        };
        out[k] = c[k] + (m - gamma * ln_1_3::<F>(s));
        wd[k] = ea * inv_s;
        wu[k] = eb * inv_s;
    }
}

/// Where a sweep reads its costs along anti-diagonals. A trait (not a closure) so the
/// `#[inline(always)]` implementations are compiled into the AVX2 sweep.
pub(crate) trait DiagCost {
    /// Costs of the cells `(i + k, d - i - k)` (1-based) into `out`.
    fn fill(&mut self, d: usize, i: usize, out: &mut [f64]);
}

/// Where the backward sweep puts the expected alignment, along anti-diagonals.
pub(crate) trait DiagSink {
    /// `E` of the cells `(i + k, d - i - k)` (1-based).
    fn put(&mut self, d: usize, i: usize, e: &[f64]);
    /// Every cell of rows `i0..=i1` has been put.
    fn stripe_done(&mut self, _i0: usize, _i1: usize) {}
}

impl<T: DiagSink> DiagSink for &mut T {
    #[inline(always)]
    fn put(&mut self, d: usize, i: usize, e: &[f64]) {
        (**self).put(d, i, e)
    }
    fn stripe_done(&mut self, i0: usize, i1: usize) {
        (**self).stripe_done(i0, i1)
    }
}

/// The row `R[i0 - 1, 0..=m]` a stripe reads and replaces by `R[i1, 0..=m]` as it goes.
pub(crate) trait TopRow {
    fn get(&self, j: usize) -> f64;
    fn set(&mut self, j: usize, v: f64);
}

impl TopRow for &mut [f64] {
    #[inline(always)]
    fn get(&self, j: usize) -> f64 {
        self[j]
    }
    #[inline(always)]
    fn set(&mut self, j: usize, v: f64) {
        self[j] = v;
    }
}

/// A row shared by the stripes of a pipelined sweep: relaxed atomic accesses (plain loads and
/// stores on x86), ordered by the stripes' progress counters.
impl TopRow for &[AtomicU64] {
    #[inline(always)]
    fn get(&self, j: usize) -> f64 {
        f64::from_bits(self[j].load(Ordering::Relaxed))
    }
    #[inline(always)]
    fn set(&mut self, j: usize, v: f64) {
        self[j].store(v.to_bits(), Ordering::Relaxed);
    }
}

/// How a stripe waits for the stripe above and tells the one below how far it got.
pub(crate) trait StripeSync {
    /// Blocks until the stripe above has finished diagonal `d`.
    fn wait_for(&self, d: usize);
    /// This stripe has finished diagonal `d`.
    fn publish(&self, d: usize);
}

/// One thread: the stripe above is always complete.
pub(crate) struct Sequential;

impl StripeSync for Sequential {
    #[inline(always)]
    fn wait_for(&self, _d: usize) {}
    #[inline(always)]
    fn publish(&self, _d: usize) {}
}

/// Progress counters of two consecutive stripes in a pipelined sweep.
pub(crate) struct Pipelined<'a> {
    pub above: &'a AtomicUsize,
    pub mine: &'a AtomicUsize,
}

impl StripeSync for Pipelined<'_> {
    #[inline(always)]
    fn wait_for(&self, d: usize) {
        let mut spins = 0u32;
        while self.above.load(Ordering::Acquire) < d {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                // A diagonal takes about a microsecond: longer than that without progress, the
                // other thread has most likely been descheduled (busy machine), so give the
                // core away rather than burn it.
                std::thread::yield_now();
            }
        }
    }
    #[inline(always)]
    fn publish(&self, d: usize) {
        self.mine.store(d, Ordering::Release);
    }
}

/// Per-stage values of one diagonal's soft-mins (allocated once per sweep, not per diagonal).
pub(crate) struct StageTmp {
    mn: Vec<f64>,
    md: Vec<f64>,
    x1: Vec<f64>,
    x2: Vec<f64>,
}

impl StageTmp {
    pub fn new() -> Self {
        Self {
            mn: vec![0.0; STRIPE_ROWS],
            md: vec![0.0; STRIPE_ROWS],
            x1: vec![0.0; STRIPE_ROWS],
            x2: vec![0.0; STRIPE_ROWS],
        }
    }
}

/// Scratch of the stripe sweep (allocated once per call, `O(STRIPE_ROWS)`).
pub(crate) struct StripeScratch {
    p2: Vec<f64>,
    p1: Vec<f64>,
    cur: Vec<f64>,
    cbuf: Vec<f64>,
    tmp: StageTmp,
}

impl StripeScratch {
    pub fn new() -> Self {
        let len = STRIPE_ROWS + 2;
        Self {
            p2: vec![BIG; len],
            p1: vec![BIG; len],
            cur: vec![BIG; len],
            cbuf: vec![0.0; len],
            tmp: StageTmp::new(),
        }
    }
}

/// The first row boundary `R[0, 0..=m]`: 0 then `BIG`.
pub(crate) fn initial_top(m: usize) -> Vec<f64> {
    let mut top = vec![BIG; m + 1];
    top[0] = 0.0;
    top
}

/// First and last anti-diagonal (`d = i + j`, 1-based) holding a cell of rows `i0..=i1`.
pub(crate) fn stripe_diagonals(g: &Geometry, i0: usize, i1: usize) -> (usize, usize) {
    (i0 + g.jlo[i0], i1 + g.jhi[i1])
}

/// Length of the weight store of rows `i0..=i1`: for every diagonal of the stripe, the
/// diagonal weights of its `b` rows then their up weights.
pub(crate) fn stripe_store_len(g: &Geometry, i0: usize, i1: usize) -> usize {
    let (dlo, dhi) = stripe_diagonals(g, i0, i1);
    (dhi + 1 - dlo) * 2 * (i1 + 1 - i0)
}

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Forward recursion over rows `i0..=i1` (1-based, at most [`STRIPE_ROWS`] of them).
/// `cost(d, i, out)` writes the costs of the cells `(i + k, d - i - k)` (1-based) into `out`;
/// `top` holds `R[i0 - 1, 0..=m]` on entry (`BIG` outside the band) and `R[i1, 0..=m]` on
/// exit. With `STORE`, the weights of every cell go to `store`
/// ([`stripe_store_len`] long; lane `i - i0` of diagonal `d` at `(d - dlo) · 2b`, diagonal
/// weight, then `b` further on, the up weight).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_stripe_impl<const F: bool, const HARD: bool, const STORE: bool, C, T, S>(
    cost: &mut C,
    g: &Geometry,
    i0: usize,
    i1: usize,
    gamma: f64,
    mut top: T,
    sync: &S,
    sc: &mut StripeScratch,
    store: &mut [f64],
) where
    C: DiagCost,
    T: TopRow,
    S: StripeSync,
{
    let m = g.m;
    let b = i1 + 1 - i0;
    debug_assert!(b <= STRIPE_ROWS);
    let inv_gamma = 1.0 / gamma;
    let (dlo, _) = stripe_diagonals(g, i0, i1);
    let StripeScratch {
        p2,
        p1,
        cur,
        cbuf,
        tmp,
    } = sc;
    let top_at = |top: &T, d: usize| -> f64 {
        // R[i0 - 1, d - (i0 - 1)]: position 0 of diagonal d, which the stripe above wrote
        // at its diagonal d.
        let j = d + 1 - i0;
        if j <= m {
            sync.wait_for(d);
            top.get(j)
        } else {
            BIG
        }
    };
    p2.fill(BIG);
    p1.fill(BIG);
    p2[0] = if i0 == 1 { 0.0 } else { BIG }; // R[i0 - 1, 0]
    p1[0] = top_at(&top, i0);
    let mut diags = Diagonals::new(g);
    for d in i0 + 1..=i1 + m {
        let (lo, hi) = diags.advance(d);
        let (llo, lhi) = (lo.max(i0), hi.min(i1));
        // Stripe diagonals are short: clearing the whole buffer is cheap and leaves every
        // position outside the interval at BIG.
        cur.fill(BIG);
        cur[0] = top_at(&top, d);
        if llo <= lhi {
            let w = lhi + 1 - llo;
            let r = llo + 1 - i0;
            cost.fill(d, llo, &mut cbuf[..w]);
            if STORE {
                let base = (d - dlo) * 2 * b + (llo - i0);
                let (wd, wu) = store[base..base + b + w].split_at_mut(b);
                diag_step_weights::<F>(
                    &cbuf[..w],
                    &p2[r - 1..r - 1 + w],
                    &p1[r - 1..r - 1 + w],
                    &p1[r..r + w],
                    &mut cur[r..r + w],
                    wd,
                    &mut wu[..w],
                    gamma,
                    inv_gamma,
                    tmp,
                );
            } else {
                diag_step::<F, HARD>(
                    &cbuf[..w],
                    &p2[r - 1..r - 1 + w],
                    &p1[r - 1..r - 1 + w],
                    &p1[r..r + w],
                    &mut cur[r..r + w],
                    gamma,
                    inv_gamma,
                    tmp,
                );
            }
        }
        // Row i1 is done at column d - i1 (BIG outside the band); that entry of `top` is no
        // longer read here (reads are at d' + 1 - i0 > d - i1 for every later d').
        if d > i1 {
            let j = d - i1;
            let v = if llo <= lhi && lhi == i1 { cur[b] } else { BIG };
            top.set(j, v);
        }
        sync.publish(d);
        std::mem::swap(p2, p1);
        std::mem::swap(p1, cur);
    }
    sync.publish(usize::MAX);
}

/// A row of the backward sweep's stripe boundary, by 1-based column `0..=m + 1`: `E` and the
/// diagonal and up weights of the row just below the stripe being swept.
struct BoundaryRow {
    e: Vec<f64>,
    wd: Vec<f64>,
    wu: Vec<f64>,
}

impl BoundaryRow {
    fn zeros(m: usize) -> Self {
        Self {
            e: vec![0.0; m + 2],
            wd: vec![0.0; m + 2],
            wu: vec![0.0; m + 2],
        }
    }
}

/// Scratch of the backward sweep: rolling diagonals and the stripe boundary rows.
pub(crate) struct BackScratch {
    e1: Vec<f64>,
    e2: Vec<f64>,
    ecur: Vec<f64>,
    below: BoundaryRow,
    above: BoundaryRow,
    intervals: Vec<(usize, usize)>,
}

impl BackScratch {
    /// Scratch for an `n x m` problem, to be swept from its last stripe up.
    pub fn new(m: usize) -> Self {
        let len = STRIPE_ROWS + 2;
        let mut below = BoundaryRow::zeros(m);
        // A virtual successor (n + 1, m + 1) with E = 1 whose whole weight is on (n, m).
        below.e[m + 1] = 1.0;
        below.wd[m + 1] = 1.0;
        Self {
            e1: vec![0.0; len],
            e2: vec![0.0; len],
            ecur: vec![0.0; len],
            below,
            above: BoundaryRow::zeros(m),
            intervals: Vec::new(),
        }
    }
}

/// Backward recursion (Cuturi & Blondel 2017, Algorithm 2) over rows `i0..=i1` from the weights
/// the forward pass stored (`store` as written by [`forward_stripe`] for this stripe):
/// `E[i, j] = E[i+1, j+1] wd(i+1, j+1) + E[i+1, j] wu(i+1, j) + E[i, j+1] wl(i, j+1)`, which is
/// `∂R[n, m]/∂R[i, j]` by the chain rule through the soft-min. Stripes go from the last up, with
/// the same scratch; `out(d, i, e)` receives `E` of the cells `(i + k, d - i - k)`.
#[inline(always)]
fn backward_stripe_impl<const F: bool, O>(
    g: &Geometry,
    i0: usize,
    i1: usize,
    store: &[f64],
    sc: &mut BackScratch,
    out: &mut O,
) where
    O: DiagSink,
{
    let m = g.m;
    let b = i1 + 1 - i0;
    let (dlo, dhi) = stripe_diagonals(g, i0, i1);
    let BackScratch {
        e1,
        e2,
        ecur,
        below,
        above,
        intervals,
    } = sc;
    intervals.clear();
    let mut diags = Diagonals::new(g);
    for d in dlo..=dhi {
        let (lo, hi) = diags.advance(d);
        intervals.push((lo.max(i0), hi.min(i1)));
    }
    above.e.fill(0.0);
    e1.fill(0.0);
    e2.fill(0.0);
    let base = |d: usize| (d - dlo) * 2 * b;
    let zeros = [0.0f64; 2 * STRIPE_ROWS];
    for d in (dlo..=dhi).rev() {
        let (llo, lhi) = intervals[d - dlo];
        ecur.fill(0.0);
        if llo <= lhi {
            // Stored weights of diagonals d + 1 (up and left) and d + 2 (diagonal); past the
            // stripe's last diagonal E is 0 there, so zero weights stand in.
            let w1: &[f64] = if d < dhi {
                &store[base(d + 1)..base(d + 1) + 2 * b]
            } else {
                &zeros[..2 * b]
            };
            let w2: &[f64] = if d + 1 < dhi {
                &store[base(d + 2)..base(d + 2) + b]
            } else {
                &zeros[..b]
            };
            let (wd1, wu1) = w1.split_at(b);
            // Lane q (row i0 + q) is at position q + 1 of the rolling diagonals.
            let (qlo, qhi) = (llo - i0, lhi - i0);
            if qlo + 1 < b {
                // Lanes whose successors (row + 1) are inside the stripe.
                let q1 = qhi.min(b - 2);
                let w = q1 + 1 - qlo;
                let (e2n, e1n, e1s) = (
                    &e2[qlo + 2..qlo + 2 + w],
                    &e1[qlo + 2..qlo + 2 + w],
                    &e1[qlo + 1..qlo + 1 + w],
                );
                let (wd2n, wu1n) = (&w2[qlo + 1..qlo + 1 + w], &wu1[qlo + 1..qlo + 1 + w]);
                let (wd1s, wu1s) = (&wd1[qlo..qlo + w], &wu1[qlo..qlo + w]);
                let o = &mut ecur[qlo + 1..qlo + 1 + w];
                for k in 0..w {
                    let wl = (1.0 - wd1s[k] - wu1s[k]).max(0.0);
                    o[k] = fmadd::<F>(e2n[k], wd2n[k], fmadd::<F>(e1n[k], wu1n[k], e1s[k] * wl));
                }
            }
            if qhi == b - 1 {
                // The stripe's last row: its successors below come from the boundary row.
                let q = b - 1;
                let at = |j: Option<usize>, wv: &[f64]| match j.filter(|&j| j <= m + 1) {
                    Some(j) => (below.e[j], wv[j]),
                    None => (0.0, 0.0),
                };
                let (eb1, wub) = at(d.checked_sub(i1), &below.wu);
                let (eb2, wdb) = at((d + 1).checked_sub(i1), &below.wd);
                let wl = (1.0 - wd1[q] - wu1[q]).max(0.0);
                ecur[b] = fmadd::<F>(eb2, wdb, fmadd::<F>(eb1, wub, e1[b] * wl));
            }
            let (rlo, rhi) = (qlo + 1, qhi + 1);
            out.put(d, llo, &ecur[rlo..=rhi]);
            if llo == i0 {
                let j = d - i0;
                let o = base(d);
                above.e[j] = ecur[1];
                above.wd[j] = store[o];
                above.wu[j] = store[o + b];
            }
        }
        std::mem::swap(e2, e1);
        std::mem::swap(e1, ecur);
    }
    std::mem::swap(below, above);
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn forward_stripe_avx2<const HARD: bool, const STORE: bool, C, T, S>(
    cost: &mut C,
    g: &Geometry,
    i0: usize,
    i1: usize,
    gamma: f64,
    top: T,
    sync: &S,
    sc: &mut StripeScratch,
    store: &mut [f64],
) where
    C: DiagCost,
    T: TopRow,
    S: StripeSync,
{
    forward_stripe_impl::<true, HARD, STORE, C, T, S>(cost, g, i0, i1, gamma, top, sync, sc, store)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_stripe_avx2<O>(
    g: &Geometry,
    i0: usize,
    i1: usize,
    store: &[f64],
    sc: &mut BackScratch,
    out: &mut O,
) where
    O: DiagSink,
{
    backward_stripe_impl::<true, O>(g, i0, i1, store, sc, out)
}

/// Forward recursion over one stripe of rows (see [`forward_stripe_impl`]), best instruction
/// set available. `HARD` = plain DTW (min instead of soft-min); `STORE` = keep the weights
/// for [`backward_stripe`] (not with `HARD`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_stripe<const HARD: bool, const STORE: bool, C, T, S>(
    cost: &mut C,
    g: &Geometry,
    i0: usize,
    i1: usize,
    gamma: f64,
    top: T,
    sync: &S,
    sc: &mut StripeScratch,
    store: &mut [f64],
) where
    C: DiagCost,
    T: TopRow,
    S: StripeSync,
{
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe {
            forward_stripe_avx2::<HARD, STORE, C, T, S>(
                cost, g, i0, i1, gamma, top, sync, sc, store,
            )
        };
    }
    forward_stripe_impl::<false, HARD, STORE, C, T, S>(cost, g, i0, i1, gamma, top, sync, sc, store)
}

/// Backward recursion over one stripe (see [`backward_stripe_impl`]).
pub(crate) fn backward_stripe<O>(
    g: &Geometry,
    i0: usize,
    i1: usize,
    store: &[f64],
    sc: &mut BackScratch,
    out: &mut O,
) where
    O: DiagSink,
{
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { backward_stripe_avx2::<O>(g, i0, i1, store, sc, out) };
    }
    backward_stripe_impl::<false, O>(g, i0, i1, store, sc, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_on_its_domain() {
        let mut worst = 0.0f64;
        for k in 0..=200_000 {
            let x = -708.0 * (k as f64 / 200_000.0).powi(3);
            let want = x.exp();
            for got in [exp_nonpos::<false>(x), exp_nonpos::<true>(x)] {
                worst = worst.max(((got - want) / want).abs());
            }
        }
        assert!(worst < 5e-16, "worst relative error {worst:e}");
        assert!(exp_nonpos::<false>(f64::NAN) < 1e-300);
        assert!(exp_nonpos::<false>(f64::NEG_INFINITY) < 1e-300);
        assert_eq!(exp_nonpos::<false>(3.0), 1.0);
    }

    #[test]
    fn ln_matches_std_on_its_domain() {
        let mut worst = 0.0f64;
        for k in 0..=200_000 {
            let s = 1.0 + 2.0 * k as f64 / 200_000.0;
            let want = s.ln();
            for got in [ln_1_3::<false>(s), ln_1_3::<true>(s)] {
                let err = if want == 0.0 {
                    got.abs()
                } else {
                    ((got - want) / want).abs()
                };
                worst = worst.max(err);
            }
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
    }

    #[test]
    fn general_ln_and_exp_or_zero() {
        let mut worst = 0.0f64;
        let mut s = 1e-300f64;
        while s < 1e300 {
            let want = s.ln();
            let got = ln_pos::<false>(s);
            worst = worst.max((got - want).abs() / want.abs().max(1.0));
            s *= 1.37;
        }
        assert!(worst < 1e-15, "worst error {worst:e}");
        assert_eq!(exp_nonpos_or_zero::<false>(-709.0), 0.0);
        assert_eq!(exp_nonpos_or_zero::<false>(f64::NEG_INFINITY), 0.0);
        assert!((exp_nonpos_or_zero::<false>(-1.0) - (-1.0f64).exp()).abs() < 1e-16);
    }

    #[test]
    fn softmin_matches_log_sum_exp() {
        let vals = [
            (-3.0, 0.5, 2.0),
            (1.0, 1.0, 1.0),
            (1e6, -1e6, 0.0),
            (5.0, BIG, BIG),
        ];
        for &(a, b, c) in &vals {
            for gamma in [1e-4, 0.1, 1.0, 10.0] {
                let m = f64::min(a, f64::min(b, c));
                let want = m - gamma
                    * [a, b, c]
                        .iter()
                        .map(|x: &f64| (-(x - m) / gamma).exp())
                        .sum::<f64>()
                        .ln();
                let got = softmin3::<false, false>(a, b, c, gamma, 1.0 / gamma);
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{a} {b} {c} γ={gamma}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn stored_weights_are_the_softmin_derivatives() {
        let vals = [
            (-3.0, 0.5, 2.0),
            (1.0, 1.0, 1.0),
            (2.0, 2.0, -1.0),
            (1e6, -1e6, 0.0),
            (5.0, BIG, BIG),
            (BIG, 5.0, BIG),
            (BIG, BIG, 5.0),
        ];
        for gamma in [1e-4, 0.1, 1.0, 10.0] {
            let diag: Vec<f64> = vals.iter().map(|v| v.0).collect();
            let up: Vec<f64> = vals.iter().map(|v| v.1).collect();
            let left: Vec<f64> = vals.iter().map(|v| v.2).collect();
            let c = vec![0.5; vals.len()];
            let w = vals.len();
            let (mut out, mut wd, mut wu) = (vec![0.0; w], vec![0.0; w], vec![0.0; w]);
            let mut tmp = StageTmp::new();
            diag_step_weights::<false>(
                &c,
                &diag,
                &up,
                &left,
                &mut out,
                &mut wd,
                &mut wu,
                gamma,
                1.0 / gamma,
                &mut tmp,
            );
            let mut plain = vec![0.0; w];
            diag_step::<false, false>(
                &c,
                &diag,
                &up,
                &left,
                &mut plain,
                gamma,
                1.0 / gamma,
                &mut tmp,
            );
            for k in 0..w {
                let (a, b, cc) = vals[k];
                let m = a.min(b).min(cc);
                let p = |x: f64| (-(x - m) / gamma).exp();
                let z = p(a) + p(b) + p(cc);
                assert_eq!(out[k], plain[k]);
                assert!(
                    (out[k] - (0.5 + m - gamma * z.ln())).abs() <= 1e-12 * out[k].abs().max(1.0)
                );
                assert!((wd[k] - p(a) / z).abs() < 1e-15, "{:?} γ={gamma}", vals[k]);
                assert!((wu[k] - p(b) / z).abs() < 1e-15, "{:?} γ={gamma}", vals[k]);
            }
        }
    }

    #[test]
    fn transposed_band_is_the_band_of_the_transpose() {
        let g = Geometry {
            n: 3,
            m: 5,
            jlo: vec![0, 1, 2, 4],
            jhi: vec![0, 2, 4, 5],
        };
        let t = g.transposed();
        for i in 1..=3 {
            for j in 1..=5 {
                let a = g.jlo[i] <= j && j <= g.jhi[i];
                let b = t.jlo[j] <= i && i <= t.jhi[j];
                assert_eq!(a, b, "cell ({i},{j})");
            }
        }
    }
}
