//! The printed score ([`Parsed`]) laid out in performance order: the crate's [`Score`] (notes
//! in seconds, tempo and meter maps, markers) plus its [`PrintedLayout`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::read::{nominal_ticks, xml_error, MeasureData, Parsed, DEFAULT_QPM};
use super::unfold::unfold;
use super::{LayoutMeasure, MarkKind, PageStart, PrintedLayout, PrintedMeasure, ScoreMark};
use crate::score::midi::{Marker, MarkerKind, Note, Score, MAX_DURATION_S};
use crate::score::timemap::{MeterMap, TempoMap, TickTiming};
use crate::Result;

/// Ticks per quarter of the tempo map when the file's resolution does not fit MIDI's 16 bits.
const FALLBACK_TPQ: u16 = 960;

/// The printed measure number of a label: the integer it is, or starts with.
fn label_number(label: &str) -> Option<i32> {
    let t = label.trim();
    let neg = t.starts_with('-');
    let digits: String = t
        .trim_start_matches('-')
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let v: i32 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Printed measures: bar numbers, beat offsets, pages and systems.
fn printed_measures(
    ms: &[MeasureData],
    tpq: u64,
    warnings: &mut Vec<String>,
    path: &Path,
) -> Vec<PrintedMeasure> {
    let q = |t: u64| t as f64 / tpq as f64;
    let mut out: Vec<PrintedMeasure> = Vec::with_capacity(ms.len());
    let (mut page, mut system) = (1u32, 1u32);
    let mut unnumbered = 0;
    for (i, m) in ms.iter().enumerate() {
        let time = m.time.unwrap_or((4, 4));
        let nominal = nominal_ticks(time, tpq);
        let prev = out.last();
        let first_short = i == 0 && m.length < nominal;
        let bar = match label_number(&m.label) {
            Some(b) => b,
            None if m.label.is_empty() => {
                unnumbered += 1;
                prev.map_or(if first_short { 0 } else { 1 }, |p| p.bar + 1)
            }
            None => prev.map_or(if first_short { 0 } else { 1 }, |p| p.bar),
        };
        let length_quarters = q(m.length);
        let nominal_q = q(nominal);
        let mut offset_quarters = 0.0;
        if m.length < nominal {
            let continues = prev.filter(|p| {
                p.bar == bar
                    && p.length_quarters + p.offset_quarters < nominal_q - 1e-9
                    && p.offset_quarters + p.length_quarters + length_quarters <= nominal_q + 1e-9
            });
            if let Some(p) = continues {
                offset_quarters = p.offset_quarters + p.length_quarters;
            } else if i == 0 || m.implicit {
                offset_quarters = nominal_q - length_quarters;
            }
        }
        if i > 0 {
            if m.new_page {
                page += 1 + m.blank_pages;
                system = 1;
            } else if m.new_system {
                system += 1;
            }
        }
        out.push(PrintedMeasure {
            label: m.label.clone(),
            bar,
            implicit: m.implicit,
            page,
            system,
            length_quarters,
            offset_quarters,
            numerator: time.0,
            denominator: time.1,
            line: m.line,
        });
    }
    if unnumbered > 0 {
        let msg = format!(
            "{}: {unnumbered} measures have no number; they are numbered on from the one before",
            path.display()
        );
        tracing::warn!("{msg}");
        warnings.push(msg);
    }
    out
}

/// A note of the performance, in ticks, before tie merging.
struct PerfNote {
    onset: i64,
    end: i64,
    pitch: u8,
    part: u16,
    velocity: u8,
    tie_start: bool,
    tie_stop: bool,
}

/// The power of two nearest `den` (MIDI time signatures need one).
fn power_of_two(den: u32) -> u32 {
    if den.is_power_of_two() {
        den
    } else {
        den.next_power_of_two().min(1 << 15)
    }
}

pub(crate) fn build(
    mut parsed: Parsed,
    file: &Path,
    path: &Path,
    options: &super::MusicXmlOptions,
    compressed: bool,
) -> Result<Score> {
    let repeats = options.repeats;
    let tpq = parsed.tpq;
    let ms = &parsed.measures;
    let n = ms.len();
    let mut warnings = std::mem::take(&mut parsed.warnings);
    let printed = printed_measures(ms, tpq, &mut warnings, path);
    let order = unfold(ms, repeats, path, &mut warnings)?;

    // Start of each performed measure (ticks).
    let mut starts: Vec<u64> = Vec::with_capacity(order.len() + 1);
    let mut at = 0u64;
    for &(i, _) in &order {
        starts.push(at);
        at += ms[i].length;
    }

    // Tempo: the tempo printed before each measure, then its own changes.
    let mut tempo_first = vec![0usize; n + 1];
    for (k, slot) in tempo_first.iter_mut().enumerate() {
        *slot = parsed.tempos.partition_point(|t| (t.0 as usize) < k);
    }
    let mut tempo_before = vec![DEFAULT_QPM; n];
    let mut state = DEFAULT_QPM;
    for (i, slot) in tempo_before.iter_mut().enumerate() {
        *slot = state;
        if let Some(t) = parsed.tempos[tempo_first[i]..tempo_first[i + 1]].last() {
            state = t.2;
        }
    }
    let mut tempo_changes: Vec<(u64, f64)> = Vec::new();
    for (k, &(i, _)) in order.iter().enumerate() {
        let s = starts[k];
        tempo_changes.push((s, tempo_before[i]));
        for t in &parsed.tempos[tempo_first[i]..tempo_first[i + 1]] {
            tempo_changes.push((s + t.1.min(ms[i].length), t.2));
        }
    }
    // Of several changes at one tick the last wins; unchanged tempi are dropped.
    let mut tempi: Vec<(u64, f64)> = Vec::with_capacity(tempo_changes.len());
    for (t, qpm) in tempo_changes {
        if let Some(last) = tempi.last_mut() {
            if last.0 == t {
                last.1 = qpm;
                continue;
            }
        }
        tempi.push((t, qpm));
    }
    if let Some(qpm) = options.qpm.filter(|q| q.is_finite() && *q > 0.0) {
        tempi = vec![(0, qpm)];
    }
    if let Some(f) = options.tempo_scale.filter(|f| f.is_finite() && *f > 0.0) {
        for t in &mut tempi {
            t.1 *= f;
        }
    }
    tempi.dedup_by(|b, a| a.1 == b.1);
    let (map_tpq, scale) = match u16::try_from(tpq) {
        Ok(t) => (t, 1.0),
        Err(_) => (FALLBACK_TPQ, FALLBACK_TPQ as f64 / tpq as f64),
    };
    let map_tick = |t: i64| t as f64 * scale;
    let us: Vec<(u64, u32)> = tempi
        .iter()
        .map(|&(t, qpm)| {
            (
                (t as f64 * scale).round() as u64,
                (60e6 / qpm).round().clamp(1.0, u32::MAX as f64) as u32,
            )
        })
        .collect();
    let tempo_map = TempoMap::new(
        TickTiming::Metrical {
            ticks_per_quarter: map_tpq,
        },
        &us,
    )
    .map_err(|r| xml_error(path, 0, r))?;

    // Notes along the performance.
    let notes = &parsed.notes;
    let mut note_first = vec![0usize; n + 1];
    for (k, slot) in note_first.iter_mut().enumerate() {
        *slot = notes.partition_point(|x| (x.measure as usize) < k);
    }
    let mut perf: Vec<PerfNote> = Vec::new();
    for (k, &(i, _)) in order.iter().enumerate() {
        let s = starts[k] as i64;
        for x in &notes[note_first[i]..note_first[i + 1]] {
            let onset = (s + x.onset).max(0);
            perf.push(PerfNote {
                onset,
                end: onset + x.dur as i64,
                pitch: x.pitch,
                part: x.part,
                velocity: x.velocity.max(1),
                tie_start: x.tie_start,
                tie_stop: x.tie_stop,
            });
        }
    }
    perf.sort_by_key(|x| x.onset);
    // Ties: a tie-stop note continues the open tie of its part and pitch when it starts
    // where that note ends (within an eighth of a quarter: grace notes may have moved it).
    let tolerance = (tpq / 8) as i64;
    let mut merged: Vec<PerfNote> = Vec::with_capacity(perf.len());
    let mut open: HashMap<(u16, u8), usize> = HashMap::new();
    for x in perf {
        let key = (x.part, x.pitch);
        if x.tie_stop {
            if let Some(&j) = open.get(&key) {
                if (merged[j].end - x.onset).abs() <= tolerance {
                    merged[j].end = merged[j].end.max(x.end);
                    if !x.tie_start {
                        open.remove(&key);
                    }
                    continue;
                }
            }
        }
        if x.tie_start {
            open.insert(key, merged.len());
        } else {
            open.remove(&key);
        }
        merged.push(x);
    }
    if merged.is_empty() {
        return Err(xml_error(path, 0, "the score has no notes"));
    }
    let parts = &parsed.parts;
    let mut out_notes: Vec<Note> = merged
        .iter()
        .map(|x| {
            let part = &parts[x.part as usize];
            let on = tempo_map.tick_to_s(map_tick(x.onset));
            let off = tempo_map.tick_to_s(map_tick(x.end));
            Note {
                onset_s: on,
                offset_s: off,
                key_offset_s: off,
                pitch: x.pitch,
                velocity: x.velocity.min(127),
                channel: part.channel,
                program: part.program,
                is_drum: false,
                track: x.part as usize,
            }
        })
        .collect();
    out_notes.sort_by(|a, b| {
        a.onset_s
            .total_cmp(&b.onset_s)
            .then(a.pitch.cmp(&b.pitch))
            .then(a.channel.cmp(&b.channel))
            .then(a.track.cmp(&b.track))
    });
    let duration_s = out_notes.iter().map(|x| x.offset_s).fold(0.0, f64::max);
    if duration_s > MAX_DURATION_S {
        return Err(xml_error(
            path,
            0,
            format!("the score would last {duration_s:.0} s, more than {MAX_DURATION_S:.0} s"),
        ));
    }

    // Meter: a change wherever the signature changes or a measure does not start on the
    // bar grid of the one before (short and long measures), so the meter map's bar lines
    // are the measures' (its bars count performed measures; printed numbers are in the
    // layout).
    let qf = |t: u64| t as f64 / tpq as f64;
    let mut meter: Vec<(f64, u8, u32)> = Vec::new();
    let mut pickup_quarters = 0.0;
    let mut origin = 0u64;
    let mut cur: Option<(u32, u32)> = None;
    for (k, &(i, _)) in order.iter().enumerate() {
        let (num, den) = ms[i].time.unwrap_or((4, 4));
        let sig = (num.clamp(1, 255), power_of_two(den));
        let nominal = nominal_ticks(sig, tpq).max(1);
        let s = starts[k];
        if k == 0 {
            meter.push((0.0, sig.0 as u8, sig.1));
            if printed[i].offset_quarters > 0.0 && ms[i].length < nominal {
                pickup_quarters = qf(ms[i].length);
                origin = ms[i].length;
            }
            cur = Some(sig);
            continue;
        }
        let on_grid = s >= origin && (s - origin).is_multiple_of(nominal);
        if Some(sig) != cur || !on_grid {
            meter.push((qf(s), sig.0 as u8, sig.1));
            origin = s;
            cur = Some(sig);
        }
    }
    let meter_map = MeterMap::with_pickup(&meter, pickup_quarters)
        .or_else(|_| MeterMap::new(&meter))
        .map_err(|r| xml_error(path, 0, r))?;

    // The layout in performance order.
    let measures: Vec<LayoutMeasure> = order
        .iter()
        .enumerate()
        .map(|(k, &(i, pass))| LayoutMeasure {
            printed: i,
            start_beat: qf(starts[k]),
            length_quarters: qf(ms[i].length),
            bar: printed[i].bar,
            label: printed[i].label.clone(),
            pass,
            page: printed[i].page,
            system: printed[i].system,
        })
        .collect();
    let beat_s = |beat: f64| tempo_map.beat_to_s(beat);
    let mut mark_first = vec![0usize; n + 1];
    parsed.marks.sort_by_key(|m| (m.measure, m.tick));
    for (k, slot) in mark_first.iter_mut().enumerate() {
        *slot = parsed.marks.partition_point(|m| (m.measure as usize) < k);
    }
    let mut marks: Vec<ScoreMark> = Vec::new();
    for (k, &(i, pass)) in order.iter().enumerate() {
        for m in &parsed.marks[mark_first[i]..mark_first[i + 1]] {
            let beat = qf(starts[k] + m.tick.min(ms[i].length));
            marks.push(ScoreMark {
                kind: m.kind,
                text: m.text.clone(),
                beat,
                time_s: beat_s(beat),
                measure: k,
                pass,
            });
        }
    }
    let markers: Vec<Marker> = marks
        .iter()
        .map(|m| Marker {
            name: m.text.clone(),
            time_s: m.time_s,
            kind: match m.kind {
                MarkKind::Rehearsal => MarkerKind::Rehearsal,
                MarkKind::Words => MarkerKind::Words,
            },
        })
        .collect();
    let mut pages: Vec<PageStart> = Vec::new();
    for (k, m) in measures.iter().enumerate() {
        if pages.last().is_none_or(|p| p.page != m.page) {
            pages.push(PageStart {
                page: m.page,
                measure: k,
                beat: m.start_beat,
                time_s: beat_s(m.start_beat),
                bar: m.bar,
                pass: m.pass,
            });
        }
    }
    let page_count = printed.last().map_or(1, |p| p.page);
    let layout = PrintedLayout {
        format: format!(
            "{}{}",
            parsed.format,
            if compressed { " (.mxl)" } else { "" }
        ),
        parts: parsed.parts.clone(),
        printed,
        measures,
        marks,
        pages,
        page_count,
        pickup_quarters,
        repeats,
        warnings,
    };
    Ok(Score {
        notes: out_notes,
        duration_s,
        markers,
        tempo_map,
        meter_map,
        track_count: layout.parts.len(),
        path: file.to_path_buf(),
        printed: Some(Arc::new(layout)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label_number("12"), Some(12));
        assert_eq!(label_number("4a"), Some(4));
        assert_eq!(label_number("X1"), None);
        assert_eq!(label_number("-1"), Some(-1));
        assert_eq!(label_number(""), None);
    }
}
