//! Writing a [`Score`] as a Standard MIDI File (format 1): for other tools, the score as the
//! follower sees it (a MusicXML score with its repeats unfolded).
//!
//! Track 0 holds the tempo map, the time signatures and the markers (rehearsal marks and MIDI
//! markers as marker events, words as text events, cue points as cue points); then one track
//! per score track (a MusicXML part), named, with a program change per channel and the notes
//! with their velocities. Note ends are the sounding ends (pedal included). The resolution is
//! the score's (a MusicXML score's least common multiple of its divisions when that fits in
//! 16 bits, else 960 ticks per quarter).
//!
//! Time signatures: a MusicXML measure whose length differs from its time signature (a
//! pickup, a split bar) gets a signature of its actual length (a one-quarter pickup in 4/4 is
//! written 1/4), so bar lines in a sequencer fall where the print has them.

use super::midi::{MarkerKind, Score};
use super::timemap::TickTiming;

/// Resolution used when the score has SMPTE timing.
const DEFAULT_TPQ: u16 = 480;

fn vlq(mut v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        buf[n] = (v & 0x7F) as u8;
        v >>= 7;
        n += 1;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(buf[i] | if i > 0 { 0x80 } else { 0 });
    }
}

/// One event: (tick, order at equal ticks, bytes without the delta time).
type Ev = (u64, u8, Vec<u8>);

fn meta(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0xFF, kind];
    vlq(data.len() as u64, &mut v);
    v.extend_from_slice(data);
    v
}

fn track_chunk(mut events: Vec<Ev>) -> Vec<u8> {
    events.sort_by_key(|e| (e.0, e.1));
    let mut body = Vec::new();
    let mut last = 0u64;
    for (tick, _, bytes) in &events {
        vlq(tick - last, &mut body);
        body.extend_from_slice(bytes);
        last = *tick;
    }
    body.extend_from_slice(&[0x00, 0xFF, 0x2F, 0x00]);
    let mut chunk = b"MTrk".to_vec();
    chunk.extend_from_slice(&(body.len() as u32).to_be_bytes());
    chunk.extend_from_slice(&body);
    chunk
}

/// Time signature (numerator, denominator) for a measure of `length_q` quarter notes under
/// `num`/`den`: the signature itself when the measure is full, else the signature of its
/// actual length in the smallest denominator (from `den`) that expresses it.
fn measure_signature(length_q: f64, num: u32, den: u32) -> (u8, u32) {
    let den = if den.is_power_of_two() { den } else { 4 };
    let nominal = num as f64 * 4.0 / den as f64;
    if (length_q - nominal).abs() < 1e-9 {
        return (num.clamp(1, 255) as u8, den);
    }
    let mut d = den;
    while d <= 128 {
        let n = length_q * d as f64 / 4.0;
        if (n - n.round()).abs() < 1e-9 && (1.0..=255.0).contains(&n.round()) {
            return (n.round() as u8, d);
        }
        d *= 2;
    }
    (num.clamp(1, 255) as u8, den)
}

/// The Standard MIDI File of `score`.
pub fn write_smf(score: &Score) -> Vec<u8> {
    let tpq = match score.tempo_map.timing() {
        TickTiming::Metrical { ticks_per_quarter } => ticks_per_quarter,
        TickTiming::Timecode { .. } => DEFAULT_TPQ,
    };
    let tick_at_beat = |beat: f64| (beat * tpq as f64).round().max(0.0) as u64;
    let tick_at_s = |s: f64| tick_at_beat(score.beat_at_s(s));

    let mut conductor: Vec<Ev> = Vec::new();
    let name = score
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    conductor.push((0, 0, meta(0x03, name.as_bytes())));
    for seg in score.tempo_map.segments() {
        let us = seg.us_per_quarter.min(0xFF_FFFF).to_be_bytes();
        conductor.push((tick_at_beat(seg.beat), 1, meta(0x51, &us[1..])));
    }
    let mut signatures: Vec<(f64, u8, u32)> = Vec::new();
    match score.printed.as_deref() {
        Some(layout) => {
            for m in &layout.measures {
                let p = &layout.printed[m.printed];
                let (n, d) = measure_signature(m.length_quarters, p.numerator, p.denominator);
                if signatures.last().is_none_or(|s| (s.1, s.2) != (n, d)) {
                    signatures.push((m.start_beat, n, d));
                }
            }
        }
        None => signatures.extend_from_slice(score.meter_map.changes()),
    }
    for (beat, n, d) in signatures {
        let pow = d.trailing_zeros() as u8;
        conductor.push((tick_at_beat(beat), 1, meta(0x58, &[n, pow, 24, 8])));
    }
    for m in &score.markers {
        let kind = match m.kind {
            MarkerKind::Marker | MarkerKind::Rehearsal => 0x06,
            MarkerKind::CuePoint => 0x07,
            MarkerKind::Words => 0x01,
        };
        conductor.push((tick_at_s(m.time_s), 2, meta(kind, m.name.as_bytes())));
    }

    let tracks = score
        .notes
        .iter()
        .map(|n| n.track)
        .max()
        .map_or(0, |t| t + 1);
    let mut chunks = vec![track_chunk(conductor)];
    for t in 0..tracks {
        let mut events: Vec<Ev> = Vec::new();
        let track_name = score
            .printed
            .as_deref()
            .and_then(|l| l.parts.get(t))
            .map_or_else(|| format!("track {t}"), |p| p.name.clone());
        events.push((0, 0, meta(0x03, track_name.as_bytes())));
        let mut program: [Option<u8>; 16] = [None; 16];
        for n in score.notes.iter().filter(|n| n.track == t) {
            let ch = n.channel & 0x0F;
            let on = tick_at_s(n.onset_s);
            let off = tick_at_s(n.offset_s).max(on + 1);
            if !n.is_drum && program[ch as usize] != Some(n.program) {
                program[ch as usize] = Some(n.program);
                events.push((on, 1, vec![0xC0 | ch, n.program & 0x7F]));
            }
            // At one tick: note-offs (order 0 after the name) before program changes and
            // note-ons, so a repeated note is released before it is struck again.
            events.push((off, 0, vec![0x80 | ch, n.pitch & 0x7F, 0]));
            events.push((
                on,
                2,
                vec![0x90 | ch, n.pitch & 0x7F, n.velocity.clamp(1, 127)],
            ));
        }
        chunks.push(track_chunk(events));
    }
    let mut out = b"MThd".to_vec();
    out.extend_from_slice(&6u32.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(chunks.len() as u16).to_be_bytes());
    out.extend_from_slice(&tpq.to_be_bytes());
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn variable_length_quantities() {
        for (v, want) in [
            (0u64, vec![0x00]),
            (0x7F, vec![0x7F]),
            (0x80, vec![0x81, 0x00]),
            (0x3FFF, vec![0xFF, 0x7F]),
            (0x0FFF_FFFF, vec![0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut out = Vec::new();
            vlq(v, &mut out);
            assert_eq!(out, want, "{v:#x}");
        }
    }

    #[test]
    fn signatures_of_short_measures() {
        assert_eq!(measure_signature(4.0, 4, 4), (4, 4));
        assert_eq!(measure_signature(1.0, 4, 4), (1, 4));
        assert_eq!(measure_signature(1.5, 4, 4), (3, 8));
        assert_eq!(measure_signature(0.5, 6, 8), (1, 8));
    }

    #[test]
    fn a_midi_score_round_trips() {
        let score = crate::test_util::test_score();
        let bytes = write_smf(&score);
        let back = Score::from_bytes(&bytes, Path::new("back.mid")).unwrap();
        assert_eq!(back.notes.len(), score.notes.len());
        for (a, b) in back.notes.iter().zip(&score.notes) {
            assert!((a.onset_s - b.onset_s).abs() < 1e-9);
            assert!((a.offset_s - b.offset_s).abs() < 1e-9);
            assert_eq!(
                (a.pitch, a.velocity, a.channel),
                (b.pitch, b.velocity, b.channel)
            );
        }
        assert_eq!(back.markers, score.markers);
        assert_eq!(back.meter_map.changes(), score.meter_map.changes());
        assert_eq!(
            back.tempo_map.segments().len(),
            score.tempo_map.segments().len()
        );
    }
}
