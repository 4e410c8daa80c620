//! Command-line interface: parse, validate, run, map errors to a one-line message and a
//! non-zero exit code: 1 a failure (before following, or instead of it), 2 a usage error
//! (clap's), 3 an input that ended early ([`InputEndedEarly`]: followed as far as it decoded,
//! every output written).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod align;
pub mod chroma;
pub mod common;
pub mod devices;
pub mod eval;
pub mod follow;
pub mod index;
pub mod plot;
pub mod score;
pub mod signal;
pub mod softdtw;
pub mod spot;
pub mod switch;

/// Follow a performance in a score, live or from a recording.
#[derive(Debug, Parser)]
#[command(name = "scorefollow", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow a performance (a recording replayed as live, or live input) in a score.
    Follow(Box<follow::FollowArgs>),
    /// Align a whole recording to a score or another recording, offline.
    Align(align::AlignArgs),
    /// Write the chroma features of an audio or MIDI file as CSV.
    Chroma(chroma::ChromaArgs),
    /// Run every case of an evaluation corpus and print accuracy tables.
    Eval(eval::EvalArgs),
    /// Soft-DTW value, DTW cost and soft-DTW divergence between two sequences.
    Softdtw(softdtw::SoftDtwArgs),
    /// PNG pictures: chromagram, cost matrix with paths, expected alignments, follower trace.
    Plot(plot::PlotArgs),
    /// Build or query an audio-matching index over a collection of recordings.
    Index(index::IndexArgs),
    /// Find every occurrence of themes (MIDI or audio queries) in recordings or MIDI files.
    Spot(spot::SpotArgs),
    /// List the audio input devices (needs a build with the `live` feature).
    Devices(devices::DevicesArgs),
    /// Inspect a score (MIDI or MusicXML: measures, repeats, pages) or write it as MIDI.
    Score(score::ScoreArgs),
    /// Align recordings of one work and switch between them in a browser at the same bar.
    Switch(switch::SwitchArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result: anyhow::Result<()> = match cli.command {
        Command::Follow(args) => follow::run(*args),
        Command::Align(args) => align::run(args),
        Command::Chroma(args) => chroma::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Softdtw(args) => softdtw::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Spot(args) => spot::run(args),
        Command::Index(args) => index::run(args),
        Command::Score(args) => score::run(args),
        Command::Switch(args) => switch::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scorefollow: {e:#}");
            if e.downcast_ref::<InputEndedEarly>().is_some() {
                ExitCode::from(EXIT_INPUT_ENDED_EARLY)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Exit code of a run whose input could not be decoded to its end: it was followed as far as
/// it decoded and every output was written (1 is a failure before or instead of following,
/// 2 a usage error).
pub const EXIT_INPUT_ENDED_EARLY: u8 = 3;

/// The error of a `follow` run whose replayed file ended early (exit code 3).
#[derive(Debug)]
pub struct InputEndedEarly(pub crate::audio::InputError);

impl std::fmt::Display for InputEndedEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; followed as far as it decoded, every output written",
            self.0
        )
    }
}

impl std::error::Error for InputEndedEarly {}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // Colour codes only on a terminal: a redirected log stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// A progress bar for a long offline job of `len` steps, on stderr; hidden when stderr is not
/// a terminal (its lines would only clutter a log).
pub fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} ({elapsed}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
