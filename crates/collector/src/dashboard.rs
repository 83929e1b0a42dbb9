//! The console's dashboard (issue 17, item 4): how the shop's forms are doing, by UTC day,
//! drawn as SVG by the server (no script, no inline style: the console's strict CSP), each
//! chart a `<figure>` with its numbers in a real `<table>` for whoever cannot see it.
//!
//! ```text
//! let words = console_words.dashboard; // console/<language>.json, `dashboard`
//! let html = dashboard_html(&collector, &words, 30)?; // a fragment for /admin/dashboard
//! ```
//!
//! One pass over the log, page by page ([`crate::store::Store::dated_entries`]), folds the
//! records into a [`Tally`] (only those of the days shown are read, by [`Seen::read`]: about
//! 0.8 s for 10⁵ records in release on two cores); the violation reports come per day from
//! their own table ([`crate::store::Store::violation_days`]). What is counted, precisely:
//!
//! - **Day**: the UTC day the collector *received* the record (`received_at`, the
//!   collector's clock, which the checkpoint covering the record signs), not `captured_at`:
//!   that is the shopper's clock, which may be wrong by days and is accepted up to 400 days
//!   back (an outbox delivering late). The log size and the violation reports are counted by
//!   the collector's clock too, so every chart shares one axis.
//! - **Shown**: a purpose entry of a record *captured at one of the shop's forms*
//!   ([`shown_at_a_form`]): signed by the shopper's browser, with no step of the
//!   collector's, from a form of the config other than the preferences form, and from any
//!   source but the account page (so checkout, newsletter, popup, contest, store: whatever
//!   source the site owner's form records). The account page's and the collector's
//!   preference pages show a subject's standing choices ticked, one-click unsubscribes,
//!   imports, phone consents, confirmations and rectifications are not a form shown to a
//!   shopper, and would skew the rate.
//! - **Given**: a shown entry whose state is `given` or `renewed` (a tick where consent was
//!   asked again records `renewed`, R11). The rate is given ÷ shown; per form and per
//!   language every purpose shown counts once.
//! - **Withdrawals**: purpose entries whose state is `withdrawn`, on any path (preference
//!   page, unsubscribe link, account page, phone).
//! - **Outdated**: consents given (or renewed) that day, on any path, under a version of
//!   the purpose older than its version in the config served now (R11): consents the shop
//!   must ask for again, by the day they were given. A confirmation of a double opt-in is
//!   not counted again (its signup is); purposes the config no longer has are left out.
//! - **Log size**: records in the log at the end of each day; beside it the latest
//!   checkpoint (size, time, root).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use unticked_core::config::{Config, PREFERENCES};
use unticked_core::record::{self, Signer, State};
use unticked_core::vocabulary::Source;

use crate::error::{unavailable, Refusal};
use crate::pages::escape;
use crate::state::Collector;
use crate::store::{Checkpoint, ViolationDay, DAY_MS, VIOLATION_DAYS_KEPT};

/// The most days one dashboard shows: as many as the violation reports are kept per day.
pub(crate) const MAX_DAYS: u32 = VIOLATION_DAYS_KEPT as u32;

/// Records read from the log at once.
const PAGE: u64 = 1000;

/// Series drawn in one chart; past it the smallest are drawn together as "other".
const MAX_SERIES: usize = 8;

/// The series' colours where the console's stylesheet does not set them (the classes
/// `unticked-chart__series--0` … `--7`, `--other`): Okabe and Ito's palette, told apart
/// with colour blindness too.
const PALETTE: [&str; MAX_SERIES] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442",
];
const OTHER_COLOUR: &str = "#767676";

/// The dashboard's words: English by default ([`DashboardWords::english`]); the console
/// fills them from its translations. `{given}`, `{shown}`, `{percent}` and `{count}` are
/// replaced where they appear.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DashboardWords {
    /// Shown instead of the charts of records while the log holds none.
    pub empty: String,
    /// Shown instead of a chart that has nothing in the days shown.
    pub nothing: String,
    /// `{count}`: records in the log that no longer read (damage `unticked verify` names).
    pub unreadable: String,
    pub rate_purpose_title: String,
    pub rate_form_title: String,
    pub rate_locale_title: String,
    /// Under each rate chart: what given and shown mean.
    pub rate_caption: String,
    pub withdrawals_title: String,
    pub withdrawals_caption: String,
    pub outdated_title: String,
    pub outdated_caption: String,
    pub violations_title: String,
    pub violations_caption: String,
    pub log_title: String,
    pub log_caption: String,
    /// The series of the log size chart.
    pub log_series: String,
    pub checkpoint_title: String,
    pub checkpoint_size: String,
    pub checkpoint_time: String,
    pub checkpoint_root: String,
    /// Instead of the checkpoint's figures before the first one.
    pub no_checkpoint: String,
    /// `{given}` of `{shown}` (`{percent}`), a rate's value.
    pub rate_value: String,
    /// The series the smallest are drawn together in, past eight.
    pub other: String,
    /// The page of the violation reports past a day's cap of pages.
    pub other_pages: String,
    /// The summary of the disclosure that holds each chart's table.
    pub table_summary: String,
    pub col_day: String,
    pub col_kind: String,
    pub col_page: String,
    pub col_reports: String,
}

impl DashboardWords {
    /// The words in English: what `console/en.json` holds under `dashboard` (a console test
    /// checks the two agree), for the tests here.
    #[cfg(test)]
    pub(crate) fn english() -> DashboardWords {
        let s = |text: &str| text.to_string();
        DashboardWords {
            empty: s("No records yet: the charts appear once the first consent is recorded."),
            nothing: s("Nothing in these days."),
            unreadable: s("{count} stored records could not be read and are left out; run `unticked verify`."),
            rate_purpose_title: s("Consent rate per purpose"),
            rate_form_title: s("Consent rate per form"),
            rate_locale_title: s("Consent rate per language"),
            rate_caption: s(
                "Given ÷ shown per UTC day, by the day the collector received the record. Shown: each purpose \
                 of a record the shopper's browser signed at one of the shop's forms (checkout, newsletter, \
                 popup…). Given: those ticked (given or renewed). Preference pages, unsubscribe links, imports \
                 and phone consents are not counted.",
            ),
            withdrawals_title: s("Withdrawals"),
            withdrawals_caption: s(
                "Purposes withdrawn per UTC day, on any path: preference page, unsubscribe link, account page, phone.",
            ),
            outdated_title: s("Outdated consents"),
            outdated_caption: s(
                "Consents given each UTC day under a version of the purpose older than the one served now (R11): \
                 they are asked for again, unless renewed or withdrawn since.",
            ),
            violations_title: s("Violation reports"),
            violations_caption: s(
                "Reports per UTC day of what the widget found wrong on a shop page, per kind and page.",
            ),
            log_title: s("Log size"),
            log_caption: s("Records in the log at the end of each UTC day."),
            log_series: s("records"),
            checkpoint_title: s("Last checkpoint"),
            checkpoint_size: s("Records covered"),
            checkpoint_time: s("Signed at"),
            checkpoint_root: s("Root hash"),
            no_checkpoint: s("No checkpoint yet."),
            rate_value: s("{given} of {shown} ({percent})"),
            other: s("other"),
            other_pages: s("other pages"),
            table_summary: s("The numbers"),
            col_day: s("Day"),
            col_kind: s("Kind"),
            col_page: s("Page"),
            col_reports: s("Reports"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The numbers

/// The days a dashboard shows: `days` UTC days, the last of them today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The first day, in days since the epoch.
    pub first: u64,
    pub days: u32,
}

impl Window {
    /// The `days` days (1 to [`MAX_DAYS`]) up to the day of `now_ms`.
    pub(crate) fn ending(now_ms: u64, days: u32) -> Window {
        let days = days.clamp(1, MAX_DAYS);
        Window {
            first: (now_ms / DAY_MS + 1).saturating_sub(u64::from(days)),
            days,
        }
    }

    fn last(&self) -> u64 {
        self.first + u64::from(self.days) - 1
    }

    fn contains(&self, day: u64) -> bool {
        (self.first..=self.last()).contains(&day)
    }

    fn each(&self) -> impl Iterator<Item = u64> {
        self.first..=self.last()
    }
}

/// Given and shown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ratio {
    pub given: u64,
    pub shown: u64,
}

/// Per series, per day (days since the epoch).
pub(crate) type Daily<K, T> = BTreeMap<K, BTreeMap<u64, T>>;

/// The log and the violation reports folded into per-day figures over a [`Window`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    pub window: Window,
    pub by_purpose: Daily<String, Ratio>,
    pub by_form: Daily<String, Ratio>,
    pub by_locale: Daily<String, Ratio>,
    pub withdrawals: Daily<String, u64>,
    pub outdated: Daily<String, u64>,
    /// Per (kind, page); page `""` is the reports past a day's cap of pages.
    pub violations: Daily<(String, String), u64>,
    /// Records received before the window.
    pub earlier: u64,
    /// Records received on each day of the window.
    pub received: BTreeMap<u64, u64>,
    /// Records that no longer read: in the log size, and nowhere else.
    pub unreadable: u64,
}

impl Tally {
    pub(crate) fn new(window: Window) -> Tally {
        Tally {
            window,
            by_purpose: BTreeMap::new(),
            by_form: BTreeMap::new(),
            by_locale: BTreeMap::new(),
            withdrawals: BTreeMap::new(),
            outdated: BTreeMap::new(),
            violations: BTreeMap::new(),
            earlier: 0,
            received: BTreeMap::new(),
            unreadable: 0,
        }
    }

    /// The day a record received at `received_at` counts on, if it is in the window; a
    /// record received before it (or, by a clock set back, after it) counts only in the
    /// log's size.
    fn day_of(&mut self, received_at: Option<u64>) -> Option<u64> {
        let day = received_at.map(|at| at / DAY_MS).filter(|d| self.window.contains(*d));
        match day {
            Some(day) => *self.received.entry(day).or_default() += 1,
            None => self.earlier += 1,
        }
        day
    }

    /// Counts a record outside the window, unread: in the log's size only.
    pub(crate) fn add_uncharted(&mut self, received_at: Option<u64>) {
        self.day_of(received_at);
    }

    /// Counts a record that does not read: in the log's size only.
    pub(crate) fn add_unreadable(&mut self, received_at: Option<u64>) {
        self.day_of(received_at);
        self.unreadable += 1;
    }

    /// Whether a record received at `received_at` is charted at all (else only counted):
    /// a scan need not read the bytes of one that is not.
    pub(crate) fn charts(&self, received_at: Option<u64>) -> bool {
        received_at.is_some_and(|at| self.window.contains(at / DAY_MS))
    }

    /// Folds one record, received at `received_at` (ms), against the config served now.
    pub(crate) fn add(&mut self, config: &Config, received_at: Option<u64>, record: &Seen<'_>) {
        let Some(day) = self.day_of(received_at) else {
            return;
        };
        let shown = shown_at_a_form(record);
        for (id, version, state) in &record.purposes {
            let given = matches!(state, State::Given | State::Renewed);
            if shown {
                let add = |daily: &mut Daily<String, Ratio>, key: &str| {
                    let ratio = daily.entry(key.to_string()).or_default().entry(day).or_default();
                    ratio.shown += 1;
                    ratio.given += u64::from(given);
                };
                add(&mut self.by_purpose, id);
                add(&mut self.by_form, &record.form);
                add(&mut self.by_locale, &record.locale);
            }
            if *state == State::Withdrawn {
                count(&mut self.withdrawals, id.to_string(), day, 1);
            }
            let superseded = config.purpose(id).is_some_and(|p| *version < p.version);
            if given && superseded && record.act != Some(Step::Confirms) {
                count(&mut self.outdated, id.to_string(), day, 1);
            }
        }
    }

    /// Folds the violation reports per day; days outside the window are left out.
    pub(crate) fn add_violations(&mut self, rows: &[ViolationDay]) {
        for row in rows.iter().filter(|r| self.window.contains(r.day)) {
            count(
                &mut self.violations,
                (row.kind.clone(), row.page.clone()),
                row.day,
                row.count,
            );
        }
    }

    /// Records in the log at the end of each day of the window.
    pub(crate) fn log_size(&self) -> Vec<(u64, u64)> {
        let mut size = self.earlier;
        self.window
            .each()
            .map(|day| {
                size += self.received.get(&day).copied().unwrap_or(0);
                (day, size)
            })
            .collect()
    }

    /// Records read, in the window or not.
    pub(crate) fn records(&self) -> u64 {
        self.earlier + self.received.values().sum::<u64>()
    }
}

fn count<K: Ord>(daily: &mut Daily<K, u64>, key: K, day: u64, n: u64) {
    *daily.entry(key).or_default().entry(day).or_default() += n;
}

/// A step of the collector's that a record states ([`record::Act`]), by its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Confirms,
    Other,
}

/// What the dashboard counts of one record: its form, source, language, signer, step and
/// purposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen<'r> {
    pub form: Cow<'r, str>,
    pub source: Source,
    pub locale: Cow<'r, str>,
    pub signer: Signer,
    pub act: Option<Step>,
    /// `(id, version, state)`.
    pub purposes: Vec<(Cow<'r, str>, u32, State)>,
}

/// The members of a stored record that [`Seen`] reads; serde skips the rest.
#[derive(serde::Deserialize)]
struct Stored<'a> {
    v: u64,
    #[serde(borrow)]
    form: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    locale: Cow<'a, str>,
    #[serde(borrow, default)]
    signer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    purposes: Vec<StoredPurpose<'a>>,
    #[serde(default)]
    confirms: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    assisted: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    imported: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    rectifies: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct StoredPurpose<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    version: u32,
    #[serde(borrow)]
    state: Cow<'a, str>,
}

impl<'r> Seen<'r> {
    /// What a record shows (the scan reads stored bytes with [`Seen::read`] instead).
    #[cfg(test)]
    pub(crate) fn of(record: &'r record::ConsentRecord) -> Seen<'r> {
        Seen {
            form: Cow::Borrowed(&record.form),
            source: record.source,
            locale: Cow::Borrowed(&record.locale),
            signer: record.signer,
            act: record.act.as_ref().map(|act| match act {
                record::Act::Confirms(_) => Step::Confirms,
                _ => Step::Other,
            }),
            purposes: record
                .purposes
                .iter()
                .map(|p| (Cow::Borrowed(p.id.as_str()), p.version, p.state))
                .collect(),
        }
    }

    /// The counted members of stored record bytes, or `None` when they do not read as a
    /// record of this format: a name no record has (a state, a source, a signer) is never
    /// guessed. Stored records were opened and checked in full when they were stored, and
    /// `unticked verify` checks them again; this reads only what the dashboard counts, in
    /// about 3.5 µs a record against 40 to 55 µs for `record::read` (release, 10⁵ records),
    /// which a scan would otherwise spend on every page load.
    pub(crate) fn read(bytes: &'r str) -> Option<Seen<'r>> {
        use unticked_core::vocabulary::Named;
        let stored: Stored<'r> = serde_json::from_str(bytes).ok()?;
        if stored.v != record::FORMAT_VERSION {
            return None;
        }
        let signer = match stored.signer {
            // Left out by the browser (the format's rule, not a guess).
            None => Signer::Browser,
            Some(name) => <Signer as Named>::from_name(&name)?,
        };
        let steps = [
            (stored.confirms.is_some(), Step::Confirms),
            (stored.assisted.is_some(), Step::Other),
            (stored.imported.is_some(), Step::Other),
            (stored.rectifies.is_some(), Step::Other),
        ];
        let purposes = stored
            .purposes
            .into_iter()
            .map(|p| Some((p.id, p.version, <State as Named>::from_name(&p.state)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Seen {
            form: stored.form,
            source: Source::from_name(&stored.source)?,
            locale: stored.locale,
            signer,
            act: steps.iter().find(|(present, _)| *present).map(|(_, step)| *step),
            purposes,
        })
    }
}

/// Whether a record shows its purposes to a shopper at one of the shop's forms: signed by
/// the shopper's browser, no step of the collector's, from a config form other than the
/// preferences form, and not from the account page. See the module's documentation.
pub(crate) fn shown_at_a_form(record: &Seen<'_>) -> bool {
    record.signer == Signer::Browser
        && record.act.is_none()
        && record.form != PREFERENCES
        && !matches!(
            record.source,
            Source::Account | Source::Preferences | Source::Unsubscribe | Source::Import | Source::Phone
        )
}

/// Folds `records` (each with the time it was received, ms) and the violation reports per
/// day into a [`Tally`] over `window`, against the config served now: the whole fold in
/// one call, for records in hand (the tests'); [`scan`] folds the log page by page.
#[cfg(test)]
pub(crate) fn tally<'r>(
    records: impl IntoIterator<Item = (Option<u64>, &'r record::ConsentRecord)>,
    violations: &[ViolationDay],
    config: &Config,
    window: Window,
) -> Tally {
    let mut tally = Tally::new(window);
    for (received_at, record) in records {
        tally.add(config, received_at, &Seen::of(record));
    }
    tally.add_violations(violations);
    tally
}

/// Reads the whole log, page by page, and the violation reports of the window.
///
/// # Errors
/// 503 when the store cannot be read.
pub(crate) fn scan(collector: &Collector, window: Window) -> Result<Tally, Refusal> {
    let mut tally = Tally::new(window);
    let mut start = 0;
    loop {
        let page = collector.store.dated_entries(start, PAGE).map_err(unavailable)?;
        let Some(last) = page.last() else { break };
        start = last.index + 1;
        for entry in &page {
            if !tally.charts(entry.received_at) {
                tally.add_uncharted(entry.received_at);
                continue;
            }
            // Stored records were checked when they were stored: read, not verified again.
            match Seen::read(&entry.bytes) {
                Some(seen) => tally.add(&collector.config, entry.received_at, &seen),
                None => {
                    tracing::error!(
                        index = entry.index,
                        "a stored record no longer reads; run `unticked verify`"
                    );
                    tally.add_unreadable(entry.received_at);
                }
            }
        }
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    let violations = collector.store.violation_days(window.first).map_err(unavailable)?;
    tally.add_violations(&violations);
    Ok(tally)
}

// ---------------------------------------------------------------------------------------
// The page

/// The dashboard over the last `days` UTC days (1 to [`MAX_DAYS`]), today the last: an
/// HTML fragment for the console's page, every text escaped. It reads the whole log: call
/// it off the async threads (`spawn_blocking`).
///
/// # Errors
/// 503 when the store cannot be read.
pub(crate) fn dashboard_html(collector: &Collector, words: &DashboardWords, days: u32) -> Result<String, Refusal> {
    dashboard_at(collector, words, days, crate::store::now_ms())
}

/// [`dashboard_html`] at `now_ms`.
pub(crate) fn dashboard_at(
    collector: &Collector,
    words: &DashboardWords,
    days: u32,
    now_ms: u64,
) -> Result<String, Refusal> {
    let tally = scan(collector, Window::ending(now_ms, days))?;
    Ok(render(
        &tally,
        &collector.config,
        collector.store.latest().as_ref(),
        words,
    ))
}

/// The fragment for a tally: the latest checkpoint, then one figure per chart.
pub(crate) fn render(
    tally: &Tally,
    config: &Config,
    checkpoint: Option<&Checkpoint>,
    words: &DashboardWords,
) -> String {
    let mut out = format!(
        "<div class=\"unticked-dashboard\" data-first-day=\"{}\" data-days=\"{}\">",
        date(tally.window.first),
        tally.window.days
    );
    out.push_str(&checkpoint_figures(checkpoint, words));
    if tally.unreadable > 0 {
        let _ = write!(
            out,
            "<p class=\"unticked-dashboard__warning\" role=\"status\">{}</p>",
            escape(&words.unreadable.replace("{count}", &tally.unreadable.to_string()))
        );
    }
    if tally.records() == 0 {
        let _ = write!(
            out,
            "<p class=\"unticked-dashboard__empty\" data-empty=\"records\">{}</p>",
            escape(&words.empty)
        );
    } else {
        let purposes: Vec<&str> = config.purposes.iter().map(|p| p.id.as_str()).collect();
        let forms: Vec<&str> = config.forms.iter().map(|f| f.kind.as_str()).collect();
        let locales: Vec<&str> = config.locales.iter().map(String::as_str).collect();
        let rates = [
            ("rate-purpose", &words.rate_purpose_title, &tally.by_purpose, &purposes),
            ("rate-form", &words.rate_form_title, &tally.by_form, &forms),
            ("rate-locale", &words.rate_locale_title, &tally.by_locale, &locales),
        ];
        for (id, title, daily, order) in rates {
            let series = ordered(daily, order, |p| Value::Ratio(*p));
            out.push_str(
                &Chart {
                    id,
                    title,
                    caption: &words.rate_caption,
                    shape: Shape::Lines,
                    ratio: true,
                    series: fold(series, words),
                }
                .render(tally.window, words),
            );
        }
        for (id, title, caption, daily) in [
            (
                "withdrawals",
                &words.withdrawals_title,
                &words.withdrawals_caption,
                &tally.withdrawals,
            ),
            (
                "outdated",
                &words.outdated_title,
                &words.outdated_caption,
                &tally.outdated,
            ),
        ] {
            let series = ordered(daily, &purposes, |n| Value::Count(*n));
            out.push_str(
                &Chart {
                    id,
                    title,
                    caption,
                    shape: Shape::Bars,
                    ratio: false,
                    series: fold(series, words),
                }
                .render(tally.window, words),
            );
        }
        let log = Series {
            label: words.log_series.clone(),
            data: vec![("data-series", "log".to_string())],
            points: tally
                .log_size()
                .into_iter()
                .map(|(d, n)| (d, Value::Count(n)))
                .collect(),
            folded: false,
        };
        out.push_str(
            &Chart {
                id: "log-size",
                title: &words.log_title,
                caption: &words.log_caption,
                shape: Shape::Lines,
                ratio: false,
                series: vec![log],
            }
            .render(tally.window, words),
        );
    }
    out.push_str(&violations_figure(tally, words));
    out.push_str("</div>");
    out
}

/// The latest checkpoint: its size, when it was signed, and its root.
fn checkpoint_figures(checkpoint: Option<&Checkpoint>, words: &DashboardWords) -> String {
    let mut out = format!(
        "<section class=\"unticked-dashboard__checkpoint\" data-chart=\"checkpoint\"><h2>{}</h2>",
        escape(&words.checkpoint_title)
    );
    match checkpoint {
        None => {
            let _ = write!(out, "<p>{}</p>", escape(&words.no_checkpoint));
        }
        Some(c) => {
            let _ = write!(
                out,
                "<dl class=\"unticked-dashboard__figures\">\
                 <dt>{size}</dt><dd data-checkpoint=\"size\">{n}</dd>\
                 <dt>{time}</dt><dd data-checkpoint=\"timestamp\" data-value=\"{ms}\"><time datetime=\"{iso}\">{shown}</time></dd>\
                 <dt>{root}</dt><dd data-checkpoint=\"root\"><code class=\"unticked-dashboard__root\">{hex}</code></dd></dl>",
                size = escape(&words.checkpoint_size),
                n = c.size,
                time = escape(&words.checkpoint_time),
                ms = c.timestamp,
                iso = instant(c.timestamp, 'T', "Z"),
                shown = instant(c.timestamp, ' ', " UTC"),
                root = escape(&words.checkpoint_root),
                hex = record::hex(&c.root),
            );
        }
    }
    out.push_str("</section>");
    out
}

/// The violation reports: a chart per kind and page, and a table of every row.
fn violations_figure(tally: &Tally, words: &DashboardWords) -> String {
    let mut series: Vec<Series> = tally
        .violations
        .iter()
        .map(|((kind, page), days)| Series {
            label: format!("{kind} {}", if page.is_empty() { &words.other_pages } else { page }),
            data: vec![
                ("data-series", format!("{kind} {page}")),
                ("data-kind", kind.clone()),
                ("data-page", page.clone()),
            ],
            points: days.iter().map(|(d, n)| (*d, Value::Count(*n))).collect(),
            folded: false,
        })
        .collect();
    // The most reported first, so that the ones folded into "other" are the fewest.
    series.sort_by_key(|s| std::cmp::Reverse(s.total()));
    let chart = Chart {
        id: "violations",
        title: &words.violations_title,
        caption: &words.violations_caption,
        shape: Shape::Bars,
        ratio: false,
        series: fold(series, words),
    };
    let mut table = String::new();
    if !tally.violations.is_empty() {
        let _ = write!(
            table,
            "<details class=\"unticked-chart__data\"><summary>{summary}</summary><table class=\"unticked-chart__table\">\
             <caption>{title}</caption><thead><tr><th scope=\"col\">{day}</th><th scope=\"col\">{kind}</th>\
             <th scope=\"col\">{page}</th><th scope=\"col\">{reports}</th></tr></thead><tbody>",
            summary = escape(&words.table_summary),
            title = escape(&words.violations_title),
            day = escape(&words.col_day),
            kind = escape(&words.col_kind),
            page = escape(&words.col_page),
            reports = escape(&words.col_reports),
        );
        let mut rows: Vec<(u64, &str, &str, u64)> = tally
            .violations
            .iter()
            .flat_map(|((kind, page), days)| days.iter().map(move |(d, n)| (*d, kind.as_str(), page.as_str(), *n)))
            .collect();
        rows.sort();
        for (day, kind, page, n) in rows {
            let page = if page.is_empty() {
                escape(&words.other_pages)
            } else {
                format!("<code>{}</code>", escape(page))
            };
            let _ = write!(
                table,
                "<tr><th scope=\"row\"><time datetime=\"{d}\">{d}</time></th><td>{kind}</td><td>{page}</td><td>{n}</td></tr>",
                d = date(day),
                kind = escape(kind),
            );
        }
        table.push_str("</tbody></table></details>");
    }
    chart.render_with(tally.window, words, Some(&table))
}

// ---------------------------------------------------------------------------------------
// Charts

/// One figure's value on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Ratio(Ratio),
    Count(u64),
}

impl Value {
    /// Where the mark stands: the rate (0 to 1), or the count.
    fn number(self) -> f64 {
        match self {
            Value::Ratio(r) if r.shown == 0 => 0.0,
            Value::Ratio(r) => r.given as f64 / r.shown as f64,
            Value::Count(n) => n as f64,
        }
    }

    /// What ranks a series: how many were shown, or counted.
    fn weight(self) -> u64 {
        match self {
            Value::Ratio(r) => r.shown,
            Value::Count(n) => n,
        }
    }

    fn plus(self, other: Value) -> Value {
        match (self, other) {
            (Value::Ratio(a), Value::Ratio(b)) => Value::Ratio(Ratio {
                given: a.given + b.given,
                shown: a.shown + b.shown,
            }),
            (Value::Count(a), Value::Count(b)) => Value::Count(a + b),
            (a, _) => a,
        }
    }

    /// The machine-readable value (`data-value`): the rate to four places, or the count.
    fn data(self) -> String {
        match self {
            Value::Ratio(_) => {
                let text = format!("{:.4}", self.number());
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            Value::Count(n) => n.to_string(),
        }
    }

    /// The value as a reader reads it: "1 of 2 (50%)", or the count.
    fn text(self, words: &DashboardWords) -> String {
        match self {
            Value::Ratio(r) => words
                .rate_value
                .replace("{given}", &r.given.to_string())
                .replace("{shown}", &r.shown.to_string())
                .replace("{percent}", &percent(self.number())),
            Value::Count(n) => n.to_string(),
        }
    }
}

fn percent(rate: f64) -> String {
    format!("{}%", (rate * 100.0).round() as u64)
}

/// One line or set of bars.
#[derive(Debug, Clone)]
struct Series {
    /// Its name, as shown (untrusted: escaped where written).
    label: String,
    /// The data attributes on each of its marks besides `data-day` and `data-value`.
    data: Vec<(&'static str, String)>,
    points: BTreeMap<u64, Value>,
    /// The smallest series drawn together.
    folded: bool,
}

impl Series {
    fn total(&self) -> u64 {
        self.points.values().map(|v| v.weight()).sum()
    }
}

/// The series of `daily`, in the config's `order` first, then the rest by name.
fn ordered<T>(daily: &Daily<String, T>, order: &[&str], value: impl Fn(&T) -> Value) -> Vec<Series> {
    let rank = |key: &str| order.iter().position(|o| *o == key).unwrap_or(order.len());
    let mut keys: Vec<&String> = daily.keys().collect();
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    keys.into_iter()
        .map(|key| Series {
            label: key.clone(),
            data: vec![("data-series", key.clone())],
            points: daily[key].iter().map(|(d, v)| (*d, value(v))).collect(),
            folded: false,
        })
        .collect()
}

/// At most [`MAX_SERIES`] series: past it, all but the largest are drawn as one, "other".
fn fold(series: Vec<Series>, words: &DashboardWords) -> Vec<Series> {
    if series.len() <= MAX_SERIES {
        return series;
    }
    let mut by_size: Vec<usize> = (0..series.len()).collect();
    by_size.sort_by_key(|i| std::cmp::Reverse(series[*i].total()));
    let kept: Vec<usize> = by_size[..MAX_SERIES - 1].to_vec();
    let mut other = Series {
        label: words.other.clone(),
        data: vec![("data-series", words.other.clone()), ("data-folded", "true".into())],
        points: BTreeMap::new(),
        folded: true,
    };
    let mut out = Vec::new();
    for (i, s) in series.into_iter().enumerate() {
        if kept.contains(&i) {
            out.push(s);
            continue;
        }
        for (day, value) in s.points {
            other
                .points
                .entry(day)
                .and_modify(|v| *v = v.plus(value))
                .or_insert(value);
        }
    }
    out.push(other);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A line per series, a dot per day with a value; a day without one breaks the line.
    Lines,
    /// A bar per series and day, side by side.
    Bars,
}

struct Chart<'w> {
    /// `data-chart`, and the figure's class modifier.
    id: &'static str,
    title: &'w str,
    caption: &'w str,
    shape: Shape,
    /// Rates, drawn from 0 to 100 %; counts otherwise.
    ratio: bool,
    series: Vec<Series>,
}

// The drawing's size (user units; the console's stylesheet scales the SVG to its column).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

impl Chart<'_> {
    fn render(&self, window: Window, words: &DashboardWords) -> String {
        self.render_with(window, words, None)
    }

    /// The figure: caption, drawing, legend, and the table (`table`, or one made from the
    /// series).
    fn render_with(&self, window: Window, words: &DashboardWords, table: Option<&str>) -> String {
        let mut out = format!(
            "<figure class=\"unticked-chart unticked-chart--{id}\" data-chart=\"{id}\"><figcaption>\
             <h2 class=\"unticked-chart__title\">{title}</h2><p class=\"unticked-chart__caption\">{caption}</p></figcaption>",
            id = self.id,
            title = escape(self.title),
            caption = escape(self.caption),
        );
        if self.series.is_empty() {
            let _ = write!(
                out,
                "<p class=\"unticked-chart__nothing\">{}</p></figure>",
                escape(&words.nothing)
            );
            return out;
        }
        out.push_str(&self.svg(window, words));
        out.push_str(&self.legend());
        match table {
            Some(table) => out.push_str(table),
            None => out.push_str(&self.table(window, words)),
        }
        out.push_str("</figure>");
        out
    }

    /// The top of the value axis and its step: 0 to 100 % by quarters, or the smallest
    /// round step (1, 2, 2.5 or 5 × 10ⁿ) four of which reach the largest count, as many
    /// times as reach it.
    fn scale(&self) -> (f64, f64) {
        if self.ratio {
            return (1.0, 0.25);
        }
        let max = self
            .series
            .iter()
            .flat_map(|s| s.points.values())
            .map(|v| v.number())
            .fold(0.0, f64::max);
        let mut step = 1.0;
        'find: loop {
            for m in [1.0, 2.0, 2.5, 5.0] {
                // 2.5 only where the step stays whole.
                if m == 2.5 && step < 10.0 {
                    continue;
                }
                if m * step * 4.0 >= max {
                    step *= m;
                    break 'find;
                }
            }
            step *= 10.0;
        }
        // As few steps as reach it: a top of 1 for counts of 1, not 4.
        let steps = (max / step).ceil().max(1.0);
        (step * steps, step)
    }

    fn svg(&self, window: Window, words: &DashboardWords) -> String {
        let (top, step) = self.scale();
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let band = plot_w / f64::from(window.days);
        let y = |v: f64| TOP + plot_h - v / top * plot_h;
        let mut out = format!(
            "<svg class=\"unticked-chart__svg\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{t}\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\"><title>{t}</title>",
            t = escape(self.title),
        );
        // The value axis: a line and a label per step.
        out.push_str("<g class=\"unticked-chart__grid\">");
        let mut tick = 0.0;
        while tick <= top + f64::EPSILON {
            let label = if self.ratio { percent(tick) } else { format!("{tick}") };
            let _ = write!(
                out,
                "<line class=\"unticked-chart__gridline\" x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#d0d0d0\" stroke-width=\"1\"/>\
                 <text class=\"unticked-chart__tick\" x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#444444\">{label}</text>",
                x2 = WIDTH - RIGHT,
                yy = y(tick),
                tx = LEFT - 6.0,
                ty = y(tick) + 4.0,
            );
            tick += step;
        }
        out.push_str("</g>");
        // The day axis: a label every few days, so that they never overlap.
        out.push_str("<g class=\"unticked-chart__days\">");
        let every = window.days.div_ceil(7).max(1) as usize;
        for (i, day) in window.each().enumerate().filter(|(i, _)| i % every == 0) {
            let _ = write!(
                out,
                "<text class=\"unticked-chart__tick\" x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#444444\">{label}</text>",
                x = LEFT + band * (i as f64 + 0.5),
                ty = HEIGHT - 6.0,
                label = date(day).get(5..).unwrap_or_default(),
            );
        }
        out.push_str("</g>");
        let n = self.series.len() as f64;
        for (j, series) in self.series.iter().enumerate() {
            let (class, colour) = colour_of(j, series);
            let _ = write!(out, "<g class=\"unticked-chart__series {class}\">");
            let index = |day: u64| (day - window.first) as f64;
            let points: Vec<(u64, Value)> = series
                .points
                .iter()
                .filter(|(d, _)| window.contains(**d))
                .map(|(d, v)| (*d, *v))
                .collect();
            if self.shape == Shape::Lines {
                // One polyline per run of consecutive days.
                let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
                let mut previous = None;
                for (day, value) in &points {
                    let xy = (LEFT + band * (index(*day) + 0.5), y(value.number()));
                    match (previous, runs.last_mut()) {
                        (Some(p), Some(run)) if p + 1 == *day => run.push(xy),
                        _ => runs.push(vec![xy]),
                    }
                    previous = Some(*day);
                }
                for run in runs.iter().filter(|r| r.len() > 1) {
                    let line: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                    let _ = write!(
                        out,
                        "<polyline class=\"unticked-chart__line\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                        line.join(" ")
                    );
                }
            }
            for (day, value) in &points {
                let data = self.mark_data(series, *day, *value);
                let title = escape(&format!("{} {}: {}", series.label, date(*day), value.text(words)));
                match self.shape {
                    Shape::Lines => {
                        let _ = write!(
                            out,
                            "<circle class=\"unticked-chart__mark\" {data} cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" fill=\"{colour}\"><title>{title}</title></circle>",
                            cx = LEFT + band * (index(*day) + 0.5),
                            cy = y(value.number()),
                            r = if window.days > 45 { 2 } else { 3 },
                        );
                    }
                    Shape::Bars => {
                        let width = band * 0.8 / n;
                        let height = value.number() / top * plot_h;
                        let _ = write!(
                            out,
                            "<rect class=\"unticked-chart__mark\" {data} x=\"{x:.2}\" y=\"{y:.2}\" width=\"{width:.2}\" height=\"{height:.2}\" fill=\"{colour}\"><title>{title}</title></rect>",
                            x = LEFT + band * (index(*day) + 0.1) + width * j as f64,
                            y = TOP + plot_h - height,
                        );
                    }
                }
            }
            out.push_str("</g>");
        }
        out.push_str("</svg>");
        out
    }

    /// A mark's machine-readable attributes: `data-day`, the series', `data-value`.
    fn mark_data(&self, series: &Series, day: u64, value: Value) -> String {
        let mut out = format!("data-day=\"{}\"", date(day));
        for (name, text) in &series.data {
            let _ = write!(out, " {name}=\"{}\"", escape(text));
        }
        if let Value::Ratio(r) = value {
            let _ = write!(out, " data-given=\"{}\" data-shown=\"{}\"", r.given, r.shown);
        }
        let _ = write!(out, " data-value=\"{}\"", value.data());
        out
    }

    /// The series' names and colours, as a list beside the drawing.
    fn legend(&self) -> String {
        let mut out = String::from("<ul class=\"unticked-chart__legend\">");
        for (j, series) in self.series.iter().enumerate() {
            let (class, colour) = colour_of(j, series);
            let _ = write!(
                out,
                "<li><svg class=\"unticked-chart__swatch\" xmlns=\"http://www.w3.org/2000/svg\" width=\"12\" height=\"12\" \
                 viewBox=\"0 0 12 12\" aria-hidden=\"true\" focusable=\"false\"><rect class=\"{class}\" width=\"12\" height=\"12\" fill=\"{colour}\"/></svg> {}</li>",
                escape(&series.label)
            );
        }
        out.push_str("</ul>");
        out
    }

    /// The same numbers as a table: a row per day that has any, a column per series.
    fn table(&self, window: Window, words: &DashboardWords) -> String {
        let mut out = format!(
            "<details class=\"unticked-chart__data\"><summary>{}</summary><table class=\"unticked-chart__table\"><caption>{}</caption>\
             <thead><tr><th scope=\"col\">{}</th>",
            escape(&words.table_summary),
            escape(self.title),
            escape(&words.col_day)
        );
        for series in &self.series {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(&series.label));
        }
        out.push_str("</tr></thead><tbody>");
        for day in window.each() {
            if !self.series.iter().any(|s| s.points.contains_key(&day)) {
                continue;
            }
            let _ = write!(
                out,
                "<tr><th scope=\"row\"><time datetime=\"{d}\">{d}</time></th>",
                d = date(day)
            );
            for series in &self.series {
                let cell = match series.points.get(&day) {
                    Some(value) => value.text(words),
                    // No purpose shown: no rate. No count: none.
                    None if self.ratio => String::new(),
                    None => "0".to_string(),
                };
                let _ = write!(out, "<td>{}</td>", escape(&cell));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></details>");
        out
    }
}

/// A series' class and fallback colour.
fn colour_of(j: usize, series: &Series) -> (String, &'static str) {
    if series.folded {
        ("unticked-chart__series--other".to_string(), OTHER_COLOUR)
    } else {
        (
            format!("unticked-chart__series--{}", j % MAX_SERIES),
            PALETTE[j % MAX_SERIES],
        )
    }
}

/// A day since the epoch as its UTC date, `2026-12-03`.
fn date(day: u64) -> String {
    let (y, m, d) = unticked_core::consent::civil_from_days(day as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// An instant (ms) as `2026-12-03T10:04:05Z`, with `between` the date and time and `zone`
/// after it.
fn instant(ms: u64, between: char, zone: &str) -> String {
    let s = (ms % DAY_MS) / 1000;
    format!(
        "{}{between}{:02}:{:02}:{:02}{zone}",
        date(ms / DAY_MS),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{open_delivery, Arrival};
    use crate::testing::{capture, demo_config, demo_sha256, now_ms, seal};
    use std::sync::Arc;
    use unticked_core::record::{Act, ConsentRecord, PurposeEntry};

    /// 2026-12-03, in days since the epoch.
    const D: u64 = 20_790;

    fn at(day: u64) -> Option<u64> {
        Some(day * DAY_MS + 3_600_000)
    }

    fn record(
        form: &str,
        source: Source,
        locale: &str,
        signer: Signer,
        act: Option<Act>,
        entries: &[(&str, u32, State)],
    ) -> ConsentRecord {
        ConsentRecord {
            beside: Vec::new(),
            id: String::new(),
            captured_at: 0,
            form: form.into(),
            source,
            locale: locale.into(),
            page_origin: "https://shop.example".into(),
            page_path: "/".into(),
            notice_url: "/privacy.html".into(),
            notice_version: "2026-09".into(),
            config_sha256: String::new(),
            widget: "0.1.0".into(),
            purposes: entries
                .iter()
                .map(|(id, version, state)| PurposeEntry {
                    id: id.to_string(),
                    version: *version,
                    state: *state,
                    text_sha256: String::new(),
                })
                .collect(),
            subjects: Vec::new(),
            signer,
            act,
        }
    }

    fn checkout(locale: &str, entries: &[(&str, u32, State)]) -> ConsentRecord {
        record("checkout", Source::Checkout, locale, Signer::Browser, None, entries)
    }

    /// The marks of one chart: `(data-day, data-series, data-value)`.
    fn marks(html: &str, chart: &str) -> Vec<(String, String, String)> {
        let start = html
            .find(&format!("data-chart=\"{chart}\""))
            .unwrap_or_else(|| panic!("no chart {chart}"));
        let figure = &html[start..];
        let figure = &figure[..figure.find("</figure>").unwrap()];
        let attribute = |mark: &str, name: &str| {
            let from = mark.find(&format!(" {name}=\"")).map(|i| i + name.len() + 3)?;
            Some(mark[from..from + mark[from..].find('"')?].to_string())
        };
        figure
            .split("class=\"unticked-chart__mark\"")
            .skip(1)
            .map(|mark| {
                let mark = &mark[..mark.find('>').unwrap()];
                (
                    attribute(mark, "data-day").unwrap(),
                    attribute(mark, "data-series").unwrap(),
                    attribute(mark, "data-value").unwrap(),
                )
            })
            .collect()
    }

    fn mark(day: &str, series: &str, value: &str) -> (String, String, String) {
        (day.into(), series.into(), value.into())
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(D), "2026-12-03");
        assert_eq!(date(11_016), "2000-02-29");
        assert_eq!(instant(D * DAY_MS + 3_723_000, 'T', "Z"), "2026-12-03T01:02:03Z");
        let window = Window::ending(D * DAY_MS + 5, 3);
        assert_eq!((window.first, window.last()), (D - 2, D));
        assert_eq!(Window::ending(D * DAY_MS, 0).days, 1);
        assert_eq!(Window::ending(D * DAY_MS, 10_000).days, MAX_DAYS);
    }

    /// A known set of records, by hand: the rates per purpose, form and language count only
    /// what a shop's form showed; withdrawals count on every path; outdated consents are
    /// those given under a version older than the one served now, by the day given.
    #[test]
    fn records_fold_into_exact_rates_withdrawals_and_outdated_counts_per_day() {
        use State::{Given, Refused, Renewed, Withdrawn};
        let mut config = demo_config();
        // E-mail offers changed since some consents were given (R11).
        config
            .purposes
            .iter_mut()
            .find(|p| p.id == "email-offers")
            .unwrap()
            .version = 2;
        let records = [
            // Long before the window: in the log's size only.
            (at(D - 9), checkout("pl", &[("email-offers", 1, Given)])),
            // Day D: three forms shown.
            (
                at(D),
                checkout("pl", &[("email-offers", 1, Given), ("sms-offers", 1, Refused)]),
            ),
            (
                at(D),
                checkout("en", &[("email-offers", 2, Refused), ("sms-offers", 1, Given)]),
            ),
            (
                at(D),
                record(
                    "newsletter",
                    Source::Newsletter,
                    "en",
                    Signer::Browser,
                    None,
                    &[("email-offers", 2, Given), ("birthday-greetings", 1, Given)],
                ),
            ),
            // Day D + 1: changes of standing consent, not forms shown.
            (
                at(D + 1),
                record(
                    PREFERENCES,
                    Source::Account,
                    "pl",
                    Signer::Browser,
                    None,
                    &[("email-offers", 2, Withdrawn)],
                ),
            ),
            (
                at(D + 1),
                record(
                    PREFERENCES,
                    Source::Unsubscribe,
                    "pl",
                    Signer::Collector,
                    None,
                    &[("sms-offers", 1, Withdrawn)],
                ),
            ),
            // Asked again and ticked: renewed, given.
            (at(D + 1), checkout("pl", &[("email-offers", 2, Renewed)])),
            // A double opt-in's confirmation is not a second consent.
            (
                at(D + 1),
                record(
                    "newsletter",
                    Source::Newsletter,
                    "en",
                    Signer::Collector,
                    Some(Act::Confirms("x".into())),
                    &[("email-offers", 1, Given)],
                ),
            ),
            // Consent on the phone, under the old version: outdated, not a form shown.
            (
                at(D + 1),
                record(
                    PREFERENCES,
                    Source::Phone,
                    "en",
                    Signer::Collector,
                    Some(Act::Assisted {
                        staff: "Ann".into(),
                        recording: "call-1".into(),
                    }),
                    &[("email-offers", 1, Given)],
                ),
            ),
        ];
        let window = Window::ending((D + 1) * DAY_MS + 1, 3);
        let tally = tally(records.iter().map(|(t, r)| (*t, r)), &[], &config, window);
        let ratio = |given, shown| Ratio { given, shown };
        let daily = |points: &[(u64, Ratio)]| points.iter().copied().collect::<BTreeMap<u64, Ratio>>();

        assert_eq!(tally.by_purpose.len(), 3, "{:?}", tally.by_purpose);
        assert_eq!(
            tally.by_purpose["email-offers"],
            daily(&[(D, ratio(2, 3)), (D + 1, ratio(1, 1))])
        );
        assert_eq!(tally.by_purpose["sms-offers"], daily(&[(D, ratio(1, 2))]));
        assert_eq!(tally.by_purpose["birthday-greetings"], daily(&[(D, ratio(1, 1))]));
        assert_eq!(tally.by_form.len(), 2);
        assert_eq!(
            tally.by_form["checkout"],
            daily(&[(D, ratio(2, 4)), (D + 1, ratio(1, 1))])
        );
        assert_eq!(tally.by_form["newsletter"], daily(&[(D, ratio(2, 2))]));
        assert_eq!(tally.by_locale.len(), 2);
        assert_eq!(tally.by_locale["pl"], daily(&[(D, ratio(1, 2)), (D + 1, ratio(1, 1))]));
        assert_eq!(tally.by_locale["en"], daily(&[(D, ratio(3, 4))]));

        let counts = |points: &[(u64, u64)]| points.iter().copied().collect::<BTreeMap<u64, u64>>();
        assert_eq!(tally.withdrawals.len(), 2);
        assert_eq!(tally.withdrawals["email-offers"], counts(&[(D + 1, 1)]));
        assert_eq!(tally.withdrawals["sms-offers"], counts(&[(D + 1, 1)]));
        assert_eq!(tally.outdated.len(), 1);
        assert_eq!(tally.outdated["email-offers"], counts(&[(D, 1), (D + 1, 1)]));
        assert_eq!(tally.log_size(), vec![(D - 1, 1), (D, 4), (D + 1, 9)]);

        // The charts carry the same numbers on their marks.
        let html = render(&tally, &config, None, &DashboardWords::english());
        assert_eq!(
            marks(&html, "rate-purpose"),
            vec![
                mark("2026-12-03", "email-offers", "0.6667"),
                mark("2026-12-04", "email-offers", "1"),
                mark("2026-12-03", "sms-offers", "0.5"),
                mark("2026-12-03", "birthday-greetings", "1"),
            ]
        );
        assert!(
            html.contains("<title>email-offers 2026-12-03: 2 of 3 (67%)</title>"),
            "{html}"
        );
        assert_eq!(
            marks(&html, "rate-form"),
            vec![
                mark("2026-12-03", "checkout", "0.5"),
                mark("2026-12-04", "checkout", "1"),
                mark("2026-12-03", "newsletter", "1"),
            ]
        );
        assert_eq!(
            marks(&html, "rate-locale"),
            vec![
                mark("2026-12-03", "en", "0.75"),
                mark("2026-12-03", "pl", "0.5"),
                mark("2026-12-04", "pl", "1"),
            ]
        );
        assert_eq!(
            marks(&html, "withdrawals"),
            vec![
                mark("2026-12-04", "email-offers", "1"),
                mark("2026-12-04", "sms-offers", "1"),
            ]
        );
        assert_eq!(
            marks(&html, "outdated"),
            vec![
                mark("2026-12-03", "email-offers", "1"),
                mark("2026-12-04", "email-offers", "1"),
            ]
        );
        assert_eq!(
            marks(&html, "log-size"),
            vec![
                mark("2026-12-02", "log", "1"),
                mark("2026-12-03", "log", "4"),
                mark("2026-12-04", "log", "9"),
            ]
        );
        // Nothing reported: the chart says so rather than drawing an empty frame.
        let violations = &html[html.find("data-chart=\"violations\"").unwrap()..];
        assert!(violations.contains("Nothing in these days."));
    }

    /// Each chart is a figure with a caption, an image with a name, a legend and a table of
    /// the same numbers; no inline style anywhere (the console's CSP).
    #[test]
    fn each_chart_is_a_named_figure_with_its_table() {
        let config = demo_config();
        let records = [(at(D), checkout("pl", &[("email-offers", 1, State::Given)]))];
        let tally = tally(
            records.iter().map(|(t, r)| (*t, r)),
            &[],
            &config,
            Window::ending(D * DAY_MS, 7),
        );
        let html = render(&tally, &config, None, &DashboardWords::english());
        let figures = html.matches("<figure ").count();
        assert_eq!(figures, 7, "{html}");
        assert_eq!(html.matches("<figcaption>").count(), figures);
        // Every chart that has numbers draws them and tabulates them.
        let drawn = html.matches("<svg class=\"unticked-chart__svg\"").count();
        assert_eq!(
            drawn, 4,
            "the three rates and the log size; no withdrawal, outdated or report"
        );
        assert_eq!(html.matches("role=\"img\" aria-label=\"").count(), drawn);
        assert_eq!(html.matches("<table class=\"unticked-chart__table\">").count(), drawn);
        assert_eq!(html.matches("<ul class=\"unticked-chart__legend\">").count(), drawn);
        assert!(!html.contains("style"), "no inline style: {html}");
        assert!(!html.contains("<script"));
        assert!(html.contains(
            "<tr><th scope=\"row\"><time datetime=\"2026-12-03\">2026-12-03</time></th><td>1 of 1 (100%)</td></tr>"
        ));
    }

    /// Purpose ids, forms and locales are checked in a record, but a page comes from any
    /// browser: everything written is escaped, in text and in attributes.
    #[test]
    fn markup_in_names_and_pages_is_escaped() {
        let config = demo_config();
        let hostile = "<script>alert(\"x\")</script>";
        let records = [(
            at(D),
            record(
                hostile,
                Source::Checkout,
                hostile,
                Signer::Browser,
                None,
                &[(hostile, 1, State::Given)],
            ),
        )];
        let violations = [ViolationDay {
            day: D,
            kind: hostile.into(),
            page: format!("/{hostile}"),
            count: 2,
        }];
        let tally = tally(
            records.iter().map(|(t, r)| (*t, r)),
            &violations,
            &config,
            Window::ending(D * DAY_MS, 7),
        );
        let mut words = DashboardWords::english();
        words.rate_purpose_title = "<b>rates</b>".into();
        let html = render(&tally, &config, None, &words);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(html.contains("data-page=\"/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\""));
    }

    /// The quick read of stored bytes counts what the full one reads, on every shared
    /// record vector that reads; a name no record has is refused, never guessed.
    #[test]
    fn the_quick_read_agrees_with_the_record_reader() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/record");
        let mut compared = 0;
        for file in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            let vector: serde_json::Value = serde_json::from_str(&text).unwrap();
            let Some(bytes) = vector["bytes"].as_str() else {
                continue;
            };
            if let Ok((full, _, _)) = record::read(bytes.as_bytes()) {
                assert_eq!(Seen::read(bytes), Some(Seen::of(&full)), "{bytes}");
                compared += 1;
            }
        }
        assert!(compared >= 3, "{compared} vectors read");
        let bytes = seal(&capture(&demo_config(), &["email-offers"]), 1);
        let body: serde_json::Value = serde_json::from_str(&bytes).unwrap();
        let stored = body["record"].as_str().unwrap();
        let (full, _, _) = record::read(stored.as_bytes()).unwrap();
        assert_eq!(Seen::read(stored), Some(Seen::of(&full)));
        for (from, to) in [
            ("\"state\":\"given\"", "\"state\":\"ticked\""),
            ("\"source\":\"checkout\"", "\"source\":\"shop\""),
            ("\"v\":1", "\"v\":2"),
        ] {
            assert!(stored.contains(from), "{from}");
            assert_eq!(Seen::read(&stored.replacen(from, to, 1)), None, "{to}");
        }
        let signed_by = stored.replacen("\"source\"", "\"signer\":\"shop\",\"source\"", 1);
        assert_eq!(Seen::read(&signed_by), None);
    }

    /// Past eight series, all but the seven largest are drawn as one, "other".
    #[test]
    fn many_series_fold_into_other() {
        let config = demo_config();
        let violations: Vec<ViolationDay> = (0..12)
            .map(|i| ViolationDay {
                day: D,
                kind: "submit-gated".into(),
                page: format!("/p{i}"),
                count: 20 - i,
            })
            .collect();
        let tally = tally(std::iter::empty(), &violations, &config, Window::ending(D * DAY_MS, 1));
        let html = render(&tally, &config, None, &DashboardWords::english());
        let drawn = marks(&html, "violations");
        assert_eq!(drawn.len(), 8);
        assert_eq!(drawn[0], mark("2026-12-03", "submit-gated /p0", "20"));
        assert_eq!(
            drawn[7],
            mark("2026-12-03", "other", "55"),
            "13 + 12 + 11 + 10 + 9: /p7 to /p11"
        );
        // The table still lists every page.
        assert_eq!(html.matches("<td><code>/p").count(), 12);
    }

    fn collector(dir: &std::path::Path) -> Arc<Collector> {
        collector_on(crate::store::Store::open(&dir.join("log.db"), &crate::texts::Shown::of(&demo_config())).unwrap())
    }

    fn collector_on(store: crate::store::Store) -> Arc<Collector> {
        let config = demo_config();
        Collector::new(
            config,
            &demo_sha256(),
            store,
            None,
            crate::limit::Limits::new(0, 0),
            crate::http::Writers::new(&["http://127.0.0.1:8080".to_string()]),
            crate::lifecycle::Settings {
                public_origin: "http://127.0.0.1:8080".into(),
                account_secret: None,
            },
            crate::settings::ServerSettings::default(),
        )
    }

    async fn post(collector: &Collector, given: &[&str]) {
        let body = seal(&capture(&collector.config, given), 1);
        let arrival = Arrival {
            now_ms: now_ms(),
            writers: &collector.writers,
            origin: Some("http://127.0.0.1:8080"),
        };
        let accepted = open_delivery(body.as_bytes())
            .and_then(|d| d.check_as_served(collector, &arrival))
            .unwrap();
        collector.append(accepted).await.unwrap();
    }

    /// Through the store, as the console will call it: checkouts, a withdrawal on the
    /// collector's preference page and violation reports give exactly their numbers.
    #[tokio::test]
    async fn the_dashboard_reflects_the_records_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        reflects_the_log(collector(dir.path())).await;
    }

    /// The same on PostgreSQL, when a cluster is given (`UNTICKED_TEST_POSTGRES`, as
    /// `./build.sh test` sets it): the per-day reports' SQL and the paged scan on both.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_dashboard_reflects_a_postgresql_log_too() {
        let Ok(cluster) = std::env::var("UNTICKED_TEST_POSTGRES") else {
            eprintln!("skipped: UNTICKED_TEST_POSTGRES is unset (`./build.sh test` starts a throwaway PostgreSQL and sets it)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let name = format!("dashboard_{}_{}", std::process::id(), now_ms());
        let (base, _) = cluster.rsplit_once('/').expect("a URL ending in /database");
        let url = format!("{base}/{name}");
        // On a thread of its own: the `postgres` client runs a runtime, refused inside this one.
        std::thread::spawn(move || {
            let mut admin = postgres::Client::connect(&cluster, postgres::NoTls)?;
            admin.batch_execute(&format!("CREATE DATABASE {name}"))
        })
        .join()
        .unwrap()
        .unwrap();
        let key = dir.path().join("log.key");
        crate::store::Keys::create(&key).unwrap();
        let store = crate::store::Store::open_at(
            &crate::db::Location::Postgres(url),
            Some(&key),
            &crate::texts::Shown::of(&demo_config()),
        )
        .unwrap();
        let collector = reflects_the_log(collector_on(store)).await;
        // Closed off the runtime's threads, where the `postgres` client may block.
        std::thread::spawn(move || drop(collector)).join().unwrap();
    }

    /// Asserts what the dashboard shows over a log that `collector` fills; gives it back.
    async fn reflects_the_log(collector: Arc<Collector>) -> Arc<Collector> {
        let words = DashboardWords::english();

        // An empty log renders its empty state.
        let html = dashboard_html(&collector, &words, 30).unwrap();
        assert!(html.contains("data-empty=\"records\""), "{html}");
        assert!(html.contains(&words.no_checkpoint));
        assert!(!html.contains("class=\"unticked-chart__mark\""));

        for given in [&["email-offers"][..], &[], &["email-offers", "sms-offers"]] {
            post(&collector, given).await;
        }
        let changes = [("email-offers".to_string(), State::Withdrawn)];
        let change = crate::lifecycle::Change {
            identifier: "jan@example.pl",
            locale: "pl",
            source: Source::Preferences,
            signer: Signer::Collector,
            page_origin: "http://127.0.0.1:8080",
            page_path: "/preferences",
            widget: crate::lifecycle::COLLECTOR_WIDGET,
            changes: &changes,
            also: &[],
        };
        crate::lifecycle::store_signed_by_collector(&collector, &change.capture(&collector).unwrap())
            .await
            .unwrap();
        let now = now_ms();
        let (today, yesterday) = (date(now / DAY_MS), date(now / DAY_MS - 1));
        let store = &collector.store;
        store
            .note_violation_at("submit-gated", "R3", "checkout", "/checkout.html", now - DAY_MS)
            .unwrap();
        for _ in 0..2 {
            store
                .note_violation_at("submit-gated", "R3", "checkout", "/checkout.html", now)
                .unwrap();
        }
        store
            .note_violation("hidden-box", "R1", "checkout", "/<script>x</script>")
            .unwrap();

        let html = dashboard_at(&collector, &words, 7, now).unwrap();
        assert!(!html.contains("data-empty"));
        let rates = marks(&html, "rate-purpose");
        // The checkout shows six purposes; three checkouts, the withdrawal not shown.
        assert_eq!(rates.len(), 6, "{rates:?}");
        assert!(rates.contains(&mark(&today, "email-offers", "0.6667")), "{rates:?}");
        assert!(rates.contains(&mark(&today, "sms-offers", "0.3333")));
        assert!(rates.contains(&mark(&today, "phone-calls", "0")));
        assert_eq!(marks(&html, "rate-form"), vec![mark(&today, "checkout", "0.1667")]);
        assert_eq!(marks(&html, "rate-locale"), vec![mark(&today, "pl", "0.1667")]);
        assert_eq!(marks(&html, "withdrawals"), vec![mark(&today, "email-offers", "1")]);
        assert!(marks(&html, "outdated").is_empty());
        assert_eq!(marks(&html, "log-size").last(), Some(&mark(&today, "log", "4")));
        assert_eq!(
            marks(&html, "violations"),
            vec![
                mark(&yesterday, "submit-gated /checkout.html", "1"),
                mark(&today, "submit-gated /checkout.html", "2"),
                mark(&today, "hidden-box /&lt;script&gt;x&lt;/script&gt;", "1"),
            ]
        );
        assert!(!html.contains("<script"), "a page from a browser is escaped");
        let latest = store.latest().unwrap();
        assert!(html.contains(&format!("<dd data-checkpoint=\"size\">{}</dd>", latest.size)));
        assert!(html.contains(&record::hex(&latest.root)));
        collector
    }

    /// The figure for the report: a scan of 10⁵ records (run with `--ignored --nocapture`,
    /// in release for the production figure). Prints; asserts no time.
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "fills a log of 10^5 records: a measurement, not a check"]
    async fn scan_of_a_large_log_prints_its_time() {
        const N: usize = 100_000;
        const CHUNK: usize = 1000;
        let dir = tempfile::tempdir().unwrap();
        let collector = collector(dir.path());
        let filled = std::time::Instant::now();
        // Two captures made once (a capture compiles the config: too slow to make 10⁵), each
        // copy given its own id, then sealed and checked on blocking threads and appended
        // all at once, so that the writer commits them in its batches.
        let templates = [
            capture(&collector.config, &["email-offers"]),
            capture(&collector.config, &[]),
        ];
        let mut made = tokio::task::JoinSet::new();
        for chunk in 0..N / CHUNK {
            let (collector, templates) = (collector.clone(), templates.clone());
            made.spawn_blocking(move || {
                (0..CHUNK)
                    .map(|i| {
                        let mut copy = templates[usize::from((chunk + i) % 3 != 0)].clone();
                        let n = ((chunk * CHUNK + i) as u64).to_be_bytes();
                        let mut random = [0u8; 10];
                        random[2..].copy_from_slice(&n);
                        copy.record.id = record::record_id(now_ms(), random);
                        let body = seal(&copy, 1);
                        let arrival = Arrival {
                            now_ms: now_ms(),
                            writers: &collector.writers,
                            origin: Some("http://127.0.0.1:8080"),
                        };
                        open_delivery(body.as_bytes())
                            .and_then(|d| d.check_as_served(&collector, &arrival))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            });
        }
        let mut appends = tokio::task::JoinSet::new();
        while let Some(chunk) = made.join_next().await {
            for accepted in chunk.unwrap() {
                let collector = collector.clone();
                appends.spawn(async move { collector.append(accepted).await.map(|_| ()) });
            }
        }
        while let Some(done) = appends.join_next().await {
            done.unwrap().unwrap();
        }
        eprintln!("filled {N} records in {:?}", filled.elapsed());
        // Where the time goes: reading the pages, and reading the records in them.
        let started = std::time::Instant::now();
        let (mut start, mut bytes) = (0, Vec::new());
        loop {
            let page = collector.store.dated_entries(start, PAGE).unwrap();
            let Some(last) = page.last() else { break };
            start = last.index + 1;
            bytes.extend(page.into_iter().map(|e| e.bytes));
        }
        let paged = started.elapsed();
        let started = std::time::Instant::now();
        let read = bytes.iter().filter(|b| record::read(b.as_bytes()).is_ok()).count();
        let full = started.elapsed();
        let started = std::time::Instant::now();
        let seen = bytes.iter().filter(|b| Seen::read(b).is_some()).count();
        eprintln!(
            "paging the log: {paged:?}; record::read of {read}: {full:?}; Seen::read of {seen}: {:?}",
            started.elapsed()
        );
        let words = DashboardWords::english();
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let html = tokio::task::block_in_place(|| dashboard_html(&collector, &words, 30)).unwrap();
            eprintln!(
                "dashboard over {N} records: {:?} ({} bytes of HTML)",
                started.elapsed(),
                html.len()
            );
        }
    }
}
