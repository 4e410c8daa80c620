//! Decode + downmix + resample speed of audio files (release build):
//! `cargo run --release --example decode_speed -- FILE... [--rate HZ] [--runs N]`.
//! Prints, per file, the best and median wall time over the runs and the speed as a multiple
//! of real time.

use std::path::PathBuf;
use std::time::Instant;

use scorefollow::audio::{load_mono, probe};

fn main() -> anyhow::Result<()> {
    let mut files = Vec::new();
    let mut rate = scorefollow::features::ANALYSIS_RATE_HZ;
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rate" => rate = args.next().unwrap_or_default().parse()?,
            "--runs" => runs = args.next().unwrap_or_default().parse()?,
            _ => files.push(PathBuf::from(a)),
        }
    }
    anyhow::ensure!(
        !files.is_empty(),
        "usage: decode_speed FILE... [--rate HZ] [--runs N]"
    );
    for f in files {
        let info = probe(&f)?;
        let mut times = Vec::new();
        let mut len = 0;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            len = load_mono(&f, rate)?.len();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let audio_s = len as f64 / rate as f64;
        println!(
            "{}: {} Hz {} ch {:.1} s -> {} Hz: best {:.1} ms ({:.0}x real time), median {:.1} ms",
            f.display(),
            info.sample_rate_hz,
            info.channels,
            audio_s,
            rate,
            times[0] * 1e3,
            audio_s / times[0],
            times[times.len() / 2] * 1e3
        );
    }
    Ok(())
}
