//! The one path from a control request to its effect and its answer, shared by the OSC
//! server ([`super::server`]) and the browser's live view ([`crate::web::live`]), so both
//! transports do the same thing and say the same thing back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use rosc::{OscMessage, OscType};

use super::{ControlCommand, ControlStats, Request};
use crate::output::cues::CueHandle;
use crate::output::osc::address;

/// Carries out control requests: engine commands go to the follow loop, `/fire` to the cue
/// lists (tried in turn), `/quit` raises the run's stop flag.
#[derive(Clone)]
pub struct Commander {
    commands: Sender<ControlCommand>,
    cues: Vec<CueHandle>,
    quit: Arc<AtomicBool>,
    stats: Arc<ControlStats>,
}

impl Commander {
    /// Commands go to `commands`, cues fire through `cues`, quit sets `quit`.
    pub fn new(
        commands: Sender<ControlCommand>,
        cues: Vec<CueHandle>,
        quit: Arc<AtomicBool>,
    ) -> Self {
        Self {
            commands,
            cues,
            quit,
            stats: Arc::default(),
        }
    }

    /// Requests accepted and refused so far, from every transport.
    pub fn stats(&self) -> &Arc<ControlStats> {
        &self.stats
    }

    /// Carry out one interpreted message `msg` (from `from`, for the log) and build its
    /// answer: `/scorefollow/ack` with the address received then its arguments, or
    /// `/scorefollow/error` with the reason and the number of refusals so far.
    pub fn answer(
        &self,
        request: Result<Request, String>,
        msg: OscMessage,
        from: &str,
    ) -> OscMessage {
        let done = request.and_then(|r| match r {
            Request::Engine(cmd) => {
                if matches!(cmd, ControlCommand::Reset | ControlCommand::Seek { .. }) {
                    // A deliberate discontinuity: cues passed by it count as skipped.
                    self.cues.iter().for_each(CueHandle::forget_position);
                }
                self.commands
                    .send(cmd)
                    .map_err(|_| "following has ended".to_string())
            }
            Request::Fire(id) => {
                if self.cues.iter().any(|c| c.fire(&id)) {
                    Ok(())
                } else {
                    Err(format!("{}: no cue '{id}'", address::FIRE))
                }
            }
            Request::Quit => {
                self.quit.store(true, Ordering::Relaxed);
                Ok(())
            }
        });
        match done {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                let mut args = vec![OscType::String(msg.addr)];
                args.extend(msg.args);
                OscMessage {
                    addr: address::ACK.into(),
                    args,
                }
            }
            Err(reason) => {
                let count = self.stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!("control message from {from}: {reason}");
                OscMessage {
                    addr: address::ERROR.into(),
                    args: vec![
                        OscType::String(reason),
                        OscType::Int(count.min(i32::MAX as u64) as i32),
                    ],
                }
            }
        }
    }
}
