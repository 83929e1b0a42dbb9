//! The collector's errors: what storage can fail with ([`StoreError`]), typed so that a
//! caller can tell a missing key file from a full disk, and never the client's fault (the
//! HTTP edge answers them 503 `unavailable`, which the widget's outbox retries); and what the
//! HTTP API refuses ([`Refusal`]), with each stable [`Code`] defined once beside its status.

use crate::limit::retry_after_secs;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::Arc;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Database { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}: not an unticked key file", .0.display())]
    NotAKeyFile(PathBuf),
    /// A new key for an existing log would orphan its checkpoints and make its subjects
    /// unfindable, and so unerasable.
    #[error("{db} holds records but its key file {} is missing; restore it from backup", key.display())]
    KeyMissing { db: String, key: PathBuf },
    /// The key file did not sign the log's checkpoints: it is another log's.
    #[error("{db}: the key file {} did not sign this log's checkpoints (it belongs to another log); give the log's own key file", key.display())]
    ForeignKey { db: String, key: PathBuf },
    /// Collectors sharing a PostgreSQL log share its key: none may make its own.
    #[error("a PostgreSQL log needs --key FILE, the key every collector of the log shares (make it once with `unticked keygen --out FILE`)")]
    PostgresNeedsKey,
    /// The records read do not hash to the root the checkpoint signed.
    #[error("the records stored do not hash to the signed root of the checkpoint at size {0}; run `unticked verify`")]
    RootMismatch(u64),
    #[error("the log has no record at index {0}; run `unticked verify`")]
    Gap(u64),
    #[error("no randomness for a new key: {0}")]
    NoRandomness(String),
    #[error("the tree has no root at size {0}")]
    NoRoot(u64),
    #[error("the writer has stopped")]
    WriterStopped,
    #[error("the writer thread panicked")]
    WriterPanicked,
    #[error("the store is still in use")]
    InUse,
    /// Art. 17: the rows are gone, but their old pages still sit in the WAL.
    #[error("the rows are deleted, but a reader kept the write-ahead log busy; erase again to fold it")]
    WalBusy,
    /// One failure, shared by every delivery of the batch it sank.
    #[error("the batch was not stored: {0}")]
    Batch(Arc<StoreError>),
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl crate::db::IsBroken for StoreError {
    fn is_broken(&self) -> bool {
        match self {
            StoreError::Db(e) => e.is_broken(),
            _ => false,
        }
    }
}

/// Every stable `code` the HTTP API answers with, each beside its status: defined once here,
/// so that a code can never travel with two statuses (docs/collector.md lists them).
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal, $status:ident;)*) => {
        /// A stable error code of the HTTP API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, for the docs test.
            #[cfg(test)]
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as the JSON body carries it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// The HTTP status it is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

codes! {
    // The delivery or report itself.
    BadBody = "bad-body", BAD_REQUEST;
    BadReport = "bad-report", BAD_REQUEST;
    TooLarge = "too-large", PAYLOAD_TOO_LARGE;
    UnsupportedMediaType = "unsupported-media-type", UNSUPPORTED_MEDIA_TYPE;
    ForbiddenOrigin = "forbidden-origin", FORBIDDEN;
    // The record's bytes (`record::open`).
    NotJson = "not-json", BAD_REQUEST;
    NotCanonical = "not-canonical", BAD_REQUEST;
    Shape = "shape", BAD_REQUEST;
    UnknownAlgorithm = "unknown-algorithm", BAD_REQUEST;
    BadSignature = "bad-signature", BAD_REQUEST;
    // The record against the config, the clock and the request.
    /// The record names a config (`config_sha256`) the collector has never served, or one
    /// it can no longer read (crate::history).
    UnknownConfig = "unknown-config", UNPROCESSABLE_ENTITY;
    UnknownForm = "unknown-form", UNPROCESSABLE_ENTITY;
    SourceMismatch = "source-mismatch", UNPROCESSABLE_ENTITY;
    UnknownLocale = "unknown-locale", UNPROCESSABLE_ENTITY;
    UnknownPurpose = "unknown-purpose", UNPROCESSABLE_ENTITY;
    PurposeVersion = "purpose-version", UNPROCESSABLE_ENTITY;
    TextMismatch = "text-mismatch", UNPROCESSABLE_ENTITY;
    NoticeMismatch = "notice-mismatch", UNPROCESSABLE_ENTITY;
    CapturedAtWindow = "captured-at-window", UNPROCESSABLE_ENTITY;
    ForeignOrigin = "foreign-origin", UNPROCESSABLE_ENTITY;
    OriginMismatch = "origin-mismatch", UNPROCESSABLE_ENTITY;
    IdentifierNotNormal = "identifier-not-normal", UNPROCESSABLE_ENTITY;
    DisclosureMismatch = "disclosure-mismatch", UNPROCESSABLE_ENTITY;
    SubjectNotGranted = "subject-not-granted", UNPROCESSABLE_ENTITY;
    BirthdayNotGranted = "birthday-not-granted", UNPROCESSABLE_ENTITY;
    /// The birthday beside the record is not the one it commits to, or one of the two is missing.
    BirthdayMismatch = "birthday-mismatch", UNPROCESSABLE_ENTITY;
    /// Other bytes, or the same bytes with other values beside them, are stored under the
    /// record's id.
    IdConflict = "id-conflict", CONFLICT;
    // Limits (crate::limit).
    RateLimited = "rate-limited", TOO_MANY_REQUESTS;
    QuotaExceeded = "quota-exceeded", TOO_MANY_REQUESTS;
    /// An API path asked with a method it does not take.
    MethodNotAllowed = "method-not-allowed", METHOD_NOT_ALLOWED;
    // Reading.
    NotFound = "not-found", NOT_FOUND;
    Empty = "empty", NOT_FOUND;
    BadRange = "bad-range", BAD_REQUEST;
    // Admin.
    AdminDisabled = "admin-disabled", NOT_FOUND;
    Unauthorised = "unauthorised", UNAUTHORIZED;
    BadIdentifier = "bad-identifier", BAD_REQUEST;
    /// An audience or suppression list asked for without a channel that reaches a contact.
    BadChannel = "bad-channel", BAD_REQUEST;
    /// A right exercised for a contact no record names.
    UnknownSubject = "unknown-subject", NOT_FOUND;
    /// A rectification whose replacement already names another subject, without `"merge"`.
    SubjectExists = "subject-exists", CONFLICT;
    /// A link or account token that is not one, has expired, or was revoked (issue 14).
    BadToken = "bad-token", UNAUTHORIZED;
    /// The account form is off: no `UNTICKED_ACCOUNT_SECRET`.
    AccountDisabled = "account-disabled", NOT_FOUND;
    /// A record of the preferences form without the account token of its subject.
    TokenRequired = "token-required", FORBIDDEN;
    /// A record of the preferences form naming another subject than its token.
    TokenSubject = "token-subject", FORBIDDEN;
    /// A posted record that claims the collector's signature.
    CollectorSigned = "collector-signed", FORBIDDEN;
    /// A checkout or sign-up record that withdraws or renews (R7: the preferences form does).
    StateNotOffered = "state-not-offered", UNPROCESSABLE_ENTITY;
    // Assisted (phone) consent (crate::assisted).
    /// The assisted endpoints are off: no `UNTICKED_STAFF_TOKEN`.
    StaffDisabled = "staff-disabled", NOT_FOUND;
    /// A staff name or recording reference that is empty, too long or holds a control character.
    BadReference = "bad-reference", BAD_REQUEST;
    /// A purpose on another channel than the one the consent was taken for.
    PurposeChannel = "purpose-channel", UNPROCESSABLE_ENTITY;
    /// Storage failed: the server's problem, which the widget's outbox retries.
    Unavailable = "unavailable", SERVICE_UNAVAILABLE;
    /// A stored record no longer opens: the log was changed behind the collector's back
    /// (`unticked verify` names the damage). Nothing is decided on what is left.
    Damaged = "damaged", INTERNAL_SERVER_ERROR;
}

/// A refusal: a stable code (and so its status), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
    /// Seconds for `Retry-After` (RFC 9110 §10.2.3), on a 429.
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

pub(crate) fn refuse(code: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        retry_after: None,
    }
}

/// Storage failed: logged, and answered 503 so that the widget's outbox retries. The client
/// learns nothing of what failed.
pub(crate) fn unavailable(e: impl std::fmt::Debug) -> Refusal {
    tracing::error!(error = ?e, "storage unavailable");
    refuse(Code::Unavailable, "the record could not be stored now; retry later")
}

/// A stored record at `index` that no longer opens. Every record opened when it was stored
/// (crate::records), so this is damage to the log; a subject's standing, bundle or page
/// built without it could say the opposite of what they chose (a lost withdrawal).
pub(crate) fn damaged(index: u64, e: impl std::fmt::Display) -> Refusal {
    tracing::error!(index, error = %e, "a stored record no longer opens; run `unticked verify`");
    refuse(
        Code::Damaged,
        format!("the stored record at index {index} no longer opens ({e}): the log is damaged; `unticked verify` names what is wrong"),
    )
}

/// 429 with `code` and `Retry-After`: a limit of [`crate::limit`] was reached (RFC 6585 §4).
pub(crate) fn too_many(code: Code, what: &str, wait: std::time::Duration) -> Refusal {
    let secs = retry_after_secs(wait);
    Refusal {
        retry_after: Some(secs),
        ..refuse(code, format!("{what}; retry in {secs} s"))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/collector.md lists every code with the status it is answered with.
    #[test]
    fn every_code_is_documented() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/collector.md")).unwrap();
        for code in Code::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
            assert!(docs.contains(&row), "docs/collector.md lacks the row {row}");
        }
    }
}
