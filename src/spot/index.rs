//! Audio matching over a collection (Zalkow & Müller 2020/2021): every recording becomes
//! overlapping CENS shingles, optionally reduced by PCA, searched by nearest neighbours (an
//! inverted file, [`super::ivf`], or brute force for small collections); a query clip's shingles
//! at several tempo scalings vote for `(recording, start)` alignments, merged into ranked hits.
//!
//! Shingles: CENS with a 41-frame smoothing window and downsampling 10 (5 frames/s at 50 chroma
//! frames/s); a shingle is `shingle_len` = 20 consecutive CENS frames (4 s) flattened to 240
//! values and L2-normalised, taken every `shingle_hop` = 2 frames (0.4 s). PCA keeps 32
//! dimensions by default (0 = no PCA).
//!
//! File format (little-endian), version [`INDEX_VERSION`]:
//! ```text
//! magic "SFSPOTIX" | u32 version | u64 n | n bytes JSON metadata (config, recordings)
//! | u8 has_pca [u32 dim, u32 k, f32 mean[dim], f32 components[k*dim], f32 variances[k]]
//! | u32 dim | u32 n_lists | u64 n_vectors | f32 centroids | u32 offsets[n_lists+1]
//! | u32 ids[n_vectors] | f32 vectors[n_vectors*dim] | u64 FNV-1a of every byte before it
//! ```
//! A file with another magic is refused as foreign, another version as unsupported, a
//! checksum mismatch or a short file as corrupt.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ivf::{exact_knn, Ivf};
use super::matcher::scale_index;
use super::pca::Pca;
use super::query::{trim_silence, ChromaReader, MidiMode};
use crate::features::cens::{cens, CensConfig};
use crate::features::{Chroma, FeatureConfig, N_CHROMA};

/// First bytes of an index file.
pub const INDEX_MAGIC: &[u8; 8] = b"SFSPOTIX";
/// Version of the format this build reads and writes.
pub const INDEX_VERSION: u32 = 1;

/// Index parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// CENS smoothing window (chroma frames).
    pub smooth_frames: usize,
    /// CENS downsampling factor.
    pub downsample: usize,
    /// Shingle length (CENS frames).
    pub shingle_len: usize,
    /// Hop between shingles (CENS frames).
    pub shingle_hop: usize,
    /// PCA dimensions (0 = keep all `12 * shingle_len`).
    pub pca_dims: usize,
    /// Inverted-file lists (0 = about the square root of the number of shingles).
    pub n_lists: usize,
    /// Lists probed per query shingle.
    pub nprobe: usize,
    /// Below this many shingles, search exhaustively (no inverted file).
    pub exact_below: usize,
    /// Chroma log compression (the spotter's setting).
    pub log_compression: f32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            smooth_frames: 41,
            downsample: 10,
            shingle_len: 20,
            shingle_hop: 2,
            pca_dims: 32,
            n_lists: 0,
            nprobe: 24,
            exact_below: 20_000,
            log_compression: 1.0,
        }
    }
}

impl IndexConfig {
    /// The CENS configuration.
    pub fn cens(&self) -> CensConfig {
        CensConfig {
            smooth_frames: self.smooth_frames,
            downsample: self.downsample,
        }
    }

    /// The chroma configuration.
    pub fn features(&self) -> FeatureConfig {
        FeatureConfig {
            log_compression: self.log_compression,
            ..FeatureConfig::default()
        }
    }

    /// Dimension of a raw shingle.
    pub fn raw_dim(&self) -> usize {
        self.shingle_len * N_CHROMA
    }

    fn validate(&self) -> crate::Result<()> {
        if self.shingle_len == 0 || self.shingle_hop == 0 || self.downsample == 0 {
            return Err(crate::Error::invalid(
                "index configuration",
                format!("{self:?}"),
                "shingle length, hop and downsampling must be >= 1",
            ));
        }
        if self.pca_dims > self.raw_dim() {
            return Err(crate::Error::invalid(
                "PCA dimensions",
                self.pca_dims.to_string(),
                format!("must be <= {}", self.raw_dim()),
            ));
        }
        Ok(())
    }
}

/// One indexed recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingEntry {
    /// Name (the path given at build time).
    pub name: String,
    /// Global index of its first shingle.
    pub first_shingle: u64,
    /// Number of shingles.
    pub n_shingles: u64,
    /// Number of CENS frames.
    pub n_frames: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Meta {
    config: IndexConfig,
    recordings: Vec<RecordingEntry>,
}

/// A searchable collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Index {
    /// Parameters.
    pub config: IndexConfig,
    /// Recordings, in shingle order.
    pub recordings: Vec<RecordingEntry>,
    /// Projection (none when `pca_dims == 0`).
    pub pca: Option<Pca>,
    /// Shingle vectors (projected) in an inverted file; with one list it is a flat table.
    pub ivf: Ivf,
}

/// One collection hit.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexHit {
    /// Recording name.
    pub recording: String,
    /// Start (s).
    pub start_s: f64,
    /// End (s).
    pub end_s: f64,
    /// Mean shingle similarity (1 = identical; higher is better).
    pub score: f32,
    /// Occurrence length / clip length.
    pub tempo_scale: f32,
}

/// Query parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexQuery {
    /// Hits returned.
    pub top: usize,
    /// Tempo scalings tried (geometric between `min_scale` and `max_scale`).
    pub n_scales: usize,
    /// Smallest scaling.
    pub min_scale: f32,
    /// Largest scaling.
    pub max_scale: f32,
    /// Neighbours retrieved per query shingle.
    pub k_per_shingle: usize,
}

impl Default for IndexQuery {
    fn default() -> Self {
        Self {
            top: 10,
            n_scales: 9,
            min_scale: 0.5,
            max_scale: 2.0,
            k_per_shingle: 20,
        }
    }
}

/// Flatten the shingle starting at CENS frame `p` into `out`, L2-normalised.
fn shingle(seq: &[Chroma], p: usize, len: usize, out: &mut [f32]) {
    for (i, f) in seq[p..p + len].iter().enumerate() {
        out[i * N_CHROMA..(i + 1) * N_CHROMA].copy_from_slice(f);
    }
    let n = out.iter().map(|v| v * v).sum::<f32>().sqrt();
    if n > 0.0 {
        out.iter_mut().for_each(|v| *v /= n);
    }
}

fn n_shingles(n_frames: usize, cfg: &IndexConfig) -> usize {
    if n_frames < cfg.shingle_len {
        0
    } else {
        (n_frames - cfg.shingle_len) / cfg.shingle_hop + 1
    }
}

impl Index {
    /// Build from CENS sequences `(name, frames)` computed with `config.cens()`.
    pub fn build(config: IndexConfig, items: Vec<(String, Vec<Chroma>)>) -> crate::Result<Index> {
        config.validate()?;
        let mut recordings = Vec::with_capacity(items.len());
        let mut total = 0u64;
        for (name, seq) in &items {
            let n = n_shingles(seq.len(), &config) as u64;
            recordings.push(RecordingEntry {
                name: name.clone(),
                first_shingle: total,
                n_shingles: n,
                n_frames: seq.len() as u64,
            });
            total += n;
        }
        if total < 2 {
            return Err(crate::Error::invalid(
                "collection",
                format!("{} recordings", items.len()),
                format!(
                    "too short to index: need at least two shingles of {} CENS frames",
                    config.shingle_len
                ),
            ));
        }
        if total > u32::MAX as u64 {
            return Err(crate::Error::invalid(
                "collection",
                total.to_string(),
                "more than 2^32 shingles",
            ));
        }
        let raw_dim = config.raw_dim();
        // (item, start frame) of every shingle.
        let locs: Vec<(u32, u32)> = items
            .iter()
            .enumerate()
            .flat_map(|(r, (_, seq))| {
                (0..n_shingles(seq.len(), &config))
                    .map(move |i| (r as u32, (i * config.shingle_hop) as u32))
            })
            .collect();
        let pca = if config.pca_dims > 0 && config.pca_dims < raw_dim {
            let step = (locs.len() / 20_000).max(1);
            let sample: Vec<f32> = locs
                .iter()
                .step_by(step)
                .flat_map(|&(r, p)| {
                    let mut v = vec![0.0f32; raw_dim];
                    shingle(&items[r as usize].1, p as usize, config.shingle_len, &mut v);
                    v
                })
                .collect();
            Some(Pca::fit(&sample, raw_dim, config.pca_dims)?)
        } else {
            None
        };
        let dim = pca.as_ref().map_or(raw_dim, |p| p.k);
        let mut vectors = vec![0.0f32; locs.len() * dim];
        vectors
            .par_chunks_mut(dim * 1024)
            .zip(locs.par_chunks(1024))
            .for_each(|(out, ls)| {
                let mut raw = vec![0.0f32; raw_dim];
                for (o, &(r, p)) in out.chunks_exact_mut(dim).zip(ls) {
                    shingle(
                        &items[r as usize].1,
                        p as usize,
                        config.shingle_len,
                        &mut raw,
                    );
                    match &pca {
                        Some(pc) => pc.project(&raw, o),
                        None => o.copy_from_slice(&raw),
                    }
                }
            });
        let n_lists = if (locs.len()) < config.exact_below {
            1
        } else if config.n_lists > 0 {
            config.n_lists
        } else {
            (locs.len() as f64).sqrt().round() as usize
        };
        let ivf = Ivf::build(&vectors, dim, n_lists, 64 * n_lists, 10);
        Ok(Index {
            config,
            recordings,
            pca,
            ivf,
        })
    }

    /// Build from audio or MIDI files, in parallel; names are the paths as given.
    pub fn build_from_files(
        config: IndexConfig,
        files: &[PathBuf],
        midi_mode: MidiMode,
        reader: &dyn ChromaReader,
    ) -> crate::Result<Index> {
        let feat = config.features();
        let cc = config.cens();
        let items: Vec<(String, Vec<Chroma>)> = files
            .par_iter()
            .map(|f| {
                Ok((
                    f.display().to_string(),
                    cens(&reader.read(f, &feat, midi_mode)?, &cc),
                ))
            })
            .collect::<crate::Result<_>>()?;
        Index::build(config, items)
    }

    /// Number of shingles.
    pub fn n_shingles(&self) -> usize {
        self.ivf.len()
    }

    /// The (projected) vector of a query shingle.
    fn embed(&self, raw: &[f32]) -> Vec<f32> {
        match &self.pca {
            Some(p) => {
                let mut o = vec![0.0f32; p.k];
                p.project(raw, &mut o);
                o
            }
            None => raw.to_vec(),
        }
    }

    /// Nearest shingles of one embedded vector: `(squared distance, global shingle id)`.
    pub fn knn(&self, v: &[f32], k: usize) -> Vec<(f32, u32)> {
        if self.ivf.n_lists() <= 1 {
            exact_knn(&self.ivf.vectors, self.ivf.dim, v, k)
                .into_iter()
                .map(|(d, pos)| (d, self.ivf.ids[pos as usize]))
                .collect()
        } else {
            self.ivf.search(v, k, self.config.nprobe)
        }
    }

    fn locate(&self, id: u32) -> (usize, usize) {
        let r = self
            .recordings
            .partition_point(|e| e.first_shingle + e.n_shingles <= id as u64)
            .min(self.recordings.len().saturating_sub(1));
        let e = &self.recordings[r];
        (
            r,
            (id as u64 - e.first_shingle) as usize * self.config.shingle_hop,
        )
    }

    /// Search a clip given as chroma frames (the clip's leading and trailing silence is
    /// ignored). Hits are best first, at most `q.top`, no two overlapping by more than half.
    pub fn query_chroma(&self, clip: &[Chroma], q: &IndexQuery) -> crate::Result<Vec<IndexHit>> {
        let cc = self.config.cens();
        let seq = cens(trim_silence(clip), &cc);
        let len = self.config.shingle_len;
        let params = super::matcher::MatchParams {
            n_scales: q.n_scales,
            min_scale: q.min_scale,
            max_scale: q.max_scale,
            ..Default::default()
        };
        params.validate()?;
        // Votes: (recording, start frame, scale index) -> summed similarity.
        let mut votes: std::collections::HashMap<(usize, i64, usize), f32> = Default::default();
        let mut n_q = vec![0usize; q.n_scales.max(1)];
        let raw_dim = self.config.raw_dim();
        let mut raw = vec![0.0f32; raw_dim];
        for (si, &s) in params.scales().iter().enumerate() {
            let scaled: Vec<Chroma> = scale_index(seq.len(), s)
                .into_iter()
                .map(|i| seq[i as usize])
                .collect();
            if scaled.len() < len {
                continue;
            }
            let offsets: Vec<usize> = (0..=scaled.len() - len)
                .step_by(self.config.shingle_hop)
                .collect();
            n_q[si] = offsets.len();
            for &o in &offsets {
                shingle(&scaled, o, len, &mut raw);
                let v = self.embed(&raw);
                for (d2, id) in self.knn(&v, q.k_per_shingle) {
                    let (r, p) = self.locate(id);
                    let start = p as i64 - o as i64;
                    // Similarity of unit vectors from their squared distance.
                    let sim = (1.0 - d2 / 2.0).max(0.0);
                    let e = votes
                        .entry((r, start.div_euclid(self.config.shingle_hop as i64), si))
                        .or_insert(0.0);
                    *e += sim;
                }
            }
        }
        let scales = params.scales();
        let mut cands: Vec<(f32, usize, i64, usize)> = votes
            .into_iter()
            .filter(|&((_, _, si), _)| n_q[si] > 0)
            .map(|((r, b, si), v)| {
                (
                    v / n_q[si] as f32,
                    r,
                    b * self.config.shingle_hop as i64,
                    si,
                )
            })
            .collect();
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let feat = self.config.features();
        let mut out: Vec<(usize, i64, i64, IndexHit)> = Vec::new();
        for (score, r, start, si) in cands {
            if out.len() >= q.top {
                break;
            }
            let n_len = (seq.len() as f32 * scales[si]).round() as i64;
            let (a, b) = (start.max(0), start + n_len);
            let clash = out.iter().any(|(r2, a2, b2, _)| {
                let inter = (b.min(*b2) - a.max(*a2)).max(0);
                *r2 == r && 2 * inter > (b - a).min(b2 - a2)
            });
            if clash {
                continue;
            }
            out.push((
                r,
                a,
                b,
                IndexHit {
                    recording: self.recordings[r].name.clone(),
                    start_s: super::cens_frame_start_s(a as usize, &feat, &cc),
                    end_s: super::cens_frame_start_s(b as usize, &feat, &cc),
                    score,
                    tempo_scale: scales[si],
                },
            ));
        }
        Ok(out.into_iter().map(|(_, _, _, h)| h).collect())
    }

    /// Search a clip file (audio or MIDI).
    pub fn query_file(
        &self,
        clip: &Path,
        q: &IndexQuery,
        midi_mode: MidiMode,
        reader: &dyn ChromaReader,
    ) -> crate::Result<Vec<IndexHit>> {
        let c = reader.read(clip, &self.config.features(), midi_mode)?;
        self.query_chroma(&c, q)
    }

    /// Serialise to bytes (see the module docs for the layout).
    pub fn to_bytes(&self) -> crate::Result<Vec<u8>> {
        let meta = serde_json::to_vec(&Meta {
            config: self.config.clone(),
            recordings: self.recordings.clone(),
        })
        .map_err(|e| crate::Error::Other(format!("cannot encode index metadata: {e}")))?;
        let mut b =
            Vec::with_capacity(64 + meta.len() + 4 * (self.ivf.vectors.len() + self.ivf.ids.len()));
        b.extend_from_slice(INDEX_MAGIC);
        b.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        b.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        b.extend_from_slice(&meta);
        let f32s = |b: &mut Vec<u8>, v: &[f32]| {
            v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()))
        };
        let u32s = |b: &mut Vec<u8>, v: &[u32]| {
            v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()))
        };
        match &self.pca {
            Some(p) => {
                b.push(1);
                u32s(&mut b, &[p.dim as u32, p.k as u32]);
                f32s(&mut b, &p.mean);
                f32s(&mut b, &p.components);
                f32s(&mut b, &p.variances);
            }
            None => b.push(0),
        }
        u32s(&mut b, &[self.ivf.dim as u32, self.ivf.n_lists() as u32]);
        b.extend_from_slice(&(self.ivf.len() as u64).to_le_bytes());
        f32s(&mut b, &self.ivf.centroids);
        u32s(&mut b, &self.ivf.offsets);
        u32s(&mut b, &self.ivf.ids);
        f32s(&mut b, &self.ivf.vectors);
        let h = fnv1a(&b);
        b.extend_from_slice(&h.to_le_bytes());
        Ok(b)
    }

    /// Write to a file.
    pub fn save(&self, path: &Path) -> crate::Result<()> {
        let bytes = self.to_bytes()?;
        let f = std::fs::File::create(path).map_err(|e| crate::Error::io(path, e))?;
        let mut w = BufWriter::new(f);
        w.write_all(&bytes).map_err(|e| crate::Error::io(path, e))?;
        w.flush().map_err(|e| crate::Error::io(path, e))
    }

    /// Read from a file, refusing foreign, other-version, truncated or corrupt files.
    pub fn load(path: &Path) -> crate::Result<Index> {
        let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
        Index::from_bytes(&bytes).map_err(|reason| {
            crate::Error::invalid("index file", path.display().to_string(), reason)
        })
    }

    /// Parse bytes written by [`Index::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Index, String> {
        if bytes.len() < 8 || &bytes[..8] != INDEX_MAGIC {
            return Err("not a scorefollow spot index (foreign file: wrong magic bytes)".into());
        }
        let mut r = Reader { b: bytes, pos: 8 };
        let version = r.u32()?;
        if version != INDEX_VERSION {
            return Err(format!(
                "index format version {version}, this build reads version {INDEX_VERSION}: rebuild the index"
            ));
        }
        if bytes.len() < 8 + 4 + 8 + 8 {
            return Err("corrupt index (truncated)".into());
        }
        let body = &bytes[..bytes.len() - 8];
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&bytes[bytes.len() - 8..]);
        if fnv1a(body) != u64::from_le_bytes(tail) {
            return Err("corrupt index (checksum mismatch: truncated or modified)".into());
        }
        let mut r = Reader { b: body, pos: 12 };
        let meta_len = r.u64()? as usize;
        let meta: Meta = serde_json::from_slice(r.take(meta_len)?)
            .map_err(|e| format!("corrupt index metadata: {e}"))?;
        check_loaded_config(&meta.config)?;
        check_recordings(&meta.config, &meta.recordings)?;
        let pca = match r.take(1)?[0] {
            0 => None,
            1 => {
                let dim = r.u32()? as usize;
                let k = r.u32()? as usize;
                if dim != meta.config.raw_dim() || k == 0 || k > dim {
                    return Err("corrupt index (PCA shape)".into());
                }
                Some(Pca {
                    dim,
                    k,
                    mean: r.f32s(dim)?,
                    components: r.f32s(k.checked_mul(dim).ok_or("corrupt index (PCA shape)")?)?,
                    variances: r.f32s(k)?,
                })
            }
            _ => return Err("corrupt index (PCA flag)".into()),
        };
        let dim = r.u32()? as usize;
        let n_lists = r.u32()? as usize;
        let n = r.u64()? as usize;
        let too_big = || "corrupt index (sizes overflow)".to_string();
        let ivf = Ivf {
            dim,
            centroids: r.f32s(n_lists.checked_mul(dim).ok_or_else(too_big)?)?,
            offsets: r.u32s(n_lists.checked_add(1).ok_or_else(too_big)?)?,
            ids: r.u32s(n)?,
            vectors: r.f32s(n.checked_mul(dim).ok_or_else(too_big)?)?,
        };
        if r.pos != body.len() {
            return Err("corrupt index (trailing bytes)".into());
        }
        ivf.validate().map_err(|e| format!("corrupt index ({e})"))?;
        let total: u64 = meta.recordings.iter().map(|e| e.n_shingles).sum();
        if total != n as u64 || pca.as_ref().map_or(meta.config.raw_dim(), |p| p.k) != dim {
            return Err("corrupt index (recording table does not match the vectors)".into());
        }
        Ok(Index {
            config: meta.config,
            recordings: meta.recordings,
            pca,
            ivf,
        })
    }
}

/// Largest CENS window, downsampling, shingle length or hop a loaded index may state. Real
/// indexes use tens; the bound keeps a corrupt but correctly checksummed file from asking for
/// absurd allocations or overflowing sizes (found by the fuzz tests).
const MAX_LOADED_FRAMES: usize = 100_000;

/// The configuration of a loaded index, checked before anything is sized from it.
fn check_loaded_config(c: &IndexConfig) -> Result<(), String> {
    let bounded = |name: &str, v: usize| {
        if (1..=MAX_LOADED_FRAMES).contains(&v) {
            Ok(())
        } else {
            Err(format!(
                "corrupt index ({name} {v} is outside 1..={MAX_LOADED_FRAMES})"
            ))
        }
    };
    bounded("smooth_frames", c.smooth_frames)?;
    bounded("downsample", c.downsample)?;
    bounded("shingle_len", c.shingle_len)?;
    bounded("shingle_hop", c.shingle_hop)?;
    if c.nprobe > 1 << 24 {
        return Err(format!("corrupt index (nprobe {} is too large)", c.nprobe));
    }
    if !(c.log_compression.is_finite() && c.log_compression >= 0.0) {
        return Err(format!(
            "corrupt index (log_compression {} is not a finite number >= 0)",
            c.log_compression
        ));
    }
    c.validate().map_err(|e| format!("corrupt index: {e}"))
}

/// The recording table must tile the shingles in order, each recording holding as many
/// shingles as its length gives, so every shingle id maps back to one recording.
fn check_recordings(c: &IndexConfig, recs: &[RecordingEntry]) -> Result<(), String> {
    let mut next = 0u64;
    for (i, e) in recs.iter().enumerate() {
        let expected = usize::try_from(e.n_frames)
            .map(|f| n_shingles(f, c) as u64)
            .unwrap_or(u64::MAX);
        if e.first_shingle != next || e.n_shingles != expected {
            return Err(format!(
                "corrupt index (recording {i} '{}': shingles {}+{} do not follow on from {next} or do not match its {} frames)",
                e.name, e.first_shingle, e.n_shingles, e.n_frames
            ));
        }
        next = next
            .checked_add(e.n_shingles)
            .ok_or("corrupt index (sizes overflow)")?;
    }
    Ok(())
}

/// 64-bit FNV-1a.
pub fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or("corrupt index (truncated)")?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        let s = self.take(n.checked_mul(4).ok_or("corrupt index (sizes overflow)")?)?;
        Ok(s.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, String> {
        let s = self.take(n.checked_mul(4).ok_or("corrupt index (sizes overflow)")?)?;
        Ok(s.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Audio, MIDI and MusicXML (`.musicxml`, `.mxl`; not any `.xml`) files under `dirs`
/// (recursively; a file argument is taken as is), sorted.
pub fn collect_files(dirs: &[PathBuf]) -> crate::Result<Vec<PathBuf>> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> crate::Result<()> {
        let rd = std::fs::read_dir(d).map_err(|e| crate::Error::io(d, e))?;
        for ent in rd {
            let p = ent.map_err(|e| crate::Error::io(d, e))?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else {
                let ext = p
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if matches!(
                    ext.as_str(),
                    "flac" | "wav" | "mp3" | "ogg" | "mid" | "midi" | "musicxml" | "mxl"
                ) {
                    out.push(p);
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for d in dirs {
        if d.is_dir() {
            walk(d, &mut out)?;
        } else if d.exists() {
            out.push(d.clone());
        } else {
            return Err(crate::Error::io(
                d,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CENS-like sequences: a random chord every few frames, smoothed.
    fn collection(n_rec: usize, len: usize, seed: u64) -> Vec<(String, Vec<Chroma>)> {
        let mut rng = crate::test_util::Rng::new(seed);
        let mut next = move || rng.next_u64() >> 33;
        (0..n_rec)
            .map(|r| {
                let mut seq = Vec::with_capacity(len);
                let mut cur = [0.1f32; N_CHROMA];
                for i in 0..len {
                    if i % 4 == 0 {
                        cur = [0.1; N_CHROMA];
                        let root = (next() % 12) as usize;
                        cur[root] = 1.0;
                        cur[(root + 4) % 12] = 0.7;
                        cur[(root + 7) % 12] = 0.5;
                    }
                    let n = cur.iter().map(|v| v * v).sum::<f32>().sqrt();
                    seq.push(cur.map(|v| v / n));
                }
                (format!("rec{r}"), seq)
            })
            .collect()
    }

    fn small_cfg() -> IndexConfig {
        IndexConfig {
            pca_dims: 16,
            exact_below: 0,
            n_lists: 8,
            nprobe: 8,
            ..Default::default()
        }
    }

    #[test]
    fn roundtrip_and_refusals() {
        let idx = Index::build(small_cfg(), collection(3, 200, 5)).unwrap();
        let b = idx.to_bytes().unwrap();
        let back = Index::from_bytes(&b).unwrap();
        assert_eq!(back, idx);
        let mut foreign = b.clone();
        foreign[0] = b'X';
        assert!(Index::from_bytes(&foreign).unwrap_err().contains("foreign"));
        let mut ver = b.clone();
        ver[8] = 99;
        assert!(Index::from_bytes(&ver).unwrap_err().contains("version"));
        let mut flip = b.clone();
        let mid = flip.len() / 2;
        flip[mid] ^= 1;
        assert!(Index::from_bytes(&flip).unwrap_err().contains("corrupt"));
        assert!(Index::from_bytes(&b[..b.len() - 100])
            .unwrap_err()
            .contains("corrupt"));
        assert!(Index::from_bytes(b"short").is_err());
    }

    #[test]
    fn clip_is_found_in_its_recording_at_its_tempo() {
        let items = collection(6, 600, 11);
        let feat = IndexConfig::default().features();
        // A clip: CENS frames 200..260 of rec3, played 1.25x faster; queries take chroma, so
        // upsample CENS frames back to the chroma rate (each frame held `downsample` times).
        let src = &items[3].1[200..260];
        let fast: Vec<Chroma> = (0..48).map(|i| src[(i as f32 * 1.25) as usize]).collect();
        let clip: Vec<Chroma> = fast
            .iter()
            .flat_map(|f| std::iter::repeat_n(*f, 10))
            .collect();
        for cfg in [
            small_cfg(),
            IndexConfig {
                pca_dims: 0,
                ..small_cfg()
            },
            IndexConfig::default(),
        ] {
            let idx = Index::build(cfg, items.clone()).unwrap();
            let hits = idx.query_chroma(&clip, &IndexQuery::default()).unwrap();
            let h = &hits[0];
            assert_eq!(h.recording, "rec3");
            let t0 = super::super::cens_frame_start_s(200, &feat, &idx.config.cens());
            assert!((h.start_s - t0).abs() < 1.0, "{h:?} vs {t0}");
            assert!((h.tempo_scale - 1.25).abs() < 0.2, "{h:?}");
        }
    }

    #[test]
    fn ann_agrees_with_brute_force_on_most_neighbours() {
        let items = collection(20, 500, 3);
        let cfg = IndexConfig {
            exact_below: 0,
            n_lists: 32,
            nprobe: 8,
            ..Default::default()
        };
        let idx = Index::build(cfg, items).unwrap();
        let mut r = 0.0;
        let n = 40;
        for t in 0..n {
            let q = idx.ivf.vectors[t * 61 * idx.ivf.dim..(t * 61 + 1) * idx.ivf.dim].to_vec();
            let exact: Vec<(f32, u32)> = exact_knn(&idx.ivf.vectors, idx.ivf.dim, &q, 10)
                .into_iter()
                .map(|(d, p)| (d, idx.ivf.ids[p as usize]))
                .collect();
            r += super::super::ivf::recall(&exact, &idx.knn(&q, 10));
        }
        assert!(r / n as f64 >= 0.9, "recall {}", r / n as f64);
    }

    #[test]
    fn too_short_collection_is_refused() {
        assert!(Index::build(IndexConfig::default(), collection(1, 5, 1)).is_err());
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;
    use crate::test_util::fuzz::{edits, mutate};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// A small valid index file (with PCA and several lists) and a clip to query with.
    fn valid() -> &'static (Vec<u8>, Vec<Chroma>) {
        static V: OnceLock<(Vec<u8>, Vec<Chroma>)> = OnceLock::new();
        V.get_or_init(|| {
            let mut rng = crate::test_util::Rng::new(7);
            let items: Vec<(String, Vec<Chroma>)> = (0..3)
                .map(|r| {
                    let seq = (0..120)
                        .map(|_| {
                            let s = rng.next_u64() >> 33;
                            let mut c = [0.1f32; N_CHROMA];
                            c[(s % 12) as usize] = 1.0;
                            c
                        })
                        .collect();
                    (format!("rec{r}"), seq)
                })
                .collect();
            let clip: Vec<Chroma> = items[1].1[20..60]
                .iter()
                .flat_map(|f| std::iter::repeat_n(*f, 10))
                .collect();
            let cfg = IndexConfig {
                pca_dims: 8,
                exact_below: 0,
                n_lists: 4,
                nprobe: 4,
                ..Default::default()
            };
            let idx = Index::build(cfg, items).unwrap_or_else(|e| panic!("{e}"));
            (idx.to_bytes().unwrap_or_else(|e| panic!("{e}")), clip)
        })
    }

    /// `body` with its FNV-1a trailer, as `to_bytes` writes it.
    fn seal(mut body: Vec<u8>) -> Vec<u8> {
        let h = fnv1a(&body);
        body.extend_from_slice(&h.to_le_bytes());
        body
    }

    /// Split a valid file into (metadata JSON, binary part after it, without the checksum).
    fn parts(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let n = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or([0; 8])) as usize;
        (
            bytes[20..20 + n].to_vec(),
            bytes[20 + n..bytes.len() - 8].to_vec(),
        )
    }

    fn assemble(meta: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut b = INDEX_MAGIC.to_vec();
        b.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        b.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        b.extend_from_slice(meta);
        b.extend_from_slice(rest);
        seal(b)
    }

    /// The contract: an index that can be queried without panicking, or a non-empty reason.
    fn check(bytes: &[u8]) -> Result<bool, TestCaseError> {
        match Index::from_bytes(bytes) {
            Ok(idx) => {
                let clip = &valid().1;
                // A loaded index must be usable: querying it may fail, never panic.
                let _ = idx.query_chroma(clip, &IndexQuery::default());
                Ok(true)
            }
            Err(reason) => {
                prop_assert!(!reason.trim().is_empty());
                Ok(false)
            }
        }
    }

    #[test]
    fn the_valid_file_round_trips_through_the_helpers() {
        let (bytes, clip) = valid();
        let (meta, rest) = parts(bytes);
        assert_eq!(&assemble(&meta, &rest), bytes);
        let idx = Index::from_bytes(bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(!idx
            .query_chroma(clip, &IndexQuery::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
    }

    /// The faults the fuzzing found, each refused with a reason (before the fix: an overflow
    /// panic for a huge shingle length, an allocation abort for a huge CENS window when
    /// querying, an underflow panic for a recording table that does not tile the shingles).
    #[test]
    fn corrupt_but_sealed_metadata_is_refused_with_a_reason() {
        let (bytes, _) = valid();
        let (meta, rest) = parts(bytes);
        let meta: serde_json::Value =
            serde_json::from_slice(&meta).unwrap_or_else(|e| panic!("{e}"));
        let cases: [(&str, serde_json::Value, &str); 5] = [
            ("/config/shingle_len", u64::MAX.into(), "shingle_len"),
            (
                "/config/smooth_frames",
                (1u64 << 40).into(),
                "smooth_frames",
            ),
            ("/config/downsample", 0.into(), "downsample"),
            ("/recordings/1/first_shingle", 0.into(), "recording 1"),
            ("/recordings/0/n_shingles", u64::MAX.into(), "recording 0"),
        ];
        for (field, value, needle) in cases {
            let mut m = meta.clone();
            *m.pointer_mut(field).unwrap_or_else(|| panic!("{field}")) = value;
            let b = assemble(&serde_json::to_vec(&m).unwrap_or_default(), &rest);
            match Index::from_bytes(&b) {
                Err(e) => assert!(e.contains(needle), "{field}: {e}"),
                Ok(_) => panic!("{field}: accepted"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_are_refused(
            tail in proptest::collection::vec(any::<u8>(), 0..200),
            header in 0u8..3,
        ) {
            // Random bytes, then the same behind a valid magic, then behind magic and version.
            let mut b = Vec::new();
            if header >= 1 { b.extend_from_slice(INDEX_MAGIC); }
            if header >= 2 { b.extend_from_slice(&INDEX_VERSION.to_le_bytes()); }
            b.extend_from_slice(&tail);
            prop_assert!(!check(&b)?);
            // Sealed with a correct checksum, the parser goes past the checksum test.
            check(&seal(b))?;
        }

        #[test]
        fn mutated_files_never_panic(e in edits(4), reseal in any::<bool>()) {
            let (bytes, _) = valid();
            let body = mutate(&bytes[..bytes.len() - 8], &e);
            // Unsealed mutants fail the checksum (unless the edits cancel out); resealed ones
            // reach the structural checks.
            let b = if reseal { seal(body) } else { mutate(bytes, &e) };
            check(&b)?;
        }

        #[test]
        fn mutated_metadata_never_panics(e in edits(4)) {
            let (bytes, _) = valid();
            let (meta, rest) = parts(bytes);
            check(&assemble(&mutate(&meta, &e), &rest))?;
        }

        #[test]
        fn mutated_numbers_in_metadata_never_panic(
            field in 0usize..13,
            value in prop_oneof![
                Just(0u64), Just(1), Just(2), Just(u32::MAX as u64), Just(u64::MAX),
                Just(u64::MAX / 2), Just(1 << 40), 0u64..1000
            ],
        ) {
            // Replace the `field`-th number of the JSON metadata by `value`: the deep checks
            // (configuration bounds, recording table) see every kind of bad number.
            let (bytes, _) = valid();
            let (meta, rest) = parts(bytes);
            let text = String::from_utf8_lossy(&meta).into_owned();
            let mut out = String::new();
            let mut k = 0;
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                if c.is_ascii_digit() && !out.ends_with(|p: char| p.is_ascii_digit() || p == '.' || p == 'e') {
                    let mut num = c.to_string();
                    while let Some(&d) = chars.peek() {
                        if d.is_ascii_digit() || d == '.' || d == 'e' || d == '-' { num.push(d); chars.next(); } else { break; }
                    }
                    if k == field { out.push_str(&value.to_string()); } else { out.push_str(&num); }
                    k += 1;
                } else {
                    out.push(c);
                }
            }
            check(&assemble(out.as_bytes(), &rest))?;
        }
    }
}
