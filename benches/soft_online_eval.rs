//! Accuracy and step time of the online soft aligner against OLTW on a corpus, through the same
//! pipeline (streaming features -> aligner -> tracker -> score time), scored causally with the
//! corpus metrics:
//!
//! `cargo bench --bench soft_online_eval -- ../shared/corpus`
//!
//! The skip, repeat and transpose cases are left out (as in the main accuracy table).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use scorefollow::align::oltw::{Oltw, OltwConfig};
use scorefollow::align::soft_online::{PositionWeighting, SoftOnline, SoftOnlineConfig};
use scorefollow::align::tracker::{Tracker, TrackerConfig};
use scorefollow::align::OnlineAligner;
use scorefollow::eval;
use scorefollow::features::{FeatureConfig, FeatureFrame, StreamingExtractor};
use scorefollow::score::reference::Reference;

type Make = Box<dyn Fn(Arc<[FeatureFrame]>) -> Box<dyn OnlineAligner>>;

fn soft(gamma: f64, position: PositionWeighting) -> Make {
    Box::new(move |r| {
        Box::new(SoftOnline::new(
            r,
            SoftOnlineConfig {
                gamma,
                position,
                ..SoftOnlineConfig::default()
            },
        ))
    })
}

fn main() {
    let corpus = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/corpus"));
    let cases = match eval::read_index(&corpus) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("soft_online_eval: {e} (pass the corpus directory)");
            return;
        }
    };
    let cfg = FeatureConfig::default();
    let aligners: Vec<(String, Make)> = vec![
        (
            "oltw".into(),
            Box::new(|r| Box::new(Oltw::new(r, OltwConfig::default())) as Box<dyn OnlineAligner>),
        ),
        (
            "soft g0.3 pathlen s3000".into(),
            soft(0.3, PositionWeighting::PathLength { sharpness: 3000.0 }),
        ),
        (
            "soft g0.1 forward".into(),
            soft(0.1, PositionWeighting::Forward),
        ),
        (
            "soft g0.2 forward".into(),
            soft(0.2, PositionWeighting::Forward),
        ),
        (
            "soft g0.25 forward".into(),
            soft(0.25, PositionWeighting::Forward),
        ),
        (
            "soft g0.3 forward".into(),
            soft(0.3, PositionWeighting::Forward),
        ),
        (
            "soft g0.35 forward".into(),
            soft(0.35, PositionWeighting::Forward),
        ),
        (
            "soft g0.4 forward".into(),
            soft(0.4, PositionWeighting::Forward),
        ),
    ];
    let mut refs: HashMap<PathBuf, Arc<Reference>> = HashMap::new();
    let mut errors: Vec<Vec<f64>> = vec![Vec::new(); aligners.len()];
    let mut step_ns: Vec<Vec<u64>> = vec![Vec::new(); aligners.len()];
    let mut n_cases = 0;
    for case in cases
        .iter()
        .filter(|c| c.duration_s > 0.0 && !c.is_jump_or_transpose())
    {
        let ref_path = case.score.clone().unwrap_or_else(|| case.reference.clone());
        let reference = match refs.get(&ref_path) {
            Some(r) => r.clone(),
            None => match scorefollow::audio::load::load_reference(
                &ref_path,
                scorefollow::engine::ReferenceKind::of_path(&ref_path),
                &cfg,
                &Default::default(),
            ) {
                Ok(r) => {
                    let r = Arc::new(r);
                    refs.insert(ref_path.clone(), r.clone());
                    r
                }
                Err(e) => {
                    eprintln!("skip {}: {e}", case.key());
                    continue;
                }
            },
        };
        let audio =
            match scorefollow::audio::decode::load_mono(&case.performance, cfg.sample_rate_hz) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("skip {}: {e}", case.key());
                    continue;
                }
            };
        let gt = match eval::read_xy(&case.gt_csv) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skip {}: {e}", case.key());
                continue;
            }
        };
        let mut ex = StreamingExtractor::new(&cfg, 0.0);
        let mut frames = Vec::new();
        ex.push(&audio, |_, f| frames.push(*f));
        let lag_frames = ex.centre_lag_s() * cfg.frame_rate_hz();
        n_cases += 1;
        let mut line = format!("{:<48}", case.key());
        for (a, (_, make)) in aligners.iter().enumerate() {
            let mut al = make(reference.frames.clone());
            let mut tracker = Tracker::new(TrackerConfig {
                lag_frames,
                ..TrackerConfig::default()
            });
            let (mut px, mut py) = (Vec::new(), Vec::new());
            for (k, f) in frames.iter().enumerate() {
                let t0 = Instant::now();
                let step = al.step(f);
                step_ns[a].push(t0.elapsed().as_nanos() as u64);
                let tr = tracker.update(&step);
                px.push(cfg.frame_end_s(k));
                py.push(reference.score_time_s(tr.ref_frame_now));
            }
            let e = eval::errors_ms(&gt, &(px, py), true);
            let m = eval::summarize(&e);
            line.push_str(&format!(" {:5.1}", m.le(300.0)));
            errors[a].extend(e);
        }
        println!("{line}");
    }
    println!("\n{n_cases} cases (skip/repeat/transpose left out); le X = % of events within X ms, causal");
    println!(
        "{:<28} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9} {:>9}",
        "aligner", "events", "le50", "le100", "le300", "le1000", "step p50", "step p99"
    );
    for (a, (name, _)) in aligners.iter().enumerate() {
        let m = eval::summarize(&errors[a]);
        let s = &mut step_ns[a];
        s.sort_unstable();
        let pct = |p: f64| {
            s.get(((s.len().max(1) - 1) as f64 * p) as usize)
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        println!(
            "{:<28} {:>6} {:>6.1} {:>6.1} {:>6.1} {:>7.1} {:>7.1}us {:>7.1}us",
            name,
            m.n,
            m.le(50.0),
            m.le(100.0),
            m.le(300.0),
            m.le(1000.0),
            pct(0.5),
            pct(0.99)
        );
    }
}
