//! Fan-out of update messages to the browsers watching, as server-sent events.
//!
//! [`Hub::publish`] never waits for a browser: each one has a bounded queue, filled with
//! `try_send`; a browser whose queue is full (it stopped reading, or reads slower than the
//! updates come) is dropped: its queue is closed and its connection shut down, which also
//! frees its writer thread if it is blocked in a write. The page's `EventSource` reconnects by
//! itself, and a new subscriber first gets the retained messages (the latest position and
//! status, the cues fired, the relocations, the last acknowledgements), so it starts whole.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

/// What the hub keeps of a message for browsers that connect later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Nothing.
    No,
    /// The latest message of this kind.
    Latest(&'static str),
    /// The last `n` messages of this kind.
    Last(&'static str, usize),
}

/// Counters of a [`Hub`].
#[derive(Debug, Default)]
pub struct HubStats {
    /// Browsers that subscribed.
    pub subscribed: AtomicU64,
    /// Browsers dropped because their queue was full.
    pub dropped_slow: AtomicU64,
    /// Messages published.
    pub published: AtomicU64,
}

struct Client {
    tx: Sender<Arc<str>>,
    stream: Option<TcpStream>,
}

#[derive(Default)]
struct Inner {
    clients: Vec<Client>,
    latest: Vec<(&'static str, Arc<str>)>,
    lists: Vec<(&'static str, VecDeque<Arc<str>>)>,
    closed: bool,
}

/// The browsers watching and what they missed.
pub struct Hub {
    inner: Mutex<Inner>,
    queue: usize,
    /// Counters.
    pub stats: HubStats,
}

impl Hub {
    /// A hub giving each browser a queue of `queue` messages (beyond what is retained).
    pub fn new(queue: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::default(),
            queue: queue.max(1),
            stats: HubStats::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not silence the view: the data is plain messages.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send `msg` (one JSON object, no newline) to every browser without waiting; drop those
    /// whose queue is full.
    pub fn publish(&self, msg: Arc<str>, keep: Keep) {
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        match keep {
            Keep::No => {}
            Keep::Latest(kind) => match inner.latest.iter_mut().find(|(k, _)| *k == kind) {
                Some(slot) => slot.1 = Arc::clone(&msg),
                None => inner.latest.push((kind, Arc::clone(&msg))),
            },
            Keep::Last(kind, n) => {
                let pos = inner.lists.iter().position(|(k, _)| *k == kind);
                let list = match pos {
                    Some(i) => &mut inner.lists[i].1,
                    None => {
                        inner.lists.push((kind, VecDeque::new()));
                        let last = inner.lists.len() - 1;
                        &mut inner.lists[last].1
                    }
                };
                list.push_back(Arc::clone(&msg));
                while list.len() > n {
                    list.pop_front();
                }
            }
        }
        let mut dropped = 0;
        inner
            .clients
            .retain_mut(|c| match c.tx.try_send(Arc::clone(&msg)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    if let Some(s) = c.stream.take() {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                    dropped += 1;
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        if dropped > 0 {
            self.stats
                .dropped_slow
                .fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!("view: dropped {dropped} browser(s) that fell behind");
        }
    }

    /// A new browser: its queue, holding the retained messages first. `stream` (a clone of
    /// its connection) is shut down if it is dropped. None once the hub is closed.
    pub fn subscribe(&self, stream: Option<TcpStream>) -> Option<Receiver<Arc<str>>> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let retained: Vec<Arc<str>> = inner
            .lists
            .iter()
            .flat_map(|(_, l)| l.iter().cloned())
            .chain(inner.latest.iter().map(|(_, m)| Arc::clone(m)))
            .collect();
        let (tx, rx) = bounded(self.queue + retained.len());
        for m in retained {
            let _ = tx.try_send(m);
        }
        inner.clients.push(Client { tx, stream });
        self.stats.subscribed.fetch_add(1, Ordering::Relaxed);
        Some(rx)
    }

    /// Browsers connected now.
    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    /// End every stream (their writers finish what is queued and return).
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.clients.clear();
    }
}

/// How often an idle stream gets a comment line, so proxies and the browser keep it open and
/// a vanished browser is noticed.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// Answer a request with an event stream fed by `hub` until the hub closes, drops this
/// browser, or the connection fails. Runs on the connection's thread.
pub fn stream_events(hub: &Hub, mut stream: TcpStream) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\nretry: 1000\n\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let Some(rx) = hub.subscribe(stream.try_clone().ok()) else {
        return;
    };
    let mut buf = String::with_capacity(4096);
    loop {
        buf.clear();
        match rx.recv_timeout(KEEPALIVE) {
            Ok(m) => {
                push_event(&mut buf, &m);
                // Whatever else is already queued goes in the same write.
                while let Ok(m) = rx.try_recv() {
                    push_event(&mut buf, &m);
                    if buf.len() > 64 * 1024 {
                        break;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => buf.push_str(": keepalive\n\n"),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if stream.write_all(buf.as_bytes()).is_err() {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn push_event(buf: &mut String, msg: &str) {
    // JSON from serde_json or our writers has no raw newline; guard anyway, since a newline
    // would end the event early.
    for line in msg.split('\n') {
        buf.push_str("data: ");
        buf.push_str(line);
        buf.push('\n');
    }
    buf.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn new_subscribers_get_what_was_retained() {
        let hub = Hub::new(4);
        hub.publish(msg("p1"), Keep::Latest("pos"));
        hub.publish(msg("c1"), Keep::Last("cue", 2));
        hub.publish(msg("c2"), Keep::Last("cue", 2));
        hub.publish(msg("c3"), Keep::Last("cue", 2));
        hub.publish(msg("p2"), Keep::Latest("pos"));
        hub.publish(msg("x"), Keep::No);
        let rx = hub.subscribe(None).unwrap_or_else(|| panic!("closed"));
        let got: Vec<String> = rx.try_iter().map(|m| m.to_string()).collect();
        assert_eq!(got, ["c2", "c3", "p2"]);
        hub.publish(msg("p3"), Keep::Latest("pos"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("p3"));
    }

    /// A browser that does not read is dropped once its queue is full; the others and the
    /// publisher carry on.
    #[test]
    fn a_full_queue_drops_its_browser_only() {
        let hub = Hub::new(3);
        let slow = hub.subscribe(None).unwrap_or_else(|| panic!("closed"));
        let fast = hub.subscribe(None).unwrap_or_else(|| panic!("closed"));
        for k in 0..10 {
            hub.publish(msg(&k.to_string()), Keep::No);
            while fast.try_recv().is_ok() {}
        }
        assert_eq!(hub.stats.dropped_slow.load(Ordering::Relaxed), 1);
        assert_eq!(hub.clients(), 1);
        // The slow one keeps what it had, then sees the end.
        assert_eq!(slow.try_iter().count(), 3);
        assert!(slow.recv_timeout(Duration::from_millis(10)).is_err());
        hub.close();
        assert_eq!(hub.clients(), 0);
        assert!(hub.subscribe(None).is_none());
    }

    #[test]
    fn events_are_framed_line_by_line() {
        let mut b = String::new();
        push_event(&mut b, "{\"a\":1}");
        push_event(&mut b, "x\ny");
        assert_eq!(b, "data: {\"a\":1}\n\ndata: x\ndata: y\n\n");
    }
}
