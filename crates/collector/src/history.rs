//! The configs the collector has served, content-addressed (issue 14; DESIGN.md, "Consent
//! over time"): each by the SHA-256 of its text (`compile::config_sha256`), the hash a
//! record names in `config_sha256` and `unticked build` names `pkg/c/<sha256>/` with.
//!
//! A record is checked against the version it names, not only against the config served
//! now: a record waiting in a shopper's outbox (src/courier.js) while the site owner fixes a
//! typo in a label is still taken after the restart, against the wording the shopper read
//! (Art. 7(1): the controller must be able to show what was consented to). Whether consent
//! given under an older purpose `version` still stands is not decided here: that is the
//! state function's (R11; docs/rules.md, "Config history").
//!
//! `unticked serve` records the config it starts with ([`Store::config_served`]), again every
//! [`REFRESH`] and at shutdown ([`Recorder`]), and loads every stored version once at start
//! ([`History::load`]); the history never changes while it serves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use unticked_core::config::Config;

use crate::compile::config_sha256;
use crate::error::{refuse, unavailable, Code};
use crate::state::Collector;
use crate::store::Store;
use crate::texts::Shown;

/// How often `serve` records that it still serves its config (`last_served`).
pub const REFRESH: Duration = Duration::from_secs(3600);

/// One config version: validated, and the texts its forms show in each locale.
pub struct Version {
    pub config: Config,
    pub shown: Shown,
}

impl Version {
    pub fn of(config: Config) -> Version {
        Version {
            shown: Shown::of(&config),
            config,
        }
    }
}

/// Every config version the collector knows, by SHA-256, and the one it serves now.
/// Built once at start and never changed while serving.
pub struct History {
    current: String,
    versions: HashMap<String, Version>,
}

impl History {
    /// Only `current`, the config served now, under its SHA-256.
    pub fn only(current_sha256: &str, current: Config) -> History {
        History {
            current: current_sha256.to_string(),
            versions: HashMap::from([(current_sha256.to_string(), Version::of(current))]),
        }
    }

    /// `current`, the config served now, and every config `store` holds, each parsed and its
    /// texts compiled, and those texts kept in the store (they are what a shopper was shown
    /// under it). A stored config that does not parse (a text edited in the database, or a
    /// rule a newer `unticked` holds configs to) or does not hash to its name is left out
    /// with a warning naming its hash: records made under it are refused `unknown-config`,
    /// 422, which shoppers' outboxes keep and retry, and the collector serves on.
    pub fn load(store: &Store, current_sha256: &str, current: Config) -> History {
        let mut history = History::only(current_sha256, current);
        let rows = match store.configs() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "the configs served before cannot be read; only records made under the current one are taken");
                return history;
            }
        };
        for row in rows.iter().filter(|row| row.sha256 != history.current) {
            match read_version(store, &row.sha256) {
                Ok(version) => {
                    if let Err(e) = store.keep_texts(&version.shown) {
                        tracing::warn!(config = %row.sha256, error = %e, "the texts of a config served before were not stored again");
                    }
                    history.versions.insert(row.sha256.clone(), version);
                }
                Err(why) => tracing::warn!(
                    config = %row.sha256,
                    "a config served before is left out: {why}; records made under it are refused (unknown-config)"
                ),
            }
        }
        history
    }

    /// The version whose text hashes to `sha256`, if the collector knows it.
    pub fn version(&self, sha256: &str) -> Option<&Version> {
        self.versions.get(sha256)
    }

    /// The SHA-256 of the config served now.
    pub fn current(&self) -> &str {
        &self.current
    }
}

/// The stored config `sha256`, read back and checked against its name.
fn read_version(store: &Store, sha256: &str) -> Result<Version, String> {
    let text = store
        .config_text(sha256)
        .map_err(|e| format!("it cannot be read ({e})"))?
        .ok_or("its text is gone")?;
    if config_sha256(&text) != sha256 {
        return Err("its stored text does not hash to its name (run `unticked verify`)".into());
    }
    let config = Config::from_json(&text).map_err(|problem| format!("it no longer parses ({problem})"))?;
    Ok(Version::of(config))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Records the served config's `last_served` periodically while `serve` runs (every
/// [`REFRESH`]), and once more when it stops ([`Recorder::stop`]).
pub struct Recorder {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts recording, `every` so often, that the config `text` (SHA-256 `sha256`) is
    /// served. Recording it at start is the caller's ([`Store::config_served`]), which must
    /// succeed before anything is served.
    pub fn start(store: Store, sha256: String, text: String, every: Duration) -> Recorder {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            // After a suspended machine wakes up: one record, not a burst of them.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let last = tokio::select! {
                    _ = ticks.tick() => false,
                    _ = &mut stopped => true,
                };
                let (store, sha256, text) = (store.clone(), sha256.clone(), text.clone());
                // Awaited, so that no clone of the store outlives the task (Store::close).
                let recorded = tokio::task::spawn_blocking(move || store.config_served(&sha256, &text, now_ms())).await;
                match recorded {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not record that the config is still served"),
                    Err(e) => tracing::warn!(error = %e, "could not record that the config is still served"),
                }
                if last {
                    break;
                }
            }
        });
        Recorder { stop, task }
    }

    /// Records `last_served` once more and stops; returns once the task, and its clone of
    /// the store, are gone.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// `GET /v1/configs`: every config served, the first served first, each with its SHA-256,
/// when it was first and last served (ms since the epoch) and whether it is served now.
/// Public, as consent.json is.
pub async fn list(State(collector): State<Arc<Collector>>) -> Response {
    let rows = match collector.store.configs() {
        Ok(rows) => rows,
        Err(e) => return unavailable(e).into_response(),
    };
    let configs: Vec<_> = rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "sha256": row.sha256,
                "first_served": row.first_served,
                "last_served": row.last_served,
                "current": row.sha256 == collector.history.current(),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "configs": configs })).into_response()
}

/// `GET /v1/configs/{sha256}`: the exact text of a config served, as `application/json`.
pub async fn text(State(collector): State<Arc<Collector>>, sha256: Result<UrlPath<String>, PathRejection>) -> Response {
    let Ok(UrlPath(sha256)) = sha256 else {
        return refuse(Code::NotFound, "no config with this hash").into_response();
    };
    match collector.store.config_text(&sha256) {
        // Never serve a config other than the one the hash names: that is storage corruption.
        Ok(Some(text)) if config_sha256(&text) != sha256 => {
            tracing::error!(sha256 = %sha256, "a stored config does not hash to its name; run `unticked verify`");
            refuse(Code::Unavailable, "the stored config does not match its hash").into_response()
        }
        Ok(Some(text)) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Ok(None) => refuse(Code::NotFound, "no config with this hash").into_response(),
        Err(e) => unavailable(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{capture, capture_under, corrected_text, demo_config, demo_sha256, demo_text, seal};
    use crate::texts::sha256_hex;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use std::path::Path;
    use tower::ServiceExt;

    const WWW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www");

    /// What `unticked serve` does at start, without a socket: opens the log at `db`, records
    /// `text` as the config served, and builds the app over both.
    fn serve(db: &Path, text: &str) -> (axum::Router, Store) {
        let config = Config::from_json(text).unwrap();
        let sha256 = config_sha256(text);
        let store = Store::open(db, &Shown::of(&config)).unwrap();
        store.config_served(&sha256, text, now_ms()).unwrap();
        let settings = crate::serve::Settings {
            config_sha256: sha256,
            ..crate::testing::settings()
        };
        (crate::serve::app(WWW.into(), config, store.clone(), settings), store)
    }

    /// `method uri` from the demo page the test captures name: status, content type, body.
    async fn send(app: &axum::Router, method: &str, uri: &str, body: String) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("host", "127.0.0.1:8080")
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn post(app: &axum::Router, body: &str) -> (StatusCode, serde_json::Value) {
        let (status, _, answer) = send(app, "POST", "/v1/records", body.to_string()).await;
        (
            status,
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}")),
        )
    }

    /// The hash of the text a capture shows for e-mail offers (what sealing fills in).
    fn email_text_sha256(capture: &unticked_core::capture::Capture) -> String {
        let position = capture
            .record
            .purposes
            .iter()
            .position(|p| p.id == "email-offers")
            .unwrap();
        sha256_hex(capture.texts[position].as_bytes())
    }

    /// Issue 14: a record waiting in an outbox while the site owner corrects a label is
    /// taken after the restart, checked against the config it was made under; a record
    /// that names one config but shows another's texts is still refused.
    #[tokio::test]
    async fn a_record_made_under_a_config_since_corrected_is_accepted_and_checked_against_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let (old, corrected) = (demo_config(), Config::from_json(&corrected_text()).unwrap());
        let (old_sha256, corrected_sha256) = (demo_sha256(), config_sha256(&corrected_text()));
        assert_eq!(
            old.purpose("email-offers").unwrap().version,
            corrected.purpose("email-offers").unwrap().version,
            "a correction keeps the version"
        );

        let (app, store) = serve(&db, &demo_text());
        let waiting = capture(&old, &["email-offers"]);
        let waiting_body = seal(&waiting, 1);
        drop((app, store));

        let (app, _store) = serve(&db, &corrected_text());
        let under_corrected = capture_under(&corrected, &corrected_sha256, &["email-offers"]);
        assert_ne!(
            email_text_sha256(&waiting),
            email_text_sha256(&under_corrected),
            "the label the shopper read is not the one shown now"
        );
        let (status, receipt) = post(&app, &waiting_body).await;
        assert_eq!(status, StatusCode::CREATED, "{receipt}");
        let (status, receipt) = post(&app, &seal(&under_corrected, 2)).await;
        assert_eq!(status, StatusCode::CREATED, "{receipt}");

        // The hash of one version with the texts of the other is checked against the version
        // it names, whichever that is.
        for (named, shown) in [(&old_sha256, &corrected), (&corrected_sha256, &old)] {
            let forged = capture_under(shown, named, &["email-offers"]);
            let (status, answer) = post(&app, &seal(&forged, 3)).await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("text-mismatch")),
                "{answer}"
            );
        }

        // What each shopper was shown can be printed: both wordings are kept.
        for sha256 in [email_text_sha256(&waiting), email_text_sha256(&under_corrected)] {
            let (status, _, text) = send(&app, "GET", &format!("/v1/texts/{sha256}"), String::new()).await;
            assert_eq!(status, StatusCode::OK, "{sha256}: {text}");
        }
    }

    /// The privacy notice a record names is the one of the config it was made under too.
    #[tokio::test]
    async fn a_record_names_the_privacy_notice_of_its_own_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let (notice, renewed) = (r#""version": "2026-09""#, r#""version": "2026-10""#);
        assert_eq!(demo_text().matches(notice).count(), 1);
        let new_text = demo_text().replace(notice, renewed);
        let new = Config::from_json(&new_text).unwrap();
        drop(serve(&db, &demo_text()));
        let (app, _store) = serve(&db, &new_text);

        let old = capture(&demo_config(), &["email-offers"]);
        assert_eq!(old.record.notice_version, "2026-09");
        let (status, answer) = post(&app, &seal(&old, 1)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        // The new config's hash with the old notice.
        let mut stale = capture_under(&new, &config_sha256(&new_text), &["email-offers"]);
        stale.record.notice_version = "2026-09".into();
        let (status, answer) = post(&app, &seal(&stale, 2)).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("notice-mismatch")),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_record_naming_a_config_never_served_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (app, _store) = serve(&dir.path().join("log.db"), &demo_text());
        let never = sha256_hex(b"a config this collector has never served");
        let body = seal(&capture_under(&demo_config(), &never, &["email-offers"]), 1);
        let (status, answer) = post(&app, &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown-config")),
            "{answer}"
        );
        let (status, _, _) = send(&app, "GET", "/v1/checkpoint", String::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the log is still empty");
    }

    /// A log written before the collector kept its configs holds records under a config it
    /// never recorded. Restarted with a corrected one, the collector no longer knows that
    /// config, but the outbox's retry of bytes it stored gets their receipt (200), not a 422
    /// the outbox would keep retrying; other values beside the same bytes are still 409.
    #[tokio::test]
    async fn a_retry_of_stored_bytes_gets_its_receipt_whatever_config_is_served_now() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let old = demo_config();
        let stored = seal(&capture(&old, &["email-offers"]), 1);
        let receipt = {
            // As the collector did before issue 14: the config served, never recorded.
            let store = Store::open(&db, &Shown::of(&old)).unwrap();
            let app = crate::serve::app(WWW.into(), old.clone(), store, crate::testing::settings());
            let (status, receipt) = post(&app, &stored).await;
            assert_eq!(status, StatusCode::CREATED, "{receipt}");
            receipt
        };

        let (app, store) = serve(&db, &corrected_text());
        assert_eq!(store.configs().unwrap().len(), 1, "the old config is not known");
        let (status, answer) = post(&app, &seal(&capture(&old, &["email-offers"]), 2)).await;
        assert_eq!(
            answer["code"], "unknown-config",
            "a new record under it is refused: {status}"
        );

        let (status, again) = post(&app, &stored).await;
        assert_eq!((status, &again), (StatusCode::OK, &receipt));
        let (status, answer) = post(&app, &stored.replace("jan@example.pl", "eve@example.pl")).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::CONFLICT, Some("id-conflict")),
            "{answer}"
        );
        assert_eq!(
            store.subject("eve@example.pl").unwrap().len(),
            0,
            "nothing of it was kept"
        );
    }

    /// A stored config that no longer parses, or whose text no longer hashes to its name, is
    /// left out (with a warning naming it): records under it are refused, the others taken.
    #[tokio::test]
    async fn a_stored_config_that_cannot_be_read_is_left_out_and_the_collector_serves_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let (app, store) = serve(&db, &demo_text());
        let not_a_config = r#"{"controller": {}}"#;
        store
            .config_served(&config_sha256(not_a_config), not_a_config, 1)
            .unwrap();
        let misnamed = sha256_hex(b"another text");
        store.config_served(&misnamed, &demo_text(), 1).unwrap();
        drop((app, store));

        let (app, store) = serve(&db, &corrected_text());
        let corrected = Config::from_json(&corrected_text()).unwrap();
        let history = History::load(&store, &config_sha256(&corrected_text()), corrected);
        assert!(history.version(&config_sha256(not_a_config)).is_none());
        assert!(history.version(&misnamed).is_none());
        assert!(history.version(&demo_sha256()).is_some());

        for name in [config_sha256(not_a_config), misnamed] {
            let body = seal(&capture_under(&demo_config(), &name, &["email-offers"]), 1);
            let (status, answer) = post(&app, &body).await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown-config")),
                "{name}"
            );
        }
        let (status, answer) = post(&app, &seal(&capture(&demo_config(), &[]), 2)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    /// Every version's texts are stored when it is loaded, so that what a shopper was shown
    /// under it can be printed even where only its config was kept.
    #[test]
    fn loading_a_version_stores_its_texts() {
        let dir = tempfile::tempdir().unwrap();
        let corrected = Config::from_json(&corrected_text()).unwrap();
        let store = Store::open(&dir.path().join("log.db"), &Shown::of(&corrected)).unwrap();
        store.config_served(&demo_sha256(), &demo_text(), 1).unwrap();
        let old_text = email_text_sha256(&capture(&demo_config(), &[]));
        assert_eq!(store.text(&old_text).unwrap(), None);
        History::load(&store, &config_sha256(&corrected_text()), corrected);
        let (purpose, version, locale, text) = store.text(&old_text).unwrap().expect("stored");
        assert_eq!((purpose.as_str(), version, locale.as_str()), ("email-offers", 1, "pl"));
        assert!(text.contains("ofert i nowości e-mailem"), "{text}");
    }

    #[tokio::test]
    async fn the_configs_served_are_listed_and_each_given_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        drop(serve(&db, &demo_text()));
        let (app, _store) = serve(&db, &corrected_text());
        let (old, corrected) = (demo_sha256(), config_sha256(&corrected_text()));

        let (status, content_type, list) = send(&app, "GET", "/v1/configs", String::new()).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"));
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        let configs = list["configs"].as_array().unwrap();
        let names: Vec<_> = configs
            .iter()
            .map(|c| (c["sha256"].as_str().unwrap(), c["current"].clone()))
            .collect();
        assert_eq!(names, [(old.as_str(), false.into()), (corrected.as_str(), true.into())]);
        for config in configs {
            let (first, last) = (
                config["first_served"].as_u64().unwrap(),
                config["last_served"].as_u64().unwrap(),
            );
            assert!(first > 1_700_000_000_000 && first <= last, "{config}");
        }

        for (sha256, text) in [(&old, demo_text()), (&corrected, corrected_text())] {
            let (status, content_type, body) = send(&app, "GET", &format!("/v1/configs/{sha256}"), String::new()).await;
            assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"));
            assert!(body == text, "the exact text stored");
        }
        for path in ["/v1/configs/0000", "/v1/configs/%ff", "/v1/configs/%00"] {
            let (status, _, body) = send(&app, "GET", path, String::new()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert!(body.contains(r#""code":"not-found""#), "{path}: {body}");
        }

        // Never served as what it is not: a config edited in the database.
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("UPDATE configs SET text = text || ' ' WHERE sha256 = ?1", [&old])
            .unwrap();
        let (status, _, body) = send(&app, "GET", &format!("/v1/configs/{old}"), String::new()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    /// `last_served` moves on while the config is served and at shutdown, never back; the
    /// recorder leaves no clone of the store behind (or `Store::close` would fail).
    #[tokio::test]
    async fn the_config_served_is_recorded_again_while_serving_and_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &Shown::of(&demo_config())).unwrap();
        let (sha256, text) = (demo_sha256(), demo_text());
        let served = |store: &Store| {
            let rows = store.configs().unwrap();
            assert_eq!(rows.len(), 1, "{rows:?}");
            (rows[0].first_served, rows[0].last_served)
        };
        store.config_served(&sha256, &text, 1000).unwrap();
        store.config_served(&sha256, &text, 500).unwrap();
        assert_eq!(served(&store), (1000, 1000), "a clock stepped back changes nothing");
        store.config_served(&sha256, &text, 2000).unwrap();
        assert_eq!(served(&store), (1000, 2000));

        let every = Duration::from_millis(20);
        let recorder = Recorder::start(store.clone(), sha256.clone(), text.clone(), every);
        // Rewound by hand: only the recorder's ticks can move it on.
        let rewind = || {
            rusqlite::Connection::open(store.location().file().unwrap())
                .unwrap()
                .execute("UPDATE configs SET last_served = 3000", [])
                .unwrap()
        };
        rewind();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while served(&store).1 == 3000 {
            assert!(std::time::Instant::now() < deadline, "no tick recorded the config");
            tokio::time::sleep(every).await;
        }
        recorder.stop().await;
        let before_stop = served(&store).1;
        assert!(before_stop > 1_700_000_000_000, "{before_stop}");
        assert_eq!(served(&store).0, 1000, "first_served stays");
        store.close().expect("no clone of the store outlives the recorder");
    }

    #[tokio::test]
    async fn stopping_the_recorder_records_the_config_once_more() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &Shown::of(&demo_config())).unwrap();
        store.config_served(&demo_sha256(), &demo_text(), 1000).unwrap();
        let recorder = Recorder::start(store.clone(), demo_sha256(), demo_text(), REFRESH);
        recorder.stop().await;
        let rows = store.configs().unwrap();
        assert_eq!((rows[0].first_served, rows[0].last_served > 1000), (1000, true));
    }
}
