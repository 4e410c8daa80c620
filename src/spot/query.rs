//! Turning files into chroma for matching: audio through the decoder and the follower's chroma
//! stage; MIDI either rendered by the score synthesiser and analysed like audio, or turned
//! straight into a pitch-class template from its notes.

use std::path::{Path, PathBuf};

use crate::features::{Chroma, FeatureConfig, N_CHROMA};
use crate::score::midi::Score;

/// How a MIDI file becomes chroma.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MidiMode {
    /// Render with the score synthesiser, then the chroma stage (same path as audio).
    Synth,
    /// Pitch-class template from the notes: each sounding note adds its velocity-independent
    /// unit to its pitch class in every frame whose centre lies inside it.
    Template,
}

impl std::str::FromStr for MidiMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "synth" => Ok(Self::Synth),
            "template" => Ok(Self::Template),
            _ => Err(crate::Error::invalid(
                "MIDI mode",
                s,
                "expected 'synth' or 'template'",
            )),
        }
    }
}

/// True for `.mid` / `.midi` (any case).
pub fn is_midi(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("mid") || e.eq_ignore_ascii_case("midi"))
}

/// Chroma frames of a pitch-class template built from notes `(onset_s, offset_s, pitch)`, on
/// the frame grid of `feat` (frame `k` samples the score at its centre time). Frames with no
/// sounding note are the flat small-norm silence vector, as the chroma stage produces.
pub fn template_chroma(notes: &[(f64, f64, u8)], feat: &FeatureConfig) -> Vec<Chroma> {
    let end_s = notes.iter().map(|n| n.1).fold(0.0f64, f64::max);
    let n_frames = (end_s / feat.hop_s()).ceil() as usize + 1;
    let mut out = vec![[0.0f32; N_CHROMA]; n_frames];
    for &(on, off, pitch) in notes {
        // Very short notes still count for one frame.
        let k0 = feat.frame_at_s(on);
        let k1 = feat.frame_at_s(off).max(k0 + 1).min(n_frames);
        for f in out.iter_mut().take(k1).skip(k0) {
            f[(pitch % 12) as usize] += 1.0;
        }
    }
    for f in &mut out {
        let n = f.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            f.iter_mut().for_each(|v| *v /= n);
        } else {
            *f = [0.01; N_CHROMA];
        }
    }
    out
}

/// Reads a query or recording file into chroma frames: a score by [`MidiMode`], a recording
/// decoded and analysed. The matcher never decodes audio itself: the input edge supplies the
/// reader ([`crate::audio::load::read_chroma`]), and tests may supply their own.
pub trait ChromaReader: Sync {
    /// The chroma of the file at `path`, analysed with `feat`.
    fn read(&self, path: &Path, feat: &FeatureConfig, mode: MidiMode)
        -> crate::Result<Vec<Chroma>>;
}

impl<F> ChromaReader for F
where
    F: Fn(&Path, &FeatureConfig, MidiMode) -> crate::Result<Vec<Chroma>> + Sync,
{
    fn read(
        &self,
        path: &Path,
        feat: &FeatureConfig,
        mode: MidiMode,
    ) -> crate::Result<Vec<Chroma>> {
        self(path, feat, mode)
    }
}

/// Chroma of a MIDI file by `mode`.
pub fn midi_chroma(
    path: &Path,
    feat: &FeatureConfig,
    mode: MidiMode,
) -> crate::Result<Vec<Chroma>> {
    let score = Score::load(path)?;
    match mode {
        MidiMode::Synth => {
            let samples = crate::score::synth::render(&score, feat.sample_rate_hz);
            Ok(crate::features::extract(&samples, feat).chroma())
        }
        MidiMode::Template => {
            let notes: Vec<(f64, f64, u8)> = score
                .pitched_notes()
                .map(|n| (n.onset_s, n.offset_s, n.pitch))
                .collect();
            if notes.is_empty() {
                return Err(crate::Error::Midi {
                    path: path.to_path_buf(),
                    reason: "no pitched notes".into(),
                });
            }
            Ok(template_chroma(&notes, feat))
        }
    }
}

/// The frames between the first and the last non-silent frame (L2 norm >= 0.5: the chroma stage
/// gives unit vectors for sound and a small flat vector for silence).
pub fn trim_silence(chroma: &[Chroma]) -> &[Chroma] {
    let loud = |c: &Chroma| c.iter().map(|v| v * v).sum::<f32>() >= 0.25;
    let Some(a) = chroma.iter().position(loud) else {
        return &chroma[..0];
    };
    let b = chroma.iter().rposition(loud).unwrap_or(a);
    &chroma[a..=b]
}

/// A named query file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThemeFile {
    /// Theme id (defaults to the file stem).
    pub id: String,
    /// The query file (MIDI or audio).
    pub path: PathBuf,
}

impl ThemeFile {
    /// A theme whose id is the file stem.
    pub fn from_path(path: &Path) -> Self {
        Self {
            id: stem(path),
            path: path.to_path_buf(),
        }
    }
}

/// The file stem as a string (lossy).
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Read a themes file naming query files and optional ids. Relative paths are relative to the
/// themes file's folder.
///
/// CSV (`.csv`): a header with a `file` (or `path`) column and optionally an `id` (or
/// `theme_id`) column; empty ids default to the file stem. TOML (any other extension):
/// `[[theme]]` tables with `file = "..."` and optionally `id = "..."`.
pub fn read_themes_file(path: &Path) -> crate::Result<Vec<ThemeFile>> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let raw = if is_csv {
        parse_themes_csv(&text)
    } else {
        parse_themes_toml(&text)
    }
    .map_err(|(line, reason)| crate::Error::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    })?;
    if raw.is_empty() {
        return Err(crate::Error::Parse {
            path: path.to_path_buf(),
            line: 1,
            reason: "names no theme".into(),
        });
    }
    Ok(raw
        .into_iter()
        .map(|(id, file)| {
            let p = base.join(&file);
            ThemeFile {
                id: id.filter(|s| !s.is_empty()).unwrap_or_else(|| stem(&p)),
                path: p,
            }
        })
        .collect())
}

type RawThemes = Vec<(Option<String>, String)>;

fn parse_themes_csv(text: &str) -> Result<RawThemes, (usize, String)> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<String> = header
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let find = |names: &[&str]| cols.iter().position(|c| names.contains(&c.as_str()));
    let c_file = find(&["file", "path"]).ok_or((1, "header needs a 'file' column".to_string()))?;
    let c_id = find(&["id", "theme_id"]);
    let mut out = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let file = f.get(c_file).copied().unwrap_or("");
        if file.is_empty() {
            return Err((i + 1, "empty file name".into()));
        }
        let id = c_id.and_then(|c| f.get(c)).map(|s| s.to_string());
        out.push((id, file.to_string()));
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct TomlThemes {
    #[serde(default)]
    theme: Vec<TomlTheme>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlTheme {
    file: String,
    id: Option<String>,
}

fn parse_themes_toml(text: &str) -> Result<RawThemes, (usize, String)> {
    let t: TomlThemes = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(1);
        (line, e.message().to_string())
    })?;
    Ok(t.theme.into_iter().map(|t| (t.id, t.file)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_marks_sounding_pitch_classes() {
        let feat = FeatureConfig::default();
        // C4 for 0..1 s, then E4+G4 for 1..2 s, a rest, D4 for 3..4 s.
        let notes = [
            (0.0, 1.0, 60u8),
            (1.0, 2.0, 64),
            (1.0, 2.0, 67),
            (3.0, 4.0, 62),
        ];
        let c = template_chroma(&notes, &feat);
        let k = feat.frame_at_s(0.5);
        assert!((c[k][0] - 1.0).abs() < 1e-6);
        let k = feat.frame_at_s(1.5);
        assert!((c[k][4] - c[k][7]).abs() < 1e-6 && c[k][4] > 0.7 && c[k][0] == 0.0);
        let rest = c[feat.frame_at_s(2.5)];
        assert!(rest.iter().all(|&v| v == 0.01));
        assert!((c[c.len() - 1][2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn trim_removes_edges_only() {
        let s = [0.01f32; 12];
        let mut l = [0.0f32; 12];
        l[3] = 1.0;
        let seq = [s, s, l, s, l, s];
        assert_eq!(trim_silence(&seq).len(), 3);
        assert!(trim_silence(&[s, s]).is_empty());
    }

    #[test]
    fn themes_csv_and_toml() {
        let csv = parse_themes_csv("id,file\nsubject,a/subj.mid\n,b/x.flac\n").unwrap();
        assert_eq!(csv[0], (Some("subject".into()), "a/subj.mid".into()));
        assert_eq!(csv[1].0.as_deref(), Some(""));
        assert!(parse_themes_csv("name\nx\n").is_err());
        let toml = parse_themes_toml(
            "[[theme]]\nfile = \"s.mid\"\nid = \"s\"\n[[theme]]\nfile = \"t.flac\"\n",
        )
        .unwrap();
        assert_eq!(toml.len(), 2);
        assert_eq!(toml[1], (None, "t.flac".into()));
        let err = parse_themes_toml("[[theme]]\nfiel = \"s.mid\"\n").unwrap_err();
        assert!(err.1.contains("fiel"), "{err:?}");
    }

    #[test]
    fn themes_file_defaults_id_to_stem_and_resolves_paths() {
        let dir = std::env::temp_dir().join(format!("sf_themes_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("themes.csv");
        std::fs::write(&p, "file,id\nq/subject.mid,\nother.flac,second\n").unwrap();
        let t = read_themes_file(&p).unwrap();
        assert_eq!(t[0].id, "subject");
        assert_eq!(t[0].path, dir.join("q/subject.mid"));
        assert_eq!(t[1].id, "second");
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;
    use crate::test_util::fuzz::{edits, mutate};
    use proptest::prelude::*;

    const TOML: &str = "[[theme]]\nfile = \"q/subject.mid\"\nid = \"subject\"\n\n[[theme]]\nfile = \"answer.flac\"\n";
    const CSV: &str = "id,file\nsubject,q/subject.mid\n,answer.flac\n";

    /// The contract: themes with non-empty file names, or an error line within the input and
    /// a non-empty reason.
    fn check(r: Result<RawThemes, (usize, String)>, text: &str) -> Result<(), TestCaseError> {
        match r {
            Ok(themes) => {
                for (_, f) in &themes {
                    prop_assert!(!f.is_empty() || text.contains("file"));
                }
            }
            Err((line, reason)) => {
                prop_assert!(!reason.trim().is_empty(), "empty reason");
                prop_assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "line {} of {}",
                    line,
                    text.lines().count()
                );
            }
        }
        Ok(())
    }

    #[test]
    fn valid_inputs_parse() {
        assert_eq!(parse_themes_toml(TOML).map(|t| t.len()), Ok(2));
        assert_eq!(parse_themes_csv(CSV).map(|t| t.len()), Ok(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

        #[test]
        fn theme_files_never_panic(
            e in edits(6),
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            random in any::<bool>(),
        ) {
            let (t, c) = if random {
                (bytes.clone(), bytes)
            } else {
                (mutate(TOML.as_bytes(), &e), mutate(CSV.as_bytes(), &e))
            };
            let t = String::from_utf8_lossy(&t).into_owned();
            let c = String::from_utf8_lossy(&c).into_owned();
            check(parse_themes_toml(&t), &t)?;
            check(parse_themes_csv(&c), &c)?;
        }
    }

    /// Through the file reader: invalid UTF-8, empty files and mutants are errors that name the
    /// file, never panics.
    #[test]
    fn theme_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("sf_themes_fuzz_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = crate::audio::replay::SplitMix64(5);
        let mut errors = 0;
        for (k, (name, base)) in [("t.toml", TOML), ("t.csv", CSV)]
            .into_iter()
            .cycle()
            .take(60)
            .enumerate()
        {
            let e: Vec<crate::test_util::fuzz::Edit> = (0..3)
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
            let mut bytes = mutate(base.as_bytes(), &e);
            if k % 10 == 0 {
                bytes = b"\xff\xfe bad utf-8".to_vec();
            } else if k % 10 == 1 {
                bytes.clear();
            }
            let p = dir.join(name);
            std::fs::write(&p, &bytes).unwrap_or_else(|e| panic!("{e}"));
            if let Err(err) = read_themes_file(&p) {
                errors += 1;
                let msg = err.to_string();
                assert!(msg.contains(&p.display().to_string()), "{msg}");
            }
        }
        assert!(errors >= 12, "{errors}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
