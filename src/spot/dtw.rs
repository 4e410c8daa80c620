//! Subsequence DTW, one database column at a time, with the start of the best path carried
//! along (the SPRING idea, Sakurai, Faloutsos & Yamamuro 2007), so neither the offline search
//! nor the streaming spotter has to store the accumulated cost matrix or backtrack.
//!
//! Notation as in FMP C7S2: query `Q` of length `N` (rows `n`), database `X` (columns `m`),
//! local cost `C(n, m)`, accumulated cost `D`. Step sizes (1,1), (2,1), (1,2) (query, database),
//! which allow local tempo ratios between 1/2 and 2. The (2,1) step, which skips a query frame,
//! has weight `w` (FMP's unweighted form is `w = 1`); with `w = 2` every query frame contributes
//! exactly one cost term, so `Δ` is a true mean and compressed paths get no discount:
//!
//! ```text
//! D(0, m) = C(0, m)                       (the match may start anywhere)
//! D(n, m) = min{ D(n-1, m-1) + C(n, m), D(n-2, m-1) + w C(n, m), D(n-1, m-2) + C(n, m) }
//! Δ(m)    = D(N-1, m) / N                 (matching function, FMP eq. 7.8)
//! ```
//!
//! Ties go to the diagonal, then (2,1), then (1,2); [`subsequence_dtw_full`] is the full-matrix
//! reference with explicit backtracking that the column kernel is tested against.

/// One subsequence-DTW run over a database that arrives column by column.
///
/// Holds the last two columns of `D` and of the start index; [`SubseqDtw::step`] is
/// allocation-free.
#[derive(Clone, Debug)]
pub struct SubseqDtw {
    n: usize,
    d1: Vec<f32>,
    d2: Vec<f32>,
    cur: Vec<f32>,
    s1: Vec<u32>,
    s2: Vec<u32>,
    s_cur: Vec<u32>,
    m: u32,
    skip_weight: f32,
}

impl SubseqDtw {
    /// A run for a query of `n` frames (`n >= 1`), (2,1) step weight `skip_weight`.
    pub fn new(n: usize, skip_weight: f32) -> Self {
        let n = n.max(1);
        Self {
            n,
            d1: vec![f32::INFINITY; n],
            d2: vec![f32::INFINITY; n],
            cur: vec![f32::INFINITY; n],
            s1: vec![0; n],
            s2: vec![0; n],
            s_cur: vec![0; n],
            m: 0,
            skip_weight,
        }
    }

    /// Query length (frames).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: a run has at least one query frame.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Forget all columns (a new database starts).
    pub fn reset(&mut self) {
        self.d1.iter_mut().for_each(|v| *v = f32::INFINITY);
        self.d2.iter_mut().for_each(|v| *v = f32::INFINITY);
        self.m = 0;
    }

    /// Consume database column `m` given its local costs `cost(n) = C(n, m)` for `n < N`.
    /// Returns `(D(N-1, m), start)` where `start` is the database column where the optimal path
    /// ending at `(N-1, m)` begins (meaningless when the cost is infinite).
    #[inline]
    pub fn step(&mut self, cost: impl Fn(usize) -> f32) -> (f32, u32) {
        let m = self.m;
        self.cur[0] = cost(0);
        self.s_cur[0] = m;
        for n in 1..self.n {
            let c = cost(n);
            let mut best = self.d1[n - 1] + c;
            let mut s = self.s1[n - 1];
            if n >= 2 {
                let v = self.d1[n - 2] + self.skip_weight * c;
                if v < best {
                    best = v;
                    s = self.s1[n - 2];
                }
            }
            let v = self.d2[n - 1] + c;
            if v < best {
                best = v;
                s = self.s2[n - 1];
            }
            self.cur[n] = best;
            self.s_cur[n] = s;
        }
        // Rotate: d2 <- d1 <- cur.
        std::mem::swap(&mut self.d2, &mut self.d1);
        std::mem::swap(&mut self.d1, &mut self.cur);
        std::mem::swap(&mut self.s2, &mut self.s1);
        std::mem::swap(&mut self.s1, &mut self.s_cur);
        self.m += 1;
        (self.d1[self.n - 1], self.s1[self.n - 1])
    }
}

/// Reference: full accumulated cost matrix and explicit backtracking. `cost[n][m]`.
/// Returns, for every end column `m`, `(D(N-1, m), start column)`.
pub fn subsequence_dtw_full(cost: &[Vec<f32>], skip_weight: f32) -> Vec<(f32, u32)> {
    let n_q = cost.len();
    if n_q == 0 {
        return Vec::new();
    }
    let m_x = cost[0].len();
    let inf = f32::INFINITY;
    let mut d = vec![vec![inf; m_x]; n_q];
    for m in 0..m_x {
        d[0][m] = cost[0][m];
        for n in 1..n_q {
            let c = cost[n][m];
            let a = if m >= 1 { d[n - 1][m - 1] + c } else { inf };
            let b = if m >= 1 && n >= 2 {
                d[n - 2][m - 1] + skip_weight * c
            } else {
                inf
            };
            let e = if m >= 2 { d[n - 1][m - 2] + c } else { inf };
            d[n][m] = a.min(b).min(e);
        }
    }
    (0..m_x)
        .map(|m_end| {
            let total = d[n_q - 1][m_end];
            let (mut n, mut m) = (n_q - 1, m_end);
            while n > 0 && total.is_finite() {
                // Same preference order as the column kernel: diagonal, (2,1), (1,2).
                let c = cost[n][m];
                let mut cands: Vec<(f32, usize, usize)> = Vec::with_capacity(3);
                if m >= 1 {
                    cands.push((d[n - 1][m - 1] + c, n - 1, m - 1));
                }
                if m >= 1 && n >= 2 {
                    cands.push((d[n - 2][m - 1] + skip_weight * c, n - 2, m - 1));
                }
                if m >= 2 {
                    cands.push((d[n - 1][m - 2] + c, n - 1, m - 2));
                }
                let mut best = cands[0];
                for c in &cands[1..] {
                    if c.0 < best.0 {
                        best = *c;
                    }
                }
                n = best.1;
                m = best.2;
            }
            (total, m as u32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute force over every warping path with the three step sizes: the minimum cost of a
    /// path from row 0 (any column) to `(N-1, m_end)`.
    fn brute_force(cost: &[Vec<f32>], m_end: usize, w: f32) -> f32 {
        fn rec(cost: &[Vec<f32>], n: usize, m: usize, w: f32) -> f32 {
            if n == 0 {
                return cost[0][m];
            }
            let mut best = f32::INFINITY;
            for (dn, dm, wt) in [(1usize, 1usize, 1.0), (2, 1, w), (1, 2, 1.0)] {
                if n >= dn && m >= dm {
                    best = best.min(rec(cost, n - dn, m - dm, w) + wt * cost[n][m]);
                }
            }
            best
        }
        rec(cost, cost.len() - 1, m_end, w)
    }

    fn run_kernel(cost: &[Vec<f32>], w: f32) -> Vec<(f32, u32)> {
        let mut k = SubseqDtw::new(cost.len(), w);
        (0..cost[0].len()).map(|m| k.step(|n| cost[n][m])).collect()
    }

    #[test]
    fn exact_copy_is_found_with_zero_cost() {
        // Query = columns 5..9 of the database: cost zero on that diagonal only.
        let n_q = 4;
        let m_x = 15;
        let mut cost = vec![vec![1.0f32; m_x]; n_q];
        for (n, row) in cost.iter_mut().enumerate() {
            row[5 + n] = 0.0;
        }
        let out = run_kernel(&cost, 1.0);
        assert_eq!(out[8], (0.0, 5));
        assert!(out.iter().enumerate().all(|(m, o)| m == 8 || o.0 > 0.0));
    }

    proptest! {
        #[test]
        fn kernel_equals_full_matrix_and_brute_force(
            n_q in 1usize..6,
            m_x in 1usize..9,
            vals in proptest::collection::vec(0u8..5, 64),
            w in prop_oneof![Just(1.0f32), Just(2.0f32), Just(1.5f32)],
        ) {
            let cost: Vec<Vec<f32>> = (0..n_q)
                .map(|n| (0..m_x).map(|m| vals[(n * 9 + m) % 64] as f32 * 0.25).collect())
                .collect();
            let k = run_kernel(&cost, w);
            let f = subsequence_dtw_full(&cost, w);
            for ((dk, sk), (df, sf)) in k.iter().zip(&f) {
                prop_assert_eq!(dk.to_bits(), df.to_bits());
                if dk.is_finite() {
                    prop_assert_eq!(sk, sf);
                }
            }
            for (m, (d, _)) in k.iter().enumerate() {
                let b = brute_force(&cost, m, w);
                prop_assert!(d == &b || (d - b).abs() < 1e-5, "m={} {} vs {}", m, d, b);
            }
        }
    }
}
