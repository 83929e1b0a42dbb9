//! `unticked`: lint a site owner's `consent.json`, serve the demo shop and the collector,
//! verify the collector's log.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod admin;
mod assisted;
mod bench;
mod bundle;
mod compile;
mod console;
mod dashboard;
mod db;
mod effects;
mod error;
mod history;
mod http;
mod import;
mod lifecycle;
mod limit;
mod lint;
mod lock;
mod migrate;
mod optin;
#[cfg(test)]
mod optin_tests;
mod pages;
mod proxy;
mod records;
mod rights;
mod serve;
mod settings;
mod state;
mod statics;
mod store;
#[cfg(test)]
mod sweep_tests;
#[cfg(test)]
mod testing;
mod texts;
mod verify;
mod violations;
mod webhooks;
mod witness;

#[derive(Parser)]
#[command(
    name = "unticked",
    version,
    about = "Unticked: lawful, unticked marketing consent for web shops"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a consent.json against the schema and the rules R1–R11.
    /// Exit 0 when clean, 1 on rule violations, 2 when the file is unreadable or not JSON.
    Lint {
        file: PathBuf,
        /// Print a JSON report for machines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Lint a consent.json and compile it into what the widget loads: <OUT>/c/<sha256>/ with
    /// site.json and one sheet per form and locale. Exit 0 when written, 1 (and nothing
    /// written) when the config breaks the rules, 2 when unreadable or not writable.
    Build {
        file: PathBuf,
        /// The widget's directory (where unticked.js is served from).
        #[arg(long, default_value = "www/pkg")]
        out: PathBuf,
    },
    /// Serve the demo shop (static files under a strict CSP) with the widget's config,
    /// compiled at start into <www>/pkg (as `unticked build` does).
    Serve {
        /// The site owner's config; linted at start, and the server refuses an invalid one.
        #[arg(long, default_value = "www/consent.json")]
        config: PathBuf,
        /// Directory of static files to serve.
        #[arg(long, default_value = "www")]
        www: PathBuf,
        /// Address to listen on; port 0 picks a free port (the URL is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// The log: a SQLite file, created with its key file (`<db>.key`) on first start, or
        /// a PostgreSQL URL (`postgres://user@host/database`, which needs --key) that
        /// several collectors may write at once.
        #[arg(long, default_value = "unticked.db", value_parser = parse_location)]
        db: db::Location,
        /// The key file that signs checkpoints and keys the subject index, made by
        /// `unticked keygen`; it must exist (serve never makes it). Default: `<db>.key`,
        /// created on first start.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Records per second one client address may post (bursts of three seconds' worth);
        /// 0 turns the limit off.
        #[arg(long, default_value_t = 20)]
        rate_limit: u32,
        /// Most connections open at once; more are closed as soon as they are accepted.
        #[arg(long, default_value_t = http::ConnectionLimits::default().total)]
        max_connections: usize,
        /// Most connections open at once from one client address (IPv4 address or IPv6 /64);
        /// not applied to --trusted-proxy peers, which hold connections for many clients.
        #[arg(long, default_value_t = http::ConnectionLimits::default().per_address)]
        max_connections_per_address: usize,
        /// A load balancer or reverse proxy in front of the collector (a CIDR such as
        /// 10.0.0.0/8 or fd00::/8, or one address); repeat for several. Requests from it are
        /// counted by the client its X-Forwarded-For names, not by its own address; from
        /// anywhere else that header is ignored (docs/operations.md, "Behind a load balancer").
        #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = proxy::parse_cidr)]
        trusted_proxies: Vec<ipnet::IpNet>,
        /// Publish each new checkpoint outside the database: a file path (one JSON line per
        /// checkpoint, synced before the records are acknowledged; keep it on another disk)
        /// or an http:// URL (POSTed in the background; never holds up a record).
        #[arg(long)]
        witness: Option<String>,
        /// Records one client address may store in any 24 hours (refilled evenly); past it
        /// 429 quota-exceeded. 0 turns the quota off. Behind a proxy, give --trusted-proxy,
        /// or every client shares its address.
        #[arg(long, default_value_t = 1000)]
        daily_quota: u32,
        /// The collector's own origin as browsers see it (https://shop.example), whose pages
        /// may post records beside the config's `origins`; repeat for several. Listening on
        /// loopback, http://<address> and http://localhost:<port> are its own too.
        #[arg(long = "public-origin", value_name = "ORIGIN")]
        public_origins: Vec<String>,
        /// The collector's server-only settings (TOML: webhooks, the SMTP relay of
        /// double opt-in), never in the public consent.json; secrets are read from the
        /// environment variables it names (docs/settings.md).
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
    },
    /// Make a new collector key file (mode 0600) for `unticked serve --key`: the Ed25519 key
    /// that signs checkpoints and the secret of the subject index. Exit 0 when written, 2
    /// when the file exists (never overwritten) or cannot be written.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Post N pre-signed records to a collector (its own, unless --url) and print records/s,
    /// p50/p99 latency and peak memory beside the raw signature verification rate.
    Bench {
        /// A running collector to post to; by default the bench starts its own on a fresh log.
        /// Repeat it for several collectors of one log: the connections take them in turn.
        #[arg(long = "url")]
        urls: Vec<String>,
        /// The log of the collectors the bench starts: by default a fresh SQLite file; a
        /// PostgreSQL URL (with --key) for an empty database.
        #[arg(long, conflicts_with = "urls", value_parser = parse_location)]
        db: Option<db::Location>,
        /// The key file of the collectors the bench starts (needed with a PostgreSQL --db).
        #[arg(long, conflicts_with = "urls")]
        key: Option<PathBuf>,
        /// How many collectors the bench starts on --db, behind one address as if behind a
        /// load balancer.
        #[arg(long, default_value_t = 1, conflicts_with = "urls")]
        instances: usize,
        /// Send a record again after a 503 or a lost connection, as the widget's outbox does,
        /// until it is stored (within two minutes).
        #[arg(long)]
        retry: bool,
        /// Instead of one ingest: grow the bench's own log to each of these sizes (comma
        /// separated, e.g. 10000,100000,1000000) and time look-ups at each (a receipt with its
        /// inclusion proof, a consistency proof, a subject).
        #[arg(long, value_delimiter = ',', conflicts_with = "urls")]
        lookups_at: Vec<usize>,
        /// The config the records are made for (the collector's own).
        #[arg(long, default_value = "www/consent.json")]
        config: PathBuf,
        #[arg(long, default_value = "www")]
        www: PathBuf,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20000)]
        records: usize,
        /// How many connections post at once.
        #[arg(short = 'c', long, default_value_t = 32)]
        concurrency: usize,
        /// Append the id of every acknowledged record to this file.
        #[arg(long)]
        acked: Option<PathBuf>,
        /// After the ingest, time the audience and suppression lists over the subjects the
        /// records made (half of them: every other record gives e-mail offers), then again
        /// after a new version of e-mail offers has made every consent outdated.
        #[arg(long, conflicts_with = "urls")]
        audience: bool,
    },
    /// Import a legacy contact list (CSV: `email` and/or `phone`, optional `source` and
    /// `collected_at`) as contacts to ask again, never as consent (docs/import.md).
    /// Exit 0 when imported, 1 (and nothing imported) when rows are bad, each named by its
    /// line, 2 when it cannot run (the log in use by `unticked serve`, an unreadable file).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The log (`unticked serve --db`): a SQLite file must not be served meanwhile; a
        /// PostgreSQL log may be.
        #[arg(long, default_value = "unticked.db", value_parser = parse_location)]
        db: db::Location,
        /// The log's key file, as `unticked serve --key` is given it; `<db>.key` by default.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The config the collector serves: the records name it.
        #[arg(long, default_value = "www/consent.json")]
        config: PathBuf,
        /// Where the list came from, for rows without a `source` of their own:
        /// order, newsletter, popup, contest or unknown.
        #[arg(long, value_parser = parse_provenance)]
        source: unticked_core::vocabulary::Provenance,
        /// Days an imported contact has to answer; unanswered, their import expires.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=i64::from(import::MAX_ANSWER_DAYS)))]
        answer_within_days: u32,
        /// Write each contact's re-permission link (its preference page) to this CSV
        /// (`email,phone,link`), for the shop's mailing tool.
        #[arg(long, value_name = "OUT.csv")]
        links: Option<PathBuf>,
        /// The collector's own origin, as `unticked serve --public-origin` is given it
        /// (https://consent.shop.example): where the links point.
        #[arg(long, value_name = "ORIGIN")]
        public_origin: String,
    },
    /// Copy a SQLite log, with everything beside it, into an empty PostgreSQL database, then
    /// verify the copy against every checkpoint the source signed. Exit 0 when copied and
    /// verified, 1 when the source or the copy does not verify, 2 when it cannot run (the
    /// source in use or missing, the target not empty or unreachable).
    Migrate {
        /// The SQLite log (`unticked serve --db`); it must not be served meanwhile.
        #[arg(long)]
        from: PathBuf,
        /// The empty PostgreSQL database: postgres://user@host/database.
        #[arg(long, value_parser = parse_location)]
        to: db::Location,
        /// The log's key file; `<from>.key` by default. The PostgreSQL collectors take it
        /// with --key.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Recompute the log from its stored records and check every signed checkpoint.
    /// Exit 0 when clean, 1 naming the first bad index, 2 when the log cannot be read.
    Verify {
        /// The log written by `unticked serve`: a SQLite file or a PostgreSQL URL
        /// (`postgres://user@host/database`, which needs --key or --public-key).
        #[arg(long, default_value = "unticked.db", conflicts_with = "url", value_parser = parse_location)]
        db: db::Location,
        /// The collector's key file; `<db>.key` by default for a SQLite log.
        #[arg(long, conflicts_with = "url")]
        key: Option<PathBuf>,
        /// A running collector (http://host:port) instead of a file; reads its records with
        /// the admin token in UNTICKED_ADMIN_TOKEN.
        #[arg(long)]
        url: Option<String>,
        /// The collector's public key (base64url) to hold its checkpoints to; by default the
        /// key file's (with --db) or the one the collector names (with --url).
        #[arg(long)]
        public_key: Option<String>,
        /// A checkpoint kept outside the collector (JSON from GET /v1/checkpoint or a
        /// receipt): the log must still hold the tree it signed.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// A witness file written by `serve --witness FILE`: the log must still hold the tree
        /// of every checkpoint in it (the first one it does not is reported).
        #[arg(long)]
        witness: Option<PathBuf>,
        /// An evidence bundle (GET /v1/admin/records/{id}/bundle, POST
        /// /v1/admin/subjects/bundle), checked offline without any database; pin the
        /// collector's key with --public-key (docs/evidence.md). Exit 0 clean, 1 naming the
        /// record and part that fails, 2 when the file is unreadable or not a bundle.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["db", "url", "key", "checkpoint", "witness"])]
        bundle: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Lint { file, json } => {
            let report = lint::lint_file(&file);
            let text = if json { report.to_json() } else { report.to_text() };
            print!("{text}");
            ExitCode::from(report.exit_code())
        }
        Command::Build { file, out } => compile::main(&file, &out),
        Command::Serve {
            config,
            www,
            addr,
            db,
            key,
            rate_limit,
            max_connections,
            max_connections_per_address,
            trusted_proxies,
            witness,
            daily_quota,
            public_origins,
            settings,
        } => serve::main(serve::Options {
            config,
            www,
            addr,
            db,
            key,
            rate_limit,
            connections: http::ConnectionLimits {
                total: max_connections,
                per_address: max_connections_per_address,
            },
            trusted_proxies: proxy::TrustedProxies::new(trusted_proxies),
            witness,
            daily_quota,
            public_origins,
            settings,
        }),
        Command::Keygen { out } => keygen(&out),
        Command::Bench {
            urls,
            db,
            key,
            instances,
            retry,
            lookups_at,
            config,
            www,
            records,
            concurrency,
            acked,
            audience,
        } => bench::main(bench::Options {
            urls,
            db,
            key,
            instances,
            retry,
            lookups_at,
            config,
            www,
            records,
            concurrency,
            acked,
            audience,
        }),
        Command::Import {
            file,
            db,
            key,
            config,
            source,
            answer_within_days,
            links,
            public_origin,
        } => import::main(import::Options {
            db,
            key,
            config,
            source,
            file,
            answer_within_days,
            links,
            public_origin,
        }),
        Command::Migrate { from, to, key } => migrate::main(migrate::Options { from, to, key }),
        Command::Verify {
            db,
            key,
            url,
            public_key,
            checkpoint,
            witness,
            bundle,
        } => {
            if let Some(file) = bundle {
                return bundle::main(&file, public_key.as_deref());
            }
            let anchors = read_anchors(checkpoint.as_deref(), witness.as_deref());
            let (what, outcome) = match &url {
                Some(url) => {
                    let token = std::env::var(admin::TOKEN_VARIABLE).unwrap_or_default();
                    let outcome = anchors.and_then(|a| verify::verify_url(url, &token, public_key.as_deref(), &a));
                    (url.clone(), outcome)
                }
                None => {
                    let path = match (&key, db.file()) {
                        (Some(key), _) => Ok(key.clone()),
                        (None, Some(file)) => Ok(store::Keys::path_for(file)),
                        (None, None) => Err(verify::Broken::Unreadable(
                            "a PostgreSQL log has no key file beside it: give --key FILE (or --public-key)".into(),
                        )),
                    };
                    let outcome = anchors.and_then(|a| {
                        let path = match (&path, &public_key) {
                            (Ok(path), _) => path.clone(),
                            (Err(_), Some(_)) => PathBuf::new(),
                            (Err(e), None) => return Err(e.clone()),
                        };
                        let public = verify::public_key(public_key.as_deref(), &path)?;
                        // The key file gives the keyed subject index too; an auditor with only
                        // the public key checks everything else.
                        let keys = if public_key.is_some() && key.is_none() {
                            None
                        } else {
                            Some(store::Keys::load(&path).map_err(|e| verify::Broken::Unreadable(e.to_string()))?)
                        };
                        verify::verify(&db, &public, keys.as_ref(), &a)
                    });
                    (db.to_string(), outcome)
                }
            };
            match outcome {
                Ok(clean) => {
                    println!(
                        "unticked verify: {what}: {} records, {} checkpoints, {} texts, {} disclosures, {} outside checkpoints, root {}: clean",
                        clean.records,
                        clean.checkpoints,
                        clean.texts,
                        clean.disclosures,
                        clean.anchors,
                        unticked_core::record::hex(&clean.root)
                    );
                    if clean.pending > 0 {
                        println!(
                            "unticked verify: {what}: {} records sequenced after them await integration (never acknowledged; the next collector to run integrates them)",
                            clean.pending
                        );
                    }
                    for what in clean.unchecked {
                        println!("unticked verify: not checked: {what}");
                    }
                    ExitCode::SUCCESS
                }
                Err(verify::Broken::At { index, problem }) => {
                    println!("unticked verify: {what}: index {index}: {problem}");
                    ExitCode::from(1)
                }
                Err(verify::Broken::Text { sha256, problem }) => {
                    println!("unticked verify: {what}: text {sha256}: {problem}");
                    ExitCode::from(1)
                }
                Err(verify::Broken::Config { sha256, problem }) => {
                    println!("unticked verify: {what}: config {sha256}: {problem}");
                    ExitCode::from(1)
                }
                Err(verify::Broken::Unreadable(why)) => {
                    eprintln!("unticked verify: {why}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `unticked keygen --out FILE`: a fresh key file, never over an existing one (it would
/// replace a log's identity: its checkpoints and subject index hang on it).
fn keygen(out: &std::path::Path) -> ExitCode {
    match store::Keys::create(out) {
        Ok(keys) => {
            let public = keys.verifying();
            println!(
                "unticked keygen: wrote {} (mode 0600): checkpoints signed by {}, key {}",
                out.display(),
                store::origin_of(&public),
                unticked_core::record::base64url(public.as_bytes())
            );
            println!("unticked keygen: back it up beside the database; without it the log cannot be extended and its subjects cannot be found or erased");
            ExitCode::SUCCESS
        }
        Err(store::StoreError::File { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "unticked keygen: {} already exists; refusing to overwrite a key file (it is a log's identity)",
                out.display()
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("unticked keygen: {e}");
            ExitCode::from(2)
        }
    }
}

/// A `--source` value: a provenance name.
fn parse_provenance(name: &str) -> Result<unticked_core::vocabulary::Provenance, String> {
    use unticked_core::vocabulary::{Named, Provenance};
    <Provenance as Named>::from_name(name).ok_or_else(|| format!("one of {}", <Provenance as Named>::NAMES.join(", ")))
}

/// The checkpoints kept outside the collector: `--checkpoint` (one JSON) and `--witness`
/// (one JSON line per checkpoint, as `serve --witness` writes them).
fn read_anchors(
    checkpoint: Option<&std::path::Path>,
    witness: Option<&std::path::Path>,
) -> Result<Vec<verify::Anchor>, verify::Broken> {
    let read = |path: &std::path::Path, flag: &str| {
        std::fs::read_to_string(path).map_err(|e| verify::Broken::Unreadable(format!("{flag} {}: {e}", path.display())))
    };
    let mut anchors = Vec::new();
    if let Some(path) = checkpoint {
        anchors.push(verify::Anchor::from_json(&read(path, "--checkpoint")?, "--checkpoint")?);
    }
    if let Some(path) = witness {
        anchors.extend(verify::Anchor::from_witness(&read(path, "--witness")?)?);
    }
    Ok(anchors)
}

/// `--db`: a PostgreSQL URL, or else a SQLite file.
fn parse_location(text: &str) -> Result<db::Location, String> {
    if text.is_empty() {
        return Err("an empty --db: give a SQLite file or a postgres:// URL".into());
    }
    Ok(db::Location::parse(text))
}
