//! SIGINT and SIGTERM end `follow` cleanly: the handler only raises the run's stop flag (an
//! atomic store, async-signal-safe), and the follow loop closes the input, follows what was
//! captured, and ends as if the input had ended. The handler is installed with
//! `SA_RESETHAND`, so a second signal ends the process at once, as it would have without it.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

/// The flag the handler raises (set once, before the handler is installed).
static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// The signal received (0 = none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Raise `stop` on SIGINT or SIGTERM from now on. Call once per process; a later call keeps
/// the first flag (the handler can only ever see one).
pub fn stop_on_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    if STOP.set(stop).is_err() {
        anyhow::bail!("the signal handler is already installed");
    }
    imp::install()
}

/// The name of the signal that stopped the run, if one did.
pub fn received() -> Option<&'static str> {
    imp::name(RECEIVED.load(Ordering::Relaxed))
}

/// What the handler does: two atomic stores, nothing else (no allocation, lock or I/O).
fn on_signal(signum: i32) {
    RECEIVED.store(signum, Ordering::Relaxed);
    if let Some(flag) = STOP.get() {
        flag.store(true, Ordering::Relaxed);
    }
}

#[cfg(unix)]
mod imp {
    extern "C" fn handler(signum: libc::c_int) {
        super::on_signal(signum);
    }

    pub fn install() -> anyhow::Result<()> {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: `sigaction` is given a zeroed, then filled, struct that outlives the
            // call; the handler only performs atomic stores (async-signal-safe).
            let ok = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut()) == 0
            };
            if !ok {
                anyhow::bail!(
                    "cannot install the signal handler: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(())
    }

    pub fn name(signum: i32) -> Option<&'static str> {
        match signum {
            libc::SIGINT => Some("SIGINT"),
            libc::SIGTERM => Some("SIGTERM"),
            _ => None,
        }
    }
}

#[cfg(not(unix))]
mod imp {
    /// Elsewhere Ctrl-C ends the process as before; `/scorefollow/quit` still stops cleanly.
    pub fn install() -> anyhow::Result<()> {
        Ok(())
    }

    pub fn name(_signum: i32) -> Option<&'static str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handler's work, without a signal: the flag is raised and the signal remembered.
    #[cfg(unix)]
    #[test]
    fn the_handler_raises_the_flag() {
        let flag = Arc::new(AtomicBool::new(false));
        // Other tests of this binary do not install it; if one did, its flag is the one seen.
        let _ = STOP.set(Arc::clone(&flag));
        let seen = STOP.get().map(Arc::clone).unwrap_or_default();
        on_signal(libc::SIGTERM);
        assert!(seen.load(Ordering::Relaxed));
        assert_eq!(received(), Some("SIGTERM"));
    }
}
