//! `unticked build`: a linted `consent.json` compiled into what the widget loads
//! (`unticked_core::compiled`), under `<out>/c/<sha256 of the config's text>/`. `unticked
//! serve` does the same into `<www>/pkg` at start, so the widget and the collector read one
//! artifact.

use std::path::{Path, PathBuf};

use unticked_core::compiled::{self, Compiled};
use unticked_core::config::Config;

use crate::lint::{self, Report};
use crate::texts::sha256_hex;

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The config fails `unticked lint` (the report, as lint prints it).
    #[error("{report}unticked build: the config breaks the rules, so nothing was written")]
    Lint { report: String, exit: u8 },
    #[error("unticked build: cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl CompileError {
    /// The exit code: lint's (1 rule violations, 2 unreadable), or 2 for a write failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CompileError::Lint { exit, .. } => *exit,
            CompileError::Write { .. } => 2,
        }
    }
}

/// The SHA-256 by which the widget finds a config's compiled form: of the config's text as
/// `Response.text()` gives it to the widget, so without a byte order mark (WHATWG Encoding,
/// "UTF-8 decode").
pub fn config_sha256(text: &str) -> String {
    sha256_hex(text.strip_prefix('\u{feff}').unwrap_or(text).as_bytes())
}

/// The config at `path`, linted and compiled; nothing when it fails the linter. Read and
/// parsed once: lint's report is made only for a config that fails.
pub fn compile_file(path: &Path) -> Result<(Config, Compiled), CompileError> {
    read_source(path).map(|source| (source.config, source.compiled))
}

/// A linted config with the text it was read from, as `unticked serve` keeps it in its
/// history of configs (crate::history).
pub struct Source {
    /// The file's text without a byte order mark: the text `compiled.site.config_sha256` is
    /// the SHA-256 of ([`config_sha256`]).
    pub text: String,
    pub config: Config,
    pub compiled: Compiled,
}

/// [`compile_file`], keeping the text.
pub fn read_source(path: &Path) -> Result<Source, CompileError> {
    let refused = |report: Report| CompileError::Lint {
        report: report.to_text(),
        exit: report.exit_code(),
    };
    let text = std::fs::read_to_string(path).map_err(|e| refused(Report::unreadable(path, &e)))?;
    let config = Config::from_json(&text).map_err(|_| refused(lint::lint_text(path.display().to_string(), &text)))?;
    let compiled = compiled::compile(&config, &config_sha256(&text));
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    };
    Ok(Source { text, config, compiled })
}

/// Writes `compiled` to `<out>/c/<sha256>/` and returns that directory. The files go to a
/// fresh directory that is renamed into place, so a widget never reads half a build. A
/// directory already holding exactly these files is left as it is (collectors started
/// together over one web root, a second `unticked build`); one holding other files (an older
/// `unticked`'s build of the same config) is replaced.
pub fn write(compiled: &Compiled, out: &Path) -> Result<PathBuf, CompileError> {
    let parent = out.join(compiled::DIR);
    let dir = parent.join(&compiled.site.config_sha256);
    let files = compiled.files();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CompileError::Write { path, source }
    };
    for _ in 0..3 {
        if holds(&dir, &files) {
            return Ok(dir);
        }
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".building-")
            .tempdir_in(&parent)
            .map_err(io(&parent))?;
        for (name, text) in &files {
            let path = staging.path().join(name);
            std::fs::write(&path, text).map_err(io(&path))?;
        }
        // World-readable like any static file (the staging directory is created 0700).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(io(staging.path()))?;
        }
        if dir.exists() {
            // Moved aside rather than deleted in place, so that the swap is two renames.
            let old = tempfile::Builder::new()
                .prefix(".old-")
                .tempdir_in(&parent)
                .map_err(io(&parent))?;
            if std::fs::rename(&dir, old.path().join("build")).is_err() {
                continue; // another writer moved it first
            }
        }
        let staged = staging.keep();
        if std::fs::rename(&staged, &dir).is_ok() {
            return Ok(dir);
        }
        // Another writer put its build in place first: ours goes.
        let _ = std::fs::remove_dir_all(&staged);
    }
    if holds(&dir, &files) {
        return Ok(dir);
    }
    Err(CompileError::Write {
        path: dir,
        source: std::io::Error::other("other writers kept replacing it"),
    })
}

/// Whether `dir` holds exactly `files`.
fn holds(dir: &Path, files: &[(String, String)]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.count() == files.len()
        && files
            .iter()
            .all(|(name, text)| std::fs::read_to_string(dir.join(name)).is_ok_and(|found| found == *text))
}

/// `unticked build FILE --out DIR`.
pub fn main(config: &Path, out: &Path) -> std::process::ExitCode {
    let result = compile_file(config).and_then(|(_, compiled)| {
        let dir = write(&compiled, out)?;
        Ok((dir, compiled.sheets.len()))
    });
    match result {
        Ok((dir, sheets)) => {
            println!(
                "unticked build: {} → {} ({sheets} sheets: every form in every locale)",
                config.display(),
                dir.display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unticked_core::compiled::{Rendered, Site, SITE_FILE};

    const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json");

    #[test]
    fn a_build_writes_a_site_and_a_sheet_per_form_and_locale_that_the_widgets_reader_reads() {
        let out = tempfile::tempdir().unwrap();
        let (config, compiled) = compile_file(Path::new(DEMO)).unwrap();
        let dir = write(&compiled, out.path()).unwrap();
        let sha = config_sha256(&std::fs::read_to_string(DEMO).unwrap());
        assert_eq!(dir, out.path().join("c").join(&sha));
        let site = Site::from_json(&std::fs::read_to_string(dir.join(SITE_FILE)).unwrap(), &sha).unwrap();
        assert_eq!(site.forms.len(), config.forms.len());
        for form in &config.forms {
            for locale in &config.locales {
                let name = compiled::sheet_name(&form.kind, locale);
                let text = std::fs::read_to_string(dir.join(&name)).unwrap();
                let sheet = Rendered::from_json(&text, &sha, &form.kind, locale).unwrap();
                assert_eq!(&sheet, compiled.sheet(&form.kind, locale).unwrap(), "{name}");
            }
        }
        // Nothing else: no staging directory left behind.
        let entries: Vec<_> = std::fs::read_dir(out.path().join("c")).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn writers_at_once_all_succeed_and_leave_one_whole_build() {
        let out = tempfile::tempdir().unwrap();
        let (_, compiled) = compile_file(Path::new(DEMO)).unwrap();
        // A build by an older `unticked`: replaced.
        let dir = out.path().join("c").join(&compiled.site.config_sha256);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(SITE_FILE), "{}").unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| write(&compiled, out.path()).unwrap());
            }
        });
        assert!(holds(&dir, &compiled.files()));
        let left: Vec<_> = std::fs::read_dir(out.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| !n.to_string_lossy().starts_with(".old-"))
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn a_config_that_fails_the_linter_produces_nothing() {
        let out = tempfile::tempdir().unwrap();
        let bad = out.path().join("consent.json");
        let text = std::fs::read_to_string(DEMO)
            .unwrap()
            .replace("\"channel\": \"email\"", "\"channel\": \"emial\"");
        std::fs::write(&bad, text).unwrap();
        let err = compile_file(&bad).err().expect("a channel typo is refused");
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("emial"), "{err}");
        assert!(!out.path().join("c").exists());
    }

    #[test]
    fn the_hash_is_of_the_text_the_browser_reads() {
        assert_eq!(config_sha256("\u{feff}{}"), config_sha256("{}"));
        assert_ne!(config_sha256("{}\n"), config_sha256("{}"));
    }
}
