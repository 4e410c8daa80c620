//! Turns the raw per-frame matches of an online aligner into what a listener is told: the
//! score position *now* (when the frame's last sample arrived), the tempo and a confidence.
//!
//! An aligner matches the centre of the performance frame, which is half a window older than
//! the newest sample. The tracker extrapolates over that lag with the local tempo, estimated as
//! the least-squares slope of the recent matches (reference frames per performance frame).

use super::AlignStep;

/// Tracker parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Lag between a frame's newest sample and its centre (performance frames).
    pub lag_frames: f64,
    /// Frames of match history used for the tempo slope.
    pub tempo_history_frames: usize,
    /// Tempo ratio limits (reference frames per performance frame).
    pub min_tempo: f64,
    /// Upper tempo ratio limit.
    pub max_tempo: f64,
    /// How far (performance frames at the local tempo) the reported position may flow past
    /// the next reference onset the aligner has not matched yet. An onset is matched a frame
    /// or two after its frame's centre has passed it, so the best estimate of where the
    /// performer is runs a little past it. [`Tracked::heard_ref_frame`] never does: cues fire
    /// on that one, so a cue placed on an onset does not fire while the performer holds the
    /// note before it (a fermata; with the allowance on the position itself, a cue on the
    /// bundled chorale's line 5 fired 1.5 s early). Measured on the dev corpus (soft aligner
    /// with its tempo tilt, causal, 15 cases, le50/le100/le300 %): 0 frames 70.1 / 78.3 /
    /// 92.3, 2 frames 70.9 / 80.9 / 92.7 (the 1.5x tempo case 71.9 -> 76.6 % within 300 ms),
    /// 3 frames 65.3 / 81.3 / 92.6, 4 frames 47.7 / 81.1 / 92.6.
    pub onset_allowance_frames: f64,
    /// Frames a long note (see [`Self::long_note_frames`]) may be held past the end the
    /// tempo gives it and still count towards the tempo. Beyond them the held frames are left
    /// out of the tempo's history: a fermata, a held chord at a phrase end, is no change of
    /// tempo, yet counted it pulled the tempo down by half for the two seconds after it, and
    /// the position lagged behind every note of that time (BWV 7.7 after its fermatas: the
    /// tempo fell from 1.1 to 0.55 and the position lagged by up to 400 ms). Measured on the
    /// dev corpus, see the README (*Following*, "A held note no longer slows the tempo").
    pub hold_counted_frames: u32,
    /// Notes at least this long (reference frames, as the onset gate's
    /// `min_note_frames`) can be held; a wait on a shorter note means the tempo is off, and
    /// counts.
    pub long_note_frames: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            lag_frames: 0.0,
            tempo_history_frames: 100,
            min_tempo: 0.25,
            max_tempo: 4.0,
            onset_allowance_frames: 2.0,
            hold_counted_frames: 5,
            long_note_frames: 15,
        }
    }
}

/// What the tracker reports for one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tracked {
    /// Reference frame (fractional) at the arrival time of the frame's newest sample.
    pub ref_frame_now: f64,
    /// The aligner's own match (reference frame, fractional), before lag compensation and flow.
    pub raw_ref_frame: f64,
    /// The same, but never past the next reference onset not matched yet (no onset
    /// allowance): the position the performer has certainly reached, for firing cues.
    pub heard_ref_frame: f64,
    /// Tempo ratio: reference time per performance time (1 = as in the reference).
    pub tempo: f64,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Spread (reference frames).
    pub spread_frames: f32,
    /// Frames in a row the position has waited at the next unheard onset (the flow would
    /// have gone on): the longer, the likelier the performer is past it and the onset was
    /// not heard.
    pub waiting_frames: u32,
}

/// Position tracker with a fixed-size history (no allocation per frame).
///
/// Inside a held note the aligner's match does not move (every cell of the note costs the
/// same), then jumps when the next onset is heard. With reference onsets given
/// ([`Tracker::with_onsets`]) the tracker lets the reported position flow on at the local tempo
/// inside the note, but never past the next reference onset that has not been heard yet.
pub struct Tracker {
    cfg: TrackerConfig,
    /// The matches the tempo is fitted on: all but the frames of a long note held beyond
    /// [`TrackerConfig::hold_counted_frames`].
    counted: MatchHistory,
    tempo: f64,
    onsets: Option<std::sync::Arc<[u32]>>,
    flowing: f64,
    /// The same flow without the onset allowance, for [`Tracked::heard_ref_frame`].
    flowing_heard: f64,
    waiting_frames: u32,
    /// The same wait for the heard position (without the allowance), which decides whether
    /// a frame counts towards the tempo: so the tempo, and the heard position, do not depend
    /// on the allowance.
    held_frames: u32,
}

impl Tracker {
    /// A new tracker.
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            counted: MatchHistory::new(cfg.tempo_history_frames),
            cfg,
            tempo: 1.0,
            onsets: None,
            flowing: 0.0,
            flowing_heard: 0.0,
            waiting_frames: 0,
            held_frames: 0,
        }
    }

    /// Use the reference's note onsets (sorted reference frames) to let the position flow
    /// inside held notes.
    pub fn with_onsets(mut self, onsets: std::sync::Arc<[u32]>) -> Self {
        self.onsets = Some(onsets);
        self
    }

    /// Forget the history (after a jump or a seek).
    pub fn reset(&mut self) {
        self.counted.clear();
        self.tempo = 1.0;
        self.flowing = 0.0;
        self.flowing_heard = 0.0;
        self.waiting_frames = 0;
        self.held_frames = 0;
    }

    /// Current tempo ratio.
    pub fn tempo(&self) -> f64 {
        self.tempo
    }

    /// The onsets around `frame`: the last at or before it (0 without one) and the first
    /// after it (infinity without one), in reference frames.
    fn note_around(&self, frame: f64) -> (f64, f64) {
        match &self.onsets {
            Some(on) => {
                let k = on.partition_point(|&o| (o as f64) <= frame);
                let start = k.checked_sub(1).map_or(0.0, |j| on[j] as f64);
                let end = on.get(k).map_or(f64::INFINITY, |&o| o as f64);
                (start, end)
            }
            None => (0.0, f64::INFINITY),
        }
    }

    /// True while the aligner stays on a long note held past its end at the tempo by more
    /// than [`TrackerConfig::hold_counted_frames`]: that frame says nothing about the tempo.
    /// `note` is the note `ref_frame` is in ([`Self::note_around`]).
    fn beyond_hold(&self, ref_frame: f64, (start, end): (f64, f64)) -> bool {
        let Some(last) = self.counted.last() else {
            return false;
        };
        self.held_frames > self.cfg.hold_counted_frames
            && ref_frame <= last + 0.5
            && end - start >= self.cfg.long_note_frames as f64
    }

    /// Feed one aligner step.
    pub fn update(&mut self, step: &AlignStep) -> Tracked {
        let raw = step.ref_frame;
        let note = self.note_around(raw);
        if !self.beyond_hold(raw, note) {
            self.counted.push(raw);
            if let Some(slope) = self.counted.slope() {
                self.tempo = slope.clamp(self.cfg.min_tempo, self.cfg.max_tempo);
            }
        }
        let (now, heard) = if self.onsets.is_some() {
            // Flow on from the last reported position at the local tempo, between the raw
            // match and the frame before the next unheard onset (plus the allowance).
            let allowance = self.tempo * self.cfg.onset_allowance_frames;
            let before_unheard = (note.1 - 1.0).max(raw);
            let (tempo, lag) = (self.tempo, self.cfg.lag_frames);
            // One flow with the allowance (the position), one without (what was heard: exactly
            // the position an allowance of 0 gives).
            let flow = |flowing: &mut f64, cap: f64| {
                *flowing = ((*flowing + tempo).min(cap)).max(raw);
                (*flowing + tempo * lag).min(cap.max(*flowing))
            };
            let cap = (before_unheard + allowance).max(raw);
            let waiting = self.flowing + tempo > cap && cap > raw;
            self.waiting_frames = if waiting { self.waiting_frames + 1 } else { 0 };
            let held = self.flowing_heard + tempo > before_unheard;
            self.held_frames = if held { self.held_frames + 1 } else { 0 };
            let now = flow(&mut self.flowing, cap);
            let heard = flow(&mut self.flowing_heard, before_unheard);
            (now, heard)
        } else {
            let now = raw + self.tempo * self.cfg.lag_frames;
            (now, now)
        };
        Tracked {
            ref_frame_now: now,
            raw_ref_frame: raw,
            heard_ref_frame: heard,
            tempo: self.tempo,
            confidence: step.confidence,
            spread_frames: step.spread_frames,
            waiting_frames: self.waiting_frames,
        }
    }
}

/// A ring of the latest aligner matches (reference frames), one a performance frame.
#[derive(Clone, Debug)]
struct MatchHistory {
    values: Vec<f64>,
    next: usize,
    filled: usize,
}

impl MatchHistory {
    fn new(frames: usize) -> Self {
        Self {
            values: vec![0.0; frames.max(2)],
            next: 0,
            filled: 0,
        }
    }

    fn clear(&mut self) {
        self.next = 0;
        self.filled = 0;
    }

    fn push(&mut self, ref_frame: f64) {
        let cap = self.values.len();
        self.values[self.next] = ref_frame;
        self.next = (self.next + 1) % cap;
        self.filled = (self.filled + 1).min(cap);
    }

    fn last(&self) -> Option<f64> {
        let cap = self.values.len();
        (self.filled > 0).then(|| self.values[(self.next + cap - 1) % cap])
    }

    /// Least-squares slope (reference frames per performance frame) over the history,
    /// once it holds 10 matches.
    fn slope(&self) -> Option<f64> {
        if self.filled < 10 {
            return None;
        }
        let cap = self.values.len();
        let start = (self.next + cap - self.filled) % cap;
        super::least_squares_slope(self.filled, |k| self.values[(start + k) % cap])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_tempo_is_recovered_and_extrapolated() {
        let mut t = Tracker::new(TrackerConfig {
            lag_frames: 4.0,
            ..TrackerConfig::default()
        });
        let mut out = Tracked::default();
        for i in 0..200 {
            out = t.update(&AlignStep {
                ref_frame: 1.5 * i as f64,
                confidence: 1.0,
                ..AlignStep::default()
            });
        }
        assert!((out.tempo - 1.5).abs() < 1e-9);
        assert!((out.ref_frame_now - (1.5 * 199.0 + 6.0)).abs() < 1e-9);
    }

    /// The wait at an unheard onset is counted from the frame the flow reaches it until the
    /// aligner matches the onset, and not while the flow is still on its way.
    #[test]
    fn waiting_counts_the_frames_held_at_an_unheard_onset() {
        let mut t = Tracker::new(TrackerConfig {
            onset_allowance_frames: 0.0,
            ..TrackerConfig::default()
        })
        .with_onsets(vec![0u32, 30, 100].into());
        let mut waits = Vec::new();
        for i in 0..80 {
            // The aligner keeps to tempo 1 up to frame 20, then stays in the note until the
            // onset at 30 is heard at frame 70.
            let raw = if i < 70 {
                (i as f64).min(20.0)
            } else {
                30.0 + (i - 70) as f64
            };
            let out = t.update(&AlignStep {
                ref_frame: raw,
                confidence: 1.0,
                ..AlignStep::default()
            });
            waits.push(out.waiting_frames);
        }
        // The flow reaches frame 29, the last before the onset, at about the tempo of the
        // frames before; from then on every frame counts, and the first matched frame past
        // the onset ends the wait.
        let first = waits
            .iter()
            .position(|&w| w > 0)
            .expect("the flow reached the onset");
        assert!((29..40).contains(&first), "first wait at frame {first}");
        for (i, &w) in waits.iter().enumerate().take(70).skip(first) {
            assert_eq!(w as usize, i - first + 1, "frame {i}");
        }
        assert!(waits[70..].iter().all(|&w| w == 0), "{:?}", &waits[70..]);
        assert!(waits[..first].iter().all(|&w| w == 0));
    }

    /// Inside a held note the position flows on at the tempo, up to the next unheard onset
    /// plus the allowance, and no further until the aligner matches that onset; the heard
    /// position stops before the onset.
    #[test]
    fn flow_stops_at_the_next_onset_plus_the_allowance() {
        for allowance in [0.0, 2.0] {
            let mut t = Tracker::new(TrackerConfig {
                onset_allowance_frames: allowance,
                ..TrackerConfig::default()
            })
            .with_onsets(vec![0u32, 100, 200].into());
            let mut highest = 0.0f64;
            for i in 0..130 {
                let out = t.update(&AlignStep {
                    ref_frame: (i as f64).min(90.0),
                    confidence: 1.0,
                    ..AlignStep::default()
                });
                highest = highest.max(out.ref_frame_now);
                assert!(out.tempo <= 1.0 + 1e-9);
                assert!(out.ref_frame_now <= 99.0 + out.tempo * allowance + 1e-9);
                // What was heard never passes the onset, whatever the allowance; without
                // one it is the position itself.
                assert!(out.heard_ref_frame <= 99.0 + 1e-9);
                assert!(out.heard_ref_frame <= out.ref_frame_now);
                if allowance == 0.0 {
                    assert_eq!(out.heard_ref_frame, out.ref_frame_now);
                }
            }
            // The flow got past the last frame before the onset only with an allowance.
            assert_eq!(
                highest > 99.0 + 1e-9,
                allowance > 0.0,
                "allowance {allowance}"
            );
        }
    }

    /// The heard position of a tracker with an allowance is, bit for bit, the position of the
    /// same tracker without one, on matches that stall inside notes and jump at onsets.
    #[test]
    fn heard_position_is_the_position_without_allowance() {
        let onsets: std::sync::Arc<[u32]> = (0..40u32).map(|k| k * 25).collect();
        let lag = TrackerConfig {
            lag_frames: 2.5,
            ..TrackerConfig::default()
        };
        let mut with = Tracker::new(TrackerConfig {
            onset_allowance_frames: 2.0,
            ..lag
        })
        .with_onsets(onsets.clone());
        let mut without = Tracker::new(TrackerConfig {
            onset_allowance_frames: 0.0,
            ..lag
        })
        .with_onsets(onsets);
        let mut ahead = 0;
        for i in 0..900 {
            // Matches that hold for a while after each onset, then catch up at 1.2x.
            let raw = ((i as f64 * 1.2) / 25.0).floor() * 25.0 + ((i % 21) as f64).min(8.0);
            let step = AlignStep {
                ref_frame: raw,
                confidence: 1.0,
                ..AlignStep::default()
            };
            let (a, b) = (with.update(&step), without.update(&step));
            assert_eq!(
                a.heard_ref_frame.to_bits(),
                b.ref_frame_now.to_bits(),
                "{i}"
            );
            assert_eq!(
                b.heard_ref_frame.to_bits(),
                b.ref_frame_now.to_bits(),
                "{i}"
            );
            ahead += (a.ref_frame_now > b.ref_frame_now) as usize;
        }
        assert!(ahead > 0, "the allowance never moved the position");
    }

    /// The tempo 20 frames after the aligner held the last frame of the note starting at
    /// reference frame 100 for 60 frames more than the tempo gives it (steady at tempo 1 before
    /// and after), with notes `note` frames long.
    fn tempo_after_hold(cfg: TrackerConfig, note: u32) -> f64 {
        let onsets: std::sync::Arc<[u32]> = (0..40u32).map(|k| k * note).collect();
        let mut t = Tracker::new(cfg).with_onsets(onsets);
        let next = (100 + note) as f64;
        let hold_ends = next + 60.0;
        let mut out = Tracked::default();
        for i in 0..(hold_ends as usize + 20) {
            let i = i as f64;
            let raw = if i < next - 1.0 {
                i
            } else if i < hold_ends {
                next - 1.0
            } else {
                next + (i - hold_ends)
            };
            out = t.update(&AlignStep {
                ref_frame: raw,
                confidence: 1.0,
                ..AlignStep::default()
            });
        }
        out.tempo
    }

    /// A long note held far past its end (a fermata) leaves the tempo as it was; counted, it
    /// would pull the tempo down for the seconds after it.
    #[test]
    fn a_held_long_note_does_not_slow_the_tempo() {
        let tempo = tempo_after_hold(TrackerConfig::default(), 25);
        assert!(tempo > 0.85, "tempo after the hold {tempo}");
        let counted = tempo_after_hold(
            TrackerConfig {
                hold_counted_frames: u32::MAX,
                ..TrackerConfig::default()
            },
            25,
        );
        assert!(counted < 0.6, "with the hold counted {counted}");
    }

    /// A wait on a short note means the tempo is off: it counts.
    #[test]
    fn a_wait_on_a_short_note_slows_the_tempo() {
        let tempo = tempo_after_hold(TrackerConfig::default(), 10);
        assert!(tempo < 0.6, "tempo after the wait {tempo}");
    }

    #[test]
    fn tempo_is_clamped() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut out = Tracked::default();
        for i in 0..50 {
            out = t.update(&AlignStep {
                ref_frame: 100.0 * i as f64,
                ..AlignStep::default()
            });
        }
        assert_eq!(out.tempo, 4.0);
    }
}
