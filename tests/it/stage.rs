//! Trust on stage, the show-facing half (issue 14), with the real `scorefollow` binary:
//! - a clean stop: SIGINT, SIGTERM and `/scorefollow/quit` end `follow` with every output
//!   complete to the last frame, the `end` status sent, the summary printed, exit 0;
//! - an input that ends early (a truncated FLAC, a WAV whose header lies) is followed as far
//!   as it decodes, every output written, then exit 3 with one line naming the file;
//! - only allowed senders steer (`--control-allow`; a stranger at 127.0.0.2 is ignored,
//!   unanswered, counted);
//! - every receiver reached: a broadcast target (127.255.255.255 on the loopback) and a
//!   multicast group (joined on 127.0.0.1, sent through `--osc-interface 127.0.0.1`); a
//!   target that keeps failing is logged with the system's error and summed up at the end;
//! - the JSON-lines event log carries every event, and `--cue-log` one row per cue fired.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so a client bound to 127.0.0.2
//! is another host as far as the control server can tell.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bach(file: &str) -> PathBuf {
    root().join("scores/bach_bwv66_6").join(file)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scorefollow-stage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scorefollow"))
}

/// A port that was free a moment ago (for `--control`, whose port the test must know).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn decode(buf: &[u8]) -> Option<OscMessage> {
    match rosc::decoder::decode_udp(buf) {
        Ok((_, OscPacket::Message(m))) => Some(m),
        _ => None,
    }
}

fn send(from: &UdpSocket, to: SocketAddr, addr: &str, args: Vec<OscType>) {
    let bytes = rosc::encoder::encode(&OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    }))
    .expect("encode");
    from.send_to(&bytes, to).expect("send");
}

/// Every OSC message a socket receives, with its arrival, collected on a thread.
struct Receiver {
    got: Arc<Mutex<Vec<(Instant, OscMessage)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn on(socket: UdpSocket) -> Self {
        crate::common::enlarge_receive_buffer(&socket);
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = socket.recv_from(&mut buf) {
                        if let Some(m) = decode(&buf[..n]) {
                            got.lock().unwrap().push((Instant::now(), m));
                        }
                    }
                }
            })
        };
        Self {
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn messages(&self) -> Vec<OscMessage> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The states of the status messages received so far, with their frame counts.
    fn statuses(&self) -> Vec<(String, i32)> {
        self.messages()
            .into_iter()
            .filter(|m| m.addr == "/scorefollow/status")
            .filter_map(|m| match (m.args.first(), m.args.get(3)) {
                (Some(OscType::String(s)), Some(OscType::Int(f))) => Some((s.clone(), *f)),
                _ => None,
            })
            .collect()
    }

    /// Wait until a status `state` has arrived; false on timeout.
    fn wait_status(&self, state: &str, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.statuses().iter().any(|(s, _)| s == state) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running `follow`, its stderr read on a thread (so a full pipe never blocks it).
struct Run {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Run {
    fn start(args: &[String]) -> Self {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scorefollow");
        let mut pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        });
        Self { child, stderr }
    }

    /// Wait for the end (killing it after `timeout`); (exit code, stderr).
    fn wait(mut self, timeout: Duration) -> (Option<i32>, String) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break Some(st);
            }
            if t0.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.join().unwrap_or_default();
        assert!(status.is_some(), "did not end within {timeout:?}: {stderr}");
        (status.and_then(|s| s.code()), stderr)
    }
}

fn follow_args(replay: &Path, speed: &str, extra: &[String]) -> Vec<String> {
    let mut a: Vec<String> = ["follow", "--print-every", "0", "--speed", speed, "--score"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(bach("score.mid").display().to_string());
    a.push("--replay".into());
    a.push(replay.display().to_string());
    a.extend(extra.iter().cloned());
    a
}

/// The rows of a CSV position log; panics unless the file ends with a complete line and
/// every row has the ten columns.
fn csv_rows(path: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).expect("csv");
    assert!(
        text.ends_with('\n'),
        "partial last line: {:?}",
        text.lines().last()
    );
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("perf_time_s,score_time_s,beat,bar,tempo,confidence,pass,page,system,label")
    );
    lines
        .map(|l| {
            let f: Vec<f64> = l
                .split(',')
                .map(|x| x.parse::<f64>().unwrap_or(f64::NAN))
                .collect();
            assert_eq!(f.len(), 10, "row {l}");
            assert!(f[0].is_finite() && f[1].is_finite(), "row {l}");
            f
        })
        .collect()
}

/// Every line of a JSON-lines log, parsed; panics on a partial or invalid line.
fn jsonl_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("jsonl");
    assert!(text.ends_with('\n'), "partial last line");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// How `follow` was ended.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Signal(libc::c_int),
    Quit,
}

/// Start the chorale at real pace with every output, end it `after` following began, and
/// check that it ended cleanly. Returns the seconds of audio in the CSV.
fn stop_cleanly(how: Stop, name: &str) -> f64 {
    let after = Duration::from_secs(3);
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let osc = rx.local_addr().expect("addr");
    let rx = Receiver::on(rx);
    let (csv, jsonl) = (tmp(&format!("{name}.csv")), tmp(&format!("{name}.jsonl")));
    let control = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut extra = vec![
        "--osc".to_string(),
        osc.to_string(),
        "--out".into(),
        csv.display().to_string(),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ];
    if matches!(how, Stop::Quit) {
        extra.extend(["--control".to_string(), control.to_string()]);
    }
    let run = Run::start(&follow_args(&bach("performance.flac"), "1", &extra));
    assert!(
        rx.wait_status("start", Duration::from_secs(120)),
        "no start status"
    );
    // The stranger of `quit_over_control`: a sender at 127.0.0.2, not allowed by default.
    let stranger = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    if matches!(how, Stop::Quit) {
        std::thread::sleep(Duration::from_secs(1));
        for _ in 0..3 {
            send(&stranger, control, "/scorefollow/quit", vec![]);
        }
        std::thread::sleep(after - Duration::from_secs(1));
    } else {
        std::thread::sleep(after);
    }
    let asked = Instant::now();
    let desk = UdpSocket::bind("127.0.0.1:0").expect("bind");
    desk.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    match how {
        // SAFETY: kill(2) on our own child's pid.
        Stop::Signal(sig) => assert_eq!(unsafe { libc::kill(run.child.id() as i32, sig) }, 0),
        Stop::Quit => send(&desk, control, "/scorefollow/quit", vec![]),
    }
    let (code, stderr) = run.wait(Duration::from_secs(60));
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "{stderr}");
    let rows = csv_rows(&csv);
    let last_s = rows.last().map_or(0.0, |r| r[0]);
    // Following began (the start status) just after the replay started: the CSV holds the
    // 3 s since, plus that moment, to the last frame.
    assert!(
        (2.8..4.0).contains(&last_s),
        "{name}: CSV ends at {last_s} s after {after:?}: {stderr}"
    );
    // 50 frames per second, none missing.
    assert!(
        (rows.len() as f64 - 50.0 * last_s).abs() <= 2.0,
        "{} rows for {last_s} s",
        rows.len()
    );
    // The end status arrived with the frame count the CSV holds.
    assert!(
        rx.wait_status("end", Duration::from_secs(2)),
        "no end status"
    );
    let end_frames = rx
        .statuses()
        .into_iter()
        .find(|(s, _)| s == "end")
        .map(|(_, f)| f);
    assert_eq!(end_frames, Some(rows.len() as i32));
    // The JSON-lines log has the same positions and ends with the end status.
    let lines = jsonl_lines(&jsonl);
    let positions = lines.iter().filter(|v| v["type"] == "position").count();
    assert_eq!(positions, rows.len());
    assert_eq!(lines.last().map(|v| v["state"].clone()), Some("end".into()));
    assert!(stderr.contains("followed "), "no summary: {stderr}");
    let by = match how {
        Stop::Signal(libc::SIGINT) => "SIGINT",
        Stop::Signal(_) => "SIGTERM",
        Stop::Quit => "/scorefollow/quit",
    };
    assert!(stderr.contains(&format!("stopped by {by}")), "{stderr}");
    if matches!(how, Stop::Quit) {
        let mut buf = [0u8; 1024];
        let (n, _) = desk.recv_from(&mut buf).expect("the desk's quit is acked");
        assert_eq!(
            decode(&buf[..n]).map(|m| m.addr),
            Some("/scorefollow/ack".into())
        );
        // The stranger's three quits were ignored (the run went on) and never answered.
        assert!(
            stranger.recv_from(&mut buf).is_err(),
            "the stranger got an answer"
        );
        assert_eq!(
            stderr
                .matches("which --control-allow does not let in")
                .count(),
            1,
            "{stderr}"
        );
        assert!(
            stderr.contains("3 datagrams from senders not allowed ignored"),
            "{stderr}"
        );
    }
    eprintln!(
        "{name}: CSV ends at {last_s:.2} s ({} rows), 3 s after following began; the run ended {:.0} ms after the stop",
        rows.len(),
        took.as_secs_f64() * 1e3
    );
    last_s
}

#[test]
fn sigint_ends_follow_cleanly() {
    stop_cleanly(Stop::Signal(libc::SIGINT), "sigint");
}

#[test]
fn sigterm_ends_follow_cleanly() {
    stop_cleanly(Stop::Signal(libc::SIGTERM), "sigterm");
}

/// `/scorefollow/quit` from the desk ends the run; the same message from a stranger at
/// 127.0.0.2, sent 2 s earlier, is ignored without an answer and counted.
#[test]
fn quit_over_control_ends_follow_cleanly_and_strangers_are_ignored() {
    stop_cleanly(Stop::Quit, "quit");
}

/// Run `follow` at full speed on `input` with CSV, JSON lines and OSC; (exit code, stderr,
/// CSV rows, JSON lines, statuses received).
fn follow_damaged(input: &Path, name: &str) -> (Option<i32>, String, Vec<Vec<f64>>) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let osc = rx.local_addr().expect("addr");
    let rx = Receiver::on(rx);
    let (csv, jsonl) = (tmp(&format!("{name}.csv")), tmp(&format!("{name}.jsonl")));
    let extra = [
        "--osc".to_string(),
        osc.to_string(),
        "--out".into(),
        csv.display().to_string(),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ];
    let (code, stderr) =
        Run::start(&follow_args(input, "max", &extra)).wait(Duration::from_secs(120));
    let rows = csv_rows(&csv);
    let lines = jsonl_lines(&jsonl);
    assert_eq!(lines.last().map(|v| v["state"].clone()), Some("end".into()));
    assert!(
        rx.wait_status("end", Duration::from_secs(2)),
        "no end status: {stderr}"
    );
    (code, stderr, rows)
}

/// The seconds `decoded to X s` in the error line.
fn decoded_s(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("scorefollow: input "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    line.split("decoded to ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no 'decoded to' in {line}"))
}

/// The bundled FLAC cut at 40 % of its bytes: followed to where it breaks (about 15 s of
/// 38.9), every output complete, exit 3 with one line naming the file and how far it got.
#[test]
fn truncated_flac_is_followed_as_far_as_it_decodes_then_exit_3() {
    let bytes = std::fs::read(bach("performance.flac")).expect("flac");
    let cut = tmp("cut.flac");
    std::fs::write(&cut, &bytes[..bytes.len() * 4 / 10]).expect("write");
    let (code, stderr, rows) = follow_damaged(&cut, "cut_flac");
    assert_eq!(code, Some(3), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("scorefollow: input ") && last.contains(&cut.display().to_string()),
        "{stderr}"
    );
    assert!(last.contains("of the 38.93 s its header states"), "{last}");
    let got = decoded_s(&stderr);
    // The file's audio stops where its bytes do (FLAC compresses evenly enough here).
    assert!((10.0..25.0).contains(&got), "{got}");
    let end = rows.last().map_or(0.0, |r| r[0]);
    assert!(
        (end - got).abs() < 0.1,
        "CSV ends at {end} s, decoded {got} s"
    );
}

/// A WAV whose data-chunk length was overwritten with garbage (as a recorder that crashed
/// leaves it) and whose data stops mid-frame after 2.5 s: followed to 2.5 s, exit 3.
#[test]
fn corrupt_wav_is_followed_as_far_as_it_decodes_then_exit_3() {
    let rate = 22_050u32;
    let secs = 2.5;
    let n = (rate as f64 * secs) as usize;
    let mut data = Vec::with_capacity(4 * n + 1);
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let x = (0.3 * (2.0 * std::f64::consts::PI * 392.0 * t).sin() * 32767.0) as i16;
        data.extend_from_slice(&x.to_le_bytes());
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.push(0x7f); // half a sample of the next frame
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&0x7fff_fff0u32.to_le_bytes());
    wav.extend_from_slice(&data);
    let path = tmp("corrupt.wav");
    std::fs::write(&path, &wav).expect("write");
    let (code, stderr, rows) = follow_damaged(&path, "corrupt_wav");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    let got = decoded_s(&stderr);
    assert!((got - secs).abs() < 0.01, "{got}");
    let end = rows.last().map_or(0.0, |r| r[0]);
    assert!((end - secs).abs() < 0.1, "CSV ends at {end} s");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("scorefollow:"))
            .count(),
        1,
        "one error line: {stderr}"
    );
}

/// A bad `--control-allow` is a usage error (exit 2, clap's message names it).
#[test]
fn bad_control_allow_is_a_usage_error() {
    for bad in ["10.0.0.1/33", "not-an-address", "::1/129"] {
        let out = bin()
            .args(follow_args(
                &bach("performance.flac"),
                "max",
                &[
                    "--control".into(),
                    "127.0.0.1:0".into(),
                    "--control-allow".into(),
                    bad.into(),
                ],
            ))
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(bad), "{bad}: {stderr}");
    }
}

/// Broadcast and multicast on the loopback interface: `follow` sends to 127.255.255.255
/// (the loopback's broadcast address: refused with EACCES without SO_BROADCAST) and to the
/// group 239.1.2.3 through `--osc-interface 127.0.0.1`; a receiver bound to 0.0.0.0 and a
/// member of the group joined on 127.0.0.1 both get every status and position.
#[test]
fn broadcast_and_multicast_targets_are_reached() {
    let bcast = UdpSocket::bind("0.0.0.0:0").expect("bind");
    let bport = bcast.local_addr().expect("addr").port();
    let group = Ipv4Addr::new(239, 1, 2, 3);
    let mcast = UdpSocket::bind("0.0.0.0:0").expect("bind");
    mcast
        .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .expect("join the group on the loopback");
    let mport = mcast.local_addr().expect("addr").port();
    let (b, m) = (Receiver::on(bcast), Receiver::on(mcast));
    let extra = [
        "--osc".to_string(),
        format!("127.255.255.255:{bport}"),
        "--osc".into(),
        format!("{group}:{mport}"),
        "--osc-interface".into(),
        "127.0.0.1".into(),
        "--osc-ttl".into(),
        "2".into(),
    ];
    let (code, stderr) = Run::start(&follow_args(&bach("performance.flac"), "max", &extra))
        .wait(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("failed"), "{stderr}");
    for (name, r) in [("broadcast", &b), ("multicast", &m)] {
        assert!(
            r.wait_status("end", Duration::from_secs(2)),
            "{name}: no end"
        );
        let st = r.statuses();
        let frames = st.iter().find(|(s, _)| s == "end").map(|(_, f)| *f);
        let positions = r
            .messages()
            .iter()
            .filter(|m| m.addr == "/scorefollow/position")
            .count();
        assert_eq!(st.first().map(|s| s.0.as_str()), Some("start"), "{name}");
        // Loopback datagrams are lost only when a receive buffer overflows (the buffer is
        // enlarged, but the kernel may cap it): allow 2 %.
        let frames = frames.unwrap_or(i32::MAX);
        assert!(
            positions as i32 >= frames - frames / 50,
            "{name}: {positions} positions of {frames}"
        );
    }
}

/// A multicast interface that is not an address of this host fails before following,
/// naming it (exit 1).
#[test]
fn a_foreign_multicast_interface_is_refused_before_following() {
    let extra = [
        "--osc".to_string(),
        "239.1.2.3:9".into(),
        "--osc-interface".into(),
        "203.0.113.7".into(),
    ];
    let (code, stderr) = Run::start(&follow_args(&bach("performance.flac"), "max", &extra))
        .wait(Duration::from_secs(120));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("203.0.113.7"), "{stderr}");
}

/// A target every datagram to which fails (here: a cue message larger than a UDP datagram
/// can be, EMSGSIZE) is logged once with the system's error and summed up at the end.
#[test]
fn a_failing_target_is_reported_with_its_error() {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = rx.local_addr().expect("addr");
    let big = "x".repeat(70_000);
    let cues = tmp("big.toml");
    std::fs::write(
        &cues,
        format!(
            "[[cue]]\nid = \"a\"\nbar = 2\ntargets = [\"{to}\"]\n[[cue.message]]\naddress = \"/big\"\nargs = [\"{big}\"]\n\n\
             [[cue]]\nid = \"b\"\nbar = 4\ntargets = [\"{to}\"]\n[[cue.message]]\naddress = \"/big\"\nargs = [\"{big}\"]\n"
        ),
    )
    .expect("write");
    let extra = ["--cues".to_string(), cues.display().to_string()];
    let (code, stderr) = Run::start(&follow_args(&bach("performance.flac"), "max", &extra))
        .wait(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{stderr}");
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&format!("OSC send to {to} failed:")))
        .collect();
    assert_eq!(logged.len(), 1, "{stderr}");
    let os_error = std::io::Error::from_raw_os_error(libc::EMSGSIZE).to_string();
    assert!(logged[0].contains(&os_error), "{}", logged[0]);
    assert!(
        stderr.contains(&format!(
            "warning: OSC to {to}: 2 of 2 datagrams failed, first: {os_error}"
        )),
        "{stderr}"
    );
}

/// The JSON-lines log carries every event in order and `--cue-log` one row per cue fired:
/// the bundled cues and page turns, replayed at full speed.
#[test]
fn event_log_and_cue_log_carry_every_firing() {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = rx.local_addr().expect("addr");
    let _rx = Receiver::on(rx);
    let text = std::fs::read_to_string(bach("cues.toml"))
        .expect("cues")
        .replace("127.0.0.1:53000", &to.to_string())
        .replace("127.0.0.1:7000", &to.to_string());
    let cues = tmp("events.toml");
    std::fs::write(&cues, text).expect("write");
    let (csv, jsonl, cue_log) = (tmp("events.csv"), tmp("events.jsonl"), tmp("cuelog.csv"));
    let extra = [
        "--osc".to_string(),
        to.to_string(),
        "--cues".into(),
        cues.display().to_string(),
        "--pages".into(),
        bach("pages.csv").display().to_string(),
        "--out".into(),
        csv.display().to_string(),
        "--jsonl".into(),
        jsonl.display().to_string(),
        "--cue-log".into(),
        cue_log.display().to_string(),
    ];
    let (code, stderr) = Run::start(&follow_args(&bach("performance.flac"), "max", &extra))
        .wait(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{stderr}");
    let rows = csv_rows(&csv);
    let lines = jsonl_lines(&jsonl);
    let types: Vec<&str> = lines.iter().filter_map(|v| v["type"].as_str()).collect();
    assert_eq!(types.len(), lines.len(), "a line without a type");
    assert_eq!(types.first(), Some(&"status"));
    assert_eq!(lines.last().map(|v| v["state"].clone()), Some("end".into()));
    // Positions: as many as CSV rows, the same times, every field there.
    let positions: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["type"] == "position").collect();
    assert_eq!(positions.len(), rows.len());
    for (p, r) in positions.iter().zip(&rows) {
        assert!((p["perf_time_s"].as_f64().unwrap() - r[0]).abs() < 1e-4);
        assert!((p["score_time_s"].as_f64().unwrap() - r[1]).abs() < 1e-4);
        for k in [
            "beat",
            "bar",
            "tempo",
            "confidence",
            "spread_s",
            "heard_score_s",
        ] {
            assert!(p[k].is_number(), "{k} in {p}");
        }
    }
    // Every cue and page line follows the position that fired it.
    let mut cue_lines = Vec::new();
    for (i, v) in lines.iter().enumerate() {
        if v["type"] == "cue" || v["type"] == "page" {
            let before = lines[..i]
                .iter()
                .rev()
                .find(|w| w["type"] == "position")
                .expect("a position before");
            assert_eq!(before["perf_time_s"], v["perf_time_s"], "{v}");
            assert!(v["capture_wall_ns"].as_u64() <= v["sent_wall_ns"].as_u64());
            if v["type"] == "cue" {
                cue_lines.push(v);
            } else {
                assert_eq!(v["id"], format!("page-{}", v["page"]));
            }
        }
    }
    let fired_in_summary = stderr.lines().filter(|l| l.starts_with("cue ")).count();
    assert_eq!(fired_in_summary, 15, "12 cues and 3 page turns: {stderr}");
    assert_eq!(cue_lines.len(), 12);
    assert_eq!(types.iter().filter(|t| **t == "page").count(), 3);
    // The cue log: one row per cue line, same id and times.
    let log = std::fs::read_to_string(&cue_log).expect("cue log");
    let mut log_lines = log.lines();
    assert_eq!(
        log_lines.next(),
        Some("cue_id,perf_time_s,score_time_s,cue_score_s")
    );
    let rows: Vec<Vec<&str>> = log_lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), cue_lines.len());
    for (r, v) in rows.iter().zip(&cue_lines) {
        assert_eq!(Some(r[0]), v["id"].as_str());
        for (k, key) in [(1, "perf_time_s"), (2, "score_time_s"), (3, "cue_score_s")] {
            let x: f64 = r[k].parse().expect("number");
            assert!(
                (x - v[key].as_f64().unwrap()).abs() < 6e-5,
                "{key}: {r:?} {v}"
            );
        }
    }
}

/// The library reports an early end in `FollowSummary::input_error` (the command line maps it
/// to exit code 3): a WAV cut after 1.5 s of its 4 s, followed with `scorefollow::follow`.
/// The intact file reports none.
#[test]
fn follow_summary_reports_the_early_end() {
    use scorefollow::audio::replay::{ReplayOptions, Speed};
    use scorefollow::audio::Capture;
    use scorefollow::engine::{FollowConfig, Source};
    let rate = 22_050usize;
    let x: Vec<f32> = (0..4 * rate)
        .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 392.0 * i as f32 / rate as f32).sin())
        .collect();
    let whole = tmp("whole.wav");
    crate::common::write_wav_mono(&whole, rate as u32, &x);
    let bytes = std::fs::read(&whole).expect("wav");
    let cut = tmp("cut_lib.wav");
    std::fs::write(&cut, &bytes[..44 + 2 * rate * 3 / 2]).expect("write");
    let reference = crate::common::score_reference(&bach("score.mid"));
    let config = FollowConfig::default();
    let run = |path: &Path| {
        let capture = Capture::replay(
            path,
            ReplayOptions {
                speed: Speed::Max,
                ..ReplayOptions::default()
            },
        )
        .expect("replay");
        scorefollow::follow(&config, Source::new(reference.clone(), capture), vec![])
            .expect("follow")
    };
    let s = run(&cut);
    let e = s.input_error.expect("an input error");
    assert_eq!(e.path, cut);
    assert!((e.decoded_s - 1.5).abs() < 1e-3, "{}", e.decoded_s);
    assert_eq!(e.stated_s, Some(4.0));
    assert!((s.audio_s - 1.5).abs() < 0.05, "{}", s.audio_s);
    assert!(!s.stopped);
    assert_eq!(run(&whole).input_error, None);
}
