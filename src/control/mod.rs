//! Remote control, the command input edge: `/scorefollow/...` messages over OSC become
//! [`ControlCommand`]s for the follow loop ([`crate::engine::follow`] applies them between
//! audio blocks) or fire cues by hand. [`server`] is the UDP server thread, [`show`] wires cue
//! lists, page turns and the server for one `follow` run.
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
//! Only senders on the server's [`AllowList`] are heard (by default this host's 127.0.0.1
//! and ::1 and the /24 of each IPv4 OSC target); datagrams from anyone else are counted and
//! dropped without an answer.
//!
//! Every accepted message is answered, to the address it came from, with
//! `/scorefollow/ack` (the address received, then its arguments). A malformed or unknown
//! message is counted and answered with `/scorefollow/error` (reason s, errors so far i);
//! it never stops the server. The same messages come from the browser's live view
//! ([`crate::web::live`]); both are carried out and answered by one [`Commander`].

pub mod allow;
pub mod commander;
pub mod server;
pub mod show;

use rosc::{OscMessage, OscPacket, OscType};

use crate::output::cues::Timeline;
use crate::output::osc::address;
pub use allow::{AllowList, AllowNet};
pub use commander::Commander;
pub use server::{bind_control, ControlServer, ControlStats};
pub use show::{Show, ShowReport, ShowSetup};

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
        address::START => no_args(Request::Engine(ControlCommand::Start)),
        address::STOP => no_args(Request::Engine(ControlCommand::Stop)),
        address::RESET => no_args(Request::Engine(ControlCommand::Reset)),
        address::QUIT => no_args(Request::Quit),
        address::SEEK => match (msg.args.len(), number(msg.args.first())) {
            (1, Some(s)) if s.is_finite() && (0.0..=timeline.duration_s).contains(&s) => {
                Ok(Request::Engine(ControlCommand::Seek { score_s: s }))
            }
            (1, Some(s)) => Err(format!(
                "{}: {s} s is outside the score (0 to {:.3} s)",
                address::SEEK,
                timeline.duration_s
            )),
            _ => Err(format!("{} takes one number: score_s", address::SEEK)),
        },
        address::SEEK_BAR => match msg.args.as_slice() {
            // Pd and Max send numbers as floats; a whole float is a bar number too.
            [a @ (OscType::Int(_) | OscType::Float(_))]
                if number(Some(a)).is_some_and(|b| b.fract() == 0.0 && b.abs() < 1e9) =>
            {
                let bar = number(Some(a)).unwrap_or(0.0) as i64;
                timeline
                    .s_at_bar_beat(bar, 1.0)
                    .map(|score_s| Request::Engine(ControlCommand::Seek { score_s }))
                    .map_err(|r| format!("{}: {r}", address::SEEK_BAR))
            }
            _ => Err(format!("{} takes one int: bar", address::SEEK_BAR)),
        },
        address::FIRE => match msg.args.as_slice() {
            [OscType::String(id)] => Ok(Request::Fire(id.clone())),
            _ => Err(format!("{} takes one string: the cue id", address::FIRE)),
        },
        other => Err(format!("unknown address {other}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureConfig;
    use crate::output::cues::{CueList, CueSink};
    use crate::score::reference::{Reference, ScoreRendering};
    use crate::test_util::test_score;
    use std::net::{SocketAddr, UdpSocket};
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

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
            &ScoreRendering::default(),
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
        let quit = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let commander = Commander::new(tx, vec![sink.cue_handle()], Arc::clone(&quit));
        let mut server =
            ControlServer::spawn(bind, reference, commander, AllowList::default_for(&[]))
                .unwrap_or_else(|e| panic!("{e}"));
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
mod allow_tests {
    use super::*;
    use crate::features::FeatureConfig;
    use crate::score::reference::{Reference, ScoreRendering};
    use crate::test_util::test_score;
    use std::net::{SocketAddr, UdpSocket};
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// With `--control-allow 127.0.0.2`, that sender is obeyed and answered; 127.0.0.1, not
    /// on the list, is ignored without an answer and counted.
    #[test]
    fn only_allowed_senders_are_obeyed_and_answered() {
        let reference = Arc::new(Reference::from_score(
            test_score(),
            Path::new("unit.mid"),
            &FeatureConfig::default(),
            &ScoreRendering::default(),
        ));
        let (tx, rx) = crossbeam_channel::unbounded();
        let quit = Arc::new(AtomicBool::new(false));
        let commander = Commander::new(tx, vec![], Arc::clone(&quit));
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!());
        let allow = AllowList::new(vec!["127.0.0.2".parse().unwrap_or_else(|e| panic!("{e}"))]);
        let mut server = ControlServer::spawn(bind, reference, commander, allow)
            .unwrap_or_else(|e| panic!("{e}"));
        let stop = rosc::encoder::encode(&OscPacket::Message(OscMessage {
            addr: "/scorefollow/stop".into(),
            args: vec![],
        }))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let mut buf = [0u8; 512];
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        stranger
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok();
        for _ in 0..2 {
            stranger.send_to(&stop, server.local_addr).ok();
        }
        assert!(
            stranger.recv_from(&mut buf).is_err(),
            "a stranger was answered"
        );
        assert!(rx.try_recv().is_err(), "a stranger was obeyed");
        let desk = UdpSocket::bind("127.0.0.2:0").unwrap_or_else(|e| panic!("{e}"));
        desk.set_read_timeout(Some(Duration::from_secs(2))).ok();
        desk.send_to(&stop, server.local_addr).ok();
        let (n, _) = desk.recv_from(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        match rosc::decoder::decode_udp(&buf[..n]) {
            Ok((_, OscPacket::Message(m))) => assert_eq!(m.addr, "/scorefollow/ack"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)).ok(),
            Some(ControlCommand::Stop)
        );
        assert_eq!(server.stats.refused.load(Ordering::Relaxed), 2);
        assert_eq!(server.stats.accepted.load(Ordering::Relaxed), 1);
        assert_eq!(server.stats.errors.load(Ordering::Relaxed), 0);
        server.stop();
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;
    use crate::test_util::fuzz::{edits, mutate};
    use crate::test_util::test_score;
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
