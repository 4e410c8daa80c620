//! Theme-spotting evaluation with every matcher parameter on the command line, for choosing the
//! defaults by measurement (the `eval --mode themes` subcommand uses the defaults).
//!
//! ```text
//! cargo run --release --example theme_eval -- CORPUS_DIR [key=value ...]
//! keys: smooth, down, scales, min, max, tau, rho, k, method (dtw|diagonal),
//!       midi (synth|template), transpose (0|1), exact (0|1), pred (dir)
//! ```

use std::path::PathBuf;

use scorefollow::eval::themes::{eval_themes, ThemeEvalOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let corpus = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: theme_eval CORPUS_DIR [key=value ...]"))?,
    );
    let mut o = ThemeEvalOptions::default();
    for kv in args {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected key=value, got '{kv}'"))?;
        let m = &mut o.spot.matching;
        match k {
            "smooth" => o.spot.cens.smooth_frames = v.parse()?,
            "down" => o.spot.cens.downsample = v.parse()?,
            "scales" => m.n_scales = v.parse()?,
            "min" => m.min_scale = v.parse()?,
            "max" => m.max_scale = v.parse()?,
            "tau" => m.peaks.tau = v.parse()?,
            "rho" => m.peaks.rho_fraction = v.parse()?,
            "k" => m.peaks.top_k = v.parse()?,
            "method" => m.method = v.parse()?,
            "midi" => o.spot.midi_mode = v.parse()?,
            "transpose" => m.transpose = v == "1",
            "exact" => o.exact_only = v == "1",
            "minp" => o.spot.features.min_pitch = v.parse()?,
            "maxp" => o.spot.features.max_pitch = v.parse()?,
            "logc" => o.spot.features.log_compression = v.parse()?,
            "tpen" => m.transpose_penalty = v.parse()?,
            "skipw" => m.skip_weight = v.parse()?,
            "stream" => o.streaming = v == "1",
            "confirm" => o.confirm_s = v.parse()?,
            "pred" => o.pred_dir = Some(PathBuf::from(v)),
            _ => anyhow::bail!("unknown key '{k}'"),
        }
    }
    let r = eval_themes(&corpus, &o)?;
    print!("{r}");
    Ok(())
}
