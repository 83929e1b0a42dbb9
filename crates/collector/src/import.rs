//! `unticked import`: a shop's legacy contact list into the log, each contact tagged with
//! where it came from, and asked again (docs/import.md).
//!
//! Consent obtained before must meet today's standard or be asked for again (EDPB
//! Guidelines 05/2020 ¶104; R11), and a controller must be able to show where each consent
//! came from (Art. 7(1)). So an imported contact is never `given`: each row becomes one
//! record the collector signs (`"signer":"collector"`, source `import`, no purpose) stating
//! the contact's provenance as the shop gives it ([`Act::Imported`]). The state function
//! makes the contact's purposes `unconfirmed`, awaiting their answer, until the deadline
//! (`--answer-within-days`), then `expired` (crate::lifecycle, `consent::standing`). The
//! answer comes through the re-permission link (`--links`): the preference page, whose
//! answer is recorded as given or refused with the source `import`.
//!
//! The file is checked whole before anything is written: every bad row is reported by its
//! line, and then nothing is imported. A contact the log already knows is skipped (the log
//! already says more about them than a list can), which also makes running the same file
//! again safe.
//!
//! ```text
//! email,phone,source,collected_at
//! anna@example.lv,,order,2023-04-01
//! ,+37120000000,,
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use unticked_core::capture::{normalise_email, normalise_phone, Capture, Disclosure, SALT_LEN};
use unticked_core::config::{Channel, Config, Named, PREFERENCES};
use unticked_core::record::{self, Act, ConsentRecord, Signer, MAX_SAFE_INTEGER};
use unticked_core::vocabulary::{Provenance, Source};

use crate::error::{unavailable, Refusal};
use crate::lifecycle::{self, LinkKind, COLLECTOR_WIDGET};
use crate::records::{open_delivery, Accepted, Arrival};
use crate::state::Collector;
use crate::store::{Appended, Store};

/// What `unticked import` is given.
pub struct Options {
    pub db: crate::db::Location,
    /// `--key`: the log's key file, as `serve --key` is given it; `None` is `<db>.key`.
    pub key: Option<PathBuf>,
    pub config: PathBuf,
    pub source: Provenance,
    pub file: PathBuf,
    /// Days an imported contact has to answer before the import expires.
    pub answer_within_days: u32,
    pub links: Option<PathBuf>,
    /// The collector's own origin (`serve --public-origin`): where the links point, and the
    /// page the import's records name.
    pub public_origin: String,
}

/// The longest an import waits for answers: a year, as long as a link works
/// ([`lifecycle::LINK_LIFETIME`]).
pub const MAX_ANSWER_DAYS: u32 = 365;

const DAY_MS: u64 = 86_400_000;

/// The channels the config's purposes reach a contact of each kind on: an imported address
/// is asked about the e-mail purposes, an imported number about the SMS and phone ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub email: Vec<Channel>,
    pub phone: Vec<Channel>,
}

impl Reach {
    pub fn of(config: &Config) -> Reach {
        let on = |channels: &[Channel]| {
            channels
                .iter()
                .copied()
                .filter(|c| config.purposes.iter().any(|p| p.channel == *c))
                .collect()
        };
        Reach {
            email: on(&[Channel::Email]),
            phone: on(&[Channel::Sms, Channel::Phone]),
        }
    }
}

/// A row that passed every check: its contacts normalised (as the widget writes them, so
/// the subject index finds them), its provenance and collection time (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub provenance: Provenance,
    pub collected_at: Option<u64>,
}

impl Row {
    /// The row's contacts, each with the channels it is asked about.
    fn contacts<'r>(&'r self, reach: &'r Reach) -> impl Iterator<Item = (&'r str, &'r [Channel])> {
        let email = self.email.as_deref().map(|e| (e, reach.email.as_slice()));
        let phone = self.phone.as_deref().map(|p| (p, reach.phone.as_slice()));
        email.into_iter().chain(phone)
    }
}

/// A problem with the file, on a line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub problem: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// The columns read; any other is left alone, and nothing of it is kept (Art. 5(1)(c)).
struct Columns {
    email: Option<usize>,
    phone: Option<usize>,
    source: Option<usize>,
    collected_at: Option<usize>,
    count: usize,
}

fn columns(header: &csv::ByteRecord, reach: &Reach) -> Result<Columns, Vec<BadRow>> {
    let bad = |problem: String| BadRow { line: 1, problem };
    let mut problems = Vec::new();
    let mut found: HashMap<&'static str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
        let Some(known) = ["email", "phone", "source", "collected_at"]
            .into_iter()
            .find(|k| *k == name)
        else {
            continue;
        };
        if found.insert(known, i).is_some() {
            problems.push(bad(format!("the column \"{known}\" appears twice")));
        }
    }
    let (email, phone) = (found.get("email").copied(), found.get("phone").copied());
    if email.is_none() && phone.is_none() {
        problems.push(bad(
            "the header names neither an \"email\" nor a \"phone\" column (the first line is the header)".into(),
        ));
    }
    if email.is_some() && reach.email.is_empty() {
        problems.push(bad(
            "the file has e-mail addresses, but the config has no purpose on the email channel to ask them about"
                .into(),
        ));
    }
    if phone.is_some() && reach.phone.is_empty() {
        problems.push(bad(
            "the file has phone numbers, but the config has no purpose on the sms or phone channel to ask them about"
                .into(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Columns {
        email,
        phone,
        source: found.get("source").copied(),
        collected_at: found.get("collected_at").copied(),
        count: header.len(),
    })
}

/// `collected_at` as an RFC 3339 `full-date` (midnight UTC) or `date-time` (with its
/// offset), in ms since the epoch: not before 1970, not after `now_ms`.
pub fn read_collected_at(text: &str, now_ms: u64) -> Result<u64, String> {
    use time::format_description::well_known::Rfc3339;
    let at = if text.len() == 10 {
        time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
            .map(|date| date.midnight().assume_utc())
    } else {
        time::OffsetDateTime::parse(text, &Rfc3339)
    };
    let at = at.map_err(|_| {
        format!(
            "collected_at \"{text}\" is not an RFC 3339 date (2023-04-01) or date-time with its offset (2023-04-01T10:00:00Z)"
        )
    })?;
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    if ms < 0 {
        return Err(format!("collected_at \"{text}\" is before 1970"));
    }
    let ms = ms as u64;
    if ms > now_ms {
        return Err(format!("collected_at \"{text}\" is in the future"));
    }
    Ok(ms)
}

/// Reads and checks the whole file: every row valid, or every problem found, each on its
/// line. `default` is `--source`, for rows without a `source` of their own; `now_ms` is
/// what `collected_at` may not be after.
///
/// # Errors
/// Every bad row (and header problem), in line order.
pub fn read_rows(bytes: &[u8], default: Provenance, reach: &Reach, now_ms: u64) -> Result<Vec<Row>, Vec<BadRow>> {
    // Spreadsheets save UTF-8 with a byte order mark.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header = reader.byte_headers().map_err(|e| {
        vec![BadRow {
            line: 1,
            problem: format!("not a CSV header: {e}"),
        }]
    })?;
    let columns = columns(&header.clone(), reach)?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    // Each contact's first line, by the form the subject index is keyed by: one spelling of
    // an address or another, it is one subject (crate::store::lookup_form).
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    let mut record = csv::ByteRecord::new();
    let mut next_line = 2;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(next_line, csv::Position::line);
                problems.push(BadRow {
                    line,
                    problem: format!("not CSV: {e}"),
                });
                // An unreadable byte stream (a quote never closed) has no next row to read.
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                ) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(next_line, csv::Position::line);
        next_line = line + 1;
        match read_row(&record, line, &columns, default, now_ms) {
            Ok(row) => {
                let mut duplicate = false;
                for contact in row.email.iter().chain(&row.phone) {
                    match first_seen.entry(crate::store::lookup_form(contact)) {
                        std::collections::hash_map::Entry::Occupied(earlier) => {
                            problems.push(BadRow {
                                line,
                                problem: format!("{contact} is on line {} already", earlier.get()),
                            });
                            duplicate = true;
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(line);
                        }
                    }
                }
                if !duplicate {
                    rows.push(row);
                }
            }
            Err(mut bad) => problems.append(&mut bad),
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

fn read_row(
    record: &csv::ByteRecord,
    line: u64,
    columns: &Columns,
    default: Provenance,
    now_ms: u64,
) -> Result<Row, Vec<BadRow>> {
    let mut problems = Vec::new();
    let mut bad = |problem: String| problems.push(BadRow { line, problem });
    if record.len() != columns.count {
        bad(format!("{} fields, but the header has {}", record.len(), columns.count));
    }
    let cell = |column: Option<usize>| -> Result<Option<&str>, String> {
        let Some(bytes) = column.and_then(|i| record.get(i)) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "not UTF-8 text".to_string())?
            .trim();
        Ok((!text.is_empty()).then_some(text))
    };
    let mut read = |column: Option<usize>| match cell(column) {
        Ok(value) => value,
        Err(problem) => {
            bad(problem);
            None
        }
    };
    let (email, phone, source, collected_at) = (
        read(columns.email),
        read(columns.phone),
        read(columns.source),
        read(columns.collected_at),
    );
    let email = email.and_then(|raw| {
        let normal = normalise_email(raw);
        if normal.is_none() {
            bad(format!("\"{raw}\" is not an e-mail address"));
        }
        normal
    });
    let phone = phone.and_then(|raw| {
        // No country is guessed from the shop's language: a number from a list is in
        // international form, or it is not taken.
        let normal = normalise_phone(raw, "");
        if normal.is_none() {
            bad(format!(
                "\"{raw}\" is not a phone number in international form (+371 2000 0000, or 00371 2000 0000)"
            ));
        }
        normal
    });
    if email.is_none() && phone.is_none() && columns_empty(record, columns) {
        bad("neither an e-mail address nor a phone number".into());
    }
    let provenance = match source {
        None => default,
        Some(name) => <Provenance as Named>::from_name(&name.to_ascii_lowercase()).unwrap_or_else(|| {
            bad(format!(
                "source \"{name}\" is not one of {}",
                <Provenance as Named>::NAMES.join(", ")
            ));
            default
        }),
    };
    let collected_at = collected_at.and_then(|text| match read_collected_at(text, now_ms) {
        Ok(ms) => Some(ms),
        Err(problem) => {
            bad(problem);
            None
        }
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Row {
        line,
        email,
        phone,
        provenance,
        collected_at,
    })
}

/// Whether the row's contact cells are both empty (as opposed to holding something that is
/// not a contact, which is reported as such).
fn columns_empty(record: &csv::ByteRecord, columns: &Columns) -> bool {
    [columns.email, columns.phone]
        .into_iter()
        .flatten()
        .all(|i| record.get(i).is_none_or(|b| b.iter().all(u8::is_ascii_whitespace)))
}

/// `--public-origin` as a record's `page.origin` holds it: `http(s)://host[:port]`, without
/// a path or a trailing slash.
///
/// # Errors
/// What is wrong with it.
pub fn read_public_origin(text: &str) -> Result<String, String> {
    let origin = text.trim_end_matches('/');
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match authority {
        Some(a) if !a.is_empty() && !a.contains(['/', '?', '#', '@', ' ']) => Ok(origin.to_string()),
        _ => Err(format!(
            "--public-origin \"{text}\" is not an origin such as https://consent.shop.example (the one `unticked serve --public-origin` is given)"
        )),
    }
}

fn random<const N: usize>() -> Result<[u8; N], Refusal> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| unavailable(format!("no randomness: {e}")))?;
    Ok(bytes)
}

/// The record of one imported row, checked as every record is (crate::records): its
/// contacts `(identifier, channels)`, each disclosed beside it on each channel with a fresh
/// salt (R10), so the subject index finds them and their erasure erases them.
fn record_of(
    collector: &Collector,
    contacts: &[(&str, &[Channel])],
    act: Act,
    now_ms: u64,
) -> Result<Accepted, Refusal> {
    let config = &collector.config;
    let record = ConsentRecord {
        beside: Vec::new(),
        id: record::record_id(now_ms, random()?),
        captured_at: now_ms,
        form: PREFERENCES.to_string(),
        source: Source::Import,
        locale: config.default_locale.clone(),
        page_origin: collector.lifecycle.public_origin.clone(),
        page_path: "/import".to_string(),
        notice_url: config.privacy_notice.url.clone(),
        notice_version: config.privacy_notice.version.clone(),
        config_sha256: collector.config_sha256().to_string(),
        widget: COLLECTOR_WIDGET.to_string(),
        purposes: Vec::new(),
        subjects: Vec::new(),
        signer: Signer::Collector,
        act: Some(act),
    };
    let mut disclosures = Vec::new();
    for (identifier, channels) in contacts {
        for channel in *channels {
            disclosures.push(Disclosure {
                channel: *channel,
                identifier: identifier.to_string(),
                salt: random::<SALT_LEN>()?,
            });
        }
    }
    let capture = Capture::new(record, Vec::new(), disclosures, None);
    let body = crate::bench::seal_with(&capture, collector.store.public_key().as_bytes(), |message| {
        collector.store.sign(message)
    });
    let arrival = Arrival {
        now_ms,
        writers: &collector.writers,
        origin: None,
    };
    open_delivery(body.as_bytes()).and_then(|delivery| delivery.check_as_served(collector, &arrival))
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub rows: usize,
    /// Records appended, one per row with a contact new to the log.
    pub records: usize,
    pub contacts: usize,
    /// Contacts the log knew already, not imported again.
    pub known: usize,
    /// `(identifier, channel, token)` of each contact awaiting an answer, when links were
    /// asked for.
    pub links: Vec<(String, Channel, String)>,
}

/// Why an import stopped after its file was found valid.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "a record made for line {line} failed the collector's own checks ({code}: {message}); nothing was imported"
    )]
    Check {
        line: u64,
        code: &'static str,
        message: String,
    },
    #[error("{done} of {total} records were stored, then: {why}; run the same import again: the contacts stored are skipped")]
    Append { done: usize, total: usize, why: String },
    #[error("{0}")]
    Store(String),
}

/// Imports `rows` through `collector`: every record made and checked first, then appended
/// as serve appends (group commits with one checkpoint each), then a link for each contact
/// of the file that awaits an answer, when `links` is set.
///
/// # Errors
/// A record that fails its checks (before anything is written), or storage failing.
pub async fn import(collector: &Arc<Collector>, rows: &[Row], until: u64, links: bool) -> Result<Outcome, ImportError> {
    let reach = Reach::of(&collector.config);
    let now = now_ms();
    let mut outcome = Outcome {
        rows: rows.len(),
        ..Outcome::default()
    };
    let mut accepted = Vec::with_capacity(rows.len());
    // Contacts to send a link to: the new ones, and those known that still await an answer.
    let mut asked: Vec<(String, Channel)> = Vec::new();
    for row in rows {
        let mut new: Vec<(&str, &[Channel])> = Vec::new();
        for (identifier, channels) in row.contacts(&reach) {
            let known = !collector
                .store
                .subject(identifier)
                .map_err(|e| ImportError::Store(e.to_string()))?
                .is_empty();
            if known {
                outcome.known += 1;
                if links && still_awaits_answer(collector, identifier)? {
                    asked.push((identifier.to_string(), channels[0]));
                }
            } else {
                new.push((identifier, channels));
                if links {
                    asked.push((identifier.to_string(), channels[0]));
                }
            }
        }
        if new.is_empty() {
            continue;
        }
        let act = Act::Imported {
            provenance: row.provenance,
            collected_at: row.collected_at,
            until,
        };
        let checked = record_of(collector, &new, act, now).map_err(|refusal| ImportError::Check {
            line: row.line,
            code: refusal.code.as_str(),
            message: refusal.message.clone(),
        })?;
        outcome.contacts += new.len();
        accepted.push(checked);
    }
    let total = accepted.len();
    let mut pending = accepted.into_iter();
    // As many at once as the store's writer commits in one transaction: it groups what is
    // queued (crate::store), so each group costs one fsync and one checkpoint.
    loop {
        let mut group = tokio::task::JoinSet::new();
        for one in pending.by_ref().take(512) {
            let collector = collector.clone();
            group.spawn(async move { collector.append(one).await });
        }
        if group.is_empty() {
            break;
        }
        while let Some(appended) = group.join_next().await {
            let why = match appended {
                Ok(Ok(Appended::New(_))) => {
                    outcome.records += 1;
                    continue;
                }
                Ok(Ok(Appended::Existing(_) | Appended::Conflict)) => "a record id was taken".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            return Err(ImportError::Append {
                done: outcome.records,
                total,
                why,
            });
        }
    }
    if links {
        let tokens = lifecycle::mint_links_for(collector, LinkKind::Preferences, &asked)
            .map_err(|refusal| ImportError::Store(refusal.message.clone()))?;
        outcome.links = asked
            .into_iter()
            .zip(tokens)
            .map(|((identifier, channel), token)| (identifier, channel, token))
            .collect();
    }
    Ok(outcome)
}

/// Whether a contact the log knows still awaits its answer to an import.
fn still_awaits_answer(collector: &Collector, identifier: &str) -> Result<bool, ImportError> {
    let history = lifecycle::history(collector, identifier).map_err(|r| ImportError::Store(r.message.clone()))?;
    Ok(lifecycle::standing(collector, &history)
        .iter()
        .any(|s| lifecycle::awaits_answer(&s.now)))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes the links file: `email,phone,link`, one line per contact, for a mailing tool to
/// merge. Written beside its final name and renamed, readable by its owner only: it names
/// contacts, and each link opens their preferences.
fn write_links(path: &Path, public_origin: &str, links: &[(String, Channel, String)]) -> std::io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    let partial = PathBuf::from(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&partial)?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file));
    writer.write_record(["email", "phone", "link"])?;
    for (identifier, channel, token) in links {
        let link = format!("{public_origin}/preferences/{token}");
        let (email, phone) = match channel {
            Channel::Email => (identifier.as_str(), ""),
            _ => ("", identifier.as_str()),
        };
        writer.write_record([email, phone, link.as_str()])?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

/// A time in ms as its UTC date.
fn date_of(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// `unticked import`. Exit 0 when imported, 1 (and nothing imported) when the file has bad
/// rows, 2 when it cannot run: an unreadable file or config, a log in use by `serve`, a
/// store that fails.
pub fn main(options: Options) -> ExitCode {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let fail = |why: &dyn std::fmt::Display| {
        eprintln!("unticked import: {why}");
        ExitCode::from(2)
    };
    if !(1..=MAX_ANSWER_DAYS).contains(&options.answer_within_days) {
        return fail(&format!(
            "--answer-within-days is 1 to {MAX_ANSWER_DAYS} (a link works for a year)"
        ));
    }
    let public_origin = match read_public_origin(&options.public_origin) {
        Ok(origin) => origin,
        Err(why) => return fail(&why),
    };
    let crate::compile::Source { text, config, compiled } = match crate::compile::read_source(&options.config) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("{e}");
            return fail(&"refusing to import under an invalid config");
        }
    };
    let bytes = match std::fs::read(&options.file) {
        Ok(bytes) => bytes,
        Err(e) => return fail(&format!("{}: {e}", options.file.display())),
    };
    let started = std::time::Instant::now();
    let now = now_ms();
    let reach = Reach::of(&config);
    let rows = match read_rows(&bytes, options.source, &reach, now) {
        Ok(rows) => rows,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{}: {problem}", options.file.display());
            }
            eprintln!(
                "unticked import: {} problem{} in {}; nothing was imported",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                options.file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if let Some(links) = &options.links {
        // Before anything is written: a links file that cannot be written is found now.
        if let Err(e) = write_links(links, &public_origin, &[]) {
            return fail(&format!("--links {}: {e}", links.display()));
        }
    }
    if let Some(key) = &options.key {
        // As serve: a key given is read, never made, and checked before the log is created.
        if let Err(e) = crate::store::Keys::load(key) {
            return fail(&format!("--key {}: {e}", key.display()));
        }
    }
    // A SQLite file has one writer at a time (crate::lock); PostgreSQL sequences in the
    // database, so an import runs beside the collectors serving the log.
    let log_lock = match options.db.file().map(crate::lock::hold).transpose() {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    let store = match Store::open_at(
        &options.db,
        options.key.as_deref(),
        &crate::texts::Shown::compiled(&compiled),
    ) {
        Ok(store) => store,
        Err(e) => return fail(&format!("cannot open the log {}: {e}", options.db)),
    };
    // The records name this config: kept, as serve keeps the one it serves, so that what
    // they were made under can be shown (crate::history).
    let config_sha256 = compiled.site.config_sha256.clone();
    if let Err(e) = store.config_served(&config_sha256, &text, now) {
        return fail(&format!("cannot record the config in {}: {e}", options.db));
    }
    let closing = store.clone();
    let mut writers = config.origins.clone();
    writers.push(public_origin.clone());
    let collector = Collector::new(
        config,
        &config_sha256,
        store,
        None,
        crate::limit::Limits::default(),
        crate::http::Writers::new(&writers),
        lifecycle::Settings {
            public_origin: public_origin.clone(),
            account_secret: None,
        },
        crate::settings::ServerSettings::default(),
    );
    let until = now + u64::from(options.answer_within_days) * DAY_MS;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let imported = runtime.block_on(import(
        &collector,
        &rows,
        until.min(MAX_SAFE_INTEGER),
        options.links.is_some(),
    ));
    drop(collector);
    let code = match imported {
        Err(e) => fail(&e),
        Ok(outcome) => {
            let seconds = started.elapsed().as_secs_f64();
            // Counts only: no contact in the output (the file has them).
            println!(
                "unticked import: {} rows: {} contacts imported in {} records, {} already in the log (skipped)",
                outcome.rows, outcome.contacts, outcome.records, outcome.known
            );
            if outcome.contacts > 0 {
                println!(
                    "unticked import: unconfirmed until answered; unanswered, they expire on {} ({} days)",
                    date_of(until),
                    options.answer_within_days
                );
            }
            let mut code = ExitCode::SUCCESS;
            if let Some(path) = &options.links {
                match write_links(path, &public_origin, &outcome.links) {
                    Ok(()) => println!(
                        "unticked import: {} re-permission links written to {}",
                        outcome.links.len(),
                        path.display()
                    ),
                    Err(e) => {
                        eprintln!(
                            "unticked import: the contacts are imported, but --links {}: {e}; run the same import again with --links to mint their links again",
                            path.display()
                        );
                        code = ExitCode::from(2);
                    }
                }
            }
            println!(
                "unticked import: {} rows in {seconds:.1} s ({:.0} rows/s)",
                outcome.rows,
                outcome.rows as f64 / seconds.max(1e-9)
            );
            code
        }
    };
    drop(runtime);
    // Fold the WAL into the database, as serve does when it stops.
    if let Err(e) = closing.close() {
        eprintln!("unticked import: the log was not checkpointed ({e}); its WAL is replayed on the next start");
    }
    if let Some(lock) = log_lock {
        lock.release();
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn reach() -> Reach {
        Reach {
            email: vec![Channel::Email],
            phone: vec![Channel::Sms, Channel::Phone],
        }
    }

    fn read(text: &str) -> Result<Vec<Row>, Vec<String>> {
        read_rows(text.as_bytes(), Provenance::Unknown, &reach(), NOW)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn columns_in_any_order_contacts_normalised_and_sources_per_row() {
        let rows = read(
            "\u{feff}Phone,collected_at,EMAIL,name,source\n\
             ,2023-04-01,Anna@Example.LV,Anna,order\n\
             00371 2000 0000,2024-01-02T10:00:00+02:00,,Jan,\n",
        )
        .unwrap();
        assert_eq!(
            rows,
            [
                Row {
                    line: 2,
                    email: Some("anna@example.lv".into()),
                    phone: None,
                    provenance: Provenance::Order,
                    collected_at: Some(1_680_307_200_000),
                },
                Row {
                    line: 3,
                    email: None,
                    phone: Some("+37120000000".into()),
                    provenance: Provenance::Unknown,
                    collected_at: Some(1_704_182_400_000),
                },
            ]
        );
    }

    #[test]
    fn every_bad_row_is_named_by_its_line() {
        let problems = read(
            "email,phone,source,collected_at\n\
             anna@example.lv,,,\n\
             foo@,,,\n\
             ,29123456,,\n\
             ,,,\n\
             jan@example.lv,,shop,\n\
             mara@example.lv,,,2023-13-01\n\
             ANNA@example.lv,,,\n\
             \"anna@example.lv\",+37120000000,,\n\
             ilze@example.lv,,,2999-01-01\n\
             ilze@example.lv,,\n",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "line 3: \"foo@\" is not an e-mail address",
                "line 4: \"29123456\" is not a phone number in international form (+371 2000 0000, or 00371 2000 0000)",
                "line 5: neither an e-mail address nor a phone number",
                "line 6: source \"shop\" is not one of order, newsletter, popup, contest, unknown",
                "line 7: collected_at \"2023-13-01\" is not an RFC 3339 date (2023-04-01) or date-time with its offset (2023-04-01T10:00:00Z)",
                "line 8: anna@example.lv is on line 2 already",
                "line 9: anna@example.lv is on line 2 already",
                "line 10: collected_at \"2999-01-01\" is in the future",
                "line 11: 3 fields, but the header has 4",
            ]
        );
    }

    #[test]
    fn lines_are_counted_in_the_file_across_quoted_line_breaks() {
        let problems = read("name,email\n\"Anna\nOzola\",anna@example.lv\n\"Jan\",jan@\n").unwrap_err();
        assert_eq!(problems, ["line 4: \"jan@\" is not an e-mail address"]);
    }

    #[test]
    fn a_header_without_contacts_or_a_channel_to_ask_on_is_refused() {
        assert_eq!(
            read("name,source\nAnna,order\n").unwrap_err(),
            ["line 1: the header names neither an \"email\" nor a \"phone\" column (the first line is the header)"]
        );
        let no_phone = Reach {
            email: vec![Channel::Email],
            phone: vec![],
        };
        let problems = read_rows(b"email,phone,email\n", Provenance::Unknown, &no_phone, NOW).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].problem.contains("\"email\" appears twice"));
        assert!(problems[1].problem.contains("no purpose on the sms or phone channel"));
    }

    #[test]
    fn collected_at_is_an_rfc_3339_date_or_date_time_in_the_past() {
        assert_eq!(read_collected_at("1970-01-01", NOW), Ok(0));
        assert_eq!(read_collected_at("2023-04-01T00:00:00Z", NOW), Ok(1_680_307_200_000));
        assert_eq!(
            read_collected_at("2023-04-01T02:00:00.5+02:00", NOW),
            Ok(1_680_307_200_500)
        );
        for bad in [
            "2023-04-01T10:00:00",
            "01.04.2023",
            "2023-4-1",
            "yesterday",
            "1969-12-31",
        ] {
            assert!(read_collected_at(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_public_origin_is_scheme_host_and_port() {
        assert_eq!(
            read_public_origin("https://consent.shop.example/").as_deref(),
            Ok("https://consent.shop.example")
        );
        assert!(read_public_origin("http://127.0.0.1:8080").is_ok());
        for bad in ["consent.shop.example", "https://", "https://x/preferences", "ftp://x"] {
            assert!(read_public_origin(bad).is_err(), "{bad}");
        }
    }
}
