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
use std::sync::OnceLock;

use postie_store_pg::{Config, PgOptions, PgStore};

/// Where Debian puts PostgreSQL 15; `POSTIE_PG_BIN` overrides it.
const DEBIAN_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

struct Cluster {
    dir: PathBuf,
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

impl Cluster {
    fn start() -> Result<Cluster, String> {
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
        let data = dir.join("data");
        let mut initdb = as_postgres("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        run(initdb, "initdb")?;
        let port = free_port()?;
        let cluster = Cluster { dir, port };
        cluster.watch_for_exit()?;
        let settings = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=on -c synchronous_commit=on -c max_connections=200",
            cluster.dir.display()
        );
        let mut pg_ctl = as_postgres("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(cluster.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &settings, "start"]);
        if let Err(e) = run(pg_ctl, "pg_ctl start") {
            let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{log}"));
        }
        // SAFETY: `stop_at_exit` is a plain function that only runs pg_ctl; registering it
        // has no other effect.
        unsafe { libc::atexit(stop_at_exit) };
        Ok(cluster)
    }

    /// A process of its own that stops the cluster and removes its folder once this test
    /// binary is gone, however it ended (Ctrl-C, a kill): immune to the terminal's signals.
    fn watch_for_exit(&self) -> Result<(), String> {
        let script = format!(
            "trap '' INT HUP TERM; while [ -d /proc/{pid} ]; do sleep 0.2; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = self.stop_command_line(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("starting the cluster's watchdog: {e}"))
    }

    fn stop_command_line(&self) -> String {
        let pg_ctl = bin("pg_ctl");
        let as_user = if running_as_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{as_user}{} -D '{}' -m immediate -w stop",
            pg_ctl.display(),
            self.dir.join("data").display()
        )
    }

    fn config(&self, database: &str) -> Config {
        let mut config = Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(database);
        config
    }
}

extern "C" fn stop_at_exit() {
    if let Some(cluster) = CLUSTER.get() {
        let _ = Command::new("sh")
            .args(["-c", &cluster.stop_command_line()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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
