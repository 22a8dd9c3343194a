//! `postie fetch --daemon`: poll every account on a schedule; SIGUSR1 polls at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static POLL_NOW: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr1(_: libc::c_int) {
    POLL_NOW.store(true, Ordering::SeqCst);
}

/// Installs the SIGUSR1 handler.
pub fn install_signal() -> std::io::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let previous =
        unsafe { libc::signal(libc::SIGUSR1, on_sigusr1 as *const () as libc::sighandler_t) };
    if previous == libc::SIG_ERR {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sleeps until `interval` has passed or SIGUSR1 arrives; true if woken by the signal.
pub fn wait(interval: Duration) -> bool {
    let deadline = Instant::now() + interval;
    // Checking a flag every 200 ms costs nothing and needs no self-pipe.
    while Instant::now() < deadline {
        if POLL_NOW.swap(false, Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200).min(deadline - Instant::now()));
    }
    POLL_NOW.swap(false, Ordering::SeqCst)
}
