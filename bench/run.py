#!/usr/bin/env python3
"""postie vs Dovecot, side by side on this machine.

Builds deterministic fixtures, starts postie on Maildir, postie on PostgreSQL ("postie-pg": a
throwaway PostgreSQL 15 cluster started here, the fixtures imported with `postie store
import-maildir`) and a throwaway Dovecot (Debian's dovecot-pop3d, default settings apart from
paths and ports) on the same data, runs the scenarios of postie-bench against each, repeats
each figure, and prints a table of medians and ratios. It also writes the table as Markdown and
an SVG chart (bench/results.md, bench/chart.svg).

Usage: bench/run.py [--smoke] [--debug] [--repeat N] [--dir DIR] [--only LIST] [--skip-pg] [--port-offset N]
Loopback only; every loop is bounded. Run as root (Dovecot needs a mail user it can switch to).
"""

import argparse
import base64
import json
import os
import pwd
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIL_USER = "postiebench"
# Below the ephemeral range (32768-60999 on Linux), so no outgoing connection can hold one.
PORTS = {"postie": (21110, 21995), "dovecot": (22110, 22995), "postie-pg": (23110, 23995), "postie-pg-2": (24110, 24995)}
LMTP_PORTS = {"postie": 21024, "dovecot": 22024, "postie-pg": 23024, "postie-pg-2": 24024}
# Where Debian's postgresql-15 puts its programs.
PG_BIN = Path("/usr/lib/postgresql/15/bin")


SCENARIOS = "sessions,retr,deliver,bigbox,fetch,idle,rss,frontends"


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, **kwargs)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny fixtures and short runs: checks the harness works")
    p.add_argument("--debug", action="store_true", help="use debug builds (for --smoke in CI)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", default="/tmp/postie-bench")
    p.add_argument("--idle-sessions", type=int, default=90, help="sessions held for the side-by-side memory figure (Dovecot's default process_limit is 100)")
    p.add_argument("--idle-max", type=int, default=19000, help="sessions postie alone must hold at once (each is a descriptor: keep below the hard RLIMIT_NOFILE)")
    p.add_argument("--skip-dovecot", action="store_true")
    p.add_argument("--port-offset", type=int, default=0, help="added to every server port, for a second run beside another")
    p.add_argument("--skip-pg", action="store_true", help="leave out postie on PostgreSQL")
    p.add_argument("--no-build", action="store_true", help="use the binaries already built")
    p.add_argument("--bin-dir", help="take postie and postie-bench from here instead of $CARGO_TARGET_DIR or target/")
    p.add_argument("--append", action="store_true", help="add to the results.json of an earlier run in --dir (e.g. --only fetch later)")
    p.add_argument("--only", default=SCENARIOS, help="comma-separated scenarios to run")
    return p.parse_args()


class Fixture:
    """Deterministic Maildirs: message i of a box is always the same bytes and file name."""

    def __init__(self, smoke):
        self.retr_messages = 5 if smoke else 200
        self.retr_size = (64 << 10) if smoke else (1 << 20)
        self.big_messages = 1000 if smoke else 100_000
        self.fetch_messages = 50 if smoke else 1000
        self.huge_size = (2 << 20) if smoke else (50 << 20)

    @staticmethod
    def message(box, i, size):
        header = f"From: bench@example.org\nTo: {box}@example.org\nSubject: {box} message {i}\nMessage-ID: <{box}.{i}@bench>\n\n"
        line = ("".join(chr(33 + (i + j) % 90) for j in range(75)) + "\n").replace(".", ",")
        body = []
        length = len(header)
        n = 0
        while length < size:
            text = ("." + line) if n % 50 == 7 else line
            body.append(text)
            length += len(text)
            n += 1
        return (header + "".join(body)).encode()

    @staticmethod
    def crlf_message(box, i, size):
        """The retr fixture's text as LMTP and SMTP deliver it: CRLF line endings, and no line
        starting with "." (most mail has none), which postie sends as stored (sendfile)."""
        header = f"From: bench@example.org\r\nTo: {box}@example.org\r\nSubject: {box} message {i}\r\nMessage-ID: <{box}.{i}@bench>\r\n\r\n"
        line = ("".join(chr(33 + (i + j) % 90) for j in range(75)) + "\r\n").replace(".", ",")
        return (header + line * ((size - len(header)) // len(line) + 1)).encode()

    @staticmethod
    def crlf_dots_message(box, i, size):
        """The CRLF fixture with three lines starting with "." (a quoted ellipsis, a diff's
        context), which RETR must stuff: postie sends it by sendfile between them."""
        text = Fixture.crlf_message(box, i, size)
        for at in (len(text) // 4, len(text) // 2, 3 * len(text) // 4):
            line = text.index(b"\r\n", at) + 2
            text = text[:line] + b"." + text[line + 1:]
        return text

    @staticmethod
    def attachment_message(box, i, size):
        """A message carrying a base64 attachment of random octets, as photos and archives
        arrive: next to nothing in it compresses (the retr fixture's text compresses a lot)."""
        header = (f"From: bench@example.org\nTo: {box}@example.org\nSubject: {box} message {i}\n"
                  f"Message-ID: <{box}.{i}@bench>\nMIME-Version: 1.0\n"
                  "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee the attachment\n"
                  "--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")
        encoded = base64.encodebytes(random.Random(i).randbytes(size * 3 // 4)).decode()
        return (header + encoded[: size - len(header)] + "\n--b--\n").encode()

    def write_box(self, maildir, box, count, size, message=None, record_form=True):
        message = message or self.message
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        cur = maildir / "cur"
        base_time = 1_700_000_000
        for i in range(count):
            data = message(box, i, size)
            bare_lf = data.count(b"\n") - data.count(b"\r\n")
            vsize = len(data) + bare_lf
            form = stored_form(data) if bare_lf == 0 and record_form else ""
            name = f"{base_time + i}.M{i:06d}P4242.bench,S={len(data)},W={vsize}{form}:2,"
            (cur / name).write_bytes(data)

    def build(self, root):
        for server in ("postie", "dovecot"):
            data = root / server / "mail"
            if data.exists():
                shutil.rmtree(data)
            self.write_box(data / "sess" / "Maildir", "sess", 5, 2000)
            self.write_box(data / "retr" / "Maildir", "retr", self.retr_messages, self.retr_size)
            self.write_box(data / "attach" / "Maildir", "attach", self.retr_messages, self.retr_size, self.attachment_message)
            self.write_box(data / "retrcrlf" / "Maildir", "retrcrlf", self.retr_messages, self.retr_size, self.crlf_message)
            self.write_box(data / "retrdots" / "Maildir", "retrdots", self.retr_messages, self.retr_size, self.crlf_dots_message)
            # The same messages under names without the form field (as Dovecot or an older
            # postie names them): postie sends them through its encoder, for an A/B on the same bytes.
            self.write_box(data / "retrcrlfenc" / "Maildir", "retrcrlfenc", self.retr_messages, self.retr_size, self.crlf_message, record_form=False)
            self.write_box(data / "big" / "Maildir", "big", self.big_messages, 400)
            self.write_box(data / "fetch" / "Maildir", "fetch", self.fetch_messages, 8000)
            if server == "postie":  # for postie and postie-pg: Dovecot's RSS is not measured
                self.write_box(data / "huge" / "Maildir", "huge", 1, self.huge_size)
            for sub in ("tmp", "new", "cur"):
                (data / "lmtp" / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
            # Dovecot allows 10 sessions per user and address by default: idle sessions spread over users.
            for n in range(IDLE_USERS):
                self.write_box(data / f"idle{n}" / "Maildir", f"idle{n}", 1, 500)
            sh("chown", "-R", f"{MAIL_USER}:{MAIL_USER}", str(root / server))
        # Written back now, not by whatever syncs first in a timed run: an LMTP delivery's
        # fsync or a fetch's syncfs would otherwise wait for the fixtures' dirty pages.
        os.sync()


def stored_form(data):
    """The form field postie's delivery writes for a message without bare LFs (`X=c`: CRLF;
    `d` and the hex offsets of up to 8 lines starting with "."); Dovecot ignores it."""
    if not data.endswith(b"\r\n"):
        return ""
    dots = [m.end() - 1 for m in re.finditer(rb"(?:\A|\n)\.", data)]
    if not dots:
        return ",X=c"
    if len(dots) > 8:
        return ",X=cd"
    return ",X=cd" + "".join(f".{at:x}" for at in dots)


def ensure_mail_user():
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:
        sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", MAIL_USER)


def make_cert(root):
    key, cert = root / "key.pem", root / "cert.pem"
    if not cert.exists():
        # The same ECDSA P-256 key for both servers: handshake cost depends on the key type.
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
           capture_output=True)
    os.chmod(root, 0o755)
    os.chmod(key, 0o644)
    return cert, key


IDLE_USERS = 100
USERS = "sess:{PLAIN}bench\nretr:{PLAIN}bench\nretrcrlf:{PLAIN}bench\nretrdots:{PLAIN}bench\nretrcrlfenc:{PLAIN}bench\nattach:{PLAIN}bench\nbig:{PLAIN}bench\nfetch:{PLAIN}bench\nlmtp:{PLAIN}bench\nhuge:{PLAIN}bench\n" + "".join(f"idle{n}:{{PLAIN}}bench\n" for n in range(IDLE_USERS))


def postie_config(root, name, cert, key, pg_url=None):
    """Writes the configuration of the postie called `name` (a key of PORTS): its mail in
    Maildirs, or in the database at `pg_url`. Returns its path."""
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    (home / "users").write_text(USERS)
    plain, tls = PORTS[name]
    store = f"""store = "postgres"
[postgres]
url = "{pg_url}"
""" if pg_url else ""
    config = home / "postie.toml"
    config.write_text(f"""hostname = "localhost"
# Like Dovecot's mail processes, postie serves as an unprivileged user.
user = "{MAIL_USER}"
[pop3]
listen = ["127.0.0.1:{plain}"]
listen_tls = ["127.0.0.1:{tls}"]
max_connections = 100000
max_connections_per_ip = 100000
[lmtp]
listen = ["127.0.0.1:{LMTP_PORTS[name]}"]
[tls]
cert = "{cert}"
key = "{key}"
[auth]
passwd_file = "users"
[mail]
maildir = "mail/{{user}}/Maildir"
{store}""")
    return config


def start_postie(root, binary, cert, key, name="postie", pg_url=None):
    config = postie_config(root, name, cert, key, pg_url)
    log = open(config.parent / "postie.log", "w")
    proc = subprocess.Popen([str(binary), "serve", "--config", str(config)], stdout=log, stderr=log)
    wait_port(PORTS[name][0])
    return proc


class PgCluster:
    """A throwaway PostgreSQL 15 cluster under the bench directory, run by the postgres user on
    a free loopback port, with its default settings (fsync and synchronous_commit on) apart
    from where it listens; one database, `postie`."""

    def __init__(self, root):
        self.dir = root / "pg"
        self.data = self.dir / "data"
        self.port = None

    def pg(self, tool, *args):
        done = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *map(str, args)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            log = self.dir / "log"
            sys.exit(f"{tool} {' '.join(map(str, args))} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
                     + (f"\nserver log:\n{log.read_text()[-3000:]}" if log.exists() else ""))

    def start(self):
        if (self.data / "postmaster.pid").exists():
            # Left running by an earlier run that was killed.
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                           capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "postgres", "postgres")
        self.pg("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
        self.port = free_port()
        settings = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir}"
        self.pg("pg_ctl", "-D", self.data, "-l", self.dir / "log", "-w", "-t", "60", "-o", settings, "start")
        self.pg("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "postie")

    def psql(self, sql):
        self.pg("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d", "postie", "-c", sql)

    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postie"

    def stop(self):
        if self.port is not None:
            self.pg("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop")
            self.port = None


def load_pg(root, binary, cert, key, pg, boxes):
    """Creates the schema of postie-pg's database and imports the fixtures' Maildirs (those
    of postie, before postie has served them) into it, box by box."""
    config = postie_config(root, "postie-pg", cert, key, pg.url())
    # As the mail user: the import takes the Maildir's lock and may write its uidlist, which
    # postie must be able to open later.
    admin = lambda *args: sh("runuser", "-u", MAIL_USER, "--", str(binary), "store", *args, "--config", str(config), stdout=subprocess.DEVNULL)
    admin("migrate")
    # Loading is not measured: without waiting for a WAL flush per commit (an import stores
    # each body in transactions of its own), 100,000 messages load in minutes, not in an hour.
    # The front ends connect later and get the default back, synchronous_commit = on.
    pg.psql("ALTER DATABASE postie SET synchronous_commit = off")
    for box in boxes:
        admin("import-maildir", "--user", box, str(root / "postie" / "mail" / box / "Maildir"))
    pg.psql("ALTER DATABASE postie RESET synchronous_commit")
    # As after any bulk load: statistics and the visibility map now, not from an autovacuum
    # that starts during a timed run.
    pg.psql("VACUUM (ANALYZE)")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dovecot(root, cert, key):
    home = root / "dovecot"
    for sub in ("run", "state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "users").write_text(USERS)
    plain, tls = PORTS["dovecot"]
    uid = pwd.getpwnam(MAIL_USER)
    (home / "dovecot.conf").write_text(f"""# Dovecot defaults, apart from paths, ports and the mail user.
protocols = pop3 lmtp
listen = 127.0.0.1
base_dir = {home}/run
state_dir = {home}/state
log_path = {home}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {home}/users
}}
userdb {{
  driver = static
  # LMTP asks the userdb alone: every recipient is a user here; POP3 logins still check passdb.
  args = uid={uid.pw_uid} gid={uid.pw_gid} home={home}/mail/%n allow_all_users=yes
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {LMTP_PORTS["dovecot"]}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {plain}
  }}
  inet_listener pop3s {{
    port = {tls}
    ssl = yes
  }}
}}
""")
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(home / "dovecot.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(plain)
    return proc


def port_free(port):
    import socket
    with socket.socket() as s:
        # As the servers do: ports in TIME_WAIT from an earlier run are free to bind.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port_free(port):
    deadline = time.time() + 30
    while not port_free(port) and time.time() < deadline:
        time.sleep(0.2)


def wait_port(port):
    import socket
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree_cpu_seconds(pid):
    """CPU time (user + system) of a server: the process and every descendant alive, each with
    the time of the children it has reaped (Dovecot's per-login processes end and are reaped
    by their parents), from /proc/PID/stat."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields))
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0, [pid]
    try:
        own = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total += sum(int(own[i]) for i in (11, 12, 13, 14))
    while todo:
        for child, fields in children.get(todo.pop(), []):
            # utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 after the name.
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
            todo.append(child)
    return total / ticks


def bench(binary, *args):
    out = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"postie-bench {' '.join(map(str, args))} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def target(server, user, tls=False, cert=None):
    plain, tls_port = PORTS[server]
    args = ["--addr", f"127.0.0.1:{tls_port if tls else plain}", "--user", user, "--password", "bench"]
    if tls:
        args += ["--tls-ca", cert]
    return args


def drop_indexes(root, server, box):
    maildir = root / server / "mail" / box / "Maildir"
    for entry in maildir.iterdir():
        if entry.name.startswith(("postie-uidlist", "dovecot-uidlist", "dovecot.index", "dovecot-keywords")):
            entry.unlink()


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Dovecot needs a mail user to switch to")
    profile = "debug" if args.debug else "release"
    cargo = ["cargo", "build", "-q", "-p", "postie", "-p", "postie-bench"] + ([] if args.debug else ["--release"])
    if not args.no_build:
        sh(*cargo, cwd=ROOT)
    bins = Path(args.bin_dir) if args.bin_dir else Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / profile
    postie_bin = bins / "postie"
    bench_bin = bins / "postie-bench"
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    ensure_mail_user()
    cert, key = make_cert(root)
    fixture = Fixture(args.smoke)
    if not args.append:
        fixture.build(root)
    servers = ["postie"] + ([] if args.skip_pg else ["postie-pg"]) + ([] if args.skip_dovecot else ["dovecot"])
    only = set(args.only.split(","))
    unknown = only - set(SCENARIOS.split(","))
    if unknown:
        sys.exit(f"--only: no scenario called {', '.join(sorted(unknown))}; there are {SCENARIOS}")
    repeat = 1 if args.smoke else args.repeat
    results = {}  # (figure) -> {server: [values]}
    if args.append and (root / "results.json").exists():
        results = json.loads((root / "results.json").read_text())

    partial = root / "results.json"

    def record(figure, server, value):
        results.setdefault(figure, {}).setdefault(server, []).append(value)
        # A run that fails later keeps what it measured.
        partial.write_text(json.dumps(results, indent=1))

    for _ in range(0 if args.append else repeat):
        record("loopback throughput (MB/s)", "loopback", bench(bench_bin, "loopback", "--megabytes", 256 if args.smoke else 4096)["value"])

    for ports in (PORTS, LMTP_PORTS):
        for name, port in ports.items():
            ports[name] = tuple(p + args.port_offset for p in port) if isinstance(port, tuple) else port + args.port_offset
    names = servers + (["postie-pg-2"] if "postie-pg" in servers else [])

    def check_ports():
        busy = [p for server in names for p in PORTS[server] + (LMTP_PORTS[server],) if not port_free(p)]
        if busy:
            sys.exit(f"ports {busy} are in use: stop what listens there (an earlier run?) or pass --port-offset")

    check_ports()
    pg = PgCluster(root)
    try:
        if "postie-pg" in servers:
            # Imported before postie serves the same Maildirs, so what is imported is the fixture as built.
            pg.start()
            boxes = ["sess", "retr", "retrcrlf", "retrdots", "retrcrlfenc", "attach", "big", "huge"] + ([f"idle{n}" for n in range(IDLE_USERS)] if "idle" in only else [])
            started = time.time()
            load_pg(root, postie_bin, cert, key, pg, boxes)
            print(f"postie-pg: schema and fixtures loaded in {time.time() - started:.1f} s", file=sys.stderr)
            check_ports()  # again: loading takes minutes
        run_scenarios(args, root, servers, only, fixture, postie_bin, bench_bin, cert, key, pg, record)
    finally:
        pg.stop()

    report(results, args.smoke)


def run_scenarios(args, root, servers, only, fixture, postie_bin, bench_bin, cert, key, pg, record):
    seconds = 0.5 if args.smoke else 5
    repeat = 1 if args.smoke else args.repeat
    deliveries = 100 if args.smoke else 2000
    procs = {}
    try:
        procs["postie"] = start_postie(root, postie_bin, cert, key)
        if "postie-pg" in servers:
            procs["postie-pg"] = start_postie(root, postie_bin, cert, key, "postie-pg", pg.url())
            if "frontends" in only:
                procs["postie-pg-2"] = start_postie(root, postie_bin, cert, key, "postie-pg-2", pg.url())
        if "dovecot" in servers:
            procs["dovecot"] = start_dovecot(root, cert, key)
        # Servers take turns within each repetition, so that load from elsewhere on the
        # machine falls on both alike.
        for _ in range(repeat):
            for server in servers:
                # postie-pg: its TLS is postie's own, and a database has no index to drop.
                tls_too = (False,) if server == "postie-pg" else (False, True)
                if "sessions" in only:
                    for tls in tls_too:
                        figure = "sessions/s, implicit TLS" if tls else "sessions/s, plain"
                        out = bench(bench_bin, "sessions", *target(server, "sess", tls, cert), "--concurrency", 16, "--seconds", seconds)
                        record(figure, server, out["value"])
                if "retr" in only:
                    for tls in tls_too:
                        figure = "RETR MB/s, TLS" if tls else "RETR MB/s, plain"
                        record(figure, server, bench(bench_bin, "retr", *target(server, "retr", tls, cert))["value"])
                    crlf_runs = [(tls, "retrcrlf", "CRLF-stored (as LMTP delivers)") for tls in tls_too]
                    crlf_runs.append((False, "retrdots", "CRLF-stored, 3 lines starting with '.' each"))
                    crlf_runs.append((False, "retrcrlfenc", "CRLF-stored, names without X= (postie: encoder)"))
                    for tls, box, what in crlf_runs:
                        kind = "TLS" if tls else "plain"
                        before = tree_cpu_seconds(procs[server].pid)
                        out = bench(bench_bin, "retr", *target(server, box, tls, cert))
                        cpu = tree_cpu_seconds(procs[server].pid) - before
                        record(f"RETR MB/s, {kind}, {what}", server, out["value"])
                        record(f"server CPU s per GiB RETR'd, {kind}, {what}", server, cpu / (out["bytes"] / (1 << 30)))
                    record("RETR MB/s, plain, base64 attachments (do not compress)", server,
                           bench(bench_bin, "retr", *target(server, "attach"))["value"])
                if "deliver" in only:
                    # The scenarios before leave dirty pages (Dovecot's indexes, logs); written
                    # back now, they cannot stall the fsyncs of whichever server comes next.
                    os.sync()
                    out = bench(bench_bin, "deliver", "--addr", f"127.0.0.1:{LMTP_PORTS[server]}", "--rcpt", "lmtp@localhost",
                                "--messages", deliveries, "--concurrency", 8)
                    record("LMTP deliveries/s (fsync)", server, out["value"])
                if "frontends" in only and server == "postie-pg":
                    record("LMTP deliveries/s, two postie-pg front ends on one database (8 connections each)", server,
                           deliver_two_front_ends(bench_bin, deliveries))
                if "rss" in only and server != "dovecot":
                    record(f"front-end RSS growth during one RETR of a {fixture.huge_size >> 20} MiB message (KiB)", server,
                           retr_rss_growth(PORTS[server][0], procs[server].pid, fixture.huge_size))
                if "bigbox" in only:
                    if server != "postie-pg":
                        drop_indexes(root, server, "big")
                        first = bench(bench_bin, "bigbox", *target(server, "big"), "--repeat", 1, "--expect", fixture.big_messages)
                        record("big maildrop, first open (s)", server, first["times"][0])
                    again = bench(bench_bin, "bigbox", *target(server, "big"), "--repeat", 5, "--expect", fixture.big_messages)
                    record("big maildrop, repeated (s)", server, statistics.median(again["times"]))
        if "fetch" in only and "dovecot" in procs:
            # Dovecot indexes a mailbox at its first login: one login before the timed runs
            # keeps that one-off cost out of whichever tool goes first.
            bench(bench_bin, "bigbox", *target("dovecot", "fetch"), "--repeat", 1, "--expect", fixture.fetch_messages)
            for _ in range(repeat):
                for tool in ("postie", "mpop", "fetchmail"):
                    seconds_taken = fetch_run(root, tool, postie_bin, cert, fixture.fetch_messages)
                    record(f"fetch {fixture.fetch_messages} messages from Dovecot into a Maildir (s)", tool, seconds_taken)
            # Removed only now: deleting a run's 1,000 files just before the next run creates
            # as many makes ext4 pass over the recently deleted inodes for every new file
            # (perf: find_get_block_common, recently_deleted), a cost every tool would pay
            # per file that says nothing about the tools.
            shutil.rmtree(root / "fetch", ignore_errors=True)
    finally:
        for proc in procs.values():
            stop(proc)

    # Memory is measured on freshly started servers: an allocator reuses what earlier
    # scenarios freed, which would hide what new sessions cost.
    side_by_side = min(args.idle_sessions, 20) if args.smoke else args.idle_sessions
    many = 200 if args.smoke else args.idle_max
    for server in servers if "idle" in only else ():
        for tls in (False, True):
            kind = "TLS" if tls else "plain"
            counts = [(side_by_side, f"memory per idle session, {kind} (KiB)")]
            if server == "postie":
                counts.append((many, f"memory per idle session, {kind}, {many} held (KiB)"))
            for sessions, figure in counts:
                if server == "dovecot":
                    proc = start_dovecot(root, cert, key)
                else:
                    proc = start_postie(root, postie_bin, cert, key, server, pg.url() if server == "postie-pg" else None)
                try:
                    held = bench(bench_bin, "idle", *target(server, "idle{n}", tls, cert), "--sessions", sessions, "--pids", proc.pid)
                    record(figure, server, held["value"])
                finally:
                    stop(proc)
                    wait_port_free(PORTS[server][0])


def deliver_two_front_ends(bench_bin, deliveries):
    """LMTP deliveries/s through two postie-pg front ends at once, each with the deliver
    scenario's 8 connections: all messages over the wall time of both runs."""
    started = time.time()
    runs = [subprocess.Popen([str(bench_bin), "deliver", "--addr", f"127.0.0.1:{LMTP_PORTS[name]}", "--rcpt", "lmtp@localhost",
                              "--messages", str(deliveries), "--concurrency", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("postie-pg", "postie-pg-2")]
    for run in runs:
        _, err = run.communicate(timeout=600)
        if run.returncode != 0:
            sys.exit(f"postie-bench deliver (two front ends) failed:\n{err[-2000:]}")
    return 2 * deliveries / (time.time() - started)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    sys.exit(f"no VmRSS for process {pid}")


def retr_rss_growth(port, pid, size):
    """Logs in as `huge`, then RETRs its one message, reading as fast as it comes and sampling
    the server's RSS every 256 KiB; returns the peak above the RSS just before the RETR (KiB)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        reader = conn.makefile("rb")
        for command in (None, b"USER huge", b"PASS bench"):
            if command:
                conn.sendall(command + b"\r\n")
            reply = reader.readline()
            if not reply.startswith(b"+OK"):
                sys.exit(f"huge: {command} got {reply!r}")
        before = peak = rss_kib(pid)
        conn.sendall(b"RETR 1\r\n")
        if not reader.readline().startswith(b"+OK"):
            sys.exit("huge: RETR 1 refused")
        received, tail, since = 0, b"", 0
        while not tail.endswith(b"\r\n.\r\n"):
            data = reader.read1(1 << 20)
            if not data:
                sys.exit(f"huge: the connection closed after {received} octets of the message")
            received += len(data)
            tail = (tail + data)[-5:]
            since += len(data)
            if since >= 256 << 10:
                peak = max(peak, rss_kib(pid))
                since = 0
        peak = max(peak, rss_kib(pid))
        if received < size:
            sys.exit(f"huge: {received} octets received for a {size}-octet message")
        conn.sendall(b"QUIT\r\n")
    return peak - before


def fetch_run(root, tool, postie_bin, cert, expected):
    """Downloads the fetch user's mailbox from Dovecot (implicit TLS, certificate checked,
    mail kept on the server) into a fresh Maildir with `tool`; returns the seconds taken. The
    Maildir stays until the caller removes root/fetch."""
    work = root / "fetch" / f"{tool}-{time.time_ns()}"
    maildir = work / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    port = PORTS["dovecot"][1]
    env = dict(os.environ, HOME=str(work))
    if tool == "postie":
        config = work / "fetch.toml"
        config.write_text(f"""state_dir = "{work}/state"
[accounts.bench]
server = "localhost:{port}"
tls = "implicit"
user = "fetch"
password = "bench"
keep = true
ca_file = "{cert}"
deliver_to = "maildir:{maildir}"
""")
        command = [str(postie_bin), "fetch", "--config", str(config), "--reset-state", "--quiet"]
    elif tool == "mpop":
        config = work / "mpoprc"
        config.write_text(f"""account bench
host localhost
port {port}
tls on
tls_starttls off
tls_trust_file {cert}
auth user
user fetch
password bench
keep on
delivery maildir {maildir}
uidls_file {work}/uidls
""")
        config.chmod(0o600)
        command = ["mpop", "-C", str(config), "--quiet", "bench"]
    else:
        config = work / "fetchmailrc"
        config.write_text(f"""set no bouncemail
poll localhost protocol POP3 port {port}
  user "fetch" password "bench" ssl sslcertck sslcertfile "{cert}" keep
  mda "/bin/sh -c 'cat > {maildir}/new/msg.$$'"
""")
        config.chmod(0o600)
        env["FETCHMAILHOME"] = str(work)
        command = ["fetchmail", "-f", str(config), "--nodetach", "--silent"]
    started = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    taken = time.time() - started
    got = sum(1 for sub in ("new", "cur") for _ in (maildir / sub).iterdir())
    if done.returncode != 0 or got != expected:
        sys.exit(f"{tool} fetched {got} of {expected} messages (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return taken


HIGHER_IS_BETTER = ("sessions", "RETR", "loopback", "LMTP")


def report(results, smoke):
    loopback = statistics.median(results["loopback throughput (MB/s)"]["loopback"])  # always measured
    rows = []
    spread = lambda xs: f"{min(xs):.4g}–{max(xs):.4g}" if xs else "–"
    for figure, by_server in results.items():
        if figure.startswith("loopback"):
            continue
        # postie on Maildir first, then postie on PostgreSQL, each beside the others.
        subjects = [name for name in ("postie", "postie-pg") if name in by_server] or ["postie"]
        others = [name for name in by_server if name not in ("postie", "postie-pg")] or ["dovecot"]
        for subject in subjects:
            p = by_server.get(subject, [])
            pm = statistics.median(p) if p else None
            label = figure if subject == "postie" else f"{figure} [postie-pg]"
            for other in others:
                o = by_server.get(other, [])
                om = statistics.median(o) if o else None
                ratio = pm / om if pm and om else None
                rows.append((label, pm, other, om, ratio, spread(p), spread(o)))
    lines = [
        f"Loopback limit (raw TCP, one stream): {loopback:.0f} MB/s",
        "",
        "Rows marked [postie-pg] are postie on PostgreSQL; the others postie on Maildir.",
        "",
        "| figure | postie median | compared with | its median | ratio postie/other | postie spread | other's spread |",
        "|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "–" if v is None else f"{v:.4g}"
    for figure, pm, other, om, ratio, ps, os_ in rows:
        lines.append(f"| {figure} | {fmt(pm)} | {other} | {fmt(om)} | {fmt(ratio)} | {ps} | {os_} |")
    retr = results.get("RETR MB/s, plain", {}).get("postie")
    if retr:
        lines += ["", f"postie plain RETR = {statistics.median(retr) / loopback:.0%} of the loopback limit."]
    retr_crlf = results.get("RETR MB/s, plain, CRLF-stored (as LMTP delivers)", {}).get("postie")
    if retr_crlf:
        lines += ["", f"postie plain RETR of CRLF-stored mail (sendfile) = {statistics.median(retr_crlf) / loopback:.0%} of the loopback limit."]
    retr_dots = results.get("RETR MB/s, plain, CRLF-stored, 3 lines starting with '.' each", {}).get("postie")
    if retr_dots:
        lines += ["", f"postie plain RETR of CRLF-stored mail with dot lines (sendfile between them) = {statistics.median(retr_dots) / loopback:.0%} of the loopback limit."]
    lines += ["", f"TLS RETR: kernel TLS {kernel_tls()}; otherwise rustls encrypts in user space."]
    text = "\n".join(lines)
    print(text)
    if not smoke:
        (ROOT / "bench" / "results.md").write_text(text + "\n")
        (ROOT / "bench" / "chart.svg").write_text(chart(rows))


def kernel_tls():
    """Whether this kernel offers kernel TLS (the `tls` upper-layer protocol) to sockets."""
    try:
        ulps = Path("/proc/sys/net/ipv4/tcp_available_ulp").read_text().split()
    except OSError:
        ulps = []
    if "tls" in ulps:
        return "is offered by this kernel: postie hands TLS sessions to it ([tls] kernel_tls)"
    return f"is not offered by this kernel (tcp_available_ulp: {' '.join(ulps) or 'none'})"


def chart(rows):
    """Bars of postie/Dovecot ratios, log-scaled so both 'more is better' and 'less is better' read as bars."""
    import math
    data = []
    for figure, _, other, _, ratio, _, _ in rows:
        if ratio is None:
            continue
        better = ratio if figure.startswith(HIGHER_IS_BETTER) else 1 / ratio
        data.append((f"{figure} vs {other}", better))
    width, bar_h, left = 960, 26, 460
    height = 60 + bar_h * len(data)
    top = max([b for _, b in data] + [2])
    scale = (width - left - 80) / math.log10(top * 1.2)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
           f'<text x="10" y="22" font-size="15" font-weight="bold">postie vs Dovecot, mpop and fetchmail: how many times better (log scale, 1 = equal)</text>']
    for i, (figure, better) in enumerate(data):
        y = 40 + i * bar_h
        w = max(2, math.log10(max(better, 1.0001)) * scale) if better >= 1 else 2
        colour = "#2e7d32" if better >= 1 else "#c62828"
        out.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{figure}</text>')
        out.append(f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{bar_h - 8}" fill="{colour}"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 17}">{better:.2f}×</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
