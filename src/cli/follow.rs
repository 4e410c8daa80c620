//! `scorefollow follow`: follow a performance (replayed or live) and report positions.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use super::common::{parse_speed, FollowerArgs, ReferenceArgs};
use crate::audio::load::load_themes;
use crate::audio::replay::{ReplayOptions, Speed};
use crate::audio::Capture;
use crate::control::{AllowList, ShowSetup};
use crate::engine::run::percentile_ns;
use crate::engine::{FollowConfig, Source};
use crate::output::console::ConsoleSink;
use crate::output::csv::{CueLogFile, FileFormat, FileSink};
use crate::output::osc::{parse_target, OscSink, SendOptions};
use crate::output::Sink;

/// Follow a performance in a score and say where the performer is, frame by frame.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  scorefollow follow --replay scores/bach/performance.flac --score scores/bach/score.mid --osc 127.0.0.1:9000\n  scorefollow follow --live --score piece.mid --osc 192.168.1.20:53000 --osc-rate 30"
)]
pub struct FollowArgs {
    /// Play this recording into the follower as if it were live input.
    #[arg(long, value_name = "AUDIO", conflicts_with = "live")]
    pub replay: Option<PathBuf>,
    /// Listen to a sound-card input (needs a build with the `live` feature).
    #[arg(long)]
    pub live: bool,
    /// Input device for --live (an id or name from `scorefollow devices`; default input if
    /// omitted).
    #[arg(long, value_name = "NAME", requires = "live")]
    pub device: Option<String>,
    /// The score or recording to follow.
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// Replay pace: 1.0 = real time, 2 = twice as fast, max = as fast as possible.
    #[arg(long, default_value = "1.0", value_parser = parse_speed)]
    pub speed: Speed,
    /// Simulate input dropouts in a replay: discard each 50 ms chunk with probability PROB
    /// (0-1), drawn from SEED (default 0) so a run can be repeated. The dropped samples are
    /// counted in /scorefollow/status and the end-of-run summary.
    #[arg(long, value_name = "PROB[:SEED]", value_parser = parse_drop, requires = "replay")]
    pub drop: Option<DropArg>,
    /// Send OSC to HOST:PORT (repeat for several receivers). A broadcast address
    /// (192.168.1.255, 255.255.255.255) reaches every receiver of the subnet, a multicast
    /// group (239.1.2.3) every member.
    #[arg(long, value_name = "HOST:PORT")]
    pub osc: Vec<String>,
    /// Hops a multicast datagram may make (IPv4 TTL, IPv6 hop limit); 1 keeps it on the
    /// local network.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub osc_ttl: u32,
    /// Send IPv4 multicast through the interface with this local address (default: the one
    /// the routing table picks).
    #[arg(long, value_name = "ADDR")]
    pub osc_interface: Option<std::net::Ipv4Addr>,
    /// Position messages per second over OSC (default: every frame, 50 per second).
    #[arg(long, value_name = "HZ")]
    pub osc_rate: Option<f64>,
    /// Write every reported position to this CSV file
    /// (perf_time_s,score_time_s,beat,bar,tempo,confidence).
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Write the event log as JSON lines to this file: every position, status, relocation,
    /// ambiguity, cue, page turn and theme, one object per line with a "type".
    #[arg(long, value_name = "FILE.jsonl")]
    pub jsonl: Option<PathBuf>,
    /// Write one row per cue fired by the follower to this CSV file
    /// (cue_id,perf_time_s,score_time_s,cue_score_s).
    #[arg(long, value_name = "FILE.csv", requires = "cues")]
    pub cue_log: Option<PathBuf>,
    /// How to follow.
    #[command(flatten)]
    pub follower: FollowerArgs,
    /// The order in which the sections of the score are played (written repeats, cuts): one
    /// section per line, bars 'FROM-TO' (printed measure numbers of a MusicXML score, whose
    /// own repeats are then not taken; a MIDI score's bars) or score seconds 'FROMs-TOs'.
    /// Followed without re-localisation; positions are reported in the score as written.
    #[arg(long, value_name = "FILE")]
    pub structure: Option<PathBuf>,
    /// Spot these themes in the incoming audio (a themes file: TOML `[[theme]]` tables or CSV
    /// `file[,id]`); each occurrence is sent as /scorefollow/theme.
    #[arg(long, value_name = "FILE")]
    pub themes: Option<PathBuf>,
    /// Print a position line every this many seconds of audio (0 = never).
    #[arg(long, default_value_t = 0.5, value_name = "SECONDS")]
    pub print_every: f64,
    /// Print latency statistics (last sample of a frame in the ring -> OSC datagram sent).
    #[arg(long)]
    pub latency: bool,
    /// Fire the cues of this cue file (TOML, see scores/bach_bwv66_6/cues.toml); the whole
    /// file is checked against the score before the audio starts.
    #[arg(long, value_name = "FILE.toml")]
    pub cues: Option<PathBuf>,
    /// Send /scorefollow/page (page i) to the --osc targets when a page's first bar comes
    /// (CSV lines 'page,first_bar'). Without it, a MusicXML score's own page breaks
    /// (`<print new-page>`) turn the pages.
    #[arg(long, value_name = "FILE.csv")]
    pub pages: Option<PathBuf>,
    /// How early a page turn is sent (ms of performance time at the current tempo).
    #[arg(long, default_value_t = 1000.0, value_name = "MS")]
    pub page_lead_ms: f64,
    /// Accept remote control over OSC on HOST:PORT (/scorefollow/start, stop, reset, seek,
    /// seek_bar, fire, quit).
    #[arg(long, value_name = "HOST:PORT")]
    pub control: Option<String>,
    /// Obey remote control only from these senders, ADDR or ADDR/PREFIX (repeat, or separate
    /// by commas) [default: 127.0.0.1, ::1 and the /24 of each IPv4 --osc target]. Datagrams
    /// from others are ignored without an answer and counted.
    #[arg(
        long,
        value_name = "ADDR[/PREFIX]",
        value_delimiter = ',',
        requires = "control"
    )]
    pub control_allow: Vec<crate::control::AllowNet>,
    /// Serve a live view for a browser on HOST:PORT (e.g. 127.0.0.1:8080; port 0 picks a free
    /// one); an address reachable from other machines needs --view-token.
    #[arg(long, value_name = "HOST:PORT")]
    pub view: Option<String>,
    /// A token the live view's page and every command must carry.
    #[arg(long, value_name = "TOKEN", requires = "view")]
    pub view_token: Option<String>,
    /// Position updates per second to the live view (default: every frame, 50 per second).
    #[arg(long, value_name = "HZ", requires = "view")]
    pub view_rate: Option<f64>,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_speed(s)
    }
}

impl TryFrom<&FollowArgs> for FollowConfig {
    type Error = anyhow::Error;

    fn try_from(args: &FollowArgs) -> anyhow::Result<Self> {
        let settings = args.follower.settings(args.reference.kind()?);
        Ok(FollowConfig::try_from(settings)?)
    }
}

/// Run `follow`.
pub fn run(args: FollowArgs) -> anyhow::Result<()> {
    let config = FollowConfig::try_from(&args)?;
    if args.drop.is_some() && args.replay.is_none() {
        // clap's `requires` does not fire when the conflicting --live is given.
        bail!("--drop simulates dropouts in a replay: use it with --replay AUDIO, not --live");
    }
    // Validate every output before any audio starts.
    let targets = args
        .osc
        .iter()
        .map(|t| parse_target(t).context("--osc"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(r) = args.osc_rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("invalid --osc-rate '{r}': give a positive number of messages per second");
        }
    }
    let reference = args.reference.load_structured(
        &config.features,
        &config.rendering,
        args.structure.as_deref(),
    )?;
    let send_options = SendOptions {
        multicast_ttl: args.osc_ttl,
        multicast_interface: args.osc_interface,
    };
    let mut show = ShowSetup::load(
        &reference,
        args.cues.as_deref(),
        args.pages.as_deref(),
        args.page_lead_ms,
        &targets,
        args.control.as_deref(),
    )?
    .with_send_options(send_options);
    if !args.control_allow.is_empty() {
        show = show.with_control_allow(AllowList::new(args.control_allow.clone()));
    }
    let themes = match &args.themes {
        Some(p) => Some(
            load_themes(p, config.theme_tau)
                .with_context(|| format!("loading the themes {}", p.display()))?,
        ),
        None => None,
    };
    let view = match &args.view {
        Some(a) => Some(crate::web::live::LiveViewSetup::bind(
            crate::web::ViewAddress::parse(a, args.view_token.as_deref())?,
            args.view_rate,
        )?),
        None => None,
    };
    let view_page = view.as_ref().map(|_| {
        crate::web::live::score_json(
            &reference,
            show.cue_lists(),
            &run_info(&args, &config),
            args.view_rate,
        )
    });
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if args.print_every > 0.0 {
        sinks.push(Box::new(ConsoleSink::new(args.print_every)));
    }
    if let Some(p) = &args.out {
        sinks.push(Box::new(FileSink::create(p, FileFormat::Csv)?));
    }
    if let Some(p) = &args.jsonl {
        let sink = FileSink::create(p, FileFormat::JsonLines)?;
        if let Some(log) = sink.event_log() {
            // Cue sinks come after this one, so a firing's line follows its position's.
            show = show.observe_all(Arc::new(log));
        }
        sinks.push(Box::new(sink));
    }
    if let Some(p) = &args.cue_log {
        let log = CueLogFile::create(p)?;
        show = show.observe_cues(Arc::new(log));
    }
    // From here on SIGINT and SIGTERM stop following cleanly instead of killing the process.
    let stop = Arc::new(AtomicBool::new(false));
    super::signal::stop_on_signals(Arc::clone(&stop))?;

    let capture = open_input(&args)?;

    let mut latency_log = None;
    if !targets.is_empty() {
        let mut osc = OscSink::with_options(targets, args.osc_rate, &send_options)?;
        if args.latency {
            latency_log = Some(osc.log_latency(capture.epoch));
        }
        sinks.push(Box::new(osc));
    }
    let mut show = show.start(
        capture.epoch,
        &mut sinks,
        reference.clone(),
        Arc::clone(&stop),
    )?;
    let _view = match (view, view_page) {
        (Some(v), Some(page)) => {
            let (view, sink) = v.start(
                reference.clone(),
                page,
                show.commander(),
                Some(Arc::clone(&capture.stats)),
                show.fired_logs(),
                capture.epoch,
            )?;
            eprintln!("live view: {}", view.url);
            sinks.push(Box::new(sink));
            Some(view)
        }
        _ => None,
    };
    let input_stats = Arc::clone(&capture.stats);
    let source = Source::new(reference, capture)
        .with_themes(themes)
        .with_control(show.control_commands())
        .with_stop(stop);
    let summary = crate::engine::follow(&config, source, sinks)?;
    report_run(&summary, &input_stats, latency_log, config.features.hop_s());
    eprint!("{}", show.finish());
    for t in summary.osc_delivery.iter().filter(|t| t.failed > 0) {
        eprintln!("warning: {t}");
    }
    for e in &summary.sink_errors {
        eprintln!("warning: output error: {e}");
    }
    match summary.input_error {
        Some(e) => Err(super::InputEndedEarly(e).into()),
        None => Ok(()),
    }
}

/// The input: a recording replayed (`--replay`) or a sound card (`--live`).
fn open_input(args: &FollowArgs) -> anyhow::Result<Capture> {
    if let Some(path) = &args.replay {
        Ok(Capture::replay(
            path,
            ReplayOptions {
                speed: args.speed,
                drop_chunks: args.drop.map(|d| (d.prob, d.seed)),
                ..ReplayOptions::default()
            },
        )
        .with_context(|| format!("replaying {}", path.display()))?)
    } else if args.live {
        open_live(args.device.as_deref())
    } else {
        bail!("give the input: --replay AUDIO, or --live for a sound card");
    }
}

/// The run's summary on stderr: how it stopped, speed and drops, replaced samples, and the
/// OSC latency when `--latency` logged it (`hop_s`: the frame hop, s).
fn report_run(
    summary: &crate::engine::FollowSummary,
    input_stats: &crate::audio::ring::SourceStats,
    latency_log: Option<crate::output::osc::LatencyLog>,
    hop_s: f64,
) {
    if summary.stopped {
        let by = super::signal::received().unwrap_or("/scorefollow/quit");
        eprintln!(
            "stopped by {by} at {:.2} s of audio; everything captured until then was followed",
            summary.audio_s
        );
    }
    eprintln!(
        "followed {:.1} s of audio in {:.2} s ({:.0}x real time), {} frames, {} samples dropped, per-frame p50 {:.1} us p99 {:.1} us",
        summary.audio_s,
        summary.wall_s,
        summary.realtime_factor(),
        summary.frames,
        summary.dropped_samples,
        summary.frame_us_percentile(50.0),
        summary.frame_us_percentile(99.0),
    );
    let nonfinite = input_stats.snapshot().samples_nonfinite;
    if nonfinite > 0 {
        eprintln!("warning: {nonfinite} NaN or infinite input samples were replaced by 0");
    }
    if let Some(log) = latency_log {
        let pairs = log.lock().map(|v| v.clone()).unwrap_or_default();
        let mut lat: Vec<u32> = pairs
            .iter()
            .map(|&(cap, sent)| sent.saturating_sub(cap).min(u32::MAX as u64) as u32)
            .collect();
        lat.sort_unstable();
        eprintln!(
            "latency, last sample of a frame in the ring -> OSC datagram sent ({} datagrams): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (hop {:.1} ms)",
            lat.len(),
            percentile_ns(&lat, 50.0) / 1e6,
            percentile_ns(&lat, 99.0) / 1e6,
            lat.last().copied().unwrap_or(0) as f64 / 1e6,
            1000.0 * hop_s
        );
    }
}

/// The settings the live view shows: those the follower runs with.
fn run_info(args: &FollowArgs, config: &FollowConfig) -> crate::web::live::RunInfo {
    use crate::engine::config::Transposition;
    use crate::engine::{AlignerConfig, TuningSetting};
    crate::web::live::RunInfo {
        aligner: match config.aligner {
            AlignerConfig::Oltw(_) => "oltw".into(),
            AlignerConfig::Soft(_) => "soft".into(),
            AlignerConfig::SoftTempo { .. } => "soft, with the tempo model".into(),
        },
        tuning: match config.tuning {
            TuningSetting::Fixed(0.0) => "A4 = 440 Hz".into(),
            TuningSetting::Fixed(c) => format!("{c:+} cents"),
            TuningSetting::Track => "auto".into(),
        },
        transpose: match config.transposition {
            Transposition::Detect { .. } => "auto".into(),
            Transposition::Fixed(0) => "as written".into(),
            Transposition::Fixed(k) => format!("+{k} semitones"),
        },
        input: match (&args.replay, &args.device) {
            (Some(p), _) => match args.speed {
                Speed::Factor(x) => format!("replay of {} at {x}x", p.display()),
                Speed::Max => format!("replay of {} at full speed", p.display()),
            },
            (None, Some(d)) => format!("live: {d}"),
            (None, None) => "live: default input".into(),
        },
    }
}

#[cfg(feature = "live")]
fn open_live(device: Option<&str>) -> anyhow::Result<Capture> {
    Capture::live(device, crate::audio::LiveOptions::default()).context("opening the audio input")
}

#[cfg(not(feature = "live"))]
fn open_live(_device: Option<&str>) -> anyhow::Result<Capture> {
    bail!("this scorefollow was built without live input; rebuild with `cargo build --release --features live`")
}

/// A `--drop PROB[:SEED]` option: simulated dropouts in a replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropArg {
    /// Probability that a 50 ms chunk is discarded (0-1).
    pub prob: f64,
    /// Seed of the coin flips.
    pub seed: u64,
}

/// Parse `PROB[:SEED]`: a probability from 0 to 1 and an optional unsigned seed (default 0).
pub fn parse_drop(s: &str) -> Result<DropArg, String> {
    let (p, seed) = match s.split_once(':') {
        Some((p, seed)) => (p, Some(seed)),
        None => (s, None),
    };
    let prob = match p.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => x,
        _ => {
            return Err(format!(
                "'{s}': the drop probability must be a number from 0 to 1 (e.g. 0.1 or 0.1:7)"
            ))
        }
    };
    let seed = match seed {
        None => 0,
        Some(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("'{s}': the seed after ':' must be a whole number >= 0"))?,
    };
    Ok(DropArg { prob, seed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_option_parses_probability_and_seed() {
        assert_eq!(parse_drop("0.1"), Ok(DropArg { prob: 0.1, seed: 0 }));
        assert_eq!(
            parse_drop("0.25:42"),
            Ok(DropArg {
                prob: 0.25,
                seed: 42
            })
        );
        assert_eq!(parse_drop("1").map(|d| d.prob), Ok(1.0));
        for bad in ["", "-0.1", "1.5", "NaN", "x", "0.1:", "0.1:-3", "0.1:seven"] {
            let e = parse_drop(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
    }
}
