//! `scorefollow align`: offline global alignment of a whole performance to a score or a
//! reference recording (multiscale DTW, bounded memory).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::common::ReferenceArgs;
use crate::audio::decode::load_mono;
use crate::audio::load::{align_samples, realign_at_performed_tempo};
use crate::engine::{AlignConfig, AlignSettings};

/// Align a whole recording to a score or another recording (offline, most accurate).
#[derive(Debug, Args)]
pub struct AlignArgs {
    /// The performance to align (WAV, FLAC, MP3, OGG).
    #[arg(value_name = "PERFORMANCE")]
    pub performance: PathBuf,
    /// The score or recording to align against.
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// Where to write the alignment: perf_time_s,score_time_s,beat,bar,pass,page,system,label
    /// (one row per frame; the last four added in this version).
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
    /// The performance may stop before the end of the reference (default) or must reach it.
    #[arg(long)]
    pub full_end: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Run `align`.
pub fn run(args: AlignArgs) -> anyhow::Result<()> {
    // Against a recording the offline settings differ from those against a score.
    let config = AlignConfig::new(
        args.reference.kind()?,
        &AlignSettings {
            full_end: args.full_end,
            ..AlignSettings::default()
        },
    )?;
    let reference = args.reference.load(&config.features, &config.rendering)?;
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        super::progress_bar(0)
    };
    bar.set_message("aligning");
    let started = std::time::Instant::now();
    let audio = load_mono(&args.performance, reference.config.sample_rate_hz)
        .with_context(|| format!("reading the performance {}", args.performance.display()))?;
    let alignment = align_samples(&audio, &reference, config.dtw, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    // A printed score is aligned again at the tempo the first pass found.
    bar.set_message("aligning at the performer's tempo");
    let (reference, alignment) = realign_at_performed_tempo(
        &audio,
        args.reference.path()?,
        reference,
        alignment,
        &config.features,
        &config.rendering,
        &args.reference.score_options(false)?,
        config.dtw,
    )?;
    bar.finish_and_clear();
    alignment.warn_of_an_early_end();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(
        w,
        "perf_time_s,score_time_s,beat,bar,pass,page,system,label"
    )?;
    let is_score = reference.score().is_some();
    for &(t, s) in &alignment.rows {
        let at = reference.score_position(reference.ref_frame_at_score_s(s));
        let mut label = String::new();
        at.write_label(&mut label)?;
        let (pass, page, system, label) = (
            at.pass,
            at.page,
            at.system,
            crate::output::csv::CsvField(&label),
        );
        if is_score {
            let (beat, bar, _) = reference.musical_position(s);
            writeln!(
                w,
                "{t:.4},{s:.4},{beat:.4},{bar},{pass},{page},{system},{label}"
            )?;
        } else {
            writeln!(w, "{t:.4},{s:.4},,,{pass},{page},{system},{label}")?;
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
