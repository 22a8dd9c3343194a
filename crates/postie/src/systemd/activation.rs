//! Socket activation (sd_listen_fds(3)): sockets systemd bound for us arrive as descriptors
//! 3, 4, … with `LISTEN_PID` naming this process, `LISTEN_FDS` their number and
//! `LISTEN_FDNAMES` their `FileDescriptorName=`s.
//!
//! Each inherited socket stands in for the configured listener with the same address (or
//! the same port, when either side is a wildcard address such as `[::]`), so one
//! configuration works with and without socket activation. A socket named after a listener
//! kind (pop3, pop3s, lmtp, smtp, http) only stands in for that kind.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The first inherited descriptor (after stdin, stdout and stderr).
const FIRST_FD: RawFd = 3;
const KINDS: [&str; 5] = ["pop3", "pop3s", "lmtp", "smtp", "http"];

#[derive(Debug)]
struct Socket {
    name: String,
    address: Address,
    fd: OwnedFd,
}

#[derive(Debug, Clone)]
enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The sockets systemd passed and no listener has taken yet.
#[derive(Debug, Default)]
pub struct Activated {
    sockets: Vec<Socket>,
}

impl Activated {
    /// Takes the sockets passed to this process, if any, and clears the variables so that
    /// nothing started later mistakes them for its own.
    pub fn from_env() -> Result<Self> {
        let pid = std::env::var("LISTEN_PID").ok();
        let count = std::env::var("LISTEN_FDS").ok();
        let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
        for variable in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(variable);
        }
        let (Some(pid), Some(count)) = (pid, count) else {
            return Ok(Activated::default());
        };
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            // Meant for the process that started us.
            return Ok(Activated::default());
        }
        let Ok(count) = count.parse::<RawFd>() else {
            bail!("LISTEN_FDS={count:?} is not a number: check the systemd socket unit");
        };
        let names: Vec<&str> = names.split(':').collect();
        let mut sockets = Vec::new();
        for (i, fd) in (FIRST_FD..FIRST_FD.saturating_add(count)).enumerate() {
            // SAFETY: F_GETFD only asks whether the descriptor is open.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                bail!("LISTEN_FDS={count} names descriptor {fd}, which is not open: check the systemd socket unit");
            }
            // SAFETY: systemd passes descriptors FIRST_FD.. FIRST_FD+count open and owned
            // by this process (checked open just above); each is wrapped once.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            set_cloexec(&fd);
            let address = match local_address(&fd) {
                Some(address) => address,
                None => bail!("inherited descriptor {fd:?} is not a TCP or Unix stream socket: check the systemd socket unit"),
            };
            sockets.push(Socket {
                name: names.get(i).copied().unwrap_or_default().to_owned(),
                address,
                fd,
            });
        }
        Ok(Activated { sockets })
    }

    /// The inherited TCP socket for the configured `addr` of listener `kind`.
    pub fn take_tcp(&mut self, kind: &str, addr: SocketAddr) -> Option<std::net::TcpListener> {
        let index = self.sockets.iter().position(|s| {
            fits(&s.name, kind)
                && matches!(&s.address, Address::Tcp(bound) if same_listener(*bound, addr))
        })?;
        Some(std::net::TcpListener::from(self.sockets.remove(index).fd))
    }

    /// The inherited Unix socket at `path` for listener `kind`.
    pub fn take_unix(&mut self, kind: &str, path: &Path) -> Option<UnixListener> {
        let index = self.sockets.iter().position(|s| {
            fits(&s.name, kind) && matches!(&s.address, Address::Unix(bound) if bound == path)
        })?;
        Some(UnixListener::from(self.sockets.remove(index).fd))
    }

    /// What no listener took: sockets the configuration does not name.
    pub fn leftovers(&self) -> Vec<String> {
        self.sockets
            .iter()
            .map(|s| match &s.address {
                Address::Tcp(addr) => format!("{addr} (name {:?})", s.name),
                Address::Unix(path) => format!("unix:{} (name {:?})", path.display(), s.name),
            })
            .collect()
    }
}

fn fits(name: &str, kind: &str) -> bool {
    name == kind || !KINDS.contains(&name)
}

fn same_listener(bound: SocketAddr, configured: SocketAddr) -> bool {
    bound == configured
        || (bound.port() == configured.port()
            && (bound.ip().is_unspecified() || configured.ip().is_unspecified()))
}

fn set_cloexec(fd: &OwnedFd) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFD/F_SETFD on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// The bound address of a listening stream socket.
fn local_address(fd: &OwnedFd) -> Option<Address> {
    use std::os::fd::AsRawFd;
    let mut kind: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into `kind`, whose size `length` states.
    let status = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut length,
        )
    };
    if status != 0 || kind != libc::SOCK_STREAM {
        return None;
    }
    let duplicate = fd.try_clone().ok()?;
    if let Ok(addr) = std::net::TcpListener::from(duplicate).local_addr() {
        return Some(Address::Tcp(addr));
    }
    let duplicate = fd.try_clone().ok()?;
    let addr = UnixListener::from(duplicate).local_addr().ok()?;
    Some(Address::Unix(addr.as_pathname()?.to_owned()))
}
