//! `scorefollow plot`: PNG pictures of features and alignments.
//!
//! - `plot chroma FILE --out P.png`
//! - `plot cost X Y [--gt GT.csv] --out P.png`
//! - `plot softdtw X Y --gammas 0.01,0.1,1 --out P.png`
//! - `plot trace PRED.csv [--gt GT.csv] --out P.png`
//!
//! X, Y, FILE: feature CSV (one frame a row, no header), audio or MIDI (chroma at the default
//! analysis frame rate). CSV frames are `--hop-s` seconds apart.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use plotters::style::RGBColor;

use super::softdtw::load_sequence;
use crate::align::soft_dtw::{self, FeatureCost, Matrix, SoftDtw};
use crate::features::FeatureConfig;
use crate::plot::{self, Curve, Target};

/// Arguments of `scorefollow plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Which picture.
    #[command(subcommand)]
    pub what: PlotKind,
}

/// Options shared by every picture.
#[derive(Debug, Args)]
pub struct Common {
    /// Output PNG file.
    #[arg(long)]
    pub out: PathBuf,
    /// Picture width (pixels).
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    /// Picture height (pixels).
    #[arg(long, default_value_t = 800)]
    pub height: u32,
    /// Seconds between frames of feature CSV inputs (audio/MIDI inputs use the analysis hop).
    #[arg(long, default_value_t = FeatureConfig::default().hop_s())]
    pub hop_s: f64,
}

/// The pictures.
#[derive(Debug, Subcommand)]
pub enum PlotKind {
    /// Chromagram of a recording, MIDI file or feature CSV.
    Chroma {
        /// Input file.
        file: PathBuf,
        /// Output file and picture size.
        #[command(flatten)]
        common: Common,
    },
    /// Cost matrix between X and Y with the DTW path and, if given, the ground truth.
    Cost {
        /// First sequence (x axis).
        x: PathBuf,
        /// Second sequence (y axis).
        y: PathBuf,
        /// Ground truth: CSV with header, columns x time (s), y time (s).
        #[arg(long)]
        gt: Option<PathBuf>,
        /// Frame cost: sqeuclidean or cosine.
        #[arg(long, default_value = "cosine")]
        cost: String,
        /// Output file and picture size.
        #[command(flatten)]
        common: Common,
    },
    /// Expected alignment E of X and Y at several γ, side by side.
    Softdtw {
        /// First sequence (x axis).
        x: PathBuf,
        /// Second sequence (y axis).
        y: PathBuf,
        /// Comma-separated smoothing values.
        #[arg(long, default_value = "0.01,0.1,1")]
        gammas: String,
        /// Frame cost: sqeuclidean or cosine.
        #[arg(long, default_value = "cosine")]
        cost: String,
        /// Sakoe-Chiba band half-width (frames).
        #[arg(long)]
        band: Option<usize>,
        /// Output file and picture size.
        #[command(flatten)]
        common: Common,
    },
    /// Follower trace: PRED.csv (header, perf_time_s,score_time_s) against the ground truth.
    Trace {
        /// Predictions.
        pred: PathBuf,
        /// Ground truth in the same format.
        #[arg(long)]
        gt: Option<PathBuf>,
        /// Output file and picture size.
        #[command(flatten)]
        common: Common,
    },
}

/// Seconds per frame of a sequence file.
fn hop_of(path: &Path, common: &Common) -> f64 {
    let csv = matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("csv" | "txt")
    );
    if csv {
        common.hop_s
    } else {
        FeatureConfig::default().hop_s()
    }
}

fn name_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A two-column CSV with a header line (perf_time_s,score_time_s or similar).
fn read_pairs(path: &Path) -> Result<Vec<(f64, f64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (k == 0 && line.chars().any(|c| c.is_ascii_alphabetic())) {
            continue;
        }
        let mut it = line.split(',').map(|f| f.trim().parse::<f64>());
        match (it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b))) if a.is_finite() && b.is_finite() => out.push((a, b)),
            _ => anyhow::bail!(
                "{}:{}: expected two numbers, got '{line}'",
                path.display(),
                k + 1
            ),
        }
    }
    if out.is_empty() {
        anyhow::bail!("{}: no rows", path.display());
    }
    Ok(out)
}

fn check_size(c: &Common) -> Result<()> {
    if c.width < 200 || c.height < 150 || c.width > 16_000 || c.height > 16_000 {
        anyhow::bail!(
            "picture size {}x{}: expected 200..16000 x 150..16000 pixels",
            c.width,
            c.height
        );
    }
    if !(c.hop_s.is_finite() && c.hop_s > 0.0) {
        anyhow::bail!("--hop-s {}: must be > 0", c.hop_s);
    }
    Ok(())
}

fn load_pair(x: &Path, y: &Path) -> Result<(Matrix, Matrix)> {
    let (a, b) = rayon::join(|| load_sequence(x), || load_sequence(y));
    let a = a.with_context(|| format!("reading {}", x.display()))?;
    let b = b.with_context(|| format!("reading {}", y.display()))?;
    if a.cols() != b.cols() {
        anyhow::bail!(
            "{} has {} values a frame but {} has {}",
            x.display(),
            a.cols(),
            y.display(),
            b.cols()
        );
    }
    Ok((a, b))
}

/// Runs `scorefollow plot`. Each picture is a few stages (reading, computing, drawing), shown
/// on a progress bar: long pieces take seconds.
pub fn run(args: PlotArgs) -> Result<()> {
    match args.what {
        PlotKind::Chroma { file, common } => plot_chroma(&file, &common),
        PlotKind::Cost {
            x,
            y,
            gt,
            cost,
            common,
        } => plot_cost(&x, &y, gt.as_deref(), &cost, &common),
        PlotKind::Softdtw {
            x,
            y,
            gammas,
            cost,
            band,
            common,
        } => plot_softdtw(&x, &y, &gammas, &cost, band, &common),
        PlotKind::Trace { pred, gt, common } => plot_trace(&pred, gt.as_deref(), &common),
    }
}

/// A progress bar over `stages` steps, starting with `first`.
fn stages(stages: u64, first: &str) -> indicatif::ProgressBar {
    let bar = super::progress_bar(stages);
    bar.set_message(first.to_string());
    bar
}

/// The next stage.
fn next(bar: &indicatif::ProgressBar, what: &str) {
    bar.inc(1);
    bar.set_message(what.to_string());
}

fn plot_chroma(file: &Path, common: &Common) -> Result<()> {
    check_size(common)?;
    let bar = stages(2, "reading");
    let m = load_sequence(file).with_context(|| format!("reading {}", file.display()))?;
    next(&bar, "drawing");
    let title = format!("Chromagram of {}", name_of(file));
    plot::chromagram(
        &m,
        hop_of(file, common),
        &title,
        (common.width, common.height),
        Target::Png(&common.out),
    )?;
    bar.finish_and_clear();
    Ok(())
}

fn plot_cost(x: &Path, y: &Path, gt: Option<&Path>, cost: &str, common: &Common) -> Result<()> {
    check_size(common)?;
    let cost: FeatureCost = cost.parse()?;
    let bar = stages(3, "reading");
    let (a, b) = load_pair(x, y)?;
    next(&bar, "cost matrix and DTW path");
    let c = cost.matrix(&a, &b)?;
    let (hx, hy) = (hop_of(x, common), hop_of(y, common));
    let (_, path) = soft_dtw::dtw_path(&c, None)?;
    let path_s: Vec<(f64, f64)> = path
        .iter()
        .map(|&(i, j)| ((i as f64 + 0.5) * hx, (j as f64 + 0.5) * hy))
        .collect();
    let truth = gt.map(read_pairs).transpose()?;
    let mut curves = vec![Curve {
        points: &path_s,
        label: "DTW path",
        color: RGBColor(255, 255, 255),
        dashed: false,
    }];
    if let Some(t) = &truth {
        curves.push(Curve {
            points: t,
            label: "ground truth",
            color: RGBColor(255, 80, 60),
            dashed: true,
        });
    }
    next(&bar, "drawing");
    let (nx, ny) = (name_of(x), name_of(y));
    plot::cost_matrix(
        &c,
        hx,
        hy,
        (&nx, &ny),
        &curves,
        (common.width, common.height),
        Target::Png(&common.out),
    )?;
    bar.finish_and_clear();
    Ok(())
}

fn plot_softdtw(
    x: &Path,
    y: &Path,
    gammas: &str,
    cost: &str,
    band: Option<usize>,
    common: &Common,
) -> Result<()> {
    check_size(common)?;
    let cost: FeatureCost = cost.parse()?;
    let gs: Vec<f64> = gammas
        .split(',')
        .map(|g| {
            g.trim()
                .parse::<f64>()
                .map_err(|_| anyhow::anyhow!("--gammas: '{g}' is not a number"))
        })
        .collect::<Result<_>>()?;
    if gs.is_empty() || gs.len() > 8 {
        anyhow::bail!("--gammas: give 1 to 8 values");
    }
    let bar = stages(2 + gs.len() as u64, "reading");
    let (a, b) = load_pair(x, y)?;
    let c = cost.matrix(&a, &b)?;
    let panels: Vec<(f64, Matrix)> = gs
        .iter()
        .map(|&g| -> Result<(f64, Matrix)> {
            next(&bar, &format!("soft-DTW at gamma {g}"));
            let mut sd = SoftDtw::new(g)?;
            if let Some(w) = band {
                sd = sd.with_band(w);
            }
            Ok((g, sd.value_and_alignment(&c)?.expected))
        })
        .collect::<Result<_>>()?;
    next(&bar, "drawing");
    let (nx, ny) = (name_of(x), name_of(y));
    plot::expected_alignments(
        &panels,
        hop_of(x, common),
        hop_of(y, common),
        (&nx, &ny),
        (common.width, common.height),
        Target::Png(&common.out),
    )?;
    bar.finish_and_clear();
    Ok(())
}

fn plot_trace(pred: &Path, gt: Option<&Path>, common: &Common) -> Result<()> {
    check_size(common)?;
    let p = read_pairs(pred)?;
    let truth = gt.map(read_pairs).transpose()?;
    let title = format!("Follower trace: {}", name_of(pred));
    plot::follower_trace(
        &p,
        truth.as_deref(),
        &title,
        (common.width, common.height),
        Target::Png(&common.out),
    )?;
    Ok(())
}
