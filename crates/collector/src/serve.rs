//! `unticked serve`: the demo shop's static files under a strict Content-Security-Policy,
//! the shop's own order endpoint, and a health check.

use axum::extract::Path as UrlPath;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

pub struct Options {
    pub config: PathBuf,
    pub www: PathBuf,
    pub addr: String,
}

/// The policy the widget must work under (issue 2): no inline script or style; wasm
/// compiled from the module's own origin only. `img-src data:` admits the blank favicon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The whole HTTP app; tests call it with `oneshot`.
pub fn app(www: PathBuf) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/shop/{action}", post(shop_form))
        .fallback_service(ServeDir::new(www))
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
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The demo shop's own backend: it takes the order or sign-up whatever the marketing boxes
/// say (R3) and shows which consent fields arrived with it. It never echoes contact data.
async fn shop_form(UrlPath(action): UrlPath<String>, Form(fields): Form<BTreeMap<String, String>>) -> Response {
    let title = match action.as_str() {
        "order" => "Thank you, your order is placed",
        "newsletter" => "Thank you for signing up",
        _ => return (StatusCode::NOT_FOUND, "no such shop action\n").into_response(),
    };
    let consents: Vec<&str> = fields.keys().filter_map(|k| k.strip_prefix("consent.")).collect();
    let mut list = String::new();
    for purpose in &consents {
        list.push_str(&format!("<li><code>{}</code></li>", escape(purpose)));
    }
    let choices = if consents.is_empty() {
        "<p id=\"no-consent\">You gave no marketing consent. That changes nothing about your order.</p>".to_string()
    } else {
        format!("<p>Marketing you agreed to:</p><ul id=\"consents\">{list}</ul>")
    };
    tracing::info!(action = %action, fields = fields.len(), consents = consents.len(), "shop form received");
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/shop.css\"></head>\
         <body><main class=\"shop\"><h1 id=\"done\">{title}</h1>{choices}<p><a href=\"/\">Back to the shop</a></p></main></body></html>"
    ))
    .into_response()
}

pub fn main(options: Options) -> ExitCode {
    tracing_subscriber::fmt().with_target(false).init();
    let report = crate::lint::lint_file(&options.config);
    if report.exit_code() != 0 {
        eprint!("{}", report.to_text());
        eprintln!("unticked serve: refusing to serve an invalid config");
        return ExitCode::from(report.exit_code());
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("unticked serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&options.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("unticked serve: cannot listen on {}: {e}", options.addr);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(options.addr.clone());
        // Tests and build.sh read this line to find the port.
        println!("unticked: serving {} on http://{addr}/", options.www.display());
        if let Err(e) = axum::serve(listener, app(options.www))
            .with_graceful_shutdown(shutdown_signal())
            .await
        {
            eprintln!("unticked serve: {e}");
            return ExitCode::FAILURE;
        }
        println!("unticked: stopped");
        ExitCode::SUCCESS
    })
}

/// Ctrl-C or SIGTERM: stop accepting, finish what is in flight, exit 0.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
