//! `scorefollow score info|midi`: what the follower reads in a score (MIDI or MusicXML), and
//! the unfolded score written as MIDI for other tools.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::cli::common::ScoreReadingArgs;
use crate::score::musicxml::{MarkKind, PrintedLayout, RepeatMode};
use crate::score::Score;

/// Inspect a score or write it as MIDI.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// What to do with the score.
    #[command(subcommand)]
    pub command: ScoreCommand,
}

/// The `score` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScoreCommand {
    /// Parts, measures, pickup, the unfolded order of the measures, pages and systems,
    /// rehearsal marks, tempo and meter changes.
    Info(ReadArgs),
    /// Write the score as the follower plays it (repeats unfolded) as a standard MIDI file.
    Midi(MidiArgs),
}

/// How to read the score.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The score: MIDI (.mid) or MusicXML (.musicxml, .xml, .mxl).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How it is read.
    #[command(flatten)]
    pub reading: ScoreReadingArgs,
}

/// `score midi` arguments.
#[derive(Debug, Args)]
pub struct MidiArgs {
    /// The score and how to read it.
    #[command(flatten)]
    pub read: ReadArgs,
    /// The MIDI file to write.
    #[arg(long, value_name = "F.mid")]
    pub out: PathBuf,
}

impl ReadArgs {
    fn load(&self) -> anyhow::Result<Score> {
        let options = self.reading.options(if self.reading.no_repeats {
            RepeatMode::NoRepeats
        } else {
            RepeatMode::Performed
        });
        Score::load_with(&self.file, &options)
            .with_context(|| format!("reading the score {}", self.file.display()))
    }
}

/// Run `score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    match args.command {
        ScoreCommand::Info(a) => {
            let score = a.load()?;
            print!("{}", describe(&score));
            Ok(())
        }
        ScoreCommand::Midi(a) => {
            let score = a.read.load()?;
            let bytes = crate::score::smf::write_smf(&score);
            std::fs::write(&a.out, bytes)
                .with_context(|| format!("cannot write {}", a.out.display()))?;
            eprintln!(
                "wrote {} ({} notes, {:.1} s)",
                a.out.display(),
                score.notes.len(),
                score.duration_s
            );
            Ok(())
        }
    }
}

/// Consecutive performed measures as runs: "1-8, 1-8 (pass 2), 9-16".
fn order_runs(layout: &PrintedLayout) -> String {
    let mut runs: Vec<String> = Vec::new();
    let ms = &layout.measures;
    let mut k = 0;
    while k < ms.len() {
        let mut j = k;
        while j + 1 < ms.len()
            && ms[j + 1].printed == ms[j].printed + 1
            && (ms[j + 1].pass > 1) == (ms[k].pass > 1)
        {
            j += 1;
        }
        let mut run = if j == k {
            ms[k].label.clone()
        } else {
            format!("{}-{}", ms[k].label, ms[j].label)
        };
        let pass = ms[k].pass;
        if pass > 1 {
            let _ = write!(run, " (pass {pass}");
            if ms[j].pass != pass {
                let _ = write!(run, "-{}", ms[j].pass);
            }
            run.push(')');
        }
        runs.push(run);
        k = j + 1;
    }
    runs.join(", ")
}

/// The `score info` report.
pub fn describe(score: &Score) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "file: {}", score.path.display());
    let bar_of = |beat: f64| -> String {
        let t = score.s_at_beat(beat);
        match score.printed_at_s(t) {
            Some(p) => format!(
                "bar {} ({}) beat {:.3} pass {}",
                p.bar, p.label, p.beat, p.pass
            ),
            None => {
                let b = score.bar_beat_at_s(t);
                format!("bar {} beat {:.3}", b.bar, b.beat)
            }
        }
    };
    match score.printed.as_deref() {
        Some(layout) => {
            let _ = writeln!(s, "format: MusicXML, {}", layout.format);
            let _ = writeln!(s, "parts: {}", layout.parts.len());
            for (i, p) in layout.parts.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  {i}: {} '{}': program {}{}, channel {}, transposition {:+} semitones, {} notes",
                    p.id,
                    p.name,
                    p.program,
                    if p.program_guessed { " (from the name)" } else { "" },
                    p.channel + 1,
                    p.transpose_semitones,
                    p.notes
                );
            }
            let first = layout.printed.first();
            let last = layout.printed.last();
            let _ = writeln!(
                s,
                "measures: {} printed ({} to {}), {} performed",
                layout.printed.len(),
                first.map_or("-", |m| m.label.as_str()),
                last.map_or("-", |m| m.label.as_str()),
                layout.measures.len()
            );
            if layout.pickup_quarters > 0.0 {
                let _ = writeln!(
                    s,
                    "pickup: {} quarter notes (measure {})",
                    layout.pickup_quarters,
                    first.map_or("-", |m| m.label.as_str())
                );
            } else {
                let _ = writeln!(s, "pickup: none");
            }
            let mode = match layout.repeats {
                RepeatMode::Performed => "repeats as performed",
                RepeatMode::NoRepeats => "no repeats",
                RepeatMode::AsWritten => "as written",
            };
            let _ = writeln!(s, "order ({mode}): {}", order_runs(layout));
            let _ = writeln!(s, "pages: {}", layout.page_count);
            for page in 1..=layout.page_count {
                let on: Vec<&crate::score::musicxml::PrintedMeasure> =
                    layout.printed.iter().filter(|m| m.page == page).collect();
                let (Some(a), Some(b)) = (on.first(), on.last()) else {
                    continue;
                };
                let mut systems: Vec<&str> = Vec::new();
                let mut last_system = 0;
                for m in &on {
                    if m.system != last_system {
                        systems.push(&m.label);
                        last_system = m.system;
                    }
                }
                let _ = writeln!(
                    s,
                    "  page {page}: measures {}-{}, {} systems starting at {}",
                    a.label,
                    b.label,
                    systems.len(),
                    systems.join(", ")
                );
            }
            let _ = writeln!(s, "page turns (performance order):");
            for p in &layout.pages {
                let _ = writeln!(
                    s,
                    "  page {} at {:.2} s (beat {:.3}, measure {} pass {})",
                    p.page, p.time_s, p.beat, layout.measures[p.measure].label, p.pass
                );
            }
            for (kind, title) in [
                (MarkKind::Rehearsal, "rehearsal marks"),
                (MarkKind::Words, "words"),
            ] {
                let marks: Vec<_> = layout.marks.iter().filter(|m| m.kind == kind).collect();
                let _ = writeln!(s, "{title}: {}", marks.len());
                for m in marks {
                    let _ = writeln!(s, "  '{}' at {:.2} s, {}", m.text, m.time_s, bar_of(m.beat));
                }
            }
            let _ = writeln!(s, "meter changes (print order):");
            let mut last: Option<(u32, u32)> = None;
            for m in &layout.printed {
                if last != Some((m.numerator, m.denominator)) {
                    let _ = writeln!(
                        s,
                        "  {}/{} from measure {}",
                        m.numerator, m.denominator, m.label
                    );
                    last = Some((m.numerator, m.denominator));
                }
            }
            for w in &layout.warnings {
                let _ = writeln!(s, "warning: {w}");
            }
        }
        None => {
            let _ = writeln!(s, "format: MIDI, {} tracks", score.track_count);
            let _ = writeln!(
                s,
                "bars: {} to {}, pickup {} quarter notes",
                score.first_bar(),
                score.bar_count(),
                score.meter_map.pickup_quarters()
            );
            let _ = writeln!(s, "markers: {}", score.markers.len());
            for m in &score.markers {
                let _ = writeln!(s, "  '{}' at {:.2} s", m.name, m.time_s);
            }
            let _ = writeln!(s, "meter changes:");
            for &(beat, n, d) in score.meter_map.changes() {
                let _ = writeln!(s, "  {n}/{d} at beat {beat:.3}");
            }
        }
    }
    let _ = writeln!(
        s,
        "notes: {}, duration {:.2} s",
        score.notes.len(),
        score.duration_s
    );
    let _ = writeln!(s, "tempo changes:");
    for seg in score.tempo_map.segments() {
        let _ = writeln!(
            s,
            "  {:.2} quarter notes a minute from {:.2} s, {}",
            60e6 / seg.us_per_quarter as f64,
            seg.time_s,
            bar_of(seg.beat)
        );
    }
    s
}
