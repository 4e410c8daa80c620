//! MusicXML reading on the development corpus: for every piece with a `score.musicxml`, the
//! share of `score.mid`'s onsets (quarter-note beats) that coincide with the unfolded
//! MusicXML's within 1/48 of a quarter note, against the share `piece.json` states, and the
//! time to read and unfold each file against partitura's `load_musicxml` in the same run.
//!
//! ```text
//! cargo run --release --example musicxml_dev -- ../shared/corpus [--python PY] [--runs N]
//!     [--repeats performed|none|written]
//! ```
//!
//! `--python` names a Python with partitura (default: the peers' venv,
//! `~/.cache/scorefollow-peers-venv/bin/python`); `--python none` skips it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use scorefollow::score::musicxml::{onset_coincidence, MusicXmlOptions, RepeatMode};
use scorefollow::score::Score;

const TOLERANCE_Q: f64 = 1.0 / 48.0;

fn onsets(score: &Score) -> Vec<f64> {
    score
        .pitched_notes()
        .map(|n| score.beat_at_s(n.onset_s))
        .collect()
}

/// (beat, pitch) pairs, for the pitch-aware share.
fn notes(score: &Score) -> Vec<(f64, u8)> {
    score
        .pitched_notes()
        .map(|n| (score.beat_at_s(n.onset_s), n.pitch))
        .collect()
}

fn pitch_share(reference: &[(f64, u8)], candidate: &[(f64, u8)]) -> f64 {
    let hits = reference
        .iter()
        .filter(|(b, p)| {
            candidate
                .iter()
                .any(|(c, q)| q == p && (c - b).abs() <= TOLERANCE_Q)
        })
        .count();
    hits as f64 / reference.len().max(1) as f64
}

fn stated_share(piece_json: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(piece_json).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let s = v.get("score_musicxml")?.as_str()?;
    let pct = s.split('%').next()?;
    let num: String = pct
        .chars()
        .rev()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    num.parse::<f64>().ok().map(|x| x / 100.0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut corpus = PathBuf::from("../shared/corpus");
    let mut python = dirs_home().join(".cache/scorefollow-peers-venv/bin/python");
    let mut runs = 5usize;
    let mut repeats = RepeatMode::Performed;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeats" => {
                repeats = match args.next().as_deref() {
                    Some("performed") => RepeatMode::Performed,
                    Some("none") => RepeatMode::NoRepeats,
                    Some("written") => RepeatMode::AsWritten,
                    other => anyhow::bail!("--repeats performed|none|written, not {other:?}"),
                }
            }
            "--python" => python = PathBuf::from(args.next().unwrap_or_default()),
            "--runs" => runs = args.next().and_then(|r| r.parse().ok()).unwrap_or(5),
            other => corpus = PathBuf::from(other),
        }
    }
    let mut pieces: Vec<PathBuf> = std::fs::read_dir(corpus.join("pieces"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("score.musicxml").exists())
        .collect();
    pieces.sort();
    println!(
        "{:<32} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>5} {:>6} {:>9} {:>9}",
        "piece",
        "onsets",
        "share",
        "1/8 q",
        "stated",
        "pitch",
        "reverse",
        "meas",
        "unfold",
        "read ms",
        "MB"
    );
    let mut ours_ms = Vec::new();
    let mut ok_all = true;
    for dir in &pieces {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let xml = dir.join("score.musicxml");
        let mid = Score::load(&dir.join("score.mid"))?;
        let mut best = f64::INFINITY;
        let mut score = None;
        for _ in 0..runs {
            let t = Instant::now();
            let s = Score::load_musicxml(
                &xml,
                &MusicXmlOptions {
                    repeats,
                    ..Default::default()
                },
            )?;
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
            score = Some(s);
        }
        let score = score.expect("at least one run");
        let share = onset_coincidence(&onsets(&mid), &onsets(&score), TOLERANCE_Q);
        let coarse = onset_coincidence(&onsets(&mid), &onsets(&score), 0.125);
        let pitch = pitch_share(&notes(&mid), &notes(&score));
        // The other direction: the MusicXML's onsets within score.mid's span.
        let mid_on = onsets(&mid);
        let end = mid_on.iter().copied().fold(0.0, f64::max) + TOLERANCE_Q;
        let ours: Vec<f64> = onsets(&score).into_iter().filter(|&b| b <= end).collect();
        let reverse = onset_coincidence(&ours, &mid_on, TOLERANCE_Q);
        let stated = stated_share(&dir.join("piece.json"));
        let layout = score.printed.as_deref().expect("MusicXML has a layout");
        let mb = std::fs::metadata(&xml)?.len() as f64 / 1e6;
        // piece.json rounds to whole percent.
        let meets = stated.is_none_or(|s| (share * 100.0).round() >= (s * 100.0).round());
        ok_all &= meets;
        println!(
            "{:<32} {:>7} {:>6.1}% {:>6.1}% {:>6} {:>5.1}% {:>6.1}% {:>5} {:>6} {:>9.1} {:>9.2}{}",
            name,
            mid.pitched_notes().count(),
            share * 100.0,
            coarse * 100.0,
            stated.map_or("-".into(), |s| format!("{:.0}%", s * 100.0)),
            pitch * 100.0,
            reverse * 100.0,
            layout.printed.len(),
            layout.measures.len(),
            best,
            mb,
            if meets { "" } else { "  BELOW" }
        );
        ours_ms.push((xml, best));
    }
    println!(
        "every piece at least its stated share: {}",
        if ok_all { "yes" } else { "NO" }
    );
    if python.as_os_str() != "none" && python.exists() {
        let script = "import sys, time, warnings\nwarnings.filterwarnings('ignore')\nimport partitura\nruns=int(sys.argv[1])\nfor f in sys.argv[2:]:\n    best=1e9\n    for _ in range(runs):\n        t=time.perf_counter(); partitura.load_musicxml(f); best=min(best,time.perf_counter()-t)\n    print(f, best*1e3, flush=True)\n";
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(runs.min(3).to_string())
            .args(ours_ms.iter().map(|(p, _)| p))
            .output()?;
        if !out.status.success() {
            eprintln!("partitura failed: {}", String::from_utf8_lossy(&out.stderr));
            return Ok(());
        }
        println!(
            "\n{:<32} {:>10} {:>12} {:>8}",
            "piece", "ours ms", "partitura ms", "speedup"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut worst = f64::INFINITY;
        for line in text.lines() {
            let Some((f, ms)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(theirs) = ms.parse::<f64>() else {
                continue;
            };
            let Some((p, ours)) = ours_ms.iter().find(|(p, _)| p.to_string_lossy() == f) else {
                continue;
            };
            let name = p
                .parent()
                .and_then(|d| d.file_name())
                .unwrap_or_default()
                .to_string_lossy();
            worst = worst.min(theirs / ours);
            println!(
                "{:<32} {:>10.1} {:>12.1} {:>7.0}x",
                name,
                ours,
                theirs,
                theirs / ours
            );
        }
        println!("smallest speedup: {worst:.0}x");
    }
    Ok(())
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}
