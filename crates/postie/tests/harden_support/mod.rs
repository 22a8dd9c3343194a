//! Support for the hardening tests: connections from chosen loopback addresses, the open-file
//! limit, what a maildrop holds as POP3 shows it, scratch filesystems and loop counts.
#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::Client;

/// What a maildrop holds as POP3 shows it: UIDL to content. Logs in, reads everything, and
/// leaves with QUIT without deleting.
pub fn pop3_view(addr: SocketAddr, user: &str, password: &str) -> BTreeMap<String, Vec<u8>> {
    let mut client = Client::plain(addr);
    client.login(user, password);
    let answer = client.command("UIDL");
    assert!(answer.starts_with("+OK"), "{answer}");
    let listing = client.body();
    let mut view = BTreeMap::new();
    for line in String::from_utf8(listing).unwrap().lines() {
        let (number, uidl) = line.split_once(' ').unwrap();
        let content = client.retr(number.parse().unwrap());
        assert!(
            view.insert(uidl.to_owned(), content).is_none(),
            "UIDL {uidl} twice"
        );
    }
    assert!(client.command("QUIT").starts_with("+OK"));
    view
}

/// A TCP connection from `source` (any 127.0.0.0/8 address works on Linux loopback).
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only")
    };
    // SAFETY: plain socket calls on a descriptor this function owns until TcpStream takes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        // Ports are chosen at connect time, per destination: 20,000 sockets fit.
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let address = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = address(source, 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = address(*to.ip(), to.port());
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// A POP3 client connected from `source`.
pub fn client_from(source: Ipv4Addr, to: SocketAddr) -> Client {
    let stream = connect_from(source, to).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    Client::over_tcp(stream)
}

/// Raises this process's open-file limit towards `want` and returns the limit it got. Root
/// with CAP_SYS_RESOURCE (as in CI) gets `want`; without it, the soft limit goes up to the
/// hard one, and the caller scales down and says so.
pub fn raise_open_files(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur >= want {
            return limit.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: limit.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        let error = std::io::Error::last_os_error();
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
            0,
            "cannot raise the soft open-file limit"
        );
        eprintln!(
            "NOTE: the open-file limit cannot go above its hard limit {} here ({error}: root without \
             CAP_SYS_RESOURCE); the test runs scaled to it",
            limit.rlim_max
        );
        limit.rlim_max
    }
}

/// The resident memory of a process now, and its peak, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A scratch filesystem: a tmpfs of `size` (mount(8) syntax) mounted on `at`, unmounted on drop.
pub struct Mount {
    at: PathBuf,
}

impl Mount {
    pub fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        run_mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at);
        Mount {
            at: at.to_path_buf(),
        }
    }

    pub fn remount_read_only(&self) {
        run_mount(&["-o", "remount,ro"], &self.at);
    }

    pub fn remount_read_write(&self) {
        run_mount(&["-o", "remount,rw"], &self.at);
    }
}

fn run_mount(args: &[&str], at: &Path) {
    let output = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .expect("run mount");
    assert!(
        output.status.success(),
        "this test needs to mount a tmpfs (run it as root, as CI does): mount {args:?} {}: {}",
        at.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// How many rounds a loop test runs: `default` in the normal test run, more when the long-run
/// command (scripts/crash-loop) sets `variable`.
pub fn rounds(variable: &str, default: u32) -> u32 {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads whatever arrives within `wait`.
pub fn read_for(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}
