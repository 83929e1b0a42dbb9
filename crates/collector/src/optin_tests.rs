//! Double opt-in end to end inside the collector: a signup on a double-opt-in form, its
//! mail delivered over STARTTLS to a real SMTP server started here (certificate made by
//! rcgen, trusted through `ca_file`), the link's page, the confirmation, and a lapse.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tower::ServiceExt;
use unticked_core::config::Config;

use crate::store::Store;
use crate::testing::{capture_under, seal};

const ADMIN: &str = "admin-test-token-0123456789abcdef";
const JAN: &str = r#"{"identifier":"jan@example.pl"}"#;

/// One mail as the SMTP server received it.
struct Received {
    rcpt: String,
    data: String,
    tls: bool,
}

/// A small SMTP server (RFC 5321) that offers STARTTLS (RFC 3207) and takes every mail.
struct SmtpServer {
    port: u16,
    ca_file: tempfile::NamedTempFile,
    mails: mpsc::UnboundedReceiver<Received>,
}

async fn smtp_server() -> SmtpServer {
    smtp_server_refusing(0).await
}

/// [`smtp_server`] that answers its first `refused` sessions with a 4xx greeting (RFC 5321
/// §3.1, "421 Service not available") and closes them: a relay down for a while.
async fn smtp_server_refusing(refused: usize) -> SmtpServer {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca.pem()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, mails) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut sessions = 0;
        while let Ok((mut socket, _)) = listener.accept().await {
            sessions += 1;
            if sessions <= refused {
                let _ = socket.write_all(b"421 4.3.2 localhost busy, try again later\r\n").await;
                continue;
            }
            let (acceptor, sender) = (acceptor.clone(), sender.clone());
            tokio::spawn(async move {
                let mut plain = BufReader::new(socket);
                if !session(&mut plain, false, &sender).await {
                    return;
                }
                // STARTTLS was answered: the rest of the session is under TLS.
                let Ok(tls) = acceptor.accept(plain.into_inner()).await else {
                    return;
                };
                session(&mut BufReader::new(tls), true, &sender).await;
            });
        }
    });
    SmtpServer { port, ca_file, mails }
}

/// Speaks SMTP until QUIT (false) or STARTTLS (true, to go on under TLS).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    tls: bool,
    sender: &mpsc::UnboundedSender<Received>,
) -> bool {
    if !tls {
        io.write_all(b"220 localhost ESMTP test\r\n").await.unwrap();
    }
    let mut rcpt = String::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" if tls => b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "EHLO" => b"250-localhost\r\n250 STARTTLS\r\n",
            "STAR" if !tls => {
                io.write_all(b"220 ready to start TLS\r\n").await.unwrap();
                return true;
            }
            "MAIL" if tls => b"250 ok\r\n",
            "RCPT" if tls => {
                rcpt = line.trim_end().to_string();
                b"250 ok\r\n"
            }
            "DATA" if tls => {
                io.write_all(b"354 go ahead\r\n").await.unwrap();
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if io.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                        break;
                    }
                    data.push_str(&l);
                }
                let _ = sender.send(Received {
                    rcpt: rcpt.clone(),
                    data,
                    tls,
                });
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = io.write_all(b"221 bye\r\n").await;
                return false;
            }
            "RSET" | "NOOP" => b"250 ok\r\n",
            // Nothing is taken in the clear: a client that skips STARTTLS is refused.
            _ => b"530 must issue STARTTLS first\r\n",
        };
        io.write_all(answer).await.unwrap();
    }
}

/// The demo config with double opt-in on its checkout form, and its hash.
pub(crate) fn optin_config(days: u32) -> (Config, String) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap();
    let needle = r#""source": "checkout","#;
    assert_eq!(text.matches(needle).count(), 1);
    let text = text.replacen(
        needle,
        &format!(r#""source": "checkout", "double_opt_in": {{ "within_days": {days} }},"#),
        1,
    );
    let sha = crate::texts::sha256_hex(text.as_bytes());
    (Config::from_json(&text).unwrap(), sha)
}

pub(crate) fn app(
    config: &Config,
    sha: &str,
    db: &std::path::Path,
    smtp: Option<crate::settings::Smtp>,
) -> axum::Router {
    crate::serve::app(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(),
        config.clone(),
        Store::open(db, &crate::texts::Shown::of(config)).unwrap(),
        crate::serve::Settings {
            admin_token: Some(ADMIN.into()),
            config_sha256: sha.to_string(),
            server: crate::settings::ServerSettings {
                smtp,
                ..Default::default()
            },
            ..crate::testing::settings()
        },
    )
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: String) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("host", "127.0.0.1:8080")
        .header("origin", "http://127.0.0.1:8080");
    if uri.starts_with("/v1/admin") {
        request = request.header("authorization", format!("Bearer {ADMIN}"));
    }
    if method == "POST" && uri.starts_with("/confirm/") {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

async fn subject(app: &axum::Router) -> serde_json::Value {
    let (status, _, body) = call(app, "POST", "/v1/admin/subjects", JAN.into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

pub(crate) async fn sign_up(app: &axum::Router, config: &Config, sha: &str) {
    let body = seal(&capture_under(config, sha, &["email-offers", "sms-offers"]), 7);
    let (status, _, answer) = call(app, "POST", "/v1/records", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_waits_for_its_mailed_confirmation_and_only_the_button_confirms() {
    let mut server = smtp_server().await;
    let smtp = crate::settings::Smtp {
        relay: "localhost".into(),
        port: server.port,
        security: crate::settings::SmtpSecurity::Starttls,
        from: "Baltic Boots <shop@example.com>".into(),
        credentials: None,
        ca_file: Some(server.ca_file.path().to_path_buf()),
    };
    let dir = tempfile::tempdir().unwrap();
    let (config, sha) = optin_config(7);
    let app = app(&config, &sha, &dir.path().join("log.db"), Some(smtp));
    sign_up(&app, &config, &sha).await;

    // E-mail waits for the confirmation; SMS (no double opt-in for it) stands given.
    let state = subject(&app).await;
    assert_eq!(state["purposes"]["email-offers"]["state"], "unconfirmed", "{state}");
    assert_eq!(state["purposes"]["sms-offers"]["state"], "given", "{state}");

    // The mail arrives, under TLS, to the address typed in, in the record's language (pl).
    let mail = tokio::time::timeout(std::time::Duration::from_secs(20), server.mails.recv())
        .await
        .expect("the confirmation mail arrives")
        .unwrap();
    assert!(mail.tls);
    assert!(mail.rcpt.contains("jan@example.pl"), "{}", mail.rcpt);
    let data = mail.data.replace("=\r\n", "");
    assert!(data.contains("Subject:"), "{data}");
    // Generated by a program (RFC 3834 §5): vacation responders leave it unanswered.
    assert!(data.contains("Auto-Submitted: auto-generated\r\n"), "{data}");
    let link_at = data
        .find("http://127.0.0.1:8080/confirm/")
        .expect("the link in the mail");
    let link: String = data[link_at..].chars().take_while(|c| !c.is_whitespace()).collect();
    let path = link.strip_prefix("http://127.0.0.1:8080").unwrap().to_string();

    // A GET (a mail scanner's prefetch) shows the button and changes nothing.
    let (status, headers, page) = call(&app, "GET", &path, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"confirm\"") && page.contains("lang=\"pl\""),
        "{page}"
    );
    assert_eq!(
        headers["content-security-policy"],
        crate::serve::CONTENT_SECURITY_POLICY
    );
    assert!(!page.contains("<script"), "works without JavaScript: {page}");
    assert_eq!(subject(&app).await["purposes"]["email-offers"]["state"], "unconfirmed");

    // The button confirms: given, both records kept with their times.
    let (status, _, page) = call(&app, "POST", &path, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"confirmed\""), "{page}");
    let state = subject(&app).await;
    assert_eq!(state["purposes"]["email-offers"]["state"], "given", "{state}");
    let history = state["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{state}");
    assert_eq!(history[1]["signer"], "collector");
    assert_eq!(history[1]["confirms"], history[0]["record"], "{state}");
    assert!(history[1]["captured_at"].as_u64() >= history[0]["captured_at"].as_u64());

    // Used now: a second press records nothing more.
    let (status, _, page) = call(&app, "POST", &path, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"confirmed-already\""), "{page}");
    assert_eq!(subject(&app).await["history"].as_array().unwrap().len(), 2);

    // A forged token leads nowhere.
    let forged = format!("{}x", &path[..path.len() - 1]);
    let (status, _, page) = call(&app, "GET", &forged, String::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("id=\"link-invalid\""), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_the_relay_refuses_is_tried_again_later_and_then_sent() {
    let mut server = smtp_server_refusing(1).await;
    let smtp = crate::settings::Smtp {
        relay: "localhost".into(),
        port: server.port,
        security: crate::settings::SmtpSecurity::Starttls,
        from: "Baltic Boots <shop@example.com>".into(),
        credentials: None,
        ca_file: Some(server.ca_file.path().to_path_buf()),
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let (config, sha) = optin_config(7);
    let app = app(&config, &sha, &db, Some(smtp));
    let signed_up = crate::store::now_ms();
    sign_up(&app, &config, &sha).await;
    let outbox = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT attempts, next_at, sent_at FROM confirm_mail", [], |row| {
            Ok((
                row.get::<_, u32>(0)?,
                row.get::<_, u64>(1)?,
                row.get::<_, Option<u64>>(2)?,
            ))
        })
        .unwrap()
    };
    // The first session is refused (421): the mail stays in the outbox, due again in 30 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while outbox().0 == 0 {
        assert!(std::time::Instant::now() < deadline, "no first attempt");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (attempts, next_at, sent_at) = outbox();
    assert_eq!((attempts, sent_at), (1, None));
    assert!(
        next_at >= signed_up + 30_000,
        "tried again after the backoff, not at once"
    );
    assert!(server.mails.try_recv().is_err());
    // Then the relay takes it: the mail goes out on the next try, once.
    let mail = tokio::time::timeout(std::time::Duration::from_secs(60), server.mails.recv())
        .await
        .expect("the mail goes out on the retry")
        .unwrap();
    assert!(mail.rcpt.contains("jan@example.pl"), "{}", mail.rcpt);
    assert!(crate::store::now_ms() >= next_at);
    // Marked sent once the relay's answer is in (just after the server took the data).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while outbox().2.is_none() {
        assert!(std::time::Instant::now() < deadline, "the mail never marked sent");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(outbox().0, 2, "one refused attempt, one that went out");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(server.mails.try_recv().is_err(), "sent once");
    assert_eq!(subject(&app).await["purposes"]["email-offers"]["state"], "unconfirmed");
}

#[tokio::test]
async fn an_unconfirmed_signup_expires_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (config, sha) = optin_config(1);
    let app = app(&config, &sha, &dir.path().join("log.db"), None);
    sign_up(&app, &config, &sha).await;
    let state = subject(&app).await;
    let email = &state["purposes"]["email-offers"];
    assert_eq!(email["state"], "unconfirmed", "{state}");
    let (at, until) = (email["captured_at"].as_u64().unwrap(), email["until"].as_u64().unwrap());
    assert_eq!(until - at, 86_400_000, "{state}");

    // Past the deadline the signup lapses: the standing of the same events, a day on.
    let record = capture_under(&config, &sha, &["email-offers"]).record;
    let captured = record.captured_at;
    let history = crate::lifecycle::History {
        records: vec![(0, record, Vec::new())],
    };
    let versions = crate::history::History::only(&sha, config.clone());
    let events = history.events(&versions);
    assert_eq!(events[0].awaits, Some(captured + 86_400_000));
    let terms = unticked_core::consent::Terms::of(&config);
    let at = |now: u64| {
        unticked_core::consent::standing(&terms, &events, now)
            .into_iter()
            .find(|s| s.purpose == "email-offers")
            .unwrap()
            .now
            .name()
    };
    assert_eq!(at(captured + 86_400_000 - 1), "unconfirmed");
    assert_eq!(at(captured + 86_400_000), "expired");
}
