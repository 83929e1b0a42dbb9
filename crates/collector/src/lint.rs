//! `unticked lint`: the config validator of `unticked-core` as a report.

use std::path::Path;
use unticked_core::config::{Config, ConfigError, ConfigProblem, Rule};

/// What `unticked lint` found in one file.
pub enum Report {
    Clean {
        file: String,
    },
    Problems {
        file: String,
        errors: Vec<ConfigError>,
    },
    /// Unreadable, or not JSON at all.
    Unusable {
        file: String,
        reason: String,
    },
}

pub fn lint_file(path: &Path) -> Report {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Err(e) => Report::unreadable(path, &e),
        Ok(text) => lint_text(file, &text),
    }
}

impl Report {
    /// A file that could not be read.
    pub fn unreadable(path: &Path, e: &std::io::Error) -> Report {
        Report::Unusable {
            file: path.display().to_string(),
            reason: format!("cannot read the file: {e}"),
        }
    }
}

pub fn lint_text(file: String, text: &str) -> Report {
    match Config::from_json(text) {
        Ok(_) => Report::Clean { file },
        Err(ConfigProblem::NotJson(e)) => Report::Unusable {
            file,
            reason: format!("not valid JSON: {e}"),
        },
        Err(ConfigProblem::Invalid(errors)) => Report::Problems { file, errors },
    }
}

impl Report {
    /// 0 clean, 1 rule violations, 2 unreadable or not JSON.
    pub fn exit_code(&self) -> u8 {
        match self {
            Report::Clean { .. } => 0,
            Report::Problems { .. } => 1,
            Report::Unusable { .. } => 2,
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            Report::Clean { file } => format!("{file}: ok, no problems\n"),
            Report::Unusable { file, reason } => format!("{file}: {reason}\n"),
            Report::Problems { file, errors } => {
                let mut out = format!(
                    "{file}: {} problem{}\n",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                for e in errors {
                    let path = if e.path.is_empty() { "/" } else { &e.path };
                    out.push_str(&format!("  {path}\n    {} {}: {}\n", e.rule(), e.code, e.message));
                    if e.rule() != Rule::Schema {
                        out.push_str(&format!("    see {}\n", e.rule().source()));
                    }
                }
                out
            }
        }
    }

    pub fn to_json(&self) -> String {
        let value = match self {
            Report::Clean { file } => serde_json::json!({ "file": file, "ok": true, "problems": [] }),
            Report::Unusable { file, reason } => {
                serde_json::json!({ "file": file, "ok": false, "error": reason, "problems": [] })
            }
            Report::Problems { file, errors } => serde_json::json!({
                "file": file,
                "ok": false,
                "problems": errors.iter().map(|e| serde_json::json!({
                    "path": e.path,
                    "code": e.code.as_str(),
                    "rule": e.rule().id(),
                    "source": e.rule().source(),
                    "message": e.message,
                })).collect::<Vec<_>>(),
            }),
        };
        format!("{value:#}\n")
    }
}
