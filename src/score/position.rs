//! A [`Score`]'s positions in seconds, beats and bars: the score's notes and maps
//! (`midi.rs`) read through its time maps (`timemap.rs`), or through its printed layout
//! (MusicXML). Kept apart so the maps do not depend on the score that holds them.

use super::midi::Score;
use super::timemap::{BarBeat, MeterMap, BAR_EPS_QUARTERS};

impl Score {
    /// Quarter-note beats from tick 0 (MIDI beats, the corpus `score_beat`) at `t_s` seconds.
    pub fn beat_at_s(&self, t_s: f64) -> f64 {
        self.tempo_map.s_to_beat(t_s)
    }

    /// Seconds at quarter-note beat `beat` (inverse of [`Score::beat_at_s`]).
    pub fn s_at_beat(&self, beat: f64) -> f64 {
        self.tempo_map.beat_to_s(beat)
    }

    /// Tempo in force at `t_s` seconds (quarter notes per minute).
    pub fn qpm_at_s(&self, t_s: f64) -> f64 {
        self.tempo_map.qpm_at_s(t_s)
    }

    /// Bar and beat (1-based, time-signature denominator units) at `t_s` seconds. For a
    /// score with a printed layout (MusicXML) the bar is the printed measure number (see
    /// [`Score::printed_at_s`] for the pass, label, page and system); for MIDI it counts bars
    /// from 1 at tick 0 (0 for a pickup).
    pub fn bar_beat_at_s(&self, t_s: f64) -> BarBeat {
        match self.printed_at_s(t_s) {
            Some(p) => BarBeat {
                bar: p.bar,
                beat: p.beat,
            },
            None => self.meter_map.bar_beat_at_beat(self.beat_at_s(t_s)),
        }
    }

    /// Seconds at `bar` and `beat`, or `None` when the bar is outside
    /// `first_bar()..=bar_count()` or the beat lies outside that bar or before the start of
    /// the file. With a printed layout, bars are printed measure numbers and this is the
    /// first time the bar is played ([`Score::s_at_bar_beat_pass`] picks another pass).
    pub fn s_at_bar_beat(&self, bar: i32, beat: f64) -> Option<f64> {
        if let Some(layout) = self.printed.as_deref() {
            return layout.beat_at(bar, beat, 1).map(|q| self.s_at_beat(q));
        }
        if bar > self.bar_count() {
            return None;
        }
        self.meter_map
            .beat_at_bar_beat(bar, beat)
            .map(|q| self.s_at_beat(q))
    }

    /// Number of the first bar: with a printed layout the lowest printed measure number,
    /// else 1 (0 with a pickup).
    pub fn first_bar(&self) -> i32 {
        match self.printed.as_deref() {
            Some(layout) => layout.first_bar(),
            None => self.meter_map.first_bar(),
        }
    }

    /// Number of bars the score spans: the number of the bar holding the end of the last note
    /// (a note ending exactly on a bar line does not open a new bar), at least 1. A pickup
    /// bar (bar 0) is not counted, as in printed scores. With a printed layout: the highest
    /// printed measure number.
    pub fn bar_count(&self) -> i32 {
        if let Some(layout) = self.printed.as_deref() {
            return layout.last_bar();
        }
        let end = self
            .meter_map
            .bar_beat_at_beat(self.beat_at_s(self.duration_s));
        let bar = if end.beat <= 1.0 + BAR_EPS_QUARTERS {
            end.bar - 1
        } else {
            end.bar
        };
        bar.max(1)
    }

    /// Declare an anacrusis of `pickup_quarters` quarter notes (0 = none): bar 1 then starts
    /// that many quarter notes after tick 0 and the notes before it are in bar 0, so bar
    /// numbers match the printed score. MIDI files do not record this; see
    /// [`MeterMap::with_pickup`] for the limits.
    /// A score read from MusicXML has its measures from the print: this fails for it.
    pub fn set_pickup_quarters(&mut self, pickup_quarters: f64) -> crate::Result<()> {
        if self.printed.is_some() {
            return Err(crate::Error::invalid(
                "pickup",
                format!("{pickup_quarters}"),
                "a MusicXML score's measures give its pickup",
            ));
        }
        let changes = self.meter_map.changes().to_vec();
        self.meter_map = MeterMap::with_pickup(&changes, pickup_quarters).map_err(|reason| {
            crate::Error::invalid("pickup", format!("{pickup_quarters}"), reason)
        })?;
        Ok(())
    }
}
