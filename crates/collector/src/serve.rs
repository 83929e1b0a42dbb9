//! `unticked serve`: the collector (records, the log and its proofs, violation reports, the
//! admin endpoints; see docs/collector.md) and the demo shop: its static files under a strict
//! Content-Security-Policy and its own order endpoint, and a health check.

use crate::store::Store;
use crate::{admin, history, records, violations};
use axum::extract::{DefaultBodyLimit, Path as UrlPath};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use unticked_core::config::Config;

pub struct Options {
    pub config: PathBuf,
    pub www: PathBuf,
    pub addr: String,
    pub db: crate::db::Location,
    /// `--key`: the key file to sign with (made by `unticked keygen`); `None` is `<db>.key`.
    pub key: Option<PathBuf>,
    /// Records a second one client address may post (0: no limit).
    pub rate_limit: u32,
    /// Caps on open connections, in total and per client address.
    pub connections: crate::http::ConnectionLimits,
    /// `--trusted-proxy`: the load balancers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// Where each new checkpoint is published: a file path or an http:// URL.
    pub witness: Option<String>,
    /// Records one client address may store a day (0: no quota).
    pub daily_quota: u32,
    /// `--public-origin`: the collector's own origins as browsers see them.
    pub public_origins: Vec<String>,
    /// `--settings`: the server-only settings file (crate::settings).
    pub settings: Option<PathBuf>,
}

/// What the app needs beyond the config and the store.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The bearer token of the admin endpoints; `None` turns them off.
    pub admin_token: Option<String>,
    /// Records per second per client IP on `POST /v1/records`, with bursts of three
    /// seconds' worth; 0 turns the limit off. Needs the peer address
    /// (`into_make_service_with_connect_info`).
    pub rate_limit: u32,
    /// Records one client address may store in any 24 hours (refilled evenly); 0 turns the
    /// quota off. Past it, 429 `quota-exceeded`.
    pub daily_quota: u32,
    /// The collector's own origins as browsers see them (`https://shop.example`): its pages
    /// may write, beside the config's `origins`.
    pub public_origins: Vec<String>,
    /// The SHA-256 of the served config's text (`compile::config_sha256`): its name in the
    /// history of configs, beside every version the store holds (crate::history).
    pub config_sha256: String,
    /// The secret the shop's backend signs account tokens with (`UNTICKED_ACCOUNT_SECRET`);
    /// `None` turns the account form off.
    pub account_secret: Option<String>,
    /// The server-only settings (`--settings` and the environment): webhooks, SMTP, the
    /// staff token.
    pub server: crate::settings::ServerSettings,
}

/// The per-second post limit: past it, 429 `rate-limited` with `Retry-After`, which the
/// widget's outbox retries later.
async fn rate_limit(
    axum::extract::State(collector): axum::extract::State<std::sync::Arc<crate::state::Collector>>,
    crate::limit::Client(client): crate::limit::Client,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = collector.limits.posts.as_ref();
    match limit.map(|l| l.take(client, std::time::Instant::now())) {
        Some(Err(wait)) => crate::error::too_many(
            crate::error::Code::RateLimited,
            "too many posts from this address",
            wait,
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// How long a request may take before it is answered 408: a slow client must not hold a
/// connection and its memory for ever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The policy the widget must work under (issue 2): no inline script or style; wasm
/// compiled from the module's own origin only. `img-src data:` admits the blank favicon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The whole HTTP app; tests call it with `oneshot`.
pub fn app(www: PathBuf, config: Config, store: Store, settings: Settings) -> Router {
    let origins: Vec<HeaderValue> = config
        .origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let mut allowed = config.origins.clone();
    allowed.extend(settings.public_origins.iter().cloned());
    let writers = crate::http::Writers::new(&allowed);
    let statics = Arc::new(crate::statics::Statics::new(&www, store.location().file()));
    // Each address may post `rate_limit` records a second, in bursts of three seconds'
    // worth, and store `daily_quota` a day (crate::limit).
    let limits = crate::limit::Limits::new(settings.rate_limit, settings.daily_quota);
    let account_secret = settings.account_secret.clone().filter(|s| !s.is_empty());
    let lifecycle = crate::lifecycle::Settings {
        public_origin: settings.public_origins.first().cloned().unwrap_or_default(),
        account_secret: account_secret.clone(),
    };
    let collector = crate::state::Collector::new(
        config,
        &settings.config_sha256,
        store,
        settings.admin_token,
        limits,
        writers.clone(),
        lifecycle,
        settings.server,
    );
    // The double opt-in mails go out from the durable outbox (crate::optin); the task ends
    // with the runtime, and a mail not sent by then is sent on the next start.
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = crate::optin::start_sender(collector.clone());
    }
    crate::webhooks::start(collector.clone());
    let post_records = Router::new()
        .route("/v1/records", post(records::post_record))
        .route("/v1/violations", post(violations::post))
        .route("/v1/account/state", post(crate::lifecycle::account_state))
        .route("/v1/account/draft", post(crate::lifecycle::account_draft))
        .layer(axum::middleware::from_fn_with_state(collector.clone(), rate_limit));
    // Origin, media type and declared length are checked before the body is read, and
    // before a foreign writer can spend an address's rate (issue 12).
    let post_records =
        post_records.route_layer(axum::middleware::from_fn_with_state(writers, crate::http::writers_only));
    let mut records = Router::new()
        .merge(post_records)
        .route("/v1/records/{id}", get(records::get_record))
        .route("/v1/checkpoint", get(records::get_checkpoint))
        .route("/v1/proofs/consistency", get(records::get_consistency))
        .route("/v1/texts/{sha256}", get(records::get_text))
        .route("/v1/configs", get(history::list))
        .route("/v1/configs/{sha256}", get(history::text))
        .route("/v1/admin/subjects", post(admin::subject))
        .route("/v1/admin/subjects/export", post(admin::export_subject))
        .route("/v1/admin/subjects/erase", post(admin::erase))
        .route("/v1/admin/subjects/rectify", post(crate::rights::rectify))
        .route("/v1/admin/subjects/restrict", post(crate::rights::restrict))
        .route("/v1/admin/subjects/bundle", post(crate::bundle::post_subject))
        .route("/v1/admin/records/{id}/bundle", get(crate::bundle::get_record))
        .route("/v1/admin/audience", get(crate::rights::audience))
        .route("/v1/admin/suppression", get(crate::rights::suppression))
        .route("/v1/admin/export", get(admin::export_all))
        .route("/v1/admin/log", get(admin::log))
        .route("/v1/admin/webhooks", get(admin::webhooks))
        .route("/v1/admin/webhooks/dead", get(admin::webhooks_dead))
        .route("/v1/admin/webhooks/replay", post(admin::webhooks_replay))
        .route("/v1/pages.css", get(crate::pages::stylesheet))
        .route("/v1/admin/links", post(crate::lifecycle::mint_links))
        .route("/v1/admin/links/revoke", post(crate::lifecycle::revoke_links))
        .route(
            crate::assisted::ASSISTED_PATH,
            get(crate::assisted::script).post(crate::assisted::record),
        )
        // The subject's own pages (HTML): a GET never changes anything, since mail software
        // fetches links (RFC 8058 §1).
        .route(
            "/preferences/{token}",
            get(crate::lifecycle::preferences_page).post(crate::lifecycle::save_preferences),
        )
        .route(
            "/unsubscribe/{token}",
            get(crate::lifecycle::unsubscribe_page).post(crate::lifecycle::one_click_unsubscribe),
        )
        .route(
            "/confirm/{token}",
            get(crate::optin::confirm_page).post(crate::optin::confirm),
        )
        .route("/v1/violations", get(violations::list))
        // The site owner's console (HTML, behind a session; crate::console).
        .merge(crate::console::routes())
        // A method an API route does not take: the API's JSON, not an empty 405. Set before
        // the layers below, so that CORS still answers a preflight (OPTIONS) first.
        .method_not_allowed_fallback(|| async {
            crate::error::refuse(
                crate::error::Code::MethodNotAllowed,
                "this path does not take this method",
            )
        })
        // One byte more than allowed, so the handler answers a too-large body itself (JSON).
        .layer(DefaultBodyLimit::max(records::MAX_BODY + 1))
        .with_state(collector);
    if !origins.is_empty() {
        // A shop on another origin posts with `content-type: application/json`, so the
        // browser asks first (CORS preflight). Only the config's origins get a yes, and no
        // credentials: the widget sends none.
        records = records.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::POST, Method::GET])
                .allow_headers([header::CONTENT_TYPE])
                .max_age(Duration::from_secs(24 * 3600)),
        );
    }
    Router::new()
        .merge(records)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/shop/{action}", post(shop_form))
        .route(
            "/shop/account",
            get(
                move |query: axum::extract::Query<BTreeMap<String, String>>| async move {
                    shop_account(account_secret.as_deref(), &query)
                },
            ),
        )
        .fallback(move |request: axum::extract::Request| async move { statics.serve(request).await })
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(crate::http::bounded_bodies))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The demo shop's own backend: it takes the order or sign-up whatever the marketing boxes
/// say (R3) and shows which consent fields arrived with it, and the id of the consent record
/// the widget put in the form (`consent.record`), which is how an order points at its proof.
/// It never echoes contact data. It loads the widget too, as every page of a shop should: a
/// record the checkout page had no time to send goes from here.
async fn shop_form(UrlPath(action): UrlPath<String>, Form(fields): Form<BTreeMap<String, String>>) -> Response {
    let title = match action.as_str() {
        "order" => "Thank you, your order is placed",
        "newsletter" => "Thank you for signing up",
        _ => return (StatusCode::NOT_FOUND, "no such shop action\n").into_response(),
    };
    let consents: Vec<&str> = fields
        .keys()
        .filter_map(|k| k.strip_prefix("consent."))
        .filter(|purpose| *purpose != "record")
        .collect();
    let mut list = String::new();
    for purpose in &consents {
        list.push_str(&format!("<li><code>{}</code></li>", escape(purpose)));
    }
    let choices = if consents.is_empty() {
        "<p id=\"no-consent\">You gave no marketing consent. That changes nothing about your order.</p>".to_string()
    } else {
        format!("<p>Marketing you agreed to:</p><ul id=\"consents\">{list}</ul>")
    };
    let record = match fields.get("consent.record") {
        Some(id) => format!(
            "<p id=\"record\">The proof of your choices is consent record <a href=\"/v1/records/{id}\"><code>{id}</code></a>.</p>",
            id = escape(id)
        ),
        None => String::new(),
    };
    tracing::info!(action = %action, fields = fields.len(), consents = consents.len(), "shop form received");
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/shop.css\">\
         <script type=\"module\" src=\"/pkg/unticked.js\" data-config=\"/consent.json\"></script></head>\
         <body><main class=\"shop\"><h1 id=\"done\">{title}</h1>{choices}{record}<p><a href=\"/\">Back to the shop</a></p></main></body></html>"
    ))
    .into_response()
}

/// The demo shop's account page, `/shop/account?email=…`: what a shop's backend does for
/// its logged-in customer (here the address in the query stands in for a login), minting the
/// account token with the secret it shares with the collector (docs/lifecycle.md) and putting
/// it on the preferences form. The widget renders the choices; unticking one withdraws it.
fn shop_account(secret: Option<&str>, query: &BTreeMap<String, String>) -> Response {
    let customer = query
        .get("email")
        .and_then(|e| unticked_core::capture::normalise_email(e));
    let (status, body) = match (secret, customer) {
        (None, _) => (
            StatusCode::NOT_FOUND,
            format!(
                "<p id=\"account-off\">The account form is off: start the collector with {} set.</p>",
                crate::lifecycle::ACCOUNT_SECRET_VARIABLE
            ),
        ),
        (Some(_), None) => (
            StatusCode::BAD_REQUEST,
            "<p id=\"who\">Log in first: this demo takes the customer's e-mail address as <code>?email=</code>.</p>"
                .to_string(),
        ),
        (Some(secret), Some(customer)) => {
            let mut nonce = [0u8; 16];
            if getrandom::fill(&mut nonce).is_err() {
                return (StatusCode::SERVICE_UNAVAILABLE, "no randomness\n").into_response();
            }
            let expires = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + 30 * 60;
            let token =
                crate::lifecycle::mint_account_token(secret, &customer, expires, &unticked_core::record::hex(&nonce));
            (
                StatusCode::OK,
                format!(
                    "<p>Logged in as <strong id=\"customer\">{}</strong>.</p>\
                     <form class=\"shop-form\" id=\"account\" data-unticked=\"preferences\" data-unticked-token=\"{}\"></form>",
                    escape(&customer),
                    escape(&token)
                ),
            )
        }
    };
    let lang = query
        .get("lang")
        .filter(|l| l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase()))
        .map_or("en", String::as_str);
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(format!(
            "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>Your account · Baltic Boots</title>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/shop.css\"><link rel=\"stylesheet\" href=\"/pkg/unticked.css\">\
             <script type=\"module\" src=\"/pkg/unticked.js\" data-config=\"/consent.json\"></script></head>\
             <body><main class=\"shop\"><h1>Your account</h1>{body}<p><a href=\"/\">Back to the shop</a></p></main></body></html>"
        )),
    )
        .into_response()
}

pub fn main(options: Options) -> ExitCode {
    // Logs on stderr: stdout carries the "serving … on URL" line that scripts read.
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    if let Err(why) = std::env::var(admin::TOKEN_VARIABLE).map_or(Ok(()), |token| admin::check_token(&token)) {
        eprintln!("unticked serve: {why}");
        return ExitCode::from(2);
    }
    if let Err(why) = std::env::var(crate::lifecycle::ACCOUNT_SECRET_VARIABLE)
        .map_or(Ok(()), |secret| crate::lifecycle::check_account_secret(&secret))
    {
        eprintln!("unticked serve: {why}");
        return ExitCode::from(2);
    }
    let server =
        match crate::settings::ServerSettings::load(options.settings.as_deref(), &|name| std::env::var(name).ok()) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("unticked serve: {e}");
                return ExitCode::from(2);
            }
        };
    // A staff token equal to the admin one would give call-centre staff the admin's powers.
    let admin_token = std::env::var(admin::TOKEN_VARIABLE).ok().filter(|t| !t.is_empty());
    if let Err(why) =
        crate::assisted::check_staff_token(server.staff_token.as_deref().unwrap_or(""), admin_token.as_deref())
    {
        eprintln!("unticked serve: {why}");
        return ExitCode::from(2);
    }
    // The config is linted and compiled into what the widget loads, as `unticked build`
    // does: the widget and the record checks read the same sheets.
    let crate::compile::Source { text, config, compiled } = match crate::compile::read_source(&options.config) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("unticked serve: refusing to serve an invalid config");
            return ExitCode::from(e.exit_code());
        }
    };
    // A double opt-in signup waits for a mail; without a relay it would wait until it lapses.
    if crate::optin::asked_for(&config) && server.smtp.is_none() {
        eprintln!(
            "unticked serve: refusing to start: the config asks for double opt-in (forms: {}) but the settings name no [smtp] relay to send the confirmation mails; add [smtp] to --settings (docs/double-opt-in.md)",
            config
                .forms
                .iter()
                .filter(|f| f.double_opt_in.is_some())
                .map(|f| f.kind.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    }
    // Before anything is created: a key or a WAL under the web root would be downloadable.
    if let Some(file) = options.db.file() {
        if let Err(e) = crate::statics::check_layout(&options.www, file) {
            eprintln!("unticked serve: refusing to start: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(key) = &options.key {
        // A key given is never made here: an instance that made its own would sign a log
        // nobody else's checkpoints extend. Checked before the database file is created.
        if let Err(e) = crate::store::Keys::load(key) {
            eprintln!(
                "unticked serve: refusing to start: --key {}: {e} (make one with `unticked keygen --out {}`)",
                key.display(),
                key.display()
            );
            return ExitCode::from(2);
        }
        if crate::statics::under_web_root(&options.www, key) {
            eprintln!(
                "unticked serve: refusing to start: the key file {} is under the web root {}",
                key.display(),
                options.www.display()
            );
            return ExitCode::FAILURE;
        }
    }
    // After the layout check: a serve that refuses to start writes nothing under --www.
    if let Err(e) = crate::compile::write(&compiled, &options.www.join("pkg")) {
        eprintln!("{e}");
        return ExitCode::from(e.exit_code());
    }
    // Held until serve returns: the tree it keeps in memory must be the only writer's of a
    // SQLite file (crate::lock), so `unticked import` refuses while it runs. PostgreSQL
    // sequences in the database: any number of collectors write its log.
    let log_lock = match options.db.file().map(crate::lock::hold).transpose() {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("unticked serve: refusing to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = match Store::open_at(
        &options.db,
        options.key.as_deref(),
        &crate::texts::Shown::compiled(&compiled),
    ) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("unticked serve: cannot open the log {}: {}", options.db, e);
            return ExitCode::FAILURE;
        }
    };
    // Before any record is taken: unrecorded, this config would be unknown after a restart
    // with another, and the records made under it refused (crate::history).
    let config_sha256 = compiled.site.config_sha256.clone();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if let Err(e) = store.config_served(&config_sha256, &text, started) {
        eprintln!("unticked serve: cannot record the config served in {}: {e}", options.db);
        return ExitCode::FAILURE;
    }
    if let Some(target) = &options.witness {
        match crate::witness::Witness::open(target) {
            Ok(witness) => store.witness_to(witness),
            Err(e) => {
                eprintln!("unticked serve: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("unticked serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stopped = runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&options.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("unticked serve: cannot listen on {}: {e}", options.addr);
                return ExitCode::FAILURE;
            }
        };
        // Before the URL is printed: whoever reads it may send SIGTERM at once.
        let shutdown = shutdown_signal();
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(options.addr.clone());
        // Tests and build.sh read this line to find the port.
        announce(format_args!(
            "unticked: log {} (checkpoints signed by {}, key {})",
            options.db,
            store.origin(),
            unticked_core::record::base64url(store.public_key().as_bytes())
        ));
        announce(format_args!("unticked: serving {} on http://{addr}/", options.www.display()));
        let admin_token = std::env::var(admin::TOKEN_VARIABLE).ok().filter(|t| !t.is_empty());
        if admin_token.is_none() {
            announce(format_args!(
                "unticked: admin endpoints off (set {} to enable them)",
                admin::TOKEN_VARIABLE
            ));
        }
        if server.staff_token.is_none() {
            announce(format_args!(
                "unticked: phone consent off (set {} to a staff token, not the admin one)",
                crate::assisted::STAFF_TOKEN_VARIABLE
            ));
        }
        let public_origins = match listener.local_addr() {
            Ok(local) => public_origins(&options.public_origins, local),
            Err(_) => options.public_origins.clone(),
        };
        if public_origins.is_empty() {
            announce(format_args!(
                "unticked: only the config's origins may write; give the collector's own with --public-origin https://…"
            ));
        }
        let account_secret = std::env::var(crate::lifecycle::ACCOUNT_SECRET_VARIABLE)
            .ok()
            .filter(|t| !t.is_empty());
        if account_secret.is_none() {
            announce(format_args!(
                "unticked: account form off (set {} to the secret the shop's backend signs account tokens with)",
                crate::lifecycle::ACCOUNT_SECRET_VARIABLE
            ));
        }
        let settings = Settings {
            admin_token,
            rate_limit: options.rate_limit,
            daily_quota: options.daily_quota,
            public_origins,
            config_sha256: config_sha256.clone(),
            account_secret,
            server,
        };
        let closing = store.clone();
        let recorder = history::Recorder::start(store.clone(), config_sha256, text, history::REFRESH);
        let app = app(options.www, config, store, settings);
        // Returns once every connection is closed, so the app and its store clones are gone.
        crate::http::serve(listener, app, options.connections, options.trusted_proxies, shutdown).await;
        recorder.stop().await;
        // Fold the WAL into the database and close every connection, so that only the
        // database and its key are left on disk (no `-wal` or `-shm` with contacts in them).
        if let Err(e) = tokio::task::spawn_blocking(move || closing.close())
            .await
            .unwrap_or_else(|e| Err(e.into()))
        {
            eprintln!("unticked serve: the log was not checkpointed on shutdown ({}); its WAL is kept and replayed on the next start", e);
        }
        announce(format_args!("unticked: stopped"));
        ExitCode::SUCCESS
    });
    // The background tasks (webhooks, confirmation mails) end with the runtime; then nothing
    // writes any more, and the lock can go.
    drop(runtime);
    if let Some(lock) = log_lock {
        lock.release();
    }
    stopped
}

/// The collector's own origins, whose pages may write: those given with `--public-origin`
/// and, when it listens on loopback, `http://` with its address and with `localhost` (the
/// demo; a page there can only be the collector's own). Never taken from a request's
/// `Host`, which the client writes. Listening on another address without
/// `--public-origin`, only the config's `origins` may write.
fn public_origins(given: &[String], local: std::net::SocketAddr) -> Vec<String> {
    let mut own: Vec<String> = given.iter().map(|o| o.trim_end_matches('/').to_string()).collect();
    if local.ip().is_loopback() {
        let port = local.port();
        own.push(format!("http://{local}"));
        own.push(format!("http://localhost:{port}"));
        own.push(if local.ip().is_ipv4() {
            format!("http://[::1]:{port}")
        } else {
            format!("http://127.0.0.1:{port}")
        });
    }
    own
}

/// Ctrl-C or SIGTERM: stop accepting, finish what is in flight, exit 0. The handlers are
/// installed when this is called, not when the future is first polled: polled first in the
/// accept loop, they could still be missing when a client that had its answer sent SIGTERM
/// (on a loaded machine, 3 runs in 40), and the signal's default action killed the server
/// mid-way, its WAL left behind. Call it before announcing the URL.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = received(interrupt) => {},
            _ = received(terminate) => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves when `signal` arrives; never, when its handler could not be installed.
#[cfg(unix)]
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// A line of the start-up banner on stdout. The collector's work is storing records, not
/// telling a terminal: a closed or broken stdout (`serve | head -1`, a supervisor that
/// dropped the pipe) must not stop it, as `println!` would by panicking.
fn announce(line: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout(), "{line}") {
        tracing::warn!(error = %e, "a start-up line could not be written to stdout");
    }
}

#[cfg(test)]
mod tests {
    //! The HTTP app through its router, without a socket.

    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use std::net::SocketAddr;
    use tower::ServiceExt;

    const WWW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www");

    fn demo_config() -> Config {
        Config::from_json(&std::fs::read_to_string(format!("{WWW}/consent.json")).unwrap()).unwrap()
    }

    async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let dir = tempfile::tempdir().unwrap();
        let config = demo_config();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let response = app(PathBuf::from(WWW), config, store, crate::testing::settings())
            .oneshot(request)
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn send_to(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn get(uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post_form(uri: &str, form: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap();
        send(request).await
    }

    fn header_str(headers: &axum::http::HeaderMap, name: header::HeaderName) -> &str {
        headers.get(&name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The widget must work under the strict CSP (issue 2), so the shop's pages are served
    /// with exactly that policy, plus nosniff and a same-origin referrer.
    #[tokio::test]
    async fn pages_are_served_under_the_strict_csp() {
        let (status, headers, body) = get("/checkout.html").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            header_str(&headers, header::CONTENT_TYPE).starts_with("text/html"),
            "{headers:?}"
        );
        assert_eq!(
            header_str(&headers, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header_str(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header_str(&headers, header::REFERRER_POLICY), "same-origin");
        assert!(
            body.contains("data-unticked=\"checkout\""),
            "the checkout page itself was served"
        );
    }

    /// The widget fetches `/consent.json`: it is served byte-for-byte, and it is a valid config.
    #[tokio::test]
    async fn consent_json_is_the_demo_config() {
        let (status, headers, body) = get("/consent.json").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            header_str(&headers, header::CONTENT_TYPE).starts_with("application/json"),
            "{headers:?}"
        );
        let on_disk = std::fs::read_to_string(format!("{WWW}/consent.json")).unwrap();
        let served: serde_json::Value = serde_json::from_str(&body).unwrap();
        let expected: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
        assert_eq!(served, expected);
        assert!(unticked_core::config::Config::from_json(&body).is_ok());
    }

    /// build.sh and the process test poll this to know the server is up.
    #[tokio::test]
    async fn healthz_says_ok() {
        let (status, _, body) = get("/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ok\n");
    }

    /// The order page lists the purposes consented to, and never echoes contact data back.
    #[tokio::test]
    async fn order_lists_the_consents_and_not_the_contact_data() {
        let form = "email=a%40b.example&name=X&consent.email-offers=yes&consent.sms-offers=yes";
        let (status, headers, body) = post_form("/shop/order", form).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            header_str(&headers, header::CONTENT_TYPE).starts_with("text/html"),
            "{headers:?}"
        );
        assert_eq!(
            header_str(&headers, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        assert!(body.contains("id=\"consents\""), "{body}");
        assert!(body.contains("<li><code>email-offers</code></li>"), "{body}");
        assert!(body.contains("<li><code>sms-offers</code></li>"), "{body}");
        assert!(!body.contains("no-consent"), "{body}");
        assert!(
            !body.contains("a@b.example") && !body.contains("a%40b.example"),
            "{body}"
        );
        // Only `consent.*` fields are consents: the contact fields are not listed.
        assert!(
            !body.contains("<code>email</code>") && !body.contains("<code>name</code>"),
            "{body}"
        );
    }

    /// A purchase never depends on marketing consent (R3): no boxes ticked, order still placed.
    #[tokio::test]
    async fn order_without_consent_is_still_placed() {
        let id = "0190b6f2-4a3b-7c00-8000-000000000000";
        let (status, _, body) = post_form(
            "/shop/order",
            &format!("email=a%40b.example&name=X&consent.record={id}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("id=\"done\""), "{body}");
        assert!(body.contains("id=\"no-consent\""), "{body}");
        assert!(!body.contains("id=\"consents\""), "{body}");
        // The record id is the order's pointer to its proof, not a consent.
        assert!(body.contains(&format!("<a href=\"/v1/records/{id}\">")), "{body}");
    }

    /// The newsletter form posts to its own action and gets its own confirmation.
    #[tokio::test]
    async fn newsletter_sign_up_is_confirmed() {
        let (status, _, body) = post_form("/shop/newsletter", "email=a%40b.example&consent.email-offers=yes").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Thank you for signing up"), "{body}");
        assert!(body.contains("<code>email-offers</code>"), "{body}");
    }

    /// Purpose names come from the client: they are HTML-escaped, never injected as markup.
    #[tokio::test]
    async fn consent_names_are_escaped() {
        let (status, _, body) = post_form("/shop/order", "consent.%3Cscript%3E%22%26=yes").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<code>&lt;script&gt;&quot;&amp;</code>"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
    }

    /// Only the shop's two actions exist.
    #[tokio::test]
    async fn unknown_shop_action_is_404() {
        let (status, _, _) = post_form("/shop/unknown", "consent.email-offers=yes").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    /// The shop's origins from the config may post from another origin (CORS); others not.
    #[tokio::test]
    async fn only_the_configured_origins_may_post_across_origins() {
        let mut config = demo_config();
        config.origins = vec!["https://shop.example".into()];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let app = app(PathBuf::from(WWW), config, store, crate::testing::settings());
        for (origin, allowed) in [("https://shop.example", true), ("https://evil.example", false)] {
            let preflight = Request::builder()
                .method(Method::OPTIONS)
                .uri("/v1/records")
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(preflight).await.unwrap();
            let granted = response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).cloned();
            assert_eq!(
                granted.as_ref().and_then(|v| v.to_str().ok()) == Some(origin),
                allowed,
                "{origin}"
            );
            assert!(response
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
                .is_none());
        }
    }

    /// One address posting faster than the limit gets 429 (which the widget's outbox retries).
    #[tokio::test]
    async fn one_address_is_rate_limited_and_another_is_not() {
        use axum::extract::ConnectInfo;
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let settings = Settings {
            rate_limit: 2,
            ..crate::testing::settings()
        };
        let app = app(PathBuf::from(WWW), config, store, settings);
        let post_from = |ip: [u8; 4]| {
            let app = app.clone();
            async move {
                // What `into_make_service_with_connect_info` puts on each request.
                let mut request = Request::post("/v1/records")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap();
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::from((ip, 50000))));
                app.oneshot(request).await.unwrap().status()
            }
        };
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(post_from([10, 0, 0, 1]).await);
        }
        // A burst of six (three seconds' worth) is let through to be judged, then 429.
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count(),
            6,
            "{statuses:?}"
        );
        assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
        let mut request = Request::post("/v1/records")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 50000))));
        let response = app.clone().oneshot(request).await.unwrap();
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(r#""code":"rate-limited""#));
        assert_eq!(
            post_from([10, 0, 0, 2]).await,
            StatusCode::BAD_REQUEST,
            "another address is not held up"
        );
    }

    /// No client input earns a 5xx (which also logs an ERROR line): odd paths × every
    /// method, through the whole router. `HEAD /%00` answered 500 before.
    #[tokio::test]
    async fn no_path_and_no_method_gets_a_server_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = demo_config();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let app = app(PathBuf::from(WWW), config, store, crate::testing::settings());
        let long = format!("/{}", "a".repeat(8000));
        let deep = "/a".repeat(2000);
        let paths = [
            "/",
            "/%00",
            "/%00.html",
            "/index.html%00",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/..%2f..%2fetc%2fpasswd",
            "/%2e%2e",
            "//",
            "//etc/passwd",
            "///index.html",
            "/%ff",
            "/%ff%fe",
            "/%c0%ae%c0%ae/",
            "/%",
            "/%zz",
            "/a%5c..%5c..%5cetc",
            "/\\..\\..\\etc",
            "/.git/config",
            "/.",
            "/./index.html",
            "/pkg",
            "/pkg/",
            "/consent.json/",
            "/index.html/x",
            long.as_str(),
            deep.as_str(),
            "/v1/records",
            "/v1/records/%00",
            "/v1/records/%ff",
            "/v1/texts/%00",
            "/v1/texts/%ff",
            "/v1/violations",
            "/v1/checkpoint",
            "/v1/proofs/consistency?from=%ff&to=%00",
            "/v1/admin/log?start=-1",
            "/v1/admin/subjects",
            "/shop/%00",
            "/shop/order",
            "/healthz?%00",
            "/?a=%00",
            "/unticked.db",
            "/unticked.db.key",
            "/log.db-wal",
        ];
        let methods = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PROPFIND", "X-ODD",
        ];
        for path in paths {
            for method in methods {
                let Ok(request) = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::ORIGIN, "https://evil.example")
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(Body::from("{}"))
                else {
                    continue;
                };
                let status = app.clone().oneshot(request).await.unwrap().status();
                assert!(status.as_u16() < 500, "{method} {path}: {status}");
            }
        }
    }

    /// The static files are those under `--www` and no others: a symlink out of it is not
    /// followed, and the log's files are never served even if they were put there.
    #[tokio::test]
    async fn static_files_never_leave_the_web_root_nor_include_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("index.html"), "<!doctype html><title>shop</title>").unwrap();
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, "not for the web").unwrap();
        std::os::unix::fs::symlink(&outside, www.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), www.join("up")).unwrap();
        std::fs::create_dir(www.join("pkg")).unwrap();
        std::fs::write(www.join("pkg/index.html"), "pkg").unwrap();
        // What `serve` now refuses at start, built here directly: the log under the web root.
        let config = demo_config();
        let db = www.join("unticked.db");
        let store = Store::open(&db, &crate::texts::Shown::of(&config)).unwrap();
        std::fs::write(www.join("unticked.db-journal"), "journal").unwrap();
        let app = app(www.clone(), config, store, crate::testing::settings());
        let fetch = |method: Method, uri: &str| {
            let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let location = header_str(response.headers(), header::LOCATION).to_string();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, location, String::from_utf8_lossy(&body).into_owned())
            }
        };
        assert_eq!(fetch(Method::GET, "/").await.0, StatusCode::OK);
        assert_eq!(fetch(Method::HEAD, "/index.html").await.0, StatusCode::OK);
        assert_eq!(fetch(Method::GET, "/pkg/").await.2, "pkg");
        let (status, location, _) = fetch(Method::GET, "//pkg").await;
        assert_eq!(
            (status, location.as_str()),
            (StatusCode::TEMPORARY_REDIRECT, "/pkg/"),
            "never //host"
        );
        for path in [
            "/leak.txt",
            "/up/secret.txt",
            "/unticked.db",
            "/unticked.db.key",
            "/unticked.db-wal",
            "/unticked.db-shm",
            "/unticked.db-journal",
            "/up/www/unticked.db.key",
            "/%2e%2e/secret.txt",
        ] {
            for method in [Method::GET, Method::HEAD] {
                let (status, _, body) = fetch(method.clone(), path).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
                assert!(!body.contains("not for the web"), "{path}");
            }
        }
    }

    /// CORS stops a foreign page from reading, not from writing: a `text/plain` post needs no
    /// preflight. So writes from a foreign origin are refused (403), and only JSON is taken
    /// (415), before the body is read.
    #[tokio::test]
    async fn only_the_collectors_own_and_the_configured_origins_may_write() {
        let mut config = demo_config();
        config.origins = vec!["https://shop.example".into()];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let delivery = crate::testing::seal(&crate::testing::capture(&config, &["email-offers"]), 1);
        let app = app(PathBuf::from(WWW), config, store, crate::testing::settings());
        let post = |uri: &str, origin: Option<&str>, content_type: Option<&str>, body: &str| {
            let mut request = Request::post(uri).header(header::HOST, "127.0.0.1:8080");
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let request = request.body(Body::from(body.to_string())).unwrap();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_string));
                (status, code.unwrap_or_default())
            }
        };
        let json = Some("application/json");
        let report = r#"{"kind":"hidden-box","form":"checkout","page":"/checkout.html"}"#;
        for uri in ["/v1/records", "/v1/violations"] {
            for (origin, content_type) in [
                (Some("https://evil.example"), Some("text/plain")),
                (Some("https://evil.example"), json),
                (Some("null"), json),
                (Some("https://shop.example.evil"), json),
                (Some("http://127.0.0.1:8080.evil.example"), json),
            ] {
                assert_eq!(
                    post(uri, origin, content_type, &delivery).await,
                    (StatusCode::FORBIDDEN, "forbidden-origin".into()),
                    "{uri} from {origin:?}"
                );
            }
            for content_type in [
                None,
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("multipart/form-data"),
            ] {
                assert_eq!(
                    post(uri, None, content_type, report).await,
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type".into()),
                    "{uri} as {content_type:?}"
                );
            }
        }
        // Nothing the refused posts carried was stored.
        let (status, _, _) = send_to(&app, Request::get("/v1/checkpoint").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the log is still empty");
        // DNS rebinding: a foreign page whose name resolves to the collector sends a `Host`
        // equal to its own `Origin`. The collector's own origins are fixed at start, never
        // read from `Host`.
        let rebound = Request::post("/v1/violations")
            .header(header::HOST, "evil.example")
            .header(header::ORIGIN, "http://evil.example")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(report))
            .unwrap();
        let (status, _, body) = send_to(&app, rebound).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // The collector's own public origins, the config's origins and clients that send no
        // Origin (the bench, curl) may write; not the own origin under another scheme.
        assert_eq!(
            post("/v1/violations", Some("https://127.0.0.1:8080"), json, report)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        for origin in [Some("http://127.0.0.1:8080"), Some("https://shop.example"), None] {
            let (status, code) = post(
                "/v1/violations",
                origin,
                Some("application/json; charset=utf-8"),
                report,
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{origin:?}: {code}");
        }
        // A record is taken from the page it names (records.rs checks that page.origin is the
        // browser's Origin): this one was captured on the collector's own page.
        assert_eq!(
            post("/v1/records", Some("http://127.0.0.1:8080"), json, &delivery)
                .await
                .0,
            StatusCode::CREATED
        );
    }
}
