//! The shop's static files, served from `--www` and from nowhere else: a request path is
//! decoded and checked segment by segment, the file it names is canonicalized (symlinks
//! resolved) and must still lie under the canonical web root, and the collector's own files
//! (the database, its key, its WAL, journal and shared memory) are never served, wherever
//! they are. `serve` also refuses to start when those files lie under the web root
//! ([`check_layout`]): a download of `<db>.key` is the checkpoint signing seed and the secret
//! of the subject index, a download of `<db>-wal` is shoppers' contact data.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// The files SQLite and the store keep beside a database `db`: the database itself, its key
/// file (`<db>.key`, see `store::Keys::path_for`), the write-ahead log and its shared-memory
/// index (`<db>-wal`, `<db>-shm`, <https://sqlite.org/wal.html>) and the rollback journal
/// (`<db>-journal`, <https://sqlite.org/tempfiles.html>).
pub fn database_files(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf(), crate::store::Keys::path_for(db)];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

/// Where each of `db`'s files is or would be, symlinks resolved: the canonical parent
/// directory joined with the file's name (the files may not exist yet) and, for those that
/// exist, their own canonical path too (one may be a symlink to somewhere else).
fn resolved_database_files(db: &Path) -> Vec<PathBuf> {
    let parent = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = std::fs::canonicalize(&parent).unwrap_or(parent);
    let mut resolved = Vec::new();
    for file in database_files(db) {
        if let Some(name) = file.file_name() {
            resolved.push(parent.join(name));
        }
        if let Ok(canonical) = std::fs::canonicalize(&file) {
            resolved.push(canonical);
        }
    }
    resolved
}

/// Why `serve` will not start with this layout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error(
        "{file} lies under --www {www}, where anyone could download it (the log's key file signs \
         checkpoints and keys the subject index; the database and its WAL hold shoppers' contacts); \
         put --db outside the web root"
    )]
    DatabaseUnderWebRoot { file: String, www: String },
}

/// Refuses a database whose files (see [`database_files`]) lie under the web root,
/// comparing canonical paths so that neither `..` nor a symlink hides it. A web root that
/// does not exist serves nothing, so it holds nothing either.
///
/// # Errors
/// [`LayoutError::DatabaseUnderWebRoot`] naming the first such file.
pub fn check_layout(www: &Path, db: &Path) -> Result<(), LayoutError> {
    let Ok(root) = std::fs::canonicalize(www) else {
        return Ok(());
    };
    match resolved_database_files(db).into_iter().find(|f| f.starts_with(&root)) {
        Some(file) => Err(LayoutError::DatabaseUnderWebRoot {
            file: file.display().to_string(),
            www: www.display().to_string(),
        }),
        None => Ok(()),
    }
}

/// Whether `file` (a key file given with `serve --key`) lies under the web root, by
/// canonical paths as [`check_layout`] compares them.
pub fn under_web_root(www: &Path, file: &Path) -> bool {
    match (std::fs::canonicalize(www), std::fs::canonicalize(file)) {
        (Ok(root), Ok(file)) => file.starts_with(root),
        _ => false,
    }
}

/// The static file server: the canonical web root (`None` when `--www` does not exist) and
/// the files it must never hand out.
#[derive(Debug, Clone)]
pub struct Statics {
    root: Option<PathBuf>,
    private: Vec<PathBuf>,
}

impl Statics {
    /// `db`: the SQLite file, whose files are never served (a PostgreSQL log has none here).
    pub fn new(www: &Path, db: Option<&Path>) -> Statics {
        let root = std::fs::canonicalize(www).ok();
        if root.is_none() {
            tracing::warn!(www = %www.display(), "the web root does not exist; no static files are served");
        }
        Statics {
            root,
            private: db.map(resolved_database_files).unwrap_or_default(),
        }
    }

    /// Answers `GET`/`HEAD` with the file the path names under the web root, 404 for
    /// anything that does not name one (decoded `..`, NUL, backslash, a symlink leading out,
    /// the database's files, dotfiles), 405 for other methods. Never a 5xx for a path.
    pub async fn serve(&self, request: Request) -> Response {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = (StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD here\n").into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let Some(root) = &self.root else {
            return not_found();
        };
        let Some(segments) = segments(request.uri().path()) else {
            return not_found();
        };
        let mut file = root.clone();
        file.extend(&segments);
        let Some(mut file) = self.contained(&file).await else {
            return not_found();
        };
        if tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_dir()) {
            if !request.uri().path().ends_with('/') {
                return redirect_to_directory(request.uri());
            }
            match self.contained(&file.join("index.html")).await {
                Some(index) => file = index,
                None => return not_found(),
            }
        }
        // The canonical path has no symlink left to follow; ServeFile adds the content type,
        // ranges, conditional requests and HEAD.
        match ServeFile::new(&file).oneshot(request).await {
            Ok(response) if response.status().is_server_error() => {
                // An unreadable file (permissions, a race with a deletion): nothing the
                // client did, and nothing it may learn about.
                tracing::warn!(status = response.status().as_u16(), "a static file could not be read");
                not_found()
            }
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        }
    }

    /// `file` canonicalized, if it exists under the web root and is none of the database's.
    async fn contained(&self, file: &Path) -> Option<PathBuf> {
        let root = self.root.as_ref()?;
        let canonical = tokio::fs::canonicalize(file).await.ok()?;
        let inside = canonical.starts_with(root) && !self.private.contains(&canonical);
        inside.then_some(canonical)
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// `/dir` → `/dir/`, as a browser needs to resolve the index page's relative links. The
/// location is rebuilt from the raw, still percent-encoded segments with empty ones
/// dropped, so `//host` can never become a scheme-relative redirect to another site.
fn redirect_to_directory(uri: &axum::http::Uri) -> Response {
    let mut location: String = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .fold(String::new(), |path, s| path + "/" + s);
    location.push('/');
    if let Some(query) = uri.query() {
        location.push('?');
        location.push_str(query);
    }
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, value)]).into_response(),
        Err(_) => not_found(),
    }
}

/// The decoded segments of a request path, or `None` when one could escape the root or
/// confuse the file system: `..`, a NUL, a (decoded) slash or backslash, a dotfile, bytes
/// that are not UTF-8, a bad `%` escape (RFC 3986 §2.1). Empty and `.` segments are dropped.
fn segments(path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for raw in path.split('/') {
        let segment = String::from_utf8(percent_decode(raw)?).ok()?;
        if segment.is_empty() || segment == "." {
            continue;
        }
        if segment.starts_with('.') || segment.contains(['\0', '/', '\\']) {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_root_have_no_segments() {
        assert_eq!(
            segments("/pkg/unticked.js"),
            Some(vec!["pkg".into(), "unticked.js".into()])
        );
        assert_eq!(segments("//a/./b/"), Some(vec!["a".into(), "b".into()]));
        for path in [
            "/../etc/passwd",
            "/%2e%2e/x",
            "/a%2f..%2fb",
            "/%00",
            "/a%5c..%5cb",
            "/%ff",
            "/%zz",
            "/%4",
            "/.git/config",
            "/x.db%00.html",
        ] {
            assert_eq!(segments(path), None, "{path}");
        }
    }
}
