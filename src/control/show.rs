//! One `follow` run's show: its cue lists and page turns (sinks), checked against the score
//! before any audio starts, and its remote-control server.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::server::{bind_control, ControlServer};
use super::{Commander, ControlCommand};
use crate::output::cues::{CueList, CueSink, FiredCue, FiredLog};
use crate::output::Sink;
use crate::score::reference::Reference;
use crate::Error;

/// Cues, page turns and remote control for one `follow` run, validated before the audio
/// starts ([`ShowSetup::load`]) and started with the capture ([`ShowSetup::start`]).
pub struct ShowSetup {
    cues: Vec<CueList>,
    control: Option<UdpSocket>,
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
    /// Control messages accepted and refused.
    pub control: Option<(u64, u64)>,
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
            writeln!(f, "remote control: {ok} messages accepted, {bad} refused")?;
        }
        Ok(())
    }
}

impl ShowSetup {
    /// Load and check everything: the cue file, the page file (its turns go to
    /// `osc_targets`, `page_lead_ms` early), and bind the control address.
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
        if let Some(p) = pages {
            lists.push(CueList::load_pages(
                p,
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
            control,
        })
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
        for list in self.cues {
            let sink = CueSink::new(list, epoch)?;
            logs.push(sink.log());
            handles.push(sink.cue_handle());
            sinks.push(Box::new(sink));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let commander = Commander::new(tx, handles, quit);
        let server = match self.control {
            Some(socket) => {
                let server = ControlServer::spawn_on(socket, reference, commander.clone())?;
                tracing::info!("remote control on {}", server.local_addr);
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
        let fired = self
            .logs
            .iter()
            .flat_map(|l| l.lock().map(|v| v.clone()).unwrap_or_default())
            .collect();
        ShowReport { fired, control }
    }
}
