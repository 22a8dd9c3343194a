//! The open-file limit: raised as far as allowed at start, and the POP3 connection maximum
//! kept under it, at start and at every reload.

use tracing::warn;

use postie::config::Config;

/// Every connection is a descriptor, and every open maildrop briefly one or two more: the
/// usual soft limit of 1024 (or a hard limit set for interactive shells) would cap the
/// server far below its `max_connections`.
pub fn raise_open_file_limit() -> Option<u64> {
    const WANTED: libc::rlim_t = 1 << 20;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit are given a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        // Raising the hard limit needs privilege; without it, the soft limit goes up to the hard one.
        let raised = libc::rlimit {
            rlim_cur: WANTED.max(limit.rlim_cur),
            rlim_max: WANTED.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return Some(raised.rlim_cur);
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    Some(limit.rlim_cur)
}

/// Descriptors kept free of POP3 sessions: listeners, maildrop and index files, intake and
/// HTTP connections, the log.
const RESERVED_FILES: u64 = 512;

/// A server that runs out of descriptors refuses connections at accept, before it can say
/// why; below the limit it answers `-ERR [SYS/TEMP]` instead. So `max_connections` is kept
/// under what the process may open.
pub fn cap_connections(config: &mut Config, open_files: Option<u64>) {
    let Some(open_files) = open_files else { return };
    let fits = usize::try_from(open_files.saturating_sub(RESERVED_FILES))
        .unwrap_or(usize::MAX)
        .max(1);
    if config.pop3.max_connections > fits {
        warn!(
            configured = config.pop3.max_connections,
            used = fits,
            open_file_limit = open_files,
            "[pop3] max_connections is above what the open-file limit allows; raise the limit (LimitNOFILE= under systemd) to serve more"
        );
        config.pop3.max_connections = fits;
    }
}
