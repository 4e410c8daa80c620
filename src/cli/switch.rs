//! `scorefollow switch`: the interpretation switcher. Aligns several recordings of one work
//! (to the first, or to a score), then serves a page that plays any of them and jumps between
//! them at the same musical position; or maps one time (`--map`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::web::switch::SwitchServer;
use crate::web::versions::{display_name, AlignCache, Versions};
use crate::web::ViewAddress;

/// Align recordings of one work and switch between them at the same musical position.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  scorefollow switch karajan.flac abbado.flac gould.flac\n  scorefollow switch p01.flac p05.flac --score score.mid --view 127.0.0.1:8080\n  scorefollow switch p01.flac p05.flac --map 61.5 --from 1 --to 2"
)]
pub struct SwitchArgs {
    /// The recordings (WAV, FLAC, MP3, OGG); without --score all are aligned to the first.
    #[arg(value_name = "RECORDING", required = true)]
    pub recordings: Vec<PathBuf>,
    /// Align every recording to this MIDI score instead (the page then shows its bars).
    #[arg(long, value_name = "SCORE.mid")]
    pub score: Option<PathBuf>,
    /// Serve the page on HOST:PORT (port 0 picks a free one) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    pub view: Option<String>,
    /// A token the page and every request must carry (needed for an address reachable from
    /// other machines).
    #[arg(long, value_name = "TOKEN")]
    pub view_token: Option<String>,
    /// Keep the alignments in this directory [default: $XDG_CACHE_HOME/scorefollow/switch,
    /// else ~/.cache/scorefollow/switch].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Neither read nor write cached alignments.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
    /// Print the time (s) in --to of this time (s) in --from, then exit.
    #[arg(long, value_name = "SECONDS", requires_all = ["from", "to"], allow_negative_numbers = true)]
    pub map: Option<f64>,
    /// The version --map reads from: its number (1 = the first recording) or its file.
    #[arg(long, value_name = "N|FILE", requires = "map")]
    pub from: Option<String>,
    /// The version --map gives the time in: its number or its file.
    #[arg(long, value_name = "N|FILE", requires = "map")]
    pub to: Option<String>,
    /// No progress bar and no list of the versions.
    #[arg(long)]
    pub quiet: bool,
}

/// Run `switch`.
pub fn run(args: SwitchArgs) -> anyhow::Result<()> {
    if let Some(t) = args.map {
        if !t.is_finite() {
            bail!("invalid --map '{t}': give a time in seconds");
        }
    }
    // Check the address before spending time on alignments.
    let view = match args.map {
        Some(_) => None,
        None => Some(ViewAddress::parse(
            args.view.as_deref().unwrap_or("127.0.0.1:8080"),
            args.view_token.as_deref(),
        )?),
    };
    let cache = if args.no_cache {
        AlignCache::none()
    } else {
        match &args.cache {
            Some(d) => AlignCache::at(d),
            None => AlignCache::user(),
        }
    };
    let count = args.recordings.len() as u64;
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        super::progress_bar(count * 1000)
    };
    let started = std::time::Instant::now();
    let versions = Versions::build(&args.recordings, args.score.as_deref(), &cache, |p| {
        let part = (1000 * p.done.min(p.total))
            .checked_div(p.total)
            .unwrap_or(0);
        bar.set_message(display_name(&args.recordings[p.index]));
        bar.set_position((p.index * 1000 + part) as u64);
    })
    .context("aligning the recordings")?;
    bar.finish_and_clear();
    if !args.quiet {
        let aligned = versions.versions.iter().filter(|v| !v.cached).count();
        eprintln!(
            "{} versions ({} aligned, {} from the cache{}) in {:.2} s",
            versions.versions.len(),
            aligned,
            versions.versions.len() - aligned,
            cache
                .dir()
                .map(|d| format!(" {}", d.display()))
                .unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(t) = args.map {
        let from = version_index(args.from.as_deref().unwrap_or("1"), &args.recordings)?;
        let to = version_index(args.to.as_deref().unwrap_or("1"), &args.recordings)?;
        println!("{:.3}", versions.map(from, to, t)?);
        return Ok(());
    }
    if !args.quiet {
        for (i, v) in versions.versions.iter().enumerate() {
            eprintln!("  {}. {} ({:.1} s)", i + 1, v.path.display(), v.duration_s);
        }
    }
    let view = view.context("no view address")?;
    let server = SwitchServer::start(Arc::new(versions), &view)?;
    eprintln!("switcher: {} (Ctrl-C to stop)", server.url);
    loop {
        std::thread::park();
    }
}

/// A version given as its number (1-based) or as one of the recordings' paths.
fn version_index(spec: &str, recordings: &[PathBuf]) -> anyhow::Result<usize> {
    if let Ok(n) = spec.parse::<usize>() {
        if (1..=recordings.len()).contains(&n) {
            return Ok(n - 1);
        }
        bail!(
            "invalid version '{spec}': give a number from 1 to {}, or one of the recordings",
            recordings.len()
        );
    }
    let same = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    recordings
        .iter()
        .position(|r| same(r, Path::new(spec)))
        .with_context(|| format!("invalid version '{spec}': not one of the recordings given"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_by_number_or_file() {
        let recs = vec![PathBuf::from("a.flac"), PathBuf::from("dir/b.flac")];
        assert_eq!(version_index("1", &recs).ok(), Some(0));
        assert_eq!(version_index("2", &recs).ok(), Some(1));
        assert_eq!(version_index("dir/b.flac", &recs).ok(), Some(1));
        for bad in ["0", "3", "c.flac", ""] {
            assert!(version_index(bad, &recs).is_err(), "{bad}");
        }
    }
}
