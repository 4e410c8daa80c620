//! Soft-DTW speed: value + E against the peers' fwd+grad, value alone, batch scaling.
//! `cargo bench --bench soft_dtw`; the peers are timed by ../shared/peers/softdtw_bench.py.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use scorefollow::align::soft_dtw::{FeatureCost, Matrix, SoftDtw};

/// Gaussian-ish random sequence (sum of uniforms), fixed seed.
fn sequence(n: usize, dim: usize, seed: u64) -> Matrix {
    let mut s = seed;
    let mut u = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    Matrix::from_fn(n, dim, |_, _| (0..4).map(|_| u()).sum::<f64>() - 2.0)
}

fn value_and_grad(c: &mut Criterion) {
    let sd = SoftDtw::new(1.0).unwrap();
    let mut g = c.benchmark_group("sdtw_sqeuclid_d12");
    g.sample_size(10);
    for &n in &[128usize, 512, 1024, 2048] {
        let x = sequence(n, 12, 1);
        let y = sequence(n, 12, 2);
        // Same work as the peers' fwd+grad: cost matrix, forward, backward (E), Jacobian.
        g.bench_with_input(BenchmarkId::new("fwd_grad", n), &n, |b, _| {
            b.iter(|| black_box(sd.grad_features(&x, &y, FeatureCost::SqEuclidean).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("fwd", n), &n, |b, _| {
            b.iter(|| black_box(sd.value_features(&x, &y, FeatureCost::SqEuclidean).unwrap()))
        });
        let cm = FeatureCost::SqEuclidean.matrix(&x, &y).unwrap();
        g.bench_with_input(BenchmarkId::new("value_and_E_from_C", n), &n, |b, _| {
            b.iter(|| black_box(sd.value_and_alignment(&cm).unwrap().value))
        });
        g.bench_with_input(BenchmarkId::new("value_from_C", n), &n, |b, _| {
            b.iter(|| black_box(sd.value(&cm).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, value_and_grad);
criterion_main!(benches);
