//! OSC over UDP (rosc). Address reference:
//!
//! | address | arguments |
//! |---|---|
//! | `/scorefollow/position` | score_s f, beat f, bar i, tempo f, confidence f, spread_s f, pass i, page i, system i, label s |
//! | `/scorefollow/status` | state s ("start", "drops", "relocated", "end"), perf_time_s f, dropped_samples i, frames i |
//! | `/scorefollow/theme` | theme_id s, start_s f, end_s f, score f |
//!
//! Sending never blocks the pipeline: the socket is non-blocking and send errors (unreachable
//! host, full buffer) are counted per target, the first one logged with the system's error,
//! and otherwise ignored; each sink reports them at the end ([`TargetReport`]).
//!
//! Broadcast and multicast targets work as any other: the IPv4 socket may broadcast
//! (`SO_BROADCAST`, so `192.168.1.255:9000` or `255.255.255.255:9000` reach every receiver
//! of the subnet), and multicast datagrams (`239.1.2.3:9000`) leave with the TTL and through
//! the interface of [`SendOptions`].

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};

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

/// How datagrams leave the sending sockets (added in this version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendOptions {
    /// Hops a multicast datagram may make (IPv4 TTL, IPv6 hop limit): 1 (the default) keeps
    /// it on the local network, as a show network wants.
    pub multicast_ttl: u32,
    /// Local address of the interface IPv4 multicast leaves by (`IP_MULTICAST_IF`); `None`
    /// lets the routing table choose (usually the default route's interface).
    pub multicast_interface: Option<Ipv4Addr>,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            multicast_ttl: 1,
            multicast_interface: None,
        }
    }
}

/// What became of the datagrams sent to one target over a run (added in this version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetReport {
    /// The receiver.
    pub target: SocketAddr,
    /// Datagrams handed to the system.
    pub sent: u64,
    /// Datagrams the system refused (no route, no permission, buffer full, too large).
    pub failed: u64,
    /// The system's first refusal, as text.
    pub first_error: Option<String>,
}

impl std::fmt::Display for TargetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OSC to {}: {} of {} datagrams failed",
            self.target,
            self.failed,
            self.sent + self.failed
        )?;
        if let Some(e) = &self.first_error {
            write!(f, ", first: {e}")?;
        }
        Ok(())
    }
}

/// Merge the reports of several senders by target (sums; the first error seen is kept),
/// in order of first appearance.
pub fn merge_reports(reports: impl IntoIterator<Item = TargetReport>) -> Vec<TargetReport> {
    let mut out: Vec<TargetReport> = Vec::new();
    for r in reports {
        match out.iter_mut().find(|o| o.target == r.target) {
            Some(o) => {
                o.sent += r.sent;
                o.failed += r.failed;
                if o.first_error.is_none() {
                    o.first_error = r.first_error;
                }
            }
            None => out.push(r),
        }
    }
    out
}

/// Non-blocking UDP sending of OSC packets to IPv4 and IPv6 targets (one socket per family).
/// Failures (unreachable host, full buffer) are counted per target and the first of each
/// target is logged with the system's error, never raised: a receiver that is down must not
/// stall the pipeline. Shared by the position and cue sinks.
pub(crate) struct UdpSender {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    buf: Vec<u8>,
    /// One per target, registered when the sender is made (no allocation when sending).
    reports: Vec<TargetReport>,
    /// Packets that could not be encoded or datagrams that could not be sent.
    pub errors: u64,
}

fn socket_err(what: &str, e: std::io::Error) -> Error {
    Error::Other(format!("OSC socket: {what}: {e}"))
}

impl UdpSender {
    /// Bind the sockets `targets` need, with `opts` (a multicast interface that is not an
    /// address of this host is an error here, before anything is sent).
    pub fn new(
        targets: impl Iterator<Item = SocketAddr> + Clone,
        opts: &SendOptions,
    ) -> crate::Result<Self> {
        let bind = |addr: &str| -> crate::Result<UdpSocket> {
            let s = UdpSocket::bind(addr).map_err(|e| socket_err("bind", e))?;
            s.set_nonblocking(true)
                .map_err(|e| socket_err("non-blocking", e))?;
            Ok(s)
        };
        let v4 = if targets.clone().any(|t| t.is_ipv4()) {
            let s = bind("0.0.0.0:0")?;
            // Whether an address is a subnet's broadcast address depends on the netmask, which
            // a sender does not know; without the flag such a send fails with EACCES.
            s.set_broadcast(true)
                .map_err(|e| socket_err("SO_BROADCAST", e))?;
            s.set_multicast_ttl_v4(opts.multicast_ttl)
                .map_err(|e| socket_err("multicast TTL", e))?;
            if let Some(ifaddr) = opts.multicast_interface {
                sys::set_multicast_if_v4(&s, ifaddr).map_err(|e| {
                    Error::invalid(
                        "OSC multicast interface",
                        ifaddr.to_string(),
                        format!("not an address of this host's interfaces ({e})"),
                    )
                })?;
            }
            Some(s)
        } else {
            None
        };
        let v6 = if targets.clone().any(|t| t.is_ipv6()) {
            let s = bind("[::]:0")?;
            if targets
                .clone()
                .any(|t| t.ip().is_multicast() && t.is_ipv6())
            {
                sys::set_multicast_hops_v6(&s, opts.multicast_ttl)
                    .map_err(|e| socket_err("multicast hop limit", e))?;
            }
            Some(s)
        } else {
            None
        };
        let mut reports: Vec<TargetReport> = Vec::new();
        for t in targets {
            if !reports.iter().any(|r| r.target == t) {
                reports.push(TargetReport {
                    target: t,
                    sent: 0,
                    failed: 0,
                    first_error: None,
                });
            }
        }
        Ok(Self {
            v4,
            v6,
            buf: Vec::with_capacity(512),
            reports,
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
            let result = match sock {
                Some(s) => s.send_to(&self.buf, t).map(|_| ()),
                None => Err(std::io::Error::other("no socket for this address family")),
            };
            let Some(r) = self.reports.iter_mut().find(|r| r.target == *t) else {
                continue;
            };
            match result {
                Ok(()) => r.sent += 1,
                Err(e) => {
                    if r.failed == 0 {
                        tracing::warn!(
                            "{what}: OSC send to {t} failed: {e}; further failures to {t} are only counted"
                        );
                        r.first_error = Some(e.to_string());
                    }
                    r.failed += 1;
                    self.errors += 1;
                }
            }
        }
    }

    /// Per target: datagrams sent and failed, the first error.
    pub fn reports(&self) -> &[TargetReport] {
        &self.reports
    }
}

/// The socket options std does not offer.
#[cfg(unix)]
mod sys {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::os::fd::AsRawFd;

    fn setsockopt<T>(
        s: &UdpSocket,
        level: libc::c_int,
        name: libc::c_int,
        value: &T,
    ) -> std::io::Result<()> {
        // SAFETY: `value` points to a live `T` of the size given, as the option expects.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                level,
                name,
                (value as *const T).cast::<libc::c_void>(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// `IP_MULTICAST_IF`: IPv4 multicast leaves through the interface with this address.
    pub fn set_multicast_if_v4(s: &UdpSocket, ifaddr: Ipv4Addr) -> std::io::Result<()> {
        let addr = libc::in_addr {
            s_addr: u32::from(ifaddr).to_be(),
        };
        setsockopt(s, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &addr)
    }

    /// `IPV6_MULTICAST_HOPS`: the hop limit of IPv6 multicast.
    pub fn set_multicast_hops_v6(s: &UdpSocket, hops: u32) -> std::io::Result<()> {
        let hops = hops.min(255) as libc::c_int;
        setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)
    }
}

#[cfg(not(unix))]
mod sys {
    use std::net::{Ipv4Addr, UdpSocket};

    pub fn set_multicast_if_v4(_s: &UdpSocket, _ifaddr: Ipv4Addr) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "choosing the multicast interface is supported on Unix only",
        ))
    }

    pub fn set_multicast_hops_v6(_s: &UdpSocket, _hops: u32) -> std::io::Result<()> {
        Ok(())
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
        Self::with_options(targets, rate_hz, &SendOptions::default())
    }

    /// As [`OscSink::new`], the sockets set up with `opts` (multicast TTL and interface).
    pub fn with_options(
        targets: Vec<SocketAddr>,
        rate_hz: Option<f64>,
        opts: &SendOptions,
    ) -> crate::Result<Self> {
        let sender = UdpSender::new(targets.iter().copied(), opts)?;
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
                        // Appended after the six of earlier versions: receivers reading
                        // six arguments by position keep working.
                        OscType::Int(p.pass.min(i32::MAX as u32) as i32),
                        OscType::Int(p.page.min(i32::MAX as u32) as i32),
                        OscType::Int(p.system.min(i32::MAX as u32) as i32),
                        OscType::String(p.label.as_str().to_string()),
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

    fn delivery(&self) -> Vec<TargetReport> {
        self.sender.reports().to_vec()
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

    /// The IPv4 socket may broadcast and carries the multicast TTL asked for; the IPv6 one
    /// exists only for IPv6 targets.
    #[test]
    fn sockets_are_set_up_for_broadcast_and_multicast() {
        let targets: Vec<SocketAddr> = vec![
            "127.255.255.255:9".parse().unwrap(),
            "239.1.2.3:9".parse().unwrap(),
        ];
        let opts = SendOptions {
            multicast_ttl: 4,
            multicast_interface: Some(Ipv4Addr::LOCALHOST),
        };
        let s = UdpSender::new(targets.iter().copied(), &opts).unwrap();
        let v4 = s.v4.as_ref().unwrap();
        assert!(v4.broadcast().unwrap());
        assert_eq!(v4.multicast_ttl_v4().unwrap(), 4);
        assert!(s.v6.is_none());
        assert_eq!(s.reports().len(), 2);
        // An interface address this host does not have is refused, naming it.
        let bad = SendOptions {
            multicast_ttl: 1,
            multicast_interface: Some(Ipv4Addr::new(203, 0, 113, 7)),
        };
        let e = UdpSender::new(targets.iter().copied(), &bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("203.0.113.7"), "{e}");
    }

    /// A send to the loopback's broadcast address arrives at a receiver bound to 0.0.0.0
    /// (without SO_BROADCAST it fails with EACCES).
    #[test]
    fn broadcast_reaches_a_wildcard_receiver() {
        let rx = UdpSocket::bind("0.0.0.0:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .ok();
        let port = rx.local_addr().unwrap().port();
        let to: SocketAddr = format!("127.255.255.255:{port}").parse().unwrap();
        let plain = UdpSocket::bind("0.0.0.0:0").unwrap();
        assert_eq!(
            plain.send_to(b"x", to).map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::PermissionDenied),
            "this system delivers loopback broadcast without SO_BROADCAST"
        );
        let mut s = UdpSender::new([to].into_iter(), &SendOptions::default()).unwrap();
        let packet = OscPacket::Message(OscMessage {
            addr: address::PAGE.into(),
            args: vec![OscType::Int(2)],
        });
        s.send(&packet, &[to], "test");
        let mut buf = [0u8; 256];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert!(n > 0);
        assert_eq!(s.reports()[0].sent, 1);
        assert_eq!(s.reports()[0].failed, 0);
    }

    /// Failures are counted per target with the system's first error; reports of several
    /// senders merge by target.
    #[test]
    fn failures_are_reported_per_target_with_the_error() {
        let ok: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut s = UdpSender::new([ok].into_iter(), &SendOptions::default()).unwrap();
        let small = OscPacket::Message(OscMessage {
            addr: "/a".into(),
            args: vec![],
        });
        // Larger than any UDP datagram can be: EMSGSIZE.
        let huge = OscPacket::Message(OscMessage {
            addr: "/a".into(),
            args: vec![OscType::Blob(vec![0; 70_000])],
        });
        s.send(&small, &[ok], "test");
        s.send(&huge, &[ok], "test");
        s.send(&huge, &[ok], "test");
        let r = s.reports()[0].clone();
        assert_eq!((r.sent, r.failed), (1, 2));
        let e = r.first_error.clone().unwrap_or_default();
        assert!(e.contains("os error"), "{e}");
        assert_eq!(
            r.to_string(),
            format!("OSC to 127.0.0.1:9: 2 of 3 datagrams failed, first: {e}")
        );
        let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let merged = merge_reports([
            TargetReport {
                target: ok,
                sent: 5,
                failed: 0,
                first_error: None,
            },
            TargetReport {
                target: other,
                sent: 1,
                failed: 0,
                first_error: None,
            },
            r,
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!((merged[0].sent, merged[0].failed), (6, 2));
        assert_eq!(merged[0].first_error, Some(e));
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
            pass: 2,
            page: 3,
            system: 4,
            label: "7a".into(),
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
                OscType::Float(0.05),
                OscType::Int(2),
                OscType::Int(3),
                OscType::Int(4),
                OscType::String("7a".into())
            ]
        );
    }
}
