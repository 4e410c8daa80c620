//! Time maps of a MIDI score: ticks <-> seconds <-> quarter-note beats ([`TempoMap`]) and
//! quarter-note beats <-> bar and beat ([`MeterMap`]). The `Score` methods built on them are in
//! `position.rs`, so these maps depend on nothing of the score.
//!
//! Conventions:
//! - A *beat* here (`beat`, `_beat`) is a MIDI beat: quarter notes counted from tick 0, the
//!   corpus convention for `score_beat`. With metrical timing it is simply `tick / ticks per
//!   quarter`; with SMPTE timing it integrates the tempo events over time.
//! - A [`BarBeat`] counts bars from 1 at tick 0 and beats from 1 at the bar line, in units of
//!   the time signature's denominator (an eighth note in 6/8).
//!
//! Every map is piecewise linear and strictly increasing, so each direction is a
//! `partition_point` search followed by one linear step.

/// Microseconds per quarter note of the MIDI default tempo (120 quarter notes per minute).
pub const DEFAULT_US_PER_QUARTER: u32 = 500_000;

/// How the file's ticks relate to time, from the MIDI header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TickTiming {
    /// Ticks per quarter note; seconds follow from the tempo events.
    Metrical {
        /// Ticks per quarter note (> 0).
        ticks_per_quarter: u16,
    },
    /// SMPTE timecode: a fixed number of ticks per second, independent of tempo events.
    Timecode {
        /// Frames per second (29.97 for drop-frame "29").
        fps: f64,
        /// Ticks per frame (> 0).
        ticks_per_frame: u8,
    },
}

/// One constant-tempo stretch of the score, starting at `tick`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TempoSegment {
    /// First tick of the segment.
    pub tick: u64,
    /// Seconds at `tick`.
    pub time_s: f64,
    /// Quarter-note beats at `tick`.
    pub beat: f64,
    /// Tempo in force (µs per quarter note).
    pub us_per_quarter: u32,
    /// Seconds per tick in this segment.
    pub s_per_tick: f64,
    /// Quarter-note beats per tick in this segment.
    pub beats_per_tick: f64,
}

/// Piecewise-linear map between ticks, seconds and quarter-note beats.
///
/// Positions before tick 0 or after the last change are extrapolated with the first or last
/// segment's tempo, so the maps are total and strictly increasing.
#[derive(Clone, Debug, PartialEq)]
pub struct TempoMap {
    timing: TickTiming,
    segments: Vec<TempoSegment>,
}

impl TempoMap {
    /// Build the map from `(tick, µs per quarter)` tempo changes, which must already be sorted
    /// by tick (stably: of several changes at one tick the last one wins). The MIDI default
    /// of 120 bpm holds until the first change.
    ///
    /// Fails (with a reason) on a zero tempo, zero ticks per quarter or zero ticks per frame.
    pub fn new(timing: TickTiming, changes: &[(u64, u32)]) -> Result<TempoMap, String> {
        match timing {
            TickTiming::Metrical {
                ticks_per_quarter: 0,
            } => return Err("header gives 0 ticks per quarter note".into()),
            TickTiming::Timecode {
                ticks_per_frame: 0, ..
            } => return Err("header gives SMPTE timing with 0 ticks per frame".into()),
            _ => {}
        }
        if let Some(&(tick, _)) = changes.iter().find(|&&(_, us)| us == 0) {
            return Err(format!("tempo of 0 µs per quarter note at tick {tick}"));
        }
        if changes.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err("tempo changes are not sorted by tick".into());
        }
        let rates = |us: u32| -> (f64, f64) {
            let s_per_quarter = us as f64 * 1e-6;
            match timing {
                TickTiming::Metrical { ticks_per_quarter } => (
                    s_per_quarter / ticks_per_quarter as f64,
                    1.0 / ticks_per_quarter as f64,
                ),
                TickTiming::Timecode {
                    fps,
                    ticks_per_frame,
                } => {
                    let s_per_tick = 1.0 / (fps * ticks_per_frame as f64);
                    (s_per_tick, s_per_tick / s_per_quarter)
                }
            }
        };
        let (s_per_tick, beats_per_tick) = rates(DEFAULT_US_PER_QUARTER);
        let mut segments = Vec::with_capacity(changes.len() + 1);
        let mut cur = TempoSegment {
            tick: 0,
            time_s: 0.0,
            beat: 0.0,
            us_per_quarter: DEFAULT_US_PER_QUARTER,
            s_per_tick,
            beats_per_tick,
        };
        for &(tick, us) in changes {
            let (s_per_tick, beats_per_tick) = rates(us);
            if tick == cur.tick {
                // A later change at the same tick replaces the earlier one.
                cur.us_per_quarter = us;
                cur.s_per_tick = s_per_tick;
                cur.beats_per_tick = beats_per_tick;
                continue;
            }
            let dt = (tick - cur.tick) as f64;
            let next = TempoSegment {
                tick,
                time_s: cur.time_s + dt * cur.s_per_tick,
                beat: cur.beat + dt * cur.beats_per_tick,
                us_per_quarter: us,
                s_per_tick,
                beats_per_tick,
            };
            segments.push(std::mem::replace(&mut cur, next));
        }
        segments.push(cur);
        Ok(TempoMap { timing, segments })
    }

    /// The header timing.
    pub fn timing(&self) -> TickTiming {
        self.timing
    }

    /// The constant-tempo segments, in tick order; the first starts at tick 0.
    pub fn segments(&self) -> &[TempoSegment] {
        &self.segments
    }

    /// Index of the segment in force at a position, given "segment starts at or before it".
    fn find(&self, starts_before: impl Fn(&TempoSegment) -> bool) -> &TempoSegment {
        let i = self.segments.partition_point(starts_before).max(1) - 1;
        &self.segments[i]
    }

    /// Seconds at a (fractional) tick.
    pub fn tick_to_s(&self, tick: f64) -> f64 {
        let seg = self.find(|s| s.tick as f64 <= tick);
        seg.time_s + (tick - seg.tick as f64) * seg.s_per_tick
    }

    /// Fractional tick at `t_s` seconds.
    pub fn s_to_tick(&self, t_s: f64) -> f64 {
        let seg = self.find(|s| s.time_s <= t_s);
        seg.tick as f64 + (t_s - seg.time_s) / seg.s_per_tick
    }

    /// Quarter-note beats at a (fractional) tick.
    pub fn tick_to_beat(&self, tick: f64) -> f64 {
        let seg = self.find(|s| s.tick as f64 <= tick);
        seg.beat + (tick - seg.tick as f64) * seg.beats_per_tick
    }

    /// Fractional tick at a quarter-note beat.
    pub fn beat_to_tick(&self, beat: f64) -> f64 {
        let seg = self.find(|s| s.beat <= beat);
        seg.tick as f64 + (beat - seg.beat) / seg.beats_per_tick
    }

    /// Quarter-note beats at `t_s` seconds.
    pub fn s_to_beat(&self, t_s: f64) -> f64 {
        let seg = self.find(|s| s.time_s <= t_s);
        seg.beat + (t_s - seg.time_s) / seg.s_per_tick * seg.beats_per_tick
    }

    /// Seconds at a quarter-note beat.
    pub fn beat_to_s(&self, beat: f64) -> f64 {
        let seg = self.find(|s| s.beat <= beat);
        seg.time_s + (beat - seg.beat) / seg.beats_per_tick * seg.s_per_tick
    }

    /// Tempo in force at `t_s` seconds (quarter notes per minute).
    pub fn qpm_at_s(&self, t_s: f64) -> f64 {
        60e6 / self.find(|s| s.time_s <= t_s).us_per_quarter as f64
    }
}

/// A musical position: bar (1-based) and beat within the bar (1-based, in units of the time
/// signature's denominator, fractional between beats).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BarBeat {
    /// Bar number; bar 1 starts at tick 0 (positions before it give bar 0 or less).
    pub bar: i32,
    /// Beat within the bar, 1.0 at the bar line.
    pub beat: f64,
}

/// One stretch of constant time signature, starting at quarter-note beat `beat` with bar
/// number `first_bar`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeterSegment {
    /// Quarter-note beat of the change (a bar line).
    pub beat: f64,
    /// Number of the bar that starts at the change.
    pub first_bar: i32,
    /// Time signature numerator (beats per bar).
    pub numerator: u8,
    /// Time signature denominator (note value of a beat: 4 = quarter, 8 = eighth).
    pub denominator: u32,
}

impl MeterSegment {
    /// Length of one full bar in quarter notes.
    pub fn bar_quarters(&self) -> f64 {
        self.numerator as f64 * 4.0 / self.denominator as f64
    }
}

/// Tolerance (quarter notes) for deciding that a position sits on a bar line; far below any
/// real note value, far above float rounding of tick / ticks-per-quarter.
pub(crate) const BAR_EPS_QUARTERS: f64 = 1e-6;

/// Map between quarter-note beats and [`BarBeat`]s, honouring every time-signature change.
///
/// Each change starts a new bar. When a change falls in the middle of a bar of the previous
/// signature (legal in MIDI, rare in scores), that shortened bar still counts as one bar.
///
/// MIDI files do not say whether the music starts with an anacrusis; by default bar 1 starts
/// at tick 0. With a pickup ([`MeterMap::with_pickup`]) the notes before the first full bar
/// form bar 0, which ends `pickup` quarter notes after tick 0, so printed bar numbers hold.
#[derive(Clone, Debug, PartialEq)]
pub struct MeterMap {
    segments: Vec<MeterSegment>,
    changes: Vec<(f64, u8, u32)>,
    pickup_quarters: f64,
}

impl MeterMap {
    /// Build the map from `(quarter-note beat, numerator, denominator)` changes sorted by beat
    /// (of several changes at one beat the last wins). 4/4 holds until the first change.
    /// Bar 1 starts at beat 0.
    ///
    /// Fails (with a reason) on a zero numerator, a denominator that is not a power of two
    /// up to 2^15, or unsorted input.
    pub fn new(changes: &[(f64, u8, u32)]) -> Result<MeterMap, String> {
        MeterMap::with_pickup(changes, 0.0)
    }

    /// Like [`MeterMap::new`], with an anacrusis of `pickup_quarters` quarter notes: bar 1
    /// starts at that beat and the pickup is the end of bar 0 (so a one-quarter pickup in 4/4
    /// is bar 0, beat 4). 0 means no pickup. Fails unless `0 <= pickup_quarters` and the
    /// pickup is shorter than the first bar and ends no later than the first change.
    pub fn with_pickup(
        changes: &[(f64, u8, u32)],
        pickup_quarters: f64,
    ) -> Result<MeterMap, String> {
        if changes.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err("time signatures are not sorted".into());
        }
        if let Some(&(beat, numerator, denominator)) = changes
            .iter()
            .find(|c| c.1 == 0 || !c.2.is_power_of_two() || c.2 > 1 << 15)
        {
            return Err(format!(
                "invalid time signature {numerator}/{denominator} at quarter-note beat {beat}"
            ));
        }
        // The signature in force at beat 0 is the last change at (or before) it.
        let (numerator, denominator) = changes
            .iter()
            .take_while(|c| c.0 <= BAR_EPS_QUARTERS)
            .last()
            .map_or((4, 4), |c| (c.1, c.2));
        let mut cur = MeterSegment {
            beat: 0.0,
            first_bar: 1,
            numerator,
            denominator,
        };
        let has_pickup = pickup_quarters > BAR_EPS_QUARTERS;
        if !(pickup_quarters.is_finite() && pickup_quarters >= 0.0) {
            return Err(format!(
                "invalid pickup length {pickup_quarters} quarter notes"
            ));
        }
        if has_pickup {
            let first_change = changes
                .iter()
                .map(|c| c.0)
                .find(|&b| b > BAR_EPS_QUARTERS)
                .unwrap_or(f64::INFINITY);
            if pickup_quarters >= cur.bar_quarters() - BAR_EPS_QUARTERS
                || pickup_quarters > first_change + BAR_EPS_QUARTERS
            {
                return Err(format!(
                    "a pickup of {pickup_quarters} quarter notes does not fit before the first \
                     full bar of {numerator}/{denominator}"
                ));
            }
            cur.beat = pickup_quarters - cur.bar_quarters();
            cur.first_bar = 0;
        }
        let mut segments = Vec::with_capacity(changes.len() + 1);
        for &(beat, numerator, denominator) in changes {
            if beat <= BAR_EPS_QUARTERS {
                continue;
            }
            if beat - cur.beat <= BAR_EPS_QUARTERS {
                cur.numerator = numerator;
                cur.denominator = denominator;
                continue;
            }
            let bars = ((beat - cur.beat) / cur.bar_quarters() - BAR_EPS_QUARTERS).ceil() as i32;
            let next = MeterSegment {
                beat,
                first_bar: cur.first_bar + bars,
                numerator,
                denominator,
            };
            segments.push(std::mem::replace(&mut cur, next));
        }
        segments.push(cur);
        Ok(MeterMap {
            segments,
            changes: changes.to_vec(),
            pickup_quarters: if has_pickup { pickup_quarters } else { 0.0 },
        })
    }

    /// The time-signature changes the map was built from, `(quarter-note beat, numerator,
    /// denominator)`.
    pub fn changes(&self) -> &[(f64, u8, u32)] {
        &self.changes
    }

    /// Length of the anacrusis (quarter notes), 0 without one.
    pub fn pickup_quarters(&self) -> f64 {
        self.pickup_quarters
    }

    /// Number of the first bar: 0 with a pickup, else 1.
    pub fn first_bar(&self) -> i32 {
        self.segments[0].first_bar
    }

    /// The time-signature segments in order; the first holds bar 1 at beat 0, or bar 0 (which
    /// starts before beat 0) with a pickup.
    pub fn segments(&self) -> &[MeterSegment] {
        &self.segments
    }

    /// Bar and beat at a quarter-note beat.
    pub fn bar_beat_at_beat(&self, beat: f64) -> BarBeat {
        let i = self
            .segments
            .partition_point(|s| s.beat <= beat + BAR_EPS_QUARTERS)
            .max(1)
            - 1;
        let seg = &self.segments[i];
        let len = seg.bar_quarters();
        let rel = beat - seg.beat;
        let mut bars = (rel / len).floor();
        // Snap positions a rounding error short of a bar line onto it.
        if rel - (bars + 1.0) * len > -BAR_EPS_QUARTERS {
            bars += 1.0;
        }
        let within = (rel - bars * len).max(0.0);
        BarBeat {
            bar: seg.first_bar + bars as i32,
            beat: 1.0 + within * seg.denominator as f64 / 4.0,
        }
    }

    /// Quarter-note beat of `bar` and `beat` (1-based, denominator units), or `None` when the
    /// bar is before the first bar, the beat falls outside that bar (beat < 1, or past its
    /// end; the end itself, which is the next bar line, is accepted), or the position lies
    /// before beat 0 (the part of a pickup bar that is not in the file).
    pub fn beat_at_bar_beat(&self, bar: i32, beat: f64) -> Option<f64> {
        if bar < self.first_bar() || !beat.is_finite() || beat < 1.0 {
            return None;
        }
        let i = self.segments.partition_point(|s| s.first_bar <= bar) - 1;
        let seg = &self.segments[i];
        let start = seg.beat + (bar - seg.first_bar) as f64 * seg.bar_quarters();
        let mut end = start + seg.bar_quarters();
        if let Some(next) = self.segments.get(i + 1) {
            end = end.min(next.beat);
        }
        let q = start + (beat - 1.0) * 4.0 / seg.denominator as f64;
        (q <= end + BAR_EPS_QUARTERS && q >= -BAR_EPS_QUARTERS).then_some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: seconds at a tick by summing every tick one at a time (metrical timing).
    fn naive_tick_to_s(tpq: u16, changes: &[(u64, u32)], tick: u64) -> f64 {
        let mut us = DEFAULT_US_PER_QUARTER;
        let mut t = 0.0;
        for k in 0..tick {
            for &(ct, cu) in changes {
                if ct == k {
                    us = cu;
                }
            }
            t += us as f64 * 1e-6 / tpq as f64;
        }
        t
    }

    /// Reference: bar/beat by walking bar lines one bar at a time.
    fn naive_bar_beat(changes: &[(f64, u8, u32)], q: f64) -> BarBeat {
        naive_bar_beat_pickup(changes, 0.0, q)
    }

    /// Reference with a pickup: bar 0 is the full-length bar ending at `pickup`.
    fn naive_bar_beat_pickup(changes: &[(f64, u8, u32)], pickup: f64, q: f64) -> BarBeat {
        let sig_at = |x: f64| {
            let mut s = (4u8, 4u32);
            for &(b, n, d) in changes {
                if b <= x + 1e-9 {
                    s = (n, d);
                }
            }
            s
        };
        let (mut bar, mut start) = if pickup > 0.0 {
            let (n, d) = sig_at(0.0);
            (0, pickup - n as f64 * 4.0 / d as f64)
        } else {
            (1, 0.0)
        };
        loop {
            let (n, d) = sig_at(start.max(0.0));
            let mut end = start + n as f64 * 4.0 / d as f64;
            if let Some(&(b, _, _)) = changes.iter().find(|c| c.0 > start.max(0.0) + 1e-9) {
                end = end.min(b);
            }
            if q < end - 1e-9 {
                return BarBeat {
                    bar,
                    beat: 1.0 + (q - start) * d as f64 / 4.0,
                };
            }
            bar += 1;
            start = end;
        }
    }

    #[test]
    fn default_tempo_is_120_bpm() {
        let m = TempoMap::new(
            TickTiming::Metrical {
                ticks_per_quarter: 480,
            },
            &[],
        )
        .unwrap();
        assert_eq!(m.tick_to_s(960.0), 1.0);
        assert_eq!(m.qpm_at_s(5.0), 120.0);
        assert_eq!(m.s_to_beat(1.5), 3.0);
    }

    #[test]
    fn later_change_at_same_tick_wins() {
        let m = TempoMap::new(
            TickTiming::Metrical {
                ticks_per_quarter: 100,
            },
            &[(0, 1_000_000), (0, 250_000), (100, 500_000)],
        )
        .unwrap();
        assert_eq!(m.segments().len(), 2);
        assert!((m.tick_to_s(100.0) - 0.25).abs() < 1e-12);
        assert!((m.tick_to_s(200.0) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn smpte_beats_follow_tempo_events() {
        // 25 fps x 40 ticks = 1000 ticks/s; 1 s per quarter from tick 2000 (2 s) on.
        let m = TempoMap::new(
            TickTiming::Timecode {
                fps: 25.0,
                ticks_per_frame: 40,
            },
            &[(2000, 1_000_000)],
        )
        .unwrap();
        assert!((m.tick_to_s(3000.0) - 3.0).abs() < 1e-12);
        assert!((m.s_to_beat(2.0) - 4.0).abs() < 1e-12);
        assert!((m.s_to_beat(3.0) - 5.0).abs() < 1e-12);
        assert_eq!(m.qpm_at_s(2.5), 60.0);
    }

    #[test]
    fn rejects_zero_tempo_and_zero_division() {
        let metrical = TickTiming::Metrical {
            ticks_per_quarter: 96,
        };
        assert!(TempoMap::new(metrical, &[(10, 0)]).is_err());
        assert!(TempoMap::new(
            TickTiming::Metrical {
                ticks_per_quarter: 0
            },
            &[]
        )
        .is_err());
        assert!(MeterMap::new(&[(0.0, 3, 6)]).is_err());
        assert!(MeterMap::new(&[(0.0, 0, 4)]).is_err());
    }

    #[test]
    fn meter_changes_restart_bars() {
        // 4/4 for two bars, 3/4 for two bars, then 6/8.
        let m = MeterMap::new(&[(8.0, 3, 4), (14.0, 6, 8)]).unwrap();
        assert_eq!(m.bar_beat_at_beat(0.0), BarBeat { bar: 1, beat: 1.0 });
        assert_eq!(m.bar_beat_at_beat(7.0), BarBeat { bar: 2, beat: 4.0 });
        assert_eq!(m.bar_beat_at_beat(8.0), BarBeat { bar: 3, beat: 1.0 });
        assert_eq!(m.bar_beat_at_beat(11.5), BarBeat { bar: 4, beat: 1.5 });
        assert_eq!(m.bar_beat_at_beat(14.0), BarBeat { bar: 5, beat: 1.0 });
        // 6/8 beats are eighth notes: a quarter into the bar is beat 3.
        assert_eq!(m.bar_beat_at_beat(15.0), BarBeat { bar: 5, beat: 3.0 });
        assert_eq!(m.bar_beat_at_beat(17.0), BarBeat { bar: 6, beat: 1.0 });
        assert_eq!(m.beat_at_bar_beat(5, 3.0), Some(15.0));
        assert_eq!(m.beat_at_bar_beat(4, 4.0), Some(14.0));
        assert_eq!(m.beat_at_bar_beat(4, 4.5), None);
        assert_eq!(m.beat_at_bar_beat(0, 1.0), None);
    }

    #[test]
    fn pickup_bar_is_bar_zero() {
        // 3/4 with a one-quarter upbeat, 4/4 from beat 7 (the start of bar 3).
        let m = MeterMap::with_pickup(&[(0.0, 3, 4), (7.0, 4, 4)], 1.0).unwrap();
        assert_eq!(m.first_bar(), 0);
        assert_eq!(m.bar_beat_at_beat(0.0), BarBeat { bar: 0, beat: 3.0 });
        assert_eq!(m.bar_beat_at_beat(1.0), BarBeat { bar: 1, beat: 1.0 });
        assert_eq!(m.bar_beat_at_beat(6.5), BarBeat { bar: 2, beat: 3.5 });
        assert_eq!(m.bar_beat_at_beat(7.0), BarBeat { bar: 3, beat: 1.0 });
        assert_eq!(m.beat_at_bar_beat(0, 3.0), Some(0.0));
        assert_eq!(m.beat_at_bar_beat(0, 2.0), None, "before the file starts");
        assert_eq!(m.beat_at_bar_beat(3, 2.0), Some(8.0));
        assert!(MeterMap::with_pickup(&[(0.0, 3, 4)], 3.0).is_err());
        assert!(MeterMap::with_pickup(&[(0.0, 4, 4), (0.5, 3, 4)], 1.0).is_err());
        assert!(MeterMap::with_pickup(&[], -1.0).is_err());
    }

    #[test]
    fn mid_bar_change_counts_partial_bar() {
        // 4/4, then 2/4 after 1.5 bars: the half bar is bar 2, 2/4 starts at bar 3.
        let m = MeterMap::new(&[(6.0, 2, 4)]).unwrap();
        assert_eq!(m.bar_beat_at_beat(5.0), BarBeat { bar: 2, beat: 2.0 });
        assert_eq!(m.bar_beat_at_beat(6.0), BarBeat { bar: 3, beat: 1.0 });
        assert_eq!(m.beat_at_bar_beat(2, 3.0), Some(6.0));
        assert_eq!(m.beat_at_bar_beat(2, 3.5), None);
    }

    fn tempo_changes() -> impl Strategy<Value = Vec<(u64, u32)>> {
        prop::collection::vec((0u64..20_000, 100_000u32..2_000_000), 0..8).prop_map(|mut v| {
            v.sort_by_key(|c| c.0);
            v
        })
    }

    fn meter_changes() -> impl Strategy<Value = Vec<(f64, u8, u32)>> {
        prop::collection::vec((0u32..200, 1u8..13, 0u32..4), 0..6).prop_map(|v| {
            let mut v: Vec<(f64, u8, u32)> = v
                .into_iter()
                .map(|(eighths, n, p)| (eighths as f64 * 0.5, n, 1 << (p + 1)))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.dedup_by(|a, b| a.0 == b.0);
            v
        })
    }

    proptest! {
        #[test]
        fn tick_seconds_match_naive_sum(changes in tempo_changes(), tick in 0u64..4000) {
            let m = TempoMap::new(TickTiming::Metrical { ticks_per_quarter: 96 }, &changes).unwrap();
            let naive = naive_tick_to_s(96, &changes, tick);
            prop_assert!((m.tick_to_s(tick as f64) - naive).abs() < 1e-9 * (1.0 + naive));
        }

        #[test]
        fn tempo_round_trips_and_is_monotone(changes in tempo_changes(), a in -5.0f64..400.0, d in 1e-3f64..50.0) {
            let m = TempoMap::new(TickTiming::Metrical { ticks_per_quarter: 480 }, &changes).unwrap();
            let b = a + d;
            prop_assert!(m.s_to_beat(b) > m.s_to_beat(a));
            prop_assert!(m.s_to_tick(b) > m.s_to_tick(a));
            prop_assert!((m.beat_to_s(m.s_to_beat(a)) - a).abs() < 1e-9 * (1.0 + a.abs()));
            prop_assert!((m.tick_to_s(m.s_to_tick(a)) - a).abs() < 1e-9 * (1.0 + a.abs()));
            let q = m.s_to_beat(a);
            prop_assert!((m.tick_to_beat(m.beat_to_tick(q)) - q).abs() < 1e-9 * (1.0 + q.abs()));
        }

        #[test]
        fn bar_beat_matches_naive_walk(changes in meter_changes(), q in 0.0f64..150.0) {
            let m = MeterMap::new(&changes).unwrap();
            let got = m.bar_beat_at_beat(q);
            let want = naive_bar_beat(&changes, q);
            prop_assert_eq!(got.bar, want.bar);
            prop_assert!((got.beat - want.beat).abs() < 1e-6);
        }

        #[test]
        fn pickup_bar_beat_matches_naive_walk(changes in meter_changes(), pickup_eighths in 1u32..8, q in 0.0f64..150.0) {
            let pickup = pickup_eighths as f64 * 0.5;
            // Only pickups that fit before the first full bar and the first change are valid.
            if let Ok(m) = MeterMap::with_pickup(&changes, pickup) {
                let got = m.bar_beat_at_beat(q);
                let want = naive_bar_beat_pickup(&changes, pickup, q);
                prop_assert_eq!(got.bar, want.bar);
                prop_assert!((got.beat - want.beat).abs() < 1e-6);
                let back = m.beat_at_bar_beat(got.bar, got.beat);
                prop_assert!(back.is_some_and(|b| (b - q).abs() < 1e-6));
            }
        }

        #[test]
        fn bar_beat_round_trips_and_is_monotone(changes in meter_changes(), q in 0.0f64..150.0, d in 1e-3f64..20.0) {
            let m = MeterMap::new(&changes).unwrap();
            let bb = m.bar_beat_at_beat(q);
            let back = m.beat_at_bar_beat(bb.bar, bb.beat);
            prop_assert!(back.is_some());
            prop_assert!((back.unwrap_or(f64::NAN) - q).abs() < 1e-6);
            let later = m.bar_beat_at_beat(q + d);
            prop_assert!(later.bar > bb.bar || (later.bar == bb.bar && later.beat > bb.beat));
        }
    }
}
