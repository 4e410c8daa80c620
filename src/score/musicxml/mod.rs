//! MusicXML scores: `.musicxml`/`.xml` (partwise or timewise) and compressed `.mxl`, read
//! into the crate's [`Score`] for the performance order of the measures (repeats unfolded,
//! see [`unfold`]), plus the printed score's terms in [`Score::printed`]: printed measure
//! numbers and labels, the pass through a repeat, pages and systems, rehearsal marks and
//! words ([`PrintedLayout`]).
//!
//! What is read, and how:
//! - Every part; voices, `<backup>`/`<forward>`, chords and tuplets (their `<duration>` is
//!   the sounding length); ties are merged along the unfolded performance (a tie into a
//!   measure that is not played next is struck again); `<divisions>` may change anywhere.
//! - Pitch is sounding pitch: `<transpose>` (chromatic steps and octave change, per staff
//!   when numbered; `<double/>` adds the octave). Microtonal `<alter>` rounds to a semitone.
//! - Grace notes are played on the beat and steal from the note they precede: each an
//!   eighth of a quarter note, all together at most half of that note (a MIDI rendering of
//!   the development corpus, ASAP's, does much the same: 0.13 quarter notes). With
//!   `steal-time-previous` they sound before the beat instead. Cue notes and unpitched
//!   (percussion) notes take their time but are not played; rests likewise.
//! - Tempo: `<sound tempo>` (quarter notes a minute), else a `<metronome>` mark; 120 until
//!   the first. Each repeated passage starts at the tempo printed before it.
//! - Velocity: `<sound dynamics>` (percent of a forte of 90), else dynamics marks (pp = 33,
//!   p = 49, mf = 80, f = 96, ...: MuseScore's table), per part; a note's own `dynamics`
//!   attribute wins; mf (80) before any mark.
//! - Programs: `<midi-program>`, else guessed from the part name (voices: choir aahs,
//!   strings, organ, clarinet, ...), else piano. One MIDI channel per part (never 10).
//! - Measure numbers: the `number` attribute is the label; `bar` is that number, or for a
//!   label such as "4a" the integer it starts with, or for a label without one ("X1") the
//!   bar of the measure before. A short first measure is a pickup (its beats end the bar:
//!   a one-quarter pickup in 4/4 is bar 0 beat 4, as printed); a short measure that
//!   completes the short one before it with the same bar number (4 + 4a) continues its
//!   beats.
//! - Pages and systems from `<print new-page>`/`<print new-system>` (either part), 1-based.
//! - Rehearsal marks and words become [`ScoreMark`]s and also
//!   [`Marker`](crate::score::Marker)s of the score (kinds
//!   [`MarkerKind::Rehearsal`](crate::score::MarkerKind::Rehearsal) and `Words`), once per
//!   unfolded occurrence.
//!
//! Untidy files are read with a warning (logged with `tracing::warn!` and kept in
//! [`PrintedLayout::warnings`]): an ending without a number, a backward repeat without a
//! forward one, a note without `<duration>`, a backup past the measure start. Errors
//! ([`crate::Error::MusicXml`]) name the file and line: malformed XML, an `.mxl` whose
//! rootfile is missing or broken, zero or missing `<divisions>`, a D.S. without a segno, a
//! score without a note.

mod build;
mod container;
mod dom;
mod read;
pub mod unfold;

use std::borrow::Cow;
use std::path::Path;

use super::midi::Score;
use crate::{Error, Result};

/// Which order of the printed measures becomes the score's timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RepeatMode {
    /// Repeats, endings, D.C./D.S., Fine and codas as performed (see [`unfold`]).
    #[default]
    Performed,
    /// No repeat barline is taken (the last ending of each group is played); D.C., D.S.,
    /// Fine and codas still are.
    NoRepeats,
    /// Every measure once, in print order (for a structure file that says the order).
    AsWritten,
}

/// How a MusicXML file is read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MusicXmlOptions {
    /// The order of the measures.
    pub repeats: RepeatMode,
    /// Play the score at this constant tempo (quarter notes a minute) instead of its tempo
    /// marks (the performer's tempo, when it is known; added in this version). None: the
    /// marks.
    pub qpm: Option<f64>,
    /// Play every tempo mark this many times faster (0.8: at 80 % of the marks; added in
    /// this version). None: as marked. Applied after [`MusicXmlOptions::qpm`].
    pub tempo_scale: Option<f64>,
}

/// One part of the score.
#[derive(Clone, Debug, PartialEq)]
pub struct PartInfo {
    /// The part's id (`P1`).
    pub id: String,
    /// Its name (`<part-name>`, else the instrument name).
    pub name: String,
    /// GM program (0-based) its notes are rendered with.
    pub program: u8,
    /// True when the program was guessed from the name (no `<midi-program>`).
    pub program_guessed: bool,
    /// MIDI channel (0-based) of its notes; [`crate::score::Note::track`] is the part index.
    pub channel: u8,
    /// Written-to-sounding transposition at the end of the part (semitones).
    pub transpose_semitones: i32,
    /// Notes read in the printed score (before unfolding and tie merging).
    pub notes: usize,
}

/// A measure of the printed score (print order).
#[derive(Clone, Debug, PartialEq)]
pub struct PrintedMeasure {
    /// The printed label (the `number` attribute: "12", "4a", "X1").
    pub label: String,
    /// The printed measure number (see the module docs for labels that are not integers).
    pub bar: i32,
    /// Not counted in the numbering (`implicit="yes"`).
    pub implicit: bool,
    /// Page (1-based).
    pub page: u32,
    /// System on its page (1-based).
    pub system: u32,
    /// Length (quarter notes) as played.
    pub length_quarters: f64,
    /// Quarter notes of the printed bar before this measure starts: the missing start of a
    /// pickup, or the first half of a bar split in two (4 + 4a).
    pub offset_quarters: f64,
    /// Time signature in force.
    pub numerator: u32,
    /// Its denominator (the beat unit of [`PrintedPosition::beat`]).
    pub denominator: u32,
    /// Line of the `<measure>` element.
    pub line: usize,
}

/// A measure of the performance (unfolded order).
#[derive(Clone, Debug, PartialEq)]
pub struct LayoutMeasure {
    /// Index into [`PrintedLayout::printed`].
    pub printed: usize,
    /// Start (quarter notes from the start of the unfolded score: the score's beat).
    pub start_beat: f64,
    /// Length (quarter notes).
    pub length_quarters: f64,
    /// Printed measure number.
    pub bar: i32,
    /// Printed label.
    pub label: String,
    /// How many times this printed measure has been played, this time included (1 the first
    /// time; 2 the second time through a repeat).
    pub pass: u32,
    /// Page (1-based).
    pub page: u32,
    /// System on the page (1-based).
    pub system: u32,
}

/// Kind of a [`ScoreMark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// `<rehearsal>`: "A", "B", "12".
    Rehearsal,
    /// `<words>`: "Tutti", "Allegro", "D.C. al Fine".
    Words,
}

/// A rehearsal mark or words, once per unfolded occurrence.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreMark {
    /// Rehearsal mark or words.
    pub kind: MarkKind,
    /// The text, trimmed.
    pub text: String,
    /// Position (quarter notes in the unfolded score).
    pub beat: f64,
    /// Position (score seconds, at the marked tempo).
    pub time_s: f64,
    /// Index into [`PrintedLayout::measures`].
    pub measure: usize,
    /// Pass of that measure.
    pub pass: u32,
}

/// Where the performance enters a page (the first page included).
#[derive(Clone, Debug, PartialEq)]
pub struct PageStart {
    /// Page (1-based).
    pub page: u32,
    /// Index into [`PrintedLayout::measures`] of the first measure played on it.
    pub measure: usize,
    /// Position (quarter notes in the unfolded score).
    pub beat: f64,
    /// Position (score seconds).
    pub time_s: f64,
    /// Printed bar and pass of that measure.
    pub bar: i32,
    /// Pass of that measure.
    pub pass: u32,
}

/// The printed score's terms for a score read from MusicXML ([`Score::printed`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PrintedLayout {
    /// "partwise" or "timewise", with " (.mxl)" for compressed files.
    pub format: String,
    /// The parts, in score order ([`crate::score::Note::track`] indexes them).
    pub parts: Vec<PartInfo>,
    /// Measures in print order.
    pub printed: Vec<PrintedMeasure>,
    /// Measures in performance order.
    pub measures: Vec<LayoutMeasure>,
    /// Rehearsal marks and words in performance order.
    pub marks: Vec<ScoreMark>,
    /// Each entry into a page in performance order (turning back for a repeat included).
    pub pages: Vec<PageStart>,
    /// Number of pages of the printed score.
    pub page_count: u32,
    /// Length of the pickup (quarter notes), 0 without one.
    pub pickup_quarters: f64,
    /// The order the measures were laid out in.
    pub repeats: RepeatMode,
    /// What was read leniently.
    pub warnings: Vec<String>,
}

/// A position in the printed score's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrintedPosition<'a> {
    /// Index into [`PrintedLayout::measures`].
    pub measure: usize,
    /// Printed measure number.
    pub bar: i32,
    /// Beat within the printed bar (1-based, in units of the time signature's denominator).
    pub beat: f64,
    /// Pass through this measure (1-based).
    pub pass: u32,
    /// The measure's printed label ("4a").
    pub label: &'a str,
    /// Page (1-based).
    pub page: u32,
    /// System on the page (1-based).
    pub system: u32,
}

/// Quarter-note tolerance for "on the bar line": the tempo map's whole microseconds per
/// quarter note put a position given in seconds up to about 1e-5 quarter notes off (at 90
/// quarter notes a minute, 12 quarter notes in); 1e-4 is 0.05 ms at 120.
const EPS_Q: f64 = 1e-4;

impl PrintedLayout {
    /// Index of the performed measure holding quarter-note beat `beat` (the first before the
    /// score starts, the last after it ends).
    pub fn measure_at_beat(&self, beat: f64) -> usize {
        self.measures
            .partition_point(|m| m.start_beat <= beat + EPS_Q)
            .max(1)
            - 1
    }

    /// The printed position at quarter-note beat `beat` of the performance (before the first
    /// measure: in it, counted back; after the last: in it, counted on). None only for a
    /// layout without measures.
    pub fn position_at_beat(&self, beat: f64) -> Option<PrintedPosition<'_>> {
        let k = self.measure_at_beat(beat);
        let m = self.measures.get(k)?;
        let p = self.printed.get(m.printed)?;
        let within = (beat - m.start_beat).max(if k == 0 { f64::NEG_INFINITY } else { 0.0 });
        Some(PrintedPosition {
            measure: k,
            bar: m.bar,
            beat: 1.0 + (p.offset_quarters + within) * p.denominator as f64 / 4.0,
            pass: m.pass,
            label: &m.label,
            page: m.page,
            system: m.system,
        })
    }

    /// Quarter-note beat of the performance at printed `bar`, `beat` (1-based, denominator
    /// units) on pass `pass` (1 = the first time that measure is played), or None. A beat on
    /// the bar line ending a measure is accepted.
    pub fn beat_at(&self, bar: i32, beat: f64, pass: u32) -> Option<f64> {
        self.beat_in(|m| m.bar == bar && m.pass == pass, beat)
    }

    /// Like [`PrintedLayout::beat_at`] for the measure with printed label `label` ("4a").
    pub fn beat_at_label(&self, label: &str, beat: f64, pass: u32) -> Option<f64> {
        self.beat_in(|m| m.label == label && m.pass == pass, beat)
    }

    fn beat_in(&self, pick: impl Fn(&LayoutMeasure) -> bool, beat: f64) -> Option<f64> {
        if !beat.is_finite() {
            return None;
        }
        let mut end_hit = None;
        for m in self.measures.iter().filter(|m| pick(m)) {
            let p = self.printed.get(m.printed)?;
            let unit = 4.0 / p.denominator as f64;
            let q = (beat - 1.0) * unit - p.offset_quarters;
            if q >= -EPS_Q && q < m.length_quarters - EPS_Q {
                return Some(m.start_beat + q.max(0.0));
            }
            if (q - m.length_quarters).abs() <= EPS_Q && end_hit.is_none() {
                end_hit = Some(m.start_beat + m.length_quarters);
            }
        }
        end_hit
    }

    /// Lowest printed measure number (0 with a pickup numbered 0).
    pub fn first_bar(&self) -> i32 {
        self.printed.iter().map(|m| m.bar).min().unwrap_or(1)
    }

    /// Highest printed measure number.
    pub fn last_bar(&self) -> i32 {
        self.printed.iter().map(|m| m.bar).max().unwrap_or(1)
    }

    /// Occurrences of rehearsal mark `text` (exact, trimmed) in performance order.
    pub fn rehearsal_marks<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a ScoreMark> {
        let t = text.trim();
        self.marks
            .iter()
            .filter(move |m| m.kind == MarkKind::Rehearsal && m.text == t)
    }

    /// Occurrences of words `text` (trimmed, case-insensitive) in performance order.
    pub fn words<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a ScoreMark> {
        let t = text.trim();
        self.marks
            .iter()
            .filter(move |m| m.kind == MarkKind::Words && m.text.eq_ignore_ascii_case(t))
    }
}

impl Score {
    /// The printed position (bar, beat, pass, label, page, system) at `t_s` score seconds;
    /// None for scores without a printed layout (MIDI).
    pub fn printed_at_s(&self, t_s: f64) -> Option<PrintedPosition<'_>> {
        let layout = self.printed.as_deref()?;
        layout.position_at_beat(self.beat_at_s(t_s))
    }

    /// Seconds at printed `bar` and `beat` on pass `pass` (1-based). For MIDI scores bars
    /// are the meter map's and only pass 1 exists.
    pub fn s_at_bar_beat_pass(&self, bar: i32, beat: f64, pass: u32) -> Option<f64> {
        match self.printed.as_deref() {
            Some(layout) => layout.beat_at(bar, beat, pass).map(|q| self.s_at_beat(q)),
            None if pass == 1 => self.s_at_bar_beat(bar, beat),
            None => None,
        }
    }

    /// Read a MusicXML file (`.musicxml`, `.xml`, `.mxl`).
    pub fn load_musicxml(path: &Path, options: &MusicXmlOptions) -> Result<Score> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Score::from_musicxml_bytes(&bytes, path, options)
    }

    /// Parse MusicXML (plain or an `.mxl` archive, told apart by content) held in memory;
    /// `path` names it in messages.
    pub fn from_musicxml_bytes(
        bytes: &[u8],
        path: &Path,
        options: &MusicXmlOptions,
    ) -> Result<Score> {
        let file = path;
        let unzipped;
        let inner_path;
        // Inside an archive, messages name the rootfile as a path under the archive.
        let (data, path, compressed) = if container::is_zip(bytes) {
            let (name, data) = container::rootfile(bytes)
                .map_err(|r| read::xml_error(path, 0, format!("compressed MusicXML: {r}")))?;
            unzipped = data;
            inner_path = path.join(name);
            (unzipped.as_slice(), inner_path.as_path(), true)
        } else {
            (bytes, path, false)
        };
        let text = decode_text(data).map_err(|r| read::xml_error(path, 0, r))?;
        let lines = read::Lines::new(&text);
        let doc = dom::Dom::parse(&text).map_err(|(pos, reason)| {
            read::xml_error(path, lines.line(pos), format!("malformed XML: {reason}"))
        })?;
        let parsed = read::Reader::new(path, &lines, &doc).read()?;
        build::build(parsed, file, path, options, compressed)
    }
}

/// The text of an XML file: UTF-8 (a byte-order mark skipped), UTF-16 with a byte-order
/// mark, or Latin-1 when the declaration says so.
fn decode_text(b: &[u8]) -> std::result::Result<Cow<'_, str>, String> {
    if let Some(rest) = b.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(Cow::Borrowed)
            .map_err(|e| format!("not valid UTF-8 at byte {}", e.valid_up_to() + 3));
    }
    let utf16 = |le: bool| -> std::result::Result<Cow<'_, str>, String> {
        let units: Vec<u16> = b[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units)
            .map(Cow::Owned)
            .map_err(|_| "not valid UTF-16".to_string())
    };
    if b.starts_with(b"\xFF\xFE") {
        return utf16(true);
    }
    if b.starts_with(b"\xFE\xFF") {
        return utf16(false);
    }
    let head = &b[..b.len().min(200)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    if head.contains("encoding=\"iso-8859-1\"")
        || head.contains("encoding='iso-8859-1'")
        || head.contains("encoding=\"latin-1\"")
        || head.contains("encoding=\"windows-1252\"")
    {
        return Ok(Cow::Owned(b.iter().map(|&c| c as char).collect()));
    }
    std::str::from_utf8(b)
        .map(Cow::Borrowed)
        .map_err(|e| format!("not valid UTF-8 at byte {}", e.valid_up_to()))
}

/// Write a MusicXML text as an `.mxl` archive (container plus the score, deflated): for
/// tests and fixtures.
#[cfg(test)]
pub(crate) fn to_mxl(score_xml: &str) -> Vec<u8> {
    let container = br#"<?xml version="1.0" encoding="UTF-8"?>
<container><rootfiles><rootfile full-path="score.xml" media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>"#;
    container::write_zip(
        &[
            ("mimetype", b"application/vnd.recordare.musicxml"),
            ("META-INF/container.xml", container),
            ("score.xml", score_xml.as_bytes()),
        ],
        true,
    )
}

/// Share (0..=1) of the distinct onsets of `reference` (quarter-note beats) that lie within
/// `tolerance` quarter notes of an onset of `candidate`: how well a score's timeline matches
/// another rendering of it (the corpus compares its `score.mid` with the unfolded MusicXML
/// this way). 1 for an empty reference.
pub fn onset_coincidence(reference: &[f64], candidate: &[f64], tolerance: f64) -> f64 {
    let distinct = |v: &[f64]| {
        let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        v.dedup_by(|b, a| (*b - *a).abs() < 1e-9);
        v
    };
    let (r, c) = (distinct(reference), distinct(candidate));
    if r.is_empty() {
        return 1.0;
    }
    let hits = r
        .iter()
        .filter(|&&x| {
            let i = c.partition_point(|&y| y < x - tolerance);
            c.get(i).is_some_and(|&y| (y - x).abs() <= tolerance)
        })
        .count();
    hits as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-measure score: a pickup-free 4/4 C major arpeggio.
    pub(super) const SMALL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="4.0">
  <part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>2</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes>
      <note><pitch><step>C</step><octave>4</octave></pitch><duration>2</duration></note>
      <note><pitch><step>E</step><octave>4</octave></pitch><duration>2</duration></note>
      <note><pitch><step>G</step><octave>4</octave></pitch><duration>4</duration></note>
    </measure>
    <measure number="2">
      <barline location="left"><repeat direction="forward"/></barline>
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>8</duration></note>
      <barline location="right"><repeat direction="backward"/></barline>
    </measure>
  </part>
</score-partwise>
"#;

    fn read(bytes: &[u8]) -> Result<Score> {
        Score::from_musicxml_bytes(bytes, Path::new("t.mxl"), &MusicXmlOptions::default())
    }

    #[test]
    fn mxl_archives_and_their_errors() {
        let plain = read(SMALL.as_bytes()).unwrap();
        let zipped = read(&to_mxl(SMALL)).unwrap();
        assert_eq!(plain.notes, zipped.notes);
        assert_eq!(plain.notes.len(), 5);
        // The rootfile named in the container is missing.
        let container =
            br#"<container><rootfiles><rootfile full-path="nope.xml"/></rootfiles></container>"#;
        let zip = container::write_zip(
            &[
                ("META-INF/container.xml", container),
                ("score.xml", SMALL.as_bytes()),
            ],
            true,
        );
        let e = read(&zip).unwrap_err().to_string();
        assert!(e.starts_with("t.mxl: ") && e.contains("'nope.xml'"), "{e}");
        // A broken rootfile: cut short inside the archive.
        let mut zip = to_mxl(SMALL);
        let at = zip.len() / 2;
        zip[at] ^= 0x55;
        let e = read(&zip).unwrap_err().to_string();
        assert!(e.starts_with("t.mxl"), "{e}");
        // A malformed rootfile names its line inside the archive.
        let e = read(&to_mxl(&SMALL.replace("</part>", "</prt>")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.mxl/score.xml:16: malformed XML"), "{e}");
        // An empty archive.
        let e = read(&container::write_zip(&[], true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("container.xml"), "{e}");
    }

    #[test]
    fn text_encodings() {
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(SMALL.encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(read(&utf16).unwrap().notes.len(), 5);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(SMALL.as_bytes());
        assert_eq!(read(&bom).unwrap().notes.len(), 5);
        let latin1 = SMALL
            .replace("UTF-8", "ISO-8859-1")
            .replace("Piano", "Pian\u{f6}");
        let bytes: Vec<u8> = latin1.chars().map(|c| c as u32 as u8).collect();
        let s = read(&bytes).unwrap();
        assert_eq!(s.printed.as_deref().unwrap().parts[0].name, "Pian\u{f6}");
        let e = read(b"<score-partwise>\xff</score-partwise>").unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn onset_coincidence_counts_distinct_reference_onsets() {
        assert_eq!(onset_coincidence(&[], &[1.0], 0.1), 1.0);
        assert_eq!(onset_coincidence(&[0.0, 0.0, 1.0], &[0.05], 0.1), 0.5);
        assert_eq!(
            onset_coincidence(&[0.0, 1.0, 2.0, 3.0], &[0.0, 1.2, 2.01, 3.0], 0.02),
            0.75
        );
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::tests::SMALL;
    use super::*;
    use crate::test_util::fuzz::{edits, mutate};
    use proptest::prelude::*;

    /// Snippets inserted by the MusicXML-specific mutations: the elements whose handling has
    /// branches (repeats, endings, jumps, time, backup) with odd values.
    const SNIPPETS: &[&str] = &[
        "<backup><duration>99</duration></backup>",
        "<forward><duration>7</duration></forward>",
        "<note><chord/><pitch><step>A</step><octave>9</octave></pitch><duration>1</duration></note>",
        "<note><grace/><pitch><step>B</step><alter>-7</alter><octave>-1</octave></pitch></note>",
        "<note><pitch><step>C</step><octave>4</octave></pitch><type>breve</type><dot/></note>",
        "<barline location=\"left\"><repeat direction=\"forward\"/></barline>",
        "<barline><repeat direction=\"backward\" times=\"40\"/></barline>",
        "<barline location=\"left\"><repeat direction=\"backward\"/></barline>",
        "<barline><ending number=\"1, 2\" type=\"start\"/></barline>",
        "<barline><ending number=\"\" type=\"stop\"/></barline>",
        "<direction><direction-type><words>D.S. al Coda</words></direction-type></direction>",
        "<direction><direction-type><words>D.C. al Fine</words></direction-type></direction>",
        "<direction><direction-type><segno/><coda/></direction-type><sound tocoda=\"x\" fine=\"yes\"/></direction>",
        "<sound tempo=\"0.0001\" dynamics=\"1e9\"/>",
        "<attributes><divisions>3</divisions><time><beats>7+1</beats><beat-type>3</beat-type></time><transpose><chromatic>-99</chromatic><double/></transpose></attributes>",
        "<print new-page=\"yes\" blank-page=\"3\"/>",
        "<direction><direction-type><metronome><beat-unit>eighth</beat-unit><beat-unit-dot/><per-minute>c. 0</per-minute></metronome></direction-type><offset sound=\"yes\">-99999</offset></direction>",
        "<measure number=\"4a\" implicit=\"yes\"></measure>",
        "</measure><measure number=\"X1\">",
        "<!DOCTYPE x [<!ENTITY e \"v\">]>&e;",
    ];

    /// Apply `edits` and then insert `snippets` (index, position) into a valid file.
    fn mutant(e: &[crate::test_util::fuzz::Edit], snippets: &[(u8, u32)]) -> Vec<u8> {
        let mut b = SMALL.as_bytes().to_vec();
        for &(k, pos) in snippets {
            let s = SNIPPETS[k as usize % SNIPPETS.len()].as_bytes();
            let at = pos as usize % (b.len() + 1);
            b.splice(at..at, s.iter().copied());
        }
        mutate(&b, e)
    }

    /// The contract: a score with notes and a consistent layout, or a one-line MusicXML
    /// error naming the file.
    fn check(r: Result<Score>) -> std::result::Result<(), TestCaseError> {
        match r {
            Ok(s) => {
                prop_assert!(!s.notes.is_empty());
                prop_assert!(s.duration_s.is_finite() && s.duration_s >= 0.0);
                let layout = s.printed.as_deref().expect("layout");
                prop_assert!(layout
                    .measures
                    .windows(2)
                    .all(|w| w[1].start_beat >= w[0].start_beat));
                for n in &s.notes {
                    prop_assert!(n.onset_s.is_finite() && n.offset_s >= n.onset_s);
                }
                let _ = s.bar_beat_at_s(s.duration_s * 0.5);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(matches!(e, Error::MusicXml { .. }), "{:?}", e);
                prop_assert!(msg.starts_with("fuzz.musicxml"), "{}", msg);
                prop_assert!(!msg.contains('\n'), "{}", msg);
            }
        }
        Ok(())
    }

    fn parse(bytes: &[u8]) -> Result<Score> {
        Score::from_musicxml_bytes(
            bytes,
            Path::new("fuzz.musicxml"),
            &MusicXmlOptions::default(),
        )
    }

    #[test]
    fn snippets_alone_keep_the_file_readable_or_fail_cleanly() {
        // Every snippet at every element boundary of the valid file.
        let base = SMALL.as_bytes();
        let cuts: Vec<usize> = (0..base.len()).filter(|&i| base[i] == b'<').collect();
        let mut ok = 0;
        for snippet in SNIPPETS {
            for &at in &cuts {
                let mut b = base.to_vec();
                b.splice(at..at, snippet.bytes());
                let r = parse(&b);
                ok += r.is_ok() as usize;
                check(r).unwrap();
            }
        }
        assert!(ok > 50, "only {ok} mutants read");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn musicxml_never_panics_on_mutations(
            e in edits(4),
            snippets in proptest::collection::vec((any::<u8>(), any::<u32>()), 0..4),
        ) {
            check(parse(&mutant(&e, &snippets)))?;
        }

        #[test]
        fn musicxml_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            check(parse(&bytes))?;
        }

        #[test]
        fn mxl_never_panics_on_mutations(e in edits(4)) {
            let zip = to_mxl(SMALL);
            let mut b = zip.clone();
            // Byte-level edits only (the line edits are for text).
            let e: Vec<_> = e.into_iter().filter(|x| x.0 <= 2 || x.0 == 4).collect();
            b = crate::test_util::fuzz::mutate(&b, &e);
            check(parse(&b))?;
        }
    }
}
