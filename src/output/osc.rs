//! OSC over UDP (rosc). Address reference:
//!
//! | address | arguments |
//! |---|---|
//! | `/scorefollow/position` | score_s f, beat f, bar i, tempo f, confidence f, spread_s f |
//! | `/scorefollow/status` | state s ("start", "drops", "end"), perf_time_s f, dropped_samples i, frames i |
//! | `/scorefollow/theme` | theme_id s, start_s f, end_s f, score f |
//!
//! Sending never blocks the pipeline: the socket is non-blocking and send errors (unreachable
//! host, full buffer) are counted, logged once, and otherwise ignored.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

/// Every OSC address scorefollow sends or answers, in one place (the contract receivers and
/// remote controls are written against; the README's OSC reference lists them).
pub mod address {
    /// The position, every frame or at `--osc-rate`.
    pub const POSITION: &str = "/scorefollow/position";
    /// A change of state: start, drops, end, relocated.
    pub const STATUS: &str = "/scorefollow/status";
    /// A theme occurrence.
    pub const THEME: &str = "/scorefollow/theme";
    /// A page turn.
    pub const PAGE: &str = "/scorefollow/page";
    /// Several places fit equally well: score_s f and bar i for each candidate.
    pub const AMBIGUOUS: &str = "/scorefollow/ambiguous";
    /// Remote control: resume.
    pub const START: &str = "/scorefollow/start";
    /// Remote control: pause.
    pub const STOP: &str = "/scorefollow/stop";
    /// Remote control: follow from the start position again.
    pub const RESET: &str = "/scorefollow/reset";
    /// Remote control: follow from a score time.
    pub const SEEK: &str = "/scorefollow/seek";
    /// Remote control: follow from a bar.
    pub const SEEK_BAR: &str = "/scorefollow/seek_bar";
    /// Remote control: fire a cue by hand.
    pub const FIRE: &str = "/scorefollow/fire";
    /// Remote control: end the run.
    pub const QUIT: &str = "/scorefollow/quit";
    /// Reply to an accepted control message.
    pub const ACK: &str = "/scorefollow/ack";
    /// Reply to a refused control message.
    pub const ERROR: &str = "/scorefollow/error";
}

use rosc::{OscMessage, OscPacket, OscType};

use super::{Event, Sink};
use crate::Error;

/// Parse and resolve a `HOST:PORT` target.
pub fn parse_target(text: &str) -> crate::Result<SocketAddr> {
    let bad = |reason: &str| Error::invalid("OSC target", text, reason);
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT, e.g. 127.0.0.1:9000"))?;
    if host.is_empty() {
        return Err(bad("missing host before ':'"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port must be a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve host: {e}")))?
        .next()
        .ok_or_else(|| bad("the host resolves to no address"))
}

/// Non-blocking UDP sending of OSC packets to IPv4 and IPv6 targets (one socket per family).
/// Failures (unreachable host, full buffer) are counted and logged once, never raised: a
/// receiver that is down must not stall the pipeline. Shared by the position and cue sinks.
pub(crate) struct UdpSender {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    buf: Vec<u8>,
    /// Packets that could not be encoded or datagrams that could not be sent.
    pub errors: u64,
}

impl UdpSender {
    /// Bind the sockets `targets` need.
    pub fn new(targets: impl Iterator<Item = SocketAddr> + Clone) -> crate::Result<Self> {
        let bind = |addr: &str| -> crate::Result<UdpSocket> {
            let s = UdpSocket::bind(addr).map_err(|e| Error::Other(format!("OSC socket: {e}")))?;
            s.set_nonblocking(true)
                .map_err(|e| Error::Other(format!("OSC socket: {e}")))?;
            Ok(s)
        };
        Ok(Self {
            v4: if targets.clone().any(|t| t.is_ipv4()) {
                Some(bind("0.0.0.0:0")?)
            } else {
                None
            },
            v6: if targets.clone().any(|t| t.is_ipv6()) {
                Some(bind("[::]:0")?)
            } else {
                None
            },
            buf: Vec::with_capacity(512),
            errors: 0,
        })
    }

    /// Encode `packet` once and send it to every target; `what` names the sender in the log.
    pub fn send(&mut self, packet: &OscPacket, targets: &[SocketAddr], what: &str) {
        self.buf.clear();
        if rosc::encoder::encode_into(packet, &mut self.buf).is_err() {
            self.errors += 1;
            return;
        }
        for t in targets {
            let sock = if t.is_ipv4() {
                self.v4.as_ref()
            } else {
                self.v6.as_ref()
            };
            match sock.map(|s| s.send_to(&self.buf, t)) {
                Some(Ok(_)) => {}
                _ => {
                    if self.errors == 0 {
                        tracing::warn!(
                            "{what}: OSC send to {t} failed; further failures are only counted"
                        );
                    }
                    self.errors += 1;
                }
            }
        }
    }
}

/// Sends events to one or more OSC targets.
pub struct OscSink {
    sender: UdpSender,
    targets: Vec<SocketAddr>,
    /// Minimum audio time between two position messages (s); 0 = every frame.
    position_interval_s: f64,
    next_position_s: f64,
    latency_log: Option<(std::time::Instant, LatencyLog)>,
}

/// (capture_wall_ns, sent_wall_ns) of every position datagram sent, both in ns since the
/// capture epoch: the frame's newest sample entering the ring, and the datagram leaving.
pub type LatencyLog = std::sync::Arc<std::sync::Mutex<Vec<(u64, u64)>>>;

impl OscSink {
    /// Bind sockets for `targets`; `rate_hz` limits position messages (None = every frame).
    pub fn new(targets: Vec<SocketAddr>, rate_hz: Option<f64>) -> crate::Result<Self> {
        let sender = UdpSender::new(targets.iter().copied())?;
        let position_interval_s = match rate_hz {
            Some(r) if r > 0.0 => 1.0 / r,
            _ => 0.0,
        };
        Ok(Self {
            sender,
            targets,
            position_interval_s,
            next_position_s: f64::NEG_INFINITY,
            latency_log: None,
        })
    }

    /// Record (capture, sent) wall times of every position datagram against `epoch` (the
    /// capture's epoch); returns the shared log.
    pub fn log_latency(&mut self, epoch: std::time::Instant) -> LatencyLog {
        let log = LatencyLog::default();
        self.latency_log = Some((epoch, log.clone()));
        log
    }

    fn send(&mut self, addr: &str, args: Vec<OscType>) {
        let packet = OscPacket::Message(OscMessage {
            addr: addr.to_string(),
            args,
        });
        self.sender.send(&packet, &self.targets, "scorefollow");
    }
}

impl Sink for OscSink {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        match event {
            Event::Position(p) => {
                // A fixed grid of send times (with a tolerance for the frame times' rounding),
                // so the rate does not drift below the one asked for.
                if p.perf_time_s + 1e-6 < self.next_position_s {
                    return Ok(());
                }
                self.next_position_s = if self.next_position_s.is_finite()
                    && p.perf_time_s - self.next_position_s < self.position_interval_s
                {
                    self.next_position_s + self.position_interval_s
                } else {
                    p.perf_time_s + self.position_interval_s
                };
                let beat = if p.beat.is_finite() {
                    p.beat as f32
                } else {
                    -1.0
                };
                self.send(
                    address::POSITION,
                    vec![
                        OscType::Float(p.score_time_s as f32),
                        OscType::Float(beat),
                        OscType::Int(p.bar),
                        OscType::Float(p.tempo),
                        OscType::Float(p.confidence),
                        OscType::Float(p.spread_s),
                    ],
                );
                if let Some((epoch, log)) = self.latency_log.as_ref() {
                    let sent = epoch.elapsed().as_nanos() as u64;
                    if let Ok(mut v) = log.lock() {
                        v.push((p.capture_wall_ns, sent));
                    }
                }
            }
            Event::Status(s) => self.send(
                address::STATUS,
                vec![
                    OscType::String(s.kind.as_str().to_string()),
                    OscType::Float(s.perf_time_s as f32),
                    OscType::Int(s.dropped_samples.min(i32::MAX as u64) as i32),
                    OscType::Int(s.frames.min(i32::MAX as u64) as i32),
                ],
            ),
            Event::Ambiguous(a) => self.send(
                address::AMBIGUOUS,
                a.candidates
                    .iter()
                    .flat_map(|c| [OscType::Float(c.score_s as f32), OscType::Int(c.bar)])
                    .collect(),
            ),
            // Sent as a `relocated` status, the message receivers already know.
            Event::Relocation(_) => {}
            Event::Theme(t) => self.send(
                address::THEME,
                vec![
                    OscType::String(t.theme_id.clone()),
                    OscType::Float(t.start_s as f32),
                    OscType::Float(t.end_s as f32),
                    OscType::Float(t.score),
                ],
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_fail_clearly() {
        assert_eq!(
            parse_target("127.0.0.1:9000").ok(),
            Some("127.0.0.1:9000".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert!(parse_target("localhost:57120").is_ok());
        assert!(parse_target("[::1]:9000").is_ok());
        for bad in [
            "",
            "9000",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            ":9000",
            "no.such.host.invalid:9000",
        ] {
            let e = parse_target(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("OSC target"), "{bad}: {e}");
        }
    }

    #[test]
    fn position_message_round_trips_over_udp() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .ok();
        let addr = rx.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut sink = OscSink::new(vec![addr], None).unwrap_or_else(|e| panic!("{e}"));
        let ev = super::super::PositionEvent {
            score_time_s: 12.5,
            heard_score_s: 12.5,
            beat: 25.0,
            bar: 7,
            tempo: 1.1,
            confidence: 0.9,
            spread_s: 0.05,
            ..Default::default()
        };
        sink.handle(&Event::Position(ev))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; rosc::decoder::MTU];
        let (n, _) = rx.recv_from(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        let (_, packet) = rosc::decoder::decode_udp(&buf[..n]).unwrap_or_else(|e| panic!("{e:?}"));
        let OscPacket::Message(msg) = packet else {
            panic!("not a message")
        };
        assert_eq!(msg.addr, "/scorefollow/position");
        assert_eq!(
            msg.args,
            vec![
                OscType::Float(12.5),
                OscType::Float(25.0),
                OscType::Int(7),
                OscType::Float(1.1),
                OscType::Float(0.9),
                OscType::Float(0.05)
            ]
        );
    }
}
