//! `scorefollow index build DIR... --out IDX` and `scorefollow index query IDX CLIP [--top K]`:
//! audio matching over a collection.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};

use crate::audio::load::read_chroma;
use crate::spot::index::{collect_files, Index, IndexConfig, IndexQuery};
use crate::spot::MidiMode;

/// Arguments of `index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Build or query.
    #[command(subcommand)]
    pub command: IndexCommand,
}

/// `index` subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Index every audio/MIDI file under the given folders (or the given files).
    Build(BuildArgs),
    /// Find where a clip occurs in an indexed collection.
    Query(QueryArgs),
}

/// Arguments of `index build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Folders (searched recursively for .flac .wav .mp3 .ogg .mid .midi) or files.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Index file to write.
    #[arg(long, value_name = "IDX")]
    pub out: PathBuf,
    /// Shingle length (CENS frames at 5 frames/s).
    #[arg(long, default_value_t = 20)]
    pub shingle_len: usize,
    /// Hop between shingles (CENS frames).
    #[arg(long, default_value_t = 2)]
    pub shingle_hop: usize,
    /// PCA dimensions (0 = none).
    #[arg(long, default_value_t = 32)]
    pub pca: usize,
    /// Lists probed per query shingle by the approximate search.
    #[arg(long, default_value_t = 24)]
    pub nprobe: usize,
    /// Below this many shingles the search is exhaustive.
    #[arg(long, default_value_t = 20_000)]
    pub exact_below: usize,
    /// How MIDI files become chroma: template or synth.
    #[arg(long, default_value = "template")]
    pub midi_mode: String,
}

/// Arguments of `index query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Index file.
    #[arg(value_name = "IDX")]
    pub index: PathBuf,
    /// Query clip (audio or MIDI).
    #[arg(value_name = "CLIP")]
    pub clip: PathBuf,
    /// Number of hits.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Tempo scalings tried between 0.5 and 2.
    #[arg(long, default_value_t = 9)]
    pub scales: usize,
    /// How a MIDI clip becomes chroma: template or synth.
    #[arg(long, default_value = "template")]
    pub midi_mode: String,
}

/// Run `index`.
pub fn run(args: IndexArgs) -> anyhow::Result<()> {
    match args.command {
        IndexCommand::Build(a) => build(a),
        IndexCommand::Query(a) => query(a),
    }
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let files = collect_files(&a.dirs)?;
    if files.is_empty() {
        anyhow::bail!("no audio or MIDI file found under the given folders");
    }
    let cfg = IndexConfig {
        shingle_len: a.shingle_len,
        shingle_hop: a.shingle_hop,
        pca_dims: a.pca,
        nprobe: a.nprobe,
        exact_below: a.exact_below,
        ..IndexConfig::default()
    };
    let bar = super::progress_bar(files.len() as u64);
    bar.set_message("indexing");
    let read = |p: &std::path::Path, f: &crate::features::FeatureConfig, m: MidiMode| {
        let c = read_chroma(p, f, m);
        bar.inc(1);
        c
    };
    let idx = Index::build_from_files(cfg, &files, a.midi_mode.parse::<MidiMode>()?, &read)?;
    bar.finish_and_clear();
    idx.save(&a.out)?;
    println!(
        "indexed {} recordings, {} shingles ({} dims, {} lists) in {:.1} s -> {}",
        idx.recordings.len(),
        idx.n_shingles(),
        idx.ivf.dim,
        idx.ivf.n_lists(),
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

fn query(a: QueryArgs) -> anyhow::Result<()> {
    if a.top == 0 {
        anyhow::bail!("invalid --top 0: must be at least 1");
    }
    let idx = Index::load(&a.index)?;
    let t0 = Instant::now();
    let q = IndexQuery {
        top: a.top,
        n_scales: a.scales,
        ..IndexQuery::default()
    };
    let hits = idx.query_file(&a.clip, &q, a.midi_mode.parse::<MidiMode>()?, &read_chroma)?;
    println!(
        "{:>4}  {:<50} {:>9} {:>9} {:>6} {:>6}",
        "rank", "recording", "start_s", "end_s", "score", "tempo"
    );
    for (i, h) in hits.iter().enumerate() {
        println!(
            "{:>4}  {:<50} {:>9.2} {:>9.2} {:>6.3} {:>6.2}",
            i + 1,
            h.recording,
            h.start_s,
            h.end_s,
            h.score,
            h.tempo_scale
        );
    }
    eprintln!("query took {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    Ok(())
}
