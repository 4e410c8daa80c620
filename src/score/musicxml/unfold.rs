//! The order in which the printed measures are played.
//!
//! Conventions ([`RepeatMode::Performed`]):
//! - A backward repeat (`times`, default 2) goes back to the last forward repeat; without
//!   one, to the start of the score or to the last section break: the measure after the
//!   previous backward repeat or after a final (light-heavy) barline.
//! - Endings: the ending whose numbers hold the current pass through the repeated section is
//!   played and the others of its group (endings written one after the other) are skipped;
//!   past the highest number, the last ending. An ending written without a number
//!   (`number=""`) gets the lowest pass no other ending of its group claims.
//! - D.C. (to the start) and D.S. (to the segno) are taken once each, at the end of the
//!   measure that carries them. After such a jump: repeats are not taken (unless the
//!   backward repeat says `after-jump="yes"`), every ending group plays its last ending
//!   (unless its repeat is taken again after the jump),
//!   "Fine" ends the performance at the end of its measure and "To Coda" jumps to the coda
//!   at the end of its measure.
//! - Coda signs: `<sound coda>`/`<sound tocoda>` say which is which; without them a
//!   measure with the words "To Coda" is the jump and a coda sign elsewhere the target, and
//!   of two or more coda signs without such words the first is the jump and the last the
//!   target.
//! - [`RepeatMode::NoRepeats`]: as performed but no repeat barline is taken (each ending
//!   group plays its last ending); D.C., D.S., Fine and codas still apply.
//! - [`RepeatMode::AsWritten`]: every measure once, in print order.
//!
//! Jumps land on the start of a measure: a segno or coda written in the middle of a measure
//! is taken at its barline.

use std::path::Path;

use super::read::{xml_error, MeasureData};
use super::RepeatMode;
use crate::Result;

/// Most measures an unfolding may hold.
const MAX_UNFOLDED: usize = 200_000;

/// An ending after its numbers were settled: measures `start..=end`.
#[derive(Clone, Debug)]
struct Ending {
    start: usize,
    end: usize,
    numbers: Vec<u32>,
    /// Index of its group in `groups`.
    group: usize,
}

/// Per-measure jump targets, resolved once.
struct Plan {
    endings: Vec<Ending>,
    /// Endings of each group, in order.
    groups: Vec<Vec<usize>>,
    /// Index into `endings` of the ending starting at each measure.
    ending_at: Vec<Option<usize>>,
    /// D.C./D.S. target of each measure (0 for D.C., the segno for D.S.).
    jump_to: Vec<Option<usize>>,
    /// To Coda target of each measure.
    coda_to: Vec<Option<usize>>,
}

fn plan(ms: &[MeasureData], path: &Path, warn: &mut Vec<String>) -> Result<Plan> {
    let n = ms.len();
    let mut note = |line: usize, msg: String| {
        let m = format!("{}:{line}: {msg}", path.display());
        tracing::warn!("{m}");
        warn.push(m);
    };
    // Endings: from each start to its stop (or, leniently, to the measure before the next
    // start or the measure carrying a backward repeat).
    let mut endings: Vec<Ending> = Vec::new();
    let mut i = 0;
    while i < n {
        let Some(mark) = &ms[i].ending_start else {
            i += 1;
            continue;
        };
        let mut end = i;
        loop {
            if ms[end].ending_stop || ms[end].backward_repeat.is_some() {
                break;
            }
            if end + 1 >= n || ms[end + 1].ending_start.is_some() {
                note(
                    mark.line,
                    format!(
                        "the ending starting in measure {} has no end; it ends at measure {}",
                        ms[i].label, ms[end].label
                    ),
                );
                break;
            }
            end += 1;
        }
        endings.push(Ending {
            start: i,
            end,
            numbers: mark.numbers.clone(),
            group: 0,
        });
        i = end + 1;
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for k in 0..endings.len() {
        let joined = k > 0 && endings[k - 1].end + 1 == endings[k].start;
        if !joined {
            groups.push(Vec::new());
        }
        let g = groups.len() - 1;
        groups[g].push(k);
        endings[k].group = g;
    }
    for g in &groups {
        let used: Vec<u32> = g.iter().flat_map(|&k| endings[k].numbers.clone()).collect();
        let mut next = 1;
        for &k in g {
            if endings[k].numbers.is_empty() {
                while used.contains(&next) {
                    next += 1;
                }
                endings[k].numbers = vec![next];
                next += 1;
            }
        }
    }
    let mut ending_at = vec![None; n];
    for (k, e) in endings.iter().enumerate() {
        ending_at[e.start] = Some(k);
    }

    // D.C. and D.S.
    let segnos: Vec<(usize, &Option<String>)> = ms
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.segno.iter().map(move |s| (i, s)))
        .collect();
    let mut jump_to = vec![None; n];
    for (i, m) in ms.iter().enumerate() {
        if let Some(target) = &m.dal_segno {
            let by_id = target
                .as_ref()
                .and_then(|id| segnos.iter().find(|(_, s)| s.as_deref() == Some(id)));
            let found = by_id
                .or_else(|| segnos.iter().rev().find(|(j, _)| *j <= i))
                .or_else(|| segnos.first())
                .map(|(j, _)| *j);
            match found {
                Some(j) => jump_to[i] = Some(j),
                None => {
                    return Err(xml_error(
                        path,
                        if m.jump_line > 0 { m.jump_line } else { m.line },
                        format!("measure {}: D.S. (dal segno) without a segno", m.label),
                    ))
                }
            }
        } else if m.da_capo {
            jump_to[i] = Some(0);
        }
    }

    // Codas.
    let explicit_to: Vec<usize> = (0..n).filter(|&i| !ms[i].to_coda.is_empty()).collect();
    let mut targets: Vec<(usize, Option<String>)> = ms
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.coda_targets.iter().map(move |t| (i, t.clone())))
        .collect();
    let symbols: Vec<usize> = (0..n).filter(|&i| ms[i].coda_symbols > 0).collect();
    let mut sources: Vec<(usize, Option<String>)> = explicit_to
        .iter()
        .flat_map(|&i| ms[i].to_coda.iter().map(move |t| (i, t.clone())))
        .collect();
    if targets.is_empty() {
        if sources.is_empty() && symbols.len() >= 2 {
            sources.push((symbols[0], None));
            targets.push((symbols[symbols.len() - 1], None));
        } else {
            targets.extend(
                symbols
                    .iter()
                    .filter(|i| !explicit_to.contains(i))
                    .map(|&i| (i, None)),
            );
        }
    }
    let mut coda_to = vec![None; n];
    for (i, id) in sources {
        let by_id = id
            .as_ref()
            .and_then(|id| targets.iter().find(|(_, t)| t.as_deref() == Some(id)));
        let found = by_id
            .or_else(|| targets.iter().find(|(j, _)| *j > i))
            .or_else(|| targets.last())
            .map(|(j, _)| *j);
        match found {
            Some(j) => coda_to[i] = Some(j),
            None => note(
                if ms[i].jump_line > 0 {
                    ms[i].jump_line
                } else {
                    ms[i].line
                },
                format!("measure {}: To Coda without a coda; ignored", ms[i].label),
            ),
        }
    }
    Ok(Plan {
        endings,
        groups,
        ending_at,
        jump_to,
        coda_to,
    })
}

/// The performance order of the printed measures `ms`: (printed index, pass), where the pass
/// counts how many times that printed measure has been played (1 the first time).
pub(crate) fn unfold(
    ms: &[MeasureData],
    mode: RepeatMode,
    path: &Path,
    warn: &mut Vec<String>,
) -> Result<Vec<(usize, u32)>> {
    let n = ms.len();
    if mode == RepeatMode::AsWritten {
        return Ok((0..n).map(|i| (i, 1)).collect());
    }
    let plan = plan(ms, path, warn)?;
    let repeats = mode == RepeatMode::Performed;
    let mut out: Vec<(usize, u32)> = Vec::with_capacity(n * 2);
    let mut played = vec![0u32; n];
    let mut jumps_done = vec![0u32; n];
    let mut jump_taken = vec![false; n];
    let mut coda_taken = vec![false; n];
    let mut section_start = 0usize;
    let mut pass = 1u32;
    let mut after_jump = false;
    // The ending being played, if any.
    let mut in_ending: Option<usize> = None;
    let mut i = 0usize;
    while i < n {
        if out.len() >= MAX_UNFOLDED {
            return Err(xml_error(
                path,
                ms[i].line,
                format!("the repeats unfold to more than {MAX_UNFOLDED} measures"),
            ));
        }
        if let Some(k) = plan.ending_at[i] {
            let e = &plan.endings[k];
            let group = &plan.groups[e.group];
            if group[0] == k {
                let last = *group.last().unwrap_or(&k);
                let repeat_after_jump = group.iter().any(|&g| {
                    (plan.endings[g].start..=plan.endings[g].end).any(|j| ms[j].repeat_after_jump)
                });
                let chosen = if !repeats || (after_jump && !repeat_after_jump) {
                    Some(last)
                } else {
                    let hit = group
                        .iter()
                        .copied()
                        .find(|&g| plan.endings[g].numbers.contains(&pass));
                    let max = group
                        .iter()
                        .flat_map(|&g| plan.endings[g].numbers.iter().copied())
                        .max()
                        .unwrap_or(0);
                    hit.or((pass > max).then_some(last))
                };
                match chosen {
                    Some(c) => {
                        i = plan.endings[c].start;
                        in_ending = Some(c);
                    }
                    None => {
                        // No ending for this pass: skip the whole group.
                        i = plan.endings[last].end + 1;
                        in_ending = None;
                        continue;
                    }
                }
            }
        }
        played[i] += 1;
        out.push((i, played[i]));
        let m = &ms[i];
        if after_jump && m.fine {
            break;
        }
        if after_jump && !coda_taken[i] {
            if let Some(t) = plan.coda_to[i] {
                coda_taken[i] = true;
                i = t;
                in_ending = None;
                section_start = t;
                pass = 1;
                continue;
            }
        }
        if let Some(times) = m.backward_repeat {
            if repeats && (!after_jump || m.repeat_after_jump) && jumps_done[i] + 1 < times {
                jumps_done[i] += 1;
                pass += 1;
                i = section_start;
                in_ending = None;
                continue;
            }
            jumps_done[i] = 0;
        }
        if let Some(t) = plan.jump_to[i] {
            if !jump_taken[i] {
                jump_taken[i] = true;
                after_jump = true;
                jumps_done.fill(0);
                i = t;
                section_start = t;
                pass = 1;
                in_ending = None;
                continue;
            }
        }
        let mut next = i + 1;
        if let Some(c) = in_ending {
            if plan.endings[c].end == i {
                let group = &plan.groups[plan.endings[c].group];
                let last = *group.last().unwrap_or(&c);
                next = plan.endings[last].end + 1;
                in_ending = None;
                // The repeat is done: its counters start afresh if it is played again.
                for &g in group {
                    let e = &plan.endings[g];
                    jumps_done[e.start..=e.end].fill(0);
                }
            }
        }
        if m.backward_repeat.is_some() || m.final_barline {
            section_start = next;
            pass = 1;
        }
        if next < n && ms[next].forward_repeat {
            section_start = next;
            pass = 1;
        }
        i = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::musicxml::read::EndingMark;

    /// Measures labelled 1..=n.
    fn ms(n: usize) -> Vec<MeasureData> {
        (1..=n)
            .map(|k| MeasureData {
                label: k.to_string(),
                line: k,
                ..Default::default()
            })
            .collect()
    }

    fn labels(ms: &[MeasureData], mode: RepeatMode) -> String {
        let order = unfold(ms, mode, Path::new("t.musicxml"), &mut Vec::new()).unwrap();
        order
            .iter()
            .map(|&(i, p)| {
                if p > 1 {
                    format!("{}'{}", ms[i].label, p)
                } else {
                    ms[i].label.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn ending(numbers: &[u32]) -> Option<EndingMark> {
        Some(EndingMark {
            numbers: numbers.to_vec(),
            line: 1,
        })
    }

    #[test]
    fn simple_repeat_and_no_forward() {
        let mut m = ms(4);
        m[1].backward_repeat = Some(2);
        assert_eq!(labels(&m, RepeatMode::Performed), "1 2 1'2 2'2 3 4");
        assert_eq!(labels(&m, RepeatMode::NoRepeats), "1 2 3 4");
        m[2].forward_repeat = true;
        m[3].backward_repeat = Some(3);
        assert_eq!(
            labels(&m, RepeatMode::Performed),
            "1 2 1'2 2'2 3 4 3'2 4'2 3'3 4'3"
        );
        assert_eq!(labels(&m, RepeatMode::AsWritten), "1 2 3 4");
    }

    #[test]
    fn repeat_goes_back_to_section_break() {
        let mut m = ms(5);
        m[1].final_barline = true;
        m[3].backward_repeat = Some(2);
        assert_eq!(labels(&m, RepeatMode::Performed), "1 2 3 4 3'2 4'2 5");
    }

    #[test]
    fn voltas() {
        // 1 |: 2 3 [1. 4 :| [2. 5 ] 6
        let mut m = ms(6);
        m[1].forward_repeat = true;
        m[3].ending_start = ending(&[1]);
        m[3].ending_stop = true;
        m[3].backward_repeat = Some(2);
        m[4].ending_start = ending(&[2]);
        m[4].ending_stop = true;
        assert_eq!(labels(&m, RepeatMode::Performed), "1 2 3 4 2'2 3'2 5 6");
        assert_eq!(labels(&m, RepeatMode::NoRepeats), "1 2 3 5 6");
        // Unnumbered first ending (as music21 writes).
        m[3].ending_start = ending(&[]);
        assert_eq!(labels(&m, RepeatMode::Performed), "1 2 3 4 2'2 3'2 5 6");
        // "1, 2" then "3" with times=3.
        m[3].ending_start = ending(&[1, 2]);
        m[3].backward_repeat = Some(3);
        m[4].ending_start = ending(&[3]);
        assert_eq!(
            labels(&m, RepeatMode::Performed),
            "1 2 3 4 2'2 3'2 4'2 2'3 3'3 5 6"
        );
    }

    #[test]
    fn da_capo_al_fine() {
        // 1 2 |: 3 :| 4(Fine) 5 6(D.C. al Fine)
        let mut m = ms(6);
        m[2].forward_repeat = true;
        m[2].backward_repeat = Some(2);
        m[3].fine = true;
        m[5].da_capo = true;
        assert_eq!(
            labels(&m, RepeatMode::Performed),
            "1 2 3 3'2 4 5 6 1'2 2'2 3'3 4'2"
        );
    }

    #[test]
    fn dal_segno_al_coda() {
        // 1 2(segno) 3(To Coda) 4(D.S. al Coda) 5(coda) 6
        let mut m = ms(6);
        m[1].segno.push(None);
        m[2].to_coda.push(None);
        m[3].dal_segno = Some(None);
        m[4].coda_symbols = 1;
        assert_eq!(labels(&m, RepeatMode::Performed), "1 2 3 4 2'2 3'2 5 6");
        // Two coda signs and no words: the first is the jump, the last the target.
        let mut m = ms(6);
        m[1].segno.push(None);
        m[2].coda_symbols = 1;
        m[3].dal_segno = Some(None);
        m[4].coda_symbols = 1;
        assert_eq!(labels(&m, RepeatMode::Performed), "1 2 3 4 2'2 3'2 5 6");
    }

    #[test]
    fn dal_segno_without_segno_is_an_error() {
        let mut m = ms(3);
        m[2].dal_segno = Some(None);
        m[2].jump_line = 42;
        let e = unfold(
            &m,
            RepeatMode::Performed,
            Path::new("x.musicxml"),
            &mut vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("x.musicxml:42") && e.contains("measure 3"),
            "{e}"
        );
    }

    #[test]
    fn no_repeats_after_da_capo_but_last_ending() {
        // |: 1 [1. 2 :| [2. 3 ] 4(D.C.)
        let mut m = ms(4);
        m[0].forward_repeat = true;
        m[1].ending_start = ending(&[1]);
        m[1].ending_stop = true;
        m[1].backward_repeat = Some(2);
        m[2].ending_start = ending(&[2]);
        m[2].ending_stop = true;
        m[3].da_capo = true;
        assert_eq!(labels(&m, RepeatMode::Performed), "1 2 1'2 3 4 1'3 3'2 4'2");
        m[1].repeat_after_jump = true;
        // With after-jump the repeat and its endings are taken again.
        assert_eq!(
            labels(&m, RepeatMode::Performed),
            "1 2 1'2 3 4 1'3 2'2 1'4 3'2 4'2"
        );
    }
}
