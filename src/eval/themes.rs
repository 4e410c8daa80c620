//! `eval --mode themes`: every theme of every case of a corpus (layout of the dev corpus README:
//! `index.csv`, `pieces/<piece>/themes/theme_NN.{mid,flac}`, `themes_gt.csv` per case) searched
//! in the case's performance, scored as `score_themes.py` does, separately for MIDI and audio
//! queries.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::theme_metrics::{read_themes_csv, Accumulator, ByTheme, Criterion, Interval, Metrics};
use crate::audio::load::read_chroma as file_chroma;
use crate::features::cens;
use crate::features::Chroma;
use crate::spot::query::stem;
use crate::spot::{query_cens, to_seconds, Hit, SpotConfig};

/// Options of the theme evaluation.
#[derive(Clone, Debug)]
pub struct ThemeEvalOptions {
    /// Spotter configuration (features, CENS, matching, MIDI mode).
    pub spot: SpotConfig,
    /// Ignore transposed true occurrences (`score_themes.py --exact-only`).
    pub exact_only: bool,
    /// When set, write predictions as `DIR/{midi,audio}/<piece>/<case>.themes.csv`, the layout
    /// `score_themes.py --batch index.csv DIR/midi` reads.
    pub pred_dir: Option<PathBuf>,
    /// Run the streaming spotter ([`crate::spot::StreamingSpotter`], frame by frame) instead of the
    /// offline search; its reports are the predictions, scored `1 - cost`.
    pub streaming: bool,
    /// Streaming only: how long (s) a candidate must stay the best before it is reported.
    pub confirm_s: f64,
}

impl Default for ThemeEvalOptions {
    /// The spotter defaults with transpositions on (the corpus holds transposed occurrences).
    fn default() -> Self {
        let mut spot = SpotConfig::default();
        spot.matching.transpose = true;
        Self {
            spot,
            exact_only: false,
            pred_dir: None,
            streaming: false,
            confirm_s: 0.3,
        }
    }
}

/// Metrics under both criteria.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct BothCriteria {
    /// IoU >= 0.5.
    pub iou: Metrics,
    /// Onset within 1 s.
    pub onset: Metrics,
}

/// Per-case result line.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CaseResult {
    /// Piece id.
    pub piece: String,
    /// Case id.
    pub case: String,
    /// MIDI queries on this case.
    pub midi: BothCriteria,
    /// Audio queries on this case.
    pub audio: BothCriteria,
}

/// The result of [`eval_themes`]; `Display` prints the tables.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ThemeEvalReport {
    /// Pooled over every recording, MIDI queries.
    pub midi: BothCriteria,
    /// Pooled over every recording, audio queries.
    pub audio: BothCriteria,
    /// Per case.
    pub cases: Vec<CaseResult>,
    /// Recordings searched.
    pub n_recordings: usize,
    /// Audio seconds searched.
    pub searched_s: f64,
    /// Wall time of the searches alone (features excluded), seconds.
    pub search_wall_s: f64,
    /// Wall time of everything, seconds.
    pub total_wall_s: f64,
    /// Streaming only: largest delay (s) from a reported occurrence's end to its report.
    pub stream_max_delay_s: Option<f64>,
}

struct Row {
    piece: String,
    case: String,
    performance: PathBuf,
    themes_gt: PathBuf,
}

fn read_index(corpus: &Path) -> crate::Result<Vec<Row>> {
    let path = corpus.join("index.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| crate::Error::io(&path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h.trim() == n)
            .ok_or_else(|| crate::Error::Parse {
                path: path.clone(),
                line: 1,
                reason: format!("no '{n}' column"),
            })
    };
    let (cp, cc, cperf, cgt) = (
        col("piece")?,
        col("case")?,
        col("performance")?,
        col("themes_gt")?,
    );
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| f.get(c).copied().unwrap_or("");
        if get(cgt).is_empty() {
            continue;
        }
        rows.push(Row {
            piece: get(cp).to_string(),
            case: get(cc).to_string(),
            performance: corpus.join(get(cperf)),
            themes_gt: corpus.join(get(cgt)),
        });
    }
    Ok(rows)
}

/// Theme query files of a piece: `(is_midi, id, path)`, sorted.
fn theme_files(corpus: &Path, piece: &str) -> crate::Result<Vec<(bool, String, PathBuf)>> {
    let dir = corpus.join("pieces").join(piece).join("themes");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let p = ent.map_err(|e| crate::Error::io(&dir, e))?.path();
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = stem(&p);
        if !name.starts_with("theme_") {
            continue;
        }
        match ext.as_str() {
            "mid" | "midi" => out.push((true, name, p)),
            "flac" | "wav" | "mp3" | "ogg" => out.push((false, name, p)),
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}

/// Hits of MIDI queries (0) and audio queries (1).
type PerKind = [Vec<(String, Hit)>; 2];

fn hits_to_by_theme(hits: &[(String, Hit)]) -> ByTheme {
    let mut out = ByTheme::new();
    for (id, h) in hits {
        out.entry(id.clone()).or_default().push(Interval {
            start_s: h.start_s,
            end_s: h.end_s,
            score: h.score as f64,
        });
    }
    out
}

/// Write predictions as `theme_id,start_s,end_s,score,rank,tempo_scale,transpose`.
pub fn write_predictions(path: &Path, hits: &[(String, Hit)]) -> crate::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| crate::Error::io(d, e))?;
    }
    let mut s = String::from("theme_id,start_s,end_s,score,rank,tempo_scale,transpose\n");
    let mut rank: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, h) in hits {
        let r = rank.entry(id).or_insert(0);
        *r += 1;
        s.push_str(&format!(
            "{},{:.3},{:.3},{:.5},{},{:.3},{}\n",
            id, h.start_s, h.end_s, h.score, r, h.tempo_scale, h.transpose
        ));
    }
    std::fs::write(path, s).map_err(|e| crate::Error::io(path, e))
}

fn both(gt: &ByTheme, pred: &ByTheme) -> BothCriteria {
    let mut a = Accumulator::default();
    a.add(gt, pred, Criterion::Iou);
    let mut b = Accumulator::default();
    b.add(gt, pred, Criterion::Onset);
    BothCriteria {
        iou: a.result(),
        onset: b.result(),
    }
}

/// Run the theme evaluation over a corpus directory (see the module docs).
pub fn eval_themes(corpus_dir: &Path, opts: &ThemeEvalOptions) -> crate::Result<ThemeEvalReport> {
    let t0 = Instant::now();
    let cfg = &opts.spot;
    cfg.matching.validate()?;
    let rows = read_index(corpus_dir)?;
    // Query CENS per piece, computed once.
    let mut pieces: Vec<String> = rows.iter().map(|r| r.piece.clone()).collect();
    pieces.sort();
    pieces.dedup();
    let mut queries: BTreeMap<String, Vec<(bool, String, Vec<Chroma>)>> = BTreeMap::new();
    for p in &pieces {
        let files = theme_files(corpus_dir, p)?;
        let qs: crate::Result<Vec<_>> = files
            .par_iter()
            .map(|(is_midi, id, path)| {
                let c = file_chroma(path, &cfg.features, cfg.midi_mode)?;
                Ok((*is_midi, id.clone(), query_cens(&c, &cfg.cens)))
            })
            .collect();
        queries.insert(p.clone(), qs?);
    }
    // Recording chroma and CENS, in parallel.
    let feats: crate::Result<Vec<(Vec<Chroma>, Vec<Chroma>)>> = rows
        .par_iter()
        .map(|r| {
            let c = file_chroma(&r.performance, &cfg.features, cfg.midi_mode)?;
            let d = cens::cens(&c, &cfg.cens);
            Ok((c, d))
        })
        .collect();
    let feats = feats?;
    let dbs: Vec<&Vec<Chroma>> = feats.iter().map(|f| &f.1).collect();
    let t_search = Instant::now();
    let max_delay = std::sync::Mutex::new(None::<f64>);
    let per_row: crate::Result<Vec<PerKind>> = rows
        .par_iter()
        .zip(&feats)
        .map(|(r, (chroma, db))| {
            let mut out: [Vec<(String, Hit)>; 2] = [Vec::new(), Vec::new()];
            if opts.streaming {
                for (kind, slot) in out.iter_mut().enumerate() {
                    let qs: Vec<&(bool, String, Vec<Chroma>)> = queries[&r.piece]
                        .iter()
                        .filter(|q| usize::from(!q.0) == kind)
                        .collect();
                    if qs.is_empty() {
                        continue;
                    }
                    let mut sp = crate::spot::StreamingSpotter::new(
                        qs.iter().map(|q| q.2.clone()).collect(),
                        &cfg.features,
                        &cfg.cens,
                        &cfg.matching,
                        opts.confirm_s,
                    )?;
                    let mut hits = Vec::new();
                    for c in chroma {
                        sp.push(c, &mut hits);
                    }
                    sp.finish(&mut hits);
                    let worst = hits
                        .iter()
                        .map(|h| h.reported_at_s - h.hit.end_s)
                        .fold(None::<f64>, |a, d| Some(a.map_or(d, |a| a.max(d))));
                    if let (Some(w), Ok(mut m)) = (worst, max_delay.lock()) {
                        *m = Some(m.map_or(w, |x| x.max(w)));
                    }
                    slot.extend(hits.into_iter().map(|h| (qs[h.theme].1.clone(), h.hit)));
                }
                return Ok(out);
            }
            for (is_midi, id, q) in &queries[&r.piece] {
                let fh = crate::spot::matcher::search(q, db, &cfg.matching)?;
                let hits = to_seconds(&fh, &cfg.features, &cfg.cens);
                out[usize::from(!*is_midi)].extend(hits.into_iter().map(|h| (id.clone(), h)));
            }
            Ok(out)
        })
        .collect();
    let per_row = per_row?;
    let search_wall_s = t_search.elapsed().as_secs_f64();
    let mut acc = [
        [Accumulator::default(), Accumulator::default()],
        [Accumulator::default(), Accumulator::default()],
    ];
    let mut cases = Vec::new();
    let mut searched_s = 0.0;
    for ((r, db), preds) in rows.iter().zip(dbs).zip(&per_row) {
        searched_s += db.len() as f64 * cfg.features.hop_s() * cfg.cens.step() as f64;
        let gt = read_themes_csv(&r.themes_gt, opts.exact_only)?;
        let mut res = [BothCriteria::default(); 2];
        for (kind, hits) in preds.iter().enumerate() {
            let pred = hits_to_by_theme(hits);
            acc[kind][0].add(&gt, &pred, Criterion::Iou);
            acc[kind][1].add(&gt, &pred, Criterion::Onset);
            res[kind] = both(&gt, &pred);
            if let Some(dir) = &opts.pred_dir {
                let sub = if kind == 0 { "midi" } else { "audio" };
                let p = dir
                    .join(sub)
                    .join(&r.piece)
                    .join(format!("{}.themes.csv", r.case));
                write_predictions(&p, hits)?;
            }
        }
        cases.push(CaseResult {
            piece: r.piece.clone(),
            case: r.case.clone(),
            midi: res[0],
            audio: res[1],
        });
    }
    let fin = |a: &[Accumulator; 2]| BothCriteria {
        iou: a[0].result(),
        onset: a[1].result(),
    };
    Ok(ThemeEvalReport {
        midi: fin(&acc[0]),
        audio: fin(&acc[1]),
        cases,
        n_recordings: rows.len(),
        searched_s,
        search_wall_s,
        total_wall_s: t0.elapsed().as_secs_f64(),
        stream_max_delay_s: max_delay.into_inner().ok().flatten(),
    })
}

fn line(f: &mut fmt::Formatter<'_>, label: &str, crit: &str, m: &Metrics) -> fmt::Result {
    writeln!(
        f,
        "{label:<6} {crit:<10} P={:.3} R={:.3} F={:.3} (tp={} fp={} fn={}) P@1={:.3} MAP={:.3} queries={}",
        m.precision, m.recall, m.f1, m.tp, m.fp, m.fn_, m.p_at_1, m.map, m.n_queries
    )
}

impl fmt::Display for ThemeEvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "theme spotting, {} recordings", self.n_recordings)?;
        for (label, m) in [("midi", &self.midi), ("audio", &self.audio)] {
            line(f, label, "IoU>=0.5", &m.iou)?;
            line(f, label, "onset<=1s", &m.onset)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<32} {:<20} {:>9} {:>9} {:>9} {:>9}",
            "piece", "case", "midi P@1", "midi MAP", "audio P@1", "audio MAP"
        )?;
        for c in &self.cases {
            writeln!(
                f,
                "{:<32} {:<20} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                c.piece,
                c.case,
                c.midi.onset.p_at_1,
                c.midi.onset.map,
                c.audio.onset.p_at_1,
                c.audio.onset.map
            )?;
        }
        writeln!(
            f,
            "\nsearched {:.0} s of audio; search {:.2} s wall, total {:.2} s wall",
            self.searched_s, self.search_wall_s, self.total_wall_s
        )?;
        if let Some(d) = self.stream_max_delay_s {
            writeln!(
                f,
                "streaming: largest delay from occurrence end to report {d:.2} s"
            )?;
        }
        Ok(())
    }
}
