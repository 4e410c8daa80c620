//! The remote-control server: a UDP thread that decodes control messages from allowed
//! senders ([`AllowList`]), applies them and answers each to its sender; datagrams from
//! anyone else are counted and dropped unanswered.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rosc::OscPacket;

use super::{decode_requests, AllowList, Commander};
use crate::output::cues::Timeline;
use crate::score::reference::Reference;
use crate::Error;

/// Counters of a running [`ControlServer`].
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Messages accepted and acknowledged.
    pub accepted: AtomicU64,
    /// Malformed or unknown datagrams and messages.
    pub errors: AtomicU64,
    /// Datagrams from senders not allowed (`--control-allow`), dropped without an answer
    /// (added in this version).
    pub refused: AtomicU64,
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
    /// Listen on `bind`; requests from senders `allow` lets in are carried out and answered
    /// by `commander`.
    pub fn spawn(
        bind: SocketAddr,
        reference: Arc<Reference>,
        commander: Commander,
        allow: AllowList,
    ) -> crate::Result<Self> {
        Self::spawn_on(bind_control(bind)?, reference, commander, allow)
    }

    /// As [`ControlServer::spawn`], on a socket already bound with [`bind_control`].
    pub fn spawn_on(
        socket: UdpSocket,
        reference: Arc<Reference>,
        commander: Commander,
        allow: AllowList,
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
                .spawn(move || serve(&socket, &reference, &commander, &allow, &stop))
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

fn serve(
    socket: &UdpSocket,
    reference: &Reference,
    commander: &Commander,
    allow: &AllowList,
    stop: &AtomicBool,
) {
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
        if !allow.allows(from.ip()) {
            // Not even an error reply: a stranger learns nothing, not even that we listen.
            let n = commander.stats().refused.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                tracing::warn!(
                    "remote control: ignored a datagram from {from}, which --control-allow does not let in ({allow}); further ones are only counted"
                );
            }
            continue;
        }
        for (req, msg) in decode_requests(&buf[..n], timeline) {
            let reply = commander.answer(req, msg, &from.to_string());
            out.clear();
            if rosc::encoder::encode_into(&OscPacket::Message(reply), &mut out).is_ok() {
                let _ = socket.send_to(&out, from);
            }
        }
    }
}
