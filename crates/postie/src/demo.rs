//! `postie serve --demo`: a working server with no setup, made once and reused.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use postie::config::StoreConfig;
use postie_auth::{hash_password, passwd_file, Scheme};
use postie_store::{Delivery, MailStore, Quota, Recipient};

const CONFIG: &str = r#"# postie demo configuration: made by `postie serve --demo`, reused on later runs.
hostname = "localhost"

[pop3]
listen = ["127.0.0.1:1110"]
listen_tls = ["127.0.0.1:1995"]
apop = false

[tls]
cert = "cert.pem"
key = "key.pem"

[auth]
passwd_file = "users"

[mail]
maildir = "mail/{user}/Maildir"
"#;

/// Mail intake for the demo; appended to a demo configuration made before postie had it.
const INTAKE: &str = r#"
[lmtp]
listen = ["127.0.0.1:2424"]

[smtp]
listen = ["127.0.0.1:2525"]
domains = ["localhost"]
"#;

/// The account page on loopback; appended to a demo configuration made before postie had it.
const HTTP: &str = r#"
[http]
listen = ["127.0.0.1:8080"]
"#;

const WELCOME: [&[u8]; 3] = [
    b"From: postie <postmaster@localhost>\r\nTo: demo@localhost\r\nSubject: Welcome to postie\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\nMessage-ID: <welcome-1@localhost>\r\n\r\nHello!\r\n\r\nThis message was downloaded from the postie demo server over POP3.\r\nDelete it from your client and it is gone from the server after QUIT.\r\n",
    b"From: postie <postmaster@localhost>\r\nTo: demo@localhost\r\nSubject: Lines that start with a dot\r\nDate: Fri, 27 Nov 2026 09:01:00 +0000\r\nMessage-ID: <welcome-2@localhost>\r\n\r\nPOP3 ends a message with a line holding a single dot, so lines that\r\nstart with one are byte-stuffed on the wire:\r\n.\r\n.. two dots\r\nYour client shows them exactly as written here.\r\n",
    b"From: postie <postmaster@localhost>\r\nTo: demo@localhost\r\nSubject: =?UTF-8?B?VVRGLTggd29ya3M6IGdyw7zDnyBkaWNoIPCfk6w=?=\r\nDate: Fri, 27 Nov 2026 09:02:00 +0000\r\nMessage-ID: <welcome-3@localhost>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nMail is 8-bit data: gr\xc3\xbc\xc3\x9f dich \xf0\x9f\x93\xac\r\n",
];

/// Makes whatever the demo lacks (config, certificate, user, welcome mail) and returns the
/// configuration file's path.
pub fn prepare(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the demo folder {}", dir.display()))?;
    let config = dir.join("postie.toml");
    if !config.exists() {
        fs::write(&config, format!("{CONFIG}{INTAKE}{HTTP}"))
            .with_context(|| format!("cannot write {}", config.display()))?;
    } else {
        let text = fs::read_to_string(&config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        let mut added = String::new();
        if !text.contains("[smtp]") && !text.contains("[lmtp]") {
            added.push_str(INTAKE);
        }
        if !text.contains("[http]") {
            added.push_str(HTTP);
        }
        if !added.is_empty() {
            fs::write(&config, format!("{text}{added}"))
                .with_context(|| format!("cannot write {}", config.display()))?;
        }
    }
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if !cert.exists() || !key.exists() {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .context("cannot generate the demo certificate")?;
        write_private(&key, generated.key_pair.serialize_pem().as_bytes())?;
        fs::write(&cert, generated.cert.pem())
            .with_context(|| format!("cannot write {}", cert.display()))?;
    }
    let users = dir.join("users");
    if passwd_file::list_users(&users)?.is_empty() {
        let hash = hash_password(b"demo", Scheme::Argon2id)?;
        passwd_file::set_user(&users, "demo", &hash)?;
    }
    let maildir = dir.join("mail/demo/Maildir");
    if !maildir.exists() {
        let store = crate::store::open(&StoreConfig::Maildir {
            template: dir
                .join("mail/{user}/Maildir")
                .to_string_lossy()
                .into_owned(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .context("cannot start the runtime")?;
        for message in WELCOME {
            let delivery = Delivery {
                message: std::sync::Arc::new(message.to_vec()),
                recipients: vec![Recipient {
                    user: "demo".into(),
                    headers: Vec::new(),
                    quota: Quota::default(),
                }],
            };
            for result in runtime.block_on(store.deliver(delivery)) {
                result.context("cannot deliver the welcome messages")?;
            }
        }
    }
    Ok(config)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn print_help(addrs: &[(SocketAddr, bool)], http: &[SocketAddr], dir: &Path) {
    let tls_port = addrs
        .iter()
        .find(|(_, tls)| *tls)
        .map_or(1995, |(a, _)| a.port());
    let plain_port = addrs
        .iter()
        .find(|(_, tls)| !*tls)
        .map_or(1110, |(a, _)| a.port());
    let dir = dir.display();
    let page = match http.first() {
        Some(addr) => {
            format!("\nYour account page (POP settings, app passwords): http://{addr}/account/\n")
        }
        None => String::new(),
    };
    println!(
        "\npostie demo server is running (files in {dir}/).\n\
         \n  User: demo   Password: demo\n\
         \nTry it with curl:\n\
         \n  curl --insecure --user demo:demo pop3s://127.0.0.1:{tls_port}/      # list the messages\n\
         \x20 curl --insecure --user demo:demo pop3s://127.0.0.1:{tls_port}/1     # read message 1\n\
         \x20 curl --ssl-reqd --insecure --user demo:demo pop3://127.0.0.1:{plain_port}/1   # the same over STLS\n\
         \nOr in Thunderbird (Account Settings > Add Mail Account > Configure manually):\n\
         \n  Incoming: POP3, server 127.0.0.1, port {tls_port}, SSL/TLS, normal password, user name demo\n\
         \x20 (or port {plain_port} with STARTTLS). Accept the self-signed certificate ({dir}/cert.pem).\n\
         \nSend the demo user a message over SMTP (127.0.0.1:2525; LMTP listens on 127.0.0.1:2424):\n\
         \n  swaks --server 127.0.0.1:2525 --from you@example.org --to demo@localhost --header 'Subject: hello'\n\
         {page}\nPress Ctrl-C to stop.\n"
    );
}
