//! Latency of the show path over a whole piece, replayed at real pace: per stage and end to
//! end, p50 / p99 / max.
//!
//! ```text
//! cargo run --release --example show_latency -- [PIECE_DIR] [--speed X] [--busy]
//! ```
//!
//! PIECE_DIR defaults to scores/bach_bwv66_6 (score.mid, performance.flac, cues.toml).
//! `--busy` spins one thread for the whole run, a stand-in for `stress -c 1` (keeps the
//! other core of a two-core machine busy).
//!
//! Stages, all on the capture clock (ns since the capture epoch):
//! - frame processing: features + aligner + tracker for one frame (the engine's own timer);
//! - capture -> position sent: the frame's newest sample entering the ring -> its
//!   `/scorefollow/position` datagram leaving the socket (ring wait, resampling,
//!   processing, event queue, output thread, OSC encoding and send);
//! - capture -> cue sent: the same for the frames that fired a cue;
//! - capture -> cue received: to the first datagram of the cue on a receiving socket.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scorefollow::audio::replay::{ReplayOptions, Speed};
use scorefollow::audio::Capture;
use scorefollow::engine::{FollowConfig, Source};
use scorefollow::output::cues::{CueList, CueSink, Timeline};
use scorefollow::output::osc::OscSink;
use scorefollow::output::Sink;
use scorefollow::score::reference::Reference;

fn stats(name: &str, mut ns: Vec<u64>) {
    if ns.is_empty() {
        println!("{name:<34} (no samples)");
        return;
    }
    ns.sort_unstable();
    let pct = |p: f64| ns[((p / 100.0) * (ns.len() - 1) as f64).round() as usize] as f64 / 1e6;
    println!(
        "{name:<34} n {:>5}  p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        ns.len(),
        pct(50.0),
        pct(99.0),
        ns[ns.len() - 1] as f64 / 1e6
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<f64>().is_err())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scores/bach_bwv66_6"));
    let speed: f64 = args
        .iter()
        .position(|a| a == "--speed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let busy = args.iter().any(|a| a == "--busy");

    let config = FollowConfig::default();
    let cfg = config.features.clone();
    let reference = Arc::new(Reference::from_score_file(
        &dir.join("score.mid"),
        &cfg,
        &config.rendering,
    )?);
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_read_timeout(Some(Duration::from_millis(200)))?;
    let addr = rx.local_addr()?.to_string();
    // Every cue to the receiving socket.
    let text = std::fs::read_to_string(dir.join("cues.toml"))?;
    let text: String = text
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, _)) if l.contains("127.0.0.1:") => format!("{k}= \"{addr}\""),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let list = CueList::parse(&text, &dir.join("cues.toml"), Timeline::of(&reference))?;
    let datagrams: std::collections::HashMap<String, usize> = list
        .cues
        .iter()
        .map(|c| (c.id.clone(), c.messages.len() * c.targets.len()))
        .collect();

    let stop_busy = Arc::new(AtomicBool::new(false));
    let spinner = busy.then(|| {
        let stop = Arc::clone(&stop_busy);
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                std::hint::black_box(x);
            }
        })
    });

    let capture = Capture::replay(
        &dir.join("performance.flac"),
        ReplayOptions {
            speed: Speed::Factor(speed),
            ..ReplayOptions::default()
        },
    )?;
    let epoch = capture.epoch;
    // Positions go to a port nobody reads: sending is what is timed, not receiving.
    let sink_addr = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    let mut osc = OscSink::new(vec![sink_addr], None)?;
    let pos_log = osc.log_latency(epoch);
    let cues = CueSink::new(list, epoch)?;
    let cue_log = cues.log();
    let sinks: Vec<Box<dyn Sink>> = vec![Box::new(osc), Box::new(cues)];
    let follower = std::thread::spawn(move || {
        scorefollow::follow(&config, Source::new(reference, capture), sinks)
    });
    let mut arrivals = Vec::new();
    let mut buf = [0u8; rosc::decoder::MTU];
    loop {
        match rx.recv_from(&mut buf) {
            Ok((n, _)) => arrivals.push((epoch.elapsed().as_nanos() as u64, buf[..n].to_vec())),
            Err(_) if follower.is_finished() => break,
            Err(_) => {}
        }
    }
    let summary = follower.join().map_err(|_| "follower panicked")??;
    stop_busy.store(true, Ordering::Relaxed);
    if let Some(s) = spinner {
        let _ = s.join();
    }

    println!(
        "{}: {:.1} s of audio at {speed}x, {} frames, {} samples dropped, other core busy: {busy}, hop {:.1} ms",
        dir.display(),
        summary.audio_s,
        summary.frames,
        summary.dropped_samples,
        1000.0 * cfg.hop_s()
    );
    let ft = &summary.frame_times;
    println!(
        "{:<34} n {:>5}  p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        "frame processing",
        ft.len(),
        ft.percentile_ns(50.0) / 1e6,
        ft.percentile_ns(99.0) / 1e6,
        ft.percentile_ns(100.0) / 1e6
    );
    let pos: Vec<(u64, u64)> = pos_log.lock().map(|v| v.clone()).unwrap_or_default();
    stats(
        "capture -> position sent",
        pos.iter().map(|&(c, s)| s.saturating_sub(c)).collect(),
    );
    let fired = cue_log.lock().map(|v| v.clone()).unwrap_or_default();
    stats(
        "capture -> cue sent",
        fired
            .iter()
            .map(|f| f.sent_wall_ns.saturating_sub(f.capture_wall_ns))
            .collect(),
    );
    // A firing's first datagram is the first one that arrived after its frame was captured
    // and after the previous firing's datagrams (each datagram is matched once).
    let mut next = 0;
    let mut e2e = Vec::new();
    for f in &fired {
        if let Some(k) = arrivals[next..]
            .iter()
            .position(|a| a.0 >= f.capture_wall_ns)
        {
            e2e.push(arrivals[next + k].0 - f.capture_wall_ns);
            next += k + datagrams.get(&f.id).copied().unwrap_or(1);
        }
        next = next.min(arrivals.len());
    }
    stats("capture -> cue received (loopback)", e2e);
    Ok(())
}
