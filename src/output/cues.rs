//! Cues: OSC messages fired once when the followed position reaches a point of the score
//! (lights, sound cues, page turns).
//!
//! Three layers, so the firing rules are tested without sockets:
//! - [`CueList`]: a cue file (TOML) or a page file (CSV) parsed and validated against the
//!   score before any audio starts; every error names the file and the line.
//! - [`CueState`]: the pure firing logic, one [`CueState::update`] per position.
//! - [`CueSink`]: an [`output::Sink`](super::Sink) that runs the logic on every position,
//!   sends the fired cues' messages and logs each firing with its capture time.
//!
//! # Cue file
//!
//! ```toml
//! [settings]              # optional; the values shown are the defaults
//! min_confidence = 0.02   # positions less confident than this are ignored
//! hysteresis_s = 0.3      # how far before a fired cue a confirmed jump back must land to re-arm it
//! jump_s = 1.0            # a step of more score s than this in one frame is a jump
//!
//! [targets]               # optional names for HOST:PORT receivers
//! qlab = "127.0.0.1:53000"
//!
//! [defaults]              # optional, for cues that do not say
//! targets = ["qlab"]
//! lead_ms = 0
//! on_skip = "drop"
//!
//! [[cue]]
//! id = "verse2-lights"
//! bar = 3                 # or: score_s = 6.67, marker = "B" (MIDI marker/cue point),
//!                         # rehearsal = "B" or text = "Tutti" (a MusicXML score's marks)
//! beat = 1.0              # with bar; default 1
//! pass = 2                # with bar, rehearsal or text: the second time through a repeat
//! lead_ms = 150           # fire this long (performance time, at the current tempo) early
//! targets = ["qlab", "192.168.1.30:7000"]
//! on_skip = "fire"        # when a forward jump passes the cue: fire it (in order) or drop it
//! [[cue.message]]
//! address = "/cue/12/go"
//! args = [1, 0.5, "warm", true]   # int, float, string, bool (TOML types give OSC types)
//! ```
//!
//! # Firing rules ([`CueState`])
//!
//! With `p = heard_score_s + lead_s * tempo` (the position predicted `lead_s` of performance
//! time ahead at the current tempo), a cue at score time `s`:
//! - fires once when `p >= s`, if it is armed; positions below `min_confidence` are ignored;
//! - once fired it stays disarmed for the rest of the pass: the position drifting or
//!   wobbling back, however far, never re-arms it. Only a confirmed jump back re-arms it, one
//!   that lands more than `hysteresis_s` before `s`: a relocation of the follower (its
//!   `relocated` event), a seek or reset by the remote control, or a step back of more than
//!   `jump_s` in one frame (a written repeat taken under a structure file, whose positions are
//!   reported in the score as written). The position right after it is the landing;
//! - when it is crossed by a jump (the score position advanced more than `jump_s` since the
//!   previous confident position, or on the first confident position) and lies more than
//!   `hysteresis_s` before the new score position, it was skipped over: `on_skip = "fire"`
//!   fires it (cues fire in score order), `"drop"` disarms it silently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rosc::{OscMessage, OscPacket, OscType};
use serde::Deserialize;
use toml::Spanned;

use super::osc::{parse_target, SendOptions, TargetReport, UdpSender};
use super::{Event, PositionEvent, Sink};
use crate::score::musicxml::{MarkKind, ScoreMark};
use crate::score::reference::Reference;
use crate::score::Score;
use crate::Error;

/// Longest accepted lead time (ms).
pub const MAX_LEAD_MS: f64 = 60_000.0;

/// What to do with a cue that a forward jump skipped over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSkip {
    /// Fire it (in score order with the other skipped cues).
    Fire,
    /// Disarm it without sending anything.
    #[default]
    Drop,
}

/// Tuning of the firing rules (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CueSettings {
    /// Positions with a lower confidence are ignored.
    pub min_confidence: f32,
    /// How far before a fired cue (score s) a confirmed jump back must land to re-arm it.
    pub hysteresis_s: f64,
    /// A step of more score s than this between two confident positions is a jump (forward:
    /// cues passed are skipped over; back: a confirmed jump that re-arms cues).
    pub jump_s: f64,
}

impl Default for CueSettings {
    fn default() -> Self {
        Self {
            min_confidence: 0.02,
            hysteresis_s: 0.3,
            jump_s: 1.0,
        }
    }
}

/// The part of a cue the firing logic needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CuePoint {
    /// Score time of the cue (s).
    pub score_s: f64,
    /// Lead time (s of performance time).
    pub lead_s: f64,
    /// Skipped-over behaviour.
    pub on_skip: OnSkip,
}

/// One cue of a [`CueList`].
#[derive(Clone, Debug, PartialEq)]
pub struct Cue {
    /// Unique id (for logs and `/scorefollow/fire`).
    pub id: String,
    /// Where and how it fires.
    pub point: CuePoint,
    /// Receivers of its messages.
    pub targets: Vec<SocketAddr>,
    /// The messages, sent in order to every target.
    pub messages: Vec<OscMessage>,
    /// Line of the cue in its file (1-based).
    pub line: usize,
    /// The page it turns to, for a page turn of a page file (added in this version).
    pub page: Option<i32>,
}

/// A validated list of cues, sorted by score time (ties keep file order).
#[derive(Clone, Debug, PartialEq)]
pub struct CueList {
    /// The cues.
    pub cues: Vec<Cue>,
    /// Firing rules.
    pub settings: CueSettings,
    /// The file they came from.
    pub path: PathBuf,
}

/// What a cue position is resolved against: the score (bars, markers) when there is one,
/// and the length of the reference.
#[derive(Clone, Copy)]
pub struct Timeline<'a> {
    /// The MIDI score (None for an audio reference: only `score_s` positions then).
    pub score: Option<&'a Score>,
    /// Length of the reference (s).
    pub duration_s: f64,
}

impl<'a> Timeline<'a> {
    /// The timeline of a reference.
    pub fn of(reference: &'a Reference) -> Self {
        Self {
            score: reference.score(),
            duration_s: reference.duration_s(),
        }
    }

    /// Score time (s) of `bar` and `beat` (the first time the bar is played), or why it
    /// does not exist.
    pub fn s_at_bar_beat(&self, bar: i64, beat: f64) -> Result<f64, String> {
        self.s_at_bar_beat_pass(bar, beat, 1)
    }

    /// Score time (s) of `bar` and `beat` on pass `pass` (1-based: 2 is the second time
    /// through a repeat of a MusicXML score), or why it does not exist.
    pub fn s_at_bar_beat_pass(&self, bar: i64, beat: f64, pass: i64) -> Result<f64, String> {
        let score = self.score.ok_or_else(|| {
            "bar positions need a score; this reference is audio (use score_s)".to_string()
        })?;
        let bars = score.bar_count();
        let first = score.first_bar();
        let in_range = i32::try_from(bar)
            .ok()
            .filter(|b| (first..=bars).contains(b));
        let Some(b) = in_range else {
            return Err(format!(
                "bar {bar} beat {beat} is not in the score (bars {first} to {bars})"
            ));
        };
        let passes = match score.printed.as_deref() {
            Some(layout) => layout.measures.iter().filter(|m| m.bar == b).count(),
            None => 1,
        };
        let pass_ok = u32::try_from(pass)
            .ok()
            .filter(|&p| p >= 1 && p as usize <= passes);
        let Some(p) = pass_ok else {
            return Err(format!(
                "bar {bar} is played {passes} time{} in the score: pass {pass} does not exist",
                if passes == 1 { "" } else { "s" }
            ));
        };
        match score.s_at_bar_beat_pass(b, beat, p) {
            Some(s) if s <= self.duration_s + 1e-9 => Ok(s),
            _ => Err(format!(
                "bar {bar} beat {beat} is not in the score (bars {first} to {bars})"
            )),
        }
    }

    /// Score time (s) of a MusicXML score's rehearsal mark (`rehearsal`) or words (`text`,
    /// case-insensitive) on pass `pass` of its measure, or why there is none.
    pub fn s_at_mark(&self, kind: MarkKind, text: &str, pass: i64) -> Result<f64, String> {
        let what = match kind {
            MarkKind::Rehearsal => "rehearsal mark",
            MarkKind::Words => "words",
        };
        let layout = self
            .score
            .and_then(|s| s.printed.as_deref().map(|l| (s, l)));
        let Some((score, layout)) = layout else {
            return Err(format!(
                "{what} '{text}': the score has no printed marks (a MusicXML score has them; \
                 a MIDI file's markers are cued with marker)"
            ));
        };
        let found: Vec<&ScoreMark> = match kind {
            MarkKind::Rehearsal => layout.rehearsal_marks(text).collect(),
            MarkKind::Words => layout.words(text).collect(),
        };
        if let Some(m) = found.iter().find(|m| i64::from(m.pass) == pass) {
            return Ok(score.s_at_beat(m.beat));
        }
        if !found.is_empty() {
            return Err(format!(
                "{what} '{text}' is not played on pass {pass} (passes {})",
                found
                    .iter()
                    .map(|m| m.pass.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut known: Vec<&str> = layout
            .marks
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.text.as_str())
            .collect();
        known.dedup();
        Err(format!(
            "no {what} '{text}' in the score (it has {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known
                    .iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ))
    }
}

/// Line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    settings: Option<Spanned<CueSettings>>,
    #[serde(default)]
    targets: std::collections::BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    defaults: Option<RawDefaults>,
    #[serde(default)]
    cue: Vec<Spanned<RawCue>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    targets: Option<Spanned<Vec<Spanned<String>>>>,
    lead_ms: Option<Spanned<f64>>,
    on_skip: Option<OnSkip>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCue {
    id: Spanned<String>,
    bar: Option<Spanned<i64>>,
    beat: Option<Spanned<f64>>,
    pass: Option<Spanned<i64>>,
    score_s: Option<Spanned<f64>>,
    marker: Option<Spanned<String>>,
    rehearsal: Option<Spanned<String>>,
    text: Option<Spanned<String>>,
    lead_ms: Option<Spanned<f64>>,
    targets: Option<Spanned<Vec<Spanned<String>>>>,
    on_skip: Option<OnSkip>,
    #[serde(default)]
    message: Vec<Spanned<RawMessage>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    address: Spanned<String>,
    #[serde(default)]
    args: Vec<Spanned<toml::Value>>,
}

/// Check an OSC address a cue sends to: `/` then printable ASCII parts without spaces or the
/// pattern characters a receiver would expand (`#*,?[]{}`).
pub fn check_address(addr: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_graphic() && !"#*,?[]{}".contains(c);
    if !addr.starts_with('/') {
        return Err(format!("OSC address '{addr}' must start with '/'"));
    }
    if addr.len() < 2 || addr.contains("//") || addr.ends_with('/') {
        return Err(format!("OSC address '{addr}' has an empty part"));
    }
    if let Some(c) = addr.chars().find(|&c| !ok_char(c)) {
        return Err(format!(
            "OSC address '{addr}' contains '{}', which is not allowed (spaces, control or pattern characters #*,?[]{{}})",
            c.escape_default()
        ));
    }
    Ok(())
}

/// OSC argument of a TOML value: integer (32-bit), float, string or bool.
fn osc_arg(v: &toml::Value) -> Result<OscType, String> {
    match v {
        toml::Value::Integer(i) => i32::try_from(*i)
            .map(OscType::Int)
            .map_err(|_| format!("integer argument {i} does not fit OSC's 32 bits")),
        toml::Value::Float(f) if f.is_finite() => Ok(OscType::Float(*f as f32)),
        toml::Value::Float(f) => Err(format!("float argument {f} is not finite")),
        toml::Value::String(s) => Ok(OscType::String(s.clone())),
        toml::Value::Boolean(b) => Ok(OscType::Bool(*b)),
        other => Err(format!(
            "argument of type {} is not an int, float, string or bool",
            other.type_str()
        )),
    }
}

fn check_lead_ms(ms: f64) -> Result<f64, String> {
    if ms.is_finite() && (0.0..=MAX_LEAD_MS).contains(&ms) {
        Ok(ms / 1000.0)
    } else {
        Err(format!("lead_ms {ms} must be from 0 to {MAX_LEAD_MS}"))
    }
}

/// What a cue takes from `[defaults]` when it does not say.
struct CueDefaults {
    targets: Option<Vec<SocketAddr>>,
    lead_s: f64,
    on_skip: OnSkip,
}

/// The state of reading one cue file: the text (for line numbers), the score it is checked
/// against and the named targets.
struct CueFileParser<'a> {
    text: &'a str,
    path: &'a Path,
    timeline: Timeline<'a>,
    named: std::collections::BTreeMap<String, SocketAddr>,
}

impl CueFileParser<'_> {
    /// An error at byte `offset` of the file.
    fn fail(&self, offset: usize, reason: String) -> Error {
        Error::Parse {
            path: self.path.to_path_buf(),
            line: line_of(self.text, offset),
            reason,
        }
    }

    fn settings(&self, raw: Option<Spanned<CueSettings>>) -> crate::Result<CueSettings> {
        let Some(s) = raw else {
            return Ok(CueSettings::default());
        };
        let v = *s.get_ref();
        let ok = (0.0..=1.0).contains(&v.min_confidence)
            && v.hysteresis_s.is_finite()
            && v.hysteresis_s >= 0.0
            && v.jump_s.is_finite()
            && v.jump_s > 0.0;
        if !ok {
            return Err(self.fail(
                s.span().start,
                "settings: min_confidence must be in [0, 1], hysteresis_s >= 0, jump_s > 0".into(),
            ));
        }
        Ok(v)
    }

    fn defaults(&self, raw: RawDefaults) -> crate::Result<CueDefaults> {
        Ok(CueDefaults {
            targets: raw.targets.as_ref().map(|t| self.targets(t)).transpose()?,
            lead_s: match &raw.lead_ms {
                Some(ms) => {
                    check_lead_ms(*ms.get_ref()).map_err(|r| self.fail(ms.span().start, r))?
                }
                None => 0.0,
            },
            on_skip: raw.on_skip.unwrap_or_default(),
        })
    }

    /// A list of targets: names from `[targets]` or HOST:PORT.
    fn targets(&self, list: &Spanned<Vec<Spanned<String>>>) -> crate::Result<Vec<SocketAddr>> {
        if list.get_ref().is_empty() {
            return Err(self.fail(list.span().start, "targets is empty".into()));
        }
        list.get_ref()
            .iter()
            .map(|t| match self.named.get(t.get_ref()) {
                Some(a) => Ok(*a),
                None if t.get_ref().contains(':') => {
                    parse_target(t.get_ref()).map_err(|e| self.fail(t.span().start, e.to_string()))
                }
                None => Err(self.fail(
                    t.span().start,
                    format!(
                        "unknown target '{}': give HOST:PORT or a name from [targets]",
                        t.get_ref()
                    ),
                )),
            })
            .collect()
    }

    /// One `[[cue]]`, checked against the score; `seen` maps the ids so far to their lines.
    fn cue(
        &self,
        raw: &Spanned<RawCue>,
        defaults: &CueDefaults,
        seen: &mut std::collections::HashMap<String, usize>,
    ) -> crate::Result<Cue> {
        let at = raw.span().start;
        let c = raw.get_ref();
        let id = c.id.get_ref().trim().to_string();
        if id.is_empty() {
            return Err(self.fail(c.id.span().start, "empty cue id".into()));
        }
        let id_at = c.id.span().start;
        if let Some(first) = seen.insert(id.clone(), line_of(self.text, id_at)) {
            return Err(self.fail(
                id_at,
                format!("duplicate cue id '{id}' (first on line {first})"),
            ));
        }
        let score_s = self.position(c, &id, at)?;
        let lead_s = match &c.lead_ms {
            Some(ms) => check_lead_ms(*ms.get_ref())
                .map_err(|r| self.fail(ms.span().start, format!("cue '{id}': {r}")))?,
            None => defaults.lead_s,
        };
        let targets = match (&c.targets, &defaults.targets) {
            (Some(t), _) => self.targets(t)?,
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Err(self.fail(
                    at,
                    format!("cue '{id}' has no targets (give targets, or [defaults] targets)"),
                ))
            }
        };
        if c.message.is_empty() {
            return Err(self.fail(at, format!("cue '{id}' has no [[cue.message]]")));
        }
        let messages = c
            .message
            .iter()
            .map(|m| self.message(m.get_ref(), &id))
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(Cue {
            point: CuePoint {
                score_s,
                lead_s,
                on_skip: c.on_skip.unwrap_or(defaults.on_skip),
            },
            id,
            targets,
            messages,
            line: line_of(self.text, at),
            page: None,
        })
    }

    /// Where cue `id` (starting at byte `at`) is, in score seconds: exactly one of a bar (and
    /// beat, pass), a rehearsal mark or words (and pass), score seconds, a MIDI marker.
    fn position(&self, c: &RawCue, id: &str, at: usize) -> crate::Result<f64> {
        let given = c.bar.is_some() as u8
            + c.score_s.is_some() as u8
            + c.marker.is_some() as u8
            + c.rehearsal.is_some() as u8
            + c.text.is_some() as u8;
        if given != 1 {
            return Err(self.fail(
                at,
                format!(
                    "cue '{id}': give exactly one position: bar (and beat), score_s, marker, \
                     rehearsal or text"
                ),
            ));
        }
        if let (Some(b), None) = (&c.beat, &c.bar) {
            return Err(self.fail(b.span().start, format!("cue '{id}': beat needs a bar")));
        }
        if let Some(p) = &c.pass {
            if c.score_s.is_some() || c.marker.is_some() {
                return Err(self.fail(
                    p.span().start,
                    format!("cue '{id}': pass goes with bar, rehearsal or text"),
                ));
            }
        }
        let pass = c.pass.as_ref().map_or(1, |p| *p.get_ref());
        let pass_at = c.pass.as_ref().map(|p| p.span().start);
        let timeline = &self.timeline;
        if let Some(bar) = &c.bar {
            let beat = c.beat.as_ref().map(|b| *b.get_ref()).unwrap_or(1.0);
            return timeline
                .s_at_bar_beat_pass(*bar.get_ref(), beat, pass)
                .map_err(|r| {
                    self.fail(
                        pass_at.unwrap_or(bar.span().start),
                        format!("cue '{id}': {r}"),
                    )
                });
        }
        if let Some((kind, t)) = c
            .rehearsal
            .as_ref()
            .map(|t| (MarkKind::Rehearsal, t))
            .or(c.text.as_ref().map(|t| (MarkKind::Words, t)))
        {
            return timeline
                .s_at_mark(kind, t.get_ref().trim(), pass)
                .map_err(|r| self.fail(t.span().start, format!("cue '{id}': {r}")));
        }
        if let Some(s) = &c.score_s {
            let v = *s.get_ref();
            if !(v.is_finite() && (0.0..=timeline.duration_s).contains(&v)) {
                return Err(self.fail(
                    s.span().start,
                    format!(
                        "cue '{id}': score_s {v} is outside the score (0 to {:.3} s)",
                        timeline.duration_s
                    ),
                ));
            }
            return Ok(v);
        }
        // Exactly one position was given: the marker.
        let m = c
            .marker
            .as_ref()
            .ok_or_else(|| self.fail(at, format!("cue '{id}': no position")))?;
        let name = m.get_ref().trim();
        let markers = timeline.score.map(|s| s.markers.as_slice()).unwrap_or(&[]);
        match markers.iter().find(|mk| mk.name == name) {
            Some(mk) => Ok(mk.time_s),
            None => {
                let known: Vec<&str> = markers.iter().map(|mk| mk.name.as_str()).collect();
                Err(self.fail(
                    m.span().start,
                    format!(
                        "cue '{id}': unknown marker '{name}' (the score has {})",
                        if known.is_empty() {
                            "no markers".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ))
            }
        }
    }

    /// One `[[cue.message]]` of cue `id`.
    fn message(&self, m: &RawMessage, id: &str) -> crate::Result<OscMessage> {
        check_address(m.address.get_ref())
            .map_err(|r| self.fail(m.address.span().start, format!("cue '{id}': {r}")))?;
        let args = m
            .args
            .iter()
            .map(|a| {
                osc_arg(a.get_ref())
                    .map_err(|r| self.fail(a.span().start, format!("cue '{id}': {r}")))
            })
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(OscMessage {
            addr: m.address.get_ref().clone(),
            args,
        })
    }
}

impl CueList {
    /// Read and validate a cue file against `reference`.
    pub fn load(path: &Path, reference: &Reference) -> crate::Result<CueList> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path, Timeline::of(reference))
    }

    /// Parse and validate cue-file text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, timeline: Timeline<'_>) -> crate::Result<CueList> {
        let mut p = CueFileParser {
            text,
            path,
            timeline,
            named: std::collections::BTreeMap::new(),
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            p.fail(at, e.message().trim().to_string())
        })?;
        let settings = p.settings(raw.settings)?;
        for (name, addr) in &raw.targets {
            let a = parse_target(addr.get_ref())
                .map_err(|e| p.fail(addr.span().start, e.to_string()))?;
            p.named.insert(name.clone(), a);
        }
        let defaults = p.defaults(raw.defaults.unwrap_or_default())?;
        let mut cues = Vec::with_capacity(raw.cue.len());
        let mut seen = std::collections::HashMap::new();
        for c in &raw.cue {
            cues.push(p.cue(c, &defaults, &mut seen)?);
        }
        cues.sort_by(|a, b| a.point.score_s.total_cmp(&b.point.score_s));
        Ok(CueList {
            cues,
            settings,
            path: path.to_path_buf(),
        })
    }

    /// Page turns from a page file (CSV lines `page,first_bar`; an optional header line,
    /// blank lines and `#` comments are skipped). Each page becomes a cue `page-N` sending
    /// `/scorefollow/page` (page i) to `targets`, `lead_s` early; pages skipped over still
    /// fire, so the last one shown is right.
    pub fn load_pages(
        path: &Path,
        reference: &Reference,
        lead_s: f64,
        targets: Vec<SocketAddr>,
    ) -> crate::Result<CueList> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse_pages(&text, path, Timeline::of(reference), lead_s, targets)
    }

    /// Parse page-file text (see [`CueList::load_pages`]).
    pub fn parse_pages(
        text: &str,
        path: &Path,
        timeline: Timeline<'_>,
        lead_s: f64,
        targets: Vec<SocketAddr>,
    ) -> crate::Result<CueList> {
        let fail = |line: usize, reason: String| Error::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        };
        if !(lead_s.is_finite() && (0.0..=MAX_LEAD_MS / 1000.0).contains(&lead_s)) {
            return Err(Error::invalid(
                "page lead time (s)",
                lead_s.to_string(),
                "must be from 0 to 60 s",
            ));
        }
        if targets.is_empty() {
            return Err(Error::invalid(
                "page file",
                path.display().to_string(),
                "page turns need an OSC target (--osc HOST:PORT)",
            ));
        }
        let mut cues: Vec<Cue> = Vec::new();
        let mut last: Option<(i64, i64)> = None;
        for (i, raw_line) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw_line.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            let parsed = match fields.as_slice() {
                [p, b] => p.parse::<i64>().ok().zip(b.parse::<i64>().ok()),
                _ => None,
            };
            let Some((page, bar)) = parsed else {
                if cues.is_empty() && last.is_none() && l.chars().any(|c| c.is_ascii_alphabetic()) {
                    // A header line such as "page,first_bar".
                    last = Some((0, i64::MIN));
                    continue;
                }
                return Err(fail(
                    line,
                    format!("expected 'page,first_bar' (two integers), got '{l}'"),
                ));
            };
            if !(1..=i32::MAX as i64).contains(&page) {
                return Err(fail(line, format!("page {page} must be 1 or more")));
            }
            if let Some((lp, lb)) = last.filter(|l| l.0 > 0) {
                if page <= lp || bar <= lb {
                    return Err(fail(
                        line,
                        format!("pages and bars must increase (page {page} bar {bar} after page {lp} bar {lb})"),
                    ));
                }
            }
            let score_s = timeline
                .s_at_bar_beat(bar, 1.0)
                .map_err(|r| fail(line, format!("page {page}: {r}")))?;
            last = Some((page, bar));
            cues.push(Cue {
                id: format!("page-{page}"),
                point: CuePoint {
                    score_s,
                    lead_s,
                    on_skip: OnSkip::Fire,
                },
                targets: targets.clone(),
                messages: vec![OscMessage {
                    addr: super::osc::address::PAGE.into(),
                    args: vec![OscType::Int(page as i32)],
                }],
                line,
                page: Some(page as i32),
            });
        }
        if cues.is_empty() {
            return Err(fail(1, "no pages (expected lines 'page,first_bar')".into()));
        }
        Ok(CueList {
            cues,
            settings: CueSettings::default(),
            path: path.to_path_buf(),
        })
    }

    /// Page turns from the score's own page breaks (a MusicXML score with more than one
    /// page; None otherwise): every entry into a page in performance order (turning back
    /// for a repeat included) becomes a cue `page-N` (`page-N-K` for its K-th entry) sending
    /// `/scorefollow/page` (page i) to `targets`, `lead_s` early, as a page file's would; a
    /// turn re-arms when the position falls back by half the shortest page (score s).
    pub fn score_pages(
        reference: &Reference,
        lead_s: f64,
        targets: Vec<SocketAddr>,
    ) -> crate::Result<Option<CueList>> {
        let Some(score) = reference.score() else {
            return Ok(None);
        };
        let Some(layout) = score.printed.as_deref() else {
            return Ok(None);
        };
        if layout.page_count < 2 || layout.pages.is_empty() {
            return Ok(None);
        }
        if !(lead_s.is_finite() && (0.0..=MAX_LEAD_MS / 1000.0).contains(&lead_s)) {
            return Err(Error::invalid(
                "page lead time (s)",
                lead_s.to_string(),
                "must be from 0 to 60 s",
            ));
        }
        let mut entries: std::collections::HashMap<u32, usize> = Default::default();
        let mut cues: Vec<Cue> = Vec::with_capacity(layout.pages.len());
        for p in &layout.pages {
            let k = entries.entry(p.page).or_insert(0);
            *k += 1;
            let line = layout
                .measures
                .get(p.measure)
                .and_then(|m| layout.printed.get(m.printed))
                .map_or(0, |m| m.line);
            let page = i32::try_from(p.page).unwrap_or(i32::MAX);
            cues.push(Cue {
                id: if *k == 1 {
                    format!("page-{page}")
                } else {
                    format!("page-{page}-{k}")
                },
                point: CuePoint {
                    score_s: score.s_at_beat(p.beat).min(reference.duration_s()),
                    lead_s,
                    on_skip: OnSkip::Fire,
                },
                targets: targets.clone(),
                messages: vec![OscMessage {
                    addr: super::osc::address::PAGE.into(),
                    args: vec![OscType::Int(page)],
                }],
                line,
                page: Some(page),
            });
        }
        // A page turn re-arms only when the position falls back by half the shortest page
        // (a restart), not when the lead-time prediction sags with the tempo estimate.
        let shortest_s = cues
            .windows(2)
            .map(|w| w[1].point.score_s - w[0].point.score_s)
            .filter(|d| *d > 0.0)
            .fold(f64::INFINITY, f64::min);
        let defaults = CueSettings::default();
        let settings = CueSettings {
            hysteresis_s: if shortest_s.is_finite() {
                defaults.hysteresis_s.max(shortest_s / 2.0)
            } else {
                defaults.hysteresis_s
            },
            ..defaults
        };
        Ok(Some(CueList {
            cues,
            settings,
            path: score.path.clone(),
        }))
    }

    /// Index of the cue with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.cues.iter().position(|c| c.id == id)
    }
}

/// A cue fired by [`CueState::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firing {
    /// Index of the cue.
    pub index: usize,
    /// It was skipped over by a jump (and fires because its `on_skip` says so).
    pub skipped: bool,
}

/// The firing logic: which cues are armed, and the last confident position.
#[derive(Clone, Debug)]
pub struct CueState {
    points: Vec<CuePoint>,
    armed: Vec<bool>,
    settings: CueSettings,
    last_score_s: Option<f64>,
    /// A confirmed jump was announced: the next confident position is where it landed.
    landing: bool,
}

impl CueState {
    /// All cues armed; the first confident position counts as a jump (from nowhere), so cues
    /// well before it are treated as skipped.
    pub fn new(points: Vec<CuePoint>, settings: CueSettings) -> Self {
        let n = points.len();
        Self {
            points,
            armed: vec![true; n],
            settings,
            last_score_s: None,
            landing: false,
        }
    }

    /// Is cue `index` armed?
    pub fn is_armed(&self, index: usize) -> bool {
        self.armed.get(index).copied().unwrap_or(false)
    }

    /// Disarm cue `index` (fired by hand); it re-arms like any fired cue, after a confirmed
    /// jump back before it.
    pub fn disarm(&mut self, index: usize) {
        if let Some(a) = self.armed.get_mut(index) {
            *a = false;
        }
    }

    /// Take one position: `score_s` (s), `tempo` (score s per performance s), `confidence`.
    /// Appends the cues that fire, in score order, to `fired` (cleared first).
    pub fn update(&mut self, score_s: f64, tempo: f32, confidence: f32, fired: &mut Vec<Firing>) {
        fired.clear();
        if confidence.is_nan() || confidence < self.settings.min_confidence || !score_s.is_finite()
        {
            return;
        }
        // A wild tempo estimate must not throw lead-timed cues far ahead.
        let tempo = if tempo.is_finite() {
            (tempo as f64).clamp(0.25, 4.0)
        } else {
            1.0
        };
        let jump = self
            .last_score_s
            .is_none_or(|prev| score_s - prev > self.settings.jump_s);
        let landed = std::mem::take(&mut self.landing)
            || self
                .last_score_s
                .is_some_and(|prev| prev - score_s > self.settings.jump_s);
        let h = self.settings.hysteresis_s;
        for (index, (pt, armed)) in self.points.iter().zip(self.armed.iter_mut()).enumerate() {
            if !*armed {
                // Only a confirmed jump back re-arms: a position that drifts back (a wobble
                // of the aligner, a slow passage misjudged) is still the same pass.
                if landed && score_s < pt.score_s - h {
                    *armed = true;
                } else {
                    continue;
                }
            }
            let p = score_s + pt.lead_s * tempo;
            if p >= pt.score_s {
                *armed = false;
                // Judged on the followed position itself: a cue reached only through its
                // lead time was not jumped over.
                let skipped = jump && pt.score_s < score_s - h;
                if !skipped || pt.on_skip == OnSkip::Fire {
                    fired.push(Firing { index, skipped });
                }
            }
        }
        self.last_score_s = Some(score_s);
    }

    /// A confirmed jump (a relocation of the follower): the next confident position is where
    /// it landed, and cues more than `hysteresis_s` after it re-arm.
    pub fn jumped(&mut self) {
        self.landing = true;
    }

    /// Forget the last position (after a seek or reset): the next one counts as a jump, and
    /// as a confirmed landing ([`CueState::jumped`]).
    pub fn forget_position(&mut self) {
        self.last_score_s = None;
        self.landing = true;
    }
}

/// One fired cue, as logged.
#[derive(Clone, Debug, PartialEq)]
pub struct FiredCue {
    /// Cue id.
    pub id: String,
    /// Cue position (score s).
    pub cue_score_s: f64,
    /// Followed position when it fired (score s); NaN for a manual fire.
    pub at_score_s: f64,
    /// Performance time of the position that fired it (s); NaN for a manual fire.
    pub perf_time_s: f64,
    /// Capture time of that position (ns since the capture epoch); 0 for a manual fire.
    pub capture_wall_ns: u64,
    /// When its messages were sent (ns since the capture epoch).
    pub sent_wall_ns: u64,
    /// Fired because a jump skipped over it.
    pub skipped: bool,
    /// Fired by hand (`/scorefollow/fire`).
    pub manual: bool,
    /// The page turned to, for a page turn (added in this version).
    pub page: Option<i32>,
}

/// Shared log of fired cues.
pub type FiredLog = Arc<Mutex<Vec<FiredCue>>>;

/// Told of every firing of a cue list as it happens, in firing order: the JSON-lines event
/// log, the `--cue-log` file. Firings by the follower arrive on the output thread, right
/// after the position that fired them has been handed to the sinks before the cue sink;
/// firings by hand arrive on the control thread.
pub trait FiringObserver: Send + Sync {
    /// One cue fired. An error is reported by the engine like a sink's (once; following goes
    /// on).
    fn fired(&self, cue: &FiredCue) -> crate::Result<()>;
    /// Make everything written so far durable (called when the cue sink finishes).
    fn flush(&self) -> crate::Result<()> {
        Ok(())
    }
}

struct CueCore {
    list: CueList,
    state: CueState,
    sender: UdpSender,
    fired: Vec<Firing>,
    epoch: Instant,
    log: FiredLog,
    observers: Vec<Arc<dyn FiringObserver>>,
}

impl CueCore {
    /// Send cue `index`'s messages and log the firing; the first error of an observer.
    fn fire(
        &mut self,
        index: usize,
        p: Option<&PositionEvent>,
        skipped: bool,
    ) -> crate::Result<()> {
        let cue = &self.list.cues[index];
        for m in &cue.messages {
            self.sender.send(
                &OscPacket::Message(m.clone()),
                &cue.targets,
                &format!("cue '{}'", cue.id),
            );
        }
        let sent_wall_ns = self.epoch.elapsed().as_nanos() as u64;
        let entry = FiredCue {
            id: cue.id.clone(),
            cue_score_s: cue.point.score_s,
            at_score_s: p.map_or(f64::NAN, |p| p.heard_score_s),
            perf_time_s: p.map_or(f64::NAN, |p| p.perf_time_s),
            capture_wall_ns: p.map_or(0, |p| p.capture_wall_ns),
            sent_wall_ns,
            skipped,
            manual: p.is_none(),
            page: cue.page,
        };
        tracing::info!(
            "cue '{}' fired{} at perf {:.3} s, score {:.3} s (cue at {:.3} s), captured at {} ns, sent at {} ns",
            entry.id,
            if entry.manual { " by hand" } else if skipped { " (skipped over)" } else { "" },
            entry.perf_time_s,
            entry.at_score_s,
            entry.cue_score_s,
            entry.capture_wall_ns,
            entry.sent_wall_ns
        );
        let mut result = Ok(());
        for o in &self.observers {
            if let Err(e) = o.fired(&entry) {
                result = result.and(Err(e));
            }
        }
        if let Ok(mut log) = self.log.lock() {
            log.push(entry);
        }
        result
    }
}

/// Fires the cues of a [`CueList`] from the positions it receives.
pub struct CueSink {
    core: Arc<Mutex<CueCore>>,
}

/// A handle to fire cues by hand (used by the remote control), shared with a [`CueSink`].
#[derive(Clone)]
pub struct CueHandle {
    core: Arc<Mutex<CueCore>>,
}

impl CueSink {
    /// A sink for `list`; `epoch` is the capture's epoch (times in the log count from it).
    pub fn new(list: CueList, epoch: Instant) -> crate::Result<Self> {
        Self::with_options(list, epoch, &SendOptions::default())
    }

    /// As [`CueSink::new`], its sockets set up with `opts` (multicast TTL and interface).
    pub fn with_options(list: CueList, epoch: Instant, opts: &SendOptions) -> crate::Result<Self> {
        let sender = UdpSender::new(
            list.cues.iter().flat_map(|c| c.targets.iter().copied()),
            opts,
        )?;
        let state = CueState::new(list.cues.iter().map(|c| c.point).collect(), list.settings);
        let fired = Vec::with_capacity(list.cues.len());
        Ok(Self {
            core: Arc::new(Mutex::new(CueCore {
                list,
                state,
                sender,
                fired,
                epoch,
                log: FiredLog::default(),
                observers: Vec::new(),
            })),
        })
    }

    /// Tell `observer` of every firing from now on (by the follower and by hand).
    pub fn observe(&mut self, observer: Arc<dyn FiringObserver>) {
        match self.core.lock() {
            Ok(mut c) => c.observers.push(observer),
            Err(p) => p.into_inner().observers.push(observer),
        }
    }

    /// The log of fired cues (shared; it fills while following).
    pub fn log(&self) -> FiredLog {
        self.core
            .lock()
            .map(|c| c.log.clone())
            .unwrap_or_else(|p| p.into_inner().log.clone())
    }

    /// A handle for firing cues by hand.
    pub fn cue_handle(&self) -> CueHandle {
        CueHandle {
            core: Arc::clone(&self.core),
        }
    }
}

impl CueHandle {
    /// Fire cue `id` now (it then re-arms like a cue fired by the follower). Returns false
    /// when no cue has that id.
    pub fn fire(&self, id: &str) -> bool {
        let Ok(mut core) = self.core.lock() else {
            return false;
        };
        match core.list.index_of(id) {
            Some(i) => {
                core.state.disarm(i);
                if let Err(e) = core.fire(i, None, false) {
                    tracing::error!("output: {e}");
                }
                true
            }
            None => false,
        }
    }

    /// The position jumped on purpose (seek, reset): the next position counts as a jump.
    pub fn forget_position(&self) {
        if let Ok(mut core) = self.core.lock() {
            core.state.forget_position();
        }
    }
}

impl Sink for CueSink {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        let p = match event {
            Event::Position(p) => p,
            Event::Relocation(_) => {
                // Sent before the position it lands on.
                let mut guard = self
                    .core
                    .lock()
                    .map_err(|_| Error::Other("cue state poisoned".into()))?;
                guard.state.jumped();
                return Ok(());
            }
            _ => return Ok(()),
        };
        let mut guard = self
            .core
            .lock()
            .map_err(|_| Error::Other("cue state poisoned".into()))?;
        let core = &mut *guard;
        // On what was heard, not the best estimate: that may run a frame or two past an onset
        // still to come (see `TrackerConfig::onset_allowance_frames`), which in a fermata
        // would fire the cue on that onset while the note before it is still held.
        core.state
            .update(p.heard_score_s, p.tempo, p.confidence, &mut core.fired);
        let mut result = Ok(());
        for k in 0..core.fired.len() {
            let f = core.fired[k];
            result = result.and(core.fire(f.index, Some(p), f.skipped));
        }
        result
    }

    fn finish(&mut self) -> crate::Result<()> {
        // Datagrams that could not be sent are in `delivery`, per target.
        let observers = match self.core.lock() {
            Ok(c) => c.observers.clone(),
            Err(_) => return Err(Error::Other("cue state poisoned".into())),
        };
        observers.iter().try_for_each(|o| o.flush())
    }

    fn delivery(&self) -> Vec<TargetReport> {
        self.core
            .lock()
            .map(|c| c.sender.reports().to_vec())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn score() -> Score {
        crate::test_util::test_score()
    }

    fn parse(text: &str) -> crate::Result<CueList> {
        let s = score();
        CueList::parse(
            text,
            Path::new("cues.toml"),
            Timeline {
                score: Some(&s),
                duration_s: 8.0,
            },
        )
    }

    const GOOD: &str = r#"
[settings]
hysteresis_s = 0.25

[targets]
qlab = "127.0.0.1:53000"

[defaults]
targets = ["qlab"]
lead_ms = 100

[[cue]]
id = "b"
bar = 3
beat = 3.0
on_skip = "fire"
[[cue.message]]
address = "/cue/2/go"
args = [7, 0.5, "warm", true]
[[cue.message]]
address = "/light/1"

[[cue]]
id = "a"
marker = "A"
lead_ms = 0
targets = ["127.0.0.1:7000", "qlab"]
[[cue.message]]
address = "/cue/1/go"

[[cue]]
id = "cp"
marker = "B"
[[cue.message]]
address = "/x"

[[cue]]
id = "s"
score_s = 1.5
[[cue.message]]
address = "/y"
"#;

    #[test]
    fn parses_positions_targets_and_typed_arguments() {
        let list = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = list.cues.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["s", "a", "cp", "b"]);
        let at: Vec<f64> = list.cues.iter().map(|c| c.point.score_s).collect();
        assert_eq!(at, [1.5, 2.0, 4.0, 5.0]);
        assert_eq!(list.settings.hysteresis_s, 0.25);
        let b = &list.cues[3];
        assert_eq!(b.point.lead_s, 0.1);
        assert_eq!(b.point.on_skip, OnSkip::Fire);
        assert_eq!(b.line, 12);
        assert_eq!(
            b.targets,
            vec!["127.0.0.1:53000".parse().unwrap_or_else(|_| unreachable!())]
        );
        assert_eq!(
            b.messages[0].args,
            vec![
                OscType::Int(7),
                OscType::Float(0.5),
                OscType::String("warm".into()),
                OscType::Bool(true)
            ]
        );
        assert_eq!(b.messages[1].addr, "/light/1");
        let a = &list.cues[1];
        assert_eq!(a.point.lead_s, 0.0);
        assert_eq!(a.point.on_skip, OnSkip::Drop);
        assert_eq!(a.targets.len(), 2);
    }

    /// Every invalid file fails with the line of the fault.
    #[test]
    fn errors_name_the_line() {
        let head = "[defaults]\ntargets = [\"127.0.0.1:9000\"]\n[[cue]]\nid = \"x\"\n";
        let msg = "[[cue.message]]\naddress = \"/go\"\n";
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("{head}marker = \"Nope\"\n{msg}"),
                5,
                "unknown marker 'Nope' (the score has A, B)",
            ),
            (
                format!("{head}bar = 5\n{msg}"),
                5,
                "bar 5 beat 1 is not in the score (bars 1 to 4)",
            ),
            (
                format!("{head}bar = 2\nbeat = 5.5\n{msg}"),
                5,
                "not in the score",
            ),
            (
                format!("{head}score_s = 9.5\n{msg}"),
                5,
                "outside the score",
            ),
            (
                format!("{head}bar = 1\n[[cue.message]]\naddress = \"go\"\n"),
                7,
                "must start with '/'",
            ),
            (
                format!("{head}bar = 1\n[[cue.message]]\naddress = \"/a b\"\n"),
                7,
                "not allowed",
            ),
            (
                format!("{head}bar = 1\n[[cue.message]]\naddress = \"/a\"\nargs = [1, [2]]\n"),
                8,
                "not an int",
            ),
            (
                format!("{head}bar = 1\n[[cue.message]]\naddress = \"/a\"\nargs = [9999999999]\n"),
                8,
                "32 bits",
            ),
            (
                format!("{head}bar = 1\ncolour = 3\n{msg}"),
                6,
                "unknown field",
            ),
            (format!("{head}bar = 1\n"), 3, "no [[cue.message]]"),
            (
                format!("{head}bar = 1\nscore_s = 2.0\n{msg}"),
                3,
                "exactly one position",
            ),
            (format!("{head}bar = 1\nlead_ms = -5\n{msg}"), 6, "lead_ms"),
            (
                format!("{head}bar = 1\ntargets = [\"desk\"]\n{msg}"),
                6,
                "unknown target 'desk'",
            ),
            (
                format!("{head}bar = 1\ntargets = [\"127.0.0.1:0\"]\n{msg}"),
                6,
                "OSC target",
            ),
            (
                format!("{head}bar = 1\non_skip = \"maybe\"\n{msg}"),
                6,
                "unknown variant",
            ),
            (
                format!("{head}bar = 1\n{msg}[[cue]]\nid = \"x\"\nbar = 2\n{msg}"),
                9,
                "duplicate cue id 'x' (first on line 4)",
            ),
            (
                format!("[[cue]]\nid = \"y\"\nbar = 1\n{msg}"),
                1,
                "no targets",
            ),
            ("[[cue]\nid = 1\n".to_string(), 1, ""),
        ];
        for (text, line, needle) in cases {
            match parse(&text) {
                Err(Error::Parse {
                    line: got,
                    reason,
                    path,
                }) => {
                    assert_eq!(path, Path::new("cues.toml"));
                    assert!(reason.contains(needle), "{text}\n-> {reason}");
                    // Errors reported by the TOML parser for a whole table point at its header.
                    assert!(
                        got == line || (needle.is_empty() && got >= 1),
                        "{text}\n-> line {got}: {reason}"
                    );
                }
                other => panic!("{text}\n-> {other:?}"),
            }
        }
        let audio = Timeline {
            score: None,
            duration_s: 8.0,
        };
        let e = CueList::parse(&format!("{head}bar = 1\n{msg}"), Path::new("c.toml"), audio);
        assert!(e.is_err_and(|e| e.to_string().contains("need a score")));
    }

    fn pt(score_s: f64, lead_s: f64, on_skip: OnSkip) -> CuePoint {
        CuePoint {
            score_s,
            lead_s,
            on_skip,
        }
    }

    /// Feed (score_s, tempo, confidence) positions; (position index, cue index, skipped) out.
    fn run(state: &mut CueState, seq: &[(f64, f32, f32)]) -> Vec<(usize, usize, bool)> {
        let mut out = Vec::new();
        let mut fired = Vec::new();
        for (k, &(s, t, c)) in seq.iter().enumerate() {
            state.update(s, t, c, &mut fired);
            out.extend(fired.iter().map(|f| (k, f.index, f.skipped)));
        }
        out
    }

    fn ramp(from: f64, to: f64, step: f64) -> Vec<(f64, f32, f32)> {
        let n = ((to - from) / step).round() as usize;
        (0..=n)
            .map(|i| (from + i as f64 * step, 1.0, 0.5))
            .collect()
    }

    #[test]
    fn fires_once_at_the_crossing_and_not_on_jitter() {
        let mut st = CueState::new(
            vec![pt(1.0, 0.0, OnSkip::Drop), pt(2.0, 0.0, OnSkip::Drop)],
            CueSettings::default(),
        );
        let mut seq = ramp(0.0, 1.0, 0.02);
        // Jitter around the cue, within the hysteresis, and a low-confidence dip far back.
        seq.extend([
            (0.95, 1.0, 0.5),
            (1.02, 1.0, 0.5),
            (0.8, 1.0, 0.5),
            (1.1, 1.0, 0.5),
            (0.0, 1.0, 0.001),
        ]);
        seq.extend(ramp(1.1, 2.5, 0.02));
        let out = run(&mut st, &seq);
        assert_eq!(out, vec![(50, 0, false), (50 + 6 + 45, 1, false)]);
    }

    #[test]
    fn only_a_confirmed_jump_back_rearms() {
        let mut st = CueState::new(vec![pt(1.0, 0.0, OnSkip::Drop)], CueSettings::default());
        // Drifting back far below the cue, one small step at a time, is the same pass.
        let mut seq = ramp(0.0, 1.2, 0.02);
        seq.extend(ramp(0.0, 1.2, 0.02).into_iter().rev());
        seq.extend(ramp(0.0, 1.2, 0.02));
        assert_eq!(run(&mut st, &seq), vec![(50, 0, false)]);
        // A step back of more than jump_s (a repeat under a structure file) re-arms it.
        let mut st = CueState::new(vec![pt(1.0, 0.0, OnSkip::Drop)], CueSettings::default());
        let mut seq = ramp(0.0, 1.6, 0.02);
        seq.extend(ramp(0.5, 1.2, 0.02));
        let out = run(&mut st, &seq);
        assert_eq!(
            out.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![50, 81 + 25]
        );
        // A relocation or a seek announced before the landing re-arms cues more than the
        // hysteresis after it, and only those.
        let mut st = CueState::new(
            vec![pt(1.0, 0.0, OnSkip::Drop), pt(1.5, 0.0, OnSkip::Drop)],
            CueSettings::default(),
        );
        assert_eq!(run(&mut st, &ramp(0.0, 1.6, 0.02)).len(), 2);
        st.jumped();
        let out = run(
            &mut st,
            &[(0.9, 1.0, 0.5), (1.0, 1.0, 0.5), (1.6, 1.0, 0.5)],
        );
        assert_eq!(out, vec![(2, 1, false)]);
        st.forget_position();
        let out = run(&mut st, &[(0.5, 1.0, 0.5), (1.0, 1.0, 0.5)]);
        assert_eq!(out, vec![(1, 0, false)]);
        // A landing too close before the cue (within the hysteresis) does not re-arm it.
        assert_eq!(run(&mut st, &[(1.6, 1.0, 0.5)]), vec![(0, 1, false)]);
        st.jumped();
        assert_eq!(run(&mut st, &[(1.3, 1.0, 0.5), (1.6, 1.0, 0.5)]), vec![]);
    }

    #[test]
    fn forward_jumps_fire_or_drop_skipped_cues_in_order() {
        let cues = vec![
            pt(1.0, 0.0, OnSkip::Fire),
            pt(2.0, 0.0, OnSkip::Drop),
            pt(3.0, 0.0, OnSkip::Fire),
            pt(5.1, 0.0, OnSkip::Drop),
            pt(6.0, 0.0, OnSkip::Drop),
        ];
        let mut st = CueState::new(cues, CueSettings::default());
        // 0.5 -> 5.2: cues 0-2 were skipped over; cue 3 is just behind the landing point
        // (within the hysteresis) and fires as reached.
        let out = run(
            &mut st,
            &[
                (0.5, 1.0, 0.5),
                (5.2, 1.0, 0.5),
                (5.3, 1.0, 0.5),
                (6.1, 1.0, 0.5),
            ],
        );
        assert_eq!(
            out,
            vec![(1, 0, true), (1, 2, true), (1, 3, false), (3, 4, false)]
        );
        // A start in the middle counts as a jump from nowhere.
        let mut st = CueState::new(
            vec![pt(1.0, 0.0, OnSkip::Drop), pt(1.0, 0.0, OnSkip::Fire)],
            CueSettings::default(),
        );
        assert_eq!(run(&mut st, &[(4.0, 1.0, 0.5)]), vec![(0, 1, true)]);
    }

    #[test]
    fn lead_time_scales_with_tempo() {
        for (tempo, expect_s) in [(1.0f32, 4.5), (2.0, 4.0), (0.5, 4.75)] {
            let mut st = CueState::new(vec![pt(5.0, 0.5, OnSkip::Drop)], CueSettings::default());
            let seq: Vec<_> = ramp(0.0, 6.0, 0.01)
                .into_iter()
                .map(|(s, _, c)| (s, tempo, c))
                .collect();
            let out = run(&mut st, &seq);
            assert_eq!(out.len(), 1);
            let at = seq[out[0].0].0;
            assert!(
                (at - expect_s).abs() < 0.011,
                "tempo {tempo}: fired at {at}"
            );
        }
    }

    /// The obvious form of the rules, one cue at a time over the whole history.
    fn oracle(
        points: &[CuePoint],
        set: CueSettings,
        seq: &[(f64, f32, f32)],
    ) -> Vec<(usize, usize, bool)> {
        let mut out = Vec::new();
        for (i, c) in points.iter().enumerate() {
            let mut armed = true;
            let mut prev: Option<f64> = None;
            for (k, &(s, t, conf)) in seq.iter().enumerate() {
                if conf < set.min_confidence {
                    continue;
                }
                let p = s + c.lead_s * (t as f64).clamp(0.25, 4.0);
                let landed = prev.is_some_and(|q| q - s > set.jump_s);
                if !armed && landed && s < c.score_s - set.hysteresis_s {
                    armed = true;
                }
                if armed && p >= c.score_s {
                    armed = false;
                    let jumped = prev.is_none() || s - prev.unwrap_or(s) > set.jump_s;
                    let skipped = jumped && c.score_s < s - set.hysteresis_s;
                    if !skipped || c.on_skip == OnSkip::Fire {
                        out.push((k, i, skipped));
                    }
                }
                prev = Some(s);
            }
        }
        out.sort();
        out
    }

    proptest! {
        #[test]
        fn matches_oracle_and_fires_once_per_arming(
            cues in prop::collection::vec((0.0f64..10.0, 0.0f64..1.0, any::<bool>()), 1..6),
            seq in prop::collection::vec((0.0f64..10.0, 0.2f32..3.0, 0.0f32..1.0), 1..80),
            walk in any::<bool>(),
        ) {
            let mut points: Vec<CuePoint> = cues
                .iter()
                .map(|&(s, l, f)| pt(s, l, if f { OnSkip::Fire } else { OnSkip::Drop }))
                .collect();
            points.sort_by(|a, b| a.score_s.total_cmp(&b.score_s));
            // Random values, or a jittery walk (mostly small steps) built from them.
            let seq: Vec<(f64, f32, f32)> = if walk {
                let mut x = 0.0;
                seq.iter().map(|&(s, t, c)| { x = (x + (s - 4.0) * 0.1).max(0.0); (x, t, c) }).collect()
            } else {
                seq
            };
            let set = CueSettings::default();
            let mut st = CueState::new(points.clone(), set);
            let mut got = run(&mut st, &seq);
            let in_update_order = got.clone();
            got.sort();
            prop_assert_eq!(&got, &oracle(&points, set, &seq));
            // Within one position, cues fire in score order.
            for w in in_update_order.windows(2) {
                if w[0].0 == w[1].0 { prop_assert!(w[0].1 < w[1].1); }
            }
            // Between two firings of a cue, a jump back landed more than the hysteresis before
            // it: a step back of more than jump_s between confident positions.
            let confident: Vec<(usize, f64)> = seq
                .iter()
                .enumerate()
                .filter(|(_, &(_, _, conf))| conf >= set.min_confidence)
                .map(|(k, &(s, _, _))| (k, s))
                .collect();
            for (i, c) in points.iter().enumerate() {
                let ks: Vec<usize> = got.iter().filter(|g| g.1 == i).map(|g| g.0).collect();
                for w in ks.windows(2) {
                    let rearmed = confident.windows(2).any(|v| {
                        v[1].0 > w[0] && v[1].0 <= w[1]
                            && v[0].1 - v[1].1 > set.jump_s
                            && v[1].1 < c.score_s - set.hysteresis_s
                    });
                    prop_assert!(rearmed, "cue {} fired at {} and {} without a jump back", i, w[0], w[1]);
                }
            }
        }
    }

    #[test]
    fn pages_parse_and_fail_by_line() {
        let s = score();
        let tl = Timeline {
            score: Some(&s),
            duration_s: 8.0,
        };
        let t: SocketAddr = "127.0.0.1:9000".parse().unwrap_or_else(|_| unreachable!());
        let p = Path::new("pages.csv");
        let list = CueList::parse_pages(
            "page,first_bar\n# comment\n1,1\n\n2, 3 # turn\n",
            p,
            tl,
            1.0,
            vec![t],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.cues.len(), 2);
        assert_eq!(list.cues[1].id, "page-2");
        assert_eq!(list.cues[1].point, pt(4.0, 1.0, OnSkip::Fire));
        assert_eq!(list.cues[1].messages[0].args, vec![OscType::Int(2)]);
        for (text, line) in [
            ("1,1\n2,9\n", 2),
            ("1,2\n2,1\n", 2),
            ("1,1\nx\n", 2),
            ("0,1\n", 1),
            ("1;1\n", 1),
            ("", 1),
        ] {
            match CueList::parse_pages(text, p, tl, 1.0, vec![t]) {
                Err(Error::Parse { line: got, .. }) => assert_eq!(got, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(CueList::parse_pages("1,1\n", p, tl, 1.0, vec![]).is_err());
    }

    #[test]
    fn sink_sends_typed_messages_and_fires_by_hand() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .ok();
        let addr = rx.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let text = GOOD
            .replace("127.0.0.1:53000", &addr.to_string())
            .replace("127.0.0.1:7000", &addr.to_string());
        let list = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let mut sink = CueSink::new(list, Instant::now()).unwrap_or_else(|e| panic!("{e}"));
        let log = sink.log();
        for k in 0..=260 {
            let ev = PositionEvent {
                frame: k,
                perf_time_s: k as f64 * 0.02,
                score_time_s: k as f64 * 0.02,
                heard_score_s: k as f64 * 0.02,
                tempo: 1.0,
                confidence: 0.5,
                capture_wall_ns: k * 20_000_000,
                ..Default::default()
            };
            sink.handle(&Event::Position(ev))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(sink.cue_handle().fire("a"));
        assert!(!sink.cue_handle().fire("nope"));
        let mut got = Vec::new();
        let mut buf = [0u8; rosc::decoder::MTU];
        // s, a (two targets, both here), cp, b (two messages), a by hand (two targets).
        for _ in 0..8 {
            let (n, _) = rx.recv_from(&mut buf).unwrap_or_else(|e| panic!("{e}"));
            let (_, packet) =
                rosc::decoder::decode_udp(&buf[..n]).unwrap_or_else(|e| panic!("{e:?}"));
            let OscPacket::Message(m) = packet else {
                panic!("bundle")
            };
            got.push(m);
        }
        let addrs: Vec<&str> = got.iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(
            addrs,
            [
                "/y",
                "/cue/1/go",
                "/cue/1/go",
                "/x",
                "/cue/2/go",
                "/light/1",
                "/cue/1/go",
                "/cue/1/go"
            ]
        );
        assert_eq!(got[4].args[2], OscType::String("warm".into()));
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        let fired: Vec<(&str, bool)> = log.iter().map(|f| (f.id.as_str(), f.manual)).collect();
        assert_eq!(
            fired,
            [
                ("s", false),
                ("a", false),
                ("cp", false),
                ("b", false),
                ("a", true)
            ]
        );
        // b at 5.0 s with 100 ms lead at tempo 1 fires at the position 4.9 s (frame 245).
        assert_eq!(log[3].capture_wall_ns, 245 * 20_000_000);
        assert!(sink.finish().is_ok());
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;
    use crate::test_util::fuzz::{edits, mutate, Edit};
    use crate::test_util::test_score;
    use proptest::prelude::*;

    /// A valid cue file using every feature; numeric targets only, so mutations rarely make
    /// the parser resolve a host name.
    const VALID: &str = r#"[settings]
min_confidence = 0.1
hysteresis_s = 0.25
jump_s = 2.0

[targets]
desk = "127.0.0.1:53000"

[defaults]
targets = ["desk"]
lead_ms = 100
on_skip = "drop"

[[cue]]
id = "b"
bar = 3
beat = 2.5
on_skip = "fire"
[[cue.message]]
address = "/cue/2/go"
args = [7, 0.5, "warm", true]

[[cue]]
id = "a"
marker = "A"
lead_ms = 0
targets = ["127.0.0.1:7000", "desk"]
[[cue.message]]
address = "/cue/1/go"

[[cue]]
id = "s"
score_s = 1.5
[[cue.message]]
address = "/y"
"#;

    const PAGES: &str = "page,first_bar\n# pages\n1,1\n2,2\n3, 4 # last\n";

    fn timeline(s: &Score) -> Timeline<'_> {
        Timeline {
            score: Some(s),
            duration_s: 8.0,
        }
    }

    /// The contract for any input: a valid list, or a parse error naming the file and a line
    /// of the input, with a reason.
    fn check(result: crate::Result<CueList>, text: &str, file: &str) -> Result<(), TestCaseError> {
        match result {
            Ok(list) => {
                prop_assert!(list
                    .cues
                    .windows(2)
                    .all(|w| w[0].point.score_s <= w[1].point.score_s));
                for c in &list.cues {
                    prop_assert!(
                        c.point.score_s.is_finite() && (0.0..=8.0).contains(&c.point.score_s)
                    );
                    prop_assert!(c.point.lead_s.is_finite() && c.point.lead_s >= 0.0);
                    prop_assert!(!c.messages.is_empty() && !c.targets.is_empty());
                    prop_assert!(!c.id.is_empty());
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains(file), "error does not name the file: {}", msg);
                match e {
                    Error::Parse { line, reason, .. } => {
                        prop_assert!(!reason.trim().is_empty(), "empty reason");
                        prop_assert!(
                            line >= 1 && line <= text.lines().count().max(1) + 1,
                            "line {} of {}",
                            line,
                            text.lines().count()
                        );
                    }
                    other => prop_assert!(false, "not a parse error: {other:?}"),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn valid_inputs_parse() {
        let s = test_score();
        let list = CueList::parse(VALID, Path::new("fuzz.toml"), timeline(&s))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.cues.len(), 3);
        let t: SocketAddr = "127.0.0.1:9000".parse().unwrap_or_else(|_| unreachable!());
        let pages = CueList::parse_pages(PAGES, Path::new("fuzz.csv"), timeline(&s), 0.5, vec![t])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pages.cues.len(), 3);
    }

    /// The mutations get past the TOML syntax into the validation: over a fixed set of
    /// mutants, several distinct semantic checks fire (not only syntax errors).
    #[test]
    fn mutations_reach_the_semantic_checks() {
        let s = test_score();
        let mut rng = crate::audio::replay::SplitMix64(11);
        let mut reasons = std::collections::BTreeSet::new();
        let mut ok = 0;
        for _ in 0..3000 {
            let e: Vec<Edit> = (0..1 + rng.next_u64() % 3)
                .map(|_| {
                    let r = rng.next_u64();
                    (
                        (r % 7) as u8,
                        (r >> 8) as u32,
                        (r >> 40) as u32,
                        (r >> 20) as u8,
                    )
                })
                .collect();
            let text = String::from_utf8_lossy(&mutate(VALID.as_bytes(), &e)).into_owned();
            match CueList::parse(&text, Path::new("fuzz.toml"), timeline(&s)) {
                Ok(_) => ok += 1,
                Err(Error::Parse { reason, .. }) => {
                    for key in [
                        "exactly one position",
                        "duplicate cue id",
                        "unknown target",
                        "not in the score",
                        "outside the score",
                        "unknown marker",
                        "OSC address",
                        "lead_ms",
                        "no [[cue.message]]",
                        "settings:",
                        "OSC target",
                    ] {
                        if reason.contains(key) {
                            reasons.insert(key);
                        }
                    }
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(ok > 0, "no mutant parsed");
        assert!(reasons.len() >= 7, "only reached {reasons:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn cue_files_never_panic_on_mutations(e in edits(6)) {
            let s = test_score();
            let text = String::from_utf8_lossy(&mutate(VALID.as_bytes(), &e)).into_owned();
            check(CueList::parse(&text, Path::new("fuzz.toml"), timeline(&s)), &text, "fuzz.toml")?;
        }

        #[test]
        fn cue_files_never_panic_on_random_text(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = test_score();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            check(CueList::parse(&text, Path::new("fuzz.toml"), timeline(&s)), &text, "fuzz.toml")?;
        }

        #[test]
        fn page_files_never_panic(
            e in edits(6),
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            random in any::<bool>(),
        ) {
            let s = test_score();
            let raw = if random { bytes } else { mutate(PAGES.as_bytes(), &e) };
            let text = String::from_utf8_lossy(&raw).into_owned();
            let t: SocketAddr = "127.0.0.1:9000".parse().unwrap_or_else(|_| unreachable!());
            let r = CueList::parse_pages(&text, Path::new("fuzz.csv"), timeline(&s), 0.5, vec![t]);
            if let Ok(list) = &r {
                // Pages strictly increase in both page and bar.
                prop_assert!(list.cues.windows(2).all(|w| w[0].point.score_s < w[1].point.score_s));
            }
            check(r, &text, "fuzz.csv")?;
        }
    }
}
