//! `scorefollow softdtw X Y`: the soft-DTW value between two feature sequences (CSV) or two
//! recordings / MIDI files (chroma); on request the DTW cost, the divergence and E.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::align::soft_dtw::{self, io, FeatureCost, Matrix, SoftDtw};
use crate::features::{self, FeatureConfig};

/// Arguments of `scorefollow softdtw`.
#[derive(Debug, Args)]
pub struct SoftDtwArgs {
    /// First sequence: feature CSV (one frame a row, no header), audio file or MIDI file.
    pub x: PathBuf,
    /// Second sequence, same kinds as X.
    pub y: PathBuf,
    /// Smoothing γ (> 0; in cost units).
    #[arg(long, default_value_t = 1.0)]
    pub gamma: f64,
    /// Frame cost: sqeuclidean or cosine.
    #[arg(long, default_value = "sqeuclidean")]
    pub cost: String,
    /// Sakoe-Chiba band half-width (frames of the longer sequence).
    #[arg(long)]
    pub band: Option<usize>,
    /// Write the expected alignment E (N rows of M numbers) to this CSV file.
    #[arg(long)]
    pub grad: Option<PathBuf>,
    /// Print only the soft-DTW value: skips the DTW cost and the divergence (its two extra
    /// recursions) and pipelines the value's stripes over `--threads`.
    #[arg(long, conflicts_with = "json")]
    pub value_only: bool,
    /// Print one JSON object with the keys value, dtw, divergence (all three computed).
    #[arg(long)]
    pub json: bool,
    /// Threads for `--value-only` (its stripes of rows pipelined); 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// True for the extensions read as feature CSV.
fn is_csv(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("csv" | "txt")
    )
}

fn is_midi(path: &Path) -> bool {
    crate::score::reference::is_score_path(path)
}

/// A feature sequence from a CSV file, or the chroma (12 values a frame, at the default
/// analysis frame rate) of an audio or MIDI file.
pub(crate) fn load_sequence(path: &Path) -> Result<Matrix> {
    if is_csv(path) {
        return Ok(io::read_csv(path)?);
    }
    let cfg = FeatureConfig::default();
    let feats = if is_midi(path) {
        let score = crate::score::Score::load(path)?;
        let audio = crate::score::synth::render(&score, cfg.sample_rate_hz);
        // The synthesiser is tuned to A4 = 440 Hz exactly.
        features::extract_with_tuning(&audio, &cfg, 0.0)
    } else {
        let audio = crate::audio::load_mono(path, cfg.sample_rate_hz)?;
        features::extract(&audio, &cfg)
    };
    if feats.is_empty() {
        anyhow::bail!("{}: no feature frames (file too short)", path.display());
    }
    let rows: Vec<Vec<f64>> = feats
        .frames
        .iter()
        .map(|f| f.chroma.iter().map(|&v| f64::from(v)).collect())
        .collect();
    Ok(Matrix::from_rows(&rows)?)
}

/// What `softdtw --json` prints.
#[derive(Debug, serde::Serialize)]
struct Report {
    value: f64,
    dtw: f64,
    divergence: f64,
}

/// Runs `scorefollow softdtw`: the value alone unless more is asked, each quantity computed
/// straight from the two sequences (no cost matrix is stored).
pub fn run(args: SoftDtwArgs) -> Result<()> {
    let cost: FeatureCost = args.cost.parse()?;
    let mut sd = SoftDtw::new(args.gamma)?;
    if let Some(w) = args.band {
        sd = sd.with_band(w);
    }
    let load = |p: &PathBuf| load_sequence(p).with_context(|| format!("reading {}", p.display()));
    // Feature CSVs parse in a millisecond; only audio and MIDI are worth a second thread.
    let (x, y) = if is_csv(&args.x) && is_csv(&args.y) {
        (load(&args.x)?, load(&args.y)?)
    } else {
        let (x, y) = rayon::join(|| load(&args.x), || load(&args.y));
        (x?, y?)
    };
    if x.cols() != y.cols() {
        anyhow::bail!(
            "{} has {} values a frame but {} has {}",
            args.x.display(),
            x.cols(),
            args.y.display(),
            y.cols()
        );
    }
    let want_dtw = !args.value_only;
    let want_div = !args.value_only;
    let value_task = || -> Result<f64> {
        match &args.grad {
            Some(path) => {
                let al = sd.alignment_features(&x, &y, cost)?;
                io::write_csv(&al.expected, path)?;
                Ok(al.value)
            }
            None if want_dtw || want_div => Ok(sd.value_features(&x, &y, cost)?),
            None => Ok(sd.value_features_threads(&x, &y, cost, args.threads)?),
        }
    };
    let dtw_task = || -> Result<Option<f64>> {
        if want_dtw {
            Ok(Some(soft_dtw::dtw_features(&x, &y, cost, sd.band())?))
        } else {
            Ok(None)
        }
    };
    let self_task = |s: &Matrix| -> Result<Option<f64>> {
        if want_div {
            Ok(Some(sd.value_features(s, s, cost)?))
        } else {
            Ok(None)
        }
    };
    let (value, dtw, xx, yy) = if want_dtw || want_div {
        // Independent recursions: side by side on the rayon pool.
        let ((value, dtw), (xx, yy)) = rayon::join(
            || rayon::join(value_task, dtw_task),
            || rayon::join(|| self_task(&x), || self_task(&y)),
        );
        (value?, dtw?, xx?, yy?)
    } else {
        (value_task()?, None, None, None)
    };
    let divergence = xx.zip(yy).map(|(xx, yy)| value - 0.5 * (xx + yy));
    match (args.json, dtw, divergence) {
        (true, Some(dtw), Some(divergence)) => {
            let report = Report {
                value,
                dtw,
                divergence,
            };
            println!("{}", serde_json::to_string(&report)?);
        }
        _ => {
            println!("soft-DTW value (gamma {}): {}", args.gamma, value);
            if let Some(d) = dtw {
                println!("DTW cost:                 {d}");
            }
            if let Some(d) = divergence {
                println!("soft-DTW divergence:      {d}");
            }
        }
    }
    Ok(())
}
