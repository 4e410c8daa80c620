//! MIDI score loading, time maps and the synthesiser, through the public API.
//!
//! Every MIDI file is written here with midly's writer (or by hand where the byte layout is
//! the point); the only file read from disk is the small golden chorale in tests/data.

use std::path::{Path, PathBuf};

use midly::num::{u15, u24, u28, u4, u7};
use midly::{
    Format, Fps, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind,
};
use proptest::prelude::*;
use scorefollow::score::synth::{self, SynthOptions};
use scorefollow::score::{BarBeat, Score};
use scorefollow::Error;

/// An event at an absolute tick.
type Ev = (u64, TrackEventKind<'static>);

fn on(tick: u64, ch: u8, key: u8, vel: u8) -> Ev {
    let message = MidiMessage::NoteOn {
        key: u7::new(key),
        vel: u7::new(vel),
    };
    midi(tick, ch, message)
}

/// A note-off written the common way, as a note-on with velocity 0.
fn off0(tick: u64, ch: u8, key: u8) -> Ev {
    on(tick, ch, key, 0)
}

fn midi(tick: u64, ch: u8, message: MidiMessage) -> Ev {
    let channel = u4::new(ch);
    (tick, TrackEventKind::Midi { channel, message })
}

fn cc64(tick: u64, ch: u8, value: u8) -> Ev {
    let message = MidiMessage::Controller {
        controller: u7::new(64),
        value: u7::new(value),
    };
    midi(tick, ch, message)
}

fn tempo_bpm(tick: u64, bpm: f64) -> Ev {
    let us = (60e6 / bpm).round() as u32;
    (tick, TrackEventKind::Meta(MetaMessage::Tempo(u24::new(us))))
}

fn time_sig(tick: u64, num: u8, den: u8) -> Ev {
    let meta = MetaMessage::TimeSignature(num, den.trailing_zeros() as u8, 24, 8);
    (tick, TrackEventKind::Meta(meta))
}

/// Encode tracks of absolute-tick events (stably sorted by tick here) as an SMF.
fn smf_bytes(timing: Timing, tracks: Vec<Vec<Ev>>) -> Vec<u8> {
    let format = if tracks.len() == 1 {
        Format::SingleTrack
    } else {
        Format::Parallel
    };
    let mut smf = Smf::new(Header::new(format, timing));
    for mut events in tracks {
        events.sort_by_key(|e| e.0);
        let mut last = 0;
        let mut track: Vec<TrackEvent<'static>> = events
            .into_iter()
            .map(|(tick, kind)| {
                let delta = u28::new((tick - last) as u32);
                last = tick;
                TrackEvent { delta, kind }
            })
            .collect();
        track.push(TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        });
        smf.tracks.push(track);
    }
    let mut out = Vec::new();
    smf.write_std(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

fn metrical(tpq: u16) -> Timing {
    Timing::Metrical(u15::new(tpq))
}

fn parse(bytes: &[u8]) -> Score {
    Score::from_bytes(bytes, Path::new("generated.mid")).expect("generated MIDI parses")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

const TPQ: u64 = 480;

/// 120 bpm for bars 1-16 (set in track 0), 90 bpm from bar 17 (set in track 1), 150 bpm from
/// bar 33 (track 0 again), 4/4; one quarter note C4 at the start of each of 48 bars (track 1).
fn three_tempo_file() -> Vec<u8> {
    let bar = 4 * TPQ;
    let conductor = vec![
        time_sig(0, 4, 4),
        tempo_bpm(0, 120.0),
        tempo_bpm(32 * bar, 150.0),
    ];
    let mut melody = vec![tempo_bpm(16 * bar, 90.0)];
    for b in 0..48 {
        melody.push(on(b * bar, 0, 60, 80));
        melody.push(off0(b * bar + TPQ, 0, 60));
    }
    smf_bytes(metrical(TPQ as u16), vec![conductor, melody])
}

#[test]
fn tempo_changes_across_tracks() {
    let s = parse(&three_tempo_file());
    assert_eq!(s.notes.len(), 48);
    assert_eq!(s.track_count, 2);
    // Hand computation: bar 17 = quarter 64 at 0.5 s each = 32 s; bar 33 = 32 + 64 x (60/90)
    // = 74.667 s; bar 48 = quarter 188 = 74.667 + 60 x 0.4 = 98.667 s, its note ends 0.4 s
    // later. The file stores 90 bpm as 666 667 µs per quarter, so exact comparisons use that.
    let q90 = 0.666_667;
    let bar33 = 32.0 + 64.0 * q90;
    assert!(close(s.notes[16].onset_s, 32.0, 1e-9));
    assert!(close(s.notes[32].onset_s, bar33, 1e-9));
    assert!(close(s.notes[32].onset_s, 74.667, 5e-4));
    assert!(close(s.notes[47].onset_s, bar33 + 24.0, 1e-9));
    assert!(close(s.duration_s, bar33 + 24.4, 1e-9));
    assert!(close(
        s.notes[15].offset_s - s.notes[15].onset_s,
        0.5,
        1e-12
    ));
    assert!(close(
        s.notes[16].offset_s - s.notes[16].onset_s,
        q90,
        1e-12
    ));
    assert_eq!(s.qpm_at_s(31.9), 120.0);
    assert!(close(s.qpm_at_s(32.0), 60.0 / q90, 1e-9));
    assert_eq!(s.qpm_at_s(80.0), 150.0);
    assert!(close(s.beat_at_s(32.0), 64.0, 1e-9));
    assert!(close(s.beat_at_s(bar33), 128.0, 1e-9));
    assert!(close(s.s_at_beat(130.0), bar33 + 0.8, 1e-9));
    assert_eq!(s.bar_beat_at_s(32.0), BarBeat { bar: 17, beat: 1.0 });
    let bb = s.bar_beat_at_s(bar33);
    assert_eq!(bb.bar, 33);
    assert!(close(bb.beat, 1.0, 1e-9));
    // Half a quarter into bar 33 at 150 bpm: 0.2 s.
    let bb = s.bar_beat_at_s(bar33 + 0.2);
    assert_eq!(bb.bar, 33);
    assert!(close(bb.beat, 1.5, 1e-9));
    assert!(close(s.s_at_bar_beat(17, 1.0).unwrap(), 32.0, 1e-9));
    assert!(close(s.s_at_bar_beat(33, 1.0).unwrap(), 74.6667, 1e-4));
    assert!(close(s.s_at_bar_beat(33, 3.0).unwrap(), bar33 + 0.8, 1e-9));
    assert_eq!(s.bar_count(), 48);
    assert_eq!(s.s_at_bar_beat(49, 1.0), None);
    assert_eq!(s.s_at_bar_beat(0, 1.0), None);
}

#[test]
fn three_four_and_four_four_changes() {
    // 60 bpm (1 s per quarter): 4 bars of 3/4 (0-12 s), 2 bars of 4/4 (12-20 s), 3/4 again.
    let conductor = vec![
        tempo_bpm(0, 60.0),
        time_sig(0, 3, 4),
        time_sig(12 * TPQ, 4, 4),
        time_sig(20 * TPQ, 3, 4),
    ];
    let notes = vec![on(0, 0, 67, 90), off0(26 * TPQ, 0, 67)];
    let s = parse(&smf_bytes(metrical(TPQ as u16), vec![conductor, notes]));
    let at = |t: f64| s.bar_beat_at_s(t);
    assert_eq!(at(0.0), BarBeat { bar: 1, beat: 1.0 });
    assert_eq!(at(3.0), BarBeat { bar: 2, beat: 1.0 });
    assert_eq!(at(11.5), BarBeat { bar: 4, beat: 3.5 });
    assert_eq!(at(12.0), BarBeat { bar: 5, beat: 1.0 });
    assert_eq!(at(15.0), BarBeat { bar: 5, beat: 4.0 });
    assert_eq!(at(16.0), BarBeat { bar: 6, beat: 1.0 });
    assert_eq!(at(20.0), BarBeat { bar: 7, beat: 1.0 });
    assert_eq!(at(23.5), BarBeat { bar: 8, beat: 1.5 });
    assert_eq!(s.s_at_bar_beat(5, 2.5), Some(13.5));
    assert_eq!(
        s.s_at_bar_beat(4, 4.0),
        Some(12.0),
        "the end of a bar is the next bar line"
    );
    assert_eq!(s.s_at_bar_beat(4, 4.5), None, "3/4 bar has no beat 4.5");
    assert_eq!(s.s_at_bar_beat(6, 4.5), Some(19.5));
    assert_eq!(s.s_at_bar_beat(8, 0.5), None);
    // Bars 7 (20-23 s) and 8 (23-26 s) are 3/4; the note ends on the bar line at 26 s, which
    // opens no bar 9.
    assert_eq!(s.bar_count(), 8);
}

#[test]
fn running_status_and_velocity_zero_note_offs() {
    // A C major chord and a melody note written with note-on velocity 0 as note-off; midly's
    // writer omits repeated status bytes (running status).
    let events = vec![
        on(0, 2, 60, 100),
        on(0, 2, 64, 90),
        on(0, 2, 67, 80),
        off0(TPQ, 2, 60),
        off0(TPQ, 2, 64),
        off0(TPQ, 2, 67),
        on(TPQ, 2, 72, 70),
        off0(3 * TPQ, 2, 72),
    ];
    let bytes = smf_bytes(metrical(TPQ as u16), vec![events]);
    // 8 note events on one channel: a single 0x92 status byte proves running status is used.
    assert_eq!(bytes.iter().filter(|&&b| b == 0x92).count(), 1);
    let s = parse(&bytes);
    let got: Vec<(u8, f64, f64, u8, u8)> = s
        .notes
        .iter()
        .map(|n| (n.pitch, n.onset_s, n.offset_s, n.velocity, n.channel))
        .collect();
    assert_eq!(
        got,
        vec![
            (60, 0.0, 0.5, 100, 2),
            (64, 0.0, 0.5, 90, 2),
            (67, 0.0, 0.5, 80, 2),
            (72, 0.5, 1.5, 70, 2),
        ]
    );
}

#[test]
fn sustain_pedal_extends_until_release_and_restrike() {
    // 120 bpm: 0.5 s per quarter. Pedal down at q0.5, up at q4; a second pedal q6..q8.
    let events = vec![
        on(0, 0, 48, 80),
        cc64(TPQ / 2, 0, 100),
        off0(TPQ, 0, 48), // held by the pedal to q4
        on(TPQ, 0, 52, 80),
        off0(2 * TPQ, 0, 52), // restruck at q3: cut there
        on(3 * TPQ, 0, 52, 80),
        off0(5 * TPQ, 0, 52), // released after the pedal went up: no extension
        cc64(4 * TPQ, 0, 0),
        on(6 * TPQ, 1, 55, 80), // other channel: its pedal is not channel 0's
        off0(7 * TPQ, 1, 55),
        cc64(6 * TPQ, 0, 127),
        on(6 * TPQ, 0, 57, 80),
        off0(7 * TPQ, 0, 57),
        cc64(8 * TPQ, 0, 63), // 63 < 64 is "up"
    ];
    let s = parse(&smf_bytes(metrical(TPQ as u16), vec![events]));
    let spans: Vec<(u8, f64, f64, f64)> = s
        .notes
        .iter()
        .map(|n| (n.pitch, n.onset_s, n.key_offset_s, n.offset_s))
        .collect();
    assert_eq!(
        spans,
        vec![
            (48, 0.0, 0.5, 2.0),
            (52, 0.5, 1.0, 1.5),
            (52, 1.5, 2.5, 2.5),
            (55, 3.0, 3.5, 3.5),
            (57, 3.0, 3.5, 4.0),
        ]
    );
    assert_eq!(s.duration_s, 4.0);
}

#[test]
fn smpte_timing() {
    // 25 fps x 40 subframes = 1000 ticks per second, whatever the tempo events say; the tempo
    // (60 bpm from 1 s) only sets the beat positions.
    let events = vec![
        tempo_bpm(1000, 60.0),
        on(0, 0, 60, 80),
        off0(500, 0, 60),
        on(1500, 0, 62, 80),
        off0(2500, 0, 62),
    ];
    let s = parse(&smf_bytes(Timing::Timecode(Fps::Fps25, 40), vec![events]));
    assert_eq!(s.notes[1].onset_s, 1.5);
    assert_eq!(s.notes[1].offset_s, 2.5);
    // 1 s at the default 120 bpm = 2 quarters, then 0.5 s at 60 bpm = 0.5 quarter.
    assert!(close(s.beat_at_s(1.5), 2.5, 1e-12));
    assert!(close(s.s_at_beat(2.5), 1.5, 1e-12));
    assert_eq!(s.qpm_at_s(0.5), 120.0);
    assert_eq!(s.qpm_at_s(1.5), 60.0);
    // "29" is drop-frame 30/1.001 = 29.97003 fps; x 100 subframes, 2997 ticks last
    // 2997 x 1.001 / 3000 = 0.999999 s.
    let events = vec![on(0, 0, 60, 80), off0(2997, 0, 60)];
    let s = parse(&smf_bytes(Timing::Timecode(Fps::Fps29, 100), vec![events]));
    assert!(close(s.duration_s, 2997.0 * 1.001 / 3000.0, 1e-12));
}

#[test]
fn programs_drums_and_markers() {
    let events = vec![
        midi(
            0,
            1,
            MidiMessage::ProgramChange {
                program: u7::new(19),
            },
        ),
        (0, TrackEventKind::Meta(MetaMessage::Marker(b"Intro"))),
        on(0, 1, 60, 80),
        off0(TPQ, 1, 60),
        on(0, 9, 42, 80),
        off0(TPQ / 4, 9, 42),
        midi(
            2 * TPQ,
            1,
            MidiMessage::ProgramChange {
                program: u7::new(40),
            },
        ),
        (
            2 * TPQ,
            TrackEventKind::Meta(MetaMessage::CuePoint(b"page 2")),
        ),
        on(2 * TPQ, 1, 64, 80),
        off0(3 * TPQ, 1, 64),
    ];
    let s = parse(&smf_bytes(metrical(TPQ as u16), vec![events]));
    let progs: Vec<(u8, u8, bool)> = s
        .notes
        .iter()
        .map(|n| (n.pitch, n.program, n.is_drum))
        .collect();
    assert_eq!(progs, vec![(42, 0, true), (60, 19, false), (64, 40, false)]);
    let marks: Vec<(&str, f64)> = s
        .markers
        .iter()
        .map(|m| (m.name.as_str(), m.time_s))
        .collect();
    assert_eq!(marks, vec![("Intro", 0.0), ("page 2", 1.0)]);
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scorefollow-score-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("temp file");
    path
}

#[test]
fn bad_files_give_midi_errors_naming_the_path() {
    let text = temp_file("notes.mid", b"C4 D4 E4, this is not MIDI\n");
    let err = Score::load(&text).expect_err("text is not MIDI");
    assert!(matches!(err, Error::Midi { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("notes.mid") && msg.contains("not a MIDI file"),
        "{msg}"
    );

    let good = three_tempo_file();
    let cut = temp_file("cut.mid", &good[..good.len() / 2]);
    let msg = Score::load(&cut).expect_err("truncated").to_string();
    assert!(
        msg.contains("cut.mid") && msg.contains("truncated"),
        "{msg}"
    );

    let empty = smf_bytes(metrical(96), vec![vec![tempo_bpm(0, 100.0)]]);
    let msg = Score::from_bytes(&empty, Path::new("empty.mid"))
        .expect_err("no notes")
        .to_string();
    assert!(
        msg.contains("empty.mid") && msg.contains("no notes"),
        "{msg}"
    );

    let missing = std::env::temp_dir().join("scorefollow-no-such-file.mid");
    assert!(matches!(Score::load(&missing), Err(Error::Io { .. })));
}

/// Golden file: tests/data/bwv66_6.mid (music21 corpus, see tests/data/MIDI.md).
///
/// Expected numbers come from an independent reader: Python `mido` 1.3.3 (type 1, 480 ticks per
/// quarter, 5 tracks, one set_tempo of 833333 µs at tick 0, time signature 4/4, program 52 on
/// channels 0-3; pairing note_on/note_off per channel and pitch gives 150 notes, first onset
/// tick 0, last onset tick 15600 = quarter 32.5, last note-off tick 15840 = quarter 33).
/// Seconds: 33 x 0.833333 s = 27.499989 s; 32.5 x 0.833333 s = 27.0833225 s.
#[test]
fn golden_bach_chorale() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bwv66_6.mid");
    let s = Score::load(&path).expect("golden file loads");
    assert_eq!(s.notes.len(), 150);
    assert_eq!(s.track_count, 5);
    assert_eq!(s.notes[0].onset_s, 0.0);
    assert!(close(s.duration_s, 27.499989, 1e-9));
    let last = s.notes.iter().map(|n| n.onset_s).fold(0.0, f64::max);
    assert!(close(last, 27.083_322_5, 1e-9));
    assert!(close(s.beat_at_s(last), 32.5, 1e-9));
    assert!(close(s.qpm_at_s(10.0), 60e6 / 833_333.0, 1e-9));
    assert!(s
        .notes
        .iter()
        .all(|n| n.program == 52 && !n.is_drum && n.channel < 4));
    // 32.5 quarters in 4/4 = 8 bars + 0.5 quarter: bar 9, beat 1.5; 33 quarters end in bar 9.
    let bb = s.bar_beat_at_s(last);
    assert_eq!(bb.bar, 9);
    assert!(close(bb.beat, 1.5, 1e-9));
    assert_eq!(s.bar_count(), 9);

    // The chorale opens with a one-quarter upbeat, which the MIDI file does not record. With
    // it declared, the dev corpus's second theme (which starts on a bar line at quarter 21)
    // starts at bar 6, beat 1, and the final note-off closes bar 8.
    let mut s = s;
    s.set_pickup_quarters(1.0)
        .expect("a quarter fits in a 4/4 bar");
    assert_eq!(s.bar_beat_at_s(0.0), BarBeat { bar: 0, beat: 4.0 });
    let bb = s.bar_beat_at_s(s.s_at_beat(21.0));
    assert_eq!(bb.bar, 6);
    assert!(close(bb.beat, 1.0, 1e-9));
    assert_eq!(s.bar_count(), 8);
    assert!(close(s.s_at_bar_beat(0, 4.0).unwrap(), 0.0, 1e-12));
    assert_eq!(s.s_at_bar_beat(0, 3.0), None);
    assert!(matches!(
        s.set_pickup_quarters(4.0),
        Err(Error::Invalid { .. })
    ));
}

/// Naive DFT magnitude of the Hann-windowed `x` at `f_hz` (the window keeps the leakage of a
/// strong partial far below the levels compared at neighbouring semitones).
fn dft_mag(x: &[f32], rate: f64, f_hz: f64) -> f64 {
    let w = std::f64::consts::TAU * f_hz / rate;
    let len = x.len() as f64;
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let hann = 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / len).cos();
        let v = v as f64 * hann;
        re += v * (w * n as f64).cos();
        im -= v * (w * n as f64).sin();
    }
    (re * re + im * im).sqrt() / x.len() as f64
}

#[test]
fn synth_a4_has_440_hz_fundamental_and_silence_around() {
    // A4 (69) from 0.5 s to 1.5 s, piano (program 0).
    let events = vec![on(TPQ, 0, 69, 100), off0(3 * TPQ, 0, 69)];
    let s = parse(&smf_bytes(metrical(TPQ as u16), vec![events]));
    let rate = 22_050u32;
    let y = synth::render(&s, rate);
    let opts = SynthOptions::default();
    assert_eq!(y.len(), ((1.5 + opts.tail_s) * rate as f64).ceil() as usize);
    let start = (0.5 * rate as f64) as usize;
    let stop = ((1.5 + opts.release_s) * rate as f64).round() as usize;
    assert!(
        y[..start].iter().all(|&v| v == 0.0),
        "silent before the onset"
    );
    assert!(
        y[stop..].iter().all(|&v| v == 0.0),
        "silent after the release"
    );
    // Energy between offset and release end decays but is not zero right after the offset.
    let off = (1.5 * rate as f64) as usize;
    assert!(y[off..off + 100].iter().any(|v| v.abs() > 1e-3));

    // Steady part 0.6-1.4 s: scan 100-2000 Hz in 5 Hz steps; the largest peak is 440 Hz and
    // the octave (2nd partial, amplitude 1/2) is next in line.
    let seg = &y[(0.6 * rate as f64) as usize..(1.4 * rate as f64) as usize];
    let mags: Vec<(f64, f64)> = (20..=400)
        .map(|k| (k as f64 * 5.0, dft_mag(seg, rate as f64, k as f64 * 5.0)))
        .collect();
    let best = mags
        .iter()
        .fold((0.0, 0.0), |b, &m| if m.1 > b.1 { m } else { b });
    assert_eq!(best.0, 440.0);
    let m880 = dft_mag(seg, rate as f64, 880.0);
    let ratio = m880 / best.1;
    assert!(
        (0.35..0.65).contains(&ratio),
        "2nd partial / fundamental = {ratio}"
    );
    // No energy at A#4 or G#4.
    assert!(dft_mag(seg, rate as f64, 466.16) < 0.02 * best.1);
    assert!(dft_mag(seg, rate as f64, 415.30) < 0.02 * best.1);
}

#[test]
fn synth_render_with_options() {
    let events = vec![on(0, 0, 60, 127), off0(2 * TPQ, 0, 60)];
    let s = parse(&smf_bytes(metrical(TPQ as u16), vec![events]));
    let rate = 16_000u32;
    let sine = SynthOptions {
        partials: 1,
        ..SynthOptions::default()
    };
    let y = synth::render_with(&s, rate, &sine);
    let seg = &y[800..8000];
    let f0 = 440.0 * 2f64.powf(-9.0 / 12.0);
    let fund = dft_mag(seg, rate as f64, f0);
    assert!(
        dft_mag(seg, rate as f64, 2.0 * f0) < 0.01 * fund,
        "one partial = a sine"
    );
    let long = SynthOptions {
        tail_s: 1.0,
        ..SynthOptions::default()
    };
    assert_eq!(synth::render_with(&s, rate, &long).len(), 2 * rate as usize);
}

/// Reference for the property test: seconds of a tick by walking the sorted tempo changes.
fn reference_seconds(tpq: u64, tempos: &[(u64, u32)], tick: u64) -> f64 {
    let mut t = 0.0;
    let mut at = 0u64;
    let mut us = 500_000u32;
    for &(ct, cu) in tempos.iter().filter(|c| c.0 < tick) {
        t += (ct - at) as f64 * us as f64 * 1e-6 / tpq as f64;
        at = ct;
        us = cu;
    }
    // Changes exactly at `tick` do not affect its time.
    t + (tick - at) as f64 * us as f64 * 1e-6 / tpq as f64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random multi-track files: every note comes back once, at the seconds the reference
    /// tempo walk gives, sorted, with offset >= key offset >= onset; time maps round-trip.
    #[test]
    fn random_files_load_consistently(
        tempos in prop::collection::vec((0u64..20_000, 200_000u32..1_500_000, 0usize..3), 0..6),
        notes in prop::collection::vec((0usize..3, 0u8..16, 36u8..96, 0u64..20_000, 1u64..2_000), 1..40),
    ) {
        let tpq = 240u64;
        let mut tracks: Vec<Vec<Ev>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for &(tick, us, tr) in &tempos {
            tracks[tr].push((tick, TrackEventKind::Meta(MetaMessage::Tempo(u24::new(us)))));
        }
        // Keep notes whose key (track, channel, pitch) is free over their whole span, so the
        // expected pairing is unambiguous.
        let mut kept: Vec<(usize, u8, u8, u64, u64)> = Vec::new();
        for &(tr, ch, key, start, len) in &notes {
            let end = start + len;
            let clash = kept.iter().any(|k| k.0 == tr && k.1 == ch && k.2 == key && start <= k.4 && k.3 <= end);
            if !clash {
                kept.push((tr, ch, key, start, end));
                tracks[tr].push(on(start, ch, key, 64));
                tracks[tr].push(off0(end, ch, key));
            }
        }
        let s = parse(&smf_bytes(metrical(tpq as u16), tracks));
        // The loader's merge: changes stably sorted by tick, track order within a tick.
        let mut merged: Vec<(u64, u32)> = Vec::new();
        for tr in 0..3 {
            merged.extend(tempos.iter().filter(|t| t.2 == tr).map(|t| (t.0, t.1)));
        }
        merged.sort_by_key(|t| t.0);
        let mut dedup: Vec<(u64, u32)> = Vec::new();
        for t in merged {
            match dedup.last_mut() {
                Some(last) if last.0 == t.0 => *last = t,
                _ => dedup.push(t),
            }
        }
        prop_assert_eq!(s.notes.len(), kept.len());
        let mut want: Vec<(f64, f64, u8, u8, usize)> = kept
            .iter()
            .map(|k| (reference_seconds(tpq, &dedup, k.3), reference_seconds(tpq, &dedup, k.4), k.2, k.1, k.0))
            .collect();
        want.sort_by(|a, b| {
            a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)).then(a.4.cmp(&b.4))
        });
        for (n, w) in s.notes.iter().zip(&want) {
            prop_assert!(close(n.onset_s, w.0, 1e-9));
            prop_assert!(close(n.offset_s, w.1, 1e-9));
            prop_assert_eq!(n.pitch, w.2);
            prop_assert!(n.offset_s >= n.key_offset_s && n.key_offset_s >= n.onset_s);
            prop_assert_eq!(n.is_drum, n.channel == 9);
            let q = s.beat_at_s(n.onset_s);
            prop_assert!(close(s.s_at_beat(q), n.onset_s, 1e-9));
            let bb = s.bar_beat_at_s(n.onset_s);
            let back = s.s_at_bar_beat(bb.bar, bb.beat);
            prop_assert!(back.is_some_and(|t| close(t, n.onset_s, 1e-6)));
        }
        prop_assert!(s.notes.windows(2).all(|w| w[0].onset_s <= w[1].onset_s));
        prop_assert!(s.bar_count() >= s.bar_beat_at_s(s.notes[s.notes.len() - 1].onset_s).bar);
    }
}
