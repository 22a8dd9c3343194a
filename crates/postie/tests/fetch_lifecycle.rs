//! The server copy's lifecycle and what a run leaves on each message: a server that lists
//! only a window of messages per session (as Gmail does) drained in one run, against a
//! small Gmail-like POP3 server written here in Python; and the trace fields
//! `received_header = true` adds, against a real `postie serve`, read back with Python's
//! `mailbox`.

mod common;
mod fetch_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::TestServer;
use fetch_support::{python, python_maildir_messages, sample_messages, sorted, FetchEnv};

/// A POP3 server that, like Gmail, lists at most `WINDOW` of the messages not yet deleted,
/// oldest first, per session; it counts its sessions in a file. USER/PASS, UIDL, LIST,
/// RETR, TOP, DELE (applied at QUIT), no pipelining.
const WINDOWED_SERVER: &str = r#"
import socket, sys
window, count, sessions_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
messages = {}
for i in range(count):
    body = "Subject: message %d\r\nMessage-ID: <%d@windowed>\r\n\r\nbody %d\r\n" % (i, i, i)
    messages["uid%04d" % i] = body.encode()
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
sessions = 0
while True:
    conn, _ = listener.accept()
    sessions += 1
    with open(sessions_path, "w") as f:
        f.write(str(sessions))
    reader = conn.makefile("rb")
    send = lambda text: conn.sendall(text.encode() if isinstance(text, str) else text)
    listed = sorted(messages)[:window]
    deleted = set()
    send("+OK windowed\r\n")
    for raw in reader:
        words = raw.decode().strip().split()
        if not words:
            continue
        verb = words[0].upper()
        if verb == "CAPA":
            send("+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n")
        elif verb in ("USER", "PASS", "NOOP", "RSET"):
            send("+OK\r\n")
        elif verb == "STAT":
            send("+OK %d %d\r\n" % (len(listed), sum(len(messages[u]) for u in listed)))
        elif verb == "UIDL":
            send("+OK\r\n" + "".join("%d %s\r\n" % (n + 1, u) for n, u in enumerate(listed)) + ".\r\n")
        elif verb == "LIST":
            send("+OK\r\n" + "".join("%d %d\r\n" % (n + 1, len(messages[u])) for n, u in enumerate(listed)) + ".\r\n")
        elif verb in ("RETR", "TOP"):
            content = messages[listed[int(words[1]) - 1]]
            if verb == "TOP":
                content = content.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            send(b"+OK\r\n" + content + b".\r\n")
        elif verb == "DELE":
            deleted.add(listed[int(words[1]) - 1])
            send("+OK\r\n")
        elif verb == "QUIT":
            for uid in deleted:
                del messages[uid]
            send("+OK\r\n")
            break
        else:
            send("-ERR unknown\r\n")
    conn.close()
"#;

/// The Python server above, stopped when dropped.
struct WindowedServer {
    child: Child,
    port: u16,
    sessions_path: std::path::PathBuf,
}

impl WindowedServer {
    fn start(env: &FetchEnv, window: usize, count: usize) -> WindowedServer {
        let sessions_path = env.path("sessions");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(WINDOWED_SERVER)
            .arg(window.to_string())
            .arg(count.to_string())
            .arg(&sessions_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server's port");
        WindowedServer {
            child,
            port,
            sessions_path,
        }
    }

    fn sessions(&self) -> u32 {
        std::fs::read_to_string(&self.sessions_path)
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for WindowedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn windowed_account(server: &WindowedServer, extra: &str) -> String {
    format!(
        "[accounts.g]\nserver = \"127.0.0.1:{}\"\ntls = \"none\"\nauth = \"user\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Mail\"\n{extra}",
        server.port
    )
}

/// The Message-IDs in a Maildir, sorted.
fn message_ids(env: &FetchEnv) -> Vec<String> {
    let code = "import mailbox, sys\n\
                box = mailbox.Maildir(sys.argv[1], create=False)\n\
                print('\\n'.join(sorted(m['Message-ID'] for m in box)))\n";
    python(code, &env.path("Mail"))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn windowed_ids(range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids: Vec<String> = range.map(|i| format!("<{i}@windowed>")).collect();
    ids.sort();
    ids
}

#[test]
fn a_server_listing_fifty_per_session_is_drained_in_one_run() {
    let env = FetchEnv::new();
    let server = WindowedServer::start(&env, 50, 120);
    env.config(&windowed_account(&server, ""));
    let run = env.fetch(&["g"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(message_ids(&env), windowed_ids(0..120));
    assert_eq!(
        server.sessions(),
        3,
        "50, 50, then 20 new messages: fewer than a window, the last session"
    );
    assert!(
        run.stderr.contains("g: 120 fetched") && run.stderr.contains(", 3 sessions in "),
        "{}",
        run.stderr
    );
}

#[test]
fn max_sessions_per_run_bounds_the_logins_and_the_next_run_goes_on() {
    let env = FetchEnv::new();
    let server = WindowedServer::start(&env, 50, 120);
    env.config(&windowed_account(&server, "max_sessions_per_run = 2\n"));
    let run = env.fetch(&["g"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.sessions(), 2);
    assert_eq!(message_ids(&env), windowed_ids(0..100));
    let run = env.fetch(&["g"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(message_ids(&env), windowed_ids(0..120));
    assert_eq!(server.sessions(), 3, "one session for the last 20");
}

#[test]
fn a_server_listing_everything_costs_one_more_session_only_after_a_window_of_new_mail() {
    let env = FetchEnv::new();
    let server = WindowedServer::start(&env, 1000, 30);
    env.config(&windowed_account(&server, "keep = true\n"));
    let run = env.fetch(&["g", "--reset-state"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(message_ids(&env), windowed_ids(0..30));
    assert_eq!(
        server.sessions(),
        2,
        "30 messages listed, all new: one more session, which brings nothing new"
    );
    let run = env.fetch(&["g"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.sessions(), 3, "nothing new: one session");
    assert_eq!(message_ids(&env).len(), 30);
}

fn postie_account(server: &TestServer, extra: &str) -> String {
    format!(
        "[accounts.a]\nserver = \"127.0.0.1:{}\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Mail\"\n{extra}",
        server.plain.port()
    )
}

#[test]
fn received_header_adds_trace_fields_naming_the_account_and_the_uidl() {
    let server = TestServer::start();
    let messages = sample_messages(3, 200);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    env.config(&postie_account(&server, "received_header = true\n"));
    let run = env.fetch(&["a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let delivered = python_maildir_messages(&env.path("Mail"));
    assert_eq!(delivered.len(), 3);
    let mut originals = Vec::new();
    for message in &delivered {
        let account_field = b"\nX-Postie-Account: a\n";
        let end = message
            .windows(account_field.len())
            .position(|w| w == account_field)
            .expect("X-Postie-Account");
        let received = std::str::from_utf8(&message[..end]).unwrap();
        assert!(
            received.starts_with("Received: from 127.0.0.1 by ")
                && received.contains(" (postie fetch) with POP3\n\t(account a, uidl "),
            "{received}"
        );
        let date = received.rsplit_once("); ").unwrap().1;
        assert!(date.ends_with(" +0000") && date.contains(", "), "{date}");
        originals.push(message[end + account_field.len()..].to_vec());
    }
    assert_eq!(sorted(originals), sorted(messages));

    // Python's email parser sees them as the message's first fields.
    let code = "import mailbox, sys\n\
                box = mailbox.Maildir(sys.argv[1], create=False)\n\
                for m in box:\n    print(m.keys()[0], m['X-Postie-Account'], ' '.join(m['Received'].split()))\n";
    let listing = python(code, &env.path("Mail"));
    for line in listing.lines() {
        assert!(line.starts_with("Received a from 127.0.0.1 by "), "{line}");
        assert!(line.contains("(account a, uidl "), "{line}");
    }
}

#[test]
fn without_received_header_messages_arrive_unchanged() {
    let server = TestServer::start();
    let messages = sample_messages(2, 100);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    env.config(&postie_account(&server, ""));
    let run = env.fetch(&["a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(python_maildir_messages(&env.path("Mail")), sorted(messages));
}

/// The name of the Maildir file holding `content` (LF line endings), searched in new/ and
/// cur/.
fn file_holding(maildir: &std::path::Path, content: &[u8]) -> std::path::PathBuf {
    ["new", "cur"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(maildir.join(sub)).unwrap())
        .map(|entry| entry.unwrap().path())
        .find(|path| std::fs::read(path).unwrap() == content)
        .expect("the message's file")
}

#[test]
fn a_message_deleted_locally_is_deleted_on_the_server_and_one_moved_to_a_folder_is_not() {
    let server = TestServer::start();
    let messages = sample_messages(3, 100);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    env.config(&postie_account(
        &server,
        "keep = true\ndelete_when_deleted_locally = true\n",
    ));
    let run = env.fetch(&["a", "--reset-state"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let maildir = env.path("Mail");
    assert_eq!(python_maildir_messages(&maildir), sorted(messages.clone()));

    // The first is deleted here; the second read and moved to a Maildir++ folder.
    std::fs::remove_file(file_holding(&maildir, &messages[0])).unwrap();
    let moved = file_holding(&maildir, &messages[1]);
    std::fs::create_dir_all(maildir.join(".Archive/cur")).unwrap();
    std::fs::create_dir_all(maildir.join(".Archive/new")).unwrap();
    std::fs::create_dir_all(maildir.join(".Archive/tmp")).unwrap();
    let unique = moved.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::rename(
        &moved,
        maildir.join(".Archive/cur").join(format!("{unique}:2,S")),
    )
    .unwrap();

    let list = env.command(&["--list", "a"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        list.matches("deleted locally").count(),
        1,
        "--list shows why: {list}"
    );
    let run = env.fetch(&["a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("1 deleted"), "{}", run.stderr);
    let on_server = |server: &TestServer| -> Vec<Vec<u8>> {
        sorted(
            server
                .message_files("alice")
                .iter()
                .map(|path| std::fs::read(path).unwrap())
                .collect(),
        )
    };
    assert_eq!(
        on_server(&server),
        sorted(messages[1..].to_vec()),
        "only the message deleted here is gone from the server"
    );
    assert_eq!(
        python_maildir_messages(&maildir),
        vec![messages[2].clone()],
        "nothing fetched again"
    );

    // The next run finds nothing to do.
    let run = env.fetch(&["a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(on_server(&server), sorted(messages[1..].to_vec()));
    assert_eq!(python_maildir_messages(&maildir).len(), 1);
}

#[test]
fn delete_when_deleted_locally_is_refused_without_keep_or_a_maildir() {
    let server = TestServer::start();
    let env = FetchEnv::new();
    env.config(&postie_account(
        &server,
        "delete_when_deleted_locally = true\n",
    ));
    let run = env.fetch(&["a"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("delete_when_deleted_locally needs keep = true or delete_after_days"),
        "{}",
        run.stderr
    );
    env.config(
        &postie_account(&server, "keep = true\ndelete_when_deleted_locally = true\n")
            .replace("maildir:Mail", "mbox:mail.mbox"),
    );
    let run = env.fetch(&["a"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("delete_when_deleted_locally needs a maildir: or maildir++: deliver_to"),
        "{}",
        run.stderr
    );
}
