//! `scorefollow spot`: find every occurrence of one or more themes in recordings or MIDI files.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::audio::load::read_chroma;
use crate::spot::query::{read_themes_file, ThemeFile};
use crate::spot::{spot_files, MatchMethod, MidiMode, SpotConfig};

/// Arguments of `spot`.
#[derive(Debug, Args)]
pub struct SpotArgs {
    /// A theme query (MIDI or audio); its id is the file stem. Repeatable.
    #[arg(long = "theme", value_name = "Q")]
    pub themes: Vec<PathBuf>,
    /// A themes file (CSV with `file[,id]` columns, or TOML `[[theme]]` tables).
    #[arg(long = "themes", value_name = "FILE")]
    pub themes_file: Option<PathBuf>,
    /// Recordings (audio) or MIDI files to search.
    #[arg(required = true, value_name = "REC")]
    pub recordings: Vec<PathBuf>,
    /// Best hits kept per theme over all recordings.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Also find occurrences in the 11 other cyclic transpositions.
    #[arg(long)]
    pub transpose: bool,
    /// Largest matching cost τ accepted (0 = identical, about 1 = unrelated).
    #[arg(long, default_value_t = 0.6)]
    pub tau: f32,
    /// Number of tempo scalings R between --min-scale and --max-scale (geometric).
    #[arg(long, default_value_t = 15)]
    pub scales: usize,
    /// Smallest tempo scaling (occurrence length / query length).
    #[arg(long, default_value_t = 0.5)]
    pub min_scale: f32,
    /// Largest tempo scaling.
    #[arg(long, default_value_t = 2.0)]
    pub max_scale: f32,
    /// Matching function: dtw (subsequence DTW) or diagonal.
    #[arg(long, default_value = "dtw")]
    pub method: String,
    /// How MIDI becomes chroma: template (from the notes) or synth (rendered).
    #[arg(long, default_value = "template")]
    pub midi_mode: String,
    /// Write the hits as CSV here
    /// (`theme_id,start_s,end_s,score,rank,recording,tempo_scale,transpose`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn fmt_time(t_s: f64) -> String {
    let m = (t_s / 60.0).floor();
    format!("{}:{:04.1}", m as u64, t_s - 60.0 * m)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Run `spot`.
pub fn run(args: SpotArgs) -> anyhow::Result<()> {
    let mut themes: Vec<ThemeFile> = args
        .themes
        .iter()
        .map(|p| ThemeFile::from_path(p))
        .collect();
    if let Some(f) = &args.themes_file {
        themes.extend(read_themes_file(f)?);
    }
    if themes.is_empty() {
        anyhow::bail!("no theme given: use --theme Q or --themes FILE");
    }
    if args.top == 0 {
        anyhow::bail!("invalid --top 0: must be at least 1");
    }
    let mut cfg = SpotConfig {
        midi_mode: args.midi_mode.parse::<MidiMode>()?,
        ..SpotConfig::default()
    };
    let m = &mut cfg.matching;
    m.method = args.method.parse::<MatchMethod>()?;
    m.transpose = args.transpose;
    m.n_scales = args.scales;
    m.min_scale = args.min_scale;
    m.max_scale = args.max_scale;
    m.peaks.tau = args.tau;
    m.peaks.top_k = args.top;
    let bar = super::progress_bar((themes.len() + args.recordings.len()) as u64);
    bar.set_message("reading");
    let read = |p: &std::path::Path, f: &crate::features::FeatureConfig, m: MidiMode| {
        let c = read_chroma(p, f, m);
        bar.inc(1);
        c
    };
    let hits = spot_files(&themes, &args.recordings, &cfg, &read)?;
    bar.finish_and_clear();

    if let Some(out) = &args.out {
        let mut s =
            String::from("theme_id,start_s,end_s,score,rank,recording,tempo_scale,transpose\n");
        for h in &hits {
            s.push_str(&format!(
                "{},{:.3},{:.3},{:.5},{},{},{:.3},{}\n",
                csv_field(&h.theme_id),
                h.hit.start_s,
                h.hit.end_s,
                h.hit.score,
                h.rank,
                csv_field(&h.recording.display().to_string()),
                h.hit.tempo_scale,
                h.hit.transpose
            ));
        }
        std::fs::write(out, s).with_context(|| format!("cannot write {}", out.display()))?;
    }

    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    for t in &themes {
        writeln!(w, "theme {} ({})", t.id, t.path.display())?;
        writeln!(
            w,
            "{:>4}  {:<40} {:>17} {:>6} {:>6} {:>5}",
            "rank", "piece", "position", "score", "tempo", "transp"
        )?;
        for h in hits.iter().filter(|h| h.theme_id == t.id) {
            let piece = h
                .recording
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            writeln!(
                w,
                "{:>4}  {:<40} {:>17} {:>6.3} {:>6.2} {:>+5}",
                h.rank,
                piece,
                format!("{}-{}", fmt_time(h.hit.start_s), fmt_time(h.hit.end_s)),
                h.hit.score,
                h.hit.tempo_scale,
                h.hit.transpose
            )?;
        }
        writeln!(w)?;
    }
    Ok(())
}
