//! Show control end to end: the bundled Bach cue list fired by the follower while the
//! performance is replayed at a real pace, received on a real UDP socket and timed against
//! the ground truth; and `follow` with --cues, --pages and --control as a program.
//!
//! The replay runs at 4x real time by default to keep the suite fast; set
//! `SCOREFOLLOW_SHOW_SPEED=1` for real time (39 s). Lateness is measured on the performance
//! timeline, so it is comparable between paces: the time the datagram arrived, minus the
//! capture time of the frame that fired it, scaled by the pace, added to that frame's audio
//! time.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};
use scorefollow::audio::replay::{ReplayOptions, Speed};
use scorefollow::audio::Capture;
use scorefollow::engine::{FollowConfig, Source};
use scorefollow::eval;
use scorefollow::output::cues::{CueList, CueSink, Timeline};
use scorefollow::output::Sink;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bach() -> PathBuf {
    root().join("scores/bach_bwv66_6")
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sf_show_{}_{name}", std::process::id()));
    std::fs::write(&p, text).expect("write");
    p
}

/// The bundled cue file with its named targets sent to `addr`.
fn cues_to(addr: &str) -> String {
    let text = std::fs::read_to_string(bach().join("cues.toml")).expect("cues.toml");
    let text = text
        .replace("qlab = \"127.0.0.1:53000\"", &format!("qlab = \"{addr}\""))
        .replace(
            "lights = \"127.0.0.1:7000\"",
            &format!("lights = \"{addr}\""),
        );
    assert_eq!(
        text.matches(addr).count(),
        2,
        "the targets of cues.toml changed"
    );
    text
}

fn decode(buf: &[u8]) -> OscMessage {
    match rosc::decoder::decode_udp(buf) {
        Ok((_, OscPacket::Message(m))) => m,
        other => panic!("{other:?}"),
    }
}

/// Performance time (s) at which the ground truth crosses score time `s`.
fn truth_crossing(gt: &(Vec<f64>, Vec<f64>), s: f64) -> f64 {
    let (perf, score) = gt;
    let i = score.partition_point(|&x| x < s);
    assert!(
        i > 0 && i < score.len(),
        "score time {s} outside the ground truth"
    );
    let (x0, x1, y0, y1) = (perf[i - 1], perf[i], score[i - 1], score[i]);
    x0 + (x1 - x0) * (s - y0) / (y1 - y0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

/// Each cue of scores/bach_bwv66_6/cues.toml fires once, in score order, and its datagrams
/// arrive within 150 ms (p90) of the ground-truth crossing time (minus the cue's lead). The
/// cues on the chord after a fermata (marked "after the fermata" in the file) are a known
/// weakness, measured apart: the organ's beating in the held chord reads as attacks of the
/// next one and they fire 0.7-1.5 s early; they must not get worse than 2 s.
#[test]
fn bundled_cues_fire_once_in_order_near_the_truth() {
    let speed: f64 = std::env::var("SCOREFOLLOW_SHOW_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    crate::common::enlarge_receive_buffer(&rx);
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let addr = rx.local_addr().expect("addr").to_string();
    let reference = crate::common::score_reference(&bach().join("score.mid"));
    let list = CueList::parse(
        &cues_to(&addr),
        &bach().join("cues.toml"),
        Timeline::of(&reference),
    )
    .expect("the bundled cue file is valid");
    let n_cues = list.cues.len();
    // Datagrams per firing, and the first message of each cue (unique, to recognise it).
    let per_cue: Vec<(String, usize, OscMessage, f64, f64)> = list
        .cues
        .iter()
        .map(|c| {
            let n = c.messages.len() * c.targets.len();
            (
                c.id.clone(),
                n,
                c.messages[0].clone(),
                c.point.score_s,
                c.point.lead_s,
            )
        })
        .collect();
    for (i, a) in per_cue.iter().enumerate() {
        assert!(
            per_cue[..i].iter().all(|b| b.2 != a.2),
            "first message of {} not unique",
            a.0
        );
    }

    let capture = Capture::replay(
        &bach().join("performance.flac"),
        ReplayOptions {
            speed: Speed::Factor(speed),
            ..ReplayOptions::default()
        },
    )
    .expect("replay");
    let epoch = capture.epoch;
    let sink = CueSink::new(list, epoch).expect("sink");
    let log = sink.log();
    let sinks: Vec<Box<dyn Sink>> = vec![Box::new(sink)];
    let follower = std::thread::spawn(move || {
        scorefollow::follow(
            &FollowConfig::default(),
            Source::new(reference, capture),
            sinks,
        )
    });
    let mut received: Vec<(u64, OscMessage)> = Vec::new();
    let mut buf = [0u8; rosc::decoder::MTU];
    loop {
        match rx.recv_from(&mut buf) {
            Ok((n, _)) => received.push((epoch.elapsed().as_nanos() as u64, decode(&buf[..n]))),
            Err(_) if follower.is_finished() => break,
            Err(_) => {}
        }
    }
    let summary = follower.join().expect("join").expect("run");
    assert_eq!(summary.dropped_samples, 0);

    let fired = log.lock().expect("log").clone();
    let ids: Vec<&str> = fired.iter().map(|f| f.id.as_str()).collect();
    let expected: Vec<&str> = per_cue.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids, expected, "each cue once, in score order");
    assert!(fired.iter().all(|f| !f.skipped && !f.manual));
    assert_eq!(
        received.len(),
        per_cue.iter().map(|c| c.1).sum::<usize>(),
        "every message to every target arrived"
    );

    let gt = eval::read_xy(&bach().join("gt.csv")).expect("gt");
    let cue_file = std::fs::read_to_string(bach().join("cues.toml")).expect("cue file");
    let after_fermata: Vec<&str> = cue_file
        .lines()
        .filter(|l| l.contains("# after the fermata"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(
        !after_fermata.is_empty(),
        "the example has cues after fermatas"
    );
    let mut late_ms = Vec::new();
    let mut fermata_late_ms = Vec::new();
    let mut table = String::new();
    for (cue, f) in per_cue.iter().zip(&fired) {
        let arrival_ns = received
            .iter()
            .find(|(_, m)| *m == cue.2)
            .map(|r| r.0)
            .expect("datagram of the cue");
        // The wall time from the frame's capture to the datagram is what a show at real pace
        // waits on top of the firing position; scaled by the replay speed, a single
        // scheduling hiccup on a busy machine (21 ms in one CI run) counted four times over.
        let arrival_perf_s =
            f.perf_time_s + arrival_ns.saturating_sub(f.capture_wall_ns) as f64 / 1e9;
        let truth_s = truth_crossing(&gt, cue.3) - cue.4;
        let late = 1000.0 * (arrival_perf_s - truth_s);
        table += &format!(
            "{:<18} score {:>7.3} s  truth {:>7.3} s  arrived {:>7.3} s  late {:>+7.1} ms  (frame->datagram {:.2} ms wall)\n",
            cue.0,
            cue.3,
            truth_s,
            arrival_perf_s,
            late,
            arrival_ns.saturating_sub(f.capture_wall_ns) as f64 / 1e6
        );
        if after_fermata.contains(&cue.0.as_str()) {
            fermata_late_ms.push(late);
        } else {
            late_ms.push(late);
        }
    }
    let mut abs: Vec<f64> = late_ms.iter().map(|x| x.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let p90 = percentile(&abs, 90.0);
    eprintln!(
        "{table}{} cues not after a fermata at {speed}x: |error| p50 {:.0} ms, p90 {p90:.0} ms, max {:.0} ms",
        n_cues - fermata_late_ms.len(),
        percentile(&abs, 50.0),
        abs[abs.len() - 1]
    );
    eprintln!("after the fermatas: {fermata_late_ms:.0?} ms");
    assert!(p90 <= 150.0, "p90 {p90:.0} ms\n{table}");
    assert!(
        fermata_late_ms.iter().all(|&l| l > -2000.0 && l < 300.0),
        "{fermata_late_ms:?}\n{table}"
    );
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scorefollow"))
}

/// A bad cue or page file stops `follow` before any audio with one line naming file and line.
#[test]
fn follow_rejects_bad_show_files_by_line() {
    let score = bach().join("score.mid");
    let perf = bach().join("performance.flac");
    let run_err = |extra: &[&str]| {
        let out = bin()
            .args(["follow", "--speed", "max", "--print-every", "0", "--replay"])
            .arg(&perf)
            .arg("--score")
            .arg(&score)
            .args(extra)
            .output()
            .expect("run");
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && !e.contains("panicked"),
            "{extra:?}: {e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        e
    };
    let bad_bar = tmp(
        "bar.toml",
        &cues_to("127.0.0.1:9").replace("bar = 6\n", "bar = 12\n"),
    );
    let e = run_err(&["--cues", bad_bar.to_str().expect("p")]);
    assert!(
        e.contains("bar.toml:98:") && e.contains("bar 12 beat 1 is not in the score (bars 1 to 9)"),
        "{e}"
    );
    let bad_marker = tmp(
        "marker.toml",
        &cues_to("127.0.0.1:9").replace("score_s = 22.5", "marker = \"Coda\""),
    );
    let e = run_err(&["--cues", bad_marker.to_str().expect("p")]);
    assert!(
        e.contains("marker.toml:117:") && e.contains("unknown marker 'Coda'"),
        "{e}"
    );
    let bad_addr = tmp(
        "addr.toml",
        &cues_to("127.0.0.1:9").replace("\"/cue/7/go\"", "\"cue 7\""),
    );
    let e = run_err(&["--cues", bad_addr.to_str().expect("p")]);
    assert!(
        e.contains("addr.toml:113:") && e.contains("must start with '/'"),
        "{e}"
    );
    let pages = tmp("pages.csv", "1,1\n2,4\n3,99\n");
    let e = run_err(&[
        "--pages",
        pages.to_str().expect("p"),
        "--osc",
        "127.0.0.1:9",
    ]);
    assert!(e.contains("pages.csv:3:"), "{e}");
    let e = run_err(&["--pages", bach().join("pages.csv").to_str().expect("p")]);
    assert!(e.contains("--osc"), "{e}");
    let e = run_err(&["--control", "127.0.0.1:notaport"]);
    assert!(e.contains("control address"), "{e}");
    for p in [bad_bar, bad_marker, bad_addr, pages] {
        let _ = std::fs::remove_file(p);
    }
}

/// `follow --pages --control`: page turns arrive in order on the --osc socket; control
/// messages are acknowledged, garbage is answered with an error, and `/scorefollow/seek_bar`
/// moves the follower (pages before the target bar fire as skipped-over, after it as reached).
#[test]
fn follow_sends_pages_and_obeys_remote_control() {
    let osc = UdpSocket::bind("127.0.0.1:0").expect("bind");
    crate::common::enlarge_receive_buffer(&osc);
    osc.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    // A free port for the control server (released just before the program binds it).
    let control_port = UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("a")
        .port();
    let child = bin()
        .args([
            "follow",
            "--speed",
            "4",
            "--print-every",
            "0",
            "--osc-rate",
            "1",
        ])
        .arg("--osc")
        .arg(osc.local_addr().expect("addr").to_string())
        .arg("--pages")
        .arg(bach().join("pages.csv"))
        .arg("--control")
        .arg(format!("127.0.0.1:{control_port}"))
        .arg("--replay")
        .arg(bach().join("performance.flac"))
        .arg("--score")
        .arg(bach().join("score.mid"))
        .spawn()
        .expect("run");
    let control = format!("127.0.0.1:{control_port}");
    let send = |m: OscMessage| {
        let bytes = rosc::encoder::encode(&OscPacket::Message(m)).expect("encode");
        client.send_to(&bytes, &control).expect("send");
    };
    let mut buf = [0u8; rosc::decoder::MTU];
    let mut pages = Vec::new();
    let mut done = false;
    let start = Instant::now();
    let mut asked = false;
    let mut seek_acked = start;
    while !done && start.elapsed() < Duration::from_secs(60) {
        if let Ok((n, _)) = osc.recv_from(&mut buf) {
            let m = decode(&buf[..n]);
            if m.addr == "/scorefollow/page" {
                pages.push((m.args.clone(), Instant::now()));
            }
            done = m.addr == "/scorefollow/status"
                && m.args.first() == Some(&OscType::String("end".into()));
        }
        // Once page 1 is shown: a malformed packet, then seek back to bar 1 mid-piece, so
        // page 1 is turned to again when the follower passes it after the seek.
        if !asked && pages.len() == 1 && start.elapsed() > Duration::from_secs(2) {
            asked = true;
            client.send_to(b"junk", &control).expect("send");
            let (n, _) = client.recv_from(&mut buf).expect("error reply");
            let err = decode(&buf[..n]);
            assert_eq!(err.addr, "/scorefollow/error");
            assert_eq!(err.args.get(1), Some(&OscType::Int(1)));
            send(OscMessage {
                addr: "/scorefollow/seek_bar".into(),
                args: vec![OscType::Int(7)],
            });
            let (n, _) = client.recv_from(&mut buf).expect("ack");
            let ack = decode(&buf[..n]);
            assert_eq!(ack.addr, "/scorefollow/ack");
            assert_eq!(
                ack.args,
                vec![
                    OscType::String("/scorefollow/seek_bar".into()),
                    OscType::Int(7)
                ]
            );
            seek_acked = Instant::now();
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert!(asked && done, "asked {asked}, done {done}");
    // Page 1 at the start; the seek to bar 7 passes page 2 (skipped over; pages fire anyway)
    // and lands on page 3, both at once, long before the performer would reach page 2 (at
    // about 3.3 s of the run). What follows depends on how the follower finds its way back.
    let first: Vec<&[OscType]> = pages.iter().take(3).map(|p| p.0.as_slice()).collect();
    assert_eq!(
        first,
        [[OscType::Int(1)], [OscType::Int(2)], [OscType::Int(3)]]
    );
    for p in &pages[1..3] {
        assert!(
            p.1 >= seek_acked - Duration::from_millis(50)
                && p.1 - seek_acked < Duration::from_millis(500)
        );
    }
}
