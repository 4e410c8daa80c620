//! The follower and the offline aligner over every case of a corpus, scored as the corpus's
//! `score_alignment.py` scores them (online results causally: the latest position reported at
//! each ground-truth event).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::{CorpusCase, Metrics, Row};
use crate::audio::replay::{ReplayOptions, Speed};
use crate::audio::room::Room;
use crate::audio::Capture;
use crate::engine::{
    AlignConfig, AlignSettings, FollowConfig, FollowSettings, ReferenceKind, RelocationReport,
    Source,
};
use crate::output::memory::MemorySink;
use crate::output::{PositionEvent, Sink};
use crate::score::musicxml::PrintedLayout;
use crate::score::reference::Reference;
use crate::score::{RepeatMode, Score, ScoreOptions};
use crate::{Error, Result};

/// Which job is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The online follower, replayed as fast as possible, scored causally.
    Follow,
    /// Offline global alignment, scored with interpolation.
    Align,
}

/// Which reference each case is followed against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// The piece's score where it has one, else its reference recording.
    Auto,
    /// The reference recording (audio to audio).
    Audio,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct AlignmentEval {
    /// Follow or align.
    pub job: Job,
    /// Against the score or the recording.
    pub against: Against,
    /// Only cases whose `piece/case` contains one of these (all when empty).
    pub cases: Vec<String>,
    /// Where the prediction CSVs go (`PRED_DIR/<piece>/<case>.csv`, the layout of
    /// `score_alignment.py --batch`).
    pub out_dir: PathBuf,
    /// The follower's settings (`reference_kind` is set per case).
    pub follow: FollowSettings,
    /// The offline aligner's settings.
    pub align: AlignSettings,
    /// Which score the cases are followed against (with [`Against::Auto`]); added in this
    /// version.
    pub score_format: ScoreFormat,
    /// Play each performance through this room before it is followed or aligned (the
    /// reference stays as it is); each case gets its own seed, the same in every run.
    pub room: Option<Room>,
}

/// A case's performance played through a room, in a temporary WAV file removed on drop.
struct RoomedCase {
    case: CorpusCase,
}

impl RoomedCase {
    fn new(case: &CorpusCase, room: Room) -> Result<Self> {
        let rate = crate::audio::decode::probe(&case.performance)?.sample_rate_hz;
        let samples = crate::audio::decode::load_mono(&case.performance, rate)?;
        let key = case.key();
        // FNV-1a of the case's key: its own noise, the same in every run.
        let seed = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let played = room.with_seed(seed).apply(&samples, rate);
        let path = std::env::temp_dir().join(format!(
            "scorefollow-room-{}-{}.wav",
            std::process::id(),
            key.replace('/', "--")
        ));
        crate::audio::wav::write_wav_f32(&path, rate, &played)?;
        Ok(Self {
            case: CorpusCase {
                performance: path,
                ..case.clone()
            },
        })
    }
}

impl Drop for RoomedCase {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.case.performance);
    }
}

/// Which score of a piece is followed (`eval --score-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoreFormat {
    /// `score.mid` (the default): its seconds are the ground truth's.
    #[default]
    Midi,
    /// The piece's printed score, `score.musicxml`, with its repeats read as `repeats` says.
    /// Its seconds are the MusicXML's own (its tempo marks): the follower's `beat` (quarter
    /// notes from the start of the unfolded score, the ground truth's `score_beat`) is turned
    /// into seconds at the piece's `nominal_bpm_quarter` before scoring. Pieces without a
    /// `score.musicxml` are left out ([`musicxml_of`]).
    MusicXml(RepeatMode),
}

/// The printed score of a case's piece (`score.musicxml` next to its reference), if it has
/// one.
pub fn musicxml_of(case: &CorpusCase) -> Option<PathBuf> {
    let p = case.reference.parent()?.join("score.musicxml");
    p.is_file().then_some(p)
}

/// The piece's `nominal_bpm_quarter` (piece.json next to its reference): the tempo of
/// `score.mid`, whose seconds the ground truth is in.
pub fn nominal_bpm(case: &CorpusCase) -> Result<f64> {
    let dir = case.reference.parent().unwrap_or(Path::new("."));
    let path = dir.join("piece.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.clone(),
        line: e.line(),
        reason: e.to_string(),
    })?;
    json.get("nominal_bpm_quarter")
        .and_then(serde_json::Value::as_f64)
        .filter(|b| b.is_finite() && *b > 0.0)
        .ok_or_else(|| {
            Error::invalid(
                "piece.json",
                path.display().to_string(),
                "has no positive nominal_bpm_quarter",
            )
        })
}

/// How a printed score's beats are scored in `score.mid`'s, whose seconds the ground truth is
/// in: `score.mid` either plays the music as performed (the repeats written out, as the
/// printed score unfolds them) or plays each printed measure once in print order (an excerpt
/// exported without its repeats). In the second case a follower that is at bar 15 after the
/// performer left out a written repeat is right, and scoring its unfolded beat would count
/// it the repeat's length off.
#[derive(Clone, Debug, PartialEq)]
pub enum BeatMap {
    /// The unfolded beat is `score.mid`'s beat.
    Unfolded,
    /// Print order: each printed measure once.
    PrintOrder {
        /// `score.mid`'s beat at the start of each printed measure
        /// ([`PrintedLayout::printed`]).
        printed_start_beats: Vec<f64>,
        /// The printed score's layout, whose measures in performance order hold the beats.
        layout: Arc<PrintedLayout>,
    },
}

impl BeatMap {
    /// The mapping that puts more of `midi`'s notes on notes of the printed `score`: print
    /// order only when it matches clearly more (a tenth) than the unfolded order.
    pub fn choose(score: &Score, midi: &Score) -> BeatMap {
        let Some(layout) = score.printed.as_ref() else {
            return BeatMap::Unfolded;
        };
        let in_print_order = layout.measures.len() == layout.printed.len()
            && layout
                .measures
                .iter()
                .enumerate()
                .all(|(i, m)| m.printed == i);
        if in_print_order {
            return BeatMap::Unfolded;
        }
        let mut start = 0.0;
        let printed_start_beats = layout
            .printed
            .iter()
            .map(|m| {
                let s = start;
                start += m.length_quarters;
                s
            })
            .collect();
        let print_order = BeatMap::PrintOrder {
            printed_start_beats,
            layout: layout.clone(),
        };
        // Onsets to a 48th of a quarter note.
        let key = |beat: f64, pitch: u8| ((beat * 48.0).round() as i64, pitch);
        let midi_notes: std::collections::HashSet<(i64, u8)> = midi
            .pitched_notes()
            .map(|n| key(midi.beat_at_s(n.onset_s), n.pitch))
            .collect();
        let matched = |map: &BeatMap| {
            score
                .pitched_notes()
                .filter(|n| {
                    midi_notes.contains(&key(map.beat(score.beat_at_s(n.onset_s)), n.pitch))
                })
                .count()
        };
        let (unfolded, printed) = (matched(&BeatMap::Unfolded), matched(&print_order));
        if printed as f64 > 1.1 * unfolded as f64 {
            print_order
        } else {
            BeatMap::Unfolded
        }
    }

    /// `score.mid`'s beat at the printed score's unfolded beat `beat`.
    pub fn beat(&self, beat: f64) -> f64 {
        match self {
            BeatMap::Unfolded => beat,
            BeatMap::PrintOrder {
                printed_start_beats,
                layout,
            } => match layout.measures.get(layout.measure_at_beat(beat)) {
                Some(m) => printed_start_beats[m.printed] + (beat - m.start_beat),
                None => beat,
            },
        }
    }
}

/// Seconds of `score.mid` (the ground truth's) at score time `t_s` of a MusicXML `score`:
/// its quarter-note beat, mapped by `map`, at `bpm` quarter notes a minute.
fn corpus_s(score: &Score, map: &BeatMap, t_s: f64, bpm: f64) -> f64 {
    map.beat(score.beat_at_s(t_s)) * 60.0 / bpm
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `piece/case`.
    pub key: String,
    /// The case.
    pub case: CorpusCase,
    /// Its metrics.
    pub metrics: Metrics,
    /// Error of every ground-truth event (ms).
    pub errors_ms: Vec<f64>,
    /// Performance time of every ground-truth event (s).
    pub gt_times_s: Vec<f64>,
    /// Duration of the performance (s).
    pub audio_s: f64,
    /// Wall time of the case's run (s).
    pub wall_s: f64,
    /// Jumps the follower made (follow only).
    pub relocations: Vec<RelocationReport>,
    /// The confidence reported with the position each ground-truth event was scored on (NaN
    /// for offline alignment).
    pub confidences: Vec<f32>,
    /// Steps of the reported position that METRICS.md counts as false jumps.
    pub false_jumps: Vec<super::FalseJump>,
    /// Every position the follower reported (follow only).
    pub positions: Vec<PositionEvent>,
}

/// Every case's outcome; `Display` prints the tables.
#[derive(Debug, Clone)]
pub struct AlignmentReport {
    /// Follow or align.
    pub job: Job,
    /// Cases in corpus order.
    pub results: Vec<CaseResult>,
    /// Wall time of the whole evaluation, references included (s).
    pub total_wall_s: f64,
    /// Where the predictions are.
    pub out_dir: PathBuf,
}

/// The cases of `corpus` that `filters` select (all when empty).
pub fn select_cases(corpus: &Path, filters: &[String]) -> Result<Vec<CorpusCase>> {
    let cases: Vec<CorpusCase> = super::read_index(corpus)?
        .into_iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.key().contains(f)))
        .collect();
    if cases.is_empty() {
        return Err(Error::invalid(
            "case filter",
            filters.join(", "),
            format!("no case of {} matches", corpus.display()),
        ));
    }
    Ok(cases)
}

/// Run every selected case of `corpus`; `on_case` hears each result as it is scored.
pub fn run(
    corpus: &Path,
    opts: &AlignmentEval,
    mut on_case: impl FnMut(&CaseResult),
) -> Result<AlignmentReport> {
    // Every setting is checked before the first case runs.
    FollowConfig::try_from(opts.follow.clone())?;
    AlignConfig::new(ReferenceKind::Score, &opts.align)?;
    let mut cases = select_cases(corpus, &opts.cases)?;
    if let ScoreFormat::MusicXml(_) = opts.score_format {
        if opts.against == Against::Audio {
            return Err(Error::invalid(
                "score format",
                "musicxml",
                "follows the printed score; --against audio follows the recording",
            ));
        }
        cases.retain(|c| musicxml_of(c).is_some());
        if cases.is_empty() {
            return Err(Error::invalid(
                "score format",
                "musicxml",
                format!(
                    "no selected case of {} has a score.musicxml",
                    corpus.display()
                ),
            ));
        }
    }
    let mut refs: HashMap<PathBuf, Arc<Reference>> = HashMap::new();
    let mut results = Vec::new();
    let total_start = Instant::now();
    for case in &cases {
        let roomed = opts.room.map(|r| RoomedCase::new(case, r)).transpose()?;
        let case = roomed.as_ref().map_or(case, |r| &r.case);
        let (ref_path, repeats) = match (opts.against, opts.score_format, &case.score) {
            (Against::Auto, ScoreFormat::MusicXml(repeats), _) => match musicxml_of(case) {
                Some(p) => (p, repeats),
                None => continue,
            },
            (Against::Auto, ScoreFormat::Midi, Some(s)) => (s.clone(), RepeatMode::default()),
            _ => (case.reference.clone(), RepeatMode::default()),
        };
        let kind = ReferenceKind::of_path(&ref_path);
        let follow_config = FollowConfig::try_from(FollowSettings {
            reference_kind: kind,
            ..opts.follow.clone()
        })?;
        let align_config = AlignConfig::new(kind, &opts.align)?;
        let (features, rendering) = match opts.job {
            Job::Follow => (&follow_config.features, &follow_config.rendering),
            Job::Align => (&align_config.features, &align_config.rendering),
        };
        let reference = match refs.get(&ref_path) {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(crate::audio::load::load_reference_with(
                    &ref_path,
                    kind,
                    features,
                    rendering,
                    &ScoreOptions {
                        repeats,
                        ..ScoreOptions::default()
                    },
                )?);
                refs.insert(ref_path.clone(), r.clone());
                r
            }
        };
        let started = Instant::now();
        let (mut positions, relocations) = match opts.job {
            Job::Follow => follow_case(case, reference.clone(), &follow_config)?,
            Job::Align => (Vec::new(), Vec::new()),
        };
        let mut aligned = Vec::new();
        let reference = match opts.job {
            Job::Follow => reference,
            Job::Align => {
                let audio = crate::audio::decode::load_mono(
                    &case.performance,
                    reference.config.sample_rate_hz,
                )?;
                let first = crate::audio::load::align_samples(
                    &audio,
                    &reference,
                    align_config.dtw,
                    |_, _| {},
                );
                // A printed score is aligned again at the tempo the first pass found.
                let (reference, alignment) = crate::audio::load::realign_at_performed_tempo(
                    &audio,
                    &ref_path,
                    reference,
                    first,
                    features,
                    rendering,
                    &ScoreOptions {
                        repeats,
                        ..ScoreOptions::default()
                    },
                    align_config.dtw,
                )?;
                alignment.warn_of_an_early_end();
                aligned = alignment.rows;
                reference
            }
        };
        // A MusicXML score's seconds are its own: score the beats, in score.mid's seconds.
        let to_corpus_s = match (opts.score_format, reference.score()) {
            (ScoreFormat::MusicXml(_), Some(score)) => {
                let bpm = nominal_bpm(case)?;
                let map = match &case.score {
                    Some(mid) => BeatMap::choose(score, &Score::load_midi(mid)?),
                    None => BeatMap::Unfolded,
                };
                if map != BeatMap::Unfolded {
                    eprintln!(
                        "  {}: score.mid plays the printed measures once, in print order: the beats are scored by printed measure",
                        case.key()
                    );
                }
                Some(move |t_s: f64| corpus_s(score, &map, t_s, bpm))
            }
            _ => None,
        };
        if let Some(f) = &to_corpus_s {
            for p in &mut positions {
                p.score_time_s = f(p.score_time_s);
                p.heard_score_s = f(p.heard_score_s);
            }
        }
        let mut rows: Vec<(f64, f64)> = match opts.job {
            Job::Follow => positions
                .iter()
                .map(|p| (p.perf_time_s, p.score_time_s))
                .collect(),
            Job::Align => std::mem::take(&mut aligned),
        };
        if let (Job::Align, Some(f)) = (opts.job, &to_corpus_s) {
            for r in &mut rows {
                r.1 = f(r.1);
            }
        }
        let wall_s = started.elapsed().as_secs_f64();
        let pred_path = opts
            .out_dir
            .join(&case.piece)
            .join(format!("{}.csv", case.case));
        write_pred(&pred_path, &rows, &positions)?;
        let gt = super::read_xy(&case.gt_csv)?;
        let pred = (
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        );
        let errors_ms = super::errors_ms(&gt, &pred, opts.job == Job::Follow);
        let metrics = super::summarize(&errors_ms);
        let confidences =
            gt.0.iter()
                .map(|&t| {
                    super::held_index(&pred.0, t)
                        .and_then(|i| positions.get(i))
                        .map_or(f32::NAN, |p| p.confidence)
                })
                .collect();
        let false_jumps = match opts.job {
            Job::Follow => super::false_jumps(&rows, &gt),
            Job::Align => Vec::new(),
        };
        let result = CaseResult {
            key: case.key(),
            case: case.clone(),
            metrics,
            errors_ms,
            gt_times_s: gt.0.clone(),
            audio_s: case.duration_s,
            wall_s,
            relocations,
            confidences,
            false_jumps,
            positions,
        };
        on_case(&result);
        results.push(result);
    }
    Ok(AlignmentReport {
        job: opts.job,
        results,
        total_wall_s: total_start.elapsed().as_secs_f64(),
        out_dir: opts.out_dir.clone(),
    })
}

/// Positions reported by the follower, and its jumps.
type FollowRows = (Vec<PositionEvent>, Vec<RelocationReport>);

fn follow_case(
    case: &CorpusCase,
    reference: Arc<Reference>,
    config: &FollowConfig,
) -> Result<FollowRows> {
    let capture = Capture::replay(
        &case.performance,
        ReplayOptions {
            speed: Speed::Max,
            ..ReplayOptions::default()
        },
    )?;
    let memory = MemorySink::default();
    let sinks: Vec<Box<dyn Sink>> = vec![Box::new(memory.clone())];
    let summary = crate::engine::follow(config, Source::new(reference, capture), sinks)?;
    if summary.dropped_events > 0 {
        return Err(Error::Other(format!(
            "{}: {} events were dropped by the output channel",
            case.key(),
            summary.dropped_events
        )));
    }
    Ok((memory.take(), summary.relocations))
}

/// The predictions, `perf_time_s,score_time_s` (what `score_alignment.py` reads), with the
/// follower's other fields after them when there are positions:
/// `heard_score_s,confidence,tempo,spread_s`.
fn write_pred(path: &Path, rows: &[(f64, f64)], positions: &[PositionEvent]) -> Result<()> {
    let io = |e| Error::io(path, e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    if positions.is_empty() {
        writeln!(w, "perf_time_s,score_time_s").map_err(io)?;
        for (t, s) in rows {
            writeln!(w, "{t:.4},{s:.4}").map_err(io)?;
        }
    } else {
        writeln!(
            w,
            "perf_time_s,score_time_s,heard_score_s,confidence,tempo,spread_s,\
             mass,fit_fast,fit_slow,since_jump_s,doubt,holding,fit_usual,mass_recent_min,\
             flow_s,waiting_s"
        )
        .map_err(io)?;
        for p in positions {
            writeln!(
                w,
                "{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.2},{},{},{:.4},{:.4},{:.4},{:.2}",
                p.perf_time_s,
                p.score_time_s,
                p.heard_score_s,
                p.confidence,
                p.tempo,
                p.spread_s,
                p.evidence.mass,
                p.evidence.fit_fast,
                p.evidence.fit_slow,
                p.evidence.since_jump_s,
                p.evidence.doubt,
                p.evidence.holding,
                p.evidence.fit_usual,
                p.evidence.mass_recent_min,
                p.evidence.flow_s,
                p.evidence.waiting_s
            )
            .map_err(io)?;
        }
    }
    w.flush().map_err(io)
}

/// The calibration table of METRICS.md for `(confidence, error ms)` events, under `title`.
pub fn write_calibration_table(
    f: &mut String,
    events: &[(f32, f64)],
    title: &str,
) -> std::fmt::Result {
    let table = super::calibration(events);
    let total = events.len().max(1) as f64;
    writeln!(f, "\n{title}: {} events\n", events.len())?;
    writeln!(
        f,
        "| confidence | events | share of events | <=300 ms | <=100 ms |"
    )?;
    writeln!(f, "|---|---|---|---|---|")?;
    for b in &table {
        writeln!(
            f,
            "| {:.1}-{:.1} | {} | {:.1} % | {:.1} | {:.1} |",
            b.lower,
            b.lower + 0.1,
            b.n,
            100.0 * b.n as f64 / total,
            b.le300_pct,
            b.le100_pct
        )?;
    }
    writeln!(f)?;
    for at in [0.9, 0.95] {
        let sure: Vec<&(f32, f64)> = events.iter().filter(|(c, _)| *c >= at).collect();
        let sure_ok = sure.iter().filter(|(_, e)| e.abs() <= 300.0).count();
        writeln!(
            f,
            "confidence >= {at}: {:.1} % of events, {:.1} % of them within 300 ms",
            100.0 * sure.len() as f64 / total,
            100.0 * sure_ok as f64 / sure.len().max(1) as f64
        )?;
    }
    Ok(())
}

impl AlignmentReport {
    fn pool(&self, keep: impl Fn(&CaseResult) -> bool) -> Metrics {
        let errs: Vec<f64> = self
            .results
            .iter()
            .filter(|r| keep(r))
            .flat_map(|r| r.errors_ms.iter().copied())
            .collect();
        super::summarize(&errs)
    }

    /// The cases without skip, repeat or transposition, pooled (the first pooled row).
    pub fn pooled_plain(&self) -> Metrics {
        self.pool(|r| !r.case.is_jump_or_transpose())
    }

    /// The mean of every scored case's metrics.
    pub fn mean_over_cases(&self) -> Option<Metrics> {
        let scored: Vec<&CaseResult> = self.results.iter().filter(|r| r.metrics.n > 0).collect();
        if scored.is_empty() {
            return None;
        }
        let mean = |f: &dyn Fn(&Metrics) -> f64| {
            scored.iter().map(|r| f(&r.metrics)).sum::<f64>() / scored.len() as f64
        };
        Some(Metrics {
            n: scored.iter().map(|r| r.metrics.n).sum(),
            mean_ms: mean(&|m| m.mean_ms),
            median_ms: mean(&|m| m.median_ms),
            p90_ms: mean(&|m| m.p90_ms),
            max_ms: mean(&|m| m.max_ms),
            le_pct: std::array::from_fn(|k| mean(&|m| m.le_pct[k])),
        })
    }

    /// The robustness cases as their targets are stated: within 300 ms over all events, and
    /// not counting the 5 s after each jump; the time to recover after each jump (first event
    /// from which every event of the next 2 s is within 300 ms).
    fn write_robustness(&self, f: &mut String) -> std::fmt::Result {
        let robust: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| r.case.kind == "robustness")
            .collect();
        if robust.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "\nrobustness cases (within 300 ms; jumps from case.json):\n"
        )?;
        writeln!(
            f,
            "| case | n | <=300 all | <=300 without 5 s after jumps | recovery after each jump (s) |"
        )?;
        writeln!(f, "|---|---|---|---|---|")?;
        let mut recoveries = Vec::new();
        let mut pooled_excl = Vec::new();
        for r in robust {
            let jumps = super::case_jumps_s(&r.case);
            let kept = super::errors_outside_jumps(&r.gt_times_s, &r.errors_ms, &jumps, 5.0);
            let excl = super::summarize(&kept);
            let rec: Vec<String> = jumps
                .iter()
                .map(
                    |&j| match super::recovery_s(&r.gt_times_s, &r.errors_ms, j, 300.0, 2.0) {
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
            writeln!(
                f,
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
            )?;
        }
        if !pooled_excl.is_empty() {
            recoveries.sort_by(f64::total_cmp);
            let median = if recoveries.is_empty() {
                "- (never recovered)".to_string()
            } else {
                format!("{:.2} s", super::summarize(&recoveries).median_ms)
            };
            writeln!(
                f,
                "\njump cases pooled, without 5 s after jumps: {:.1} % within 300 ms; median recovery {median}",
                super::summarize(&pooled_excl).le(300.0)
            )?;
        }
        Ok(())
    }

    /// Every scored event's (confidence, error ms), all cases.
    pub fn confidence_events(&self) -> Vec<(f32, f64)> {
        self.results
            .iter()
            .flat_map(|r| {
                r.confidences
                    .iter()
                    .copied()
                    .zip(r.errors_ms.iter().copied())
            })
            .collect()
    }

    fn write_calibration(&self, f: &mut String) -> std::fmt::Result {
        write_calibration_table(
            f,
            &self.confidence_events(),
            "confidence calibration (all events, skips and repeats included)",
        )
    }

    fn write_false_jumps(&self, f: &mut String) -> std::fmt::Result {
        let n: usize = self.results.iter().map(|r| r.false_jumps.len()).sum();
        let cases = self
            .results
            .iter()
            .filter(|r| !r.false_jumps.is_empty())
            .count();
        writeln!(
            f,
            "\nfalse jumps (a step of over 2 s of score landing over 2 s from the truth): {n} in {cases} cases"
        )?;
        for r in &self.results {
            for j in &r.false_jumps {
                writeln!(
                    f,
                    "  {}: at {:.2} s, score {:.2} s -> {:.2} s, {:.2} s off at the next event",
                    r.key, j.perf_time_s, j.from_score_s, j.to_score_s, j.error_s
                )?;
            }
        }
        Ok(())
    }

    fn write_tables(&self, f: &mut String) -> std::fmt::Result {
        let (mode, scoring) = match self.job {
            Job::Follow => ("Follow", "causal (--hold)"),
            Job::Align => ("Align", "interpolated"),
        };
        writeln!(
            f,
            "\nscorefollow eval --mode {mode}: {} cases, scoring {scoring}, predictions in {}\n",
            self.results.len(),
            self.out_dir.display()
        )?;
        writeln!(f, "{}", super::table_header())?;
        for r in &self.results {
            writeln!(f, "{}", Row(&r.key, &r.metrics))?;
        }
        let n_plain = self
            .results
            .iter()
            .filter(|r| !r.case.is_jump_or_transpose())
            .count();
        writeln!(
            f,
            "{}",
            Row(
                &format!("POOLED, all but skip/repeat/transpose ({n_plain})"),
                &self.pooled_plain()
            )
        )?;
        writeln!(
            f,
            "{}",
            Row(
                &format!("POOLED, all cases ({})", self.results.len()),
                &self.pool(|_| true)
            )
        )?;
        if let Some(m) = self.mean_over_cases() {
            writeln!(f, "{}", Row("MEAN OVER CASES", &m))?;
        }
        let worst = self
            .results
            .iter()
            .filter(|r| !r.case.is_jump_or_transpose())
            .min_by(|a, b| a.metrics.le(1000.0).total_cmp(&b.metrics.le(1000.0)));
        if let Some(w) = worst {
            writeln!(
                f,
                "\nworst case within 1 s (target subset): {} {:.1}%",
                w.key,
                w.metrics.le(1000.0)
            )?;
        }
        self.write_robustness(f)?;
        if self.job == Job::Follow {
            self.write_calibration(f)?;
            self.write_false_jumps(f)?;
        }
        let audio: f64 = self.results.iter().map(|r| r.audio_s).sum();
        let wall: f64 = self.results.iter().map(|r| r.wall_s).sum();
        write!(
            f,
            "speed: {:.1} s of performance in {:.2} s of case runs ({:.0}x real time); whole eval {:.1} s incl. references",
            audio,
            wall,
            audio / wall.max(1e-9),
            self.total_wall_s
        )
    }
}

impl std::fmt::Display for AlignmentReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.write_tables(&mut s)?;
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::musicxml::MusicXmlOptions;

    /// Three 4/4 measures, the second repeated: performed 1 2 2 3 (beats 0, 4, 8, 12), printed
    /// 1 2 3 (beats 0, 4, 8).
    const REPEATED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="4.0">
  <part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes>
      <note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration></note>
      <note><pitch><step>E</step><octave>4</octave></pitch><duration>1</duration></note>
      <note><pitch><step>G</step><octave>4</octave></pitch><duration>2</duration></note>
    </measure>
    <measure number="2">
      <barline location="left"><repeat direction="forward"/></barline>
      <note><pitch><step>A</step><octave>4</octave></pitch><duration>2</duration></note>
      <note><pitch><step>F</step><octave>4</octave></pitch><duration>2</duration></note>
      <barline location="right"><repeat direction="backward"/></barline>
    </measure>
    <measure number="3">
      <note><pitch><step>D</step><octave>5</octave></pitch><duration>1</duration></note>
      <note><pitch><step>B</step><octave>4</octave></pitch><duration>3</duration></note>
    </measure>
  </part>
</score-partwise>
"#;

    fn printed(repeats: RepeatMode) -> Score {
        Score::from_musicxml_bytes(
            REPEATED.as_bytes(),
            Path::new("repeated.musicxml"),
            &MusicXmlOptions {
                repeats,
                ..MusicXmlOptions::default()
            },
        )
        .expect("parses")
    }

    fn as_midi(score: &Score) -> Score {
        Score::from_bytes(&crate::score::smf::write_smf(score), Path::new("score.mid"))
            .expect("reads back")
    }

    #[test]
    fn a_score_mid_as_performed_keeps_the_unfolded_beats() {
        let score = printed(RepeatMode::Performed);
        assert_eq!(BeatMap::choose(&score, &as_midi(&score)), BeatMap::Unfolded);
    }

    #[test]
    fn a_score_mid_in_print_order_scores_by_printed_measure() {
        let score = printed(RepeatMode::Performed);
        let once = printed(RepeatMode::NoRepeats);
        let map = BeatMap::choose(&score, &as_midi(&once));
        assert!(matches!(map, BeatMap::PrintOrder { .. }), "{map:?}");
        // Measure 1, measure 2 (both passes) and measure 3, each with its offset.
        for (unfolded, printed) in [(1.0, 1.0), (5.0, 5.0), (10.0, 6.0), (13.0, 9.0)] {
            assert_eq!(map.beat(unfolded), printed, "beat {unfolded}");
        }
        // A score laid out in print order already needs no map.
        assert_eq!(BeatMap::choose(&once, &as_midi(&once)), BeatMap::Unfolded);
    }
}
