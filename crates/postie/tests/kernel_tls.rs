//! Kernel TLS, where the kernel offers it: inside a small virtual machine running Debian's
//! kernel with the `tls` module (scripts/in-ktls-vm; this machine's own kernel has none), a
//! real `postie serve` hands its TLS sessions to the kernel, and Python's ssl module (OpenSSL)
//! retrieves mail over implicit TLS and STLS, with TLS 1.3 and 1.2: every RETR byte for byte
//! against the RFC 1939 form, the CRLF-stored messages by sendfile on the kernel TLS socket
//! (`path="ktls"` in the metrics), the LF-stored one through the encoder, close_notify both
//! ways. On this machine, where the kernel offers no kTLS, the other tests' TLS sessions stay
//! with rustls (`retr_as_stored.rs` counts them as `copy`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::write_certificate;

const CLIENT: &str = r#"
import socket, ssl, sys, time, urllib.request

fixture, plain_port, tls_port, http_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
names = sys.argv[5:]

def wire_form(stored):
    out = bytearray()
    lines = stored.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line.startswith(b"."):
            out += b"."
        out += line + b"\r\n"
    return bytes(out) + b".\r\n"

expected = [wire_form(open(f"{fixture}/{name}", "rb").read()) for name in names]

def context(version):
    ctx = ssl.create_default_context(cafile=f"{fixture}/cert.pem")
    ctx.maximum_version = version
    return ctx

def line(f):
    got = f.readline()
    if not got.startswith(b"+OK"):
        sys.exit(f"unexpected answer: {got!r}")
    return got

def session(tls, stls, version):
    raw = socket.create_connection(("127.0.0.1", plain_port if stls else tls_port), timeout=120)
    if stls:
        f = raw.makefile("rb")
        line(f)
        raw.sendall(b"STLS\r\n")
        line(f)
        f.close()
    s = context(version).wrap_socket(raw, server_hostname="localhost")
    print(f"handshake done: {s.version()}", file=sys.stderr, flush=True)
    f = s.makefile("rb")
    if not stls:
        line(f)
    s.sendall(b"USER alice\r\nPASS wonderland\r\n")
    line(f); line(f)
    for n, want in enumerate(expected, 1):
        s.sendall(f"RETR {n}\r\n".encode())
        line(f)
        body = bytearray()
        while not body.endswith(b"\r\n.\r\n"):
            piece = f.readline()
            if not piece:
                sys.exit(f"connection closed inside RETR {n}")
            body += piece
        if bytes(body) != want:
            sys.exit(f"RETR {n} over {version} ({'STLS' if stls else 'implicit TLS'}) differs: {len(body)} octets, {len(want)} expected")
    s.sendall(b"QUIT\r\n")
    line(f)
    # The server's close_notify: a clean end, not an EOF in violation of the protocol.
    rest = f.read()
    if rest:
        sys.exit(f"octets after QUIT: {rest!r}")
    print(f"ok {'STLS' if stls else 'implicit TLS'} {s.version()} {s.cipher()[0]}", flush=True)
    s.close()

for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    for stls in (False, True):
        session(True, stls, version)

# A client that ends with close_notify of its own, without QUIT: the server sees the end.
s = context(ssl.TLSVersion.TLSv1_3).wrap_socket(socket.create_connection(("127.0.0.1", tls_port), timeout=60), server_hostname="localhost")
f = s.makefile("rb")
line(f)
s.unwrap().close()

metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=30).read().decode()
for wanted in ('postie_pop3_bodies_sent_total{path="ktls"} 8', 'postie_pop3_bodies_sent_total{path="encoder"} 4'):
    if wanted not in metrics:
        sys.exit(f"metrics lack {wanted!r}:\n" + "\n".join(l for l in metrics.splitlines() if "bodies" in l))
print("ALL OK")
"#;

const RUN: &str = r#"
set -u
fixture=$1 postie=$2
work=$(mktemp -d /run/postie-ktls.XXXXXX) && trap 'rm -rf "$work"' EXIT
cp -r "$fixture/." "$work" && cd "$work"
echo "$(date +%T) fixture copied" >&2
grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp || { echo "the machine's kernel offers no kTLS"; exit 1; }
# The AEADs kTLS uses; the kernel's own module loading cannot reach modprobe from the VM's
# first root.
modprobe -a gcm aesni_intel chacha20poly1305 || { echo "cannot load the kernel's TLS ciphers"; exit 1; }
"$postie" serve --allow-root --config postie.toml > postie.log 2>&1 &
server=$!
deadline=$(( $(date +%s) + 120 ))
until python3 -c 'import socket; socket.create_connection(("127.0.0.1", 1995), timeout=1)' 2>/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "postie did not listen within 120 s"; cat postie.log; exit 1; }
  sleep 0.5
done
echo "$(date +%T) server listening" >&2
python3 client.py "$work" 1110 1995 18080 "${@:3}"
status=$?
kill $server; wait $server
[ $status -eq 0 ] || cat postie.log
grep -q "kernel TLS is not offered" postie.log && { echo "postie did not use kernel TLS"; exit 1; }
exit $status
"#;

/// The machine's files: configuration, certificate, users, a Maildir of three messages (two
/// CRLF ones named as delivery names them, one with dot lines at the start, at a 64 KiB
/// boundary and at the end; one LF-stored), the client and the script.
fn fixture(dir: &Path) -> Vec<String> {
    write_certificate(dir);
    std::fs::write(dir.join("users"), "alice:{PLAIN}wonderland\n").unwrap();
    std::fs::write(
        dir.join("postie.toml"),
        "hostname = \"test.example\"\n\
         [pop3]\nlisten = [\"127.0.0.1:1110\"]\nlisten_tls = [\"127.0.0.1:1995\"]\n\
         [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
         [auth]\npasswd_file = \"users\"\nfailure_delay_secs = 0\n\
         [mail]\nmaildir = \"mail/{user}/Maildir\"\n\
         [http]\nlisten = [\"127.0.0.1:18080\"]\n",
    )
    .unwrap();
    let cur = dir.join("mail/alice/Maildir/cur");
    std::fs::create_dir_all(&cur).unwrap();
    for sub in ["new", "tmp"] {
        std::fs::create_dir_all(dir.join("mail/alice/Maildir").join(sub)).unwrap();
    }
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    while big.len() < 2 << 20 {
        big.extend_from_slice(b"a line of a message of a few MiB, in CRLF as LMTP gives it\r\n");
    }
    let mut dots = Vec::new();
    let mut offsets = String::new();
    for n in 0..3000u64 {
        let dotted = [0, 1024, 2999].contains(&n);
        if dotted {
            offsets.push_str(&format!(".{:x}", n * 64));
        }
        dots.push(if dotted { b'.' } else { b'a' });
        dots.extend_from_slice(&[b'b'; 61]);
        dots.extend_from_slice(b"\r\n");
    }
    let lf = b"Subject: lf\n\n.dot\nlast line\n".to_vec();
    let messages = [
        (
            format!("1000000001.M1P1Q1.vm,S={0},W={0},X=c:2,", big.len()),
            big,
        ),
        (
            format!(
                "1000000002.M1P1Q2.vm,S={0},W={0},X=cd{offsets}:2,",
                dots.len()
            ),
            dots,
        ),
        ("1000000003.M1P1Q3.vm:2,".to_owned(), lf),
    ];
    let mut names = Vec::new();
    for (name, content) in messages {
        std::fs::write(cur.join(&name), content).unwrap();
        names.push(format!("mail/alice/Maildir/cur/{name}"));
    }
    std::fs::write(dir.join("client.py"), CLIENT).unwrap();
    std::fs::write(dir.join("run.sh"), RUN).unwrap();
    names
}

#[test]
fn tls_sessions_go_to_the_kernel_and_retr_is_sent_by_sendfile_through_it() {
    // The virtual machine sees this machine's files at the same paths.
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ktls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let names = fixture(&dir);
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/in-ktls-vm");
    let output = Command::new(runner)
        .arg("/bin/bash")
        .arg(dir.join("run.sh"))
        .arg(&dir)
        .arg(env!("CARGO_BIN_EXE_postie"))
        .args(&names)
        .output()
        .expect("scripts/in-ktls-vm runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("ALL OK"),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // Both protocol versions and both ways into TLS ran.
    for wanted in ["TLSv1.3", "TLSv1.2", "ok STLS", "ok implicit TLS"] {
        assert!(stdout.contains(wanted), "{wanted} missing:\n{stdout}");
    }
}
