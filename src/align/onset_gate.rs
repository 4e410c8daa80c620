//! The onset gate: what the performer has certainly played. A cue placed on a note must not
//! fire while the note before it is still held (a fermata, a long chord, a rest, a pause), yet
//! an aligner matching a held chord against the next one, or a tempo model carrying on, runs
//! past that note. So the position that fires cues passes a reference onset only once the
//! performance shows it has played it:
//!
//! - after a long note, the performance must either *attack* the notes that start there (a
//!   rise of [`FeatureFrame::attack`], which an organ's tremolo or a singer's vibrato does not
//!   give, in the pitch classes the reference attacks there), or *change* since that note began
//!   (its chroma moves away from the sound it made at the note's start by a good part of the
//!   change the reference makes at the onset, for a few frames). The change compares the
//!   performance with itself, so a timbre unlike the reference's (an organ's strong fifths
//!   against a rendered choir) cannot make a held chord look like the next one;
//! - after a short note, the onset passes with the aligner while the performance is playing
//!   (an attack within the last half second): a run of quick notes cannot put a cue more than
//!   a note early, and a pause or a held note stops it.
//!
//! An attack that matches a later onset the aligner has reached opens the gate up to it, so a
//! missed attack delays the gate by a note, not for good. The reference's onsets, chroma and
//! attacks come from its own frames, so a rendered score and a recording are treated alike.

use std::sync::Arc;

use super::cost::cosine_distance;
use crate::features::{Chroma, FeatureFrame, N_CHROMA};

/// Frames of energy the gate remembers to tell a sound dying away (120 ms).
pub const ENERGY_MEMORY: usize = 6;

/// Parameters of the [`OnsetGate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnsetGateConfig {
    /// Onsets after a note shorter than this (reference frames) pass with the aligner.
    pub min_note_frames: u32,
    /// Frames of reference chroma averaged on each side of an onset (leaving out the two frames
    /// nearest it, which the analysis window smears across the onset).
    pub side_frames: u32,
    /// Cosine distance between the two sides above which the music changes at the onset.
    pub change_distance: f32,
    /// Share of the reference's change at an onset (cosine distance between its two sides) the
    /// performance must have moved from the sound of the note before it.
    pub change_share: f32,
    /// Smallest such move (cosine distance), so a tiny reference change does not make noise
    /// count.
    pub min_change: f32,
    /// Frames in a row the performance must show the change.
    pub frames_in_a_row: u32,
    /// A change counts only in frames whose energy is at least this share of the largest of
    /// the last [`ENERGY_MEMORY`] frames: the chroma of a sound dying away into a pause (a
    /// released chord's reverberation, partials fading at different rates) moves too, but
    /// that is no next note; a next note holds or raises the level.
    pub min_change_energy_share: f32,
    /// Frames after an onset is played over which the sound of the note it starts is taken
    /// (from the third on, past the attack's transient).
    pub note_sound_frames: u32,
    /// An attack within this many frames means the performance is playing (onsets after
    /// short notes pass with the aligner); a held frame (silence, noise) ends it.
    pub active_frames: u32,
    /// Total fresh onset strength (relative to the running level of attacks, as the extractor
    /// scales it) that counts as an attack.
    pub min_attack: f32,
    /// Cosine similarity between an attack and a reference onset's attack that lets it confirm
    /// that onset.
    pub min_attack_match: f32,
    /// How far (reference frames) before an onset the aligner may still be for it to pass (the
    /// aligner lags a frame or two behind the performer).
    pub lead_frames: f64,
    /// How long (performance frames) an attack stays available to confirm an onset the aligner
    /// reaches after it.
    pub attack_memory_frames: u32,
}

impl Default for OnsetGateConfig {
    fn default() -> Self {
        Self {
            min_note_frames: 15,
            side_frames: 6,
            change_distance: 0.1,
            change_share: 0.5,
            min_change: 0.05,
            frames_in_a_row: 3,
            min_change_energy_share: 0.3,
            note_sound_frames: 4,
            active_frames: 10,
            min_attack: 0.15,
            min_attack_match: 0.5,
            lead_frames: 4.0,
            attack_memory_frames: 10,
        }
    }
}

/// What the gate knows of one reference onset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnsetSides {
    /// Reference frame of the onset.
    pub frame: u32,
    /// Unit chroma of the note before it.
    pub before: Chroma,
    /// Unit chroma of the music after it.
    pub after: Chroma,
    /// Unit attack chroma (the reference's attacks over the onset's frame and the two after).
    pub attack: Chroma,
    /// The note before it is long enough to gate.
    pub gated: bool,
    /// The music changes at the onset (the two sides differ).
    pub changes: bool,
}

/// The unit mean chroma of `frames[a..b]` (clipped; zero when empty).
fn mean_chroma(frames: &[FeatureFrame], a: usize, b: usize) -> Chroma {
    let (a, b) = (a.min(frames.len()), b.min(frames.len()));
    let mut m = [0.0f32; N_CHROMA];
    for f in &frames[a..b.max(a)] {
        for (m, c) in m.iter_mut().zip(&f.chroma) {
            *m += c;
        }
    }
    crate::features::chroma::normalize(&mut m);
    m
}

/// The gate's view of every onset of a reference (sorted, distinct `onset_frames`), shared by
/// the gates of a follower.
pub fn onset_sides(
    reference: &[FeatureFrame],
    onset_frames: &[u32],
    cfg: &OnsetGateConfig,
) -> Arc<[OnsetSides]> {
    let side = cfg.side_frames as usize;
    onset_frames
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let r = r as usize;
            let previous = i.checked_sub(1).map_or(0, |p| onset_frames[p] as usize);
            let next = onset_frames
                .get(i + 1)
                .map_or(reference.len(), |&n| n as usize);
            let before = mean_chroma(
                reference,
                r.saturating_sub(2 + side).max(previous + 2),
                r.saturating_sub(2),
            );
            let after = mean_chroma(reference, r + 2, (r + 2 + side).min(next.max(r + 3)));
            let mut attack = [0.0f32; N_CHROMA];
            for f in reference.iter().skip(r).take(3) {
                for (a, v) in attack.iter_mut().zip(&f.attack) {
                    *a = a.max(*v);
                }
            }
            crate::features::chroma::normalize(&mut attack);
            OnsetSides {
                frame: r as u32,
                before,
                after,
                attack,
                gated: i > 0 && r - previous >= cfg.min_note_frames as usize,
                changes: cosine_distance(&before, &after) > cfg.change_distance,
            }
        })
        .collect()
}

/// Which reference onsets the performer has played (see the module docs). No allocation after
/// construction.
#[derive(Clone, Debug)]
pub struct OnsetGate {
    onsets: Arc<[OnsetSides]>,
    cfg: OnsetGateConfig,
    /// Onsets `onsets[..heard]` have been played.
    heard: usize,
    /// Frames in a row the performance has shown it left the note before the next onset.
    left_for: u32,
    /// Frames in a row the performance, playing on, has sounded moved from the note before a
    /// re-struck onset it waits at ([`OnsetGate::wait_at_restruck`]).
    moved_on_for: u32,
    /// The sound of the note being held (the sum of its first frames' chroma) and the frames
    /// since it began (the last onset played, or a reset).
    note_sound: Chroma,
    /// Energy of the last [`ENERGY_MEMORY`] frames (a ring).
    recent_energy: [f32; ENERGY_MEMORY],
    frames_in_note: u32,

    /// The latest attack (unit chroma) and the frames since it.
    attack: Chroma,
    frames_since_attack: u32,
    /// Performance frames seen (for the trace log).
    frames_seen: u64,
}

impl OnsetGate {
    /// A gate before the first onset.
    pub fn new(onsets: Arc<[OnsetSides]>, cfg: OnsetGateConfig) -> Self {
        Self {
            onsets,
            cfg,
            heard: 0,
            left_for: 0,
            moved_on_for: 0,
            note_sound: [0.0; N_CHROMA],
            recent_energy: [0.0; ENERGY_MEMORY],
            frames_in_note: 0,
            attack: [0.0; N_CHROMA],
            frames_since_attack: u32::MAX,
            frames_seen: 0,
        }
    }

    /// The first reference frame not yet played: the position that fires cues stays below it
    /// (infinite once every onset is played).
    pub fn limit(&self) -> f64 {
        self.onsets
            .get(self.heard)
            .map_or(f64::INFINITY, |o| o.frame as f64)
    }

    /// Onsets played so far.
    pub fn heard(&self) -> usize {
        self.heard
    }

    /// Every onset up to `ref_frame` counts as played (the follower jumped or was sent there;
    /// the jump itself was confirmed by other evidence).
    pub fn reset_to(&mut self, ref_frame: f64) {
        self.heard = self
            .onsets
            .partition_point(|o| (o.frame as f64) <= ref_frame);
        self.start_note();
        self.frames_since_attack = u32::MAX;
    }

    /// A note begins (an onset was played, or the gate was reset): its sound is taken afresh.
    fn start_note(&mut self) {
        self.left_for = 0;
        self.moved_on_for = 0;
        self.note_sound = [0.0; N_CHROMA];
        self.frames_in_note = 0;
    }

    /// One performance frame, in the reference's key: `aligned` is where the aligner matched
    /// it (reference frames), `held` a pause (silence, noise: held on, or stepped through a
    /// written rest), which confirms nothing. Returns [`Self::limit`].
    pub fn update(&mut self, frame: &FeatureFrame, aligned: f64, held: bool) -> f64 {
        self.frames_seen += 1;
        self.frames_since_attack = self.frames_since_attack.saturating_add(1);
        if held {
            self.left_for = 0;
            self.moved_on_for = 0;
            self.frames_since_attack = u32::MAX;
            return self.limit();
        }
        if frame.attack.iter().sum::<f32>() >= self.cfg.min_attack {
            let mut a = frame.attack;
            crate::features::chroma::normalize(&mut a);
            self.attack = a;
            self.frames_since_attack = 0;
        }
        self.frames_in_note = self.frames_in_note.saturating_add(1);
        let sound_until = 2 + self.cfg.note_sound_frames;
        if self.frames_in_note > 2 && self.frames_in_note <= sound_until {
            for (s, c) in self.note_sound.iter_mut().zip(&frame.chroma) {
                *s += c;
            }
        }
        let recent_peak = self.recent_energy.iter().copied().fold(0.0f32, f32::max);
        let dying = frame.energy < self.cfg.min_change_energy_share * recent_peak;
        self.recent_energy[(self.frames_seen as usize) % ENERGY_MEMORY] = frame.energy;
        let moved = if self.frames_in_note > sound_until && !dying {
            cosine_distance(&frame.chroma, &self.note_sound)
        } else {
            0.0
        };
        let reach = self
            .onsets
            .partition_point(|o| (o.frame as f64) <= aligned + self.cfg.lead_frames);
        let mut counted = false;
        while let Some(o) = self.onsets.get(self.heard).copied() {
            if self.heard >= reach {
                break;
            }
            let attacked = |min: f32| {
                self.frames_since_attack <= self.cfg.attack_memory_frames
                    && 1.0 - cosine_distance(&self.attack, &o.attack) >= min
            };
            let passes = if !o.gated {
                self.frames_since_attack <= self.cfg.active_frames
            } else if o.changes {
                if !counted {
                    counted = true;
                    let needed = (self.cfg.change_share * cosine_distance(&o.before, &o.after))
                        .max(self.cfg.min_change);
                    self.left_for = if moved >= needed {
                        self.left_for + 1
                    } else {
                        0
                    };
                }
                self.left_for >= self.cfg.frames_in_a_row || attacked(self.cfg.min_attack_match)
            } else {
                attacked(self.cfg.min_attack_match)
            };
            if !passes {
                if o.gated && !o.changes {
                    self.wait_at_restruck(frame, moved, reach);
                }
                break;
            }
            tracing::trace!(
                "gate: perf frame {} onset {} (frame {}, gated {}, changes {}) played, aligner at {aligned:.1} (change frames {}, frames since attack {})",
                self.frames_seen,
                self.heard,
                o.frame,
                o.gated,
                o.changes,
                self.left_for,
                self.frames_since_attack
            );
            let changed = o.gated && self.left_for >= self.cfg.frames_in_a_row;
            if o.gated && !changed {
                // The attack is spent on this onset.
                self.frames_since_attack = u32::MAX;
            }
            self.heard += 1;
            self.start_note();
            if changed {
                // The performance moved on; if it already sounds like the music after a later
                // onset the aligner has reached than like the music after this one, attacks
                // or changes were missed: it is there.
                self.catch_up(frame, reach);
                break;
            }
        }
        self.limit()
    }

    /// Waiting at an onset where the music does not change (a chord struck again after a long
    /// note), which only its own attack confirms. If that attack was missed (soft legato, a
    /// detector that saw the strike as part of the note before), the gate would wait there
    /// until a later attack happened to match it, seconds after the performer had moved on
    /// (`v4x22_chopin_op10no3/human_p05`: 2.8 s). So while the performer plays on (an attack
    /// within [`OnsetGateConfig::active_frames`], none of them this onset's) and the sound has
    /// moved from the held note's by a change ([`OnsetGateConfig::change_distance`]) for
    /// [`OnsetGateConfig::frames_in_a_row`] frames, the gate catches up with the later onset
    /// (up to `reach`) whose music it sounds clearly more like, as after a change. Without
    /// attacks it does not: a room's reverberation building up after the strike, or an organ
    /// swelling, moves the sound too (in the dev corpus's small room, a version of this rule
    /// without the attack passed Kreisleriana's repeated chord 1 s early).
    fn wait_at_restruck(&mut self, frame: &FeatureFrame, moved: f32, reach: usize) {
        let playing = self.frames_since_attack <= self.cfg.active_frames;
        self.moved_on_for = if playing && moved >= self.cfg.change_distance {
            self.moved_on_for + 1
        } else {
            0
        };
        if self.moved_on_for >= self.cfg.frames_in_a_row {
            self.catch_up(frame, reach);
        }
    }

    /// After a change: move on to the onset (up to `reach`) whose following music the
    /// performance sounds most like, if that is clearly a later one.
    fn catch_up(&mut self, frame: &FeatureFrame, reach: usize) {
        let Some(here) = self.heard.checked_sub(1) else {
            return;
        };
        let to = |k: usize| cosine_distance(&frame.chroma, &self.onsets[k].after);
        let mut best = (here, to(here));
        for k in self.heard..reach {
            let d = to(k);
            if d < best.1 - self.cfg.min_change {
                best = (k, d);
            }
        }
        if best.0 > here {
            tracing::trace!(
                "gate: perf frame {} caught up to onset {}",
                self.frames_seen,
                best.0
            );
            self.heard = best.0 + 1;
            self.start_note();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(classes: &[usize]) -> Chroma {
        let mut c = [0.02f32; N_CHROMA];
        for &k in classes {
            c[k] = 1.0;
        }
        crate::features::chroma::normalize(&mut c);
        c
    }

    /// An attack in `classes` (as the extractor scales them: well above the threshold).
    fn attack_in(classes: &[usize]) -> Chroma {
        let mut a = [0.0f32; N_CHROMA];
        for &k in classes {
            a[k] = 0.4;
        }
        a
    }

    /// A reference of chords: C major from 0, F major from 30, F major re-struck at 60, G major
    /// from 90 to 120, each attacked at its first frame.
    fn reference() -> (Vec<FeatureFrame>, Vec<u32>) {
        let chords: [(u32, &[usize]); 4] = [
            (0, &[0, 4, 7]),
            (30, &[5, 9, 0]),
            (60, &[5, 9, 0]),
            (90, &[7, 11, 2]),
        ];
        let mut frames = vec![FeatureFrame::default(); 120];
        for (k, f) in frames.iter_mut().enumerate() {
            let (start, classes) = chords
                .iter()
                .rev()
                .find(|(s, _)| *s as usize <= k)
                .copied()
                .unwrap_or(chords[0]);
            f.chroma = unit(classes);
            if k == start as usize {
                f.attack = attack_in(classes);
            }
        }
        (frames, chords.iter().map(|c| c.0).collect())
    }

    fn gate() -> OnsetGate {
        let (frames, onsets) = reference();
        let cfg = OnsetGateConfig::default();
        let sides = onset_sides(&frames, &onsets, &cfg);
        OnsetGate::new(sides, cfg)
    }

    /// A performance frame sounding `classes`, attacking `attacked`.
    fn played(classes: &[usize], attacked: &[usize]) -> FeatureFrame {
        FeatureFrame {
            chroma: unit(classes),
            attack: attack_in(attacked),
            ..FeatureFrame::default()
        }
    }

    #[test]
    fn sides_tell_changes_from_repeats() {
        let (frames, onsets) = reference();
        let s = onset_sides(&frames, &onsets, &OnsetGateConfig::default());
        assert!(!s[0].gated, "the first onset has no note before it");
        assert!(s[1].gated && s[1].changes);
        assert!(s[2].gated && !s[2].changes, "F major re-struck");
        assert!(s[3].gated && s[3].changes);
        assert!(s[1].attack[5] > 0.5 && s[1].attack[4] == 0.0);
    }

    /// A C major chord held while the aligner runs through F major to frame 50, with a tremolo
    /// re-attacking its own notes: the gate stays at the F major onset (30). F major sounding
    /// for three frames without an attack (legato) opens it.
    #[test]
    fn a_held_chord_keeps_the_gate_shut_however_far_the_aligner_runs() {
        let mut g = gate();
        let c_major = [0, 4, 7];
        g.update(&played(&c_major, &c_major), 0.0, false);
        assert_eq!(g.limit(), 30.0);
        for aligned in 1..50 {
            let tremolo: &[usize] = if aligned % 7 == 0 { &c_major } else { &[] };
            let limit = g.update(&played(&c_major, tremolo), aligned as f64, false);
            assert_eq!(limit, 30.0, "aligner at {aligned}");
        }
        let f_major = [5, 9, 0];
        for k in 0..2 {
            assert_eq!(
                g.update(&played(&f_major, &[]), 50.0 + k as f64, false),
                30.0
            );
        }
        assert_eq!(g.update(&played(&f_major, &[]), 52.0, false), 60.0);
    }

    /// A chord released into a pause: its dying sound drifts towards other pitch classes (the
    /// partials fade at different rates), which is no next note; the same change at a level
    /// that holds is one.
    #[test]
    fn a_sound_dying_away_is_no_change() {
        let mut g = gate();
        let (c_major, f_major) = ([0, 4, 7], [5, 9, 0]);
        let at = |classes: &[usize], energy: f32| FeatureFrame {
            energy,
            ..played(classes, &[])
        };
        g.update(
            &FeatureFrame {
                energy: 1.0,
                ..played(&c_major, &c_major)
            },
            0.0,
            false,
        );
        for aligned in 1..20 {
            g.update(&at(&c_major, 1.0), aligned as f64, false);
        }
        let mut energy = 1.0;
        for aligned in 20..40 {
            energy *= 0.6;
            let limit = g.update(&at(&f_major, energy), aligned as f64, false);
            assert_eq!(limit, 30.0, "aligner at {aligned}");
        }
        // At a steady level: once the louder frames have left the energy memory, three frames
        // of change open the gate.
        let opened =
            (0..20).find(|&k| g.update(&at(&f_major, energy), 40.0 + k as f64, false) > 30.0);
        assert_eq!(opened, Some(5));
    }

    /// The attack of the next chord opens the gate at once; the re-struck F major (no change of
    /// chroma) passes on its attack only, and a held frame (a pause) confirms nothing.
    #[test]
    fn attacks_open_the_gate_and_held_frames_do_not() {
        let mut g = gate();
        let (c_major, f_major) = ([0, 4, 7], [5, 9, 0]);
        for aligned in 0..28 {
            g.update(&played(&c_major, &[]), aligned as f64, false);
        }
        assert_eq!(g.update(&played(&f_major, &f_major), 28.0, false), 60.0);
        for aligned in 29..66 {
            let limit = g.update(&played(&f_major, &[]), aligned as f64, false);
            assert_eq!(limit, 60.0, "aligner at {aligned}");
        }
        assert_eq!(g.update(&played(&f_major, &f_major), 66.0, true), 60.0);
        assert_eq!(g.update(&played(&f_major, &f_major), 66.0, false), 90.0);
    }

    /// Changes missed: once the performance is heard to change after a long note, it moves on
    /// to the onset (up to where the aligner is) whose music it sounds like. `reset_to` counts
    /// every onset up to a frame as played.
    #[test]
    fn a_change_catches_up_with_missed_onsets() {
        let mut g = gate();
        let (c_major, g_major) = ([0, 4, 7], [7, 11, 2]);
        g.update(&played(&c_major, &c_major), 0.0, false);
        for aligned in 1..20 {
            g.update(&played(&c_major, &[]), aligned as f64, false);
        }
        assert_eq!(g.limit(), 30.0);
        // The performer is already at G major when the aligner gets there: three frames of G
        // major pass F major's onset and catch up with G major's.
        for k in 0..2 {
            assert_eq!(
                g.update(&played(&g_major, &[]), 95.0 + k as f64, false),
                30.0
            );
        }
        assert!(g.update(&played(&g_major, &[]), 97.0, false).is_infinite());
        g.reset_to(45.0);
        assert_eq!((g.heard(), g.limit()), (2, 60.0));
    }

    /// The re-struck F major's attack missed: the gate waits at it (no change of chroma can
    /// pass it) while the F major is held, and while the performance moves to G major without
    /// attacking (a swell, a room's reverberation); once it plays on in G major, attacking, it
    /// catches up with G major's onset.
    #[test]
    fn a_missed_restrike_is_caught_up_when_the_performer_plays_on() {
        let mut g = gate();
        let (c_major, f_major, g_major) = ([0, 4, 7], [5, 9, 0], [7, 11, 2]);
        g.update(&played(&c_major, &c_major), 0.0, false);
        assert_eq!(g.update(&played(&f_major, &f_major), 28.0, false), 60.0);
        for aligned in 29..95 {
            let limit = g.update(&played(&f_major, &[]), aligned as f64, false);
            assert_eq!(limit, 60.0, "aligner at {aligned}");
        }
        for aligned in 95..120 {
            let limit = g.update(&played(&g_major, &[]), aligned as f64, false);
            assert_eq!(limit, 60.0, "no attack, aligner at {aligned}");
        }
        // Attacks that are not the re-struck F major's: the third frame passes it.
        let mut limits = Vec::new();
        for k in 0..3 {
            let attacking: &[usize] = if k == 0 { &g_major } else { &[] };
            limits.push(g.update(&played(&g_major, attacking), 100.0, false));
        }
        assert_eq!(limits[..2], [60.0, 60.0]);
        assert!(limits[2].is_infinite(), "{limits:?}");
    }

    /// An onset after a short note passes with the aligner while the performance is playing.
    #[test]
    fn short_notes_pass_with_the_aligner() {
        let (mut frames, _) = reference();
        frames.truncate(40);
        let onsets = [0u32, 30, 35];
        let cfg = OnsetGateConfig::default();
        let sides = onset_sides(&frames, &onsets, &cfg);
        assert!(!sides[2].gated);
        let mut g = OnsetGate::new(sides, cfg);
        g.reset_to(31.0);
        let f_major = [5, 9, 0];
        // Without an attack in the last half second (a held note, a pause) it does not.
        assert_eq!(g.update(&played(&f_major, &[]), 33.0, false), 35.0);
        assert!(g.update(&played(&f_major, &[2]), 33.0, false).is_infinite());
    }
}
