//! The metrics postie keeps, by name.

use crate::family::{Counter, Family, Gauge, Kind};
use crate::histogram::Histogram;

/// Session lengths: from a quick check to a long idle client (seconds).
const SESSION_BOUNDS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];
/// RETR from the command to the last byte handed to the socket (seconds).
const RETR_BOUNDS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];
/// Waits for a pooled database connection: from a moment's contention to the 30 s limit.
const POOL_WAIT_BOUNDS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0];

/// Every metric of the process. Label values used across postie:
/// `listener`: pop3, pop3s, lmtp, smtp, http; `outcome` of a login: ok, rejected, error,
/// login_delay; `mechanism`: USER, APOP, PLAIN, LOGIN, SCRAM-SHA-256. The `db_` metrics are
/// the PostgreSQL store's (zero with Maildir): `sqlstate` of a retry is 40001, 40P01, 57P01,
/// 57P02, 57P03, 25006 or `connection` (broken, or no host taking writes); a lease conflict's
/// `result` is in_use (a login refused) or taken_over (a QUIT refused after its lease expired
/// and was taken); an in-doubt commit's `outcome` is committed, absent or unresolved.
#[derive(Debug)]
pub struct Metrics {
    pub connections_open: Family<1>,
    pub connections: Family<1>,
    pub connections_refused: Family<2>,
    pub logins: Family<2>,
    pub commands: Family<1>,
    pub bytes_sent: Counter,
    pub bodies_sent: Family<1>,
    pub deliveries: Family<1>,
    pub auth_delays: Counter,
    pub auth_delay_ms: Counter,
    pub tls_handshakes: Family<2>,
    pub proxy_headers: Family<2>,
    pub reloads: Family<1>,
    pub session_duration: Histogram<10>,
    pub retr_duration: Histogram<10>,
    pub db_pool_wait: Histogram<10>,
    pub db_retries: Family<1>,
    pub db_lease_conflicts: Family<1>,
    pub db_in_doubt_commits: Family<1>,
    pub db_sweep_backlog: Gauge,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics {
    connections_open: Family::new(
        "postie_connections_open",
        "Connections open now, by listener.",
        Kind::Gauge,
        ["listener"],
    ),
    connections: Family::new(
        "postie_connections_total",
        "Connections accepted, by listener.",
        Kind::Counter,
        ["listener"],
    ),
    connections_refused: Family::new(
        "postie_connections_refused_total",
        "Connections turned away by the connection limits, by listener and reason.",
        Kind::Counter,
        ["listener", "reason"],
    ),
    logins: Family::new(
        "postie_logins_total",
        "POP3 logins, by outcome and mechanism.",
        Kind::Counter,
        ["outcome", "mechanism"],
    ),
    commands: Family::new(
        "postie_pop3_commands_total",
        "POP3 commands received, by verb (invalid for lines that are no command).",
        Kind::Counter,
        ["verb"],
    ),
    bytes_sent: Counter::new(
        "postie_pop3_bytes_sent_total",
        "Bytes sent to POP3 clients (before TLS).",
    ),
    bodies_sent: Family::new(
        "postie_pop3_bodies_sent_total",
        "Message bodies sent (RETR and TOP), by path: sendfile (plain TCP, from the page cache \
         to the socket, as stored), ktls (the same on kernel TLS, the kernel encrypting), copy \
         (TLS in user space, read as stored and written with no encoder pass) or encoder (read, encoded and written: TOP, mail not stored in CRLF form or \
         with more dot lines than its name records).",
        Kind::Counter,
        ["path"],
    ),
    deliveries: Family::new(
        "postie_deliveries_total",
        "Deliveries into maildrops (one per recipient), by outcome.",
        Kind::Counter,
        ["outcome"],
    ),
    auth_delays: Counter::new(
        "postie_auth_delays_total",
        "Failed logins answered after a brute-force delay.",
    ),
    auth_delay_ms: Counter::new(
        "postie_auth_delay_milliseconds_total",
        "Time spent in brute-force delays.",
    ),
    tls_handshakes: Family::new(
        "postie_tls_handshakes_total",
        "TLS handshakes (implicit TLS, STLS, STARTTLS), by listener and result.",
        Kind::Counter,
        ["listener", "result"],
    ),
    proxy_headers: Family::new(
        "postie_proxy_headers_total",
        "PROXY protocol headers, by listener and result (accepted, refused, untrusted).",
        Kind::Counter,
        ["listener", "result"],
    ),
    reloads: Family::new(
        "postie_reloads_total",
        "Reloads on SIGHUP, by result.",
        Kind::Counter,
        ["result"],
    ),
    session_duration: Histogram::new(
        "postie_pop3_session_duration_seconds",
        "POP3 session lengths.",
        SESSION_BOUNDS,
    ),
    retr_duration: Histogram::new(
        "postie_pop3_retr_duration_seconds",
        "Time to send one message (RETR), from the command to the last byte.",
        RETR_BOUNDS,
    ),
    db_pool_wait: Histogram::new(
        "postie_db_pool_wait_seconds",
        "Waits for a free pooled database connection, when none was free.",
        POOL_WAIT_BOUNDS,
    ),
    db_retries: Family::new(
        "postie_db_transaction_retries_total",
        "Database transactions run again, by the SQLSTATE that ended the attempt (connection: \
         the connection broke or no host took writes).",
        Kind::Counter,
        ["sqlstate"],
    ),
    db_lease_conflicts: Family::new(
        "postie_db_lease_conflicts_total",
        "Exclusive sessions that met another's lease, by result (in_use: login refused; \
         taken_over: QUIT refused after the lease expired).",
        Kind::Counter,
        ["result"],
    ),
    db_in_doubt_commits: Family::new(
        "postie_db_in_doubt_commits_total",
        "Deliveries whose COMMIT lost its answer, by what the lookup of their delivery id found.",
        Kind::Counter,
        ["outcome"],
    ),
    db_sweep_backlog: Gauge::new(
        "postie_db_sweep_backlog",
        "Message bodies no message refers to any more, waiting for the sweep (grace included), \
         as this front end's last sweep counted them.",
    ),
};

impl Metrics {
    pub(crate) fn render(&self, out: &mut String) {
        text_build_info(out);
        self.connections_open.render(out);
        self.connections.render(out);
        self.connections_refused.render(out);
        self.logins.render(out);
        self.commands.render(out);
        self.bytes_sent.render(out);
        self.bodies_sent.render(out);
        self.deliveries.render(out);
        self.auth_delays.render(out);
        self.auth_delay_ms.render(out);
        self.tls_handshakes.render(out);
        self.proxy_headers.render(out);
        self.reloads.render(out);
        self.session_duration.render(out);
        self.retr_duration.render(out);
        self.db_pool_wait.render(out);
        self.db_retries.render(out);
        self.db_lease_conflicts.render(out);
        self.db_in_doubt_commits.render(out);
        self.db_sweep_backlog.render(out);
    }
}

fn text_build_info(out: &mut String) {
    out.push_str("# HELP postie_build_info The running version.\n# TYPE postie_build_info gauge\n");
    out.push_str(concat!(
        "postie_build_info{version=\"",
        env!("CARGO_PKG_VERSION"),
        "\"} 1\n"
    ));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn renders_what_moved() {
        METRICS.connections.inc(["pop3"]);
        METRICS.connections.inc(["pop3"]);
        METRICS.connections_open.inc(["pop3s"]);
        METRICS.connections_open.dec(["pop3s"]);
        METRICS.logins.inc(["ok", "USER"]);
        METRICS.retr_duration.observe(Duration::from_millis(3));
        METRICS.retr_duration.observe(Duration::from_secs(60));
        METRICS.db_sweep_backlog.set(7);
        let text = crate::render();
        assert!(text.contains("# TYPE postie_db_sweep_backlog gauge\npostie_db_sweep_backlog 7\n"));
        assert!(
            text.contains("postie_connections_total{listener=\"pop3\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_connections_open{listener=\"pop3s\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_logins_total{outcome=\"ok\",mechanism=\"USER\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_pop3_retr_duration_seconds_bucket{le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_pop3_retr_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_pop3_retr_duration_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_pop3_retr_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE postie_pop3_session_duration_seconds histogram\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
