//! Every TCP address in the configuration: free to bind (or the reason not), and the
//! settings around listeners that deserve a second look.

use std::io::ErrorKind;
use std::net::SocketAddr;

use postie_intake::Listen;

use super::report::Report;
use crate::privileges;
use postie::config::Config;

pub(super) fn check(config: &Config, report: &mut Report) {
    let mut addresses: Vec<(&str, SocketAddr)> = Vec::new();
    addresses.extend(config.pop3.listen.iter().map(|a| ("[pop3] listen", *a)));
    addresses.extend(
        config
            .pop3
            .listen_tls
            .iter()
            .map(|a| ("[pop3] listen_tls", *a)),
    );
    for listen in &config.intake.lmtp_listen {
        match listen {
            Listen::Tcp(addr) => addresses.push(("[lmtp] listen", *addr)),
            Listen::Unix(path) => match path.parent() {
                Some(dir) if dir.is_dir() => {
                    report.ok(format!("[lmtp] listen unix:{}", path.display()))
                }
                _ => report.ok(format!(
                    "[lmtp] listen unix:{}: its folder is created at start",
                    path.display()
                )),
            },
        }
    }
    addresses.extend(
        config
            .intake
            .smtp_listen
            .iter()
            .map(|a| ("[smtp] listen", *a)),
    );
    addresses.extend(config.http_listen.iter().map(|a| ("[http] listen", *a)));
    for (what, addr) in addresses {
        if addr.port() == 0 {
            report.ok(format!("{what} {addr}: any free port"));
            continue;
        }
        match std::net::TcpListener::bind(addr) {
            Ok(_) => report.ok(format!("{what} {addr}: free")),
            Err(error) if error.kind() == ErrorKind::AddrInUse => report.warning(
                format!("{what} {addr}: in use"),
                "if postie is running this is expected (systemctl status postie); otherwise stop the other server (ss -ltnp)",
            ),
            Err(error) if error.kind() == ErrorKind::PermissionDenied && !privileges::is_root() => report.warning(
                format!("{what} {addr}: ports below 1024 need privilege"),
                "start serve as root with user = \"postie\", or use the systemd units (socket activation or CAP_NET_BIND_SERVICE)",
            ),
            Err(error) if error.kind() == ErrorKind::AddrNotAvailable => report.error(
                format!("{what} {addr}: no such local address"),
                "name an address of this machine, or 0.0.0.0 / [::] for all",
            ),
            Err(error) => report.error(format!("{what} {addr}: {error}"), "name another address or port"),
        }
    }
    for (what, networks) in [
        ("[pop3] proxy_from", &config.pop3.proxy_from),
        ("[lmtp] proxy_from", &config.intake.lmtp_proxy_from),
        ("[smtp] proxy_from", &config.intake.smtp_proxy_from),
    ] {
        if networks.to_string().contains("/0") {
            report.warning(
                format!("{what} = {networks}: any client may claim any address"),
                "name only the load balancers' networks",
            );
        }
    }
    for addr in &config.http_listen {
        if !addr.ip().is_loopback() {
            report.warning(
                format!("[http] listen {addr}: /metrics is served beyond this machine"),
                "listen on 127.0.0.1 behind a reverse proxy, or restrict /metrics in a firewall",
            );
        }
    }
    if config.pop3.allow_plaintext_auth {
        report.warning(
            "[pop3] allow_plaintext_auth = true: passwords may cross the network unencrypted",
            "set it to false; clients use STLS or port 995",
        );
    }
}
