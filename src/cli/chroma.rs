//! `scorefollow chroma`: dump the features the follower sees, as CSV.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::features::{self, FeatureConfig};
use crate::score::reference::{is_score_path, Reference, ScoreRendering};

/// Write the chroma features of an audio or MIDI file as CSV.
#[derive(Debug, Args)]
pub struct ChromaArgs {
    /// Audio (WAV, FLAC, MP3, OGG) or score (MIDI, MusicXML) file.
    #[arg(value_name = "FILE")]
    pub input: PathBuf,
    /// Output CSV (default: standard output).
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Add the 12 onset-chroma columns.
    #[arg(long)]
    pub onset: bool,
    /// Tuning in cents (default: estimated from the audio; 0 for MIDI).
    #[arg(long, value_name = "CENTS", allow_negative_numbers = true)]
    pub tuning: Option<f32>,
}

const NAMES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

/// Run `chroma`.
pub fn run(args: ChromaArgs) -> anyhow::Result<()> {
    let cfg = FeatureConfig::default();
    let feats = if is_score_path(&args.input) {
        let r = Reference::from_score_file(&args.input, &cfg, &ScoreRendering::default())?;
        features::Features {
            config: cfg.clone(),
            tuning_cents: 0.0,
            frames: r.frames.to_vec(),
        }
    } else {
        let audio = crate::audio::decode::load_mono(&args.input, cfg.sample_rate_hz)?;
        match args.tuning {
            Some(t) => features::extract_with_tuning(&audio, &cfg, t),
            None => features::extract(&audio, &cfg),
        }
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut header = String::from("time_s");
    for n in NAMES {
        header.push(',');
        header.push_str(n);
    }
    if args.onset {
        for n in NAMES {
            header.push_str(",onset_");
            header.push_str(n);
        }
    }
    writeln!(out, "{header}")?;
    for (k, f) in feats.frames.iter().enumerate() {
        let mut line = format!("{:.4}", cfg.frame_centre_s(k));
        for v in f.chroma {
            line.push_str(&format!(",{v:.5}"));
        }
        if args.onset {
            for v in f.onset {
                line.push_str(&format!(",{v:.5}"));
            }
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    eprintln!(
        "{} frames at {:.0} frames/s, tuning {:+.1} cents",
        feats.len(),
        cfg.frame_rate_hz(),
        feats.tuning_cents
    );
    Ok(())
}
