//! MusicXML scores: the small files in tests/data/musicxml/ (written for these tests) read,
//! unfolded and compared with hand-written expectations: performed measure order, note
//! onsets and lengths (quarter notes), printed bar/beat/pass/page/system, marks, tempo,
//! errors, and the unfolded score written as MIDI.

use std::path::{Path, PathBuf};

use scorefollow::output::cues::{CueList, Timeline};
use scorefollow::score::musicxml::{MarkKind, MusicXmlOptions};
use scorefollow::score::{MarkerKind, RepeatMode, Score, ScoreOptions};
use scorefollow::Error;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/musicxml")
        .join(name)
}

fn load(name: &str) -> Score {
    Score::load(&data(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn load_mode(name: &str, repeats: RepeatMode) -> Score {
    Score::load_musicxml(
        &data(name),
        &MusicXmlOptions {
            repeats,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The performed measures as "label" or "label'pass".
fn order(score: &Score) -> String {
    let layout = score.printed.as_deref().expect("a printed layout");
    layout
        .measures
        .iter()
        .map(|m| {
            if m.pass > 1 {
                format!("{}'{}", m.label, m.pass)
            } else {
                m.label.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// (onset, length) in quarter notes and pitch of every note, sorted.
fn notes(score: &Score) -> Vec<(f64, f64, u8)> {
    let mut v: Vec<(f64, f64, u8)> = score
        .notes
        .iter()
        .map(|n| {
            let on = score.beat_at_s(n.onset_s);
            (on, score.beat_at_s(n.offset_s) - on, n.pitch)
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    v
}

fn assert_notes(score: &Score, want: &[(f64, f64, u8)]) {
    let got = notes(score);
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.0 - w.0).abs() < 1e-9 && (g.1 - w.1).abs() < 1e-9 && g.2 == w.2,
            "got {g:?}, want {w:?}\nall: {got:?}"
        );
    }
}

/// Onsets (quarter notes) and pitches only.
fn onsets(score: &Score) -> Vec<(f64, u8)> {
    notes(score).into_iter().map(|(b, _, p)| (b, p)).collect()
}

#[test]
fn pickup_and_voltas_unfold_as_performed() {
    let s = load("pickup_voltas.musicxml");
    assert_eq!(order(&s), "0 1 2 3 1'2 2'2 4 5");
    assert_notes(
        &s,
        &[
            (0.0, 1.0, 67),
            (1.0, 4.0, 72),
            (5.0, 4.0, 74),
            (9.0, 4.0, 76),
            (13.0, 4.0, 72),
            (17.0, 4.0, 74),
            (21.0, 4.0, 77),
            (25.0, 2.0, 79),
            (27.0, 2.0, 81),
        ],
    );
    assert_eq!(
        order(&load_mode("pickup_voltas.musicxml", RepeatMode::NoRepeats)),
        "0 1 2 4 5"
    );
    assert_eq!(
        order(&load_mode("pickup_voltas.musicxml", RepeatMode::AsWritten)),
        "0 1 2 3 4 5"
    );
    // Dynamics: p until the second ending's f; the repeat plays its printed p again.
    let vel: Vec<u8> = s.notes.iter().map(|n| n.velocity).collect();
    assert_eq!(vel, [49, 49, 49, 49, 49, 49, 96, 96, 96]);
    // No <midi-program>: guessed from the part name.
    assert_eq!(s.notes[0].program, 73);
}

#[test]
fn printed_positions_pages_and_marks() {
    let s = load("pickup_voltas.musicxml");
    let layout = s.printed.as_deref().expect("layout");
    assert_eq!(layout.pickup_quarters, 1.0);
    assert_eq!((s.first_bar(), s.bar_count()), (0, 5));
    // 120 quarter notes a minute (no tempo given): 0.5 s per quarter note.
    let at = |beat: f64| s.printed_at_s(beat * 0.5).expect("printed");
    let p = at(0.0);
    assert_eq!((p.bar, p.beat, p.pass, p.page, p.system), (0, 4.0, 1, 1, 1));
    let p = at(14.0);
    assert_eq!((p.bar, p.beat, p.pass, p.label), (1, 2.0, 2, "1"));
    let p = at(18.0);
    assert_eq!((p.bar, p.pass, p.page, p.system), (2, 2, 1, 2));
    let p = at(22.5);
    assert_eq!((p.bar, p.beat, p.pass, p.page, p.system), (4, 2.5, 1, 2, 1));
    let bb = s.bar_beat_at_s(22.5 * 0.5);
    assert_eq!((bb.bar, bb.beat), (4, 2.5));
    assert_eq!(s.s_at_bar_beat(1, 1.0), Some(0.5));
    assert_eq!(s.s_at_bar_beat_pass(1, 1.0, 2), Some(6.5));
    assert_eq!(s.s_at_bar_beat_pass(0, 4.0, 1), Some(0.0));
    assert_eq!(s.s_at_bar_beat(0, 3.0), None, "before the pickup");
    assert_eq!(
        s.s_at_bar_beat_pass(4, 1.0, 2),
        None,
        "the second ending is played once"
    );
    assert_eq!(s.s_at_bar_beat(6, 1.0), None);
    // Page turns in performance order, and the page count.
    assert_eq!(layout.page_count, 2);
    let pages: Vec<(u32, f64)> = layout.pages.iter().map(|p| (p.page, p.beat)).collect();
    assert_eq!(pages, [(1, 0.0), (2, 21.0)]);
    // The rehearsal mark at each of its two passes, the words once.
    let a: Vec<(f64, u32)> = layout
        .rehearsal_marks("A")
        .map(|m| (m.beat, m.pass))
        .collect();
    assert_eq!(a, [(1.0, 1), (13.0, 2)]);
    let tutti: Vec<f64> = layout.words("tutti").map(|m| m.beat).collect();
    assert_eq!(tutti, [21.0]);
    assert!(layout
        .marks
        .iter()
        .all(|m| (m.time_s - m.beat * 0.5).abs() < 1e-9));
    assert!(s
        .markers
        .iter()
        .any(|m| m.name == "A" && m.kind == MarkerKind::Rehearsal && m.time_s == 0.5));
    assert!(layout.marks.iter().any(|m| m.kind == MarkKind::Words));
}

#[test]
fn cues_resolve_printed_bars_and_rehearsal_marks() {
    let s = load("pickup_voltas.musicxml");
    let text = r#"
[[cue]]
id = "letter-a"
marker = "A"
targets = ["127.0.0.1:9000"]
[[cue.message]]
address = "/a"

[[cue]]
id = "bar-2"
bar = 2
beat = 3.0
targets = ["127.0.0.1:9000"]
[[cue.message]]
address = "/b"
"#;
    let list = CueList::parse(
        text,
        Path::new("cues.toml"),
        Timeline {
            score: Some(&s),
            duration_s: s.duration_s,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let at: Vec<(&str, f64)> = list
        .cues
        .iter()
        .map(|c| (c.id.as_str(), c.point.score_s))
        .collect();
    // Bar 2 beat 3 is quarter note 7 of the performance: 3.5 s.
    assert_eq!(at, [("letter-a", 0.5), ("bar-2", 3.5)]);
}

/// A cue file entry at `position` (TOML lines) sending `/x`.
fn cue_entry(id: &str, position: &str) -> String {
    format!(
        "[[cue]]\nid = \"{id}\"\n{position}\ntargets = [\"127.0.0.1:9000\"]\n\
         [[cue.message]]\naddress = \"/x\"\n"
    )
}

fn parse_cues(score: &Score, text: &str) -> scorefollow::Result<CueList> {
    CueList::parse(
        text,
        Path::new("cues.toml"),
        Timeline {
            score: Some(score),
            duration_s: score.duration_s,
        },
    )
}

/// Each cue's id and score time (s), in the list's order.
fn cue_times(list: &CueList) -> Vec<(&str, f64)> {
    list.cues
        .iter()
        .map(|c| (c.id.as_str(), c.point.score_s))
        .collect()
}

/// Cues in the score's terms: a bar and beat on the second pass through a repeat, a
/// rehearsal mark on either pass, words (case-insensitive); the D.S. al Coda file's "To
/// Coda" on its two passes.
#[test]
fn cues_at_passes_rehearsal_marks_and_words() {
    let s = load("pickup_voltas.musicxml");
    let text = [
        cue_entry("a-again", "rehearsal = \"A\"\npass = 2"),
        cue_entry("a", "rehearsal = \"A\""),
        cue_entry("tutti", "text = \"TUTTI\""),
        cue_entry("bar1-again", "bar = 1\nbeat = 2.0\npass = 2"),
        cue_entry("bar2", "bar = 2"),
    ]
    .concat();
    let list = parse_cues(&s, &text).unwrap_or_else(|e| panic!("{e}"));
    let at = cue_times(&list);
    // Performed 0 1 2 3 1 2 4 5 at 0.5 s a quarter note: bar 1 at quarter notes 1 and 13,
    // bar 2 at 5, bar 4 (Tutti) at 21.
    assert_eq!(
        at,
        [
            ("a", 0.5),
            ("bar2", 2.5),
            ("a-again", 6.5),
            ("bar1-again", 7.0),
            ("tutti", 10.5)
        ]
    );

    let s = load("ds_al_coda.musicxml");
    let text = [
        cue_entry("to-coda", "text = \"to coda\""),
        cue_entry("to-coda-2", "text = \"To Coda\"\npass = 2"),
        cue_entry("bar3-2", "bar = 3\npass = 2"),
    ]
    .concat();
    let list = parse_cues(&s, &text).unwrap_or_else(|e| panic!("{e}"));
    let at = cue_times(&list);
    // 1 2 3 4 2' 3' 5 6, 1 s a bar: "To Coda" ends bar 3 (3 s, and 6 s the second time);
    // bar 3's second time starts at 5 s.
    assert_eq!(at, [("to-coda", 3.0), ("bar3-2", 5.0), ("to-coda-2", 6.0)]);
}

/// A cue at a place the score does not have is refused before any audio, in one line
/// naming the cue file and the cue's line.
#[test]
fn cues_at_unknown_places_name_the_file_and_line() {
    let s = load("pickup_voltas.musicxml");
    let cases = [
        (
            "rehearsal = \"C\"",
            "no rehearsal mark 'C' in the score (it has 'A')",
        ),
        (
            "text = \"Solo\"",
            "no words 'Solo' in the score (it has 'Tutti')",
        ),
        (
            "rehearsal = \"A\"\npass = 3",
            "rehearsal mark 'A' is not played on pass 3",
        ),
        (
            "bar = 1\npass = 3",
            "bar 1 is played 2 times in the score: pass 3 does not exist",
        ),
        (
            "bar = 4\npass = 2",
            "bar 4 is played 1 time in the score: pass 2 does not exist",
        ),
        ("bar = 9", "bar 9 beat 1 is not in the score (bars 0 to 5)"),
        (
            "score_s = 1.0\npass = 2",
            "pass goes with bar, rehearsal or text",
        ),
        ("rehearsal = \"A\"\nbar = 1", "give exactly one position"),
    ];
    for (position, want) in cases {
        // The second cue's lines are 7 to 12, its position on 9 (and 10).
        let text = [cue_entry("ok", "bar = 1"), cue_entry("bad", position)].concat();
        let msg = parse_cues(&s, &text)
            .map(|_| ())
            .expect_err(position)
            .to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(msg.starts_with("cues.toml:"), "names the file: {msg}");
        assert!(msg.contains(want), "{position}: {msg}");
        let line: usize = msg
            .split(':')
            .nth(1)
            .and_then(|l| l.parse().ok())
            .expect("line");
        assert!((7..=10).contains(&line), "{position}: line {line} in {msg}");
    }
    // A MIDI score has no printed marks.
    let midi = Score::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bwv66_6.mid"))
        .unwrap_or_else(|e| panic!("{e}"));
    let msg = parse_cues(&midi, &cue_entry("r", "rehearsal = \"A\""))
        .map(|_| ())
        .expect_err("no marks")
        .to_string();
    assert!(msg.contains("no printed marks"), "{msg}");
}

#[test]
fn compressed_mxl_reads_its_rootfile() {
    let a = load("pickup_voltas.mxl");
    let b = load("pickup_voltas.musicxml");
    assert_eq!(onsets(&a), onsets(&b));
    assert_eq!(order(&a), order(&b));
    assert!(a
        .printed
        .as_deref()
        .is_some_and(|l| l.format.contains(".mxl")));
}

#[test]
fn repeat_three_times_and_tempo_marks() {
    let s = load("repeat_times_tempo.musicxml");
    assert_eq!(order(&s), "1 2 2'2 2'3 3");
    assert_notes(
        &s,
        &[
            (0.0, 1.0, 60),
            (1.0, 1.0, 62),
            (2.0, 1.0, 64),
            (3.0, 2.0, 65),
            (5.0, 1.0, 67),
            (6.0, 2.0, 65),
            (8.0, 1.0, 67),
            (9.0, 2.0, 65),
            (11.0, 1.0, 67),
            (12.0, 3.0, 69),
        ],
    );
    // 60 quarter notes a minute, then half note = 40 (80 quarter notes a minute).
    assert_eq!(s.qpm_at_s(0.0), 60.0);
    let a4 = s.notes.last().expect("notes");
    assert!((a4.onset_s - 12.0).abs() < 1e-9);
    assert!((a4.offset_s - 14.25).abs() < 1e-9);
    assert!((s.qpm_at_s(13.0) - 80.0).abs() < 1e-6);
    assert_eq!(a4.program, 40, "<midi-program> 41 is GM program 40");
    let p = s.printed_at_s(7.5).expect("printed");
    assert_eq!((p.bar, p.beat, p.pass), (2, 2.5, 2));
}

#[test]
fn da_capo_al_fine() {
    let s = load("dc_al_fine.musicxml");
    assert_eq!(order(&s), "1 2 3 4 1'2 2'2");
    let want: Vec<(f64, u8)> = vec![
        (0.0, 60),
        (2.0, 62),
        (4.0, 64),
        (6.0, 65),
        (8.0, 60),
        (10.0, 62),
    ];
    assert_eq!(onsets(&s), want);
}

#[test]
fn dal_segno_al_coda_with_sound_attributes_and_from_words_alone() {
    let s = load("ds_al_coda.musicxml");
    assert_eq!(order(&s), "1 2 3 4 2'2 3'2 5 6");
    let want: Vec<(f64, u8)> = vec![
        (0.0, 60),
        (2.0, 62),
        (4.0, 64),
        (6.0, 65),
        (8.0, 62),
        (10.0, 64),
        (12.0, 67),
        (14.0, 69),
    ];
    assert_eq!(onsets(&s), want);
    // Without the <sound> attributes: the signs and words alone say the same.
    let text = std::fs::read_to_string(data("ds_al_coda.musicxml")).expect("read");
    let mut plain = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        while let Some(a) = l.find("<sound ") {
            let b = l[a..].find("/>").map_or(l.len(), |b| a + b + 2);
            l.replace_range(a..b, "");
        }
        plain.push_str(&l);
        plain.push('\n');
    }
    assert!(!plain.contains("<sound"));
    let s = Score::from_musicxml_bytes(
        plain.as_bytes(),
        Path::new("plain.musicxml"),
        &MusicXmlOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order(&s), "1 2 3 4 2'2 3'2 5 6");
    assert_eq!(onsets(&s), want);
}

/// Page turns from the score: a repeat that turns back to page 1 gives page 1 again (id
/// `page-1-2`) and page 2 again (`page-2-2`), each at its entry in performance order, all
/// sent to the targets with the page number; a score of one page and a MIDI score give none.
#[test]
fn page_turns_from_the_score_follow_the_performance_order() {
    use scorefollow::features::FeatureConfig;
    use scorefollow::score::reference::{Reference, ScoreRendering};
    let c = "<note><pitch><step>C</step><octave>4</octave></pitch><duration>4</duration></note>";
    let text = score_text(
        "<attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes>",
        &[
            &format!("<barline location=\"left\"><repeat direction=\"forward\"/></barline>{c}"),
            &format!("<print new-page=\"yes\"/>{c}<barline location=\"right\"><repeat direction=\"backward\"/></barline>"),
            c,
        ],
    );
    let path = Path::new("pages.musicxml");
    let score = Score::from_musicxml_bytes(text.as_bytes(), path, &MusicXmlOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let reference = Reference::from_score(
        score,
        path,
        &FeatureConfig::default(),
        &ScoreRendering::default(),
    );
    let target: std::net::SocketAddr = "127.0.0.1:9000".parse().expect("addr");
    let list = CueList::score_pages(&reference, 0.5, vec![target])
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("page turns");
    let turns: Vec<(&str, Option<i32>, f64)> = list
        .cues
        .iter()
        .map(|c| (c.id.as_str(), c.page, c.point.score_s))
        .collect();
    // Performed 1 2 1 2 3 at 120 quarter notes a minute: 2 s a bar.
    assert_eq!(
        turns,
        [
            ("page-1", Some(1), 0.0),
            ("page-2", Some(2), 2.0),
            ("page-1-2", Some(1), 4.0),
            ("page-2-2", Some(2), 6.0)
        ]
    );
    assert!(list.cues.iter().all(|c| c.point.lead_s == 0.5
        && c.targets == [target]
        && c.messages.len() == 1
        && c.messages[0].addr == "/scorefollow/page"
        && c.messages[0].args == [rosc::OscType::Int(c.page.expect("page"))]));
    // Re-armed only after falling back half the shortest page (2 s).
    assert_eq!(list.settings.hysteresis_s, 1.0);

    let one_page = Score::load(&data("dc_al_fine.musicxml")).unwrap_or_else(|e| panic!("{e}"));
    let r = Reference::from_score(
        one_page,
        path,
        &FeatureConfig::default(),
        &ScoreRendering::default(),
    );
    assert!(CueList::score_pages(&r, 0.5, vec![target])
        .expect("ok")
        .is_none());
    let midi = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bwv66_6.mid");
    let r =
        Reference::from_score_file(&midi, &FeatureConfig::default(), &ScoreRendering::default())
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(CueList::score_pages(&r, 0.5, vec![target])
        .expect("ok")
        .is_none());
}

/// A constant tempo (`--tempo`) replaces the marks; a tempo scale multiplies them. The
/// fixture has no mark: 120 quarter notes a minute.
#[test]
fn a_given_tempo_or_tempo_scale_retimes_the_printed_score() {
    let at = |qpm: Option<f64>, tempo_scale: Option<f64>| {
        let s = Score::load_musicxml(
            &data("pickup_voltas.musicxml"),
            &MusicXmlOptions {
                qpm,
                tempo_scale,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (
            s.notes[1].onset_s,
            s.duration_s,
            s.beat_at_s(s.notes[1].onset_s),
        )
    };
    let (onset, duration, beat) = at(None, None);
    assert_eq!((onset, beat), (0.5, 1.0));
    let (o, d, b) = at(Some(60.0), None);
    assert!((o - 2.0 * onset).abs() < 1e-6 && (d - 2.0 * duration).abs() < 1e-6 && b == beat);
    let (o, d, _) = at(None, Some(0.5));
    assert!((o - 2.0 * onset).abs() < 1e-6 && (d - 2.0 * duration).abs() < 1e-6);
    let (o, _, _) = at(Some(60.0), Some(2.0));
    assert!((o - onset).abs() < 1e-6);
}

/// The bundled chorale's cue file by printed measure numbers and rehearsal marks
/// (cues_printed.toml, for score.musicxml) puts every cue on the same quarter-note beat as
/// cues.toml does on score.mid (whose bar 1 is the pickup).
#[test]
fn bundled_printed_cues_match_the_midi_cues() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scores/bach_bwv66_6");
    let beats = |score: &str, cues: &str| -> Vec<(String, f64)> {
        let s = Score::load(&dir.join(score)).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(dir.join(cues)).expect("cue file");
        let list = parse_cues(&s, &text).unwrap_or_else(|e| panic!("{cues}: {e}"));
        list.cues
            .iter()
            .map(|c| (c.id.clone(), s.beat_at_s(c.point.score_s)))
            .collect()
    };
    let midi = beats("score.mid", "cues.toml");
    let printed = beats("score.musicxml", "cues_printed.toml");
    assert_eq!(midi.len(), 12);
    assert_eq!(midi.len(), printed.len());
    for ((a, x), (b, y)) in midi.iter().zip(&printed) {
        assert_eq!(a, b);
        // A tempo map in whole microseconds a quarter note: 22.5 s is 1e-5 quarters off.
        assert!(
            (x - y).abs() < 1e-4,
            "{a}: beat {x} (MIDI) vs {y} (printed)"
        );
    }
}

#[test]
fn transposing_clarinet_ties_tuplets_graces_chords_and_voices() {
    let third = 1.0 / 3.0;
    let want = [
        // Piano: chord, and the second voice after <backup> with a <forward> gap.
        (0.0, 2.0, 48),
        (0.0, 4.0, 60),
        (0.0, 4.0, 64),
        (0.0, 4.0, 67),
        // Clarinet, a tone below the written E5 F#5 G5 triplet.
        (0.0, third, 74),
        (third, third, 76),
        (2.0 * third, third, 77),
        (1.0, 1.0, 79),
        // The written D5 tied across the bar line: one note of 4 quarters.
        (2.0, 4.0, 72),
        (3.0, 1.0, 43),
        (4.0, 4.0, 41),
        (4.0, 4.0, 65),
        // The grace note on the beat, taking an eighth of a quarter from its F.
        (6.0, 0.125, 74),
        (6.125, 0.875, 75),
    ];
    let s = load("clarinet_piano.musicxml");
    assert_notes(&s, &want);
    let layout = s.printed.as_deref().expect("layout");
    assert_eq!(layout.parts.len(), 2);
    assert_eq!(layout.parts[0].name, "Clarinet in B\u{266d}");
    assert_eq!(layout.parts[0].transpose_semitones, -2);
    // One channel per part; the part index is the note's track.
    assert!(s
        .notes
        .iter()
        .all(|n| n.channel as usize == n.track && n.track < 2));
    let t = load("clarinet_piano_timewise.musicxml");
    assert_notes(&t, &want);
    assert_eq!(
        t.printed.as_deref().map(|l| l.format.as_str()),
        Some("timewise")
    );
}

#[test]
fn split_bar_and_repeat_back_to_the_start() {
    let s = load("split_bar.musicxml");
    assert_eq!(order(&s), "0 1 2 0'2 1'2 2'2 2a 3");
    let want: Vec<(f64, u8)> = vec![
        (0.0, 62),
        (1.0, 67),
        (2.0, 69),
        (3.0, 71),
        (4.0, 69),
        (6.0, 62),
        (7.0, 67),
        (8.0, 69),
        (9.0, 71),
        (10.0, 69),
        (12.0, 71),
        (13.0, 72),
    ];
    assert_eq!(onsets(&s), want);
    // 90 quarter notes a minute: 2/3 s per quarter note.
    let q = 60.0 / 90.0;
    let p = s.printed_at_s(12.0 * q).expect("printed");
    assert_eq!((p.bar, p.beat, p.pass, p.label), (2, 3.0, 1, "2a"));
    let p = s.printed_at_s(0.0).expect("printed");
    assert_eq!((p.bar, p.beat), (0, 3.0));
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-4);
    assert!(
        close(s.s_at_bar_beat(2, 3.0), 12.0 * q),
        "2a starts at beat 3 of bar 2"
    );
    assert!(close(s.s_at_bar_beat(2, 2.0), 5.0 * q));
    assert!(close(s.s_at_bar_beat_pass(2, 1.0, 2), 10.0 * q));
    assert!(close(s.s_at_bar_beat_pass(0, 3.0, 2), 6.0 * q));
    let layout = s.printed.as_deref().expect("layout");
    assert!(close(layout.beat_at_label("2a", 3.0, 1), 12.0));
}

/// A one-part score around `measures` (bodies of <measure> elements numbered from 1).
fn score_text(attributes: &str, measures: &[&str]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?>\n<score-partwise>\n<part-list><score-part id=\"P1\"><part-name>X</part-name></score-part></part-list>\n<part id=\"P1\">\n",
    );
    for (i, m) in measures.iter().enumerate() {
        s.push_str(&format!("<measure number=\"{}\">\n", i + 1));
        if i == 0 {
            s.push_str(attributes);
            s.push('\n');
        }
        s.push_str(m);
        s.push_str("\n</measure>\n");
    }
    s.push_str("</part>\n</score-partwise>\n");
    s
}

const C4: &str =
    "<note><pitch><step>C</step><octave>4</octave></pitch><duration>4</duration></note>";

fn error_of(text: &str) -> String {
    let e = Score::from_musicxml_bytes(
        text.as_bytes(),
        Path::new("bad.musicxml"),
        &MusicXmlOptions::default(),
    )
    .expect_err("an error");
    assert!(matches!(e, Error::MusicXml { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.starts_with("bad.musicxml"), "names the file: {msg}");
    msg
}

#[test]
fn errors_name_the_file_and_line() {
    let good = score_text("<attributes><divisions>1</divisions></attributes>", &[C4]);
    assert!(Score::from_musicxml_bytes(
        good.as_bytes(),
        Path::new("ok.musicxml"),
        &MusicXmlOptions::default()
    )
    .is_ok());
    // Malformed XML: the line of the mismatched end tag.
    let broken = good.replace("</measure>", "</measur>");
    let m = error_of(&broken);
    assert!(
        m.starts_with("bad.musicxml:8:") && m.contains("malformed XML"),
        "{m}"
    );
    // Zero and missing divisions.
    let m = error_of(&good.replace("<divisions>1<", "<divisions>0<"));
    assert!(
        m.starts_with("bad.musicxml:6:") && m.contains("divisions"),
        "{m}"
    );
    let m = error_of(&good.replace("<divisions>1</divisions>", ""));
    assert!(m.contains("no <divisions>"), "{m}");
    // A D.S. without a segno: the line of the D.S. and the measure.
    let ds = score_text(
        "<attributes><divisions>1</divisions></attributes>",
        &[
            C4,
            "<note><pitch><step>D</step><octave>4</octave></pitch><duration>4</duration></note>\n<direction><direction-type><words>D.S. al Fine</words></direction-type></direction>",
        ],
    );
    let m = error_of(&ds);
    assert!(
        m.starts_with("bad.musicxml:11:") && m.contains("measure 2") && m.contains("segno"),
        "{m}"
    );
    // No note at all.
    let rests = score_text(
        "<attributes><divisions>1</divisions></attributes>",
        &["<note><rest/><duration>4</duration></note>"],
    );
    assert!(error_of(&rests).contains("no notes"));
    // Not MusicXML.
    assert!(error_of("<html><body/></html>").contains("not a MusicXML score"));
    assert!(error_of("").contains("malformed XML"));
}

#[test]
fn divisions_change_midway_and_differ_between_parts() {
    // Part 1 counts in quarters, then in sixteenths; part 2 in triplet eighths.
    let text = r#"<?xml version="1.0"?>
<score-partwise>
<part-list><score-part id="P1"/><score-part id="P2"/></part-list>
<part id="P1">
<measure number="1"><attributes><divisions>1</divisions><time><beats>2</beats><beat-type>4</beat-type></time></attributes>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>2</duration></note></measure>
<measure number="2"><attributes><divisions>4</divisions></attributes>
<note><pitch><step>D</step><octave>4</octave></pitch><duration>3</duration></note>
<note><pitch><step>E</step><octave>4</octave></pitch><duration>5</duration></note></measure>
</part>
<part id="P2">
<measure number="1"><attributes><divisions>3</divisions></attributes>
<note><pitch><step>C</step><octave>3</octave></pitch><duration>1</duration></note>
<note><pitch><step>D</step><octave>3</octave></pitch><duration>5</duration></note></measure>
<measure number="2"><note><pitch><step>E</step><octave>3</octave></pitch><duration>6</duration></note></measure>
</part>
</score-partwise>"#;
    let s = Score::from_musicxml_bytes(
        text.as_bytes(),
        Path::new("div.musicxml"),
        &MusicXmlOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let third = 1.0 / 3.0;
    assert_notes(
        &s,
        &[
            (0.0, third, 48),
            (0.0, 2.0, 60),
            (third, 5.0 * third, 50),
            (2.0, 2.0, 52),
            (2.0, 0.75, 62),
            (2.75, 1.25, 64),
        ],
    );
}

#[test]
fn lenient_reading_of_untidy_files() {
    // An ending without a number, a note without a duration, "4a"-like labels.
    let text = score_text(
        "<attributes><divisions>2</divisions></attributes>",
        &[
            "<barline location=\"left\"><repeat direction=\"forward\"/></barline>\n<note><pitch><step>C</step><octave>4</octave></pitch><type>whole</type></note>",
            "<barline location=\"left\"><ending number=\"\" type=\"start\"/></barline>\n<note><pitch><step>D</step><octave>4</octave></pitch><duration>8</duration></note>\n<barline location=\"right\"><ending number=\"\" type=\"stop\"/><repeat direction=\"backward\"/></barline>",
            "<barline location=\"left\"><ending number=\"2\" type=\"start\"/></barline>\n<note><pitch><step>E</step><octave>4</octave></pitch><duration>8</duration></note>\n<barline location=\"right\"><ending number=\"2\" type=\"stop\"/></barline>",
        ],
    );
    let s = Score::from_musicxml_bytes(
        text.as_bytes(),
        Path::new("untidy.musicxml"),
        &MusicXmlOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order(&s), "1 2 1'2 3");
    let layout = s.printed.as_deref().expect("layout");
    assert!(layout.warnings.iter().any(|w| w.contains("ending number")));
    assert!(layout
        .warnings
        .iter()
        .any(|w| w.contains("without <duration>")));
}

#[test]
fn midi_export_round_trips_the_unfolded_score() {
    let s = load("pickup_voltas.musicxml");
    let bytes = scorefollow::score::smf::write_smf(&s);
    let back =
        Score::from_bytes(&bytes, Path::new("unfolded.mid")).unwrap_or_else(|e| panic!("{e}"));
    let a: Vec<(f64, f64, u8, u8)> = s
        .notes
        .iter()
        .map(|n| (n.onset_s, n.offset_s, n.pitch, n.velocity))
        .collect();
    let b: Vec<(f64, f64, u8, u8)> = back
        .notes
        .iter()
        .map(|n| (n.onset_s, n.offset_s, n.pitch, n.velocity))
        .collect();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x.0 - y.0).abs() < 1e-9 && (x.1 - y.1).abs() < 1e-9 && x.2 == y.2 && x.3 == y.3);
    }
    // The pickup is written as a 1/4 bar, then 4/4.
    assert_eq!(back.meter_map.changes(), &[(0.0, 1, 4), (1.0, 4, 4)]);
    assert!(back.markers.iter().any(|m| m.name == "A"));
}

#[test]
fn midi_pickup_and_score_paths() {
    let chorale = Path::new(env!("CARGO_MANIFEST_DIR")).join("scores/bach_bwv66_6/score.mid");
    let plain = Score::load(&chorale).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.bar_beat_at_s(0.0).bar, 1);
    let with = Score::load_with(
        &chorale,
        &ScoreOptions {
            pickup_quarters: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bb = with.bar_beat_at_s(0.0);
    assert_eq!((bb.bar, bb.beat), (0, 4.0));
    assert_eq!(with.first_bar(), 0);
    // A MusicXML score gives its own pickup.
    assert!(Score::load_with(
        &data("split_bar.musicxml"),
        &ScoreOptions {
            pickup_quarters: Some(1.0),
            ..Default::default()
        }
    )
    .is_err());
    use scorefollow::score::reference::{is_musicxml_path, is_score_path};
    for p in ["a.mid", "a.MIDI", "a.musicxml", "a.xml", "b.MXL"] {
        assert!(is_score_path(Path::new(p)), "{p}");
    }
    assert!(!is_score_path(Path::new("a.flac")));
    assert!(is_musicxml_path(Path::new("a.mxl")) && !is_musicxml_path(Path::new("a.mid")));
}

#[test]
fn bundled_chorale_musicxml_matches_its_midi() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scores/bach_bwv66_6");
    let mid = Score::load(&dir.join("score.mid")).unwrap_or_else(|e| panic!("{e}"));
    let xml = Score::load(&dir.join("score.musicxml")).unwrap_or_else(|e| panic!("{e}"));
    let beats =
        |s: &Score| -> Vec<f64> { s.notes.iter().map(|n| s.beat_at_s(n.onset_s)).collect() };
    let share =
        scorefollow::score::musicxml::onset_coincidence(&beats(&mid), &beats(&xml), 1.0 / 48.0);
    assert_eq!(share, 1.0);
    // The same notes in quarter notes, over the MIDI file's span (it stops before the last
    // bar, as the corpus excerpt it came from).
    let end = onsets(&mid).last().map_or(0.0, |o| o.0) + 1e-6;
    let within: Vec<(f64, u8)> = onsets(&xml).into_iter().filter(|o| o.0 <= end).collect();
    assert_eq!(onsets(&mid).len(), within.len());
    for (a, b) in onsets(&mid).iter().zip(&within) {
        assert!((a.0 - b.0).abs() < 1e-6 && a.1 == b.1, "{a:?} {b:?}");
    }
    let layout = xml.printed.as_deref().expect("layout");
    assert!(layout.page_count >= 3, "the bundled file has page breaks");
}

/// `align` against the bundled chorale's printed score writes its positions in the score's
/// terms: printed bars (the pickup is bar 0) as labels, and the three pages in order.
#[test]
fn align_writes_printed_bars_pages_and_systems() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scores/bach_bwv66_6");
    let out = std::env::temp_dir().join(format!("sf_align_mx_{}.csv", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .arg("align")
        .arg(dir.join("performance.flac"))
        .arg("--score")
        .arg(dir.join("score.musicxml"))
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .status()
        .expect("run");
    assert!(status.success());
    let text = std::fs::read_to_string(&out).expect("output");
    let _ = std::fs::remove_file(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("perf_time_s,score_time_s,beat,bar,pass,page,system,label")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let pages: Vec<u32> = rows.iter().map(|r| r[5].parse().expect("page")).collect();
    assert!(pages.windows(2).all(|w| w[0] <= w[1]), "pages go forward");
    assert_eq!((pages[0], pages[pages.len() - 1]), (1, 3));
    for r in &rows {
        assert_eq!(r.len(), 8, "{r:?}");
        assert_eq!(
            r[7], r[3],
            "the label of a whole-numbered measure is its bar: {r:?}"
        );
        assert_eq!(r[4], "1", "no repeat in the chorale: {r:?}");
        let (bar, page): (i32, u32) = (r[3].parse().expect("bar"), r[5].parse().expect("page"));
        // Pages 1, 2, 3 hold measures 0-2, 3-5, 6-9.
        assert_eq!(
            page,
            if bar < 3 {
                1
            } else if bar < 6 {
                2
            } else {
                3
            },
            "{r:?}"
        );
    }
}

/// The bar lines the live view and the switcher draw for a printed score: every measure as
/// performed, the repeat's measures again, under their printed numbers (the pickup is 0).
#[test]
fn bar_lines_of_a_printed_score_follow_the_performed_order() {
    let s = load("pickup_voltas.musicxml");
    let bars = scorefollow::web::versions::bar_starts(&s);
    let numbers: Vec<i32> = bars.iter().map(|b| b.0).collect();
    assert_eq!(numbers, [0, 1, 2, 3, 1, 2, 4, 5]);
    // Each measure starts with a note here (quarter notes 0, 1, 5, ... at MusicXML's 120 a
    // minute without a tempo mark): the bar lines are the notes' onsets.
    let starts: Vec<f64> = bars.iter().map(|b| b.1).collect();
    assert_eq!(starts, [0.0, 0.5, 2.5, 4.5, 6.5, 8.5, 10.5, 12.5]);
}
