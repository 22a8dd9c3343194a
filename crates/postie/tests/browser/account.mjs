// The account page in a real browser (Debian's chromium, driven by playwright-core), with
// real POP3 sessions from Python's poplib between the clicks. Run by account_browser.rs with:
// ACCOUNT_URL, POP3S_PORT, LMTP_PORT, CERT (the server's certificate), SHOTS (a folder for
// the screenshots) and DOCS_SHOT (the README's screenshot). Exits non-zero on any failure.
import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import { join } from "node:path";

const { ACCOUNT_URL, POP3S_PORT, LMTP_PORT, CERT, SHOTS, DOCS_SHOT } = process.env;

function check(condition, what) {
  if (!condition) throw new Error(`failed: ${what}`);
}

// RFC 6238 from the base32 key the page shows, as an authenticator app computes it.
function totp(base32) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const o = mac[19] & 15;
  return String((mac.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, "0");
}

const POP = `
import json, poplib, ssl, sys
user, password, action = sys.argv[1:4]
context = ssl.create_default_context(cafile=${JSON.stringify(CERT)})
pop = poplib.POP3_SSL("localhost", ${Number(POP3S_PORT)}, context=context)
try:
    pop.user(user)
    pop.pass_(password)
except poplib.error_proto as refused:
    print(json.dumps({"refused": refused.args[0].decode()}))
    sys.exit(0)
count = pop.stat()[0]
if action == "retr-first" and count:
    pop.retr(1)
pop.quit()
print(json.dumps({"count": count}))
`;

function pop3(user, password, action = "stat") {
  return JSON.parse(execFileSync("python3", ["-c", POP, user, password, action]).toString());
}

function deliver(subject) {
  execFileSync("python3", [
    "-c",
    `import smtplib, sys
with smtplib.LMTP("127.0.0.1", ${Number(LMTP_PORT)}) as lmtp:
    lmtp.sendmail("sender@example.org", ["alice"], "Subject: " + sys.argv[1] + "\\r\\n\\r\\n" + sys.argv[1] + "\\r\\n")`,
    subject,
  ]);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 900 } });
  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  await page.goto(ACCOUNT_URL);
  await shot("1-sign-in");
  await page.getByLabel("User name").fill("alice");
  await page.getByLabel("Password").fill("wonderland");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Signed in as").waitFor();
  await shot("2-signed-in");

  // Two-step sign-in, the code computed from the key shown.
  await page.getByRole("button", { name: "Set up two-step sign-in" }).click();
  const secret = (await page.locator("#two-step-secret").textContent()).trim();
  check(await page.locator("figure.qr svg").count() === 1, "a QR code is shown");
  await shot("3-two-step-setup");
  await page.getByLabel("Code from the app").fill(totp(secret));
  await page.getByRole("button", { name: "Turn on two-step sign-in" }).click();
  await page.locator("#recovery-codes").waitFor();
  check((await page.locator("#recovery-codes li").count()) === 10, "ten recovery codes");
  await shot("4-two-step-on");
  check("refused" in pop3("alice", "wonderland"), "POP3 refuses the account password once two-step is on");

  // An app password logs in over POP3; revoked, it does not.
  await page.getByLabel("Label (the client or device it is for)").fill("laptop");
  await page.getByRole("button", { name: "Create an app password" }).click();
  const laptop = (await page.locator("#new-app-password").textContent()).trim();
  await shot("5-app-password");
  check(pop3("alice", laptop).count === 1, "the app password logs in and sees the old message");
  await page.getByRole("button", { name: "Revoke laptop" }).click();
  await page.getByText("The app password is revoked.").waitFor();
  check("refused" in pop3("alice", laptop), "a revoked app password is refused");

  await page.getByLabel("Label (the client or device it is for)").fill("phone");
  await page.getByRole("button", { name: "Create an app password" }).click();
  const phone = (await page.locator("#new-app-password").textContent()).trim();

  // From now on: the old message leaves the listing. Archive: retrieved mail leaves it too.
  await page.getByLabel(/Mail that arrives from now on/).check();
  await page.getByLabel(/Archive it/).check();
  await page.getByRole("button", { name: "Save POP settings" }).click();
  await page.getByText("Your POP settings are saved.").waitFor();
  await shot("6-pop-settings");
  check(pop3("alice", phone).count === 0, "from now on hides the older message");
  deliver("new");
  check(pop3("alice", phone, "retr-first").count === 1, "the new message is listed");
  check(pop3("alice", phone).count === 0, "the archived message leaves the next listing");

  await page.goto(ACCOUNT_URL);
  await page.getByText("Recent POP activity").waitFor();
  await page.screenshot({ path: DOCS_SHOT, fullPage: true });
  await shot("7-activity");
  // On a phone's width: nothing wider than the screen.
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 375, `the page fits a phone's width (${overflow} px)`);
  await shot("7-phone");
  await page.setViewportSize({ width: 800, height: 900 });

  // Signing in again takes a code after the password.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("User name").fill("alice");
  await page.getByLabel("Password").fill("wonderland");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Code").waitFor();
  await shot("8-second-step");
  console.log("browser test passed");
} finally {
  await browser.close();
}
