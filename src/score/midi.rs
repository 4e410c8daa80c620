//! MIDI score loading: a Standard MIDI File (format 0 or 1, metrical or SMPTE timing) becomes
//! a [`Score`]: notes in seconds with pedal, program and drum flags, markers, and the tempo and
//! meter maps ([`super::timemap`]).
//!
//! Semantics, chosen to match what a sequencer plays:
//! - All tracks share one timeline, one tempo map and one meter map (tempo and time-signature
//!   events from any track, stably sorted by tick; the last of several at one tick wins).
//! - A note-on with velocity 0 is a note-off. Note-ons and note-offs are paired per track,
//!   channel and pitch first-in first-out, so overlapping same-pitch notes each get an end.
//!   A note still on at the end of the file ends at the last event of the file.
//! - Program changes and the sustain pedal (CC64, value >= 64 = down) act per channel across
//!   tracks. A program change at the same tick as a note-on applies to it. A key released
//!   while the pedal is down (pressed strictly before the release tick) sounds until the pedal
//!   comes up; striking the same pitch on the same channel again ends the pedal-held sound.
//! - Channel 10 (index 9) is the GM drum channel: its notes are kept but flagged `is_drum`.
//! - Format 2 files (independent sequences, each with its own tempo) are rejected: they are
//!   pattern banks, not scores.
//! - Strictness: a truncated chunk, fewer tracks than the header declares, or an event that
//!   cannot be parsed is an error (midly alone would silently drop the rest of the track).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use midly::{Format, MetaMessage, MidiMessage, Timing, TrackEventKind};

use super::timemap::{MeterMap, TempoMap, TickTiming};
use crate::{Error, Result};

/// The GM drum channel (channel 10, 0-based 9).
pub const DRUM_CHANNEL: u8 = 9;

/// Longest score accepted (s): 24 hours.
pub const MAX_DURATION_S: f64 = 86_400.0;

/// One note of the score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Note {
    /// Onset (s, MIDI time from tick 0).
    pub onset_s: f64,
    /// End of the sound (s), after sustain-pedal extension.
    pub offset_s: f64,
    /// Key release (s), without the pedal.
    pub key_offset_s: f64,
    /// MIDI pitch (60 = middle C).
    pub pitch: u8,
    /// Note-on velocity (1..=127).
    pub velocity: u8,
    /// MIDI channel, 0-based.
    pub channel: u8,
    /// GM program (0-based) in force on the channel at the onset.
    pub program: u8,
    /// True on the GM drum channel; such notes carry no pitch class.
    pub is_drum: bool,
    /// Index of the track (MTrk chunk) the note came from.
    pub track: usize,
}

/// Where a [`Marker`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerKind {
    /// Meta event 0x06 (marker: rehearsal letters, section names).
    Marker,
    /// Meta event 0x07 (cue point).
    CuePoint,
    /// A MusicXML rehearsal mark (`<rehearsal>`).
    Rehearsal,
    /// A MusicXML words direction (`<words>`).
    Words,
}

/// A named point in the score.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// Text of the meta event (lossy UTF-8, trimmed).
    pub name: String,
    /// Time (s).
    pub time_s: f64,
    /// Marker or cue point.
    pub kind: MarkerKind,
}

/// A parsed MIDI score. See the module docs for the semantics.
#[derive(Clone, Debug)]
pub struct Score {
    /// Notes sorted by onset (ties: pitch, channel, track).
    pub notes: Vec<Note>,
    /// End of the last sounding note, pedal included (s).
    pub duration_s: f64,
    /// Markers and cue points sorted by time.
    pub markers: Vec<Marker>,
    /// Ticks <-> seconds <-> quarter-note beats.
    pub tempo_map: TempoMap,
    /// Quarter-note beats <-> bars and beats.
    pub meter_map: MeterMap,
    /// Number of tracks in the file.
    pub track_count: usize,
    /// The file the score was read from (for messages).
    pub path: PathBuf,
    /// The printed score's terms (measure numbers and labels, passes through repeats, pages
    /// and systems, rehearsal marks) for a score read from MusicXML; None for MIDI. When
    /// present, bar and beat queries answer in printed measure numbers.
    pub printed: Option<std::sync::Arc<super::musicxml::PrintedLayout>>,
}

/// A note while its ticks are still being worked out.
#[derive(Clone, Copy, Debug)]
struct TickNote {
    on: u64,
    key_off: u64,
    off: u64,
    pitch: u8,
    velocity: u8,
    channel: u8,
    track: usize,
}

/// Everything read from a MIDI file's tracks, in ticks, before the time maps exist.
struct RawTracks {
    tempos: Vec<(u64, u32)>,
    signatures: Vec<(u64, u8, u32)>,
    markers: Vec<(u64, String, MarkerKind)>,
    /// Per channel: (tick, program) and (tick, sustain pedal down).
    programs: Vec<Vec<(u64, u8)>>,
    pedals: Vec<Vec<(u64, bool)>>,
    notes: Vec<TickNote>,
    end_tick: u64,
    track_count: usize,
}

impl RawTracks {
    fn new() -> Self {
        Self {
            tempos: Vec::new(),
            signatures: Vec::new(),
            markers: Vec::new(),
            programs: vec![Vec::new(); 16],
            pedals: vec![Vec::new(); 16],
            notes: Vec::new(),
            end_tick: 0,
            track_count: 0,
        }
    }

    /// Read track number `track`; the error is the reason, for the caller to name the file.
    fn read_track(
        &mut self,
        track: usize,
        mut events: midly::EventIter<'_>,
    ) -> std::result::Result<(), String> {
        self.track_count += 1;
        let mut tick = 0u64;
        let mut open: HashMap<(u8, u8), VecDeque<(u64, u8)>> = HashMap::new();
        let mut index = 0usize;
        while !events.unread().is_empty() {
            let ev = match events.next() {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => return Err(format!("track {track} event {index}: {e}")),
                None => {
                    return Err(format!(
                        "track {track} event {index}: malformed or truncated event"
                    ))
                }
            };
            index += 1;
            tick += ev.delta.as_int() as u64;
            self.end_tick = self.end_tick.max(tick);
            match ev.kind {
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int();
                    match message {
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            open.entry((ch, key.as_int()))
                                .or_default()
                                .push_back((tick, vel.as_int()));
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            let pitch = key.as_int();
                            if let Some((on, velocity)) =
                                open.get_mut(&(ch, pitch)).and_then(|q| q.pop_front())
                            {
                                self.notes.push(TickNote {
                                    on,
                                    key_off: tick,
                                    off: tick,
                                    pitch,
                                    velocity,
                                    channel: ch,
                                    track,
                                });
                            }
                        }
                        MidiMessage::ProgramChange { program } => {
                            self.programs[ch as usize].push((tick, program.as_int()));
                        }
                        MidiMessage::Controller { controller, value }
                            if controller.as_int() == 64 =>
                        {
                            self.pedals[ch as usize].push((tick, value.as_int() >= 64));
                        }
                        _ => {}
                    }
                }
                // Bytes after End of Track are junk by definition; some writers leave some.
                TrackEventKind::Meta(MetaMessage::EndOfTrack) => break,
                TrackEventKind::Meta(MetaMessage::Tempo(us)) => {
                    self.tempos.push((tick, us.as_int()));
                }
                TrackEventKind::Meta(MetaMessage::TimeSignature(num, den_pow, _, _)) => {
                    if den_pow > 15 {
                        return Err(format!(
                            "track {track}: time signature denominator 2^{den_pow} at tick {tick}"
                        ));
                    }
                    self.signatures.push((tick, num, 1u32 << den_pow));
                }
                TrackEventKind::Meta(MetaMessage::Marker(text)) => {
                    self.markers.push((tick, text_of(text), MarkerKind::Marker));
                }
                TrackEventKind::Meta(MetaMessage::CuePoint(text)) => {
                    self.markers
                        .push((tick, text_of(text), MarkerKind::CuePoint));
                }
                _ => {}
            }
        }
        // Notes never switched off: pushed with a placeholder end, fixed once the end of
        // the whole file is known.
        for ((ch, pitch), queue) in open {
            for (on, velocity) in queue {
                self.notes.push(TickNote {
                    on,
                    key_off: u64::MAX,
                    off: u64::MAX,
                    pitch,
                    velocity,
                    channel: ch,
                    track,
                });
            }
        }
        Ok(())
    }

    /// Give notes never switched off the end of the file, and sort every list by tick
    /// (stable sorts keep track order among events at one tick, so the last one wins).
    fn finish(&mut self) {
        for n in &mut self.notes {
            if n.key_off == u64::MAX {
                n.key_off = self.end_tick;
                n.off = self.end_tick;
            }
        }
        self.tempos.sort_by_key(|t| t.0);
        self.signatures.sort_by_key(|s| s.0);
        self.markers.sort_by_key(|m| m.0);
        for p in &mut self.programs {
            p.sort_by_key(|e| e.0);
        }
        for p in &mut self.pedals {
            p.sort_by_key(|e| e.0);
        }
    }
}

impl Score {
    /// Read and parse the score at `path`: MIDI or MusicXML by extension (see
    /// [`Score::load_with`]), with the default options (MusicXML repeats as performed).
    pub fn load(path: &Path) -> Result<Score> {
        Score::load_with(path, &super::ScoreOptions::default())
    }

    /// Read and parse the MIDI file at `path`, whatever its extension.
    pub fn load_midi(path: &Path) -> Result<Score> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Score::from_bytes(&bytes, path)
    }

    /// Parse a MIDI file held in memory; `path_for_errors` names it in error messages.
    pub fn from_bytes(bytes: &[u8], path_for_errors: &Path) -> Result<Score> {
        let fail = |reason: String| Error::Midi {
            path: path_for_errors.to_path_buf(),
            reason,
        };
        check_chunks(bytes).map_err(fail)?;
        let (header, track_iter) = midly::parse(bytes).map_err(|e| fail(e.to_string()))?;
        if header.format == Format::Sequential {
            return Err(fail(
                "format 2 (independent sequences) is not supported; convert it to format 1".into(),
            ));
        }
        let timing = match header.timing {
            Timing::Metrical(tpq) => TickTiming::Metrical {
                ticks_per_quarter: tpq.as_int(),
            },
            Timing::Timecode(fps, ticks_per_frame) => TickTiming::Timecode {
                // midly's `as_f32` would round 30/1.001 to f32 precision.
                fps: match fps {
                    midly::Fps::Fps29 => 30_000.0 / 1001.0,
                    other => other.as_int() as f64,
                },
                ticks_per_frame,
            },
        };

        let mut raw = RawTracks::new();
        for (track, events) in track_iter.enumerate() {
            let events = events.map_err(|e| fail(format!("track {track}: {e}")))?;
            raw.read_track(track, events).map_err(fail)?;
        }
        raw.finish();
        if raw.notes.is_empty() {
            return Err(fail("the file contains no notes".into()));
        }
        let RawTracks {
            tempos,
            signatures,
            markers: raw_markers,
            programs,
            pedals,
            mut notes,
            end_tick,
            track_count,
        } = raw;

        let tempo_map = TempoMap::new(timing, &tempos).map_err(fail)?;
        let sig_beats: Vec<(f64, u8, u32)> = signatures
            .iter()
            .map(|&(tick, n, d)| (tempo_map.tick_to_beat(tick as f64), n, d))
            .collect();
        let meter_map = MeterMap::new(&sig_beats).map_err(fail)?;

        apply_pedal(&mut notes, &pedals, end_tick);

        notes.sort_by_key(|n| (n.on, n.pitch, n.channel, n.track));
        let to_s = |tick: u64| tempo_map.tick_to_s(tick as f64);
        let notes: Vec<Note> = notes
            .iter()
            .map(|n| Note {
                onset_s: to_s(n.on),
                offset_s: to_s(n.off),
                key_offset_s: to_s(n.key_off),
                pitch: n.pitch,
                velocity: n.velocity,
                channel: n.channel,
                program: program_at(&programs[n.channel as usize], n.on),
                is_drum: n.channel == DRUM_CHANNEL,
                track: n.track,
            })
            .collect();
        let duration_s = notes.iter().map(|n| n.offset_s).fold(0.0, f64::max);
        if duration_s > MAX_DURATION_S {
            // Most likely a corrupt delta time; rendering it would need absurd memory.
            return Err(fail(format!(
                "the score would last {duration_s:.0} s, more than {MAX_DURATION_S:.0} s"
            )));
        }
        let markers = raw_markers
            .into_iter()
            .map(|(tick, name, kind)| Marker {
                name,
                time_s: to_s(tick),
                kind,
            })
            .collect();
        Ok(Score {
            notes,
            duration_s,
            markers,
            tempo_map,
            meter_map,
            track_count,
            path: path_for_errors.to_path_buf(),
            printed: None,
        })
    }

    /// The notes that carry pitch (drums left out), e.g. for chroma.
    pub fn pitched_notes(&self) -> impl Iterator<Item = &Note> {
        self.notes.iter().filter(|n| !n.is_drum)
    }
}

/// Marker text: lossy UTF-8 (files often carry Latin-1), surrounding blanks removed.
fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// The program in force at `tick` given a channel's tick-sorted program changes (0 before
/// the first, the GM default).
fn program_at(changes: &[(u64, u8)], tick: u64) -> u8 {
    let i = changes.partition_point(|c| c.0 <= tick);
    if i == 0 {
        0
    } else {
        changes[i - 1].1
    }
}

/// Pedal-down intervals `[down, up)` of one channel from its tick-sorted CC64 events; a pedal
/// never released is held to `end_tick`.
fn pedal_intervals(events: &[(u64, bool)], end_tick: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut down_since: Option<u64> = None;
    for &(tick, down) in events {
        match (down, down_since) {
            (true, None) => down_since = Some(tick),
            (false, Some(start)) => {
                out.push((start, tick));
                down_since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = down_since {
        out.push((start, end_tick.max(start)));
    }
    out
}

/// Extend note ends to the pedal release, then cut pedal-held sound at the next strike of the
/// same pitch on the same channel (never before the key release).
fn apply_pedal(notes: &mut [TickNote], pedals: &[Vec<(u64, bool)>], end_tick: u64) {
    let intervals: Vec<Vec<(u64, u64)>> = pedals
        .iter()
        .map(|p| pedal_intervals(p, end_tick))
        .collect();
    for n in notes.iter_mut() {
        let iv = &intervals[n.channel as usize];
        // Last interval pressed strictly before the key release.
        let i = iv.partition_point(|&(down, _)| down < n.key_off);
        if i > 0 && iv[i - 1].1 > n.key_off {
            n.off = iv[i - 1].1;
        }
    }
    let mut by_string: HashMap<(u8, u8), Vec<usize>> = HashMap::new();
    for (i, n) in notes.iter().enumerate() {
        by_string.entry((n.channel, n.pitch)).or_default().push(i);
    }
    for mut idx in by_string.into_values() {
        idx.sort_by_key(|&i| notes[i].on);
        for (a, &i) in idx.iter().enumerate() {
            let on = notes[i].on;
            let next_on = idx[a + 1..].iter().map(|&j| notes[j].on).find(|&t| t > on);
            if let Some(next_on) = next_on {
                let n = &mut notes[i];
                n.off = n.key_off.max(n.off.min(next_on));
            }
        }
    }
}

/// Walk the chunk structure of a plain SMF ourselves: midly (without its `strict` feature)
/// silently accepts a chunk cut short by the end of the file or missing tracks.
fn check_chunks(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if bytes.starts_with(b"RIFF") {
        // RIFF-wrapped (RMID) files: midly unwraps them; leave the checks to it.
        return Ok(());
    }
    if !bytes.starts_with(b"MThd") {
        return Err("not a MIDI file (it does not start with an MThd header)".into());
    }
    let mut rest = bytes;
    let mut declared_tracks: Option<usize> = None;
    let mut tracks = 0usize;
    let mut offset = 0usize;
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(format!(
                "truncated: {} stray bytes at offset {offset} where a chunk header should be",
                rest.len()
            ));
        }
        let id = &rest[..4];
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if rest.len() - 8 < len {
            return Err(format!(
                "truncated: chunk '{}' at offset {offset} declares {len} bytes, only {} remain",
                String::from_utf8_lossy(id),
                rest.len() - 8
            ));
        }
        match id {
            b"MThd" if declared_tracks.is_none() => {
                if len < 6 {
                    return Err(format!("MThd header chunk is {len} bytes, expected 6"));
                }
                declared_tracks = Some(u16::from_be_bytes([rest[10], rest[11]]) as usize);
            }
            b"MTrk" => tracks += 1,
            _ => {}
        }
        rest = &rest[8 + len..];
        offset += 8 + len;
    }
    match declared_tracks {
        Some(n) if tracks < n => Err(format!(
            "truncated: the header declares {n} tracks but the file holds {tracks}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("unit.mid")
    }

    /// A one-track metrical file from raw track bytes (delta-time encoded events).
    fn smf(tpq: u16, tracks: &[&[u8]]) -> Vec<u8> {
        let mut out = b"MThd".to_vec();
        out.extend_from_slice(&6u32.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(tracks.len() as u16).to_be_bytes());
        out.extend_from_slice(&tpq.to_be_bytes());
        for t in tracks {
            out.extend_from_slice(b"MTrk");
            out.extend_from_slice(&(t.len() as u32).to_be_bytes());
            out.extend_from_slice(t);
        }
        out
    }

    const EOT: [u8; 4] = [0x00, 0xFF, 0x2F, 0x00];

    fn track(events: &[u8]) -> Vec<u8> {
        let mut t = events.to_vec();
        t.extend_from_slice(&EOT);
        t
    }

    #[test]
    fn running_status_and_velocity_zero_note_off() {
        // tpq 96: C4 on at 0, off (vel 0, running status) at 96, E4 on/off at 96..192.
        let t = track(&[0x00, 0x90, 60, 100, 0x60, 60, 0, 0x00, 64, 90, 0x60, 64, 0]);
        let s = Score::from_bytes(&smf(96, &[&t]), p()).unwrap();
        assert_eq!(s.notes.len(), 2);
        assert_eq!(
            (s.notes[0].pitch, s.notes[0].onset_s, s.notes[0].offset_s),
            (60, 0.0, 0.5)
        );
        assert_eq!(
            (s.notes[1].pitch, s.notes[1].onset_s, s.notes[1].offset_s),
            (64, 0.5, 1.0)
        );
        assert_eq!(s.notes[1].velocity, 90);
        assert_eq!(s.duration_s, 1.0);
    }

    #[test]
    fn overlapping_same_pitch_is_fifo() {
        // on@0, on@48, off@96, off@144 (tpq 96, 0.5 s per quarter).
        let t = track(&[
            0x00, 0x90, 60, 100, 0x30, 60, 80, 0x30, 0x80, 60, 0, 0x30, 60, 0,
        ]);
        let s = Score::from_bytes(&smf(96, &[&t]), p()).unwrap();
        let spans: Vec<(f64, f64, u8)> = s
            .notes
            .iter()
            .map(|n| (n.onset_s, n.offset_s, n.velocity))
            .collect();
        assert_eq!(spans, vec![(0.0, 0.5, 100), (0.25, 0.75, 80)]);
    }

    #[test]
    fn pedal_extends_and_restrike_cuts() {
        // Pedal down@10, C4 0..48, C4 again 192..240, pedal up@384; E4 0..48 never restruck.
        // tpq 96 (0.5 s per quarter). Pedal down@10, C4 0..48 then again 192..240,
        // E4 0..48 never restruck, pedal up@384.
        let t = track(&[
            0x00, 0x90, 60, 100, 0x00, 64, 100, // t=0: C4, E4 on (running status)
            0x0A, 0xB0, 64, 127, // t=10: CC64 down
            0x26, 0x90, 60, 0, 0x00, 64, 0, // t=48: both keys up
            0x81, 0x10, 60, 100, // t=192: C4 again
            0x30, 60, 0, // t=240: C4 up
            0x81, 0x10, 0xB0, 64, 0, // t=384: CC64 up
        ]);
        let s = Score::from_bytes(&smf(96, &[&t]), p()).unwrap();
        let tick_s = 0.5 / 96.0;
        let c: Vec<&Note> = s.notes.iter().filter(|n| n.pitch == 60).collect();
        let e: Vec<&Note> = s.notes.iter().filter(|n| n.pitch == 64).collect();
        assert_eq!(c.len(), 2);
        assert!((c[0].key_offset_s - 48.0 * tick_s).abs() < 1e-12);
        assert!(
            (c[0].offset_s - 192.0 * tick_s).abs() < 1e-12,
            "cut at restrike"
        );
        assert!(
            (c[1].offset_s - 384.0 * tick_s).abs() < 1e-12,
            "held to pedal up"
        );
        assert!((e[0].offset_s - 384.0 * tick_s).abs() < 1e-12);
        assert!((s.duration_s - 2.0).abs() < 1e-12);
    }

    #[test]
    fn program_and_drum_channel() {
        let t = track(&[
            0x00, 0xC0, 40, // ch0 program 40 (violin)
            0x00, 0x90, 67, 100, 0x00, 0x99, 36, 100, // G4 on ch0, kick on ch9
            0x60, 0x80, 67, 0, 0x00, 0x89, 36, 0,
        ]);
        let s = Score::from_bytes(&smf(96, &[&t]), p()).unwrap();
        let kick = s.notes.iter().find(|n| n.pitch == 36).unwrap();
        let g = s.notes.iter().find(|n| n.pitch == 67).unwrap();
        assert!(kick.is_drum && kick.channel == 9);
        assert!(!g.is_drum);
        assert_eq!(g.program, 40);
        assert_eq!(s.pitched_notes().count(), 1);
    }

    #[test]
    fn markers_are_read() {
        let t = track(&[
            0x00, 0xFF, 0x06, 3, b'A', b' ', b' ', 0x00, 0x90, 60, 100, 0x60, 60, 0, 0x00, 0xFF,
            0x07, 4, b'c', b'u', b'e', b'1',
        ]);
        let s = Score::from_bytes(&smf(96, &[&t]), p()).unwrap();
        assert_eq!(s.markers.len(), 2);
        assert_eq!(s.markers[0].name, "A");
        assert_eq!(s.markers[0].kind, MarkerKind::Marker);
        assert_eq!(
            (s.markers[1].name.as_str(), s.markers[1].time_s),
            ("cue1", 0.5)
        );
        assert_eq!(s.markers[1].kind, MarkerKind::CuePoint);
    }

    #[test]
    fn unterminated_note_ends_at_last_event() {
        let t = track(&[0x00, 0x90, 60, 100, 0x60, 0xFF, 0x01, 1, b'x']);
        let s = Score::from_bytes(&smf(96, &[&t]), p()).unwrap();
        assert_eq!(s.notes[0].offset_s, 0.5);
    }

    #[test]
    fn bad_files_name_path_and_reason() {
        let msg = |bytes: &[u8]| match Score::from_bytes(bytes, p()) {
            Err(e @ Error::Midi { .. }) => e.to_string(),
            other => panic!("expected a MIDI error, got {other:?}"),
        };
        assert!(msg(b"hello, I am a text file\n").contains("not a MIDI file"));
        assert!(msg(b"").contains("empty"));
        let t = track(&[0x00, 0x90, 60, 100, 0x60, 60, 0]);
        let good = smf(96, &[&t]);
        let m = msg(&good[..good.len() - 3]);
        assert!(m.contains("truncated") && m.contains("unit.mid"), "{m}");
        assert!(msg(&smf(96, &[&track(&[0x00, 0xFF, 0x01, 1, b'x'])])).contains("no notes"));
        // A track whose events break off mid-event inside a consistent chunk.
        let broken = smf(96, &[&[0x00, 0x90, 60, 100, 0x60]]);
        assert!(msg(&broken).contains("malformed"));
        // Header claims two tracks, holds one.
        let mut two = smf(96, &[&t]);
        two[11] = 2;
        assert!(msg(&two).contains("declares 2 tracks"));
        // A note-off 2^27 ticks away at tpq 1: over a year at 120 bpm.
        let far = smf(
            1,
            &[&track(&[
                0x00, 0x90, 60, 100, 0xC0, 0x80, 0x80, 0x00, 60, 0,
            ])],
        );
        assert!(msg(&far).contains("more than 86400 s"));
        // Junk after End of Track is ignored.
        let mut junk = t.clone();
        junk.extend_from_slice(&[0x00, 0x90, 0xFF]);
        assert_eq!(
            Score::from_bytes(&smf(96, &[&junk]), p())
                .unwrap()
                .notes
                .len(),
            1
        );
        // Format 2.
        let mut f2 = smf(96, &[&t]);
        f2[9] = 2;
        assert!(msg(&f2).contains("format 2"));
    }
}
