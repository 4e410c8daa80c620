//! What the unit tests share: a seeded generator, random feature frames, a small test score,
//! and the mutators of the parser fuzz tests. Compiled for tests only.

use crate::features::{Chroma, FeatureFrame, N_CHROMA};
use crate::score::Score;

/// A small seeded generator (Knuth's MMIX LCG) so the tests need no RNG crate and every run
/// draws the same numbers.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next raw state.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 33) as f32) / (1u64 << 31) as f32
    }

    /// Uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random unit chroma vector (entries cubed, so a few classes dominate, as in music).
    pub(crate) fn chroma(&mut self) -> Chroma {
        let mut c = [0.0f32; N_CHROMA];
        for v in c.iter_mut() {
            *v = self.next_f32().powi(3);
        }
        crate::features::chroma::normalize(&mut c);
        c
    }
}

/// `n` random frames from `seed`: unit chroma with a few strong classes, and onset values up
/// to 0.3 when `onsets` is set (zero otherwise).
pub(crate) fn random_frames(n: usize, seed: u64, onsets: bool) -> Vec<FeatureFrame> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let mut f = FeatureFrame::default();
            for c in 0..N_CHROMA {
                f.chroma[c] = rng.next_f32().powi(4);
            }
            crate::features::chroma::normalize(&mut f.chroma);
            if onsets {
                for c in 0..N_CHROMA {
                    f.onset[c] = 0.3 * rng.next_f32();
                }
            }
            f
        })
        .collect()
}

/// 120 qpm, 4/4, one note from 0 to 8 s (bars 1-4, 2 s each); marker "A" at 2 s and cue
/// point "B" at 4 s.
pub(crate) fn test_score() -> Score {
    let track: Vec<u8> = [
        &[0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20][..],
        &[0x00, 0xFF, 0x58, 0x04, 0x04, 0x02, 0x18, 0x08],
        &[0x00, 0x90, 0x3C, 0x64],
        &[0x8F, 0x00, 0xFF, 0x06, 0x01, b'A'],
        &[0x8F, 0x00, 0xFF, 0x07, 0x01, b'B'],
        &[0x9E, 0x00, 0x80, 0x3C, 0x00],
        &[0x00, 0xFF, 0x2F, 0x00],
    ]
    .concat();
    let mut bytes = b"MThd".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 6, 0, 0, 0, 1, 0x01, 0xE0]);
    bytes.extend_from_slice(b"MTrk");
    bytes.extend_from_slice(&(track.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&track);
    Score::from_bytes(&bytes, std::path::Path::new("unit.mid")).unwrap_or_else(|e| panic!("{e}"))
}

/// Input mutation for the parser fuzz tests (cue, page, theme, index and control parsers): small edits of a valid input reach the deep checks that random bytes never
/// get past the first line.
pub(crate) mod fuzz {
    use proptest::prelude::*;

    /// One edit: (kind, position, length or byte, snippet choice); positions wrap modulo the
    /// input length, so every edit applies to every input.
    pub(crate) type Edit = (u8, u32, u32, u8);

    /// Bytes that matter to the parsers under test (separators, quotes, brackets, signs).
    const BYTES: &[u8] = b"\n\r\t ,:=\"'[]{}#.-+0123456789eE/\\\0\xff\xc3";

    /// Lines that exercise the parsers' branches when inserted.
    const LINES: &[&str] = &[
        "[[cue]]",
        "[[cue.message]]",
        "[settings]",
        "[targets]",
        "[defaults]",
        "[[theme]]",
        "id = \"dup\"",
        "bar = -3",
        "bar = 99999999999",
        "beat = 1e308",
        "score_s = -0.0",
        "score_s = nan",
        "lead_ms = inf",
        "marker = \"\u{e9}\"",
        "address = \"/a/b\"",
        "args = [1, 2.5, \"s\", true, 1979-05-27, [1], {a = 1}]",
        "targets = []",
        "on_skip = \"fire\"",
        "file = \"\"",
        "file,id",
        "1,1",
        "2,999999999999999999999",
        "-1,-1",
        ",,,",
        "# comment",
        "\u{feff}page,first_bar",
        "1e400,NaN",
        "0.1,0.2,0.3",
        "",
    ];

    /// A strategy for up to `max` edits.
    pub(crate) fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
        proptest::collection::vec((0u8..7, any::<u32>(), any::<u32>(), any::<u8>()), 0..=max)
    }

    /// Apply `edits` to `input`: truncate, flip a bit, set an interesting byte, insert a line,
    /// delete a range, duplicate a range, swap two lines.
    pub(crate) fn mutate(input: &[u8], edits: &[Edit]) -> Vec<u8> {
        let mut b = input.to_vec();
        for &(kind, pos, arg, pick) in edits {
            let at = |n: usize| if n == 0 { 0 } else { pos as usize % (n + 1) };
            match kind {
                0 => b.truncate(at(b.len())),
                1 if !b.is_empty() => {
                    let i = pos as usize % b.len();
                    b[i] ^= 1 << (arg % 8);
                }
                2 if !b.is_empty() => {
                    let i = pos as usize % b.len();
                    b[i] = BYTES[pick as usize % BYTES.len()];
                }
                3 => {
                    // Insert a whole line at a line start, so it parses as a line.
                    let i = at(b.len());
                    let start = b[..i]
                        .iter()
                        .rposition(|&c| c == b'\n')
                        .map_or(0, |p| p + 1);
                    let mut line = LINES[pick as usize % LINES.len()].as_bytes().to_vec();
                    line.push(b'\n');
                    b.splice(start..start, line);
                }
                4 if !b.is_empty() => {
                    let i = pos as usize % b.len();
                    let n = (arg as usize % 16).min(b.len() - i);
                    b.drain(i..i + n);
                }
                5 if !b.is_empty() => {
                    let i = pos as usize % b.len();
                    let n = (arg as usize % 64).min(b.len() - i);
                    let piece = b[i..i + n].to_vec();
                    b.splice(i..i, piece);
                }
                6 => {
                    let text = String::from_utf8_lossy(&b).into_owned();
                    let mut lines: Vec<&str> = text.split('\n').collect();
                    if lines.len() > 1 {
                        let i = pos as usize % lines.len();
                        let j = arg as usize % lines.len();
                        lines.swap(i, j);
                    }
                    b = lines.join("\n").into_bytes();
                }
                _ => {}
            }
        }
        b
    }

    #[test]
    fn mutate_applies_each_kind() {
        let x = b"ab\ncd\n".as_slice();
        assert_eq!(mutate(x, &[(0, 2, 0, 0)]), b"ab");
        assert_eq!(mutate(x, &[(1, 0, 0, 0)]), b"`b\ncd\n");
        assert_eq!(mutate(x, &[(3, 4, 0, 24)]), b"ab\n# comment\ncd\n");
        assert_eq!(mutate(x, &[(4, 0, 3, 0)]), b"cd\n");
        assert_eq!(mutate(x, &[(5, 0, 2, 0)]), b"abab\ncd\n");
        assert_eq!(mutate(x, &[(6, 0, 1, 0)]), b"cd\nab\n");
        assert_eq!(mutate(b"", &[(1, 5, 5, 5), (4, 1, 1, 1)]), b"");
    }
}
