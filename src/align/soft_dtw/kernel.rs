//! The fast soft-DTW recursions: anti-diagonal sweeps with a branch-free, vectorisable soft-min.
//!
//! Cells on one anti-diagonal `d = i + j` of the accumulated-cost matrix `R` depend only on
//! diagonals `d - 1` and `d - 2`, so a whole diagonal is computed by one loop without a
//! loop-carried dependency; the compiler vectorises it (AVX2 + FMA when the CPU has them,
//! selected at run time). Each diagonal is kept in a buffer indexed by the row `i`, so the
//! three predecessors of cell `i` sit at `p2[i - 1]` (diagonal step), `p1[i - 1]` (from above)
//! and `p1[i]` (from the left): contiguous loads.
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
fn fmadd<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
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
    // Not clamp(): max/min map NaN to -708, so a NaN input gives ~0 instead of NaN.
    #[allow(clippy::manual_clamp)]
    let x = x.max(-708.0).min(0.0);
    let y = fmadd::<F>(x, LOG2E, MAGIC);
    let n = y - MAGIC;
    let r = fmadd::<F>(n, -LN2_HI, x);
    let r = fmadd::<F>(n, -LN2_LO, r);
    // Taylor series to degree 12 on |r| ≤ ln2/2: truncation below 2.4e-16 relative.
    let mut p = 1.0 / 479_001_600.0;
    p = fmadd::<F>(p, r, 1.0 / 39_916_800.0);
    p = fmadd::<F>(p, r, 1.0 / 3_628_800.0);
    p = fmadd::<F>(p, r, 1.0 / 362_880.0);
    p = fmadd::<F>(p, r, 1.0 / 40_320.0);
    p = fmadd::<F>(p, r, 1.0 / 5_040.0);
    p = fmadd::<F>(p, r, 1.0 / 720.0);
    p = fmadd::<F>(p, r, 1.0 / 120.0);
    p = fmadd::<F>(p, r, 1.0 / 24.0);
    p = fmadd::<F>(p, r, 1.0 / 6.0);
    p = fmadd::<F>(p, r, 0.5);
    p = fmadd::<F>(p, r, 1.0);
    p = fmadd::<F>(p, r, 1.0);
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

/// `ln(s)` for `s` in `[1, 3]`, relative error below 5e-16 (outside that range: wrong).
#[inline(always)]
pub(crate) fn ln_1_3<const F: bool>(s: f64) -> f64 {
    let big = s > 1.5;
    let mant = if big { 0.5 * s } else { s };
    let k = if big { std::f64::consts::LN_2 } else { 0.0 };
    // ln(mant) = 2 atanh(z), z = (mant - 1)/(mant + 1) in [-1/7, 1/5]: z² ≤ 0.04, 13 terms.
    let z = (mant - 1.0) / (mant + 1.0);
    let z2 = z * z;
    let mut p = 1.0 / 25.0;
    p = fmadd::<F>(p, z2, 1.0 / 23.0);
    p = fmadd::<F>(p, z2, 1.0 / 21.0);
    p = fmadd::<F>(p, z2, 1.0 / 19.0);
    p = fmadd::<F>(p, z2, 1.0 / 17.0);
    p = fmadd::<F>(p, z2, 1.0 / 15.0);
    p = fmadd::<F>(p, z2, 1.0 / 13.0);
    p = fmadd::<F>(p, z2, 1.0 / 11.0);
    p = fmadd::<F>(p, z2, 1.0 / 9.0);
    p = fmadd::<F>(p, z2, 1.0 / 7.0);
    p = fmadd::<F>(p, z2, 1.0 / 5.0);
    p = fmadd::<F>(p, z2, 1.0 / 3.0);
    p = fmadd::<F>(p, z2, 1.0);
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

/// Rows per stripe of the value-only sweep: a stripe's cost block (`STRIPE_ROWS x m`) is read
/// along its anti-diagonals, so `STRIPE_ROWS` rows are live at once; 64 keeps them in cache
/// and in the TLB (a whole-matrix diagonal touches one page per row).
pub(crate) const STRIPE_ROWS: usize = 64;

/// The diagonal step shared by every sweep: `out[k] = c[k] + softmin(diag[k], up[k], left[k])`,
/// and the soft-min part into `s` when given.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn diag_step<const F: bool, const HARD: bool>(
    c: &[f64],
    diag: &[f64],
    up: &[f64],
    left: &[f64],
    out: &mut [f64],
    s: Option<&mut [f64]>,
    gamma: f64,
    inv_gamma: f64,
) {
    let w = out.len();
    let (c, diag, up, left) = (&c[..w], &diag[..w], &up[..w], &left[..w]);
    match s {
        Some(s) => {
            let s = &mut s[..w];
            for k in 0..w {
                let v = softmin3::<F, HARD>(diag[k], up[k], left[k], gamma, inv_gamma);
                s[k] = v;
                out[k] = c[k] + v;
            }
        }
        None => {
            for k in 0..w {
                out[k] = c[k] + softmin3::<F, HARD>(diag[k], up[k], left[k], gamma, inv_gamma);
            }
        }
    }
}

/// Scratch of the stripe sweep (allocated once per call, `O(STRIPE_ROWS)`).
pub(crate) struct StripeScratch {
    p2: Vec<f64>,
    p1: Vec<f64>,
    cur: Vec<f64>,
    cbuf: Vec<f64>,
}

impl StripeScratch {
    pub fn new() -> Self {
        let len = STRIPE_ROWS + 2;
        Self {
            p2: vec![BIG; len],
            p1: vec![BIG; len],
            cur: vec![BIG; len],
            cbuf: vec![0.0; len],
        }
    }
}

/// The first row boundary `R[0, 0..=m]`: 0 then `BIG`.
pub(crate) fn initial_top(m: usize) -> Vec<f64> {
    let mut top = vec![BIG; m + 1];
    top[0] = 0.0;
    top
}

/// Forward recursion over rows `i0..=i1` (1-based, at most [`STRIPE_ROWS`] of them).
/// `block` holds their costs row-major (`(i - i0) * m + (j - 1)`); `top` holds
/// `R[i0 - 1, 0..=m]` on entry (`BIG` outside the band) and `R[i1, 0..=m]` on exit.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_stripe_impl<const F: bool, const HARD: bool>(
    block: &[f64],
    g: &Geometry,
    i0: usize,
    i1: usize,
    gamma: f64,
    top: &mut [f64],
    sc: &mut StripeScratch,
) {
    let m = g.m;
    let b = i1 + 1 - i0;
    debug_assert!(b <= STRIPE_ROWS && block.len() >= b * m && top.len() == m + 1);
    let inv_gamma = 1.0 / gamma;
    let StripeScratch { p2, p1, cur, cbuf } = sc;
    let top_at = |top: &[f64], d: usize| -> f64 {
        // R[i0 - 1, d - (i0 - 1)]: position 0 of diagonal d.
        let j = d + 1 - i0;
        if j <= m {
            top[j]
        } else {
            BIG
        }
    };
    p2.fill(BIG);
    p1.fill(BIG);
    p2[0] = top[0];
    p1[0] = top_at(top, i0);
    let mut diags = Diagonals::new(g);
    for d in i0 + 1..=i1 + m {
        let (lo, hi) = diags.advance(d);
        let (llo, lhi) = (lo.max(i0), hi.min(i1));
        // Stripe diagonals are short: clearing the whole buffer is cheap and leaves every
        // position outside the interval at BIG.
        cur.fill(BIG);
        cur[0] = top_at(top, d);
        if llo <= lhi {
            let w = lhi + 1 - llo;
            let r = llo + 1 - i0;
            for (k, o) in cbuf[..w].iter_mut().enumerate() {
                let i = llo + k;
                *o = block[(i - i0) * m + (d - i - 1)];
            }
            diag_step::<F, HARD>(
                &cbuf[..w],
                &p2[r - 1..r - 1 + w],
                &p1[r - 1..r - 1 + w],
                &p1[r..r + w],
                &mut cur[r..r + w],
                None,
                gamma,
                inv_gamma,
            );
            if lhi == i1 {
                // Row i1 is done at column d - i1; that entry of `top` is no longer read
                // (reads are at d' + 1 - i0 > d - i1 for every later d').
                top[d - i1] = cur[b];
            }
        }
        std::mem::swap(p2, p1);
        std::mem::swap(p1, cur);
    }
    top[0] = BIG;
    for (j, t) in top.iter_mut().enumerate().skip(1) {
        if j < g.jlo[i1] || j > g.jhi[i1] {
            *t = BIG;
        }
    }
}

/// Row interval and storage offset of every diagonal: the diagonal-major layout used by the
/// value-and-gradient pass (diagonal `d` at `offsets[d]`, rows `lo[d]..=hi[d]`).
pub(crate) struct DiagLayout {
    pub lo: Vec<usize>,
    pub hi: Vec<usize>,
    pub offsets: Vec<usize>,
    pub cells: usize,
}

pub(crate) fn diag_layout(g: &Geometry) -> DiagLayout {
    let nd = g.n + g.m + 1;
    let mut lo = vec![1usize; nd];
    let mut hi = vec![0usize; nd];
    let mut offsets = vec![0usize; nd + 1];
    let mut diags = Diagonals::new(g);
    let mut total = 0usize;
    for d in 2..nd {
        let (l, h) = diags.advance(d);
        lo[d] = l;
        hi[d] = h;
        offsets[d] = total;
        total += (h + 1).saturating_sub(l);
    }
    offsets[nd] = total;
    DiagLayout {
        lo,
        hi,
        offsets,
        cells: total,
    }
}

/// Copies the admitted cells of row-major `src` (n x m) into diagonal-major `dst`, or back
/// when `to_rows`. Blocks of 32 rows keep both sides' access local.
pub(crate) fn relayout(
    src_rows: &mut [f64],
    dst_diag: &mut [f64],
    g: &Geometry,
    lay: &DiagLayout,
    to_rows: bool,
) {
    const B: usize = 32;
    let m = g.m;
    let mut i0 = 1;
    while i0 <= g.n {
        let i1 = (i0 + B - 1).min(g.n);
        let jmin = g.jlo[i0];
        let jmax = g.jhi[i1];
        for j in jmin..=jmax {
            for i in i0..=i1 {
                if j < g.jlo[i] || j > g.jhi[i] {
                    continue;
                }
                let d = i + j;
                let k = lay.offsets[d] + (i - lay.lo[d]);
                let r = (i - 1) * m + (j - 1);
                if to_rows {
                    src_rows[r] = dst_diag[k];
                } else {
                    dst_diag[k] = src_rows[r];
                }
            }
        }
        i0 = i1 + 1;
    }
}

/// Forward recursion over the whole (banded) matrix from diagonal-major costs `cd`. Writes the
/// soft-min part `S = R - C` of every cell to `store` (same layout) and returns `R[n, m]`.
#[inline(always)]
fn forward_full_impl<const F: bool>(
    cd: &[f64],
    g: &Geometry,
    lay: &DiagLayout,
    gamma: f64,
    store: &mut [f64],
) -> f64 {
    let n = g.n;
    let inv_gamma = 1.0 / gamma;
    let len = n + 2;
    let mut p2 = vec![BIG; len];
    let mut p1 = vec![BIG; len];
    let mut cur = vec![BIG; len];
    p2[0] = 0.0; // R[0, 0] = 0: diagonal 0
    let mut last = BIG;
    for d in 2..=n + g.m {
        let (lo, hi) = (lay.lo[d], lay.hi[d]);
        if lo <= hi {
            let w = hi + 1 - lo;
            let off = lay.offsets[d];
            diag_step::<F, false>(
                &cd[off..off + w],
                &p2[lo - 1..lo - 1 + w],
                &p1[lo - 1..lo - 1 + w],
                &p1[lo..lo + w],
                &mut cur[lo..lo + w],
                Some(&mut store[off..off + w]),
                gamma,
                inv_gamma,
            );
        }
        // Sentinels just outside the interval: every later read of this diagonal falls in
        // lo-1..=hi+1 (the interval moves by at most one row per diagonal).
        cur[lo - 1] = BIG;
        cur[hi + 1] = BIG;
        if d == n + g.m {
            last = cur[n];
        }
        std::mem::swap(&mut p2, &mut p1);
        std::mem::swap(&mut p1, &mut cur);
    }
    last
}

/// Backward recursion (Cuturi & Blondel 2017, Algorithm 2) over the stored soft-min parts.
/// `cd` holds the diagonal-major costs on entry and the expected alignment `E = ∂R[n,m]/∂C`
/// (same layout) on exit.
#[inline(always)]
fn backward_impl<const F: bool>(
    cd: &mut [f64],
    g: &Geometry,
    lay: &DiagLayout,
    gamma: f64,
    s_store: &[f64],
) {
    let n = g.n;
    let inv_gamma = 1.0 / gamma;
    let len = n + 2;
    // Rolling diagonals d+1 and d+2 of E and S; outside their intervals E is 0, which makes
    // the (bounded) weight of a missing neighbour irrelevant.
    let mut e1 = vec![0.0f64; len];
    let mut e2 = vec![0.0f64; len];
    let mut ecur = vec![0.0f64; len];
    let mut s1 = vec![0.0f64; len];
    let mut s2 = vec![0.0f64; len];
    let mut scur = vec![0.0f64; len];
    let mut rbuf = vec![0.0f64; len];
    let top = n + g.m;
    for d in (2..=top).rev() {
        let (lo, hi) = (lay.lo[d], lay.hi[d]);
        if lo <= hi {
            let w = hi + 1 - lo;
            let off = lay.offsets[d];
            let sd_ = &s_store[off..off + w];
            scur[lo..lo + w].copy_from_slice(sd_);
            let cdd = &mut cd[off..off + w];
            // R = S + C on this diagonal.
            for ((r, &sv), &cv) in rbuf[..w].iter_mut().zip(sd_).zip(cdd.iter()) {
                *r = sv + cv;
            }
            if d == top {
                ecur[n] = 1.0;
            } else {
                let r = &rbuf[..w];
                let sd = &s1[lo + 1..lo + 1 + w]; // (i+1, j): diagonal d+1, row i+1
                let sr = &s1[lo..lo + w]; // (i, j+1): diagonal d+1, row i
                let sg = &s2[lo + 1..lo + 1 + w]; // (i+1, j+1): diagonal d+2, row i+1
                let ed = &e1[lo + 1..lo + 1 + w];
                let er = &e1[lo..lo + w];
                let eg = &e2[lo + 1..lo + 1 + w];
                let out = &mut ecur[lo..lo + w];
                for k in 0..w {
                    let a = exp_nonpos::<F>((sd[k] - r[k]) * inv_gamma);
                    let b = exp_nonpos::<F>((sr[k] - r[k]) * inv_gamma);
                    let c = exp_nonpos::<F>((sg[k] - r[k]) * inv_gamma);
                    out[k] = fmadd::<F>(ed[k], a, fmadd::<F>(er[k], b, eg[k] * c));
                }
            }
            cdd.copy_from_slice(&ecur[lo..lo + w]);
        }
        ecur[lo - 1] = 0.0;
        ecur[hi + 1] = 0.0;
        scur[lo - 1] = 0.0;
        scur[hi + 1] = 0.0;
        std::mem::swap(&mut e2, &mut e1);
        std::mem::swap(&mut e1, &mut ecur);
        std::mem::swap(&mut s2, &mut s1);
        std::mem::swap(&mut s1, &mut scur);
    }
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
fn forward_stripe_avx2<const HARD: bool>(
    block: &[f64],
    g: &Geometry,
    i0: usize,
    i1: usize,
    gamma: f64,
    top: &mut [f64],
    sc: &mut StripeScratch,
) {
    forward_stripe_impl::<true, HARD>(block, g, i0, i1, gamma, top, sc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_full_avx2(
    cd: &[f64],
    g: &Geometry,
    lay: &DiagLayout,
    gamma: f64,
    store: &mut [f64],
) -> f64 {
    forward_full_impl::<true>(cd, g, lay, gamma, store)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_avx2(cd: &mut [f64], g: &Geometry, lay: &DiagLayout, gamma: f64, s_store: &[f64]) {
    backward_impl::<true>(cd, g, lay, gamma, s_store)
}

/// Forward recursion over one stripe of rows (see [`forward_stripe_impl`]), best instruction
/// set available. `HARD` = plain DTW (min instead of soft-min).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_stripe<const HARD: bool>(
    block: &[f64],
    g: &Geometry,
    i0: usize,
    i1: usize,
    gamma: f64,
    top: &mut [f64],
    sc: &mut StripeScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { forward_stripe_avx2::<HARD>(block, g, i0, i1, gamma, top, sc) };
    }
    forward_stripe_impl::<false, HARD>(block, g, i0, i1, gamma, top, sc)
}

/// Whole-matrix forward pass storing `S` (see [`forward_full_impl`]).
pub(crate) fn forward_full(
    cd: &[f64],
    g: &Geometry,
    lay: &DiagLayout,
    gamma: f64,
    store: &mut [f64],
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { forward_full_avx2(cd, g, lay, gamma, store) };
    }
    forward_full_impl::<false>(cd, g, lay, gamma, store)
}

/// Backward pass (see [`backward_impl`]).
pub(crate) fn backward(
    cd: &mut [f64],
    g: &Geometry,
    lay: &DiagLayout,
    gamma: f64,
    s_store: &[f64],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { backward_avx2(cd, g, lay, gamma, s_store) };
    }
    backward_impl::<false>(cd, g, lay, gamma, s_store)
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
        assert!(worst < 5e-16, "worst relative error {worst:e}");
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
