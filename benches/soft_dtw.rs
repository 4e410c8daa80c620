//! Soft-DTW speed: value + E against the peers' fwd+grad, value alone, batch scaling (1 vs 2
//! threads), online soft aligner step.
//!
//! - `cargo bench --bench soft_dtw` (criterion; the peers are timed by
//!   ../shared/peers/softdtw_bench.py, run it in the same session to compare ratios);
//! - `cargo bench --bench soft_dtw -- cpu [N...]`: CPU milliseconds per call (thread CPU time,
//!   mean over repeats, as the peer script's `process_time`) of value + E, value + E + gradient
//!   and the value alone, default N = 1024;
//! - `cargo bench --bench soft_dtw -- batch`: 64 pairs of 256 x 256, 1 and 2 threads, CPU and
//!   wall time;
//! - `cargo bench --bench soft_dtw -- big`: one N = M = 4096 value + E, time and peak memory;
//! - `cargo bench --bench soft_dtw -- online`: per-step latency percentiles of the online
//!   soft aligner with a 10 s (500-frame) window.

use std::hint::black_box;

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, BenchmarkId, Criterion};
use scorefollow::align::soft_dtw::{FeatureCost, Matrix, SoftDtw};
use scorefollow::align::soft_online::{SoftOnline, SoftOnlineConfig};
use scorefollow::align::OnlineAligner;
use scorefollow::features::{FeatureFrame, N_CHROMA};

/// Gaussian-ish random sequence (sum of uniforms), fixed seed.
fn sequence(n: usize, dim: usize, seed: u64) -> Matrix {
    let mut s = seed;
    let mut u = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    Matrix::from_fn(n, dim, |_, _| (0..4).map(|_| u()).sum::<f64>() - 2.0)
}

fn value_and_grad(c: &mut Criterion) {
    let sd = SoftDtw::new(1.0).expect("valid benchmark input");
    let mut g = c.benchmark_group("sdtw_sqeuclid_d12");
    g.sample_size(10);
    for &n in &[128usize, 512, 1024, 2048] {
        let x = sequence(n, 12, 1);
        let y = sequence(n, 12, 2);
        // Same work as the peers' fwd+grad: cost matrix, forward, backward (E), Jacobian.
        g.bench_with_input(BenchmarkId::new("fwd_grad", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    sd.grad_features(&x, &y, FeatureCost::SqEuclidean)
                        .expect("valid benchmark input"),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("value_and_E", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    sd.alignment_features(&x, &y, FeatureCost::SqEuclidean)
                        .expect("valid benchmark input")
                        .value,
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("fwd", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    sd.value_features(&x, &y, FeatureCost::SqEuclidean)
                        .expect("valid benchmark input"),
                )
            })
        });
        let cm = FeatureCost::SqEuclidean
            .matrix(&x, &y)
            .expect("valid benchmark input");
        g.bench_with_input(BenchmarkId::new("value_and_E_from_C", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    sd.value_and_alignment(&cm)
                        .expect("valid benchmark input")
                        .value,
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("value_from_C", n), &n, |b, _| {
            b.iter(|| black_box(sd.value(&cm).expect("valid benchmark input")))
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let sd = SoftDtw::new(1.0).expect("valid benchmark input");
    let pairs: Vec<(Matrix, Matrix)> = (0..64)
        .map(|k| (sequence(256, 12, 2 * k + 1), sequence(256, 12, 2 * k + 2)))
        .collect();
    let mut g = c.benchmark_group("sdtw_batch_64x256x256");
    g.sample_size(10);
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("valid benchmark input");
        g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| pool.install(|| black_box(sd.batch_values(&pairs, FeatureCost::SqEuclidean))))
        });
    }
    g.finish();
}

/// Random unit-norm chroma frames with some onset energy.
fn frames(n: usize, seed: u64) -> Vec<FeatureFrame> {
    let m = sequence(n, 2 * N_CHROMA, seed);
    (0..n)
        .map(|i| {
            let mut f = FeatureFrame::default();
            let mut norm = 0.0f32;
            for k in 0..N_CHROMA {
                f.chroma[k] = m.get(i, k).abs() as f32;
                norm += f.chroma[k] * f.chroma[k];
                f.onset[k] = 0.2 * m.get(i, N_CHROMA + k).abs() as f32;
            }
            for v in &mut f.chroma {
                *v /= norm.sqrt().max(1e-9);
            }
            f
        })
        .collect()
}

fn online_step(c: &mut Criterion) {
    let reference: Arc<[FeatureFrame]> = frames(6000, 7).into();
    let perf = frames(4000, 8);
    let mut al = SoftOnline::new(reference, SoftOnlineConfig::default());
    let mut k = 0usize;
    c.bench_function("soft_online_step_window500", |b| {
        b.iter(|| {
            k = (k + 1) % perf.len();
            black_box(al.step(&perf[k]))
        })
    });
}

/// Per-step latency percentiles (µs) of the online soft aligner, 10 s window.
fn online_percentiles() {
    let reference: Arc<[FeatureFrame]> = frames(6000, 7).into();
    let perf = frames(5000, 8);
    let mut al = SoftOnline::new(reference, SoftOnlineConfig::default());
    let mut ns: Vec<u64> = perf
        .iter()
        .map(|f| {
            let t = Instant::now();
            black_box(al.step(f));
            t.elapsed().as_nanos() as u64
        })
        .collect();
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "online soft step, window 500 frames, {} steps: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
        ns.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
}

/// CPU time of the calling thread (seconds).
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Mean CPU milliseconds of `f` over at least `min_reps` calls and 1 s of CPU, after one
/// warm-up call.
fn cpu_ms(mut f: impl FnMut(), min_reps: usize) -> f64 {
    f();
    let t0 = thread_cpu_s();
    let mut reps = 0;
    while reps < min_reps || thread_cpu_s() - t0 < 1.0 {
        f();
        reps += 1;
    }
    (thread_cpu_s() - t0) * 1e3 / reps as f64
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time per call, single thread, random N x 12 sequences, γ = 1.
fn cpu_table(sizes: &[usize]) {
    let sd = SoftDtw::new(1.0).expect("valid benchmark input");
    println!("load average {}", load_average());
    println!("     N  value+E_ms  value+E+grad_ms  value_ms   (CPU ms per call, one thread)");
    for &n in sizes {
        let x = sequence(n, 12, 1);
        let y = sequence(n, 12, 2);
        let c = FeatureCost::SqEuclidean;
        let e = cpu_ms(
            || {
                drop(black_box(
                    sd.alignment_features(&x, &y, c)
                        .expect("valid benchmark input"),
                ))
            },
            3,
        );
        let g = cpu_ms(
            || {
                drop(black_box(
                    sd.grad_features(&x, &y, c).expect("valid benchmark input"),
                ))
            },
            3,
        );
        let v = cpu_ms(
            || {
                black_box(sd.value_features(&x, &y, c).expect("valid benchmark input"));
            },
            3,
        );
        println!("{n:6} {e:11.2} {g:16.2} {v:9.2}");
    }
    println!("load average {}", load_average());
}

/// 64 pairs of 256 x 256 (d = 12) on a rayon pool of 1 and of 2 threads.
fn batch_table() {
    let sd = SoftDtw::new(1.0).expect("valid benchmark input");
    let pairs: Vec<(Matrix, Matrix)> = (0..64)
        .map(|k| (sequence(256, 12, 2 * k + 1), sequence(256, 12, 2 * k + 2)))
        .collect();
    println!("load average {}", load_average());
    for round in 0..2 {
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("valid benchmark input");
            let run =
                || pool.install(|| black_box(sd.batch_values(&pairs, FeatureCost::SqEuclidean)));
            run();
            let reps = 20;
            let t = Instant::now();
            for _ in 0..reps {
                run();
            }
            let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
            println!("round {round}: 64 x (256 x 256) batch values, {threads} thread(s): {ms:.2} ms wall per batch");
        }
    }
    println!("load average {}", load_average());
}

/// Peak resident memory of this process (kB), from /proc (Linux).
fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One N = M = 4096 value + gradient with respect to X (cost matrix, forward, backward).
fn big() {
    let sd = SoftDtw::new(1.0).expect("valid benchmark input");
    let x = sequence(4096, 12, 1);
    let y = sequence(4096, 12, 2);
    let before = peak_rss_kb();
    let t = Instant::now();
    let al = sd
        .alignment_features(&x, &y, FeatureCost::SqEuclidean)
        .expect("valid benchmark input");
    let el = t.elapsed().as_secs_f64();
    println!(
        "N = M = 4096 value + E (E stored, 4096 x 4096): {:.2} s, value {:.3}, peak RSS {} MB (before: {} MB)",
        el,
        al.value,
        peak_rss_kb().map_or(-1, |k| (k / 1024) as i64),
        before.map_or(-1, |k| (k / 1024) as i64)
    );
    drop(al);
    let t = Instant::now();
    let (v, g) = sd
        .grad_features(&x, &y, FeatureCost::SqEuclidean)
        .expect("valid benchmark input");
    black_box(&g);
    println!(
        "N = M = 4096 value + gradient: {:.2} s, value {v:.3}, peak RSS so far {} MB",
        t.elapsed().as_secs_f64(),
        peak_rss_kb().map_or(-1, |k| (k / 1024) as i64),
    );
}

criterion_group!(benches, value_and_grad, batch, online_step);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "big") {
        big();
        return;
    }
    if args.iter().any(|a| a == "online") {
        online_percentiles();
        return;
    }
    if let Some(k) = args.iter().position(|a| a == "cpu") {
        let sizes: Vec<usize> = args[k + 1..]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        cpu_table(if sizes.is_empty() { &[1024] } else { &sizes });
        return;
    }
    if args.iter().any(|a| a == "batch") {
        batch_table();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
