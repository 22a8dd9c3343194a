//! The account page in a real browser: Debian's chromium driven by playwright-core
//! (tests/browser/account.mjs, `npm ci` there when node_modules is missing), against the
//! real `postie serve`, with Python's poplib checking each change in real POP3 sessions.
//! Screenshots go into the test's folder (or the folder `POSTIE_KEEP_SCREENSHOTS` names, to
//! look at them afterwards); with `POSTIE_UPDATE_DOCS_SCREENSHOT=1` one also replaces
//! docs/account-page.png, the README's (a test run never changes the checkout otherwise);
//! one step checks that the page fits a phone's width.
//! Fails, never skips, when chromium, node or python3 is missing (scripts/test installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{lmtp_deliver, ServerBuilder};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn install_packages() {
    if browser_dir().join("node_modules/playwright-core").is_dir() {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(browser_dir())
        .output()
        .expect("npm runs (Node.js 20 and npm; scripts/test installs them)");
    assert!(
        output.status.success(),
        "npm ci in {} failed:\n{}",
        browser_dir().display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_account_page_in_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: scripts/test installs Debian's chromium"
    );
    install_packages();
    let server = ServerBuilder::new()
        .sections("[http]\nlisten = [\"127.0.0.1:0\"]\n")
        .lmtp("")
        .start();
    let old = b"Subject: old\r\n\r\nold\r\n";
    assert_eq!(lmtp_deliver(server.lmtp.unwrap(), "alice", old).code, 250);
    // Arrival times are kept to the microsecond; a step keeps "before" and "after" apart.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let shots = match std::env::var_os("POSTIE_KEEP_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => server.dir.path().join("screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let docs_shot = match std::env::var_os("POSTIE_UPDATE_DOCS_SCREENSHOT") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/account-page.png"),
        None => shots.join("account-page.png"),
    };
    let output = Command::new("node")
        .arg(browser_dir().join("account.mjs"))
        .current_dir(browser_dir())
        .env(
            "ACCOUNT_URL",
            format!("http://{}/account/", server.listener("http")),
        )
        .env("POP3S_PORT", server.tls.port().to_string())
        .env("LMTP_PORT", server.lmtp.unwrap().port().to_string())
        .env("CERT", server.dir.path().join("cert.pem"))
        .env("SHOTS", &shots)
        .env("DOCS_SHOT", &docs_shot)
        .output()
        .expect("node runs (scripts/test installs Node.js)");
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    for name in [
        "1-sign-in",
        "2-signed-in",
        "3-two-step-setup",
        "4-two-step-on",
        "5-app-password",
        "6-pop-settings",
        "7-activity",
        "7-phone",
        "8-second-step",
    ] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}.png");
    }
}
