//! Theme spotting and collection matching at scale (release build):
//!
//! ```text
//! cargo bench --bench spot                       # both parts, 1 M shingles
//! SPOT_BENCH_SHINGLES=200000 cargo bench --bench spot
//! SPOT_BENCH_PART=spot|index cargo bench --bench spot
//! ```
//!
//! Part `spot`: a 3-minute recording (synthetic chroma, 50 frames/s) searched for 10 themes of
//! 5 s at 50 tempo scalings (0.5..2), without and with the 12 transpositions; wall time of CENS
//! + matching + peak picking.
//!
//! Part `index`: a synthetic collection of CENS-like sequences (chord progressions with random
//! durations and cross-fades) grown to N shingles (hop 1 frame); reports build time, resident
//! memory, k-NN query time and recall@10 of the inverted file against brute force for several
//! `nprobe`, and the time of a whole multi-scale clip query.

use std::time::Instant;

use scorefollow::features::cens::{cens, CensConfig};
use scorefollow::features::{Chroma, N_CHROMA};
use scorefollow::spot::index::{Index, IndexConfig, IndexQuery};
use scorefollow::spot::ivf::{exact_knn, recall};
use scorefollow::spot::matcher::{search_many, MatchParams};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 1_000_000) as f32 / 1_000_000.0
    }
}

fn unit(mut c: Chroma) -> Chroma {
    let n = c.iter().map(|v| v * v).sum::<f32>().sqrt();
    if n > 0.0 {
        c.iter_mut().for_each(|v| *v /= n);
    }
    c
}

/// Chord-progression chroma: a triad (plus noise) held for `min_hold..min_hold+spread` frames.
fn progression(len: usize, rng: &mut Rng, min_hold: usize, spread: usize) -> Vec<Chroma> {
    let mut out = Vec::with_capacity(len);
    let mut prev = [0.1f32; N_CHROMA];
    while out.len() < len {
        let root = (rng.next() % 12) as usize;
        let minor = rng.next().is_multiple_of(2);
        let mut c = [0.05f32; N_CHROMA];
        c[root] = 1.0;
        c[(root + if minor { 3 } else { 4 }) % 12] = 0.6 + 0.3 * rng.unit();
        c[(root + 7) % 12] = 0.5 + 0.3 * rng.unit();
        c[(rng.next() % 12) as usize] += 0.4 * rng.unit();
        let hold = min_hold + (rng.next() as usize % spread.max(1));
        for i in 0..hold {
            // Cross-fade over the first frames, as CENS smoothing would.
            let a = ((i + 1) as f32 / 3.0).min(1.0);
            let mut f = [0.0f32; N_CHROMA];
            for p in 0..N_CHROMA {
                f[p] = a * c[p] + (1.0 - a) * prev[p] + 0.03 * rng.unit();
            }
            out.push(unit(f));
        }
        prev = c;
    }
    out.truncate(len);
    out
}

fn rss_mb() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn part_spot() {
    let mut rng = Rng(42);
    let rec = progression(9000, &mut rng, 10, 40); // 180 s at 50 frames/s
    let themes: Vec<Vec<Chroma>> = (0..10)
        .map(|t| {
            let s = 500 + t * 800;
            rec[s..s + 250].to_vec()
        })
        .collect();
    let cc = CensConfig::default();
    for transpose in [false, true] {
        let params = MatchParams {
            n_scales: 50,
            transpose,
            ..Default::default()
        };
        let mut best = f64::INFINITY;
        let mut found = 0;
        for _ in 0..3 {
            let t0 = Instant::now();
            let db = cens(&rec, &cc);
            let qs: Vec<Vec<Chroma>> = themes.iter().map(|t| cens(t, &cc)).collect();
            let q_refs: Vec<&[Chroma]> = qs.iter().map(Vec::as_slice).collect();
            let hits = search_many(&q_refs, &[&db], &params).expect("valid parameters");
            best = best.min(t0.elapsed().as_secs_f64());
            found = hits
                .iter()
                .enumerate()
                .filter(|(t, h)| {
                    h[0].first()
                        .is_some_and(|h| (h.start as i64 - (500 + *t as i64 * 800) / 5).abs() <= 2)
                })
                .count();
        }
        println!(
            "spot: 180 s recording, 10 themes x 5 s, 50 scalings, transpose={transpose}: {:.3} s wall (best of 3), top hit correct for {found}/10",
            best
        );
    }
}

fn part_index(n_target: usize) {
    let rec_len = 3000; // CENS frames per recording (10 min at 5 frames/s)
    let cfg = IndexConfig {
        shingle_hop: 1,
        exact_below: 0,
        ..IndexConfig::default()
    };
    let per_rec = rec_len - cfg.shingle_len + 1;
    let n_rec = n_target.div_ceil(per_rec);
    let mut rng = Rng(7);
    let t_gen = Instant::now();
    let items: Vec<(String, Vec<Chroma>)> = (0..n_rec)
        .map(|r| {
            (
                format!("synthetic_{r:05}"),
                progression(rec_len, &mut rng, 2, 8),
            )
        })
        .collect();
    println!(
        "index: {} recordings x {} CENS frames generated in {:.1} s",
        n_rec,
        rec_len,
        t_gen.elapsed().as_secs_f64()
    );
    // Queries: 200 excerpts, noisy, as CENS shingles, and a few whole clips.
    let probes: Vec<(usize, usize)> = (0..200)
        .map(|_| {
            (
                (rng.next() as usize) % n_rec,
                (rng.next() as usize) % (rec_len - 100),
            )
        })
        .collect();
    let (rss0, _) = rss_mb();
    let t0 = Instant::now();
    let idx = Index::build(cfg, items.clone()).expect("buildable collection");
    let build_s = t0.elapsed().as_secs_f64();
    let (rss1, hwm) = rss_mb();
    println!(
        "index: {} shingles, dim {} (PCA from {}), {} lists: build {:.1} s; RSS {:.0} MB before, {:.0} MB after (peak {:.0} MB); index data {:.0} MB",
        idx.n_shingles(),
        idx.ivf.dim,
        idx.config.raw_dim(),
        idx.ivf.n_lists(),
        build_s,
        rss0,
        rss1,
        hwm,
        (idx.ivf.vectors.len() * 4 + idx.ivf.ids.len() * 4) as f64 / 1e6
    );
    let t_ser = Instant::now();
    let bytes = idx.to_bytes().expect("serialisable");
    let ser_s = t_ser.elapsed().as_secs_f64();
    let t_de = Instant::now();
    let back = Index::from_bytes(&bytes).expect("own bytes load");
    println!(
        "index: file {:.0} MB, write {:.2} s, read+verify {:.2} s",
        bytes.len() as f64 / 1e6,
        ser_s,
        t_de.elapsed().as_secs_f64()
    );
    drop(back);
    drop(bytes);
    // Embedded query vectors: shingles of perturbed excerpts.
    let dim = idx.ivf.dim;
    let raw_dim = idx.config.raw_dim();
    let queries: Vec<Vec<f32>> = probes
        .iter()
        .map(|&(r, p)| {
            let mut raw = vec![0.0f32; raw_dim];
            for i in 0..idx.config.shingle_len {
                for c in 0..N_CHROMA {
                    raw[i * N_CHROMA + c] = items[r].1[p + i][c] + 0.05 * rng.unit();
                }
            }
            let n = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
            raw.iter_mut().for_each(|v| *v /= n);
            let mut o = vec![0.0f32; dim];
            match &idx.pca {
                Some(pc) => pc.project(&raw, &mut o),
                None => o.copy_from_slice(&raw),
            }
            o
        })
        .collect();
    let t_ex = Instant::now();
    let exact: Vec<Vec<(f32, u32)>> = queries
        .iter()
        .map(|q| {
            exact_knn(&idx.ivf.vectors, dim, q, 10)
                .into_iter()
                .map(|(d, pos)| (d, idx.ivf.ids[pos as usize]))
                .collect()
        })
        .collect();
    println!(
        "index: brute-force 10-NN {:.2} ms/query",
        t_ex.elapsed().as_secs_f64() * 1e3 / queries.len() as f64
    );
    for nprobe in [4, 8, 16, 24, 32, 48, 64] {
        let t = Instant::now();
        let approx: Vec<Vec<(f32, u32)>> = queries
            .iter()
            .map(|q| idx.ivf.search(q, 10, nprobe))
            .collect();
        let ms = t.elapsed().as_secs_f64() * 1e3 / queries.len() as f64;
        let rec: f64 = exact
            .iter()
            .zip(&approx)
            .map(|(e, a)| recall(e, a))
            .sum::<f64>()
            / queries.len() as f64;
        println!("index: IVF nprobe {nprobe:>2}: {ms:.3} ms/query, recall@10 {rec:.3}");
    }
    // Whole clips: 8 s excerpts at 1.2x tempo, expanded to the chroma rate (10 frames per CENS
    // frame), through the multi-scale query.
    let q = IndexQuery::default();
    let mut total = 0.0;
    let mut correct = 0;
    let n_clips = 20;
    for &(r, p) in probes.iter().take(n_clips) {
        let src = &items[r].1[p..p + 48];
        let clip: Vec<Chroma> = (0..40)
            .map(|i| src[(i as f32 * 1.2) as usize])
            .flat_map(|f| std::iter::repeat_n(f, 10))
            .collect();
        let t = Instant::now();
        let hits = idx.query_chroma(&clip, &q).expect("valid query");
        total += t.elapsed().as_secs_f64();
        if hits.first().is_some_and(|h| h.recording == items[r].0) {
            correct += 1;
        }
    }
    println!(
        "index: multi-scale clip query (8 s clip, 9 scalings, nprobe {}): {:.1} ms/clip, top-1 recording correct {correct}/{n_clips}",
        idx.config.nprobe,
        total * 1e3 / n_clips as f64
    );
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let part = std::env::var("SPOT_BENCH_PART").unwrap_or_default();
    let n: usize = std::env::var("SPOT_BENCH_SHINGLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if part.is_empty() || part == "spot" {
        part_spot();
    }
    if part.is_empty() || part == "index" {
        part_index(n);
    }
}
