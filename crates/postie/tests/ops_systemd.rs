//! systemd integration: sockets passed by socket activation are served instead of bound,
//! and readiness, reloading and stopping are reported over $NOTIFY_SOCKET.

mod common;
mod ops_support;

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::{BIN, USERS};
use ops_support::{config, write_cert, OpsServer};

#[test]
fn inherited_sockets_are_served() {
    // Held open here too, so a server that bound the addresses itself would fail.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls = TcpListener::bind("127.0.0.1:0").unwrap();
    let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = write_cert(dir.path());
    std::fs::write(dir.path().join("users"), USERS).unwrap();
    let text = config("", "", "").replace(
        "listen = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]",
        &format!("listen = [\"{plain_addr}\"]\nlisten_tls = [\"{tls_addr}\"]"),
    );
    std::fs::write(dir.path().join("postie.toml"), text).unwrap();
    // As systemd does: descriptors 3 and 4, and LISTEN_PID naming the process that execs
    // postie (the shell's own pid, which exec keeps).
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=postie.socket:postie.socket exec \"$0\" serve --allow-root --config \"$1\"")
        .arg(BIN)
        .arg(dir.path().join("postie.toml"));
    let fds = [plain.as_raw_fd(), tls.as_raw_fd()];
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Out of the way first, so that dup2 onto 3 cannot close the other one.
            let high: Vec<_> = fds
                .iter()
                .map(|&fd| libc::fcntl(fd, libc::F_DUPFD, 100))
                .collect();
            for (target, fd) in (3..).zip(high) {
                if fd < 0 || libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let server = OpsServer::spawn(dir, cert_pem, command);
    assert_eq!((server.plain, server.tls), (plain_addr, tls_addr));
    let mut client = server.tls_client();
    client.login("alice", "wonderland");
    assert!(client.command("QUIT").starts_with("+OK"));
    let mut client = server.plain_client().stls(&server.cert_pem);
    client.login("bob", "pass word with spaces");
}

#[test]
fn readiness_reloading_and_stopping_are_notified() {
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = write_cert(dir.path());
    std::fs::write(dir.path().join("users"), USERS).unwrap();
    std::fs::write(dir.path().join("postie.toml"), config("", "", "")).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--allow-root", "--config"])
        .arg(dir.path().join("postie.toml"))
        .env("NOTIFY_SOCKET", &socket_path);
    let mut server = OpsServer::spawn(dir, cert_pem, command);
    let next = || {
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    assert!(next().starts_with("READY=1\n"));
    server.signal(libc::SIGHUP);
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(next().starts_with("READY=1\n"));
    server.signal(libc::SIGTERM);
    assert!(next().starts_with("STOPPING=1\n"));
    assert!(server.wait_exit(Duration::from_secs(30)));
}
