// End-to-end: double opt-in (issue 15). A shopper signs up for the newsletter in Chromium on
// a form that asks for double opt-in; the collector mails the confirmation link over
// STARTTLS to a real SMTP server started here (Node's net + tls, a certificate made with
// openssl, trusted through the settings' `ca_file`); the shopper opens the link in
// Chromium, sees the one-button page, presses it, and the consent stands given.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { ROOT, startServer, launchBrowser, openPage, CHOICES, flakyProxy, stateOf } from "./harness.mjs";

const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {});
});

/** A CA and a certificate for `localhost` it signed, made by openssl in `dir`. */
function certificates(dir) {
  const run = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=unticked e2e CA");
  run("req", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost");
  writeFileSync(
    path.join(dir, "leaf.ext"),
    "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext");
  return {
    ca: path.join(dir, "ca.pem"),
    key: readFileSync(path.join(dir, "leaf.key")),
    cert: readFileSync(path.join(dir, "leaf.pem")),
  };
}

/**
 * A small SMTP server (RFC 5321) that offers STARTTLS (RFC 3207) and takes mail only under
 * TLS. Resolves with { port, mails, close }; each mail is { rcpt, data, tls }.
 */
function smtpServer({ key, cert }) {
  const mails = [];
  const sockets = new Set();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on("close", () => sockets.delete(raw));
    const speak = (socket, secure) => {
      let buffer = "";
      let inData = false;
      let rcpt = "";
      const onData = (chunk) => {
        buffer += chunk.toString("utf8");
        for (;;) {
          if (inData) {
            const end = buffer.indexOf("\r\n.\r\n");
            if (end < 0) return;
            mails.push({ rcpt, data: buffer.slice(0, end), tls: secure });
            buffer = buffer.slice(end + 5);
            inData = false;
            socket.write("250 queued\r\n");
            continue;
          }
          const eol = buffer.indexOf("\r\n");
          if (eol < 0) return;
          const line = buffer.slice(0, eol);
          buffer = buffer.slice(eol + 2);
          const verb = line.slice(0, 4).toUpperCase();
          if (verb === "EHLO") socket.write(secure ? "250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n" : "250-localhost\r\n250 STARTTLS\r\n");
          else if (verb === "STAR" && !secure) {
            socket.removeListener("data", onData);
            socket.write("220 ready to start TLS\r\n", () => {
              const upgraded = new tls.TLSSocket(socket, { isServer: true, key, cert });
              upgraded.on("error", () => {});
              speak(upgraded, true);
            });
            return;
          } else if (verb === "MAIL" && secure) socket.write("250 ok\r\n");
          else if (verb === "RCPT" && secure) {
            rcpt = line;
            socket.write("250 ok\r\n");
          } else if (verb === "DATA" && secure) {
            inData = true;
            socket.write("354 go ahead\r\n");
          } else if (verb === "QUIT") socket.end("221 bye\r\n");
          else if (verb === "RSET" || verb === "NOOP") socket.write("250 ok\r\n");
          // Nothing is taken in the clear.
          else socket.write("530 must issue STARTTLS first\r\n");
        }
      };
      socket.on("data", onData);
    };
    raw.on("error", () => {});
    raw.write("220 localhost ESMTP e2e\r\n");
    speak(raw, false);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: server.address().port,
        mails,
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy();
            server.close(done);
          }),
      }),
    ),
  );
}

const until = async (what, check, timeoutMs = 20000) => {
  for (const start = Date.now(); ; await new Promise((r) => setTimeout(r, 100))) {
    const value = await check();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
  }
};

test("a newsletter signup on a double opt-in form stands given only once the mailed link's button is pressed", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "unticked-optin-"));
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
  // A web root of the test's own, with the demo config that asks double opt-in of the
  // newsletter form (serve compiles the config into its pkg/).
  const www = path.join(dir, "www");
  cpSync(path.join(ROOT, "www"), www, { recursive: true });
  cpSync(path.join(ROOT, "testdata/config/good/double-opt-in.json"), path.join(www, "consent.json"));
  const tlsFiles = certificates(dir);
  const smtp = await smtpServer(tlsFiles);
  cleanup.push(() => smtp.close());
  const settings = path.join(dir, "settings.toml");
  writeFileSync(
    settings,
    `[smtp]\nrelay = "localhost"\nport = ${smtp.port}\nsecurity = "starttls"\nfrom = "Baltic Boots <news@baltic-boots.example>"\nca_file = "${tlsFiles.ca}"\n`,
  );
  const server = await startServer({ www, db: path.join(dir, "log.db"), extra: ["--settings", settings] });
  cleanup.push(() => server.stop());
  // The shop's origin: the one the collector's links point to (--public-origin).
  const proxy = await flakyProxy(server);
  cleanup.push(() => new Promise((resolve) => (proxy.server.closeAllConnections(), proxy.server.close(resolve))));
  const browser = await launchBrowser();
  cleanup.push(() => browser.close());
  const { page, log } = await openPage(browser);

  const email = "anna.optin@example.lv";
  await page.goto(proxy.url + "/newsletter.html");
  await page.waitForSelector(CHOICES);
  await page.fill("#newsletter-email", email);
  await page.click("label[for$='-email-offers']");
  await page.click("form[data-unticked=newsletter] button.buy");
  await page.waitForSelector("#done");
  const signedUp = await until("the signup stored", async () => {
    const purposes = await stateOf(server.url, email);
    return purposes["email-offers"].state !== "unasked" && purposes;
  });
  assert.equal(signedUp["email-offers"].state, "unconfirmed", JSON.stringify(signedUp));
  assert.equal(signedUp["email-offers"].awaiting, "confirmation", JSON.stringify(signedUp));

  // The mail arrives under TLS, to the address typed in, generated (RFC 3834), with the link.
  const mail = await until("the confirmation mail", () => smtp.mails[0]);
  assert.ok(mail.tls);
  assert.ok(mail.rcpt.includes(email), mail.rcpt);
  assert.match(mail.data, /^Auto-Submitted: auto-generated\r$/m);
  const text = mail.data.replace(/=\r\n/g, "").replace(/=3D/g, "=");
  const link = text.match(new RegExp(`${proxy.url.replace(/[.]/g, "\\.")}/confirm/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+`))?.[0];
  assert.ok(link, text);

  // Opening the link shows one button and changes nothing (mail scanners prefetch links).
  const { page: inbox } = await openPage(browser);
  await inbox.goto(link);
  await inbox.waitForSelector("#confirm");
  assert.equal((await stateOf(server.url, email))["email-offers"].state, "unconfirmed");
  // Pressing it confirms: the consent stands given.
  await Promise.all([inbox.waitForNavigation(), inbox.click("#confirm")]);
  await inbox.waitForSelector("#confirmed");
  const confirmed = await stateOf(server.url, email);
  assert.equal(confirmed["email-offers"].state, "given", JSON.stringify(confirmed));
  assert.deepEqual(log.pageErrors, []);
});
