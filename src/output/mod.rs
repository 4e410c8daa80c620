//! Output stage: events from the follower and the sinks that receive them (OSC over UDP, CSV,
//! the JSON-lines event log, the console, cues and page turns). The core never knows its outputs: it produces [`Event`]s, plain
//! data with the capture timestamp, and the engine hands them to every [`Sink`].

pub mod console;
pub mod csv;
pub mod cues;
pub mod jsonl;
pub mod memory;
pub mod osc;

/// One reported position.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PositionEvent {
    /// Performance frame index.
    pub frame: u64,
    /// Audio time (s) at which the frame's last sample arrived: what a live listener knew then.
    pub perf_time_s: f64,
    /// Score position (s of the reference timeline).
    pub score_time_s: f64,
    /// Score position the performer has certainly reached: as `score_time_s`, but never past
    /// a score onset not heard yet (s of the reference timeline). Cues and pages fire on it.
    pub heard_score_s: f64,
    /// Score position in quarter-note beats from the start (MIDI references; NaN otherwise).
    pub beat: f64,
    /// Bar number, 1-based (MIDI references; 0 otherwise).
    pub bar: i32,
    /// Beat within the bar, 1-based, in units of the time signature's denominator (MIDI; NaN
    /// otherwise).
    pub beat_in_bar: f64,
    /// Tempo ratio: score seconds per performance second.
    pub tempo: f32,
    /// Probability (0-1) that the position is within 300 ms of the performer's (see
    /// [`crate::engine::confidence`]).
    pub confidence: f32,
    /// Spread of the estimate (standard deviation, s of score time).
    pub spread_s: f32,
    /// Wall-clock time since the capture epoch (ns) when the frame's last sample was pushed
    /// into the ring by the audio thread.
    pub capture_wall_ns: u64,
    /// Pass through the bar, 1-based: 2 the second time through a repeat of a MusicXML score
    /// (or of a structure file's sections); 1 otherwise. Added in this version.
    pub pass: u32,
    /// Page of the printed score (1-based, from its page breaks); 0 when the score has no
    /// layout (MIDI, recordings). Added in this version.
    pub page: u32,
    /// System on the page (1-based); 0 without a layout. Added in this version.
    pub system: u32,
    /// The measure's printed label ("12", "4a"); a MIDI score's bar number as text; empty
    /// against a recording. Added in this version.
    pub label: Label,
    /// What the confidence was computed from (for evaluation and diagnosis; not sent).
    pub evidence: crate::engine::confidence::Evidence,
    /// The key followed: semitones the performance is above the score (0-11), -1 while the
    /// key trial runs (the live view shows it; added in this version).
    pub key_shift: i8,
    /// The tuning the extractor assumes (cents from A4 = 440 Hz; estimated from the first
    /// seconds, tracked with `--tuning auto`; added in this version).
    pub tuning_cents: f32,
}

/// A measure label carried by value (the events are `Copy` and cross threads every frame):
/// up to [`Label::CAPACITY`] bytes of UTF-8 inline, a longer label cut at a character
/// boundary. Building one allocates nothing.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Label {
    len: u8,
    bytes: [u8; Label::CAPACITY],
}

impl Label {
    /// Longest label kept whole (bytes); printed measure labels are a few characters.
    pub const CAPACITY: usize = 15;

    /// `text`, cut to [`Label::CAPACITY`] bytes at a character boundary.
    pub fn new(text: &str) -> Self {
        let mut label = Label::default();
        label.push_str(text);
        label
    }

    /// The label's text.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    /// True for the empty label.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push_str(&mut self, text: &str) {
        for c in text.chars() {
            let n = c.len_utf8();
            let at = self.len as usize;
            if at + n > Self::CAPACITY {
                break;
            }
            c.encode_utf8(&mut self.bytes[at..at + n]);
            self.len += n as u8;
        }
    }
}

impl std::fmt::Write for Label {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Label {
    fn from(text: &str) -> Self {
        Label::new(text)
    }
}

/// What the status message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKind {
    /// Following started.
    Start,
    /// Samples were dropped since the last status (the ring was full, or simulated xruns).
    Drops,
    /// Following ended.
    End,
    /// The follower re-located itself after a jump of the performer (`perf_time_s` is when
    /// the jump was confirmed).
    Relocated,
}

impl StatusKind {
    /// The word sent over OSC.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Start => "start",
            StatusKind::Drops => "drops",
            StatusKind::End => "end",
            StatusKind::Relocated => "relocated",
        }
    }
}

/// A status change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatusEvent {
    /// What happened.
    pub kind: StatusKind,
    /// Audio time (s).
    pub perf_time_s: f64,
    /// Samples dropped since the start.
    pub dropped_samples: u64,
    /// Frames processed since the start.
    pub frames: u64,
}

/// A theme occurrence found in the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ThemeEvent {
    /// Theme id.
    pub theme_id: String,
    /// Start of the occurrence (s of performance audio).
    pub start_s: f64,
    /// End of the occurrence (s of performance audio).
    pub end_s: f64,
    /// Match score, higher is more confident.
    pub score: f32,
}

/// A jump the follower made to follow the performer (a skip, a repeat, a change of key), sent
/// just before the first position after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelocationEvent {
    /// Performance time at which the jump was confirmed (s).
    pub perf_time_s: f64,
    /// Score position the follower left (s).
    pub from_score_s: f64,
    /// Score position it continued from (s).
    pub to_score_s: f64,
    /// Confidence of the position it continued from (0-1).
    pub confidence: f32,
    /// Key it continued in (semitones the performance is above the score, 0-11).
    pub key_shift: usize,
    /// Wall-clock time since the capture epoch (ns) when the frame's last sample was pushed.
    pub capture_wall_ns: u64,
}

/// One place the performer may be at, among several that fit equally well.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Score position (s).
    pub score_s: f64,
    /// Bar (1-based), 0 without a score.
    pub bar: i32,
}

/// The follower cannot yet tell several places apart (music the piece has more than once);
/// it follows the most plausible and says which others fit.
#[derive(Clone, Debug, PartialEq)]
pub struct AmbiguousEvent {
    /// Performance time (s).
    pub perf_time_s: f64,
    /// The places that fit, the one followed first.
    pub candidates: Vec<Candidate>,
    /// Wall-clock time since the capture epoch (ns) when the frame's last sample was pushed.
    pub capture_wall_ns: u64,
}

/// Everything a sink may receive.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A position (one per frame).
    Position(PositionEvent),
    /// A status change.
    Status(StatusEvent),
    /// A theme occurrence.
    Theme(ThemeEvent),
    /// A jump of the follower (also reported as a `relocated` status).
    Relocation(RelocationEvent),
    /// Several places fit equally well.
    Ambiguous(AmbiguousEvent),
}

/// A receiver of events. Sinks run on the output thread, never on the audio thread.
pub trait Sink: Send {
    /// Handle one event. An error is reported once by the engine; following goes on.
    fn handle(&mut self, event: &Event) -> crate::Result<()>;
    /// Flush buffered output (called at the end).
    fn finish(&mut self) -> crate::Result<()> {
        Ok(())
    }
    /// What became of the datagrams this sink sent, per target (called after
    /// [`finish`](Sink::finish); sinks that send nothing report nothing). Added in this
    /// version.
    fn delivery(&self) -> Vec<osc::TargetReport> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn labels_keep_short_text_and_cut_long_text_at_a_character() {
        assert_eq!(Label::new("4a").as_str(), "4a");
        assert!(Label::default().is_empty());
        assert_eq!(Label::new("0123456789abcdefgh").as_str(), "0123456789abcde");
        // 'é' is two bytes: the 15th byte would split it.
        assert_eq!(Label::new("12345678901234é").as_str(), "12345678901234");
        let mut l = Label::default();
        let _ = write!(l, "{}", -12);
        assert_eq!(l.to_string(), "-12");
        assert_eq!(format!("{l:?}"), "\"-12\"");
    }

    proptest::proptest! {
        #[test]
        fn a_label_is_a_prefix_of_its_text(text in "\\PC{0,20}") {
            let l = Label::new(&text);
            proptest::prop_assert!(text.starts_with(l.as_str()));
            proptest::prop_assert!(l.as_str().len() <= Label::CAPACITY);
            proptest::prop_assert!(text.len() <= Label::CAPACITY || l.as_str().len() + 4 > Label::CAPACITY);
        }
    }
}
