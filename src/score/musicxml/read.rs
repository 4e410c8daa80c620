//! MusicXML text -> the printed score ([`Parsed`]): measures in print order with their
//! repeat and jump marks, notes at exact tick positions within their measure, tempo,
//! dynamics, rehearsal marks and words. Nothing is unfolded here.
//!
//! Time is counted in integer ticks: `tpq` ticks per quarter note, the least common multiple
//! of every `<divisions>` value of the file and 48 (so the grace-note steal of an eighth of a
//! quarter is exact). Durations in divisions then convert to ticks exactly.

use std::collections::HashMap;
use std::path::Path;

use super::dom::{Dom, Node};

use super::{MarkKind, PartInfo};
use crate::{Error, Result};

/// Largest tick resolution accepted (ticks per quarter): the divisions of real files have a
/// common multiple far below it.
const MAX_TPQ: u64 = 1 << 40;
/// Longest measure accepted (quarter notes); longer means a corrupt duration.
pub(crate) const MAX_MEASURE_QUARTERS: u64 = 10_000;
/// Most times a repeat is taken (`times` attribute), to bound the unfolded score.
const MAX_REPEAT_TIMES: u32 = 32;
/// Velocity of notes before any dynamics mark (MuseScore's mf).
pub(crate) const DEFAULT_VELOCITY: u8 = 80;
/// Tempo before any tempo mark: MusicXML's default, 120 quarter notes a minute.
pub(crate) const DEFAULT_QPM: f64 = 120.0;

/// Byte offsets of line starts, for turning node positions into 1-based line numbers on
/// demand.
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = Vec::with_capacity(text.len() / 24 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Self { starts }
    }

    /// 1-based line of byte `pos`.
    pub(crate) fn line(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s <= pos)
    }
}

/// A repeat ending as written (`<ending number="1, 2">` ... `type="stop"`).
#[derive(Clone, Debug, Default)]
pub(crate) struct EndingMark {
    /// The passes it is played on; empty when the file left the number out.
    pub numbers: Vec<u32>,
    /// Line of the `<ending>` start.
    pub line: usize,
}

/// One measure in print order, merged over the parts.
#[derive(Clone, Debug, Default)]
pub(crate) struct MeasureData {
    /// The `number` attribute (first part that has the measure).
    pub label: String,
    /// `implicit="yes"`: not counted in the measure numbering (pickups, split bars).
    pub implicit: bool,
    /// Line of the `<measure>` element.
    pub line: usize,
    /// Actual length (ticks): the furthest any part's cursor reached, as notation programs
    /// and music21 read it (an overfull measure stays long).
    pub length: u64,
    /// Time signature in force, if the measure declares one.
    pub time: Option<(u32, u32)>,
    pub new_page: bool,
    pub new_system: bool,
    pub blank_pages: u32,
    pub forward_repeat: bool,
    /// Backward repeat at the end: how many times the section is played.
    pub backward_repeat: Option<u32>,
    /// The backward repeat is also taken after a D.C./D.S. (`after-jump="yes"`).
    pub repeat_after_jump: bool,
    pub ending_start: Option<EndingMark>,
    pub ending_stop: bool,
    /// A final (light-heavy) barline at the end: a section break.
    pub final_barline: bool,
    /// Segno here; with its `<sound segno>` id when given.
    pub segno: Vec<Option<String>>,
    /// Coda sign symbols (`<coda/>`) here.
    pub coda_symbols: u32,
    /// Coda targets declared by `<sound coda="id">` or the words "Coda".
    pub coda_targets: Vec<Option<String>>,
    /// To Coda here (`<sound tocoda>` or words), with the coda id when given.
    pub to_coda: Vec<Option<String>>,
    pub da_capo: bool,
    /// D.S. here, with the segno id when given.
    pub dal_segno: Option<Option<String>>,
    pub fine: bool,
    /// Line of the first jump (D.C./D.S./To Coda) in this measure, for messages.
    pub jump_line: usize,
}

/// A note of the printed score, before unfolding and tie merging.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawNote {
    pub part: u16,
    pub measure: u32,
    /// Onset within the measure (ticks; negative for a grace note stealing from before).
    pub onset: i64,
    /// Notated (sounding) length (ticks).
    pub dur: u64,
    /// Sounding MIDI pitch.
    pub pitch: u8,
    pub velocity: u8,
    pub tie_start: bool,
    pub tie_stop: bool,
}

/// A rehearsal mark or words direction.
#[derive(Clone, Debug)]
pub(crate) struct RawMark {
    pub measure: u32,
    pub tick: u64,
    pub kind: MarkKind,
    pub text: String,
}

/// The printed score.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Ticks per quarter note.
    pub tpq: u64,
    /// "partwise" or "timewise".
    pub format: &'static str,
    pub parts: Vec<PartInfo>,
    pub measures: Vec<MeasureData>,
    /// Sorted by (measure, onset).
    pub notes: Vec<RawNote>,
    /// (measure, tick, quarter notes per minute), sorted.
    pub tempos: Vec<(u32, u64, f64)>,
    pub marks: Vec<RawMark>,
    pub warnings: Vec<String>,
}

/// Parse error helper: a one-line error naming the file and line. The reason's blanks and
/// line breaks (the XML parser quotes the input) collapse to single spaces, and it is cut
/// at 200 characters.
pub(crate) fn xml_error(path: &Path, line: usize, reason: impl Into<String>) -> Error {
    let reason: String = reason.into();
    let mut one = String::with_capacity(reason.len().min(210));
    for (i, word) in reason.split_whitespace().enumerate() {
        if i > 0 {
            one.push(' ');
        }
        one.push_str(word);
        if one.chars().count() > 200 {
            one = one.chars().take(200).collect();
            one.push_str("...");
            break;
        }
    }
    Error::MusicXml {
        path: path.to_path_buf(),
        line,
        reason: one,
    }
}

/// Collects warnings (each also logged once with `tracing::warn!`), at most a few per kind.
#[derive(Default)]
struct Warn {
    list: Vec<String>,
    per_kind: HashMap<&'static str, u32>,
}

impl Warn {
    fn push(&mut self, kind: &'static str, msg: String) {
        let n = self.per_kind.entry(kind).or_default();
        *n += 1;
        if *n <= 3 {
            tracing::warn!("{msg}");
            self.list.push(msg);
        } else if *n == 4 {
            let more = format!("(further '{kind}' warnings not shown)");
            tracing::warn!("{more}");
            self.list.push(more);
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Text of the first child element called `name`, trimmed.
fn child_text<'d>(n: Node<'d, '_>, name: &str) -> Option<&'d str> {
    n.child_text(name)
}

/// Text of an element, trimmed.
fn all_text(n: Node<'_, '_>) -> String {
    n.text().unwrap_or("").trim().to_string()
}

/// Quarter notes of a note type (`<type>`, `<beat-unit>`).
fn type_quarters(t: &str) -> Option<f64> {
    Some(match t {
        "maxima" => 32.0,
        "long" => 16.0,
        "breve" => 8.0,
        "whole" => 4.0,
        "half" => 2.0,
        "quarter" => 1.0,
        "eighth" => 0.5,
        "16th" => 0.25,
        "32nd" => 0.125,
        "64th" => 0.0625,
        "128th" => 0.031_25,
        "256th" => 0.015_625,
        "512th" => 0.007_812_5,
        "1024th" => 0.003_906_25,
        _ => return None,
    })
}

/// Velocity of a dynamics mark (MuseScore's table), None for accents (sf, fz) that do not
/// change the level.
fn dynamic_velocity(mark: &str) -> Option<u8> {
    Some(match mark {
        "pppppp" => 3,
        "ppppp" => 5,
        "pppp" => 10,
        "ppp" => 16,
        "pp" => 33,
        "p" | "fp" | "sfp" | "sfpp" | "pf" => 49,
        "mp" => 64,
        "mf" => 80,
        "f" => 96,
        "ff" => 112,
        "fff" => 126,
        "ffff" | "fffff" | "ffffff" => 127,
        _ => return None,
    })
}

/// Program guessed from a part's name when the file gives no `<midi-program>` (0-based GM).
fn guess_program(name: &str) -> u8 {
    let n = name.to_lowercase();
    let has = |w: &[&str]| w.iter().any(|k| n.contains(k));
    if has(&[
        "soprano", "alto", "tenor", "bass", "voice", "choir", "chor", "vocal",
    ]) && !has(&[
        "guitar", "clarinet", "sax", "flute", "trombone", "tuba", "bassoon",
    ]) {
        52
    } else if has(&["violoncell", "cello"]) {
        42
    } else if has(&["viola"]) {
        41
    } else if has(&["violin", "fiddle"]) {
        40
    } else if has(&["contrabass", "double bass", "kontrabass"]) {
        43
    } else if has(&["organ", "orgel"]) {
        19
    } else if has(&["harpsichord", "cembalo"]) {
        6
    } else if has(&["clarinet", "klarinette"]) {
        71
    } else if has(&["flute", "flöte", "flauto"]) {
        73
    } else if has(&["oboe"]) {
        68
    } else if has(&["bassoon", "fagott"]) {
        70
    } else if has(&["horn"]) {
        60
    } else if has(&["trumpet", "tromba"]) {
        56
    } else if has(&["trombone"]) {
        57
    } else if has(&["guitar"]) {
        24
    } else {
        0
    }
}

/// A jump written as words (when no `<sound>` attribute says it).
#[derive(Debug, PartialEq)]
enum WordJump {
    DaCapo,
    DalSegno,
    Fine,
    ToCoda,
    Coda,
}

/// Read "D.C. al Fine", "Dal Segno al Coda", "Fine", "To Coda", "Coda" leniently: case,
/// dots and blanks do not matter.
fn word_jump(text: &str) -> Option<WordJump> {
    let c: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .flat_map(char::to_lowercase)
        .collect();
    let tail_ok = |rest: &str| {
        rest.is_empty()
            || rest.starts_with("al")
            || rest.starts_with("senza")
            || rest.starts_with("con")
            || rest.starts_with("e")
    };
    if let Some(r) = c.strip_prefix("dacapo") {
        tail_ok(r).then_some(WordJump::DaCapo)
    } else if let Some(r) = c.strip_prefix("dalsegno") {
        tail_ok(r).then_some(WordJump::DalSegno)
    } else if let Some(r) = c.strip_prefix("dc") {
        tail_ok(r).then_some(WordJump::DaCapo)
    } else if let Some(r) = c.strip_prefix("ds") {
        tail_ok(r).then_some(WordJump::DalSegno)
    } else if c == "fine" {
        Some(WordJump::Fine)
    } else if c.starts_with("tocoda") || c == "alcoda" {
        Some(WordJump::ToCoda)
    } else if c == "coda" {
        Some(WordJump::Coda)
    } else {
        None
    }
}

/// Parse a number leniently (`"60"`, `" 60.5 "`, `"c. 120"` for per-minute).
fn leading_number(s: &str) -> Option<f64> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let rest = &s[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Ending numbers: "1", "1, 2", "1 2", "1-3", "1." (lenient); empty for "".
fn ending_numbers(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s
        .split([',', ' ', ';', '+'])
        .filter(|p| !p.trim().is_empty())
    {
        let p = part.trim().trim_end_matches('.');
        if let Some((a, b)) = p.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                if a <= b && b - a < 64 {
                    out.extend(a..=b);
                }
            }
        } else if let Ok(v) = p.parse::<u32>() {
            out.push(v);
        }
    }
    out.retain(|&v| (1..=MAX_REPEAT_TIMES * 4).contains(&v));
    out.sort_unstable();
    out.dedup();
    out
}

/// Per-part reading state that carries over measures.
struct PartState {
    /// Ticks per division (tpq / divisions), once divisions are known.
    ticks_per_div: Option<u64>,
    /// Chromatic transposition (semitones, written -> sounding) for all staves, and per staff.
    transpose: i32,
    transpose_staff: Vec<(u32, i32)>,
    /// Octave doubling from `<transpose><double/>`: -12 below, +12 above.
    double: i32,
    velocity: u8,
}

impl PartState {
    fn transpose_for(&self, staff: u32) -> i32 {
        self.transpose_staff
            .iter()
            .find(|&&(s, _)| s == staff)
            .map_or(self.transpose, |&(_, t)| t)
    }
}

/// A grace note waiting for its principal note.
struct Grace<'a> {
    slot: u32,
    pitch: i32,
    voice: &'a str,
    velocity: Option<u8>,
    steal_previous: bool,
    tie_start: bool,
}

/// The reader: the document, its line index and the running state shared by all parts.
pub(crate) struct Reader<'a, 'input> {
    path: &'a Path,
    lines: &'a Lines,
    doc: &'a Dom<'input>,
    warn: Warn,
    out: Parsed,
    /// Dynamics events of the measure being read: (tick, velocity).
    dyn_events: Vec<(i64, u8)>,
    /// Marks already seen at (measure, tick, text), to drop copies in other parts.
    seen_marks: std::collections::HashSet<(u32, u64, String)>,
}

impl<'a, 'input> Reader<'a, 'input> {
    pub(crate) fn new(path: &'a Path, lines: &'a Lines, doc: &'a Dom<'input>) -> Self {
        Self {
            path,
            lines,
            doc,
            warn: Warn::default(),
            out: Parsed::default(),
            dyn_events: Vec::new(),
            seen_marks: Default::default(),
        }
    }

    fn line(&self, n: Node<'_, '_>) -> usize {
        self.lines.line(n.pos())
    }

    fn err(&self, n: Node<'_, '_>, reason: impl Into<String>) -> Error {
        xml_error(self.path, self.line(n), reason)
    }

    fn warn(&mut self, kind: &'static str, n: Node<'_, '_>, msg: impl std::fmt::Display) {
        let line = self.line(n);
        self.warn
            .push(kind, format!("{}:{line}: {msg}", self.path.display()));
    }

    /// Read the whole score.
    pub(crate) fn read(mut self) -> Result<Parsed> {
        let root = self.doc.root();
        let timewise = match root.name() {
            "score-partwise" => false,
            "score-timewise" => true,
            other => {
                return Err(self.err(
                    root,
                    format!(
                        "not a MusicXML score: the root element is <{other}>, not \
                         <score-partwise> or <score-timewise>"
                    ),
                ))
            }
        };
        self.out.format = if timewise { "timewise" } else { "partwise" };

        // The part list: names and MIDI programs.
        let mut info: Vec<PartInfo> = Vec::new();
        if let Some(list) = root.children().find(|c| c.is("part-list")) {
            for sp in list.children().filter(|c| c.is("score-part")) {
                let id = sp.attribute("id").unwrap_or("").to_string();
                let name = child_text(sp, "part-name").unwrap_or("").to_string();
                let instrument = sp
                    .descendants()
                    .find(|d| d.is("instrument-name"))
                    .and_then(|d| d.text())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let midi = sp.children().find(|c| c.is("midi-instrument"));
                let program = midi
                    .and_then(|m| child_text(m, "midi-program"))
                    .and_then(|t| t.parse::<u32>().ok())
                    .filter(|p| (1..=128).contains(p))
                    .map(|p| (p - 1) as u8);
                let guessed_from = if name.is_empty() { &instrument } else { &name };
                info.push(PartInfo {
                    id,
                    name: if name.is_empty() {
                        instrument.clone()
                    } else {
                        name.clone()
                    },
                    program: program.unwrap_or_else(|| guess_program(guessed_from)),
                    program_guessed: program.is_none(),
                    channel: 0,
                    transpose_semitones: 0,
                    notes: 0,
                });
            }
        }

        // Each part's measures as (element carrying number/implicit, element holding music).
        let mut parts: Vec<(String, Vec<(Node, Node)>)> = Vec::new();
        if timewise {
            for m in root.children().filter(|c| c.is("measure")) {
                for p in m.children().filter(|c| c.is("part")) {
                    let id = p.attribute("id").unwrap_or("").to_string();
                    match parts.iter_mut().find(|(pid, _)| *pid == id) {
                        Some((_, list)) => list.push((m, p)),
                        None => parts.push((id, vec![(m, p)])),
                    }
                }
            }
        } else {
            for p in root.children().filter(|c| c.is("part")) {
                let id = p.attribute("id").unwrap_or("").to_string();
                let list: Vec<(Node, Node)> = p
                    .children()
                    .filter(|c| c.is("measure"))
                    .map(|m| (m, m))
                    .collect();
                parts.push((id, list));
            }
        }
        if parts.iter().all(|(_, l)| l.is_empty()) {
            return Err(self.err(root, "the score has no measures"));
        }
        // Parts in part-list order; parts missing from the list are added.
        let mut ordered: Vec<PartInfo> = Vec::new();
        for (id, _) in &parts {
            let p = info
                .iter()
                .find(|p| &p.id == id)
                .cloned()
                .unwrap_or_else(|| PartInfo {
                    id: id.clone(),
                    name: id.clone(),
                    program: 0,
                    program_guessed: true,
                    channel: 0,
                    transpose_semitones: 0,
                    notes: 0,
                });
            ordered.push(p);
        }
        // One channel per part, skipping the GM drum channel.
        for (k, p) in ordered.iter_mut().enumerate() {
            let c = (k % 15) as u8;
            p.channel = if c >= 9 { c + 1 } else { c };
        }
        self.out.parts = ordered;

        self.out.tpq = self.tick_resolution(root)?;

        for (k, (_, measures)) in parts.iter().enumerate() {
            self.read_part(k, measures)?;
        }
        self.finish_measures();
        self.out
            .notes
            .sort_by_key(|n| (n.measure, n.onset, n.part, n.pitch));
        self.out.tempos.sort_by_key(|t| (t.0, t.1));
        self.out.warnings = std::mem::take(&mut self.warn.list);
        Ok(self.out)
    }

    /// Ticks per quarter: the least common multiple of 48 and every `<divisions>`.
    fn tick_resolution(&self, root: Node) -> Result<u64> {
        let mut l: u64 = 48;
        let mut any = false;
        for d in root.descendants().filter(|d| d.is("divisions")) {
            let text = d.text().unwrap_or("").trim();
            let v = parse_divisions(text).ok_or_else(|| {
                self.err(
                    d,
                    format!("<divisions> must be a positive whole number, not '{text}'"),
                )
            })?;
            any = true;
            l = l / gcd(l, v) * v;
            if l > MAX_TPQ {
                return Err(self.err(
                    d,
                    "the <divisions> values of the file have no common multiple below 2^40",
                ));
            }
        }
        if !any {
            return Err(self.err(
                root,
                "the score has no <divisions>: note durations cannot be read",
            ));
        }
        Ok(l)
    }

    fn measure_mut(&mut self, i: usize, mnode: Node) -> &mut MeasureData {
        while self.out.measures.len() <= i {
            self.out.measures.push(MeasureData::default());
        }
        let line = self.lines.line(mnode.pos());
        let m = &mut self.out.measures[i];
        if m.line == 0 {
            m.line = line;
            m.label = mnode.attribute("number").unwrap_or("").trim().to_string();
            m.implicit = mnode.attribute("implicit") == Some("yes");
        }
        m
    }

    fn read_part(
        &mut self,
        part: usize,
        measures: &[(Node<'a, 'input>, Node<'a, 'input>)],
    ) -> Result<()> {
        let mut st = PartState {
            ticks_per_div: None,
            transpose: 0,
            transpose_staff: Vec::new(),
            double: 0,
            velocity: DEFAULT_VELOCITY,
        };
        let tpq = self.out.tpq;
        let max_ticks = (MAX_MEASURE_QUARTERS * tpq) as i64;
        for (mi, &(mnode, content)) in measures.iter().enumerate() {
            self.measure_mut(mi, mnode);
            let first_note = self.out.notes.len();
            self.dyn_events.clear();
            let mut cursor: i64 = 0;
            let mut max_end: i64 = 0;
            let mut last_onset: i64 = 0;
            let mut graces: Vec<Grace> = Vec::new();
            let mut grace_slot = 0u32;
            // Shift applied to the principal note of a grace group and its chord: (onset,
            // shift in ticks).
            let mut chord_shift: Option<(i64, i64)> = None;
            for c in content.children() {
                match c.name() {
                    "attributes" => self.attributes(c, mi, &mut st)?,
                    "note" => {
                        self.note(
                            c,
                            part,
                            mi,
                            &mut st,
                            &mut cursor,
                            &mut last_onset,
                            &mut max_end,
                            &mut graces,
                            &mut grace_slot,
                            &mut chord_shift,
                        )?;
                    }
                    "backup" | "forward" => {
                        let d = self.duration_of(c, &st)?;
                        if c.is("backup") {
                            cursor -= d as i64;
                            if cursor < 0 {
                                self.warn(
                                    "backup",
                                    c,
                                    "<backup> goes before the start of the measure",
                                );
                                cursor = 0;
                            }
                        } else {
                            cursor += d as i64;
                            max_end = max_end.max(cursor);
                        }
                    }
                    "direction" => self.direction(c, mi, cursor, &st)?,
                    "sound" => self.sound(c, mi, cursor, &mut None),
                    "barline" => self.barline(c, mi),
                    "print" => {
                        let m = &mut self.out.measures[mi];
                        if c.attribute("new-page") == Some("yes") {
                            m.new_page = true;
                        }
                        if c.attribute("new-system") == Some("yes") {
                            m.new_system = true;
                        }
                        if let Some(b) = c.attribute("blank-page").and_then(|b| b.parse().ok()) {
                            m.blank_pages = m.blank_pages.max(b).min(1000);
                        }
                    }
                    _ => {}
                }
                if cursor > max_ticks {
                    let label = self.out.measures[mi].label.clone();
                    return Err(self.err(
                        c,
                        format!(
                            "measure {label} would be longer than {MAX_MEASURE_QUARTERS} \
                             quarter notes (a corrupt duration?)"
                        ),
                    ));
                }
            }
            // Grace notes left without a principal (after-graces): just before the end.
            if !graces.is_empty() {
                let g = (tpq / 16) as i64;
                let slots = graces.iter().map(|x| x.slot).max().unwrap_or(0) as i64 + 1;
                let end = max_end.max(cursor);
                for x in std::mem::take(&mut graces) {
                    self.push_note(
                        part,
                        mi,
                        end - (slots - x.slot as i64) * g,
                        g as u64,
                        x.pitch,
                        x.velocity,
                        x.tie_start,
                        false,
                        None,
                    );
                }
            }
            // Velocities from this measure's dynamics, in time order.
            self.dyn_events.sort_by_key(|e| e.0);
            for n in &mut self.out.notes[first_note..] {
                if n.velocity == 0 {
                    n.velocity = self
                        .dyn_events
                        .iter()
                        .take_while(|e| e.0 <= n.onset)
                        .last()
                        .map_or(st.velocity, |e| e.1);
                }
            }
            if let Some(e) = self.dyn_events.last() {
                st.velocity = e.1;
            }
            let m = &mut self.out.measures[mi];
            m.length = m.length.max(max_end.max(0) as u64);
        }
        self.out.parts[part].transpose_semitones = st.transpose;
        Ok(())
    }

    fn attributes(&mut self, a: Node, mi: usize, st: &mut PartState) -> Result<()> {
        for c in a.children() {
            match c.name() {
                "divisions" => {
                    // Validated by `tick_resolution`.
                    let v = parse_divisions(c.text().unwrap_or("").trim()).unwrap_or(1);
                    st.ticks_per_div = Some(self.out.tpq / v);
                }
                "time" => {
                    if c.children().any(|d| d.is("senza-misura")) {
                        continue;
                    }
                    // Composite signatures ("3+2") add up; of several <beats>/<beat-type>
                    // pairs (interchangeable signatures) the first counts.
                    let beats = child_text(c, "beats").unwrap_or("");
                    let beat_type = child_text(c, "beat-type").unwrap_or("");
                    let num: u32 = beats
                        .split('+')
                        .filter_map(|b| b.trim().parse::<u32>().ok())
                        .sum();
                    let den: u32 = beat_type
                        .split('+')
                        .filter_map(|b| b.trim().parse::<u32>().ok())
                        .next()
                        .unwrap_or(0);
                    if num == 0 || den == 0 || num > 255 || den > 1024 {
                        self.warn(
                            "time",
                            c,
                            format!("time signature '{beats}/{beat_type}' ignored"),
                        );
                        continue;
                    }
                    let m = &mut self.out.measures[mi];
                    if m.time.is_none() {
                        m.time = Some((num, den));
                    }
                }
                "transpose" => {
                    let chromatic = child_text(c, "chromatic")
                        .and_then(|t| t.parse::<f64>().ok())
                        .unwrap_or(0.0)
                        .round() as i32;
                    let octave = child_text(c, "octave-change")
                        .and_then(|t| t.parse::<i32>().ok())
                        .unwrap_or(0);
                    let total = (chromatic + 12 * octave).clamp(-48, 48);
                    match c.attribute("number").and_then(|n| n.parse::<u32>().ok()) {
                        Some(staff) => {
                            st.transpose_staff.retain(|&(s, _)| s != staff);
                            st.transpose_staff.push((staff, total));
                        }
                        None => st.transpose = total,
                    }
                    st.double = match c.children().find(|d| d.is("double")) {
                        Some(d) if d.attribute("above") == Some("yes") => 12,
                        Some(_) => -12,
                        None => 0,
                    };
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Duration (ticks) of a `<backup>`/`<forward>`/`<note>` from its `<duration>`.
    fn duration_of(&mut self, n: Node, st: &PartState) -> Result<u64> {
        let Some(text) = child_text(n, "duration") else {
            return Ok(0);
        };
        self.ticks_of(n, text, st)
    }

    fn ticks_of(&mut self, n: Node, text: &str, st: &PartState) -> Result<u64> {
        let Some(tpd) = st.ticks_per_div else {
            return Err(self.err(
                n,
                "a duration comes before the part's <divisions>: durations cannot be read",
            ));
        };
        let v: f64 = match text.parse() {
            Ok(v) if f64::is_finite(v) && v >= 0.0 => v,
            _ => {
                self.warn("duration", n, format!("duration '{text}' read as 0"));
                return Ok(0);
            }
        };
        let t = (v * tpd as f64).round();
        if t > (MAX_MEASURE_QUARTERS * self.out.tpq) as f64 {
            return Err(self.err(
                n,
                format!(
                    "duration {text} is longer than {MAX_MEASURE_QUARTERS} quarter notes \
                     (a corrupt file?)"
                ),
            ));
        }
        Ok(t as u64)
    }

    #[allow(clippy::too_many_arguments)]
    fn note(
        &mut self,
        n: Node<'a, 'input>,
        part: usize,
        mi: usize,
        st: &mut PartState,
        cursor: &mut i64,
        last_onset: &mut i64,
        max_end: &mut i64,
        graces: &mut Vec<Grace<'a>>,
        grace_slot: &mut u32,
        chord_shift: &mut Option<(i64, i64)>,
    ) -> Result<()> {
        let mut grace: Option<Node> = None;
        let (mut cue, mut chord, mut rest, mut unpitched) = (false, false, false, false);
        let mut pitch: Option<(i32, f64, i32)> = None;
        let mut duration: Option<&str> = None;
        let (mut tie_start, mut tie_stop) = (false, false);
        let mut voice = "1";
        let mut staff = 1u32;
        let mut note_type: Option<&str> = None;
        let mut dots = 0;
        let mut time_mod: Option<(f64, f64)> = None;
        for c in n.children() {
            match c.name() {
                "grace" => grace = Some(c),
                "cue" => cue = true,
                "chord" => chord = true,
                "rest" => rest = true,
                "unpitched" => unpitched = true,
                "pitch" => {
                    let step = match child_text(c, "step").unwrap_or("") {
                        "C" => 0,
                        "D" => 2,
                        "E" => 4,
                        "F" => 5,
                        "G" => 7,
                        "A" => 9,
                        "B" => 11,
                        other => {
                            return Err(self.err(c, format!("unknown pitch step '{other}'")));
                        }
                    };
                    let alter = child_text(c, "alter")
                        .and_then(|a| a.parse::<f64>().ok())
                        .filter(|a| a.is_finite())
                        .unwrap_or(0.0);
                    let Some(octave) = child_text(c, "octave").and_then(|o| o.parse::<i32>().ok())
                    else {
                        return Err(self.err(c, "a pitch without a valid <octave>"));
                    };
                    pitch = Some((step, alter, octave));
                }
                "duration" => duration = c.text().map(str::trim),
                "tie" => match c.attribute("type") {
                    Some("start") => tie_start = true,
                    Some("stop") => tie_stop = true,
                    _ => {}
                },
                "notations" => {
                    for t in c.children().filter(|t| t.is("tied")) {
                        match t.attribute("type") {
                            Some("start") => tie_start = true,
                            Some("stop") => tie_stop = true,
                            Some("continue") => {
                                tie_start = true;
                                tie_stop = true;
                            }
                            _ => {}
                        }
                    }
                }
                "voice" => voice = c.text().map(str::trim).unwrap_or("1"),
                "staff" => staff = c.text().and_then(|s| s.trim().parse().ok()).unwrap_or(1),
                "type" => note_type = c.text().map(str::trim),
                "dot" => dots += 1,
                "time-modification" => {
                    let a = child_text(c, "actual-notes").and_then(|t| t.parse::<f64>().ok());
                    let b = child_text(c, "normal-notes").and_then(|t| t.parse::<f64>().ok());
                    if let (Some(a), Some(b)) = (a, b) {
                        if a > 0.0 && b > 0.0 {
                            time_mod = Some((a, b));
                        }
                    }
                }
                _ => {}
            }
        }
        let velocity = n
            .attribute("dynamics")
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|d| d.is_finite())
            .map(|d| (d * 0.9).round().clamp(1.0, 127.0) as u8);
        let midi_pitch = pitch.map(|(step, alter, octave)| {
            (octave + 1) * 12 + step + alter.round() as i32 + st.transpose_for(staff)
        });

        if let Some(g) = grace {
            if cue || rest || unpitched {
                return Ok(());
            }
            let Some(p) = midi_pitch else { return Ok(()) };
            if !chord || graces.is_empty() {
                *grace_slot = graces.last().map_or(0, |x| x.slot + 1);
            }
            graces.push(Grace {
                slot: *grace_slot,
                pitch: p,
                voice,
                velocity,
                steal_previous: g.attribute("steal-time-previous").is_some(),
                tie_start,
            });
            return Ok(());
        }

        let dur = match duration {
            Some(text) => self.ticks_of(n, text, st)?,
            None => {
                // Lenient: a note without <duration> takes its written value.
                let q = note_type.and_then(type_quarters);
                match q {
                    Some(q) => {
                        if st.ticks_per_div.is_none() {
                            return Err(self.err(
                                n,
                                "a note comes before the part's <divisions>: durations cannot \
                                 be read",
                            ));
                        }
                        let mut q = q * (2.0 - 0.5f64.powi(dots));
                        if let Some((a, b)) = time_mod {
                            q *= b / a;
                        }
                        self.warn(
                            "no-duration",
                            n,
                            "a note without <duration>: its written value is used",
                        );
                        (q * self.out.tpq as f64).round() as u64
                    }
                    None => {
                        self.warn(
                            "no-duration",
                            n,
                            "a note without <duration> or <type>: it takes no time",
                        );
                        0
                    }
                }
            }
        };
        let onset = if chord { *last_onset } else { *cursor };
        if !chord {
            *last_onset = *cursor;
            *cursor += dur as i64;
        }
        *max_end = (*max_end).max(onset + dur as i64);
        if cue || rest || unpitched {
            // Grace notes before a silence sound at its start, taking nothing from it.
            if !chord && graces.iter().any(|g| g.voice == voice) {
                let g = (self.out.tpq / 8) as i64;
                let (mine, other): (Vec<Grace>, Vec<Grace>) =
                    graces.drain(..).partition(|x| x.voice == voice);
                *graces = other;
                let first = mine[0].slot;
                for x in mine {
                    let at = onset + (x.slot - first) as i64 * g;
                    self.push_grace(part, mi, at, g as u64, &x, n);
                }
            }
            return Ok(());
        }
        let Some(p) = midi_pitch else {
            return Ok(());
        };
        let mut onset = onset;
        let mut dur = dur as i64;
        // Grace notes of this voice: on the beat, stealing from this note (an eighth of a
        // quarter each, at most half of it), or before the beat when the file says so.
        let mine: Vec<Grace> = if chord {
            Vec::new()
        } else {
            let (mine, other): (Vec<Grace>, Vec<Grace>) =
                graces.drain(..).partition(|g| g.voice == voice);
            *graces = other;
            mine
        };
        if !mine.is_empty() {
            let first = mine[0].slot;
            let slots = mine.iter().map(|g| g.slot - first).max().unwrap_or(0) as i64 + 1;
            let tpq = self.out.tpq as i64;
            let g = (tpq / 8).min(dur / (2 * slots)).max(1);
            let before = mine.iter().any(|x| x.steal_previous);
            for x in &mine {
                let k = (x.slot - first) as i64;
                let at = if before {
                    onset - (slots - k) * g
                } else {
                    onset + k * g
                };
                self.push_grace(part, mi, at, g as u64, x, n);
            }
            if !before {
                *chord_shift = Some((onset, slots * g));
                onset += slots * g;
                dur -= slots * g;
            }
        } else if chord {
            if let Some((at, shift)) = *chord_shift {
                if at == onset {
                    onset += shift;
                    dur = (dur - shift).max(0);
                }
            }
        } else {
            *chord_shift = None;
        }
        self.push_note(
            part,
            mi,
            onset,
            dur.max(0) as u64,
            p,
            velocity,
            tie_start,
            tie_stop,
            Some(n),
        );
        if st.double != 0 {
            self.push_note(
                part,
                mi,
                onset,
                dur.max(0) as u64,
                p + st.double,
                velocity,
                tie_start,
                tie_stop,
                Some(n),
            );
        }
        Ok(())
    }

    /// A grace note of `Grace` `x` at `onset` lasting `dur` ticks (errors point at node `n`,
    /// the note it leans on).
    fn push_grace(&mut self, part: usize, mi: usize, onset: i64, dur: u64, x: &Grace, n: Node) {
        self.push_note(
            part,
            mi,
            onset,
            dur,
            x.pitch,
            x.velocity,
            x.tie_start,
            false,
            Some(n),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push_note(
        &mut self,
        part: usize,
        mi: usize,
        onset: i64,
        dur: u64,
        pitch: i32,
        velocity: Option<u8>,
        tie_start: bool,
        tie_stop: bool,
        at: Option<Node>,
    ) {
        let Some(pitch) = u8::try_from(pitch).ok().filter(|&p| p <= 127) else {
            if let Some(at) = at {
                self.warn(
                    "pitch-range",
                    at,
                    format!("a note of MIDI pitch {pitch} is outside 0-127 and is left out"),
                );
            }
            return;
        };
        self.out.parts[part].notes += 1;
        self.out.notes.push(RawNote {
            part: part as u16,
            measure: mi as u32,
            onset,
            dur,
            pitch,
            // 0 = from the dynamics in force, filled in at the end of the measure.
            velocity: velocity.unwrap_or(0),
            tie_start,
            tie_stop,
        });
    }

    /// A `<direction>`: marks, words (and the jumps they name), dynamics, tempo, at the
    /// cursor (plus its `<offset>`: always for where a mark is shown, for tempo and dynamics
    /// only with `sound="yes"`).
    fn direction(
        &mut self,
        d: Node<'a, 'input>,
        mi: usize,
        cursor: i64,
        st: &PartState,
    ) -> Result<()> {
        let mut offset = 0i64;
        let mut offset_sounds = false;
        let mut words: Vec<String> = Vec::new();
        let mut rehearsals: Vec<String> = Vec::new();
        let mut segno = false;
        let mut coda = false;
        let mut dynamic: Option<u8> = None;
        let mut metronome: Option<f64> = None;
        let mut sound: Option<Node> = None;
        for c in d.children() {
            match c.name() {
                "direction-type" => {
                    for t in c.children() {
                        match t.name() {
                            "rehearsal" => rehearsals.push(all_text(t)),
                            "words" => words.push(all_text(t)),
                            "segno" => segno = true,
                            "coda" => coda = true,
                            "dynamics" => {
                                for m in t.children() {
                                    if let Some(v) = dynamic_velocity(m.name()) {
                                        dynamic = Some(v);
                                    }
                                }
                            }
                            "metronome" => metronome = metronome_qpm(t),
                            _ => {}
                        }
                    }
                }
                "offset" => {
                    let text = c.text().unwrap_or("").trim();
                    if let Ok(v) = text.parse::<f64>() {
                        if v.is_finite() {
                            if let Some(tpd) = st.ticks_per_div {
                                offset = (v * tpd as f64).round().clamp(-1e12, 1e12) as i64;
                            }
                        }
                    }
                    offset_sounds = c.attribute("sound") == Some("yes");
                }
                "sound" => sound = Some(c),
                _ => {}
            }
        }
        let length_cap = (MAX_MEASURE_QUARTERS * self.out.tpq) as i64;
        let visual = (cursor + offset).clamp(0, length_cap) as u64;
        let audible = if offset_sounds {
            (cursor + offset).clamp(0, length_cap)
        } else {
            cursor
        };
        let mut jumps_from_sound = false;
        if let Some(s) = sound {
            let mut tempo_given = false;
            self.sound(
                s,
                mi,
                audible,
                &mut Some((&mut tempo_given, &mut jumps_from_sound)),
            );
            if tempo_given {
                metronome = None;
            }
            if s.attribute("dynamics").is_some() {
                dynamic = None;
            }
        }
        if let Some(qpm) = metronome {
            self.out.tempos.push((mi as u32, audible as u64, qpm));
        }
        if let Some(v) = dynamic {
            self.dyn_events.push((audible, v));
        }
        let line = self.line(d);
        let m = &mut self.out.measures[mi];
        if segno && !jumps_from_sound {
            m.segno.push(None);
        }
        if coda {
            m.coda_symbols += 1;
        }
        let text = words.join(" ").trim().to_string();
        if !jumps_from_sound {
            match word_jump(&text) {
                Some(WordJump::DaCapo) => m.da_capo = true,
                Some(WordJump::DalSegno) if m.dal_segno.is_none() => m.dal_segno = Some(None),
                Some(WordJump::Fine) => m.fine = true,
                Some(WordJump::ToCoda) => m.to_coda.push(None),
                Some(WordJump::Coda) => m.coda_targets.push(None),
                Some(WordJump::DalSegno) | None => {}
            }
            if matches!(
                word_jump(&text),
                Some(WordJump::DaCapo | WordJump::DalSegno | WordJump::ToCoda)
            ) && m.jump_line == 0
            {
                m.jump_line = line;
            }
        }
        for r in rehearsals.into_iter().filter(|r| !r.is_empty()) {
            self.mark(mi, visual, MarkKind::Rehearsal, r);
        }
        if !text.is_empty() {
            self.mark(mi, visual, MarkKind::Words, text);
        }
        Ok(())
    }

    fn mark(&mut self, mi: usize, tick: u64, kind: MarkKind, text: String) {
        if self.seen_marks.insert((mi as u32, tick, text.clone())) {
            self.out.marks.push(RawMark {
                measure: mi as u32,
                tick,
                kind,
                text,
            });
        }
    }

    /// A `<sound>` element: tempo, dynamics and jumps. `flags`, when given, receives whether
    /// it set a tempo and whether it carried a jump or a segno/coda.
    fn sound(&mut self, s: Node, mi: usize, at: i64, flags: &mut Option<(&mut bool, &mut bool)>) {
        let line = self.line(s);
        if let Some(t) = s.attribute("tempo") {
            match t.trim().parse::<f64>() {
                Ok(q) if q.is_finite() && q > 0.0 => {
                    self.out
                        .tempos
                        .push((mi as u32, at.max(0) as u64, q.clamp(1.0, 2000.0)));
                    if let Some((tempo, _)) = flags {
                        **tempo = true;
                    }
                }
                _ => self.warn("tempo", s, format!("tempo '{t}' ignored")),
            }
        }
        if let Some(v) = s.attribute("dynamics") {
            if let Ok(v) = v.trim().parse::<f64>() {
                if v.is_finite() && v >= 0.0 {
                    self.dyn_events
                        .push((at, (v * 0.9).round().clamp(1.0, 127.0) as u8));
                }
            }
        }
        let id = |name: &str| {
            s.attribute(name)
                .map(|v| v.trim().to_string())
                .map(|v| (!v.is_empty() && v != "yes").then_some(v))
        };
        let m = &mut self.out.measures[mi];
        let mut jump = false;
        if s.attribute("dacapo") == Some("yes") {
            m.da_capo = true;
            jump = true;
        }
        if let Some(target) = id("dalsegno") {
            m.dal_segno = Some(target);
            jump = true;
        }
        if let Some(target) = id("tocoda") {
            m.to_coda.push(target);
            jump = true;
        }
        if jump && m.jump_line == 0 {
            m.jump_line = line;
        }
        let mut mark = jump;
        if let Some(name) = id("segno") {
            m.segno.push(name);
            mark = true;
        }
        if let Some(name) = id("coda") {
            m.coda_targets.push(name);
            mark = true;
        }
        if s.attribute("fine").is_some() {
            m.fine = true;
            mark = true;
        }
        if let Some((_, jumps)) = flags {
            **jumps |= mark;
        }
    }

    fn barline(&mut self, b: Node, mi: usize) {
        let right = b.attribute("location").unwrap_or("right") == "right";
        let left = b.attribute("location") == Some("left");
        for c in b.children() {
            match c.name() {
                "bar-style" => {
                    let style = c.text().unwrap_or("").trim();
                    if right && matches!(style, "light-heavy" | "heavy-heavy") {
                        self.out.measures[mi].final_barline = true;
                    }
                }
                "repeat" => match c.attribute("direction") {
                    Some("forward") => {
                        if right {
                            // Written at the end of the previous measure's barline.
                            let next = mi + 1;
                            while self.out.measures.len() <= next {
                                self.out.measures.push(MeasureData::default());
                            }
                            self.out.measures[next].forward_repeat = true;
                        } else {
                            self.out.measures[mi].forward_repeat = true;
                        }
                    }
                    Some("backward") => {
                        let times = match c.attribute("times") {
                            None => 2,
                            Some(t) => match t.trim().parse::<u32>() {
                                Ok(v) if v >= 1 => v.min(MAX_REPEAT_TIMES),
                                _ => {
                                    self.warn("repeat", c, format!("repeat times '{t}' read as 2"));
                                    2
                                }
                            },
                        };
                        let target = if left {
                            if mi == 0 {
                                self.warn(
                                    "repeat",
                                    c,
                                    "a backward repeat at the start of the score is ignored",
                                );
                                continue;
                            }
                            mi - 1
                        } else {
                            mi
                        };
                        let m = &mut self.out.measures[target];
                        m.backward_repeat = Some(m.backward_repeat.unwrap_or(0).max(times));
                        if c.attribute("after-jump") == Some("yes") {
                            m.repeat_after_jump = true;
                        }
                    }
                    _ => self.warn("repeat", c, "a repeat without a direction is ignored"),
                },
                "ending" => {
                    let number = c.attribute("number").unwrap_or("");
                    match c.attribute("type") {
                        Some("start") => {
                            let numbers = ending_numbers(number);
                            // Parts repeat their endings: the first one read counts.
                            if self.out.measures[mi].ending_start.is_some() {
                                continue;
                            }
                            if numbers.is_empty() {
                                self.warn(
                                    "ending",
                                    c,
                                    format!(
                                        "ending number '{number}': its passes are taken from its \
                                         place among the endings"
                                    ),
                                );
                            }
                            let line = self.line(c);
                            let m = &mut self.out.measures[mi];
                            if m.ending_start.is_none() {
                                m.ending_start = Some(EndingMark { numbers, line });
                            }
                        }
                        Some("stop" | "discontinue") => self.out.measures[mi].ending_stop = true,
                        _ => {}
                    }
                }
                "segno" => self.out.measures[mi].segno.push(None),
                "coda" => self.out.measures[mi].coda_symbols += 1,
                _ => {}
            }
        }
    }

    /// Fill in what the parts did not say: measure lengths of empty measures and time
    /// signatures carried forward.
    fn finish_measures(&mut self) {
        let tpq = self.out.tpq;
        let mut time = (4u32, 4u32);
        for m in &mut self.out.measures {
            if let Some(t) = m.time {
                time = t;
            }
            m.time = Some(time);
            if m.length == 0 {
                m.length = nominal_ticks(time, tpq);
            }
        }
    }
}

/// Length of a full measure of `time` in ticks.
pub(crate) fn nominal_ticks(time: (u32, u32), tpq: u64) -> u64 {
    ((time.0 as f64) * 4.0 * tpq as f64 / time.1 as f64).round() as u64
}

fn parse_divisions(text: &str) -> Option<u64> {
    let v: f64 = text.parse().ok()?;
    (v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= 1e9).then_some(v as u64)
}

/// Quarter notes per minute of a `<metronome>` (`<beat-unit>` + dots, `<per-minute>`).
fn metronome_qpm(m: Node) -> Option<f64> {
    let unit = child_text(m, "beat-unit").and_then(type_quarters)?;
    if m.children().filter(|c| c.is("beat-unit")).count() > 1 {
        return None; // a metric modulation, not a tempo
    }
    let dots = m.children().filter(|c| c.is("beat-unit-dot")).count() as i32;
    let per_minute = child_text(m, "per-minute").and_then(leading_number)?;
    let qpm = per_minute * unit * (2.0 - 0.5f64.powi(dots));
    (qpm.is_finite() && qpm > 0.0).then_some(qpm.clamp(1.0, 2000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_words_are_read_leniently() {
        assert_eq!(word_jump("D.C. al Fine"), Some(WordJump::DaCapo));
        assert_eq!(word_jump("Da Capo"), Some(WordJump::DaCapo));
        assert_eq!(word_jump("d. s. al coda"), Some(WordJump::DalSegno));
        assert_eq!(word_jump("Dal Segno"), Some(WordJump::DalSegno));
        assert_eq!(word_jump("Fine"), Some(WordJump::Fine));
        assert_eq!(word_jump("To Coda"), Some(WordJump::ToCoda));
        assert_eq!(word_jump("Coda"), Some(WordJump::Coda));
        assert_eq!(word_jump("dolce"), None);
        assert_eq!(word_jump("dim."), None);
        assert_eq!(word_jump("Allegro"), None);
        assert_eq!(word_jump("dcresc"), None);
    }

    #[test]
    fn ending_numbers_lenient() {
        assert_eq!(ending_numbers("1"), vec![1]);
        assert_eq!(ending_numbers("1, 2"), vec![1, 2]);
        assert_eq!(ending_numbers("1,2"), vec![1, 2]);
        assert_eq!(ending_numbers("1. 3."), vec![1, 3]);
        assert_eq!(ending_numbers("1-3"), vec![1, 2, 3]);
        assert!(ending_numbers("").is_empty());
        assert!(ending_numbers("x").is_empty());
    }

    #[test]
    fn lines_index() {
        let l = Lines::new("a\nbc\n\nd");
        assert_eq!(l.line(0), 1);
        assert_eq!(l.line(2), 2);
        assert_eq!(l.line(5), 3);
        assert_eq!(l.line(6), 4);
    }
}
