//! The interpretation switcher's alignments: several recordings of one work, each aligned
//! offline (multiscale DTW, [`crate::align::dtw`]) to a common timeline: the score's seconds
//! when a score is given, else the first recording's seconds. Any time in one version maps to
//! the same musical moment in another through that timeline ([`Versions::map`]).
//!
//! Alignments are cached in a directory ([`AlignCache`]), keyed by a hash of the files'
//! contents and of the aligner's settings, so recordings on read-only media work and a second
//! start aligns nothing unless a file changed.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::align::warp::WarpMap;
use crate::audio::load::{align_file, load_reference};
use crate::engine::{AlignConfig, ReferenceKind};
use crate::score::reference::Reference;
use crate::score::Score;
use crate::Error;

/// One recording and where its moments lie on the common timeline.
#[derive(Clone, Debug)]
pub struct Version {
    /// The audio file.
    pub path: PathBuf,
    /// Its length (s, to one analysis frame).
    pub duration_s: f64,
    /// Its time (s) -> common time (s).
    pub to_common: WarpMap,
    /// True when this alignment came from the cache.
    pub cached: bool,
}

/// What the common timeline is.
#[derive(Clone, Debug)]
pub enum Common {
    /// The score's seconds (bars from the score).
    Score(Box<Score>),
    /// The first recording's seconds.
    FirstRecording,
}

/// Recordings of one work aligned to a common timeline.
#[derive(Clone, Debug)]
pub struct Versions {
    /// In the order given.
    pub versions: Vec<Version>,
    /// The common timeline.
    pub common: Common,
    /// Length of the common timeline (s).
    pub common_duration_s: f64,
}

/// Progress of [`Versions::build`]: version `index` of `count` is being aligned, `done` of
/// `total` steps of its finest level.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Which version (0-based).
    pub index: usize,
    /// How many versions.
    pub count: usize,
    /// Steps done in this alignment.
    pub done: usize,
    /// Steps in this alignment.
    pub total: usize,
}

impl Versions {
    /// Align `recordings` to `score` (a MIDI file), or without one every recording to the
    /// first; alignments found in `cache` are reused, new ones stored there.
    pub fn build(
        recordings: &[PathBuf],
        score: Option<&Path>,
        cache: &AlignCache,
        mut progress: impl FnMut(Progress),
    ) -> crate::Result<Self> {
        if recordings.is_empty() || (score.is_none() && recordings.len() < 2) {
            return Err(Error::invalid(
                "recordings",
                recordings.len().to_string(),
                "give at least two recordings, or one with a score",
            ));
        }
        let kind = match score {
            Some(_) => ReferenceKind::Score,
            None => ReferenceKind::Recording,
        };
        let config = AlignConfig::for_kind(kind);
        let settings = format!("{CACHE_FORMAT}|{config:?}");
        let ref_path = score.unwrap_or(&recordings[0]);
        let ref_hash = content_hash(ref_path)?;
        // The reference is rendered or decoded only when some alignment is not cached.
        let mut reference: Option<Reference> = None;
        let load_reference = |slot: &mut Option<Reference>| -> crate::Result<()> {
            if slot.is_none() {
                *slot = Some(load_reference(
                    ref_path,
                    kind,
                    &config.features,
                    &config.rendering,
                )?);
            }
            Ok(())
        };
        let count = recordings.len();
        let mut versions = Vec::with_capacity(count);
        for (index, path) in recordings.iter().enumerate() {
            let key = cache_key(&settings, ref_hash, content_hash(path)?);
            if let Some(entry) = cache.get(key) {
                versions.push(Version {
                    path: path.clone(),
                    duration_s: entry.duration_s,
                    to_common: entry.map,
                    cached: true,
                });
                continue;
            }
            load_reference(&mut reference)?;
            let r = reference
                .as_ref()
                .ok_or_else(|| Error::Other("reference not loaded".into()))?;
            let entry = if score.is_none() && index == 0 {
                CacheEntry {
                    duration_s: r.duration_s(),
                    map: WarpMap::identity(),
                }
            } else {
                let alignment = align_file(path, r, config.dtw, |done, total| {
                    progress(Progress {
                        index,
                        count,
                        done,
                        total,
                    })
                })?;
                let mut map = WarpMap::from_monotone(&alignment.rows).map_err(|reason| {
                    Error::invalid("alignment", path.display().to_string(), reason)
                })?;
                if let Some(score) = r.score() {
                    map = map.anchored(&note_onsets_s(score));
                }
                CacheEntry {
                    duration_s: alignment.rows.len() as f64 * config.features.hop_s(),
                    map,
                }
            };
            cache.put(key, &entry);
            versions.push(Version {
                path: path.clone(),
                duration_s: entry.duration_s,
                to_common: entry.map,
                cached: false,
            });
        }
        let common = match score {
            Some(p) => Common::Score(Box::new(Score::load(p)?)),
            None => Common::FirstRecording,
        };
        let common_duration_s = match &common {
            Common::Score(s) => s.duration_s,
            Common::FirstRecording => versions[0].duration_s,
        };
        Ok(Self {
            versions,
            common,
            common_duration_s,
        })
    }

    /// The time (s) in version `to` of the moment at `t_s` in version `from`, within `to`'s
    /// length. Indexes are 0-based; an index out of range is an error.
    pub fn map(&self, from: usize, to: usize, t_s: f64) -> crate::Result<f64> {
        let get = |i: usize| {
            self.versions.get(i).ok_or_else(|| {
                Error::invalid(
                    "version",
                    (i + 1).to_string(),
                    format!("there are {} versions", self.versions.len()),
                )
            })
        };
        let (a, b) = (get(from)?, get(to)?);
        Ok(b.to_common
            .inverse(a.to_common.forward(t_s))
            .clamp(0.0, b.duration_s))
    }

    /// Bars as (number, common time in s), from the score; empty without one.
    pub fn bars(&self) -> Vec<(i32, f64)> {
        match &self.common {
            Common::Score(s) => bar_starts(s),
            Common::FirstRecording => Vec::new(),
        }
    }

    /// The page's data: the common timeline (its bars) and each version with its URL and
    /// its map's knots (s, rounded to 0.1 ms).
    pub fn to_json(&self, url_of: impl Fn(usize) -> String) -> String {
        let versions: Vec<serde_json::Value> = self
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let knots: Vec<[f64; 2]> = v
                    .to_common
                    .knots()
                    .map(|(x, y)| [round4(x), round4(y)])
                    .collect();
                serde_json::json!({
                    "name": display_name(&v.path),
                    "file": v.path.display().to_string(),
                    "duration_s": round4(v.duration_s),
                    "url": url_of(i),
                    "knots": knots,
                })
            })
            .collect();
        let (kind, name) = match &self.common {
            Common::Score(s) => ("score", display_name(&s.path)),
            Common::FirstRecording => (
                "recording",
                self.versions
                    .first()
                    .map(|v| display_name(&v.path))
                    .unwrap_or_default(),
            ),
        };
        serde_json::json!({
            "timeline": {
                "kind": kind,
                "name": name,
                "duration_s": round4(self.common_duration_s),
                "bars": self.bars().iter().map(|&(n, t)| serde_json::json!([n, round4(t)])).collect::<Vec<_>>(),
            },
            "versions": versions,
        })
        .to_string()
    }
}

/// Bar starts of a score as (number, s), from its first bar to its last, none before 0.
pub fn bar_starts(score: &Score) -> Vec<(i32, f64)> {
    if let Some(layout) = score.printed.as_deref() {
        // A printed score: every measure as performed (a repeat's measures again), with its
        // printed number (the pickup is 0).
        return layout
            .measures
            .iter()
            .map(|m| (m.bar, score.s_at_beat(m.start_beat).max(0.0)))
            .collect();
    }
    (score.meter_map.first_bar()..=score.bar_count())
        .filter_map(|b| score.s_at_bar_beat(b, 1.0).map(|t| (b, t.max(0.0))))
        .collect()
}

/// A short name for a file: its parent folder and name (`human_p01/performance.flac`), since
/// corpora often name every recording alike.
pub fn display_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(dir) => format!("{}/{file}", dir.to_string_lossy()),
        None => file,
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Bumped when the cached data or the way it is computed changes.
/// Version 2: maps straight between the score's onsets ([`WarpMap::anchored`]).
const CACHE_FORMAT: &str = "scorefollow-switch-2";

/// The score's distinct note onsets (s), sorted.
fn note_onsets_s(score: &Score) -> Vec<f64> {
    let mut onsets: Vec<f64> = score
        .notes
        .iter()
        .filter(|n| !n.is_drum)
        .map(|n| n.onset_s)
        .collect();
    onsets.sort_by(f64::total_cmp);
    onsets.dedup();
    onsets
}

/// 64-bit FNV-1a, streaming.
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A hash of a file's contents and length (its name and place do not count).
pub fn content_hash(path: &Path) -> crate::Result<u64> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Fnv::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    h.update(&len.to_le_bytes());
    Ok(h.0)
}

fn cache_key(settings: &str, reference: u64, recording: u64) -> u64 {
    let mut h = Fnv::new();
    h.update(settings.as_bytes());
    h.update(&reference.to_le_bytes());
    h.update(&recording.to_le_bytes());
    h.0
}

/// One cached alignment.
#[derive(Clone, Debug)]
struct CacheEntry {
    duration_s: f64,
    map: WarpMap,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: String,
    duration_s: f64,
    knots: Vec<(f64, f64)>,
}

/// Where alignments are kept between runs (a directory of small JSON files), or nowhere.
#[derive(Clone, Debug)]
pub struct AlignCache {
    dir: Option<PathBuf>,
}

impl AlignCache {
    /// Cache in `dir` (created when first written).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// No cache.
    pub fn none() -> Self {
        Self { dir: None }
    }

    /// The user's cache: `$XDG_CACHE_HOME/scorefollow/switch`, else
    /// `~/.cache/scorefollow/switch`; none when neither is set.
    pub fn user() -> Self {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            });
        Self {
            dir: base.map(|b| b.join("scorefollow").join("switch")),
        }
    }

    /// The directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn file(&self, key: u64) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{key:016x}.json")))
    }

    fn get(&self, key: u64) -> Option<CacheEntry> {
        let path = self.file(key)?;
        let text = std::fs::read_to_string(&path).ok()?;
        let parsed: Result<CacheFile, _> = serde_json::from_str(&text);
        let entry = parsed
            .ok()
            .filter(|f| f.format == CACHE_FORMAT)
            .and_then(|f| {
                let map = WarpMap::from_monotone(&f.knots).ok()?;
                f.duration_s.is_finite().then_some(CacheEntry {
                    duration_s: f.duration_s,
                    map,
                })
            });
        if entry.is_none() {
            tracing::warn!(
                "ignoring the unreadable cached alignment {}",
                path.display()
            );
        }
        entry
    }

    /// Store an entry; a cache that cannot be written (read-only, full) only costs time, so
    /// it is reported and otherwise ignored. Written whole or not at all (rename).
    fn put(&self, key: u64, entry: &CacheEntry) {
        let (Some(dir), Some(path)) = (self.dir.as_ref(), self.file(key)) else {
            return;
        };
        let file = CacheFile {
            format: CACHE_FORMAT.into(),
            duration_s: entry.duration_s,
            knots: entry.map.knots().collect(),
        };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .and_then(|_| {
                std::fs::write(
                    &tmp,
                    serde_json::to_string(&file).map_err(std::io::Error::other)?,
                )
            })
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("cannot cache the alignment in {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_vectors() {
        let h = |s: &str| {
            let mut f = Fnv::new();
            f.update(s.as_bytes());
            f.0
        };
        assert_eq!(h(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(h("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(h("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn cache_round_trips_and_ignores_damage() {
        let dir = std::env::temp_dir().join(format!("sf_switch_cache_{}", std::process::id()));
        let cache = AlignCache::at(&dir);
        let map = WarpMap::from_monotone(&[(0.0, 0.0), (1.0, 2.0), (3.0, 2.5)])
            .unwrap_or_else(|e| panic!("{e}"));
        cache.put(
            7,
            &CacheEntry {
                duration_s: 3.5,
                map: map.clone(),
            },
        );
        let got = cache.get(7).unwrap_or_else(|| panic!("not cached"));
        assert_eq!((got.duration_s, got.map), (3.5, map));
        assert!(cache.get(8).is_none());
        let file = cache.file(7).unwrap_or_else(|| panic!("no dir"));
        for damage in [
            "",
            "{",
            "{\"format\":\"x\",\"duration_s\":1,\"knots\":[]}",
            "{\"format\":\"scorefollow-switch-1\",\"duration_s\":1,\"knots\":[[1,1],[0,0]]}",
        ] {
            std::fs::write(&file, damage).unwrap_or_else(|e| panic!("{e}"));
            assert!(cache.get(7).is_none(), "{damage}");
        }
        // An unwritable cache is not an error.
        AlignCache::at("/proc/scorefollow-no").put(
            1,
            &CacheEntry {
                duration_s: 1.0,
                map: WarpMap::identity(),
            },
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn content_hash_sees_contents_not_names() {
        let d = std::env::temp_dir();
        let pid = std::process::id();
        let (a, b, c) = (
            d.join(format!("sf_h_{pid}_a")),
            d.join(format!("sf_h_{pid}_b")),
            d.join(format!("sf_h_{pid}_c")),
        );
        for (p, t) in [(&a, "same"), (&b, "same"), (&c, "diff")] {
            std::fs::write(p, t).unwrap_or_else(|e| panic!("{e}"));
        }
        let h = |p: &Path| content_hash(p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
        assert!(content_hash(&d.join("sf_no_such_file")).is_err());
        for p in [a, b, c] {
            let _ = std::fs::remove_file(p);
        }
    }
}
