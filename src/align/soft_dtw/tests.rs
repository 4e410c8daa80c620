//! Oracles: brute force over every alignment, central finite differences, the plain reference
//! recursions. Random data comes from a fixed-seed generator.

use super::*;
use proptest::prelude::*;

use crate::test_util::Rng;

impl Rng {
    fn matrix(&mut self, rows: usize, cols: usize, lo: f64, hi: f64) -> Matrix {
        Matrix::from_fn(rows, cols, |_, _| self.uniform(lo, hi))
    }
}

/// Every monotone alignment path from (0,0) to (n-1,m-1), as lists of cells.
fn all_paths(n: usize, m: usize) -> Vec<Vec<(usize, usize)>> {
    fn rec(
        i: usize,
        j: usize,
        n: usize,
        m: usize,
        cur: &mut Vec<(usize, usize)>,
        out: &mut Vec<Vec<(usize, usize)>>,
    ) {
        cur.push((i, j));
        if (i, j) == (n - 1, m - 1) {
            out.push(cur.clone());
        } else {
            if i + 1 < n {
                rec(i + 1, j, n, m, cur, out);
            }
            if j + 1 < m {
                rec(i, j + 1, n, m, cur, out);
            }
            if i + 1 < n && j + 1 < m {
                rec(i + 1, j + 1, n, m, cur, out);
            }
        }
        cur.pop();
    }
    let mut out = Vec::new();
    rec(0, 0, n, m, &mut Vec::new(), &mut out);
    out
}

/// Brute-force `SDTW^γ` and `E^γ` from the definition: a Gibbs distribution over all paths
/// (those inside the band when given).
fn brute_force(cost: &Matrix, gamma: f64, band: Option<usize>) -> (f64, Matrix) {
    let (n, m) = (cost.rows(), cost.cols());
    let mask = band_mask(n, m, band);
    let paths: Vec<_> = all_paths(n, m)
        .into_iter()
        .filter(|p| p.iter().all(|&(i, j)| mask[i * m + j]))
        .collect();
    let costs: Vec<f64> = paths
        .iter()
        .map(|p| p.iter().map(|&(i, j)| cost.get(i, j)).sum())
        .collect();
    let lo = costs.iter().copied().fold(f64::INFINITY, f64::min);
    let weights: Vec<f64> = costs.iter().map(|c| (-(c - lo) / gamma).exp()).collect();
    let z: f64 = weights.iter().sum();
    let mut e = Matrix::zeros(n, m);
    for (p, w) in paths.iter().zip(&weights) {
        for &(i, j) in p {
            e.set(i, j, e.get(i, j) + w / z);
        }
    }
    (lo - gamma * z.ln(), e)
}

const GAMMAS: [f64; 5] = [1e-3, 0.1, 1.0, 10.0, 1000.0];

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn delannoy_count_of_paths() {
    // D(4, 5) = 681 alignments of a 5 x 6 problem: the enumerator is complete.
    assert_eq!(all_paths(5, 6).len(), 681);
    assert_eq!(all_paths(1, 6).len(), 1);
    assert_eq!(all_paths(3, 3).len(), 13);
}

#[test]
fn value_and_alignment_match_brute_force_on_every_small_shape() {
    let mut rng = Rng::new(1);
    for n in 1..=5 {
        for m in 1..=6 {
            // Negative entries on purpose: nothing may assume C >= 0.
            let c = rng.matrix(n, m, -2.0, 3.0);
            for &gamma in &GAMMAS {
                let (bv, be) = brute_force(&c, gamma, None);
                let sd = SoftDtw::new(gamma).unwrap();
                let fast = sd.value_and_alignment(&c).unwrap();
                let v = sd.value(&c).unwrap();
                assert!(
                    close(fast.value, bv, 1e-12),
                    "{n}x{m} γ={gamma}: {} vs {bv}",
                    fast.value
                );
                assert!(
                    close(v, bv, 1e-12),
                    "{n}x{m} γ={gamma}: value-only {v} vs {bv}"
                );
                let err = fast.expected.max_abs_diff(&be);
                assert!(err < 1e-10, "{n}x{m} γ={gamma}: E differs by {err:e}");
                assert!(close(reference::value(&c, gamma, None), bv, 1e-12));
                let re = reference::expected_alignment(&c, gamma, None);
                assert!(
                    re.max_abs_diff(&be) < 1e-10,
                    "reference E {n}x{m} γ={gamma}"
                );
            }
        }
    }
}

#[test]
fn banded_value_and_alignment_match_brute_force() {
    let mut rng = Rng::new(2);
    for n in 2..=5 {
        for m in 2..=6 {
            let c = rng.matrix(n, m, -1.0, 2.0);
            for w in 0..=3 {
                let sd = SoftDtw::new(0.5).unwrap().with_band(w);
                match sd.value_and_alignment(&c) {
                    Ok(fast) => {
                        let (bv, be) = brute_force(&c, 0.5, Some(w));
                        assert!(close(fast.value, bv, 1e-12), "{n}x{m} band {w}");
                        assert!(close(sd.value(&c).unwrap(), bv, 1e-12), "{n}x{m} band {w}");
                        assert!(fast.expected.max_abs_diff(&be) < 1e-10, "{n}x{m} band {w}");
                    }
                    Err(e) => {
                        // A rejected band must really admit no path.
                        let mask = band_mask(n, m, Some(w));
                        let any = all_paths(n, m)
                            .iter()
                            .any(|p| p.iter().all(|&(i, j)| mask[i * m + j]));
                        assert!(!any, "{n}x{m} band {w} rejected but admits a path: {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn band_error_names_the_narrowest_working_band() {
    let c = Matrix::zeros(4, 40);
    let err = SoftDtw::new(1.0)
        .unwrap()
        .with_band(2)
        .value(&c)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("admits no alignment path"), "{msg}");
    let narrowest: usize = msg
        .rsplit("is ")
        .next()
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let sd = SoftDtw::new(1.0).unwrap();
    assert!(sd.with_band(narrowest).value(&c).unwrap().is_finite());
    assert!(sd.with_band(narrowest - 1).value(&c).is_err());
}

#[test]
fn unequal_lengths_with_a_workable_band_give_finite_values() {
    let mut rng = Rng::new(3);
    for &(n, m, w) in &[
        (100, 61, 5),
        (61, 100, 5),
        (200, 50, 3),
        (7, 300, 30),
        (1, 9, 0),
    ] {
        let c = rng.matrix(n, m, 0.0, 1.0);
        let sd = SoftDtw::new(0.1).unwrap().with_band(w);
        let v = sd.value(&c).unwrap();
        let r = reference::value(&c, 0.1, Some(w));
        assert!(
            v.is_finite() && close(v, r, 1e-11),
            "{n}x{m} band {w}: {v} vs {r}"
        );
        let vt = sd.value(&c.transpose()).unwrap();
        assert!(close(v, vt, 1e-11), "transpose symmetry {n}x{m}");
    }
}

#[test]
fn gradient_is_e_by_central_differences() {
    let mut rng = Rng::new(4);
    for &gamma in &[0.1, 1.0, 10.0] {
        let c = rng.matrix(4, 5, -1.0, 2.0);
        let sd = SoftDtw::new(gamma).unwrap();
        let e = sd.value_and_alignment(&c).unwrap().expected;
        let h = 1e-5;
        for i in 0..4 {
            for j in 0..5 {
                let mut cp = c.clone();
                cp.set(i, j, c.get(i, j) + h);
                let mut cm = c.clone();
                cm.set(i, j, c.get(i, j) - h);
                let fd = (sd.value(&cp).unwrap() - sd.value(&cm).unwrap()) / (2.0 * h);
                assert!(
                    (fd - e.get(i, j)).abs() < 1e-7,
                    "γ={gamma} ({i},{j}): {fd} vs {}",
                    e.get(i, j)
                );
            }
        }
    }
}

fn fd_grad(f: impl Fn(&Matrix) -> f64, x: &Matrix, h: f64) -> Matrix {
    Matrix::from_fn(x.rows(), x.cols(), |i, k| {
        let mut xp = x.clone();
        xp.set(i, k, x.get(i, k) + h);
        let mut xm = x.clone();
        xm.set(i, k, x.get(i, k) - h);
        (f(&xp) - f(&xm)) / (2.0 * h)
    })
}

#[test]
fn feature_gradients_match_central_differences() {
    let mut rng = Rng::new(5);
    let x = rng.matrix(6, 4, -1.0, 1.0);
    let y = rng.matrix(8, 4, -1.0, 1.0);
    for cost in [FeatureCost::SqEuclidean, FeatureCost::Cosine] {
        for &gamma in &[0.1, 1.0] {
            let sd = SoftDtw::new(gamma).unwrap();
            let (v, g) = sd.grad_features(&x, &y, cost).unwrap();
            assert!(close(v, sd.value_features(&x, &y, cost).unwrap(), 1e-12));
            let fd = fd_grad(|x| sd.value_features(x, &y, cost).unwrap(), &x, 1e-6);
            let err = g.max_abs_diff(&fd);
            assert!(err < 1e-6, "{cost:?} γ={gamma}: gradient off by {err:e}");

            let (dv, dg) = sd.divergence_grad(&x, &y, cost).unwrap();
            assert!(close(dv, sd.divergence(&x, &y, cost).unwrap(), 1e-12));
            let fd = fd_grad(|x| sd.divergence(x, &y, cost).unwrap(), &x, 1e-6);
            let err = dg.max_abs_diff(&fd);
            assert!(
                err < 1e-6,
                "{cost:?} γ={gamma}: divergence gradient off by {err:e}"
            );
        }
    }
}

#[test]
fn feature_costs_match_their_definitions() {
    let mut rng = Rng::new(6);
    let x = rng.matrix(5, 3, -1.0, 1.0);
    let mut y = rng.matrix(7, 3, -1.0, 1.0);
    for k in 0..3 {
        y.set(2, k, 0.0); // a silent frame: cosine cost 1
    }
    let sq = FeatureCost::SqEuclidean.matrix(&x, &y).unwrap();
    let cs = FeatureCost::Cosine.matrix(&x, &y).unwrap();
    for i in 0..5 {
        for j in 0..7 {
            let (a, b) = (x.row(i), y.row(j));
            let d2: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
            assert!((sq.get(i, j) - d2).abs() < 1e-12);
            let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
            let na = a.iter().map(|p| p * p).sum::<f64>().sqrt();
            let nb = b.iter().map(|p| p * p).sum::<f64>().sqrt();
            let want = if nb == 0.0 {
                1.0
            } else {
                1.0 - dot / (na * nb)
            };
            assert!((cs.get(i, j) - want).abs() < 1e-12);
        }
    }
    assert!(FeatureCost::Cosine
        .matrix(&x, &Matrix::zeros(3, 2))
        .is_err());
}

#[test]
fn alignment_properties_hold() {
    let mut rng = Rng::new(7);
    for &(n, m) in &[(1, 1), (1, 7), (7, 1), (9, 13), (30, 20)] {
        let c = rng.matrix(n, m, 0.0, 1.0);
        for &gamma in &GAMMAS {
            let e = SoftDtw::new(gamma)
                .unwrap()
                .value_and_alignment(&c)
                .unwrap()
                .expected;
            assert!((e.get(0, 0) - 1.0).abs() < 1e-12 && (e.get(n - 1, m - 1) - 1.0).abs() < 1e-12);
            for i in 0..n {
                let row = e.row(i);
                assert!(
                    row.iter().all(|&v| (-1e-12..=1.0 + 1e-12).contains(&v)),
                    "{n}x{m} γ={gamma}"
                );
                assert!(
                    row.iter().sum::<f64>() >= 1.0 - 1e-9,
                    "{n}x{m} γ={gamma} row {i}"
                );
            }
        }
    }
}

#[test]
fn small_gamma_converges_to_dtw_and_its_path() {
    let mut rng = Rng::new(8);
    let random = rng.matrix(12, 17, 0.0, 1.0);
    // The limit is the DTW path only where that path is the one best: every cell off a random
    // matrix's best path is raised by 0.05, so every other path costs at least that much more.
    let (_, best) = dtw_path(&random, None).unwrap();
    let c = Matrix::from_fn(12, 17, |i, j| {
        random.get(i, j) + if best.contains(&(i, j)) { 0.0 } else { 0.05 }
    });
    let (d, path) = dtw_path(&c, None).unwrap();
    assert_eq!(path, best);
    assert!(close(dtw(&c, None).unwrap(), d, 1e-12));
    assert!(close(reference::value(&c, 0.0, None), d, 1e-12));
    assert_eq!(path, reference::dtw_path(&c, None));
    let mut prev_gap = f64::INFINITY;
    for &gamma in &[1.0, 0.1, 0.01, 1e-3, 1e-4] {
        let al = SoftDtw::new(gamma)
            .unwrap()
            .value_and_alignment(&c)
            .unwrap();
        // SDTW <= DTW and DTW - SDTW <= γ log(#paths).
        let gap = d - al.value;
        assert!(
            gap >= -1e-12 && gap < prev_gap + 1e-12,
            "γ={gamma}: gap {gap}"
        );
        prev_gap = gap;
        if gamma <= 1e-3 {
            let hard = Matrix::from_fn(12, 17, |i, j| f64::from(path.contains(&(i, j)) as u8));
            let err = al.expected.max_abs_diff(&hard);
            assert!(err < 1e-3, "γ={gamma}: E is {err} from the DTW path");
        }
    }
    assert!(prev_gap < 1e-4 * 30.0f64.ln() * 12.0);
}

#[test]
fn extreme_gamma_and_costs_stay_finite() {
    let mut rng = Rng::new(9);
    for &scale in &[1e-3, 1.0, 1e6] {
        let c = rng.matrix(40, 33, -scale, scale);
        for &gamma in &[1e-4, 1e-2, 1.0, 1e3] {
            let sd = SoftDtw::new(gamma).unwrap();
            let al = sd.value_and_alignment(&c).unwrap();
            assert!(al.value.is_finite(), "scale {scale} γ={gamma}");
            assert!(al
                .expected
                .as_slice()
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0));
            let r = reference::value(&c, gamma, None);
            assert!(
                close(al.value, r, 1e-11),
                "scale {scale} γ={gamma}: {} vs {r}",
                al.value
            );
            // The backward weights are exp((S - R)/γ) with S, R of order scale·(N+M): both
            // implementations lose about eps·scale·(N+M)/γ there, so compare within that.
            let kappa = f64::EPSILON * scale * 73.0 / gamma;
            let re = reference::expected_alignment(&c, gamma, None);
            let err = al.expected.max_abs_diff(&re);
            assert!(
                err < 1e-8 + 100.0 * kappa,
                "scale {scale} γ={gamma}: E off by {err:e}"
            );
            let e = &al.expected;
            assert!(e.as_slice().iter().all(|&v| v <= 1.0 + 1e-9));
            assert!((e.get(0, 0) - 1.0).abs() < 1e-9 && (e.get(39, 32) - 1.0).abs() < 1e-9);
            if gamma < 1e-3 * scale {
                // Deep in the hard regime E is the DTW path whatever the conditioning.
                let (_, path) = dtw_path(&c, None).unwrap();
                let hard = Matrix::from_fn(40, 33, |i, j| f64::from(path.contains(&(i, j)) as u8));
                assert!(e.max_abs_diff(&hard) < 1e-6, "scale {scale} γ={gamma}");
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(SoftDtw::new(0.0).is_err());
    assert!(SoftDtw::new(-1.0).is_err());
    assert!(SoftDtw::new(f64::NAN).is_err());
    let sd = SoftDtw::new(1.0).unwrap();
    assert!(sd.value(&Matrix::zeros(0, 3)).is_err());
    let mut c = Matrix::zeros(2, 2);
    c.set(1, 0, f64::NAN);
    assert!(sd.value(&c).is_err());
    assert!(sd.value_and_alignment(&c).is_err());
    assert!(Matrix::new(2, 2, vec![0.0; 3]).is_err());
    assert!(Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).is_err());
}

#[test]
fn divergence_of_a_sequence_with_itself_is_zero_and_positive_elsewhere() {
    let mut rng = Rng::new(10);
    for cost in [FeatureCost::SqEuclidean, FeatureCost::Cosine] {
        for &gamma in &[0.01, 1.0, 10.0] {
            let sd = SoftDtw::new(gamma).unwrap();
            let x = rng.matrix(15, 12, 0.0, 1.0);
            let y = rng.matrix(11, 12, 0.0, 1.0);
            assert!(sd.divergence(&x, &x, cost).unwrap().abs() < 1e-9);
            assert!(sd.divergence(&x, &y, cost).unwrap() > 0.0);
        }
    }
}

#[test]
fn batch_equals_one_by_one() {
    let mut rng = Rng::new(11);
    let pairs: Vec<(Matrix, Matrix)> = (0..9)
        .map(|k| {
            (
                rng.matrix(10 + k, 4, 0.0, 1.0),
                rng.matrix(20 - k, 4, 0.0, 1.0),
            )
        })
        .collect();
    let sd = SoftDtw::new(0.3).unwrap();
    for cost in [FeatureCost::SqEuclidean, FeatureCost::Cosine] {
        let vs = sd.batch_values(&pairs, cost);
        let ds = sd.batch_divergences(&pairs, cost);
        for (k, (x, y)) in pairs.iter().enumerate() {
            assert_eq!(
                *vs[k].as_ref().unwrap(),
                sd.value_features(x, y, cost).unwrap()
            );
            assert_eq!(*ds[k].as_ref().unwrap(), sd.divergence(x, y, cost).unwrap());
        }
    }
    let bad = vec![(Matrix::zeros(3, 2), Matrix::zeros(3, 5))];
    assert!(sd.batch_values(&bad, FeatureCost::SqEuclidean)[0].is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fast_matches_reference(
        n in 1usize..40,
        m in 1usize..40,
        band in proptest::option::of(0usize..12),
        log_gamma in -3.0f64..3.0,
        seed in any::<u64>(),
    ) {
        let gamma = 10f64.powf(log_gamma);
        let c = Rng::new(seed).matrix(n, m, -1.0, 4.0);
        let sd = SoftDtw::new(gamma).unwrap();
        let sd = match band { Some(w) => sd.with_band(w), None => sd };
        match sd.value_and_alignment(&c) {
            Ok(al) => {
                let r = reference::value(&c, gamma, band);
                prop_assert!(r.is_finite());
                prop_assert!(close(al.value, r, 1e-11), "{} vs {}", al.value, r);
                prop_assert!(close(sd.value(&c).unwrap(), r, 1e-11));
                let re = reference::expected_alignment(&c, gamma, band);
                prop_assert!(al.expected.max_abs_diff(&re) < 1e-9);
                let hard = dtw(&c, band).unwrap();
                prop_assert!(close(hard, reference::value(&c, 0.0, band), 1e-12));
            }
            Err(_) => {
                // Rejected only when the reference finds no path either.
                prop_assert!(band.is_some());
                prop_assert!(reference::value(&c, gamma, band).is_infinite());
            }
        }
    }

    #[test]
    fn divergence_is_non_negative(
        n in 1usize..12,
        m in 1usize..12,
        log_gamma in -2.0f64..2.0,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.matrix(n, 3, -1.0, 1.0);
        let y = rng.matrix(m, 3, -1.0, 1.0);
        let sd = SoftDtw::new(10f64.powf(log_gamma)).unwrap();
        for cost in [FeatureCost::SqEuclidean, FeatureCost::Cosine] {
            prop_assert!(sd.divergence(&x, &y, cost).unwrap() >= -1e-9);
        }
    }
}

#[test]
fn multi_stripe_values_match_reference_and_features_path() {
    // Shapes spanning several 64-row stripes, both orientations, with and without band.
    let mut rng = Rng::new(12);
    for &(n, m) in &[(150, 70), (70, 150), (129, 129), (65, 1), (1, 200)] {
        let x = rng.matrix(n, 5, -1.0, 1.0);
        let y = rng.matrix(m, 5, -1.0, 1.0);
        for band in [None, Some(40)] {
            for cost in [FeatureCost::SqEuclidean, FeatureCost::Cosine] {
                let c = cost.matrix(&x, &y).unwrap();
                let mut sd = SoftDtw::new(0.2).unwrap();
                if let Some(w) = band {
                    sd = sd.with_band(w);
                }
                let r = reference::value(&c, 0.2, band);
                let v = sd.value(&c).unwrap();
                let vf = sd.value_features(&x, &y, cost).unwrap();
                let al = sd.value_and_alignment(&c).unwrap();
                assert!(close(v, r, 1e-11), "{n}x{m} {band:?}: {v} vs {r}");
                assert!(
                    close(vf, r, 1e-11),
                    "{n}x{m} {band:?} features: {vf} vs {r}"
                );
                assert!(
                    close(al.value, r, 1e-11),
                    "{n}x{m} {band:?}: {} vs {r}",
                    al.value
                );
                let d = dtw(&c, band).unwrap();
                assert!(close(d, reference::value(&c, 0.0, band), 1e-12));
            }
        }
    }
}

#[test]
fn multi_stripe_alignment_matches_reference() {
    // The backward sweep carries E and the weights across 64-row stripes.
    let mut rng = Rng::new(13);
    for &(n, m) in &[(150, 70), (70, 150), (130, 3), (3, 130), (64, 65), (65, 64)] {
        let c = rng.matrix(n, m, -1.0, 2.0);
        for band in [None, Some(30)] {
            let mut sd = SoftDtw::new(0.3).unwrap();
            if let Some(w) = band {
                sd = sd.with_band(w);
            }
            match sd.value_and_alignment(&c) {
                Ok(al) => {
                    let r = reference::value(&c, 0.3, band);
                    assert!(close(al.value, r, 1e-11), "{n}x{m} {band:?}");
                    let re = reference::expected_alignment(&c, 0.3, band);
                    let err = al.expected.max_abs_diff(&re);
                    assert!(err < 1e-9, "{n}x{m} {band:?}: E off by {err:e}");
                }
                Err(_) => assert!(reference::value(&c, 0.3, band).is_infinite()),
            }
        }
    }
}

#[test]
fn feature_alignment_and_gradient_match_the_cost_matrix_path() {
    let mut rng = Rng::new(14);
    let x = rng.matrix(150, 5, -1.0, 1.0);
    let mut y = rng.matrix(90, 5, -1.0, 1.0);
    for k in 0..5 {
        y.set(40, k, 0.0); // a silent frame
    }
    for cost in [FeatureCost::SqEuclidean, FeatureCost::Cosine] {
        for band in [None, Some(40)] {
            let mut sd = SoftDtw::new(0.5).unwrap();
            if let Some(w) = band {
                sd = sd.with_band(w);
            }
            let cm = cost.matrix(&x, &y).unwrap();
            let want = sd.value_and_alignment(&cm).unwrap();
            let got = sd.alignment_features(&x, &y, cost).unwrap();
            assert!(close(got.value, want.value, 1e-12), "{cost:?} {band:?}");
            assert!(got.expected.max_abs_diff(&want.expected) < 1e-12);
            let (v, g) = sd.grad_features(&x, &y, cost).unwrap();
            assert!(close(v, want.value, 1e-12));
            let gw = cost.grad_first(&x, &y, &want.expected).unwrap();
            let scale = gw.as_slice().iter().fold(1.0f64, |a, v| a.max(v.abs()));
            let err = g.max_abs_diff(&gw);
            assert!(
                err < 1e-10 * scale,
                "{cost:?} {band:?}: gradient off by {err:e}"
            );
        }
    }
}

#[test]
fn pipelined_value_is_the_sequential_value_to_the_bit() {
    let mut rng = Rng::new(15);
    for &(n, m) in &[(300, 200), (200, 300), (129, 64), (65, 1), (700, 40)] {
        let x = rng.matrix(n, 4, -1.0, 1.0);
        let y = rng.matrix(m, 4, -1.0, 1.0);
        for band in [None, Some(60)] {
            for cost in [FeatureCost::SqEuclidean, FeatureCost::Cosine] {
                let mut sd = SoftDtw::new(0.7).unwrap();
                if let Some(w) = band {
                    sd = sd.with_band(w);
                }
                match sd.value_features(&x, &y, cost) {
                    Ok(want) => {
                        for threads in [1, 2, 3] {
                            let got = sd.value_features_threads(&x, &y, cost, threads).unwrap();
                            assert_eq!(got.to_bits(), want.to_bits(), "{n}x{m} {band:?} {threads}");
                        }
                    }
                    Err(_) => assert!(sd.value_features_threads(&x, &y, cost, 2).is_err()),
                }
            }
        }
    }
}
