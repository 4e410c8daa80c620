//! `scorefollow eval`: run every case of a corpus and print accuracy tables
//! (metrics of the corpus's METRICS.md; online results scored causally). The runs are
//! [`crate::eval`]'s; this maps flags to its options.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::common::FollowerArgs;
use crate::engine::{AlignSettings, ReferenceKind};
use crate::eval::alignment::{self, AlignmentEval, Job, ScoreFormat};
use crate::score::RepeatMode;

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
    /// Cue timing: a cue on every 4th ground-truth event of each case with a score and no
    /// skip or repeat, fired as the show fires them (METRICS.md "Cue timing"); the firing logs
    /// are what the corpus's score_cues.py --batch reads.
    Cues,
    /// The interpretation switcher: each pair of performances of a piece, every ground-truth
    /// event of one mapped to the other (aligned to each other, then both to the score).
    Switch,
}

/// Which reference to use for each case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Against {
    /// score.mid where the piece has one, else reference.flac.
    Auto,
    /// reference.flac (audio-to-audio).
    Audio,
}

/// Which score of each piece to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScoreFormatArg {
    /// score.mid.
    Midi,
    /// score.musicxml, the printed score (pieces without one are left out); the follower's
    /// beats are scored in score.mid's seconds (piece.json's nominal_bpm_quarter).
    Musicxml,
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
    /// Follow the score (auto) or the reference recording (audio).
    #[arg(long, value_enum, default_value = "auto")]
    pub against: Against,
    /// Only cases whose piece/case contains one of these strings.
    #[arg(long = "case", value_name = "TEXT")]
    pub cases: Vec<String>,
    /// Directory for the prediction CSVs (`PRED_DIR/<piece>/<case>.csv`, the layout of
    /// score_alignment.py --batch). Default: `target/eval/<mode>`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --mode follow: fit the confidence model on the cases run, print its coefficients
    /// and the calibration of a leave-one-piece-out cross-validation (added in this version).
    #[arg(long)]
    pub fit_confidence: bool,
    /// Follow each piece's score.mid (midi) or its printed score.musicxml (musicxml; added
    /// in this version).
    #[arg(long, value_enum, default_value = "midi")]
    pub score_format: ScoreFormatArg,
    /// With --score-format musicxml: play every section once (no repeat is taken).
    #[arg(long)]
    pub no_repeats: bool,
    /// Play every performance through a synthetic room before it is followed or aligned:
    /// reverberation time (s for 60 dB of decay below 1 kHz, half of it above),
    /// direct-to-reverberant ratio (dB, default 0) and pink noise (signal-to-noise ratio
    /// while the music plays, dB, default 30); the reference is left as it is. Each case has
    /// its own seeded room, the same in every run (added in this version).
    #[arg(long, value_name = "RT60_S[,DRR_DB[,SNR_DB]]")]
    pub room: Option<crate::audio::room::Room>,
    /// How to follow (and the knobs shared with align).
    #[command(flatten)]
    pub follower: FollowerArgs,
    /// Weight of the diagonal step of offline DTW (tuning knob; 1 prefers diagonal moves, 2 is
    /// the symmetric form) [default: 1].
    #[arg(long, help_heading = "Tuning knobs")]
    pub diagonal_weight: Option<f64>,
}

impl EvalArgs {
    /// The alignment runs these flags ask for (`follow` or `align` mode).
    pub fn alignment_eval(&self) -> AlignmentEval {
        let (job, name) = match self.mode {
            EvalMode::Follow => (Job::Follow, "follow"),
            EvalMode::Cues => (Job::Follow, "cues"),
            _ => (Job::Align, "align"),
        };
        let f = &self.follower;
        AlignmentEval {
            job,
            against: match self.against {
                Against::Auto => alignment::Against::Auto,
                Against::Audio => alignment::Against::Audio,
            },
            cases: self.cases.clone(),
            out_dir: self
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/eval").join(name)),
            // The reference kind is set per case.
            follow: f.settings(ReferenceKind::Score),
            align: AlignSettings {
                onset_weight: f.onset_weight,
                log_compression: f.log_compression,
                melody_gain: f.melody_gain,
                fft_window_samples: f.fft_window,
                diagonal_weight: self.diagonal_weight,
                full_end: false,
                fixed_key: f.transpose.0.is_some(),
            },
            score_format: match (self.score_format, self.no_repeats) {
                (ScoreFormatArg::Midi, _) => ScoreFormat::Midi,
                (ScoreFormatArg::Musicxml, false) => ScoreFormat::MusicXml(RepeatMode::Performed),
                (ScoreFormatArg::Musicxml, true) => ScoreFormat::MusicXml(RepeatMode::NoRepeats),
            },
            room: self.room,
        }
    }
}

/// Run `eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if args.room.is_some() && matches!(args.mode, EvalMode::Themes | EvalMode::Switch) {
        anyhow::bail!("--room is for --mode follow, align or cues");
    }
    if args.mode == EvalMode::Themes {
        return run_themes(&args);
    }
    if args.mode == EvalMode::Switch {
        for to_score in [false, true] {
            let started = Instant::now();
            let report = crate::eval::switch::eval_switch(&args.corpus, &args.cases, to_score)?;
            println!("{report}");
            println!("({:.1} s)", started.elapsed().as_secs_f64());
        }
        return Ok(());
    }
    if args.no_repeats && args.score_format != ScoreFormatArg::Musicxml {
        anyhow::bail!("--no-repeats is for --score-format musicxml");
    }
    let opts = args.alignment_eval();
    if let Some(room) = opts.room {
        eprintln!("every performance played through a room: {room}");
    }
    let mut cases = alignment::select_cases(&args.corpus, &opts.cases)?;
    if opts.score_format != ScoreFormat::Midi {
        let (with, without): (Vec<_>, Vec<_>) = cases
            .into_iter()
            .partition(|c| alignment::musicxml_of(c).is_some());
        if !without.is_empty() {
            let keys: Vec<String> = without.iter().map(|c| c.key()).collect();
            eprintln!(
                "left out ({} cases without a score.musicxml): {}",
                keys.len(),
                keys.join(", ")
            );
        }
        cases = with;
    }
    let bar = super::progress_bar(cases.len() as u64);
    if args.fit_confidence && args.mode != EvalMode::Follow {
        anyhow::bail!("--fit-confidence is for --mode follow");
    }
    let report = alignment::run(&args.corpus, &opts, |r| {
        bar.suspend(|| {
            for j in &r.relocations {
                eprintln!(
                    "  {}: re-located at {:.2} s (match went bad at {:.2} s): score {:.2} s -> {:.2} s, match {:.3}",
                    r.key, j.perf_time_s, j.suspect_since_s, j.from_score_s, j.to_score_s, j.cost
                );
            }
            eprintln!(
                "{:<48} le300 {:5.1}%  le100 {:5.1}%  median {:6.1} ms  ({:.0}x real time)",
                r.key,
                r.metrics.le(300.0),
                r.metrics.le(100.0),
                r.metrics.median_ms,
                r.audio_s / r.wall_s.max(1e-9)
            );
        });
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if args.mode == EvalMode::Cues {
        let cues = crate::eval::cues::cue_report(&report, &opts.out_dir.join("cuelog"))?;
        println!("{cues}");
    } else {
        println!("{report}");
    }
    if args.fit_confidence {
        print_confidence_fit(&report);
    }
    Ok(())
}

/// Fit the confidence model on `report`'s events, print it and its cross-validation.
fn print_confidence_fit(report: &crate::eval::alignment::AlignmentReport) {
    use crate::eval::calibrate;
    let samples = calibrate::samples(report);
    let model = calibrate::fit(samples.samples.iter());
    println!(
        "\nconfidence model fitted on {} events of {} pieces (inputs: mass, spread_s, \
         fit_fast, fit_slow, since_jump/10 s, doubt, holding, fit_slow - fit_usual, \
         mass_recent_min, |ln tempo|, |flow_s|, waiting_s), as Rust:\n",
        samples.samples.len(),
        samples.pieces.len(),
    );
    println!(
        "ConfidenceModel {{\n    bias: {:.4},\n    weights: {:.4?},\n    knots: [\n{}    ],\n}}",
        model.bias,
        model.weights,
        model
            .knots
            .iter()
            .map(|(z, p)| format!("        ({z:.4}, {p:.4}),\n"))
            .collect::<String>()
    );
    let cv = calibrate::cross_validated(&samples);
    let mut text = String::new();
    if crate::eval::alignment::write_calibration_table(
        &mut text,
        &cv,
        "leave-one-piece-out cross-validation of the fitted model",
    )
    .is_ok()
    {
        println!("{text}");
    }
}

fn run_themes(args: &EvalArgs) -> anyhow::Result<()> {
    let opts = crate::eval::themes::ThemeEvalOptions {
        pred_dir: Some(
            args.out
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/eval/themes")),
        ),
        ..Default::default()
    };
    let started = Instant::now();
    let report = crate::eval::themes::eval_themes(&args.corpus, &opts)?;
    println!("{report}");
    println!("whole theme eval: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        eval: EvalArgs,
    }

    fn parse(args: &[&str]) -> EvalArgs {
        let mut all = vec!["eval", "corpus"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parses").eval
    }

    #[test]
    fn knobs_reach_both_jobs() {
        let e = parse(&[
            "--mode",
            "align",
            "--onset-weight",
            "4",
            "--melody-gain",
            "1.2",
        ]);
        let o = e.alignment_eval();
        assert_eq!(o.job, Job::Align);
        assert_eq!(o.align.onset_weight, Some(4.0));
        assert_eq!(o.follow.onset_weight, Some(4.0));
        assert_eq!(o.align.melody_gain, Some(1.2));
        assert_eq!(o.out_dir, PathBuf::from("target/eval/align"));
        assert!(!o.align.fixed_key);
        let f = parse(&[
            "--transpose",
            "2",
            "--relocate",
            "off",
            "--tempo-model",
            "off",
        ]);
        let o = f.alignment_eval();
        assert_eq!(o.job, Job::Follow);
        assert_eq!(o.follow.transpose, Some(2));
        assert!(o.align.fixed_key);
        assert!(!o.follow.tempo_model);
        assert_eq!(o.follow.relocate, crate::engine::RelocateMode::Off);
    }

    #[test]
    fn a_room_reaches_the_runs_and_is_refused_where_it_has_no_meaning() {
        let o = parse(&["--room", "1.5,-3,25"]).alignment_eval();
        let room = o.room.expect("a room");
        assert_eq!(
            (room.rt60_s, room.direct_to_reverb_db, room.snr_db),
            (1.5, -3.0, 25.0)
        );
        assert!(parse(&[]).alignment_eval().room.is_none());
        let e = run(parse(&["--mode", "themes", "--room", "1"])).expect_err("themes");
        assert!(e.to_string().contains("--room"), "{e}");
        let cli = Cli::try_parse_from(["eval", "corpus", "--room", "loud"]);
        assert!(cli.is_err(), "not a number");
    }

    #[test]
    fn an_invalid_window_is_refused_before_any_case_runs() {
        let e = parse(&["--window-s", "0.1"]);
        let err = alignment::run(&e.corpus, &e.alignment_eval(), |_| {}).expect_err("invalid");
        // The corpus does not exist either: the settings are checked first.
        assert!(err.to_string().contains("window_s"), "{err}");
    }
}
