//! systemd integration: sockets passed by socket activation are served instead of bound,
//! and readiness, reloading and stopping are reported over $NOTIFY_SOCKET.

mod common;

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::ServerBuilder;

#[test]
fn inherited_sockets_are_served() {
    // Held open here too, so a server that bound the addresses itself would fail.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls = TcpListener::bind("127.0.0.1:0").unwrap();
    let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
    // As systemd does: descriptors 3 and 4, and LISTEN_PID naming the process that execs
    // postie (the shell's own pid, which exec keeps).
    let builder = ServerBuilder::new()
        .pop3_listen(plain_addr, tls_addr)
        .launcher(&[
            "sh",
            "-c",
            "LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=postie.socket:postie.socket exec \"$@\"",
            "sh",
        ]);
    let fds = [plain.as_raw_fd(), tls.as_raw_fd()];
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    let builder = unsafe {
        builder.pre_exec(move || {
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
        })
    };
    let server = builder.start();
    assert_eq!((server.plain, server.tls), (plain_addr, tls_addr));
    let mut client = server.tls_client();
    client.login("alice", "wonderland");
    assert!(client.command("QUIT").starts_with("+OK"));
    let mut client = server.plain_client().stls(&server.cert_pem);
    client.login("bob", "pass word with spaces");
}

#[test]
fn readiness_reloading_and_stopping_are_notified() {
    let notify_dir = tempfile::tempdir().unwrap();
    let socket_path = notify_dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut server = ServerBuilder::new()
        .env("NOTIFY_SOCKET", &socket_path)
        .start();
    let next = || {
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    assert!(next().starts_with("READY=1\n"));
    server.reload();
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(next().starts_with("READY=1\n"));
    server.stop();
    assert!(next().starts_with("STOPPING=1\n"));
    assert!(server.wait_exit(Duration::from_secs(30)));
}
