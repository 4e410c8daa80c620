//! `scorefollow align`: offline global alignment of a whole performance to a score or a
//! reference recording (multiscale DTW, bounded memory).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::common::ReferenceArgs;
use crate::align::dtw::{align_multiscale, offline_settings, path_to_ref_per_perf, DtwOptions};
use crate::features;
use crate::score::reference::Reference;

/// Align a whole recording to a score or another recording (offline, most accurate).
#[derive(Debug, Args)]
pub struct AlignArgs {
    /// The performance to align (WAV, FLAC, MP3, OGG).
    #[arg(value_name = "PERFORMANCE")]
    pub performance: PathBuf,
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// Where to write the alignment: perf_time_s,score_time_s,beat,bar (one row per frame).
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
    /// The performance may stop before the end of the reference (default) or must reach it.
    #[arg(long)]
    pub full_end: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The alignment of one performance: score time for each performance frame.
pub struct Alignment {
    /// (perf_time_s, score_time_s) per performance frame (frame centres).
    pub rows: Vec<(f64, f64)>,
}

/// Align `performance` to `reference`; `progress(done, total)` on the finest level.
pub fn align_files(
    performance: &Path,
    reference: &Reference,
    opts: DtwOptions,
    progress: impl FnMut(usize, usize),
) -> anyhow::Result<Alignment> {
    let audio = crate::audio::decode::load_mono(performance, reference.config.sample_rate_hz)
        .with_context(|| format!("reading the performance {}", performance.display()))?;
    Ok(align_samples(&audio, reference, opts, progress))
}

/// Align a performance given as mono samples at the reference's analysis rate
/// (`reference.config.sample_rate_hz`); `progress(done, total)` on the finest level.
pub fn align_samples(
    audio: &[f32],
    reference: &Reference,
    opts: DtwOptions,
    progress: impl FnMut(usize, usize),
) -> Alignment {
    let cfg = &reference.config;
    let perf = features::extract(audio, cfg);
    let path = align_multiscale(&perf.frames, &reference.frames, opts, progress);
    let ref_of = path_to_ref_per_perf(&path, perf.len());
    let rows = ref_of
        .iter()
        .enumerate()
        .map(|(i, &j)| (cfg.frame_centre_s(i).max(0.0), reference.score_time_s(j)))
        .collect();
    Alignment { rows }
}

/// Run `align`.
pub fn run(args: AlignArgs) -> anyhow::Result<()> {
    // Against a recording the offline settings differ from those against a score.
    let (cfg, weights) = offline_settings(args.reference.is_recording()?);
    let reference = args.reference.load(&cfg)?;
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    let started = std::time::Instant::now();
    let opts = DtwOptions {
        open_end: !args.full_end,
        weights,
        ..DtwOptions::default()
    };
    let alignment = align_files(&args.performance, &reference, opts, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "perf_time_s,score_time_s,beat,bar")?;
    for &(t, s) in &alignment.rows {
        let (beat, bar, _) = reference.musical_position(s);
        if beat.is_finite() {
            writeln!(w, "{t:.4},{s:.4},{beat:.4},{bar}")?;
        } else {
            writeln!(w, "{t:.4},{s:.4},,")?;
        }
    }
    w.flush()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if !args.quiet {
        eprintln!(
            "aligned {} frames in {:.2} s -> {}",
            alignment.rows.len(),
            started.elapsed().as_secs_f64(),
            args.out.display()
        );
    }
    Ok(())
}
