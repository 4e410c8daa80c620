//! Voicing of a score for its reference rendering. A pianist brings out the melody over the
//! accompaniment, while a score's notes carry one velocity (every score of the development
//! corpus has velocity 78 throughout): rendered as written, a held bass chord and an
//! arpeggiated accompaniment outweigh the melody in the reference's chroma, and a performance
//! dominated by its melody is matched to the wrong frames (measured on the development corpus:
//! in Schubert's D 899/3 the performance's chroma at score 39.1-40.4 s was the melody's E, the
//! reference's the held B and F# of the bass). The reference rendering therefore plays the top
//! voice louder, for scores whose instruments all decay (pianos, harpsichords, mallets,
//! guitars): the instruments a single player voices. Ensembles are rendered as written: a
//! top line at velocity 127 in every score (the others at 78) lost the string-quartet cases
//! 6.6 and 7.4 points within 300 ms, though it lifted the organ chorale from 84.8 to 93.5 %
//! (measured against the same follower without it, an early version of the tempo model).

use super::synth::sustains;
use super::{Note, Score};

/// Amplitude of the top voice relative to the other notes in a keyboard-like score's reference
/// rendering for following (x, not dB; [`crate::score::reference::ScoreRendering`]).
/// Measured with `scorefollow eval --mode follow` on the development corpus (15 cases, causal,
/// with the tempo model), within 50 / 300 ms: gain 1 (as written) 73.5 / 94.7 %, 1.2 74.5 /
/// 95.1, 1.3 74.7 / 95.2, 1.4 74.7 / 95.2, 1.5 74.8 / 95.2, 1.63 74.7 / 95.0, 2 74.0 / 94.3,
/// 2.5 71.9 / 92.1; the same piece's human performance within 300 ms 90, 93, 94, 94, 94, 88,
/// 78, 61 %. (At 1.2 and 1.5 the skip case's re-localisation took the other of the two
/// statements of its theme first, a near tie at any gain.)
pub const MELODY_GAIN: f32 = 1.4;

/// Notes starting this close together (s) are one chord: a rolled chord's top note is still
/// the melody.
const CHORD_S: f64 = 0.03;

/// True when every pitched note of `score` decays (no organ, bowed, blown or sustained
/// synthesiser program): the score is played like a keyboard, and its top voice is its melody.
pub fn is_keyboard_like(score: &Score) -> bool {
    score.pitched_notes().all(|n| !sustains(n.program))
}

/// For each note of `notes` (sorted by onset, as in [`Score::notes`]): whether it is the
/// highest note sounding at its onset (the skyline). Notes starting within 30 ms of it count
/// as sounding, as do notes whose key is still down 30 ms after it; drum notes are never top
/// voice and never hide one.
pub fn top_voice(notes: &[Note]) -> Vec<bool> {
    let n = notes.len();
    let mut top = vec![false; n];
    // Notes that started more than CHORD_S before the current onset and may still be held.
    let mut held: Vec<usize> = Vec::new();
    let mut next_held = 0;
    for i in 0..n {
        if notes[i].is_drum {
            continue;
        }
        let t = notes[i].onset_s;
        // The same float expressions as the definition (differences from `t`), so a note
        // exactly 30 ms away is classified the same way.
        while next_held < n && t - notes[next_held].onset_s > CHORD_S {
            if !notes[next_held].is_drum {
                held.push(next_held);
            }
            next_held += 1;
        }
        held.retain(|&j| notes[j].key_offset_s - t > CHORD_S);
        let pitch = notes[i].pitch;
        let above_held = held.iter().any(|&j| notes[j].pitch > pitch);
        let above_now = notes[next_held..]
            .iter()
            .take_while(|m| m.onset_s - t <= CHORD_S)
            .any(|m| !m.is_drum && m.pitch > pitch);
        top[i] = !above_held && !above_now;
    }
    top
}

/// The gain of each note of `score` in its reference rendering: `melody_gain` for the top
/// voice of a keyboard-like score, 1 otherwise.
pub fn reference_note_gains(score: &Score, melody_gain: f32) -> Vec<f32> {
    if melody_gain == 1.0 || !is_keyboard_like(score) {
        return vec![1.0; score.notes.len()];
    }
    top_voice(&score.notes)
        .into_iter()
        .map(|t| if t { melody_gain } else { 1.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(pitch: u8, onset_s: f64, key_offset_s: f64) -> Note {
        Note {
            onset_s,
            offset_s: key_offset_s,
            key_offset_s,
            pitch,
            velocity: 78,
            channel: 0,
            program: 0,
            is_drum: false,
            track: 0,
        }
    }

    /// The definition, by brute force over every pair.
    fn top_voice_by_definition(notes: &[Note]) -> Vec<bool> {
        notes
            .iter()
            .map(|n| {
                !n.is_drum
                    && !notes.iter().any(|m| {
                        let t = n.onset_s;
                        let sounding = (m.onset_s - t).abs() <= CHORD_S
                            || (t - m.onset_s > CHORD_S && m.key_offset_s - t > CHORD_S);
                        !m.is_drum && sounding && m.pitch > n.pitch
                    })
            })
            .collect()
    }

    #[test]
    fn melody_over_a_held_chord_and_an_arpeggio() {
        // A held bass chord, a held melody note above an arpeggio, then a new melody note.
        let notes = vec![
            note(47, 0.0, 2.0),  // bass B2, under everything
            note(76, 0.0, 1.0),  // melody E5
            note(64, 0.2, 0.3),  // arpeggio E4 under the held E5
            note(66, 0.4, 0.5),  // F#4
            note(71, 1.0, 1.1),  // B4 as the melody is released: top now
            note(75, 1.5, 2.0),  // melody D#5
            note(74, 1.51, 2.0), // a rolled chord note 10 ms later, below it
        ];
        assert_eq!(
            top_voice(&notes),
            vec![false, true, false, false, true, true, false]
        );
        assert_eq!(top_voice(&notes), top_voice_by_definition(&notes));
    }

    proptest::proptest! {
        #[test]
        fn top_voice_matches_the_definition(
            raw in proptest::collection::vec((30u8..90, 0u32..400, 1u32..200, proptest::bool::weighted(0.1)), 0..60)
        ) {
            let mut notes: Vec<Note> = raw
                .iter()
                .map(|&(p, on, dur, drum)| Note {
                    is_drum: drum,
                    ..note(p, on as f64 * 0.01, (on + dur) as f64 * 0.01)
                })
                .collect();
            notes.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
            proptest::prop_assert_eq!(top_voice(&notes), top_voice_by_definition(&notes));
        }
    }
}
