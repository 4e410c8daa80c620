//! Print every OSC message received on a UDP port: a quick way to see what scorefollow sends
//! (positions, status, cues, page turns) or to watch the replies of its remote control.
//!
//! ```text
//! cargo run --example osc_monitor -- 9000                 # listen on 0.0.0.0:9000
//! cargo run --example osc_monitor -- 127.0.0.1:9000 --no-position
//! ```
//!
//! Each line: seconds since the monitor started, the sender, the address and the typed
//! arguments (`i` int, `f` float, `s` string, `T`/`F` bool). `--no-position` hides the
//! per-frame `/scorefollow/position` messages so cues and pages stand out.

use std::net::UdpSocket;
use std::time::Instant;

use rosc::{OscPacket, OscType};

fn arg_text(a: &OscType) -> String {
    match a {
        OscType::Int(i) => format!("i:{i}"),
        OscType::Long(i) => format!("h:{i}"),
        OscType::Float(f) => format!("f:{f}"),
        OscType::Double(f) => format!("d:{f}"),
        OscType::String(s) => format!("s:{s:?}"),
        OscType::Bool(true) => "T".into(),
        OscType::Bool(false) => "F".into(),
        other => format!("{other:?}"),
    }
}

fn print(packet: &OscPacket, t_s: f64, from: &std::net::SocketAddr, hide_position: bool) {
    match packet {
        OscPacket::Message(m) => {
            if hide_position && m.addr == "/scorefollow/position" {
                return;
            }
            let args: Vec<String> = m.args.iter().map(arg_text).collect();
            println!("{t_s:10.3}  {from}  {}  {}", m.addr, args.join(" "));
        }
        OscPacket::Bundle(b) => {
            for p in &b.content {
                print(p, t_s, from, hide_position);
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hide_position = args.iter().any(|a| a == "--no-position");
    let bind = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|a| {
            if a.contains(':') {
                a.clone()
            } else {
                format!("0.0.0.0:{a}")
            }
        })
        .unwrap_or_else(|| "0.0.0.0:9000".into());
    let socket = match UdpSocket::bind(&bind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("osc_monitor: cannot listen on {bind}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("osc_monitor: listening on {bind} (Ctrl-C to stop)");
    let start = Instant::now();
    let mut buf = [0u8; rosc::decoder::MTU];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("osc_monitor: {e}");
                continue;
            }
        };
        let t_s = start.elapsed().as_secs_f64();
        match rosc::decoder::decode_udp(&buf[..n]) {
            Ok((_, packet)) => print(&packet, t_s, &from, hide_position),
            Err(e) => println!("{t_s:10.3}  {from}  (not OSC, {n} bytes: {e})"),
        }
    }
}
