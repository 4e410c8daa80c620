//! Structure files: the order in which the sections of a score are played (written repeats,
//! da capo, a cut agreed in rehearsal), so the follower follows them without having to
//! re-locate.
//!
//! One section per line, in playing order; `#` starts a comment. A section is a range of bars
//! (`1-8`: bars 1 to 8 inclusive, a single bar `9`) when following a score (a MusicXML score's
//! printed measure numbers: it is then laid out as written, every measure once, and the file
//! gives the order instead of its repeat signs), or of score seconds with an `s` suffix
//! (`0s-12.5s`) for any reference:
//!
//! ```text
//! # K. 331 theme with its repeats
//! 1-8
//! 1-8
//! 9-18
//! ```
//!
//! [`Reference::unfold`](super::reference::Reference::unfold) then lays the sections end to end
//! and keeps the map back to score time, so every position reported is a position in the
//! score as written.

use std::path::Path;

use crate::Error;

/// One section: a range of the score, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Section {
    /// Start (score s).
    pub start_s: f64,
    /// End (score s), after the start.
    pub end_s: f64,
}

/// A bound as written in the file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bound {
    Bar(i32),
    Seconds(f64),
}

fn parse_bound(text: &str) -> Option<Bound> {
    let t = text.trim();
    if let Some(s) = t.strip_suffix('s') {
        let v: f64 = s.trim().parse().ok()?;
        return (v.is_finite() && v >= 0.0).then_some(Bound::Seconds(v));
    }
    t.parse::<i32>().ok().map(Bound::Bar)
}

/// Parse a structure file's text. `bar_to_s(bar, end)` gives the score time of the start of a
/// bar (`end` false) or of its end (`end` true), None when the score has no such bar (or no
/// bars: an audio reference); `duration_s` is the length of the score.
pub fn parse(
    path: &Path,
    text: &str,
    duration_s: f64,
    bar_to_s: impl Fn(i32, bool) -> Option<f64>,
) -> crate::Result<Vec<Section>> {
    let err = |line: usize, reason: String| Error::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        // "a-b" or a single bound; a leading '-' never starts a valid bound, so split at the
        // first '-' after the first character.
        let dash = body
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '-')
            .map(|(i, _)| i);
        let (a, b) = match dash {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, body),
        };
        let (Some(a), Some(b)) = (parse_bound(a), parse_bound(b)) else {
            return Err(err(
                line,
                format!(
                    "'{body}' is not a section: expected bars 'FROM-TO' or seconds 'FROMs-TOs'"
                ),
            ));
        };
        let to_s = |bound: Bound, end: bool| -> crate::Result<f64> {
            match bound {
                Bound::Seconds(s) => Ok(s),
                Bound::Bar(bar) => bar_to_s(bar, end).ok_or_else(|| {
                    err(
                        line,
                        format!("bar {bar} is not in the score (bars need a score)"),
                    )
                }),
            }
        };
        let (start_s, end_s) = (to_s(a, false)?, to_s(b, true)?);
        if end_s <= start_s {
            return Err(err(line, format!("'{body}' ends before it starts")));
        }
        if start_s >= duration_s {
            return Err(err(
                line,
                format!("'{body}' starts after the end of the score ({duration_s:.2} s)"),
            ));
        }
        out.push(Section {
            start_s,
            end_s: end_s.min(duration_s),
        });
    }
    if out.is_empty() {
        return Err(err(1, "no section in the structure file".into()));
    }
    Ok(out)
}

/// Where each section lies in the unfolded reference: frames `[unfolded_start,
/// unfolded_start + len)` are score frames `[score_start, score_start + len)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Unfolding {
    /// (unfolded start frame, score start frame, length in frames), in playing order.
    pub segments: Vec<(usize, usize, usize)>,
}

impl Unfolding {
    /// Lay `sections` (score frame ranges `[start, end)`) end to end.
    pub fn new(sections: &[(usize, usize)]) -> Self {
        let mut at = 0;
        let segments = sections
            .iter()
            .filter(|(s, e)| e > s)
            .map(|&(s, e)| {
                let seg = (at, s, e - s);
                at += e - s;
                seg
            })
            .collect();
        Self { segments }
    }

    /// Total length (frames).
    pub fn len(&self) -> usize {
        self.segments.last().map_or(0, |&(u, _, l)| u + l)
    }

    /// True when nothing is played.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Score frame (fractional) of an unfolded frame (fractional; clamped to the ends).
    pub fn to_score(&self, unfolded: f64) -> f64 {
        let Some(&(u0, s0, _)) = self.segments.first() else {
            return unfolded;
        };
        if unfolded <= u0 as f64 {
            return s0 as f64 + (unfolded - u0 as f64);
        }
        let k = self
            .segments
            .partition_point(|&(u, _, _)| (u as f64) <= unfolded)
            .saturating_sub(1);
        let (u, s, l) = self.segments[k];
        let off = (unfolded - u as f64).min(l as f64);
        s as f64 + off
    }

    /// How many times the sections up to unfolded frame `unfolded` (fractional) have played
    /// the score frame it shows, that time included: 1 the first time, 2 when a section plays
    /// it again. Allocates nothing.
    pub fn pass_at(&self, unfolded: f64) -> u32 {
        if self.segments.is_empty() {
            return 1;
        }
        let k = self
            .segments
            .partition_point(|&(u, _, _)| (u as f64) <= unfolded)
            .saturating_sub(1);
        let score = self.to_score(unfolded).floor().max(0.0) as usize;
        1 + self.segments[..k]
            .iter()
            .filter(|&&(_, s, l)| score >= s && score < s + l)
            .count() as u32
    }

    /// Every unfolded frame showing score frame `score` (a section played twice shows it
    /// twice), in playing order.
    pub fn to_unfolded(&self, score: usize) -> impl Iterator<Item = usize> + '_ {
        self.segments
            .iter()
            .filter(move |&&(_, s, l)| score >= s && score < s + l)
            .map(move |&(u, s, _)| u + (score - s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(bar: i32, end: bool) -> Option<f64> {
        // 2 s bars, 10 bars.
        let b = if end { bar } else { bar - 1 };
        (1..=10).contains(&bar).then_some(2.0 * b as f64)
    }

    #[test]
    fn bars_and_seconds_parse() {
        let p = Path::new("s.txt");
        let text = "# repeats\n1-4\n1-4 # again\n\n5\n6-10\n12.5s-14s\n";
        let got = parse(p, text, 20.0, bars).unwrap();
        let want = [
            (0.0, 8.0),
            (0.0, 8.0),
            (8.0, 10.0),
            (10.0, 20.0),
            (12.5, 14.0),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.start_s, g.end_s), w);
        }
    }

    #[test]
    fn bad_lines_name_the_line() {
        let p = Path::new("s.txt");
        for (text, line) in [
            ("1-4\nx-3\n", 2),
            ("4-1\n", 1),
            ("1-40\n", 1),
            ("", 1),
            ("# only a comment\n", 1),
            ("30s-40s\n", 1),
            ("-3\n", 1),
            ("1-\n", 1),
            ("nans-3s\n", 1),
        ] {
            match parse(p, text, 20.0, bars) {
                Err(Error::Parse {
                    line: l, reason, ..
                }) => {
                    assert_eq!(l, line, "{text:?}: {reason}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // Bars without a score.
        assert!(parse(p, "1-2\n", 20.0, |_, _| None).is_err());
    }

    #[test]
    fn unfolding_maps_both_ways() {
        let u = Unfolding::new(&[(0, 100), (0, 100), (100, 250)]);
        assert_eq!(u.len(), 350);
        assert_eq!(u.to_score(50.0), 50.0);
        assert_eq!(u.to_score(150.0), 50.0);
        assert_eq!(u.to_score(200.5), 100.5);
        assert_eq!(u.to_score(349.0), 249.0);
        assert_eq!(u.to_unfolded(50).collect::<Vec<_>>(), vec![50, 150]);
        assert_eq!(u.to_unfolded(120).collect::<Vec<_>>(), vec![220]);
        assert_eq!(u.to_unfolded(260).count(), 0);
        assert_eq!(u.pass_at(50.0), 1);
        assert_eq!(u.pass_at(150.0), 2);
        assert_eq!(u.pass_at(220.0), 1);
        assert_eq!(u.pass_at(-3.0), 1);
    }

    proptest::proptest! {
        /// Arbitrary text never panics the parser; errors always carry a reason.
        #[test]
        fn parser_never_panics(text in "\\PC{0,200}") {
            if let Err(Error::Parse { reason, .. }) = parse(Path::new("s"), &text, 20.0, bars) {
                proptest::prop_assert!(!reason.is_empty());
            }
        }

        /// Every unfolded frame maps to a score frame that maps back to it (among others).
        #[test]
        fn unfolding_round_trips(secs in proptest::collection::vec((0usize..500, 1usize..200), 1..6)) {
            let sections: Vec<(usize, usize)> = secs.iter().map(|&(s, l)| (s, s + l)).collect();
            let u = Unfolding::new(&sections);
            for f in 0..u.len() {
                let s = u.to_score(f as f64);
                proptest::prop_assert_eq!(s.fract(), 0.0);
                proptest::prop_assert!(u.to_unfolded(s as usize).any(|g| g == f));
            }
        }
    }
}
