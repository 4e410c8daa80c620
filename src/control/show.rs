//! One `follow` run's show: its cue lists and page turns (sinks), checked against the score
//! before any audio starts, and its remote-control server.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::server::{bind_control, ControlServer};
use super::{AllowList, Commander, ControlCommand};
use crate::output::cues::{CueList, CueSink, FiredCue, FiredLog, FiringObserver};
use crate::output::osc::SendOptions;
use crate::output::Sink;
use crate::score::reference::Reference;
use crate::Error;

/// Cues, page turns and remote control for one `follow` run, validated before the audio
/// starts ([`ShowSetup::load`]) and started with the capture ([`ShowSetup::start`]).
pub struct ShowSetup {
    /// The cue file's list (if any) first, then the page file's.
    cues: Vec<CueList>,
    /// Whether `cues[0]` is the cue file's (not the page file's).
    has_cue_file: bool,
    control: Option<UdpSocket>,
    allow: AllowList,
    send: SendOptions,
    /// Told of every firing of every list (the JSON-lines log).
    observers: Vec<Arc<dyn FiringObserver>>,
    /// Told of every firing of the cue file's list only (the cue log).
    cue_file_observers: Vec<Arc<dyn FiringObserver>>,
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
    /// Control messages accepted and refused (malformed or unknown).
    pub control: Option<(u64, u64)>,
    /// Control datagrams ignored because their sender was not allowed (added in this
    /// version).
    pub control_ignored: u64,
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
            write!(f, "remote control: {ok} messages accepted, {bad} refused")?;
            if self.control_ignored > 0 {
                let n = self.control_ignored;
                let s = if n == 1 { "" } else { "s" };
                write!(f, ", {n} datagram{s} from senders not allowed ignored")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

impl ShowSetup {
    /// Load and check everything: the cue file, the page file (its turns go to
    /// `osc_targets`, `page_lead_ms` early; without one, the page breaks of a MusicXML
    /// score with more than one page), and bind the control address. The control
    /// server obeys [`AllowList::default_for`] the OSC targets unless
    /// [`with_control_allow`](Self::with_control_allow) says otherwise.
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
        let has_cue_file = !lists.is_empty();
        if let Some(p) = pages {
            lists.push(CueList::load_pages(
                p,
                reference,
                page_lead_ms / 1000.0,
                osc_targets.to_vec(),
            )?);
        } else if !osc_targets.is_empty() {
            // Without a page file, a printed score's own page breaks turn the pages.
            lists.extend(CueList::score_pages(
                reference,
                page_lead_ms / 1000.0,
                osc_targets.to_vec(),
            )?);
        }
        let control = match control {
            Some(text) => {
                let addr = crate::output::osc::parse_target(text).map_err(|e| match e {
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
            has_cue_file,
            control,
            allow: AllowList::default_for(osc_targets),
            send: SendOptions::default(),
            observers: Vec::new(),
            cue_file_observers: Vec::new(),
        })
    }

    /// Obey only these senders (`--control-allow`).
    pub fn with_control_allow(mut self, allow: AllowList) -> Self {
        self.allow = allow;
        self
    }

    /// Set up the cue sinks' sockets with these options (multicast TTL and interface).
    pub fn with_send_options(mut self, send: SendOptions) -> Self {
        self.send = send;
        self
    }

    /// Tell `observer` of every firing, cues and page turns (the JSON-lines log).
    pub fn observe_all(mut self, observer: Arc<dyn FiringObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Tell `observer` of every firing of the cue file's cues (the cue log).
    pub fn observe_cues(mut self, observer: Arc<dyn FiringObserver>) -> Self {
        self.cue_file_observers.push(observer);
        self
    }

    /// Whether a cue file was given (a cue log needs one).
    pub fn has_cue_file(&self) -> bool {
        self.has_cue_file
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
        for (k, list) in self.cues.into_iter().enumerate() {
            let mut sink = CueSink::with_options(list, epoch, &self.send)?;
            for o in &self.observers {
                sink.observe(Arc::clone(o));
            }
            if k == 0 && self.has_cue_file {
                for o in &self.cue_file_observers {
                    sink.observe(Arc::clone(o));
                }
            }
            logs.push(sink.log());
            handles.push(sink.cue_handle());
            sinks.push(Box::new(sink));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let commander = Commander::new(tx, handles, quit);
        let server = match self.control {
            Some(socket) => {
                let server = ControlServer::spawn_on(
                    socket,
                    reference,
                    commander.clone(),
                    self.allow.clone(),
                )?;
                tracing::info!(
                    "remote control on {}, from {}",
                    server.local_addr,
                    self.allow
                );
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
    /// The receiver of control commands for [`crate::engine::Source::control`] (once).
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
        // Counted over every transport (OSC and the live view).
        let stats = self.commander.stats();
        let (ok, bad) = (
            stats.accepted.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
        );
        let control = (self.server.is_some() || ok + bad > 0).then_some((ok, bad));
        let control_ignored = stats.refused.load(Ordering::Relaxed);
        let fired = self
            .logs
            .iter()
            .flat_map(|l| l.lock().map(|v| v.clone()).unwrap_or_default())
            .collect();
        ShowReport {
            fired,
            control,
            control_ignored,
        }
    }
}
