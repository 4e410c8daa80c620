//! The live view of `follow --view HOST:PORT`: a page showing where the follower is (a piano
//! roll of the score with the reported and the heard position, bar / beat / tempo /
//! confidence, the next and the fired cues, relocations, input level and drops, the assumed
//! key and tuning) with the controls of the OSC remote control.
//!
//! - [`WebSink`] receives the follower's events on the output thread and publishes them to
//!   the [`Hub`] without waiting for any browser (positions at every frame or at a set rate).
//! - Commands from the page are the OSC control messages as JSON
//!   (`{"addr": "/scorefollow/seek_bar", "args": [3]}`), interpreted by the same
//!   [`parse_request`] and carried out by the same [`Commander`] as over OSC; the answer is the
//!   OSC answer (`/scorefollow/ack` or `/scorefollow/error`), returned to the page that sent
//!   it and shown in every page.
//!
//! | path | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /score.json` | notes, bars, cues and settings of the followed piece |
//! | `GET /events` | server-sent events: `pos`, `status`, `reloc`, `cue`, `theme`, `ack` |
//! | `POST /command` | one control message as JSON; answers with the OSC reply as JSON |
//!
//! Every message carries `t_ms`, the Unix time (ms) at which it left the follower's output
//! thread, so the page can tell how late it draws it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rosc::{OscMessage, OscType};

use super::http::{self, Guard, HttpServer, Request};
use super::hub::{self, Hub, Keep};
use super::{json_num, ViewAddress};
use crate::audio::ring::SourceStats;
use crate::control::{parse_request, Commander};
use crate::output::cues::{CueList, FiredCue, FiredLog, Timeline};
use crate::output::{Event, PositionEvent, Sink};
use crate::score::reference::Reference;

/// The page (HTML with the stylesheet and script inlined, so one request with the token
/// loads everything).
fn page() -> String {
    include_str!("assets/live.html")
        .replace("/*STYLE*/", super::STYLE_CSS)
        .replace("/*SCRIPT*/", include_str!("assets/live.js"))
}

/// How long the level meter holds a peak: a meter's integration time.
const LEVEL_WINDOW: Duration = Duration::from_millis(100);

/// Messages a browser may fall behind by before it is dropped: 4 s of positions at 50 per
/// second.
pub const BROWSER_QUEUE: usize = 200;

/// What the page shows about the run's settings (as the user gave them).
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// The aligner (`soft`, `oltw`).
    pub aligner: String,
    /// The performer's assumed tuning: `auto` or cents.
    pub tuning: String,
    /// The performer's assumed transposition: `auto` or semitones.
    pub transpose: String,
    /// The input (file replayed, or live device).
    pub input: String,
}

/// The live view's address, bound before the audio starts ([`LiveViewSetup::bind`]).
pub struct LiveViewSetup {
    listener: TcpListener,
    view: ViewAddress,
    local: SocketAddr,
    rate_hz: Option<f64>,
}

impl LiveViewSetup {
    /// Bind `view` (fails early when the address is taken); positions at `rate_hz` per
    /// second (None: every frame).
    pub fn bind(view: ViewAddress, rate_hz: Option<f64>) -> crate::Result<Self> {
        if let Some(r) = rate_hz {
            if !(r > 0.0 && r.is_finite()) {
                return Err(crate::Error::invalid(
                    "view rate",
                    r.to_string(),
                    "give a positive number of updates per second",
                ));
            }
        }
        let listener = http::bind(view.addr)?;
        let local = listener
            .local_addr()
            .map_err(|e| crate::Error::Other(format!("view socket: {e}")))?;
        Ok(Self {
            listener,
            view,
            local,
            rate_hz,
        })
    }

    /// The URL to open.
    pub fn url(&self) -> String {
        self.view.url(self.local)
    }

    /// Start serving: `score_json` describes the piece ([`score_json`]); commands are
    /// interpreted against `reference` and carried out by `commander`; `input` gives the level
    /// and the drops; `fired` are the cue logs of the run; `epoch` is the capture's epoch.
    /// Returns the running view and the sink to add to the run.
    pub fn start(
        self,
        reference: Arc<Reference>,
        score_json: String,
        commander: Commander,
        input: Option<Arc<SourceStats>>,
        fired: Vec<FiredLog>,
        epoch: Instant,
    ) -> crate::Result<(LiveView, WebSink)> {
        let hub = Hub::new(BROWSER_QUEUE);
        let score_json = Arc::new(score_json);
        let page = Arc::new(page());
        let guard = Guard::new(self.view.token.as_deref());
        let handler = {
            let hub = Arc::clone(&hub);
            move |req: Request, stream: TcpStream| {
                handle(
                    req,
                    stream,
                    &guard,
                    &hub,
                    &page,
                    &score_json,
                    &reference,
                    &commander,
                )
            }
        };
        let server = HttpServer::spawn(self.listener, Arc::new(handler), 64)?;
        let url = self.view.url(server.local_addr);
        let sink = WebSink::new(Arc::clone(&hub), self.rate_hz, input, fired, epoch);
        Ok((LiveView { server, hub, url }, sink))
    }
}

/// A running live view; stops serving when dropped.
pub struct LiveView {
    server: HttpServer,
    hub: Arc<Hub>,
    /// The URL to open.
    pub url: String,
}

impl LiveView {
    /// The hub (browsers connected, drops).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Close every event stream and stop serving.
    pub fn stop(&mut self) {
        self.hub.close();
        self.server.stop();
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(clippy::too_many_arguments)]
fn handle(
    req: Request,
    mut stream: TcpStream,
    guard: &Guard,
    hub: &Hub,
    page: &str,
    score_json: &str,
    reference: &Reference,
    commander: &Commander,
) {
    if let Err(e) = guard.check(&req) {
        let _ = http::respond_error(&mut stream, e.status, &e.reason);
        return;
    }
    let json = "application/json";
    let _ = match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/" | "/index.html") => http::respond(
            &mut stream,
            200,
            "text/html; charset=utf-8",
            &[],
            page.as_bytes(),
        ),
        ("GET", "/score.json") => http::respond(&mut stream, 200, json, &[], score_json.as_bytes()),
        ("GET", "/events") => {
            hub::stream_events(hub, stream);
            return;
        }
        ("POST", "/command") => {
            let from = stream
                .peer_addr()
                .map_or_else(|_| "browser".to_string(), |a| format!("browser {a}"));
            let reply = command(&req.body, reference, commander, &from);
            hub.publish(Arc::from(ack_message(&reply)), Keep::Last("ack", 20));
            http::respond(
                &mut stream,
                200,
                json,
                &[],
                osc_to_json(&reply).to_string().as_bytes(),
            )
        }
        (_, "/" | "/index.html" | "/score.json" | "/events" | "/command") => {
            http::respond_error(&mut stream, 405, "method not allowed")
        }
        _ => http::respond_error(&mut stream, 404, "no such page"),
    };
}

/// Interpret a command body (`{"addr": ..., "args": [...]}`) and carry it out: the OSC reply.
pub fn command(
    body: &[u8],
    reference: &Reference,
    commander: &Commander,
    from: &str,
) -> OscMessage {
    match json_to_osc(body) {
        Ok(msg) => {
            let req = parse_request(&msg, Timeline::of(reference));
            commander.answer(req, msg, from)
        }
        Err(reason) => commander.answer(
            Err(reason),
            OscMessage {
                addr: String::new(),
                args: vec![],
            },
            from,
        ),
    }
}

/// A control message from JSON: whole numbers become OSC ints, other numbers floats,
/// strings strings (what Pd and Max send).
pub fn json_to_osc(body: &[u8]) -> Result<OscMessage, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the command is not JSON: {e}"))?;
    let addr = v
        .get("addr")
        .and_then(|a| a.as_str())
        .ok_or("the command has no \"addr\" string")?
        .to_string();
    let args = match v.get("args") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) if i32::try_from(i).is_ok() => Ok(OscType::Int(i as i32)),
                    _ => Ok(OscType::Float(n.as_f64().unwrap_or(f64::NAN) as f32)),
                },
                serde_json::Value::String(s) => Ok(OscType::String(s.clone())),
                other => Err(format!("unsupported argument {other}")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("\"args\" must be an array".into()),
    };
    Ok(OscMessage { addr, args })
}

/// An OSC message as JSON (`{"addr": ..., "args": [...]}`).
pub fn osc_to_json(m: &OscMessage) -> serde_json::Value {
    let args: Vec<serde_json::Value> = m
        .args
        .iter()
        .map(|a| match a {
            OscType::Int(i) => serde_json::json!(i),
            OscType::Long(i) => serde_json::json!(i),
            OscType::Float(f) => serde_json::json!(f),
            OscType::Double(d) => serde_json::json!(d),
            OscType::String(s) => serde_json::json!(s),
            OscType::Bool(b) => serde_json::json!(b),
            other => serde_json::json!(format!("{other:?}")),
        })
        .collect();
    serde_json::json!({ "addr": m.addr, "args": args })
}

fn ack_message(reply: &OscMessage) -> String {
    let mut v = osc_to_json(reply);
    v["type"] = "ack".into();
    v["t_ms"] = unix_ms().into();
    v.to_string()
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The piece as the page draws it.
pub fn score_json(
    reference: &Reference,
    cue_lists: &[CueList],
    info: &RunInfo,
    rate_hz: Option<f64>,
) -> String {
    let r4 = |x: f64| (x * 1e4).round() / 1e4;
    let (notes, bars): (Vec<serde_json::Value>, Vec<serde_json::Value>) = match reference.score() {
        Some(s) => (
            s.notes
                .iter()
                .filter(|n| !n.is_drum)
                .map(|n| serde_json::json!([r4(n.onset_s), r4(n.offset_s.max(n.onset_s)), n.pitch]))
                .collect(),
            super::versions::bar_starts(s)
                .into_iter()
                .map(|(b, t)| serde_json::json!([b, r4(t)]))
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    // Written tempo (quarters per minute) from each change on, for the page's tempo in qpm.
    let tempos: Vec<serde_json::Value> = reference
        .score()
        .map(|s| {
            s.tempo_map
                .segments()
                .iter()
                .map(|g| {
                    serde_json::json!([r4(g.time_s), r4(60e6 / g.us_per_quarter.max(1) as f64)])
                })
                .collect()
        })
        .unwrap_or_default();
    let cues: Vec<serde_json::Value> = cue_lists
        .iter()
        .flat_map(|l| l.cues.iter())
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "score_s": r4(c.point.score_s),
                "lead_s": r4(c.point.lead_s),
                "page": c.messages.iter().any(|m| m.addr == "/scorefollow/page"),
            })
        })
        .collect();
    serde_json::json!({
        "name": super::versions::display_name(&reference.path),
        "kind": if reference.score().is_some() { "score" } else { "recording" },
        "duration_s": r4(reference.duration_s()),
        "notes": notes,
        "bars": bars,
        "cues": cues,
        "tempos": tempos,
        "info": {
            "aligner": info.aligner,
            "tuning": info.tuning,
            "transpose": info.transpose,
            "input": info.input,
            "reference_tuning_cents": r4(reference.tuning_cents as f64),
        },
        "rate_hz": rate_hz,
    })
    .to_string()
}

/// Unix time of a capture timestamp.
#[derive(Clone, Copy, Debug)]
struct WallClock {
    epoch: Instant,
    unix_ms_at_epoch: f64,
}

impl WallClock {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            unix_ms_at_epoch: unix_ms() - epoch.elapsed().as_secs_f64() * 1e3,
        }
    }

    fn unix_ms(&self, since_epoch_ns: u64) -> f64 {
        self.unix_ms_at_epoch + since_epoch_ns as f64 / 1e6
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Counters of a [`WebSink`].
#[derive(Debug, Default)]
pub struct WebSinkStats {
    /// Positions published.
    pub positions: AtomicU64,
    /// Positions skipped by the rate limit.
    pub thinned: AtomicU64,
}

/// The live view's feed: publishes the follower's events to the browsers (on the output
/// thread; never waits for a browser).
pub struct WebSink {
    hub: Arc<Hub>,
    period: Option<Duration>,
    last_sent: Option<Instant>,
    pending: Option<PositionEvent>,
    clock: WallClock,
    input: Option<Arc<SourceStats>>,
    fired: Vec<(FiredLog, usize)>,
    /// The input level shown (dBFS) and when it was measured.
    level: (f64, Option<Instant>),
    buf: String,
    /// Counters.
    pub stats: Arc<WebSinkStats>,
}

impl WebSink {
    /// Publish to `hub`, positions at most `rate_hz` per second (None: all); level and drops
    /// from `input`; cues from the `fired` logs; times from the capture's `epoch`.
    pub fn new(
        hub: Arc<Hub>,
        rate_hz: Option<f64>,
        input: Option<Arc<SourceStats>>,
        fired: Vec<FiredLog>,
        epoch: Instant,
    ) -> Self {
        Self {
            hub,
            period: rate_hz
                .filter(|r| *r > 0.0 && r.is_finite())
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            last_sent: None,
            pending: None,
            clock: WallClock::new(epoch),
            input,
            fired: fired.into_iter().map(|l| (l, 0)).collect(),
            level: (f64::NAN, None),
            buf: String::with_capacity(512),
            stats: Arc::default(),
        }
    }

    fn publish_position(&mut self, p: &PositionEvent) {
        use std::fmt::Write;
        let (level_db, dropped) = match &self.input {
            Some(s) => {
                // The peak over a meter's window, not per position: one block of input can
                // give several frames at once, and the ones after the first saw no samples.
                if self.level.1.is_none_or(|t| t.elapsed() >= LEVEL_WINDOW) {
                    let peak = s.take_peak() as f64;
                    let db = if peak > 0.0 {
                        20.0 * peak.log10()
                    } else {
                        f64::NEG_INFINITY
                    };
                    self.level = (db, Some(Instant::now()));
                }
                (self.level.0, s.snapshot().samples_dropped as f64)
            }
            None => (f64::NAN, f64::NAN),
        };
        let b = &mut self.buf;
        b.clear();
        let _ = write!(b, "{{\"type\":\"pos\",\"frame\":{},\"perf\":", p.frame);
        json_num(b, p.perf_time_s, 3);
        b.push_str(",\"score\":");
        json_num(b, p.score_time_s, 3);
        b.push_str(",\"heard\":");
        json_num(b, p.heard_score_s, 3);
        b.push_str(",\"beat\":");
        json_num(b, p.beat, 3);
        let _ = write!(b, ",\"bar\":{},\"bib\":", p.bar);
        json_num(b, p.beat_in_bar, 3);
        b.push_str(",\"tempo\":");
        json_num(b, p.tempo as f64, 3);
        b.push_str(",\"conf\":");
        json_num(b, p.confidence as f64, 3);
        b.push_str(",\"spread\":");
        json_num(b, p.spread_s as f64, 3);
        b.push_str(",\"level_db\":");
        json_num(b, level_db, 1);
        b.push_str(",\"dropped\":");
        json_num(b, dropped, 0);
        let _ = write!(b, ",\"key\":{},\"tuning\":", p.key_shift);
        json_num(b, p.tuning_cents as f64, 1);
        b.push_str(",\"cap_ms\":");
        json_num(b, self.clock.unix_ms(p.capture_wall_ns), 3);
        b.push_str(",\"t_ms\":");
        json_num(b, unix_ms(), 3);
        b.push('}');
        self.hub.publish(Arc::from(b.as_str()), Keep::Latest("pos"));
        self.stats.positions.fetch_add(1, Ordering::Relaxed);
        self.last_sent = Some(Instant::now());
    }

    fn flush_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            self.publish_position(&p);
        }
    }

    fn publish_fired(&mut self) {
        let mut new: Vec<FiredCue> = Vec::new();
        for (log, seen) in &mut self.fired {
            if let Ok(l) = log.lock() {
                if l.len() > *seen {
                    new.extend(l[*seen..].iter().cloned());
                    *seen = l.len();
                }
            }
        }
        for c in new {
            let msg = serde_json::json!({
                "type": "cue",
                "id": c.id,
                "cue_s": finite(c.cue_score_s),
                "at": finite(c.at_score_s),
                "perf": finite(c.perf_time_s),
                "manual": c.manual,
                "skipped": c.skipped,
                "sent_ms": self.clock.unix_ms(c.sent_wall_ns),
                "t_ms": unix_ms(),
            });
            self.hub
                .publish(Arc::from(msg.to_string()), Keep::Last("cue", 50));
        }
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some((x * 1e3).round() / 1e3)
}

impl Sink for WebSink {
    fn handle(&mut self, event: &Event) -> crate::Result<()> {
        match event {
            Event::Position(p) => {
                self.publish_fired();
                let due = match (self.period, self.last_sent) {
                    (Some(period), Some(last)) => last.elapsed() >= period,
                    _ => true,
                };
                if due {
                    self.pending = None;
                    self.publish_position(p);
                } else {
                    self.pending = Some(*p);
                    self.stats.thinned.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::Status(s) => {
                self.flush_pending();
                self.publish_fired();
                let msg = serde_json::json!({
                    "type": "status",
                    "kind": s.kind.as_str(),
                    "perf": finite(s.perf_time_s),
                    "dropped": s.dropped_samples,
                    "frames": s.frames,
                    "t_ms": unix_ms(),
                    "wall_ns": self.clock.now_ns(),
                });
                self.hub
                    .publish(Arc::from(msg.to_string()), Keep::Latest("status"));
            }
            Event::Relocation(r) => {
                self.flush_pending();
                let msg = serde_json::json!({
                    "type": "reloc",
                    "perf": finite(r.perf_time_s),
                    "from": finite(r.from_score_s),
                    "to": finite(r.to_score_s),
                    "confidence": r.confidence,
                    "t_ms": unix_ms(),
                });
                self.hub
                    .publish(Arc::from(msg.to_string()), Keep::Last("reloc", 50));
            }
            Event::Ambiguous(a) => {
                let candidates: Vec<serde_json::Value> = a
                    .candidates
                    .iter()
                    .map(|c| serde_json::json!({"score": finite(c.score_s), "bar": c.bar}))
                    .collect();
                let msg = serde_json::json!({
                    "type": "ambiguous",
                    "perf": finite(a.perf_time_s),
                    "candidates": candidates,
                    "t_ms": unix_ms(),
                });
                self.hub
                    .publish(Arc::from(msg.to_string()), Keep::Last("ambiguous", 20));
            }
            Event::Theme(t) => {
                let msg = serde_json::json!({
                    "type": "theme",
                    "id": t.theme_id,
                    "start": finite(t.start_s),
                    "end": finite(t.end_s),
                    "score": t.score,
                    "t_ms": unix_ms(),
                });
                self.hub
                    .publish(Arc::from(msg.to_string()), Keep::Last("theme", 20));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> crate::Result<()> {
        self.flush_pending();
        self.publish_fired();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{RelocationEvent, StatusEvent, StatusKind, ThemeEvent};

    fn pos(frame: u64, score: f64) -> PositionEvent {
        PositionEvent {
            frame,
            perf_time_s: frame as f64 * 0.02,
            score_time_s: score,
            heard_score_s: score,
            beat: f64::NAN,
            tempo: 1.0,
            confidence: 0.9,
            ..PositionEvent::default()
        }
    }

    fn drain(rx: &crossbeam_channel::Receiver<Arc<str>>) -> Vec<serde_json::Value> {
        rx.try_iter()
            .map(|m| serde_json::from_str(&m).unwrap_or_else(|e| panic!("{e}: {m}")))
            .collect()
    }

    #[test]
    fn events_become_json_messages() {
        let hub = Hub::new(100);
        let rx = hub.subscribe(None).unwrap_or_else(|| panic!("closed"));
        let log = FiredLog::default();
        let mut sink = WebSink::new(
            Arc::clone(&hub),
            None,
            None,
            vec![log.clone()],
            Instant::now(),
        );
        let ok = |r: crate::Result<()>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(sink.handle(&Event::Position(pos(1, 0.5))));
        ok(sink.handle(&Event::Status(StatusEvent {
            kind: StatusKind::Relocated,
            perf_time_s: 0.04,
            dropped_samples: 3,
            frames: 2,
        })));
        // The engine sends the jump itself right after its status.
        ok(sink.handle(&Event::Relocation(RelocationEvent {
            perf_time_s: 0.04,
            from_score_s: 0.5,
            to_score_s: 9.0,
            confidence: 0.8,
            key_shift: 0,
            capture_wall_ns: 1,
        })));
        if let Ok(mut l) = log.lock() {
            l.push(FiredCue {
                id: "go".into(),
                cue_score_s: 4.0,
                at_score_s: 4.01,
                perf_time_s: 5.0,
                capture_wall_ns: 1,
                sent_wall_ns: 2,
                skipped: false,
                manual: false,
                page: None,
            });
        }
        ok(sink.handle(&Event::Position(pos(2, 9.0))));
        ok(sink.handle(&Event::Theme(ThemeEvent {
            theme_id: "t1".into(),
            start_s: 1.0,
            end_s: 2.0,
            score: 0.5,
        })));
        let got = drain(&rx);
        let kinds: Vec<&str> = got.iter().filter_map(|m| m["type"].as_str()).collect();
        assert_eq!(kinds, ["pos", "status", "reloc", "cue", "pos", "theme"]);
        assert_eq!(got[0]["score"], 0.5);
        assert!(got[0]["beat"].is_null(), "NaN is null");
        assert!(got[0]["t_ms"].as_f64().is_some_and(|t| t > 1.6e12));
        assert_eq!(
            (got[2]["from"].as_f64(), got[2]["to"].as_f64()),
            (Some(0.5), Some(9.0))
        );
        assert_eq!(got[3]["id"], "go");
        assert_eq!(got[1]["kind"], "relocated");
    }

    #[test]
    fn a_set_rate_thins_positions_but_keeps_the_last() {
        let hub = Hub::new(1000);
        let rx = hub.subscribe(None).unwrap_or_else(|| panic!("closed"));
        let mut sink = WebSink::new(Arc::clone(&hub), Some(0.5), None, vec![], Instant::now());
        for k in 0..50 {
            let _ = sink.handle(&Event::Position(pos(k, k as f64)));
        }
        let _ = sink.finish();
        let got = drain(&rx);
        // Sent in a burst: the first, then the last (flushed at the end).
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1]["frame"], 49);
        assert_eq!(sink.stats.thinned.load(Ordering::Relaxed), 49);
    }

    #[test]
    fn commands_from_json() {
        let m = json_to_osc(br#"{"addr":"/scorefollow/seek_bar","args":[3]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.args, vec![OscType::Int(3)]);
        let m = json_to_osc(br#"{"addr":"/scorefollow/seek","args":[2.5]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.args, vec![OscType::Float(2.5)]);
        let m = json_to_osc(br#"{"addr":"/scorefollow/fire","args":["go"]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.args, vec![OscType::String("go".into())]);
        assert!(json_to_osc(br#"{"addr":"/scorefollow/stop"}"#).is_ok_and(|m| m.args.is_empty()));
        for bad in [
            &b"x"[..],
            b"{}",
            br#"{"addr":1}"#,
            br#"{"addr":"/a","args":[true]}"#,
            br#"{"addr":"/a","args":3}"#,
        ] {
            assert!(
                json_to_osc(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
