//! The collector's own settings: what is secret or server-only, and so never in
//! `consent.json`, which every shopper's browser downloads (DESIGN.md, "Public contract").
//! They come from a TOML file passed with `serve --settings FILE`, and every secret from an
//! environment variable the file names: the file can be kept in the shop's repository, the
//! secrets cannot.
//!
//! ```toml
//! [[webhooks]]
//! url = "https://crm.example/hooks/unticked"
//! events = ["given", "withdrawn", "erased"]
//! secret_env = "UNTICKED_WEBHOOK_CRM_SECRET"   # whsec_<base64>, Standard Webhooks
//!
//! [smtp]
//! relay = "smtp.example.com"
//! port = 587
//! from = "Baltic Boots <news@baltic-boots.example>"
//! username_env = "UNTICKED_SMTP_USER"
//! password_env = "UNTICKED_SMTP_PASSWORD"
//! ```
//!
//! A file that does not parse, names an unknown key, or names a variable that is not set
//! is refused at start with a message naming the key (docs/settings.md).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Everything `--settings` holds, its secrets resolved from the environment.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// Endpoints that receive state changes (Standard Webhooks).
    pub webhooks: Vec<Webhook>,
    /// The relay confirmation e-mails go out through (double opt-in); `None`: no e-mail is
    /// sent, and a config whose forms ask for double opt-in is refused at start.
    pub smtp: Option<Smtp>,
    /// The staff token of assisted (phone) consent, from `UNTICKED_STAFF_TOKEN`
    /// (crate::assisted); `None` turns those endpoints off.
    pub staff_token: Option<String>,
}

/// One webhook endpoint and the changes it subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub events: Vec<WebhookEvent>,
    /// The signing secret's bytes (the base64 after `whsec_`).
    pub secret: Vec<u8>,
    /// How long a failing event is retried before it is dead-lettered (default 3 days).
    pub retry_for_seconds: u64,
    /// The first retry's delay; each next one doubles it, up to an hour (default 5 s).
    pub first_retry_ms: u64,
    /// A PEM file of extra root certificates to trust for an `https://` endpoint (a private
    /// CA), beside the public roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
}

/// A state change a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    Given,
    Withdrawn,
    Renewed,
    Outdated,
    Expired,
    Confirmed,
    Erased,
}

impl WebhookEvent {
    /// The event's name in a payload's `type` (`consent.given`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Given => "given",
            WebhookEvent::Withdrawn => "withdrawn",
            WebhookEvent::Renewed => "renewed",
            WebhookEvent::Outdated => "outdated",
            WebhookEvent::Expired => "expired",
            WebhookEvent::Confirmed => "confirmed",
            WebhookEvent::Erased => "erased",
        }
    }
}

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (RFC 3207), which is required: a relay
    /// that does not offer it is refused, never used in the clear.
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314, port 465).
    Tls,
}

/// The SMTP relay of confirmation e-mails.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub relay: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// The `From:` header: a mailbox of the shop's (`Name <address>`).
    pub from: String,
    pub credentials: Option<(String, String)>,
    /// A PEM file of extra root certificates to trust for the relay (a private CA).
    pub ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    webhooks: Vec<WebhookFile>,
    smtp: Option<SmtpFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    url: String,
    events: Vec<WebhookEvent>,
    secret_env: String,
    retry_for_seconds: Option<u64>,
    first_retry_ms: Option<u64>,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpFile {
    relay: String,
    port: Option<u16>,
    #[serde(default)]
    security: SmtpSecurity,
    from: String,
    username_env: Option<String>,
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
}

/// Why the settings were refused, naming the key or the variable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the settings file {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ServerSettings {
    /// The settings of `path` (none: only the environment's), with every secret it names
    /// read through `env`.
    ///
    /// # Errors
    /// The file is unreadable, is not TOML of the documented keys, or names a variable
    /// `env` does not have.
    pub fn load(path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<ServerSettings, SettingsError> {
        let staff_token = env(crate::assisted::STAFF_TOKEN_VARIABLE).filter(|t| !t.is_empty());
        let Some(path) = path else {
            return Ok(ServerSettings {
                staff_token,
                ..ServerSettings::default()
            });
        };
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| SettingsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let secret = |key: &str, variable: &str| {
            env(variable)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(format!("{key} names the variable {variable}, which is not set")))
        };
        let mut webhooks = Vec::new();
        for (i, hook) in file.webhooks.into_iter().enumerate() {
            let key = format!("webhooks[{i}]");
            check_webhook_url(&hook.url).map_err(|why| invalid(format!("{key}.url {why}")))?;
            if let Some(ca) = &hook.ca_file {
                if !hook.url.starts_with("https://") {
                    return Err(invalid(format!("{key}.ca_file is set but {key}.url is not https://")));
                }
                std::fs::metadata(ca).map_err(|e| invalid(format!("{key}.ca_file {}: {e}", ca.display())))?;
            }
            if hook.events.is_empty() {
                return Err(invalid(format!("{key}.events is empty: name the changes it receives")));
            }
            let value = secret(&format!("{key}.secret_env"), &hook.secret_env)?;
            let secret = decode_secret(&value).ok_or_else(|| {
                invalid(format!(
                    "the variable {} of {key}.secret_env is not whsec_ followed by base64 of 24 to 64 bytes",
                    hook.secret_env
                ))
            })?;
            webhooks.push(Webhook {
                url: hook.url,
                events: hook.events,
                secret,
                retry_for_seconds: hook.retry_for_seconds.unwrap_or(3 * 24 * 3600),
                first_retry_ms: hook.first_retry_ms.unwrap_or(5_000).max(1),
                ca_file: hook.ca_file,
            });
        }
        let smtp = match file.smtp {
            None => None,
            Some(s) => {
                let credentials = match (&s.username_env, &s.password_env) {
                    (None, None) => None,
                    (Some(user), Some(password)) => Some((
                        secret("smtp.username_env", user)?,
                        secret("smtp.password_env", password)?,
                    )),
                    _ => {
                        return Err(invalid(
                            "smtp needs both username_env and password_env, or neither".into(),
                        ))
                    }
                };
                if s.relay.is_empty() {
                    return Err(invalid("smtp.relay is empty".into()));
                }
                Some(Smtp {
                    port: s.port.unwrap_or(match s.security {
                        SmtpSecurity::Starttls => 587,
                        SmtpSecurity::Tls => 465,
                    }),
                    relay: s.relay,
                    security: s.security,
                    from: s.from,
                    credentials,
                    ca_file: s.ca_file,
                })
            }
        };
        Ok(ServerSettings {
            webhooks,
            smtp,
            staff_token,
        })
    }
}

/// Whether a webhook URL may be used: `https://`, or `http://` to a loopback address only.
/// Events carry contact data and consent (GDPR Art. 32: encryption in transit), so they
/// cross no network in the clear; a receiver on the same host (or a TLS proxy there) may
/// take plain http.
fn check_webhook_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("is not an http(s) URL: {url}"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() || authority.contains('@') {
        return Err(format!("has no host (or has user info): {url}"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(format!(
            "is plain http to {host}: events carry contact data and consent, so they go over https://; plain http:// is taken only to a loopback address (127.0.0.1, [::1], localhost)"
        )),
        _ => Err(format!("is not an http(s) URL: {url}")),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A Standard Webhooks secret: `whsec_` and the base64 of its bytes.
fn decode_secret(value: &str) -> Option<Vec<u8>> {
    use base64ct::Encoding;
    let bytes = base64ct::Base64::decode_vec(value.strip_prefix("whsec_")?).ok()?;
    (24..=64).contains(&bytes.len()).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<ServerSettings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, text).unwrap();
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ServerSettings::load(Some(&path), &|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn secrets_come_from_the_variables_the_file_names() {
        let s = load(
            "[[webhooks]]\nurl = \"http://127.0.0.1:9/h\"\nevents = [\"given\", \"erased\"]\nsecret_env = \"HOOK\"\n\
             [smtp]\nrelay = \"127.0.0.1\"\nport = 2525\nfrom = \"Shop <news@shop.example>\"\n",
            &[("HOOK", SECRET)],
        )
        .unwrap();
        assert_eq!(s.webhooks[0].events, [WebhookEvent::Given, WebhookEvent::Erased]);
        assert_eq!(s.webhooks[0].secret.len(), 24);
        assert_eq!(s.smtp.unwrap().security, SmtpSecurity::Starttls);
    }

    #[test]
    fn plain_http_is_taken_to_loopback_addresses_only() {
        for url in [
            "http://127.0.0.1:9/h",
            "http://localhost/h",
            "http://[::1]:8080/h",
            "http://127.8.0.1/h",
            "https://crm.example/h",
        ] {
            assert_eq!(check_webhook_url(url), Ok(()), "{url}");
        }
        for url in [
            "http://10.0.0.1/h",
            "http://crm.example:8080/h",
            "http://localhost.evil.example/h",
            "http://127.0.0.1@crm.example/h",
        ] {
            assert!(check_webhook_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn a_bad_file_is_refused_naming_what_is_wrong() {
        let hook = "[[webhooks]]\nurl = \"http://127.0.0.1:9/h\"\nevents = [\"given\"]\nsecret_env = \"HOOK\"\n";
        let cases = [
            (hook.to_string(), vec![], "HOOK, which is not set"),
            (hook.to_string(), vec![("HOOK", "plain")], "not whsec_"),
            (hook.replace("given", "bought"), vec![("HOOK", SECRET)], "bought"),
            (format!("{hook}colour = 1\n"), vec![("HOOK", SECRET)], "colour"),
            (
                hook.replace("http://127.0.0.1:9/h", "http://crm.example/h"),
                vec![("HOOK", SECRET)],
                "webhooks[0].url is plain http to crm.example",
            ),
            (
                hook.replace("http://127.0.0.1:9/h", "ftp://crm.example/h"),
                vec![("HOOK", SECRET)],
                "not an http(s) URL",
            ),
            (
                format!("{hook}ca_file = \"/nonexistent/ca.pem\"\n"),
                vec![("HOOK", SECRET)],
                "ca_file is set but webhooks[0].url is not https://",
            ),
            (
                format!(
                    "{}ca_file = \"/nonexistent/ca.pem\"\n",
                    hook.replace("http://127.0.0.1:9/h", "https://crm.example/h")
                ),
                vec![("HOOK", SECRET)],
                "webhooks[0].ca_file /nonexistent/ca.pem",
            ),
            (
                "[smtp]\nrelay = \"r\"\nfrom = \"f\"\nusername_env = \"U\"\n".to_string(),
                vec![],
                "both username_env and password_env",
            ),
        ];
        for (text, vars, says) in cases {
            let e = load(&text, &vars).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
