//! `scorefollow eval`: run every case of a corpus and print accuracy tables
//! (metrics of the corpus's METRICS.md; online results scored causally).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::align::cost::CostWeights;
use crate::align::dtw::{offline_settings, DtwOptions};
use crate::align::oltw::{OltwConfig, StepPattern};
use crate::audio::replay::{ReplayOptions, Speed};
use crate::audio::Capture;
use crate::engine::{self, AlignerKind, FollowOptions};
use crate::eval::{self, CorpusCase, Metrics, Row};
use crate::features::FeatureConfig;
use crate::output::memory::MemorySink;
use crate::output::Sink;
use crate::score::reference::{is_midi_path, Reference};

/// What to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalMode {
    /// The online follower, replayed as fast as possible, scored causally.
    Follow,
    /// Offline global alignment, scored with interpolation.
    Align,
    /// Theme spotting: every theme of every case (MIDI and audio queries), with the metrics
    /// of the corpus's score_themes.py.
    Themes,
}

/// Which reference to use for each case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Against {
    /// score.mid where the piece has one, else reference.flac.
    Auto,
    /// reference.flac (audio-to-audio).
    Audio,
}

/// Run every case of a corpus (its index.csv) and print accuracy tables.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Corpus directory (with index.csv), e.g. ../shared/corpus.
    #[arg(value_name = "CORPUS_DIR")]
    pub corpus: PathBuf,
    /// follow (online, causal scoring) or align (offline).
    #[arg(long, value_enum, default_value = "follow")]
    pub mode: EvalMode,
    /// Online aligner for --mode follow: soft or oltw.
    #[arg(long, default_value = "soft")]
    pub aligner: AlignerKind,
    /// Follow the score (auto) or the reference recording (audio).
    #[arg(long, value_enum, default_value = "auto")]
    pub against: Against,
    /// Only cases whose piece/case contains one of these strings.
    #[arg(long = "case", value_name = "TEXT")]
    pub cases: Vec<String>,
    /// Directory for the prediction CSVs (PRED_DIR/<piece>/<case>.csv, the layout of
    /// score_alignment.py --batch). Default: target/eval/<mode>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// OLTW window (s).
    #[arg(long, default_value_t = 10.0)]
    pub window_s: f64,
    /// Transposition: auto (detect) or fixed semitones.
    #[arg(long, default_value = "auto", value_parser = super::follow::parse_transpose)]
    pub transpose: super::follow::TransposeArg,
    /// Weight of the onset term in the frame cost (tuning knob) [default: 3 for follow, 1 for
    /// align].
    #[arg(long)]
    pub onset_weight: Option<f32>,
    /// Log compression factor of the chroma (tuning knob) [default: 100 for follow, 1000 for
    /// align].
    #[arg(long)]
    pub log_compression: Option<f32>,
    /// The soft follower's tempo model: on (the reference at several tempo scalings) or off
    /// (the plain soft aligner, for comparison) (tuning knob).
    #[arg(long, default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub tempo_model: bool,
    /// Amplitude of the top voice when a piano-like MIDI score is rendered as the reference
    /// (tuning knob; 1 = as written) [default: 1.4 for follow, 1 for align].
    #[arg(long)]
    pub melody_gain: Option<f32>,
    /// Weight of the diagonal step of offline DTW (tuning knob; 1 prefers diagonal moves, 2 is
    /// the symmetric form).
    #[arg(long, default_value_t = DtwOptions::default().diagonal_weight)]
    pub diagonal_weight: f64,
    /// FFT window (samples at 22 050 Hz) (tuning knob).
    #[arg(long, default_value_t = FeatureConfig::default().window_samples)]
    pub fft_window: usize,
    /// OLTW forgetting factor per frame (tuning knob; 1 = plain accumulation).
    #[arg(long, default_value_t = OltwConfig::default().memory)]
    pub memory: f32,
    /// Largest chroma entry below which a frame counts as a pause (tuning knob; 0 = off).
    #[arg(long, default_value_t = FollowOptions::default().pause_chroma_max)]
    pub pause_chroma_max: f32,
    /// Spectral flatness above which a frame counts as noise (tuning knob; 1 = off).
    #[arg(long, default_value_t = FollowOptions::default().pause_flatness)]
    pub pause_flatness: f32,
    /// Do not let the position flow inside held notes (tuning knob).
    #[arg(long)]
    pub no_flow: bool,
    /// Re-locate after jumps: auto (the default: against scores and recordings), on, off.
    #[arg(long, default_value = "auto")]
    pub relocate: engine::RelocateMode,
    /// OLTW step pattern (symmetric: Dixon; constrained: tempo 0.5x-2x).
    #[arg(long, default_value = "symmetric", value_parser = parse_steps)]
    pub steps: StepPattern,
}

fn parse_steps(s: &str) -> Result<StepPattern, String> {
    match s {
        "symmetric" => Ok(StepPattern::Symmetric),
        "constrained" => Ok(StepPattern::Constrained),
        _ => Err(format!("'{s}': expected symmetric or constrained")),
    }
}

struct CaseResult {
    key: String,
    case: CorpusCase,
    metrics: Metrics,
    errors_ms: Vec<f64>,
    gt_times_s: Vec<f64>,
    audio_s: f64,
    wall_s: f64,
}

/// Run `eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if args.mode == EvalMode::Themes {
        return run_themes(&args);
    }
    // Each mode's settings (offline alignment: different against a recording than against
    // a score), then the command line's overrides.
    let settings = |audio_reference: bool| {
        let (base_cfg, base_weights) = match args.mode {
            EvalMode::Align => offline_settings(audio_reference),
            _ => (
                FeatureConfig::for_following(audio_reference),
                CostWeights::default(),
            ),
        };
        let cfg = FeatureConfig {
            log_compression: args.log_compression.unwrap_or(base_cfg.log_compression),
            melody_gain: args.melody_gain.unwrap_or(base_cfg.melody_gain),
            window_samples: args.fft_window,
            ..base_cfg
        };
        let weights = CostWeights {
            onset: args.onset_weight.unwrap_or(base_weights.onset),
            ..base_weights
        };
        (cfg, weights)
    };
    let cases: Vec<CorpusCase> = eval::read_index(&args.corpus)?
        .into_iter()
        .filter(|c| args.cases.is_empty() || args.cases.iter().any(|f| c.key().contains(f)))
        .collect();
    if cases.is_empty() {
        anyhow::bail!("no case of {} matches", args.corpus.display());
    }
    let mode_name = match args.mode {
        EvalMode::Follow => "follow",
        _ => "align",
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/eval").join(mode_name));
    let mut refs: HashMap<PathBuf, Arc<Reference>> = HashMap::new();
    let mut results = Vec::new();
    let total_start = Instant::now();
    for case in &cases {
        let ref_path = match (args.against, &case.score) {
            (Against::Auto, Some(s)) => s.clone(),
            _ => case.reference.clone(),
        };
        let (cfg, weights) = settings(!is_midi_path(&ref_path));
        let reference = match refs.get(&ref_path) {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(
                    Reference::load(&ref_path, &cfg)
                        .with_context(|| format!("reference {}", ref_path.display()))?,
                );
                refs.insert(ref_path.clone(), r.clone());
                r
            }
        };
        let started = Instant::now();
        // Themes returned above: here it is follow or align.
        let rows: Vec<(f64, f64)> = match args.mode {
            EvalMode::Follow => follow_case(case, reference, &args, &cfg)?,
            _ => {
                let opts = DtwOptions {
                    open_end: true,
                    weights,
                    transpose_search: args.transpose.0.is_none(),
                    diagonal_weight: args.diagonal_weight,
                };
                super::align::align_files(&case.performance, &reference, opts, |_, _| {})?.rows
            }
        };
        let wall_s = started.elapsed().as_secs_f64();
        let pred_path = out_dir.join(&case.piece).join(format!("{}.csv", case.case));
        write_pred(&pred_path, &rows)?;
        let gt = eval::read_xy(&case.gt_csv)?;
        let pred = (
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        );
        let errors_ms = eval::errors_ms(&gt, &pred, args.mode == EvalMode::Follow);
        let metrics = eval::summarize(&errors_ms);
        eprintln!(
            "{:<48} le300 {:5.1}%  le100 {:5.1}%  median {:6.1} ms  ({:.0}x real time)",
            case.key(),
            metrics.le(300.0),
            metrics.le(100.0),
            metrics.median_ms,
            case.duration_s / wall_s.max(1e-9)
        );
        results.push(CaseResult {
            key: case.key(),
            case: case.clone(),
            metrics,
            errors_ms,
            gt_times_s: gt.0.clone(),
            audio_s: case.duration_s,
            wall_s,
        });
    }
    print_report(
        &args,
        &results,
        total_start.elapsed().as_secs_f64(),
        &out_dir,
    );
    Ok(())
}

fn run_themes(args: &EvalArgs) -> anyhow::Result<()> {
    let opts = crate::spot::eval::ThemeEvalOptions {
        pred_dir: Some(
            args.out
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/eval/themes")),
        ),
        ..Default::default()
    };
    let started = Instant::now();
    let report = crate::spot::eval::eval_themes(&args.corpus, &opts)?;
    println!("{report}");
    println!("whole theme eval: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn follow_case(
    case: &CorpusCase,
    reference: Arc<Reference>,
    args: &EvalArgs,
    cfg: &FeatureConfig,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let capture = Capture::replay(
        &case.performance,
        ReplayOptions {
            speed: Speed::Max,
            ..ReplayOptions::default()
        },
    )
    .with_context(|| format!("replaying {}", case.performance.display()))?;
    let memory = MemorySink::default();
    let sinks: Vec<Box<dyn Sink>> = vec![Box::new(memory.clone())];
    let opts = FollowOptions {
        aligner: args.aligner,
        oltw: OltwConfig {
            window_frames: (args.window_s * cfg.frame_rate_hz()).round() as usize,
            steps: args.steps,
            memory: args.memory,
            weights: CostWeights {
                onset: args.onset_weight.unwrap_or(CostWeights::default().onset),
                ..CostWeights::default()
            },
            ..OltwConfig::default()
        },
        transpose: args.transpose.0,
        flow_in_notes: !args.no_flow,
        pause_chroma_max: args.pause_chroma_max,
        pause_flatness: args.pause_flatness,
        relocate: args.relocate,
        tempo_model: args.tempo_model,
        ..FollowOptions::default()
    };
    let (summary, _) = engine::run(capture, reference, &opts, sinks, None)?;
    for r in &summary.relocations {
        eprintln!(
            "  {}: re-located at {:.2} s (match went bad at {:.2} s): score {:.2} s -> {:.2} s, match {:.3}",
            case.key(),
            r.perf_time_s,
            r.suspect_since_s,
            r.from_score_s,
            r.to_score_s,
            r.cost
        );
    }
    if summary.dropped_events > 0 {
        anyhow::bail!(
            "{}: {} events were dropped by the output channel",
            case.key(),
            summary.dropped_events
        );
    }
    Ok(memory
        .take()
        .iter()
        .map(|p| (p.perf_time_s, p.score_time_s))
        .collect())
}

fn write_pred(path: &Path, rows: &[(f64, f64)]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    writeln!(w, "perf_time_s,score_time_s")?;
    for (t, s) in rows {
        writeln!(w, "{t:.4},{s:.4}")?;
    }
    w.flush()?;
    Ok(())
}

fn print_report(args: &EvalArgs, results: &[CaseResult], total_wall_s: f64, out_dir: &Path) {
    let scoring = if args.mode == EvalMode::Follow {
        "causal (--hold)"
    } else {
        "interpolated"
    };
    println!(
        "\nscorefollow eval --mode {:?}: {} cases, scoring {scoring}, predictions in {}\n",
        args.mode,
        results.len(),
        out_dir.display()
    );
    println!("{}", eval::table_header());
    for r in results {
        println!("{}", Row(&r.key, &r.metrics));
    }
    let pool = |f: &dyn Fn(&CaseResult) -> bool| {
        let errs: Vec<f64> = results
            .iter()
            .filter(|r| f(r))
            .flat_map(|r| r.errors_ms.iter().copied())
            .collect();
        eval::summarize(&errs)
    };
    let target = pool(&|r| !r.case.is_jump_or_transpose());
    let n_target = results
        .iter()
        .filter(|r| !r.case.is_jump_or_transpose())
        .count();
    let all = pool(&|_| true);
    println!(
        "{}",
        Row(
            &format!("POOLED, all but skip/repeat/transpose ({n_target})"),
            &target
        )
    );
    println!(
        "{}",
        Row(&format!("POOLED, all cases ({})", results.len()), &all)
    );
    let scored: Vec<&CaseResult> = results.iter().filter(|r| r.metrics.n > 0).collect();
    if !scored.is_empty() {
        let mean = |f: &dyn Fn(&Metrics) -> f64| {
            scored.iter().map(|r| f(&r.metrics)).sum::<f64>() / scored.len() as f64
        };
        let macro_m = Metrics {
            n: scored.iter().map(|r| r.metrics.n).sum(),
            mean_ms: mean(&|m| m.mean_ms),
            median_ms: mean(&|m| m.median_ms),
            p90_ms: mean(&|m| m.p90_ms),
            max_ms: mean(&|m| m.max_ms),
            le_pct: std::array::from_fn(|k| mean(&|m| m.le_pct[k])),
        };
        println!("{}", Row("MEAN OVER CASES", &macro_m));
    }
    let worst = results
        .iter()
        .filter(|r| !r.case.is_jump_or_transpose())
        .min_by(|a, b| a.metrics.le(1000.0).total_cmp(&b.metrics.le(1000.0)));
    if let Some(w) = worst {
        println!(
            "\nworst case within 1 s (target subset): {} {:.1}%",
            w.key,
            w.metrics.le(1000.0)
        );
    }
    print_robustness(results);
    let audio: f64 = results.iter().map(|r| r.audio_s).sum();
    let wall: f64 = results.iter().map(|r| r.wall_s).sum();
    println!(
        "speed: {:.1} s of performance in {:.2} s of case runs ({:.0}x real time); whole eval {:.1} s incl. references",
        audio,
        wall,
        audio / wall.max(1e-9),
        total_wall_s
    );
}

/// The robustness cases as the robustness targets score them: within 300 ms over all events,
/// and not counting the 5 s after each jump; the time to recover after each jump (first event
/// from which every event of the next 2 s is within 300 ms).
fn print_robustness(results: &[CaseResult]) {
    let robust: Vec<&CaseResult> = results
        .iter()
        .filter(|r| r.case.kind == "robustness")
        .collect();
    if robust.is_empty() {
        return;
    }
    println!("\nrobustness cases (within 300 ms; jumps from case.json):\n");
    println!(
        "| case | n | <=300 all | <=300 without 5 s after jumps | recovery after each jump (s) |"
    );
    println!("|---|---|---|---|---|");
    let mut recoveries = Vec::new();
    let mut pooled_excl = Vec::new();
    for r in robust {
        let jumps = eval::case_jumps_s(&r.case);
        let kept = eval::errors_outside_jumps(&r.gt_times_s, &r.errors_ms, &jumps, 5.0);
        let excl = eval::summarize(&kept);
        let rec: Vec<String> = jumps
            .iter()
            .map(
                |&j| match eval::recovery_s(&r.gt_times_s, &r.errors_ms, j, 300.0, 2.0) {
                    Some(t) => {
                        recoveries.push(t);
                        format!("{t:.2}")
                    }
                    None => "never".to_string(),
                },
            )
            .collect();
        if !jumps.is_empty() {
            pooled_excl.extend(kept);
        }
        println!(
            "| {} | {} | {:.1} | {:.1} | {} |",
            r.key,
            r.metrics.n,
            r.metrics.le(300.0),
            excl.le(300.0),
            if rec.is_empty() {
                "-".into()
            } else {
                rec.join(", ")
            }
        );
    }
    if !pooled_excl.is_empty() {
        recoveries.sort_by(f64::total_cmp);
        let median = if recoveries.is_empty() {
            "- (never recovered)".to_string()
        } else {
            format!("{:.2} s", eval::summarize(&recoveries).median_ms)
        };
        println!(
            "\njump cases pooled, without 5 s after jumps: {:.1} % within 300 ms; median recovery {median}",
            eval::summarize(&pooled_excl).le(300.0)
        );
    }
}

/// `on` / `off`.
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected 'on' or 'off', got '{s}'")),
    }
}
