//! The daemon's signals: SIGUSR1 polls every account at once, SIGHUP re-reads the
//! configuration. The handlers only set flags, which the scheduler's loop takes.

use std::sync::atomic::{AtomicBool, Ordering};

static POLL_NOW: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr1(_: libc::c_int) {
    POLL_NOW.store(true, Ordering::SeqCst);
}

extern "C" fn on_sighup(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

/// Installs both handlers.
pub fn install() -> std::io::Result<()> {
    for (signal, handler) in [
        (libc::SIGUSR1, on_sigusr1 as extern "C" fn(libc::c_int)),
        (libc::SIGHUP, on_sighup as extern "C" fn(libc::c_int)),
    ] {
        // SAFETY: the handlers only store to an atomic, which is async-signal-safe.
        let previous = unsafe { libc::signal(signal, handler as *const () as libc::sighandler_t) };
        if previous == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True once after each SIGUSR1.
pub fn take_poll_now() -> bool {
    POLL_NOW.swap(false, Ordering::SeqCst)
}

/// True once after each SIGHUP.
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}
