//! A throwaway PostgreSQL 15 cluster for one test binary, and a fresh database per test.
//!
//! The cluster is started on first use (initdb and pg_ctl as the `postgres` user when the
//! tests run as root, since initdb refuses root), listens on 127.0.0.1 on a free port only,
//! trusts loopback connections, and keeps fsync and synchronous commit on. It is stopped when
//! the test binary exits: by an exit handler, and by a watchdog process that outlives the
//! binary if it is killed. A test that needs PostgreSQL and cannot start it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use postie_store_pg::{Config, PgOptions, PgStore};

/// Where Debian puts PostgreSQL 15; `POSTIE_PG_BIN` overrides it.
const DEBIAN_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

struct Cluster {
    port: u16,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        Cluster::start().unwrap_or_else(|e| {
            panic!("this test needs PostgreSQL 15 and could not start a cluster: {e}")
        })
    })
}

fn bin(tool: &str) -> PathBuf {
    let dir = std::env::var_os("POSTIE_PG_BIN").unwrap_or_else(|| DEBIAN_PG_BIN.into());
    Path::new(&dir).join(tool)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `tool` run as the `postgres` user when we are root, as ourselves otherwise.
fn as_postgres(tool: &str) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin(tool));
        command
    } else {
        Command::new(bin(tool))
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn id_of_postgres(flag: &str) -> Result<u32, String> {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .map_err(|e| format!("id {flag} postgres: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "no `postgres` user to run PostgreSQL as".to_owned())
}

/// A fresh folder for clusters, owned by the user PostgreSQL runs as.
fn cluster_folder() -> Result<PathBuf, String> {
    let dir = tempfile::Builder::new()
        .prefix("postie-pg-")
        .tempdir()
        .map_err(|e| format!("a temporary folder: {e}"))?
        .keep();
    if running_as_root() {
        let (uid, gid) = (id_of_postgres("-u")?, id_of_postgres("-g")?);
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("handing {} to postgres: {e}", dir.display()))?;
    }
    Ok(dir)
}

fn initdb(data: &Path) -> Result<(), String> {
    let mut initdb = as_postgres("initdb");
    initdb.arg("-D").arg(data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-locale",
    ]);
    run(initdb, "initdb")
}

/// Starts the server of `data` on 127.0.0.1:`port` (its socket and log in `dir`), with
/// fsync and synchronous commit on and `extra` settings (`-c name=value …`).
fn start_server(dir: &Path, data: &Path, port: u16, extra: &str) -> Result<(), String> {
    let log = dir.join(format!("log-{port}"));
    let settings = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
         -c fsync=on -c synchronous_commit=on -c max_connections=200 {extra}",
        dir.display()
    );
    let mut pg_ctl = as_postgres("pg_ctl");
    pg_ctl
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", &settings, "start"]);
    run(pg_ctl, "pg_ctl start").map_err(|e| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        format!("{e}\nserver log:\n{log}")
    })
}

/// The shell command that stops the server of `data` at once.
fn stop_command_line(data: &Path) -> String {
    let pg_ctl = bin("pg_ctl");
    let as_user = if running_as_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    format!(
        "{as_user}{} -D '{}' -m immediate -w stop",
        pg_ctl.display(),
        data.display()
    )
}

/// Servers to stop when this test binary exits, as shell command lines.
static STOP_AT_EXIT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Stops the servers of `data_dirs` and removes `dir` once this test binary is gone, however
/// it ends: at exit, and from a process of its own, immune to the terminal's signals, if the
/// binary is killed.
fn stop_at_exit(dir: &Path, data_dirs: &[&Path]) -> Result<(), String> {
    let stops: Vec<String> = data_dirs.iter().map(|d| stop_command_line(d)).collect();
    let script = format!(
        "trap '' INT HUP TERM; while [ -d /proc/{pid} ]; do sleep 0.2; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        stop = stops.join(" >/dev/null 2>&1; "),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("starting the cluster's watchdog: {e}"))?;
    let mut at_exit = STOP_AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    if at_exit.is_empty() {
        // SAFETY: `stop_servers` is a plain function that only runs pg_ctl; registering it
        // has no other effect.
        unsafe { libc::atexit(stop_servers) };
    }
    at_exit.extend(stops);
    Ok(())
}

extern "C" fn stop_servers() {
    let stops = STOP_AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    for stop in stops.iter() {
        let _ = Command::new("sh")
            .args(["-c", stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn loopback_config(port: u16, database: &str) -> Config {
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname(database);
    config
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let dir = cluster_folder()?;
        let data = dir.join("data");
        initdb(&data)?;
        let port = free_port()?;
        stop_at_exit(&dir, &[&data])?;
        start_server(&dir, &data, port, "")?;
        Ok(Cluster { port })
    }

    fn config(&self, database: &str) -> Config {
        loopback_config(self.port, database)
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// A fresh, migrated database of the test cluster; it goes away with the cluster.
pub struct TestDb {
    config: Config,
}

impl TestDb {
    /// A new database in the cluster, with postie's schema applied, for a test that is not
    /// async (it runs on a runtime of its own).
    // Not every test binary that shares this module has such tests.
    #[allow(dead_code)]
    pub fn new() -> TestDb {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(TestDb::create())
    }

    /// A new database in the cluster, with postie's schema applied.
    pub async fn create() -> TestDb {
        let db = TestDb::create_empty().await;
        postie_store_pg::migrate(&db.client().await)
            .await
            .expect("migrating a fresh database");
        db
    }

    /// A new, empty database in the cluster: no schema yet.
    pub async fn create_empty() -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let cluster = cluster();
        let name = format!("t_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = connect(&cluster.config("postgres")).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        TestDb {
            config: cluster.config(&name),
        }
    }

    /// How to reach this database.
    // Not every test binary that shares this module looks.
    #[allow(dead_code)]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A store on this database, as one front end would have it.
    pub fn store(&self, options: PgOptions) -> PgStore {
        PgStore::new(self.config.clone(), options)
    }

    /// A connection of its own to look at the tables, on the current runtime.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.config).await
    }
}

async fn connect(config: &Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
    tokio::spawn(connection);
    client
}

/// A primary and a synchronous streaming replica of it (initdb, pg_basebackup -R,
/// `synchronous_standby_names`), each on a loopback port of its own, with one migrated
/// database; for failover tests. Both servers stop when it is dropped or the binary exits.
// Only the failover tests use it.
#[allow(dead_code)]
pub struct ReplicatedCluster {
    dir: PathBuf,
    primary: (PathBuf, u16),
    replica: (PathBuf, u16),
}

#[allow(dead_code)]
impl ReplicatedCluster {
    /// Starts both servers and waits until the replica streams synchronously, so that every
    /// commit acknowledged from then on is on both. A test that cannot start them fails.
    pub fn start() -> ReplicatedCluster {
        Self::try_start().unwrap_or_else(|e| {
            panic!("this test needs PostgreSQL 15 and could not start a primary and a replica: {e}")
        })
    }

    fn try_start() -> Result<ReplicatedCluster, String> {
        let dir = cluster_folder()?;
        let primary = (dir.join("primary"), free_port()?);
        let replica = (dir.join("replica"), free_port()?);
        stop_at_exit(&dir, &[&primary.0, &replica.0])?;
        initdb(&primary.0)?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(primary.0.join("pg_hba.conf"))
            .and_then(|mut hba| {
                std::io::Write::write_all(&mut hba, b"host replication all 127.0.0.1/32 trust\n")
            })
            .map_err(|e| format!("allowing replication in pg_hba.conf: {e}"))?;
        // Every commit on the primary waits until the standby has it on disk. Not on the
        // replica: promoted, it has no standby of its own to wait for.
        start_server(
            &dir,
            &primary.0,
            primary.1,
            "-c synchronous_standby_names='*'",
        )?;
        let mut basebackup = as_postgres("pg_basebackup");
        basebackup
            .arg("-D")
            .arg(&replica.0)
            .args(["-R", "-X", "stream", "-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(primary.1.to_string());
        run(basebackup, "pg_basebackup")?;
        start_server(&dir, &replica.0, replica.1, "")?;
        let cluster = ReplicatedCluster {
            dir,
            primary,
            replica,
        };
        cluster.wait_until_synchronous()?;
        Ok(cluster)
    }

    fn wait_until_synchronous(&self) -> Result<(), String> {
        let primary = loopback_config(self.primary.1, "postgres");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a tokio runtime: {e}"))?
            .block_on(async {
                let client = connect(&primary).await;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                loop {
                    let streaming = client
                        .query_opt(
                            "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
                            &[],
                        )
                        .await
                        .map_err(|e| format!("asking the primary about its replica: {e}"))?;
                    if streaming.is_some() {
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err("the replica did not stream synchronously within 60 s".into());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                client
                    .batch_execute("CREATE DATABASE postie")
                    .await
                    .map_err(|e| format!("creating the database: {e}"))?;
                let (db, connection) = loopback_config(self.primary.1, "postie")
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("connecting to the new database: {e}"))?;
                tokio::spawn(connection);
                postie_store_pg::migrate(&db)
                    .await
                    .map(drop)
                    .map_err(|e| format!("migrating: {e}"))
            })
    }

    /// The database on both hosts, primary first, as a front end configured for failover
    /// has it: `target_session_attrs=read-write` picks whichever takes writes.
    pub fn config(&self) -> Config {
        let mut config = loopback_config(self.primary.1, "postie");
        config
            .host("127.0.0.1")
            .port(self.replica.1)
            .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        config
    }

    /// The database on the primary alone, or on the replica alone.
    pub fn primary_config(&self) -> Config {
        loopback_config(self.primary.1, "postie")
    }

    pub fn replica_config(&self) -> Config {
        loopback_config(self.replica.1, "postie")
    }

    /// SIGKILL to the primary's postmaster and every process of it, as when its machine
    /// dies: no shutdown, no last WAL sent; the connections to it break.
    pub fn kill_primary(&self) {
        let pid_file = self.primary.0.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", pid_file.display()));
        let postmaster: i32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {}", pid_file.display()));
        let children = children_of(postmaster);
        for pid in std::iter::once(postmaster).chain(children) {
            // SAFETY: kill with a valid signal on a process of the cluster this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// `pg_ctl promote` of the replica, waiting until it takes writes.
    pub fn promote_replica(&self) {
        let mut promote = as_postgres("pg_ctl");
        promote
            .arg("-D")
            .arg(&self.replica.0)
            .args(["-w", "-t", "60", "promote"]);
        run(promote, "pg_ctl promote").unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        for data in [&self.primary.0, &self.replica.0] {
            let _ = Command::new("sh")
                .args(["-c", &stop_command_line(data)])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The processes whose parent is `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // The parent is the second field after the command name in parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// A server of its own that takes only TLS connections from loopback (`ssl = on`, pg_hba
/// `hostssl` alone), its certificate for `localhost` and 127.0.0.1 signed by a CA the test
/// made; for the tests of TLS to the database. It stops with the test binary.
// Only the TLS tests use it.
#[allow(dead_code)]
pub struct TlsCluster {
    port: u16,
    ca_pem: String,
}

#[allow(dead_code)]
impl TlsCluster {
    /// Starts it; a test that cannot fails.
    pub fn start() -> TlsCluster {
        Self::try_start().unwrap_or_else(|e| {
            panic!("this test needs PostgreSQL 15 and could not start a TLS-only server: {e}")
        })
    }

    fn try_start() -> Result<TlsCluster, String> {
        let dir = cluster_folder()?;
        let data = dir.join("data");
        initdb(&data)?;
        let (ca_pem, cert_pem, key_pem) = test_certificates()?;
        for (name, pem) in [("server.crt", &cert_pem), ("server.key", &key_pem)] {
            write_for_postgres(&data.join(name), pem.as_bytes())?;
        }
        write_for_postgres(
            &data.join("pg_hba.conf"),
            b"local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )?;
        let port = free_port()?;
        stop_at_exit(&dir, &[&data])?;
        start_server(
            &dir,
            &data,
            port,
            "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
        )?;
        Ok(TlsCluster { port, ca_pem })
    }

    /// The PEM certificate of the CA that signed the server's.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Its `postgres` database over 127.0.0.1.
    pub fn config(&self) -> Config {
        loopback_config(self.port, "postgres")
    }
}

/// A CA, and a server certificate and key it signed for `localhost` and 127.0.0.1, as PEM.
fn test_certificates() -> Result<(String, String, String), String> {
    let failed = |e: rcgen::Error| format!("making the test certificates: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut ca = rcgen::CertificateParams::new(Vec::new()).map_err(failed)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "postie test database CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let server_key = rcgen::KeyPair::generate().map_err(failed)?;
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(failed)?;
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(failed)?;
    Ok((ca_cert.pem(), server_cert.pem(), server_key.serialize_pem()))
}

/// Writes a file the server reads, owned by the user it runs as and readable by it alone (as
/// PostgreSQL demands of a key).
fn write_for_postgres(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    if running_as_root() {
        let (uid, gid) = (id_of_postgres("-u")?, id_of_postgres("-g")?);
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("handing {} to postgres: {e}", path.display()))?;
    }
    Ok(())
}
