//! Remote control over OSC: a UDP server thread that turns `/scorefollow/...` messages into
//! [`ControlCommand`]s for the follow loop ([`crate::engine::run`] polls them once per audio
//! block) and fires cues by hand.
//!
//! | address | arguments | effect |
//! |---|---|---|
//! | `/scorefollow/start` | | resume following (after `/stop`) |
//! | `/scorefollow/stop` | | pause: audio is read and discarded, no positions are reported |
//! | `/scorefollow/reset` | | follow again from the start position (`--start-s`) |
//! | `/scorefollow/seek` | score_s f (or i) | follow from this score time (s) |
//! | `/scorefollow/seek_bar` | bar i | follow from the start of this bar (MIDI scores) |
//! | `/scorefollow/fire` | cue id s | fire this cue now |
//! | `/scorefollow/quit` | | stop following and end the run |
//!
//! Every accepted message is answered, to the address it came from, with
//! `/scorefollow/ack` (the address received, then its arguments). A malformed or unknown
//! message is counted and answered with `/scorefollow/error` (reason s, errors so far i);
//! it never stops the server. The same messages come from the browser's live view
//! ([`crate::web::live`]); both go through one [`Commander`].

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rosc::{OscMessage, OscPacket, OscType};

use super::cues::{CueHandle, CueList, CueSink, FiredCue, FiredLog, Timeline};
use super::Sink;
use crate::score::reference::Reference;
use crate::Error;

/// A command for the follow loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ControlCommand {
    /// Resume following.
    Start,
    /// Pause following (input is read and discarded).
    Stop,
    /// Follow from the start position again.
    Reset,
    /// Follow from this score time (s).
    Seek {
        /// Score time (s).
        score_s: f64,
    },
}

/// What a control message asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// A command for the follow loop.
    Engine(ControlCommand),
    /// Fire the cue with this id.
    Fire(String),
    /// End the run (as Ctrl-C would).
    Quit,
}

/// Interpret one control message against the followed reference.
pub fn parse_request(msg: &OscMessage, timeline: Timeline<'_>) -> Result<Request, String> {
    let number = |a: Option<&OscType>| -> Option<f64> {
        match a {
            Some(OscType::Float(f)) => Some(*f as f64),
            Some(OscType::Double(d)) => Some(*d),
            Some(OscType::Int(i)) => Some(*i as f64),
            Some(OscType::Long(i)) => Some(*i as f64),
            _ => None,
        }
    };
    let no_args = |r: Request| {
        if msg.args.is_empty() {
            Ok(r)
        } else {
            Err(format!("{} takes no arguments", msg.addr))
        }
    };
    match msg.addr.as_str() {
        "/scorefollow/start" => no_args(Request::Engine(ControlCommand::Start)),
        "/scorefollow/stop" => no_args(Request::Engine(ControlCommand::Stop)),
        "/scorefollow/reset" => no_args(Request::Engine(ControlCommand::Reset)),
        "/scorefollow/quit" => no_args(Request::Quit),
        "/scorefollow/seek" => match (msg.args.len(), number(msg.args.first())) {
            (1, Some(s)) if s.is_finite() && (0.0..=timeline.duration_s).contains(&s) => {
                Ok(Request::Engine(ControlCommand::Seek { score_s: s }))
            }
            (1, Some(s)) => Err(format!(
                "/scorefollow/seek: {s} s is outside the score (0 to {:.3} s)",
                timeline.duration_s
            )),
            _ => Err("/scorefollow/seek takes one number: score_s".into()),
        },
        "/scorefollow/seek_bar" => match msg.args.as_slice() {
            // Pd and Max send numbers as floats; a whole float is a bar number too.
            [a @ (OscType::Int(_) | OscType::Float(_))]
                if number(Some(a)).is_some_and(|b| b.fract() == 0.0 && b.abs() < 1e9) =>
            {
                let bar = number(Some(a)).unwrap_or(0.0) as i64;
                timeline
                    .s_at_bar_beat(bar, 1.0)
                    .map(|score_s| Request::Engine(ControlCommand::Seek { score_s }))
                    .map_err(|r| format!("/scorefollow/seek_bar: {r}"))
            }
            _ => Err("/scorefollow/seek_bar takes one int: bar".into()),
        },
        "/scorefollow/fire" => match msg.args.as_slice() {
            [OscType::String(id)] => Ok(Request::Fire(id.clone())),
            _ => Err("/scorefollow/fire takes one string: the cue id".into()),
        },
        other => Err(format!("unknown address {other}")),
    }
}

/// Counters of a running [`ControlServer`].
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Messages accepted and acknowledged.
    pub accepted: AtomicU64,
    /// Malformed or unknown datagrams and messages.
    pub errors: AtomicU64,
}

/// The one path from a control request to its effect and its answer, shared by the OSC
/// server and the browser's live view: engine commands go to the follow loop, `/fire` to the
/// cue lists (tried in turn), `/quit` raises the run's stop flag.
#[derive(Clone)]
pub struct Commander {
    commands: Sender<ControlCommand>,
    cues: Vec<CueHandle>,
    quit: Arc<AtomicBool>,
    stats: Arc<ControlStats>,
}

impl Commander {
    /// Commands go to `commands`, cues fire through `cues`, quit sets `quit`.
    pub fn new(
        commands: Sender<ControlCommand>,
        cues: Vec<CueHandle>,
        quit: Arc<AtomicBool>,
    ) -> Self {
        Self {
            commands,
            cues,
            quit,
            stats: Arc::default(),
        }
    }

    /// Requests accepted and refused so far, from every transport.
    pub fn stats(&self) -> &Arc<ControlStats> {
        &self.stats
    }

    /// Carry out one interpreted message `msg` (from `from`, for the log) and build its
    /// answer: `/scorefollow/ack` with the address received then its arguments, or
    /// `/scorefollow/error` with the reason and the number of refusals so far.
    pub fn answer(
        &self,
        request: Result<Request, String>,
        msg: OscMessage,
        from: &str,
    ) -> OscMessage {
        let done = request.and_then(|r| match r {
            Request::Engine(cmd) => {
                if matches!(cmd, ControlCommand::Reset | ControlCommand::Seek { .. }) {
                    // A deliberate discontinuity: cues passed by it count as skipped.
                    self.cues.iter().for_each(CueHandle::forget_position);
                }
                self.commands
                    .send(cmd)
                    .map_err(|_| "following has ended".to_string())
            }
            Request::Fire(id) => {
                if self.cues.iter().any(|c| c.fire(&id)) {
                    Ok(())
                } else {
                    Err(format!("/scorefollow/fire: no cue '{id}'"))
                }
            }
            Request::Quit => {
                self.quit.store(true, Ordering::Relaxed);
                Ok(())
            }
        });
        match done {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                let mut args = vec![OscType::String(msg.addr)];
                args.extend(msg.args);
                OscMessage {
                    addr: "/scorefollow/ack".into(),
                    args,
                }
            }
            Err(reason) => {
                let count = self.stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!("control message from {from}: {reason}");
                OscMessage {
                    addr: "/scorefollow/error".into(),
                    args: vec![
                        OscType::String(reason),
                        OscType::Int(count.min(i32::MAX as u64) as i32),
                    ],
                }
            }
        }
    }
}

/// The control server thread; stops when dropped or on [`ControlServer::stop`].
pub struct ControlServer {
    /// Counters.
    pub stats: Arc<ControlStats>,
    /// The address it listens on (useful with port 0).
    pub local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Listen on `bind`; requests go through `commander`.
    pub fn spawn(
        bind: SocketAddr,
        reference: Arc<Reference>,
        commander: Commander,
    ) -> crate::Result<Self> {
        Self::spawn_on(bind_control(bind)?, reference, commander)
    }

    /// As [`ControlServer::spawn`], on a socket already bound with [`bind_control`].
    pub fn spawn_on(
        socket: UdpSocket,
        reference: Arc<Reference>,
        commander: Commander,
    ) -> crate::Result<Self> {
        // The timeout bounds how long stop() waits for the thread.
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| Error::Other(format!("control socket: {e}")))?;
        let local_addr = socket
            .local_addr()
            .map_err(|e| Error::Other(format!("control socket: {e}")))?;
        let stats = Arc::clone(commander.stats());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("scorefollow-control".into())
                .spawn(move || serve(&socket, &reference, &commander, &stop))
                .map_err(|e| Error::Other(format!("cannot start control thread: {e}")))?
        };
        Ok(Self {
            stats,
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stop the thread and wait for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bind the control socket (fails early, before any audio, when the port is taken).
pub fn bind_control(addr: SocketAddr) -> crate::Result<UdpSocket> {
    UdpSocket::bind(addr)
        .map_err(|e| Error::invalid("control address", addr.to_string(), e.to_string()))
}

/// Cues, page turns and remote control for one `follow` run, validated before the audio
/// starts ([`ShowSetup::load`]) and started with the capture ([`ShowSetup::start`]).
pub struct ShowSetup {
    cues: Vec<CueList>,
    control: Option<UdpSocket>,
}

/// A running show: the fired-cue logs and the control server.
pub struct Show {
    logs: Vec<FiredLog>,
    server: Option<ControlServer>,
    commands: Option<Receiver<ControlCommand>>,
    commander: Commander,
}

/// What a show did, for the end-of-run report (one line per fired cue).
#[derive(Clone, Debug, Default)]
pub struct ShowReport {
    /// Every fired cue, in firing order per cue file.
    pub fired: Vec<FiredCue>,
    /// Control messages accepted and refused.
    pub control: Option<(u64, u64)>,
}

impl std::fmt::Display for ShowReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.fired {
            if c.manual {
                writeln!(
                    f,
                    "cue {} fired by hand at {:.3} s",
                    c.id,
                    c.sent_wall_ns as f64 / 1e9
                )?;
            } else {
                writeln!(
                    f,
                    "cue {} (score {:.3} s) fired{} at perf {:.3} s, score {:.3} s; captured {:.3} s, sent {:.3} s",
                    c.id,
                    c.cue_score_s,
                    if c.skipped { " (skipped over)" } else { "" },
                    c.perf_time_s,
                    c.at_score_s,
                    c.capture_wall_ns as f64 / 1e9,
                    c.sent_wall_ns as f64 / 1e9
                )?;
            }
        }
        if let Some((ok, bad)) = self.control {
            writeln!(f, "remote control: {ok} messages accepted, {bad} refused")?;
        }
        Ok(())
    }
}

impl ShowSetup {
    /// Load and check everything: the cue file, the page file (its turns go to
    /// `osc_targets`, `page_lead_ms` early), and bind the control address.
    pub fn load(
        reference: &Reference,
        cues: Option<&Path>,
        pages: Option<&Path>,
        page_lead_ms: f64,
        osc_targets: &[SocketAddr],
        control: Option<&str>,
    ) -> crate::Result<Self> {
        let mut lists = Vec::new();
        if let Some(p) = cues {
            lists.push(CueList::load(p, reference)?);
        }
        if let Some(p) = pages {
            lists.push(CueList::load_pages(
                p,
                reference,
                page_lead_ms / 1000.0,
                osc_targets.to_vec(),
            )?);
        }
        let control = match control {
            Some(text) => {
                let addr = super::osc::parse_target(text).map_err(|e| match e {
                    Error::Invalid { value, reason, .. } => {
                        Error::invalid("control address", value, reason)
                    }
                    other => other,
                })?;
                Some(bind_control(addr)?)
            }
            None => None,
        };
        Ok(Self {
            cues: lists,
            control,
        })
    }

    /// The cue lists (cue files, then the page file), for display.
    pub fn cue_lists(&self) -> &[CueList] {
        &self.cues
    }

    /// Add a cue sink per list to `sinks` (times counted from the capture `epoch`) and start
    /// the control server; `/quit` sets `quit`.
    pub fn start(
        self,
        epoch: Instant,
        sinks: &mut Vec<Box<dyn Sink>>,
        reference: Arc<Reference>,
        quit: Arc<AtomicBool>,
    ) -> crate::Result<Show> {
        let mut logs = Vec::new();
        let mut handles = Vec::new();
        for list in self.cues {
            let sink = CueSink::new(list, epoch)?;
            logs.push(sink.log());
            handles.push(sink.cue_handle());
            sinks.push(Box::new(sink));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let commander = Commander::new(tx, handles, quit);
        let server = match self.control {
            Some(socket) => {
                let server = ControlServer::spawn_on(socket, reference, commander.clone())?;
                tracing::info!("remote control on {}", server.local_addr);
                Some(server)
            }
            None => None,
        };
        Ok(Show {
            logs,
            server,
            commands: Some(rx),
            commander,
        })
    }
}

impl Show {
    /// The receiver of control commands for [`crate::engine::FollowOptions::control`] (once).
    pub fn control_commands(&mut self) -> Option<Receiver<ControlCommand>> {
        self.commands.take()
    }

    /// The command path, for another transport (the browser's live view).
    pub fn commander(&self) -> Commander {
        self.commander.clone()
    }

    /// The logs of fired cues, one per cue list (they fill while following).
    pub fn fired_logs(&self) -> Vec<FiredLog> {
        self.logs.clone()
    }

    /// Stop the control server; what was fired.
    pub fn finish(&mut self) -> ShowReport {
        if let Some(s) = self.server.as_mut() {
            s.stop();
        }
        let stats = self.commander.stats();
        let control =
            (self.server.is_some() || stats.accepted.load(Ordering::Relaxed) > 0).then(|| {
                (
                    stats.accepted.load(Ordering::Relaxed),
                    stats.errors.load(Ordering::Relaxed),
                )
            });
        let fired = self
            .logs
            .iter()
            .flat_map(|l| l.lock().map(|v| v.clone()).unwrap_or_default())
            .collect();
        ShowReport { fired, control }
    }
}

/// Decode one control datagram (a message or a bundle, flattened) and interpret each message
/// with [`parse_request`]. A datagram that is not OSC gives one error paired with an empty
/// message. Never panics, whatever the bytes (fuzzed in the tests).
pub fn decode_requests(
    datagram: &[u8],
    timeline: Timeline<'_>,
) -> Vec<(Result<Request, String>, OscMessage)> {
    let mut messages = Vec::new();
    match rosc::decoder::decode_udp(datagram) {
        Err(e) => vec![(
            Err(format!("not an OSC packet: {e}")),
            OscMessage {
                addr: String::new(),
                args: vec![],
            },
        )],
        Ok((_, packet)) => {
            flatten(packet, &mut messages);
            messages
                .into_iter()
                .map(|m| (parse_request(&m, timeline), m))
                .collect()
        }
    }
}

fn flatten(packet: OscPacket, out: &mut Vec<OscMessage>) {
    match packet {
        OscPacket::Message(m) => out.push(m),
        OscPacket::Bundle(b) => b.content.into_iter().for_each(|p| flatten(p, out)),
    }
}

fn serve(socket: &UdpSocket, reference: &Reference, commander: &Commander, stop: &AtomicBool) {
    let timeline = Timeline::of(reference);
    let mut buf = vec![0u8; rosc::decoder::MTU];
    let mut out = Vec::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            // E.g. ICMP "port unreachable" from an earlier reply, reported on Linux.
            Err(_) => continue,
        };
        for (req, msg) in decode_requests(&buf[..n], timeline) {
            let reply = commander.answer(req, msg, &from.to_string());
            out.clear();
            if rosc::encoder::encode_into(&OscPacket::Message(reply), &mut out).is_ok() {
                let _ = socket.send_to(&out, from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureConfig;
    use crate::output::cues::{test_score, CueList, CueSink};
    use std::path::Path;

    fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: addr.into(),
            args,
        }
    }

    #[test]
    fn requests_parse_or_say_why_not() {
        let score = test_score();
        let tl = Timeline {
            score: Some(&score),
            duration_s: 8.0,
        };
        let ok = |m: OscMessage| parse_request(&m, tl).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok(msg("/scorefollow/stop", vec![])),
            Request::Engine(ControlCommand::Stop)
        );
        assert_eq!(
            ok(msg("/scorefollow/start", vec![])),
            Request::Engine(ControlCommand::Start)
        );
        assert_eq!(
            ok(msg("/scorefollow/reset", vec![])),
            Request::Engine(ControlCommand::Reset)
        );
        assert_eq!(
            ok(msg("/scorefollow/seek", vec![OscType::Float(2.5)])),
            Request::Engine(ControlCommand::Seek { score_s: 2.5 })
        );
        assert_eq!(
            ok(msg("/scorefollow/seek_bar", vec![OscType::Int(3)])),
            Request::Engine(ControlCommand::Seek { score_s: 4.0 })
        );
        assert_eq!(
            ok(msg("/scorefollow/seek_bar", vec![OscType::Float(2.0)])),
            Request::Engine(ControlCommand::Seek { score_s: 2.0 })
        );
        assert_eq!(
            ok(msg("/scorefollow/fire", vec![OscType::String("x".into())])),
            Request::Fire("x".into())
        );
        assert_eq!(ok(msg("/scorefollow/quit", vec![])), Request::Quit);
        for (m, needle) in [
            (msg("/scorefollow/seek", vec![]), "one number"),
            (
                msg("/scorefollow/seek", vec![OscType::Float(99.0)]),
                "outside the score",
            ),
            (
                msg("/scorefollow/seek_bar", vec![OscType::Int(9)]),
                "not in the score",
            ),
            (
                msg("/scorefollow/seek_bar", vec![OscType::Float(2.5)]),
                "one int",
            ),
            (
                msg("/scorefollow/fire", vec![OscType::Int(1)]),
                "one string",
            ),
            (
                msg("/scorefollow/stop", vec![OscType::Int(1)]),
                "no arguments",
            ),
            (msg("/scorefollow/jump", vec![]), "unknown address"),
        ] {
            let e = parse_request(&m, tl).err().unwrap_or_default();
            assert!(e.contains(needle), "{m:?}: {e}");
        }
    }

    /// Over a real socket: commands reach the channel and are acknowledged; garbage and
    /// unknown messages are counted and answered with an error; cues fire by hand.
    #[test]
    fn server_acks_commands_and_survives_garbage() {
        let cfg = FeatureConfig::default();
        let reference = Arc::new(Reference::from_score(
            test_score(),
            Path::new("unit.mid"),
            &cfg,
        ));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        client.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let cue_text = format!(
            "[[cue]]\nid = \"go\"\nbar = 2\ntargets = [\"{}\"]\n[[cue.message]]\naddress = \"/lights\"\n",
            client.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let list = CueList::parse(&cue_text, Path::new("c.toml"), Timeline::of(&reference))
            .unwrap_or_else(|e| panic!("{e}"));
        let sink = CueSink::new(list, std::time::Instant::now()).unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = crossbeam_channel::unbounded();
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!());
        let quit = Arc::new(AtomicBool::new(false));
        let commander = Commander::new(tx, vec![sink.cue_handle()], Arc::clone(&quit));
        let mut server =
            ControlServer::spawn(bind, reference, commander).unwrap_or_else(|e| panic!("{e}"));
        let send = |m: OscMessage| {
            let bytes =
                rosc::encoder::encode(&OscPacket::Message(m)).unwrap_or_else(|e| panic!("{e:?}"));
            client
                .send_to(&bytes, server.local_addr)
                .unwrap_or_else(|e| panic!("{e}"));
        };
        let mut buf = [0u8; rosc::decoder::MTU];
        let mut recv = || {
            let (n, _) = client.recv_from(&mut buf).unwrap_or_else(|e| panic!("{e}"));
            match rosc::decoder::decode_udp(&buf[..n]) {
                Ok((_, OscPacket::Message(m))) => m,
                other => panic!("{other:?}"),
            }
        };
        send(msg("/scorefollow/seek_bar", vec![OscType::Int(2)]));
        let ack = recv();
        assert_eq!(ack.addr, "/scorefollow/ack");
        assert_eq!(
            ack.args,
            vec![
                OscType::String("/scorefollow/seek_bar".into()),
                OscType::Int(2)
            ]
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)).ok(),
            Some(ControlCommand::Seek { score_s: 2.0 })
        );
        client
            .send_to(b"\x00garbage", server.local_addr)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = recv();
        assert_eq!(err.addr, "/scorefollow/error");
        assert_eq!(err.args.get(1), Some(&OscType::Int(1)));
        send(msg("/nope", vec![]));
        assert_eq!(recv().args.get(1), Some(&OscType::Int(2)));
        send(msg(
            "/scorefollow/fire",
            vec![OscType::String("missing".into())],
        ));
        assert_eq!(recv().args.get(1), Some(&OscType::Int(3)));
        send(msg("/scorefollow/fire", vec![OscType::String("go".into())]));
        // The cue's own message (to its target, this client) and the ack, in either order.
        let mut got = [recv().addr, recv().addr];
        got.sort();
        assert_eq!(got, ["/lights".to_string(), "/scorefollow/ack".to_string()]);
        send(msg("/scorefollow/stop", vec![]));
        assert_eq!(recv().addr, "/scorefollow/ack");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)).ok(),
            Some(ControlCommand::Stop)
        );
        assert!(!quit.load(Ordering::Relaxed));
        send(msg("/scorefollow/quit", vec![]));
        assert_eq!(recv().addr, "/scorefollow/ack");
        assert!(quit.load(Ordering::Relaxed));
        assert_eq!(server.stats.accepted.load(Ordering::Relaxed), 4);
        assert_eq!(server.stats.errors.load(Ordering::Relaxed), 3);
        server.stop();
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;
    use crate::output::cues::fuzz::{edits, mutate};
    use crate::output::cues::test_score;
    use proptest::prelude::*;

    fn timeline(s: &crate::score::Score) -> Timeline<'_> {
        Timeline {
            score: Some(s),
            duration_s: 8.0,
        }
    }

    const ADDRS: &[&str] = &[
        "/scorefollow/start",
        "/scorefollow/stop",
        "/scorefollow/reset",
        "/scorefollow/seek",
        "/scorefollow/seek_bar",
        "/scorefollow/fire",
        "/scorefollow/quit",
        "/scorefollow/",
        "/other",
        "/",
    ];

    fn arg() -> impl Strategy<Value = OscType> {
        prop_oneof![
            any::<i32>().prop_map(OscType::Int),
            any::<f32>().prop_map(OscType::Float),
            any::<f64>().prop_map(OscType::Double),
            any::<i64>().prop_map(OscType::Long),
            "[a-z0-9 ]{0,12}".prop_map(OscType::String),
            any::<bool>().prop_map(OscType::Bool),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(OscType::Blob),
            Just(OscType::Nil),
            Just(OscType::Inf),
            (-20.0f32..20.0).prop_map(OscType::Float),
            (-3i32..12).prop_map(OscType::Int),
        ]
    }

    fn message() -> impl Strategy<Value = OscMessage> {
        (0..ADDRS.len(), proptest::collection::vec(arg(), 0..3)).prop_map(|(a, args)| OscMessage {
            addr: ADDRS[a].to_string(),
            args,
        })
    }

    fn packet() -> impl Strategy<Value = OscPacket> {
        let leaf = message().prop_map(OscPacket::Message);
        leaf.prop_recursive(3, 12, 4, |inner| {
            (any::<(u32, u32)>(), proptest::collection::vec(inner, 0..4)).prop_map(
                |(t, content)| {
                    OscPacket::Bundle(rosc::OscBundle {
                        timetag: t.into(),
                        content,
                    })
                },
            )
        })
    }

    /// The contract for one datagram: an outcome per message (one error for a non-OSC
    /// datagram), every refusal with a reason, every accepted seek inside the score.
    fn check(out: &[(Result<Request, String>, OscMessage)]) -> Result<(), TestCaseError> {
        for (r, m) in out {
            match r {
                Ok(Request::Engine(ControlCommand::Seek { score_s })) => {
                    prop_assert!(
                        score_s.is_finite() && (0.0..=8.0).contains(score_s),
                        "{m:?}"
                    );
                }
                Ok(Request::Fire(id)) => prop_assert!(m.args.len() == 1, "{id}"),
                Ok(_) => prop_assert!(m.args.is_empty(), "{m:?}"),
                Err(reason) => prop_assert!(!reason.trim().is_empty()),
            }
        }
        Ok(())
    }

    fn count_messages(p: &OscPacket) -> usize {
        match p {
            OscPacket::Message(_) => 1,
            OscPacket::Bundle(b) => b.content.iter().map(count_messages).sum(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

        #[test]
        fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let s = test_score();
            let out = decode_requests(&bytes, timeline(&s));
            prop_assert!(!out.is_empty() || bytes.starts_with(b"#bundle"));
            check(&out)?;
        }

        #[test]
        fn random_packets_are_interpreted_one_by_one(p in packet()) {
            let s = test_score();
            let bytes = rosc::encoder::encode(&p).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let out = decode_requests(&bytes, timeline(&s));
            prop_assert_eq!(out.len(), count_messages(&p));
            check(&out)?;
        }

        #[test]
        fn mutated_packets_never_panic(p in packet(), e in edits(4)) {
            let s = test_score();
            let bytes = rosc::encoder::encode(&p).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            check(&decode_requests(&mutate(&bytes, &e), timeline(&s)))?;
        }
    }

    /// A non-OSC datagram is one refusal that says so.
    #[test]
    fn garbage_is_refused_with_a_reason() {
        let s = test_score();
        let out = decode_requests(b"hello", timeline(&s));
        assert_eq!(out.len(), 1);
        assert!(out[0]
            .0
            .as_ref()
            .err()
            .is_some_and(|e| e.starts_with("not an OSC packet")));
    }
}
