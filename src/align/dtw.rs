//! Offline DTW: a full-matrix oracle and a bounded-memory multiscale aligner (MrMsDTW-style:
//! align coarse versions of both sequences, project the path one level finer, and compute DTW
//! only in a band around it).
//!
//! Step sizes (1,0), (0,1), (1,1) with weights 1, 1 and a diagonal weight `w_d`. With `w_d = 2`
//! (the symmetric form) every path from (0,0) to (i,j) has the same total weight i + j + 1, so
//! a diagonal run and a staircase cost the same; with `w_d = 1` (the default, as in librosa and
//! synctoolbox) a diagonal step is cheaper than its staircase, so the path prefers to move both
//! sequences on together and wanders less through passages where the cost is flat. On the dev
//! corpus that took offline alignment from 91.8 % to 97.5 % of events within 300 ms. Costs of
//! paths ending in different cells are compared after dividing by the path's total weight. An
//! open end on the reference axis lets a performance that stops early (an excerpt) end anywhere
//! in the reference.

use crate::align::cost::{frame_cost, CostWeights};
use crate::features::{FeatureFrame, N_CHROMA};

/// A warping path: (performance frame, reference frame) pairs, both non-decreasing.
pub type Path = Vec<(usize, usize)>;

/// Options for offline DTW.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DtwOptions {
    /// Let the path end at any reference frame (the performance covers only part of it).
    pub open_end: bool,
    /// Cost weights.
    pub weights: CostWeights,
    /// Try all 12 transpositions of the performance at the coarsest level and keep the one of
    /// least normalised cost (a singer a semitone away from the reference).
    pub transpose_search: bool,
    /// Weight of a diagonal step (the other two steps weigh 1): 1 prefers diagonal moves, 2 is
    /// the symmetric form with no preference.
    pub diagonal_weight: f64,
}

impl Default for DtwOptions {
    fn default() -> Self {
        Self {
            open_end: true,
            weights: CostWeights::OFFLINE,
            transpose_search: true,
            diagonal_weight: 1.0,
        }
    }
}

/// Result of [`dtw_band`].
#[derive(Clone, Debug, PartialEq)]
pub struct BandAlignment {
    /// The optimal path from (0, 0) to the end cell.
    pub path: Path,
    /// Its accumulated weighted cost.
    pub total_cost: f64,
    /// The sum of its step weights (1 for the start cell): `total_cost / path_weight` is the
    /// mean cost per unit of weight, comparable between paths of different shapes.
    pub path_weight: f64,
}

impl BandAlignment {
    /// Accumulated cost divided by the path's total weight.
    pub fn normalised_cost(&self) -> f64 {
        self.total_cost / self.path_weight.max(1.0)
    }
}

const DIR_DIAG: u8 = 0;
const DIR_UP: u8 = 1; // from (i-1, j): performance advanced, reference held
const DIR_LEFT: u8 = 2; // from (i, j-1): reference advanced, performance held
const DIR_START: u8 = 3;

/// DTW over a band: row `i` (performance frame) covers reference frames `band[i].0 ..
/// band[i].1`. The band must be monotone (both ends non-decreasing) and consecutive rows must
/// overlap or touch so a path exists. `diagonal_weight` weighs the (1,1) step (the others
/// weigh 1). Memory: one byte per band cell plus four rows of numbers.
pub fn dtw_band(
    n: usize,
    m: usize,
    band: &[(usize, usize)],
    open_end: bool,
    diagonal_weight: f64,
    mut cost: impl FnMut(usize, usize) -> f32,
    mut progress: impl FnMut(usize),
) -> BandAlignment {
    assert_eq!(band.len(), n);
    if n == 0 || m == 0 {
        return BandAlignment {
            path: Vec::new(),
            total_cost: 0.0,
            path_weight: 0.0,
        };
    }
    let mut offsets = Vec::with_capacity(n + 1);
    let mut total = 0usize;
    for &(lo, hi) in band {
        offsets.push(total);
        total += hi.saturating_sub(lo);
    }
    offsets.push(total);
    let mut dirs = vec![DIR_START; total];
    let width_max = band.iter().map(|(lo, hi)| hi - lo).max().unwrap_or(0);
    let mut prev = vec![f64::INFINITY; width_max];
    let mut cur = vec![f64::INFINITY; width_max];
    // Total step weight of the best path into each cell, for the open end's normalisation.
    let mut prev_w = vec![0.0f64; width_max];
    let mut cur_w = vec![0.0f64; width_max];
    let (mut prev_lo, mut prev_hi) = (0usize, 0usize);
    for i in 0..n {
        let (lo, hi) = band[i];
        let row_dirs = &mut dirs[offsets[i]..offsets[i + 1]];
        for j in lo..hi {
            let c = cost(i, j) as f64;
            let k = j - lo;
            let (mut best, mut weight, mut dir) = if i == 0 && j == 0 {
                (c, 1.0, DIR_START)
            } else {
                (f64::INFINITY, 0.0, DIR_START)
            };
            if i > 0 {
                if j > prev_lo && j - 1 < prev_hi {
                    let v = prev[j - 1 - prev_lo] + diagonal_weight * c;
                    if v < best {
                        best = v;
                        weight = prev_w[j - 1 - prev_lo] + diagonal_weight;
                        dir = DIR_DIAG;
                    }
                }
                if j >= prev_lo && j < prev_hi {
                    let v = prev[j - prev_lo] + c;
                    if v < best {
                        best = v;
                        weight = prev_w[j - prev_lo] + 1.0;
                        dir = DIR_UP;
                    }
                }
            }
            if k > 0 {
                let v = cur[k - 1] + c;
                if v < best {
                    best = v;
                    weight = cur_w[k - 1] + 1.0;
                    dir = DIR_LEFT;
                }
            }
            cur[k] = best;
            cur_w[k] = weight;
            row_dirs[k] = dir;
        }
        std::mem::swap(&mut prev, &mut cur);
        std::mem::swap(&mut prev_w, &mut cur_w);
        prev_lo = lo;
        prev_hi = hi;
        if i % 1024 == 0 {
            progress(i);
        }
    }
    // End cell: (n-1, m-1), or with an open end the reference frame of least normalised cost.
    let (lo, hi) = band[n - 1];
    let end_j = if open_end {
        (lo..hi)
            .filter(|&j| prev[j - lo].is_finite())
            .min_by(|&a, &b| {
                let na = prev[a - lo] / prev_w[a - lo].max(1.0);
                let nb = prev[b - lo] / prev_w[b - lo].max(1.0);
                na.total_cmp(&nb)
            })
            .unwrap_or(hi - 1)
    } else {
        (m - 1).clamp(lo, hi.saturating_sub(1))
    };
    let total_cost = prev[end_j - lo];
    let path_weight = prev_w[end_j - lo];
    let mut path = Vec::with_capacity(n + m);
    let (mut i, mut j) = (n - 1, end_j);
    loop {
        path.push((i, j));
        let (lo, _) = band[i];
        match dirs[offsets[i] + j - lo] {
            DIR_DIAG => {
                i -= 1;
                j -= 1;
            }
            DIR_UP => i -= 1,
            DIR_LEFT => j -= 1,
            _ => break,
        }
    }
    path.reverse();
    BandAlignment {
        path,
        total_cost,
        path_weight,
    }
}

/// Full DTW on an explicit row-major cost matrix (n x m): the oracle for everything else.
pub fn dtw_full_matrix(
    cost: &[f32],
    n: usize,
    m: usize,
    open_end: bool,
    diagonal_weight: f64,
) -> BandAlignment {
    let band = vec![(0, m); n];
    dtw_band(
        n,
        m,
        &band,
        open_end,
        diagonal_weight,
        |i, j| cost[i * m + j],
        |_| {},
    )
}

/// Average `factor` consecutive frames (chroma re-normalised; onset averaged).
pub fn downsample(frames: &[FeatureFrame], factor: usize) -> Vec<FeatureFrame> {
    frames
        .chunks(factor)
        .map(|chunk| {
            let mut out = FeatureFrame::default();
            for f in chunk {
                for k in 0..N_CHROMA {
                    out.chroma[k] += f.chroma[k];
                    out.onset[k] += f.onset[k];
                }
                out.energy += f.energy;
            }
            crate::features::chroma::normalize(&mut out.chroma);
            let inv = 1.0 / chunk.len() as f32;
            out.onset.iter_mut().for_each(|x| *x *= inv);
            out.energy *= inv;
            out
        })
        .collect()
}

/// Largest sequence length aligned with a full matrix at the coarsest level.
const COARSE_MAX_FRAMES: usize = 1500;
/// Ratio between consecutive resolution levels.
const LEVEL_FACTOR: usize = 5;
/// Band half-width around the projected path, in frames of the finer level.
const BAND_RADIUS: usize = 12;

/// Largest chroma entry of a frame that carries nothing: the extractor gives silence (relative
/// to the running level) [`crate::features::SILENT_CHROMA`], 0.289 in every class.
const SILENT_CHROMA_MAX: f32 = 0.3;

/// Frames at the start of `frames` that are silent: the extractor's flat silence chroma.
pub fn leading_silence(frames: &[FeatureFrame]) -> usize {
    frames
        .iter()
        .take_while(|f| f.chroma_peak() < SILENT_CHROMA_MAX)
        .count()
}

/// Multiscale DTW of two feature sequences with bounded memory: at the finest level it touches
/// only a band of about (2 * radius + 2 * level factor) cells per row. `progress(done, total)`
/// is called with performance frames done at the finest level.
///
/// Silence before either sequence begins to sound is not aligned: a silent frame costs the
/// same against every note, so a path from (0, 0) may cross the reference during the
/// performance's opening silence and meet its first note up to the silence's length ahead (the
/// development corpus's performances open with 1 s of silence; their first events were
/// aligned 0.4-1.7 s ahead). The path starts where both sound, and the silences before are
/// paired from their ends back. Silence is taken in whole coarse frames (5 frames), so
/// the coarse level's frames are the same as without it: a grid shifted by one frame changes
/// the coarse path where two places match almost alike (measured: K. 458 at 0.6x against its
/// recording, whose performance opens with 51 silent frames, moved by 0.2-0.5 s at 50 s).
pub fn align_multiscale(
    perf: &[FeatureFrame],
    reference: &[FeatureFrame],
    opts: DtwOptions,
    progress: impl FnMut(usize, usize),
) -> Path {
    let whole = |frames: &[FeatureFrame]| leading_silence(frames) / LEVEL_FACTOR * LEVEL_FACTOR;
    let (quiet_p, quiet_r) = (whole(perf), whole(reference));
    if (quiet_p == 0 && quiet_r == 0) || quiet_p >= perf.len() || quiet_r >= reference.len() {
        return align_sounding(perf, reference, opts, progress);
    }
    let sounding = align_sounding(&perf[quiet_p..], &reference[quiet_r..], opts, progress);
    // The silences are paired from their ends back (the shorter one's first frame repeated).
    let lead = quiet_p.max(quiet_r);
    let mut path: Path = Vec::with_capacity(lead + sounding.len());
    if quiet_p > 0 {
        path.extend((0..lead).map(|k| {
            (
                (k + quiet_p).saturating_sub(lead),
                (k + quiet_r).saturating_sub(lead),
            )
        }));
    }
    path.extend(sounding.iter().map(|&(i, j)| (i + quiet_p, j + quiet_r)));
    path
}

/// The multiscale DTW proper, from (0, 0).
fn align_sounding(
    perf: &[FeatureFrame],
    reference: &[FeatureFrame],
    opts: DtwOptions,
    mut progress: impl FnMut(usize, usize),
) -> Path {
    let (n, m) = (perf.len(), reference.len());
    if n == 0 || m == 0 {
        return Vec::new();
    }
    let mut factors = vec![1usize];
    while n.max(m) / factors[factors.len() - 1] > COARSE_MAX_FRAMES {
        let f = factors[factors.len() - 1] * LEVEL_FACTOR;
        factors.push(f);
    }
    let shift = if opts.transpose_search {
        best_transposition(perf, reference, factors[factors.len() - 1], opts)
    } else {
        0
    };
    let perf: Vec<FeatureFrame> = perf
        .iter()
        .map(|f| crate::align::transpose_frame(f, shift))
        .collect();
    let mut path: Path = Vec::new();
    for (level, &f) in factors.iter().enumerate().rev() {
        let (p, r) = if f == 1 {
            (perf.clone(), reference.to_vec())
        } else {
            (downsample(&perf, f), downsample(reference, f))
        };
        let (pn, rm) = (p.len(), r.len());
        let band = if level == factors.len() - 1 {
            vec![(0, rm); pn]
        } else {
            project_band(&path, factors[level + 1] / f, pn, rm, BAND_RADIUS)
        };
        let finest = f == 1;
        let new_path = dtw_band(
            pn,
            rm,
            &band,
            opts.open_end,
            opts.diagonal_weight,
            |i, j| frame_cost(&p[i], &r[j], opts.weights),
            |i| {
                if finest {
                    progress(i, pn)
                }
            },
        )
        .path;
        path = new_path;
    }
    progress(n, n);
    path
}

/// The transposition (semitones the performance is above the reference) whose coarse DTW has
/// the least normalised cost. Small inputs are compared at a coarse rate of at least 5 frames.
pub fn best_transposition(
    perf: &[FeatureFrame],
    reference: &[FeatureFrame],
    factor: usize,
    opts: DtwOptions,
) -> usize {
    let f = factor.max(5);
    let r = downsample(reference, f);
    let p0 = downsample(perf, f);
    let (n, m) = (p0.len(), r.len());
    if n == 0 || m == 0 {
        return 0;
    }
    let band = vec![(0, m); n];
    let mut best = (f64::INFINITY, 0usize);
    for shift in 0..N_CHROMA {
        let p: Vec<FeatureFrame> = p0
            .iter()
            .map(|x| crate::align::transpose_frame(x, shift))
            .collect();
        let norm = dtw_band(
            n,
            m,
            &band,
            opts.open_end,
            opts.diagonal_weight,
            |i, j| frame_cost(&p[i], &r[j], opts.weights),
            |_| {},
        )
        .normalised_cost();
        if norm < best.0 {
            best = (norm, shift);
        }
    }
    best.1
}

/// Project a coarse path to a band at a resolution `ratio` times finer, widened by `radius`.
fn project_band(
    coarse: &[(usize, usize)],
    ratio: usize,
    n: usize,
    m: usize,
    radius: usize,
) -> Vec<(usize, usize)> {
    let mut lo = vec![usize::MAX; n];
    let mut hi = vec![0usize; n];
    for &(ci, cj) in coarse {
        let (r0, r1) = (ci * ratio, ((ci + 1) * ratio).min(n));
        let (c0, c1) = (cj * ratio, ((cj + 1) * ratio).min(m));
        for i in r0..r1 {
            lo[i] = lo[i].min(c0);
            hi[i] = hi[i].max(c1);
        }
    }
    // Rows the coarse path did not cover (a ragged last block) inherit their neighbours.
    for i in 0..n {
        if lo[i] == usize::MAX {
            let (l, h) = if i > 0 {
                (lo[i - 1], hi[i - 1])
            } else {
                (0, 1)
            };
            lo[i] = l;
            hi[i] = h;
        }
    }
    let mut band: Vec<(usize, usize)> = (0..n)
        .map(|i| {
            let a = i.saturating_sub(radius);
            let b = (i + radius + 1).min(n);
            let l = lo[a..b].iter().copied().min().unwrap_or(0);
            let h = hi[a..b].iter().copied().max().unwrap_or(m);
            (l.saturating_sub(radius), (h + radius).min(m))
        })
        .collect();
    band[0].0 = 0;
    // Monotone ends, and consecutive rows overlapping so a path always exists.
    for i in 1..n {
        band[i].0 = band[i].0.max(band[i - 1].0);
        band[i].1 = band[i].1.max(band[i - 1].1);
        if band[i].0 >= band[i - 1].1 {
            band[i].0 = band[i - 1].1.saturating_sub(1);
        }
    }
    band
}

/// Reference frame for every performance frame along a path (mean of the matched frames).
pub fn path_to_ref_per_perf(path: &Path, n: usize) -> Vec<f64> {
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0usize; n];
    for &(i, j) in path {
        if i < n {
            sum[i] += j as f64;
            count[i] += 1;
        }
    }
    let mut last = 0.0;
    (0..n)
        .map(|i| {
            if count[i] > 0 {
                last = sum[i] / count[i] as f64;
            }
            last
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over every monotone path with steps (1,0),(0,1),(1,1) and weights 1,1,w_d.
    fn brute_force(cost: &[f32], n: usize, m: usize, w_d: f64) -> f64 {
        #[allow(clippy::too_many_arguments)]
        fn go(cost: &[f32], n: usize, m: usize, w_d: f64, i: usize, j: usize, acc: f64) -> f64 {
            if i == n - 1 && j == m - 1 {
                return acc;
            }
            let mut best = f64::INFINITY;
            if i + 1 < n && j + 1 < m {
                best = best.min(go(
                    cost,
                    n,
                    m,
                    w_d,
                    i + 1,
                    j + 1,
                    acc + w_d * cost[(i + 1) * m + j + 1] as f64,
                ));
            }
            if i + 1 < n {
                let c = cost[(i + 1) * m + j] as f64;
                best = best.min(go(cost, n, m, w_d, i + 1, j, acc + c));
            }
            if j + 1 < m {
                let c = cost[i * m + j + 1] as f64;
                best = best.min(go(cost, n, m, w_d, i, j + 1, acc + c));
            }
            best
        }
        go(cost, n, m, w_d, 0, 0, cost[0] as f64)
    }

    #[test]
    fn full_dtw_matches_brute_force() {
        let mut rng = crate::test_util::Rng::new(7);
        for w_d in [1.0, 1.5, 2.0] {
            for (n, m) in [(1, 1), (1, 4), (3, 3), (4, 5), (5, 6), (6, 4)] {
                let cost: Vec<f32> = (0..n * m).map(|_| rng.next_f32()).collect();
                let got = dtw_full_matrix(&cost, n, m, false, w_d);
                let (path, total) = (&got.path, got.total_cost);
                let want = brute_force(&cost, n, m, w_d);
                assert!((total - want).abs() < 1e-5, "{n}x{m}: {total} vs {want}");
                assert_eq!(path[0], (0, 0));
                assert_eq!(*path.last().unwrap(), (n - 1, m - 1));
                // Path cost and weight recomputed from the steps equal the returned ones.
                let (mut acc, mut weight) = (cost[0] as f64, 1.0);
                for w in path.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    let c = cost[b.0 * m + b.1] as f64;
                    let step = if b.0 > a.0 && b.1 > a.1 { w_d } else { 1.0 };
                    acc += step * c;
                    weight += step;
                }
                assert!((acc - total).abs() < 1e-5);
                assert!((weight - got.path_weight).abs() < 1e-9);
            }
        }
    }

    fn synthetic(len: usize, seed: u64) -> Vec<FeatureFrame> {
        let mut rng = crate::test_util::Rng::new(seed);
        let mut frames = Vec::with_capacity(len);
        let mut cur = FeatureFrame::default();
        for k in 0..len {
            if k % 7 == 0 {
                for c in 0..N_CHROMA {
                    cur.chroma[c] = rng.next_f32().powi(3);
                }
                crate::features::chroma::normalize(&mut cur.chroma);
            }
            frames.push(cur);
        }
        frames
    }

    /// Time-stretch a sequence by a smooth warp; returns the stretched sequence and, for each
    /// of its frames, the source frame it came from.
    fn stretch(src: &[FeatureFrame], rate: impl Fn(f64) -> f64) -> (Vec<FeatureFrame>, Vec<usize>) {
        let mut out = Vec::new();
        let mut gt = Vec::new();
        let mut pos = 0.0f64;
        while (pos as usize) < src.len() {
            out.push(src[pos as usize]);
            gt.push(pos as usize);
            pos += rate(pos / src.len() as f64);
        }
        (out, gt)
    }

    #[test]
    fn multiscale_equals_full_on_stretched_sequence() {
        let reference = synthetic(4000, 3);
        let (perf, gt) = stretch(&reference, |x| 0.8 + 0.5 * (x * 9.0).sin().abs());
        let opts = DtwOptions {
            open_end: false,
            transpose_search: false,
            ..DtwOptions::default()
        };
        let ms = align_multiscale(&perf, &reference, opts, |_, _| {});
        let ref_of = path_to_ref_per_perf(&ms, perf.len());
        let mut worst = 0i64;
        for (i, &g) in gt.iter().enumerate() {
            // Held source frames are ambiguous inside a run of identical frames; compare the
            // chroma run (7 frames) the match falls in.
            worst = worst.max((ref_of[i] as i64 / 7 - g as i64 / 7).abs());
        }
        assert!(worst <= 1, "worst run error {worst}");
    }

    #[test]
    fn band_of_full_width_equals_full_matrix() {
        let a = synthetic(60, 1);
        let b = synthetic(80, 2);
        let w = CostWeights::default();
        let cost: Vec<f32> = (0..60 * 80)
            .map(|k| frame_cost(&a[k / 80], &b[k % 80], w))
            .collect();
        let opts = DtwOptions {
            open_end: true,
            weights: w,
            transpose_search: false,
            ..DtwOptions::default()
        };
        let full = dtw_full_matrix(&cost, 60, 80, true, opts.diagonal_weight);
        let p2 = align_multiscale(&a, &b, opts, |_, _| {});
        let band = dtw_band(
            60,
            80,
            &vec![(0, 80); 60],
            true,
            opts.diagonal_weight,
            |i, j| cost[i * 80 + j],
            |_| {},
        );
        assert_eq!(full.path, p2);
        assert_eq!(full, band);
    }

    /// Where every frame matches every other alike, the cost offset makes the straight path
    /// the only optimum: each horizontal step visits one more cell (by definition, under
    /// diagonal weight 1 a path to (i, j) visits i + 1 + h cells). Without it every monotone
    /// path ties.
    #[test]
    fn cost_offset_prefers_the_straight_path_through_a_flat_passage() {
        let mut f = FeatureFrame::default();
        f.chroma[3] = 1.0;
        let frames = vec![f; 60];
        let opts = DtwOptions {
            open_end: false,
            transpose_search: false,
            weights: CostWeights {
                offset: 0.15,
                ..CostWeights::OFFLINE_AUDIO
            },
            ..DtwOptions::default()
        };
        let path = align_multiscale(&frames, &frames, opts, |_, _| {});
        assert_eq!(path.len(), 60);
        assert!(path.iter().all(|&(i, j)| i == j), "{path:?}");
        let cells = |p: &Path| p.len() as f32;
        let c = dtw_full_matrix(&vec![0.15f32; 12 * 20], 12, 20, false, 1.0);
        // 12 rows, 20 columns: 11 diagonal steps and 8 horizontal ones, 20 cells.
        assert_eq!(cells(&c.path), 20.0);
        assert!(
            (c.total_cost - 20.0 * 0.15).abs() < 1e-6,
            "{}",
            c.total_cost
        );
    }

    /// A frame of the extractor's silence.
    fn silent_frame() -> FeatureFrame {
        FeatureFrame {
            chroma: crate::features::SILENT_CHROMA,
            ..FeatureFrame::default()
        }
    }

    /// A unit chroma frame sounding `classes`.
    fn sounding(classes: &[usize]) -> FeatureFrame {
        let mut f = FeatureFrame::default();
        for &k in classes {
            f.chroma[k] = 1.0;
        }
        crate::features::chroma::normalize(&mut f.chroma);
        f
    }

    #[test]
    fn leading_silence_counts_the_flat_frames_before_the_first_sound() {
        let mut frames = vec![silent_frame(); 7];
        frames.push(sounding(&[0]));
        frames.push(silent_frame());
        assert_eq!(leading_silence(&frames), 7);
        assert_eq!(leading_silence(&frames[7..]), 0);
        assert_eq!(leading_silence(&[]), 0);
    }

    /// A performance that opens with a second of silence is aligned from its first note to the
    /// reference's first note. A silent frame matches every note alike, and in an arpeggio a
    /// performance that is a few notes ahead matches as well as one on time, so a path from
    /// (0, 0) may cross the first notes during the silence and stay that far ahead until the
    /// harmony changes (the WTC prelude of the development corpus: 0.7 s).
    #[test]
    fn opening_silence_is_not_aligned_to_the_music() {
        let chords: [[usize; 3]; 3] = [[0, 4, 7], [5, 9, 0], [7, 11, 2]];
        // Each chord arpeggiated for 2 s, a note every 5 frames, the notes before it still
        // ringing (so a silent frame, flat, matches the full chord better than its first note).
        let reference: Vec<FeatureFrame> = chords
            .iter()
            .flat_map(|c| {
                (0..100).map(move |k| {
                    let mut f = FeatureFrame::default();
                    for (n, &class) in c.iter().enumerate().take(k / 5 + 1) {
                        f.chroma[class] = if n == (k / 5) % 3 { 1.0 } else { 0.6 };
                    }
                    crate::features::chroma::normalize(&mut f.chroma);
                    f
                })
            })
            .collect();
        for silence in [50usize, 53] {
            let mut perf = vec![silent_frame(); silence];
            perf.extend(reference.iter().copied());
            let opts = DtwOptions {
                transpose_search: false,
                ..DtwOptions::default()
            };
            let path = align_multiscale(&perf, &reference, opts, |_, _| {});
            let ref_of = path_to_ref_per_perf(&path, perf.len());
            // The last notes are the open end's to place.
            for (k, &j) in ref_of[silence..perf.len() - 20].iter().enumerate() {
                assert!(
                    (j - k as f64).abs() <= 2.0,
                    "silence {silence}: performance frame {} at reference frame {j}, not {k}",
                    k + silence
                );
            }
            // The silence itself is before the first note.
            let sound = silence / LEVEL_FACTOR * LEVEL_FACTOR;
            for (i, &j) in ref_of.iter().enumerate().take(sound) {
                assert_eq!(j, 0.0, "silent frame {i} at reference frame {j}");
            }
        }
    }
}
