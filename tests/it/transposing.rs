//! Transposing parts in a printed score: a `<transpose>` says a part sounds other than written
//! (a B-flat clarinet a tone lower). The follower renders the score at sounding pitch and, for
//! the first seconds the transposing parts play, at written pitch alongside, and goes on with
//! the one the performance matches (a performance, or a file exported from a concert-pitch
//! view, may play such a part as written).

use std::sync::Arc;

use scorefollow::engine::{FollowConfig, Follower, FollowerEvent};
use scorefollow::eval;
use scorefollow::score::reference::Reference;
use scorefollow::score::Score;

use crate::common::{chorale, chorale_performance};

/// A B-flat instrument's transposition: written a major second above sounding.
const B_FLAT: &str =
    "<transpose><diatonic>-1</diatonic><chromatic>-2</chromatic></transpose></attributes>";

/// The bundled chorale's alto (part P2) marked as a B-flat instrument; with `respell`, its
/// notes also written a major second higher, as a transposed part is printed (so it sounds
/// as the bundled performance plays it).
fn chorale_with_transposing_alto(respell: bool) -> Arc<Reference> {
    let text = std::fs::read_to_string(chorale("score.musicxml")).expect("bundled score");
    let start = text.find(r#"<part id="P2">"#).expect("an alto part");
    let end = start + text[start..].find("</part>").expect("the alto part closes");
    let mut alto = text[start..end].replacen("</attributes>", B_FLAT, 1);
    if respell {
        alto = written_a_tone_higher(&alto);
    }
    let marked = format!("{}{alto}{}", &text[..start], &text[end..]);
    crate::common::musicxml_reference(&marked, &format!("transposing-alto-{respell}"))
}

/// Every `<pitch>` of `part` two semitones higher, spelt with sharps.
fn written_a_tone_higher(part: &str) -> String {
    const STEPS: [(&str, i32); 7] = [
        ("C", 0),
        ("D", 2),
        ("E", 4),
        ("F", 5),
        ("G", 7),
        ("A", 9),
        ("B", 11),
    ];
    const NAMES: [(&str, i32); 12] = [
        ("C", 0),
        ("C", 1),
        ("D", 0),
        ("D", 1),
        ("E", 0),
        ("F", 0),
        ("F", 1),
        ("G", 0),
        ("G", 1),
        ("A", 0),
        ("A", 1),
        ("B", 0),
    ];
    let field = |pitch: &str, tag: &str| -> Option<String> {
        let open = format!("<{tag}>");
        let a = pitch.find(&open)? + open.len();
        let b = a + pitch[a..].find('<')?;
        Some(pitch[a..b].trim().to_string())
    };
    let mut out = String::new();
    let mut rest = part;
    while let Some(a) = rest.find("<pitch>") {
        let b = a + rest[a..].find("</pitch>").expect("pitch closes") + "</pitch>".len();
        let pitch = &rest[a..b];
        let step = field(pitch, "step").expect("a step");
        let alter: i32 = field(pitch, "alter").map_or(0, |v| v.parse().expect("alter"));
        let octave: i32 = field(pitch, "octave")
            .expect("an octave")
            .parse()
            .expect("octave");
        let semitone = STEPS.iter().find(|s| s.0 == step).expect("a step name").1;
        let midi = 12 * (octave + 1) + semitone + alter + 2;
        let (name, sharp) = NAMES[midi.rem_euclid(12) as usize];
        let alter = if sharp == 1 { "<alter>1</alter>" } else { "" };
        out.push_str(&rest[..a]);
        out.push_str(&format!(
            "<pitch><step>{name}</step>{alter}<octave>{}</octave></pitch>",
            midi / 12 - 1
        ));
        rest = &rest[b..];
    }
    out.push_str(rest);
    out
}

struct Run {
    /// (perf_time_s, score_time_s) per frame.
    rows: Vec<(f64, f64)>,
    at_written_pitch: bool,
    /// Performance seconds at which the trial ended.
    settled_s: Option<f64>,
}

fn follow(reference: Arc<Reference>, samples: &[f32]) -> Run {
    let config = FollowConfig::default();
    let mut f = Follower::new(reference, &config).expect("a follower");
    assert!(
        f.in_written_pitch_trial(),
        "a transposing part starts the trial"
    );
    let mut rows = Vec::new();
    let mut settled_s = None;
    for block in samples.chunks(4096) {
        for ev in f.push(block, 0) {
            if let FollowerEvent::Position(p) = ev {
                rows.push((p.perf_time_s, p.score_time_s));
            }
        }
        if settled_s.is_none() && !f.in_written_pitch_trial() {
            settled_s = rows.last().map(|r| r.0);
        }
    }
    Run {
        rows,
        at_written_pitch: f.at_written_pitch(),
        settled_s,
    }
}

/// Share (%) of the bundled ground truth's events that `run` reports within 300 ms.
fn within_300ms(run: &Run, reference: &Reference) -> f64 {
    let gt = eval::read_xy(&chorale("gt.csv")).expect("bundled ground truth");
    let midi = Score::load_midi(&chorale("score.mid")).expect("score.mid");
    let events: Vec<(f64, f64)> = gt.0.iter().copied().zip(gt.1.iter().copied()).collect();
    crate::common::within_300ms_by_printed_beat(reference, &midi, &run.rows, &events)
}

/// The alto marked as a B-flat instrument but left at the pitch the performance plays: the
/// sounding-pitch rendering has it a tone low, and the follower goes on at written pitch
/// within the first seconds; a properly transposed alto (written a tone higher) sounds as
/// played, and the follower stays at sounding pitch.
#[test]
fn a_transposing_part_is_followed_at_the_pitch_it_is_played() {
    let perf = chorale_performance();

    let reference = chorale_with_transposing_alto(false);
    let as_written = follow(reference.clone(), &perf);
    assert!(as_written.at_written_pitch, "went on at written pitch");
    // Measured: settled at 3.34 s (the alto sings from the first note; mean mismatch 0.090 at
    // written pitch against 0.135 at sounding pitch), 91.3 % within 300 ms over the whole
    // chorale, as the unmarked score; at sounding pitch only 78.3 %.
    let settled = as_written.settled_s.expect("the trial ended");
    assert!(settled <= 6.0, "settled at {settled:.2} s");
    let score = within_300ms(&as_written, &reference);
    assert!(score >= 90.0, "{score:.1} % within 300 ms at written pitch");

    let reference = chorale_with_transposing_alto(true);
    let transposed = follow(reference.clone(), &perf);
    // Measured: settled at 3.34 s (0.060 at sounding pitch against 0.145), 91.3 %.
    assert!(!transposed.at_written_pitch, "stayed at sounding pitch");
    let settled = transposed.settled_s.expect("the trial ended");
    assert!(settled <= 6.0, "settled at {settled:.2} s");
    let score = within_300ms(&transposed, &reference);
    assert!(
        score >= 90.0,
        "{score:.1} % within 300 ms at sounding pitch"
    );
}

/// `align` aligns to both renderings and keeps the one that matches the transposing part.
#[test]
fn align_keeps_the_rendering_the_performance_plays() {
    let perf = chorale_performance();
    let marked = chorale_with_transposing_alto(false);
    let sounding_only = Arc::new(Reference {
        written_pitch: None,
        ..(*marked).clone()
    });
    let score = |reference: &Reference| {
        let aligned = scorefollow::audio::load::align_samples(
            &perf,
            reference,
            scorefollow::align::dtw::DtwOptions::default(),
            |_, _| {},
        );
        let run = Run {
            rows: aligned.rows,
            at_written_pitch: false,
            settled_s: None,
        };
        within_300ms(&run, &marked)
    };
    let (both, sounding) = (score(&marked), score(&sounding_only));
    // Measured: 93.5 % against 91.3 % at sounding pitch only (the offline path recovers from a
    // voice a tone off better than the follower does).
    assert!(
        both >= 90.0 && both > sounding,
        "{both:.1} % against {sounding:.1} %"
    );
}

/// The written-pitch rendering moves only the transposing part, by its transposition; a part
/// transposed by octaves only (a tenor in treble clef) starts no trial.
#[test]
fn the_written_pitch_rendering_moves_only_the_transposing_part() {
    let path = std::env::temp_dir().join(format!(
        "scorefollow-transposing-unit-{}.musicxml",
        std::process::id()
    ));
    let text = std::fs::read_to_string(chorale("score.musicxml")).expect("bundled score");
    let start = text.find(r#"<part id="P2">"#).expect("an alto part");
    let with_b_flat = format!(
        "{}{}",
        &text[..start],
        text[start..].replacen("</attributes>", B_FLAT, 1)
    );
    std::fs::write(&path, &with_b_flat).expect("temp file");
    let score = Score::load(&path).expect("loads");
    let written = scorefollow::score::reference::written_pitch_score(&score).expect("a variant");
    for (s, w) in score.notes.iter().zip(&written.notes) {
        let moved = i32::from(w.pitch) - i32::from(s.pitch);
        assert_eq!(moved, if s.track == 1 { 2 } else { 0 }, "{s:?}");
    }
    let octave = text[..start].to_string()
        + &text[start..].replacen(
            "</attributes>",
            "<transpose><diatonic>0</diatonic><chromatic>0</chromatic><octave-change>-1</octave-change></transpose></attributes>",
            1,
        );
    std::fs::write(&path, &octave).expect("temp file");
    let score = Score::load(&path).expect("loads");
    let _ = std::fs::remove_file(&path);
    assert!(scorefollow::score::reference::written_pitch_score(&score).is_none());
}
