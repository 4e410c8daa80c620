//! `scorefollow softdtw X Y`: soft-DTW value, DTW cost and soft-DTW divergence between two
//! feature sequences (CSV) or two recordings / MIDI files (chroma).

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
    /// Print one JSON object with the keys value, dtw, divergence.
    #[arg(long)]
    pub json: bool,
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
    crate::score::reference::is_midi_path(path)
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
        let audio = crate::audio::decode::load_mono(path, cfg.sample_rate_hz)?;
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

/// What `softdtw` prints.
#[derive(Debug, serde::Serialize)]
struct Report {
    value: f64,
    dtw: f64,
    divergence: f64,
}

/// Runs `scorefollow softdtw`.
pub fn run(args: SoftDtwArgs) -> Result<()> {
    let cost: FeatureCost = args.cost.parse()?;
    let mut sd = SoftDtw::new(args.gamma)?;
    if let Some(w) = args.band {
        sd = sd.with_band(w);
    }
    let (x, y) = rayon::join(|| load_sequence(&args.x), || load_sequence(&args.y));
    let x = x.with_context(|| format!("reading {}", args.x.display()))?;
    let y = y.with_context(|| format!("reading {}", args.y.display()))?;
    if x.cols() != y.cols() {
        anyhow::bail!(
            "{} has {} values a frame but {} has {}",
            args.x.display(),
            x.cols(),
            args.y.display(),
            y.cols()
        );
    }
    let cxy = cost.matrix(&x, &y)?;
    // The four recursions are independent: run them side by side.
    let ((value, dtw), (xx, yy)) = rayon::join(
        || {
            rayon::join(
                || -> Result<f64> {
                    match &args.grad {
                        Some(path) => {
                            let al = sd.value_and_alignment(&cxy)?;
                            io::write_csv(&al.expected, path)?;
                            Ok(al.value)
                        }
                        None => Ok(sd.value(&cxy)?),
                    }
                },
                || soft_dtw::dtw(&cxy, sd.band()),
            )
        },
        || {
            rayon::join(
                || sd.value_features(&x, &x, cost),
                || sd.value_features(&y, &y, cost),
            )
        },
    );
    let value = value?;
    let report = Report {
        value,
        dtw: dtw?,
        divergence: value - 0.5 * (xx? + yy?),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("soft-DTW value (gamma {}): {}", args.gamma, report.value);
        println!("DTW cost:                 {}", report.dtw);
        println!("soft-DTW divergence:      {}", report.divergence);
    }
    Ok(())
}
