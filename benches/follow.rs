//! Speed of the follower's stages: feature extraction (x real time on one core) and one OLTW
//! step with a 10 s window (median by criterion, plus p50/p99 measured over a whole piece), and
//! the soft aligner's step percentiles on the same piece.
//! Run: `cargo bench --bench follow`. Reads the bundled scores/ only.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scorefollow::align::cost::TransposedReference;
use scorefollow::align::oltw::{Oltw, OltwConfig};
use scorefollow::align::soft_online::{SoftOnline, SoftOnlineConfig};
use scorefollow::align::tempo::{rescale_frames, TempoAdaptive, TempoAdaptiveConfig, TempoScales};
use scorefollow::align::OnlineAligner;
use scorefollow::features::{self, FeatureConfig, FeatureFrame};
use scorefollow::score::reference::Reference;

fn load(piece: &str) -> (Vec<f32>, Reference) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scores")
        .join(piece);
    let cfg = FeatureConfig::default();
    let audio =
        scorefollow::audio::decode::load_mono(&dir.join("performance.flac"), cfg.sample_rate_hz)
            .expect("decode");
    let reference = Reference::from_score_file(
        &dir.join("score.mid"),
        &cfg,
        &scorefollow::score::reference::ScoreRendering::default(),
    )
    .expect("score");
    (audio, reference)
}

fn percentiles(mut ns: Vec<u64>) -> (f64, f64, f64) {
    ns.sort_unstable();
    let at = |p: f64| ns[((p / 100.0) * (ns.len() - 1) as f64) as usize] as f64 / 1000.0;
    (at(50.0), at(99.0), *ns.last().unwrap_or(&0) as f64 / 1000.0)
}

fn bench(c: &mut Criterion) {
    let (audio, reference) = load("mozart_k331");
    let cfg = FeatureConfig::default();
    let seconds = audio.len() as f64 / cfg.sample_rate_hz as f64;

    let mut g = c.benchmark_group("features");
    g.throughput(Throughput::Elements(audio.len() as u64));
    g.sample_size(10);
    g.bench_function("extract_79s_with_tuning", |b| {
        b.iter(|| features::extract(&audio, &cfg))
    });
    g.bench_function("extract_79s_fixed_tuning", |b| {
        b.iter(|| features::extract_with_tuning(&audio, &cfg, 0.0))
    });
    g.finish();
    let t = Instant::now();
    let reps = 5;
    for _ in 0..reps {
        std::hint::black_box(features::extract_with_tuning(&audio, &cfg, 0.0));
    }
    let per = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "features: {seconds:.1} s of audio in {:.1} ms = {:.0}x real time (one core)",
        per * 1e3,
        seconds / per
    );

    let perf: Vec<FeatureFrame> = features::extract_with_tuning(&audio, &cfg, 0.0).frames;
    let frames: Arc<[FeatureFrame]> = reference.frames.clone();
    let ocfg = OltwConfig {
        window_frames: 500,
        ..OltwConfig::default()
    };
    let mut g = c.benchmark_group("oltw");
    g.bench_function("step_window_10s", |b| {
        let mut oltw = Oltw::new(frames.clone(), ocfg);
        let mut k = 0usize;
        b.iter(|| {
            let s = oltw.step(&perf[k % perf.len()]);
            k += 1;
            if k.is_multiple_of(perf.len()) {
                oltw.reset_to(0);
            }
            s
        })
    });
    g.finish();
    // The follower's aligner: the soft aligner with the tempo model, on the piece as played
    // and on the piece at 1.5x its pace (which makes it change scale).
    let scales = Arc::new(TempoScales::new(
        &frames,
        Arc::new(TransposedReference::new(&frames)),
        &TempoScales::default_scales(),
    ));
    let make_tempo = || {
        TempoAdaptive::new(
            scales.clone(),
            TempoAdaptive::soft_config(SoftOnlineConfig::default()),
            TempoAdaptiveConfig::default(),
        )
    };
    let fast = rescale_frames(&perf, 1.5);
    // Per-step distribution over whole passes of the piece, wall clock and the thread's CPU
    // time (the second leaves out the host's preemptions of this virtual machine's CPU).
    for clock in [Clock::Wall, Clock::ThreadCpu] {
        let ns = step_times(&perf, clock, || Oltw::new(frames.clone(), ocfg));
        let (p50, p99, max) = percentiles(ns);
        println!(
            "oltw step, 10 s window, {}: p50 {p50:.2} us, p99 {p99:.2} us, max {max:.2} us",
            clock.name()
        );
        // The soft aligner on the same material (benches/soft_dtw.rs times it on random frames).
        let ns = step_times(&perf, clock, || {
            SoftOnline::new(frames.clone(), SoftOnlineConfig::default())
        });
        let (p50, p99, max) = percentiles(ns);
        println!(
            "soft step, 10 s window, {}: p50 {p50:.2} us, p99 {p99:.2} us, max {max:.2} us",
            clock.name()
        );
        for (label, frames) in [("as played", &perf), ("at 1.5x", &fast)] {
            let ns = step_times(frames, clock, make_tempo);
            let (p50, p99, max) = percentiles(ns);
            println!(
                "soft step with the tempo model, {label}, {}: p50 {p50:.2} us, p99 {p99:.2} us, max {max:.2} us",
                clock.name()
            );
        }
    }
    baseline_tail();
}

/// The machine's own tail: a fixed piece of arithmetic (no memory beyond 4 kB, no branches that
/// depend on data) timed like a step. On a virtual machine its p99 shows how much the host
/// and interrupts add to any step of that length, whatever the step does.
fn baseline_tail() {
    let mut x = vec![1.0f64; 500];
    let mut work = |reps: usize| {
        let mut s = 0.0;
        for _ in 0..reps {
            for v in x.iter_mut() {
                *v = (*v * 1.000_000_1 + 0.5).sqrt();
                s += *v;
            }
        }
        s
    };
    for reps in [6usize, 12] {
        let mut ns = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let t = Instant::now();
            std::hint::black_box(work(reps));
            ns.push(t.elapsed().as_nanos() as u64);
        }
        let (p50, p99, max) = percentiles(ns);
        println!("baseline, fixed arithmetic: p50 {p50:.2} us, p99 {p99:.2} us, max {max:.2} us");
    }
}

#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ThreadCpu,
}

impl Clock {
    fn name(self) -> &'static str {
        match self {
            Clock::Wall => "wall",
            Clock::ThreadCpu => "thread CPU",
        }
    }

    fn now_ns(self, start: Instant) -> u64 {
        match self {
            Clock::Wall => start.elapsed().as_nanos() as u64,
            Clock::ThreadCpu => {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
                unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
                ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
            }
        }
    }
}

/// Nanoseconds per step over five whole passes of `perf`, a fresh aligner each pass.
fn step_times<A: OnlineAligner>(
    perf: &[FeatureFrame],
    clock: Clock,
    make: impl Fn() -> A,
) -> Vec<u64> {
    let start = Instant::now();
    let mut ns = Vec::with_capacity(perf.len() * 5);
    for _ in 0..5 {
        let mut aligner = make();
        for f in perf {
            let t0 = clock.now_ns(start);
            std::hint::black_box(aligner.step(f));
            ns.push(clock.now_ns(start) - t0);
        }
    }
    ns
}

criterion_group!(benches, bench);
criterion_main!(benches);
