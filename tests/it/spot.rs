//! End-to-end theme spotting and collection matching on generated MIDI files (the "find every
//! occurrence of a subject in a fugue" task): library API, the `spot` and `index` subcommands,
//! and refusal of foreign or corrupt index files.

use std::path::{Path, PathBuf};
use std::process::Command;

use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use scorefollow::spot::index::{Index, IndexConfig, IndexQuery};
use scorefollow::spot::query::ThemeFile;
use scorefollow::spot::{spot_files, MidiMode, SpotConfig};

const TPQ: u16 = 480;

/// Notes `(onset_beats, duration_beats, pitch)` at 60 bpm (1 s per beat) to a MIDI file.
fn write_midi(path: &Path, notes: &[(f64, f64, u8)]) {
    let mut ev: Vec<(u64, bool, u8)> = Vec::new();
    for &(on, dur, p) in notes {
        let a = (on * TPQ as f64).round() as u64;
        let b = ((on + dur) * TPQ as f64).round() as u64;
        ev.push((a, true, p));
        ev.push((b, false, p));
    }
    // Note-offs before note-ons at the same tick.
    ev.sort_by_key(|&(t, on, p)| (t, on, p));
    let mut track = vec![TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(1_000_000))),
    }];
    let mut last = 0;
    for (t, on, p) in ev {
        let message = if on {
            MidiMessage::NoteOn {
                key: u7::new(p),
                vel: u7::new(90),
            }
        } else {
            MidiMessage::NoteOff {
                key: u7::new(p),
                vel: u7::new(0),
            }
        };
        track.push(TrackEvent {
            delta: u28::new((t - last) as u32),
            kind: TrackEventKind::Midi {
                channel: u4::new(0),
                message,
            },
        });
        last = t;
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(TPQ))),
        tracks: vec![track],
    };
    smf.save(path).expect("write test MIDI");
}

/// A chromatic subject of 8 notes (4 beats = 4 s), foreign to the C-major filler.
fn subject(start: f64, transpose: i8) -> Vec<(f64, f64, u8)> {
    let pitches = [62, 65, 69, 68, 67, 66, 65, 61];
    let durs = [0.5, 0.5, 0.25, 0.25, 1.0, 0.5, 0.5, 0.5];
    let mut t = start;
    pitches
        .iter()
        .zip(durs)
        .map(|(&p, d)| {
            let n = (t, d, (p as i16 + transpose as i16) as u8);
            t += d;
            n
        })
        .collect()
}

/// Free counterpoint: a deterministic walk that avoids the subject's contour.
fn filler(start: f64, beats: usize, seed: u32) -> Vec<(f64, f64, u8)> {
    let scale = [60u8, 62, 64, 65, 67, 69, 71, 72];
    let mut s = seed;
    (0..beats)
        .map(|i| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (
                start + i as f64,
                1.0,
                scale[(s >> 16) as usize % scale.len()] - 12,
            )
        })
        .collect()
}

struct Fixture {
    dir: PathBuf,
    theme: PathBuf,
    fugue: PathBuf,
    other: PathBuf,
}

/// Subject at beats 8 (original), 24 (up a fourth = +5) and 40 (original), over a bass line;
/// a second piece without the subject.
fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("scorefollow_spot_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let theme = dir.join("subject.mid");
    write_midi(&theme, &subject(0.0, 0));
    let mut notes = filler(0.0, 56, 7);
    notes.extend(subject(8.0, 0));
    notes.extend(subject(24.0, 5));
    notes.extend(subject(40.0, 0));
    for (i, b) in [0.0, 4.0, 14.0, 18.0, 30.0, 34.0, 46.0, 50.0]
        .iter()
        .enumerate()
    {
        notes.extend(
            filler(*b, 3, 100 + i as u32)
                .into_iter()
                .map(|(t, d, p)| (t, d * 0.5, p + 24)),
        );
    }
    let fugue = dir.join("fugue.mid");
    write_midi(&fugue, &notes);
    let other = dir.join("other.mid");
    write_midi(&other, &filler(0.0, 60, 99));
    Fixture {
        dir,
        theme,
        fugue,
        other,
    }
}

#[test]
fn finds_every_entry_of_the_subject_with_transpositions() {
    let f = fixture("lib");
    let mut cfg = SpotConfig::default();
    cfg.matching.transpose = true;
    cfg.matching.peaks.top_k = 3;
    let hits = spot_files(
        &[ThemeFile::from_path(&f.theme)],
        std::slice::from_ref(&f.fugue),
        &cfg,
        &scorefollow::audio::load::read_chroma,
    )
    .expect("spot");
    let mut found: Vec<(f64, i8)> = hits
        .iter()
        .map(|h| (h.hit.start_s, h.hit.transpose))
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(found.len(), 3, "{hits:?}");
    for ((t, tr), (want_t, want_tr)) in found.iter().zip([(8.0, 0i8), (24.0, 5), (40.0, 0)]) {
        assert!((t - want_t).abs() < 0.5, "{found:?}");
        assert_eq!(*tr, want_tr, "{found:?}");
    }
    // Without transpositions the +5 entry is not among the two best.
    cfg.matching.transpose = false;
    cfg.matching.peaks.top_k = 2;
    let hits = spot_files(
        &[ThemeFile::from_path(&f.theme)],
        std::slice::from_ref(&f.fugue),
        &cfg,
        &scorefollow::audio::load::read_chroma,
    )
    .expect("spot");
    assert!(
        hits.iter().all(|h| (h.hit.start_s - 24.0).abs() > 1.0),
        "{hits:?}"
    );
    std::fs::remove_dir_all(&f.dir).ok();
}

#[test]
fn spot_subcommand_writes_the_hits_csv() {
    let f = fixture("cli");
    let out = f.dir.join("hits.csv");
    let st = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .args(["spot", "--theme"])
        .arg(&f.theme)
        .arg(&f.fugue)
        .arg(&f.other)
        .args(["--top", "2", "--transpose", "--out"])
        .arg(&out)
        .output()
        .expect("run scorefollow");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let stdout = String::from_utf8_lossy(&st.stdout);
    assert!(
        stdout.contains("rank") && stdout.contains("fugue.mid"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(&out).expect("hits.csv written");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("theme_id,start_s,end_s,score,rank,recording,tempo_scale,transpose")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    // The two untransposed entries (8 s and 40 s) of the fugue beat everything in the other
    // piece.
    assert_eq!(rows.len(), 2);
    let mut starts = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], "subject");
        assert_eq!(r[4], (i + 1).to_string());
        assert!(r[5].ends_with("fugue.mid"), "{r:?}");
        assert_eq!(r[7], "0");
        starts.push(r[1].parse::<f64>().expect("start_s"));
    }
    starts.sort_by(f64::total_cmp);
    assert!(
        (starts[0] - 8.0).abs() < 0.5 && (starts[1] - 40.0).abs() < 0.5,
        "{starts:?}"
    );
    // A missing query file is a one-line error, not a panic.
    let bad = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .args(["spot", "--theme", "/nonexistent/q.mid"])
        .arg(&f.fugue)
        .output()
        .expect("run scorefollow");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("/nonexistent/q.mid") && err.lines().count() == 1,
        "{err}"
    );
    std::fs::remove_dir_all(&f.dir).ok();
}

#[test]
fn index_build_query_and_refusals() {
    let f = fixture("index");
    let idx_path = f.dir.join("collection.sfidx");
    let st = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .args(["index", "build"])
        .arg(&f.fugue)
        .arg(&f.other)
        .arg("--out")
        .arg(&idx_path)
        .output()
        .expect("run scorefollow");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let q = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .args(["index", "query"])
        .arg(&idx_path)
        .arg(&f.fugue)
        .args(["--top", "2"])
        .output()
        .expect("run scorefollow");
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let out = String::from_utf8_lossy(&q.stdout);
    let first = out.lines().nth(1).unwrap_or("");
    assert!(first.contains("fugue.mid"), "{out}");

    // Library: the fugue's own middle section is found at its place.
    let idx = Index::load(&idx_path).expect("load");
    let feat = IndexConfig::default().features();
    let c =
        scorefollow::audio::load::read_chroma(&f.fugue, &feat, MidiMode::Template).expect("chroma");
    let k0 = feat.frame_at_s(16.0);
    let hits = idx
        .query_chroma(&c[k0..k0 + 500], &IndexQuery::default())
        .expect("query");
    assert!(
        hits[0].recording.ends_with("fugue.mid") && (hits[0].start_s - 16.0).abs() < 1.0,
        "{hits:?}"
    );

    // Foreign and corrupt files are refused with a clear message.
    let foreign = f.dir.join("foreign.sfidx");
    std::fs::write(&foreign, b"RIFF....WAVEfmt ").expect("write");
    let e = Index::load(&foreign).unwrap_err().to_string();
    assert!(e.contains("foreign"), "{e}");
    let mut bytes = std::fs::read(&idx_path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let corrupt = f.dir.join("corrupt.sfidx");
    std::fs::write(&corrupt, &bytes).expect("write");
    let q = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .args(["index", "query"])
        .arg(&corrupt)
        .arg(&f.fugue)
        .output()
        .expect("run scorefollow");
    assert!(!q.status.success());
    assert!(String::from_utf8_lossy(&q.stderr).contains("corrupt"));
    std::fs::remove_dir_all(&f.dir).ok();
}
