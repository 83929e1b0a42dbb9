//! `unticked`: lint a site owner's `consent.json`, serve the demo shop and the collector,
//! verify the collector's log.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod admin;
mod bench;
mod limit;
mod lint;
mod records;
mod serve;
mod store;
#[cfg(test)]
mod testing;
mod verify;
mod violations;

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
    /// Serve the demo shop (static files under a strict CSP) with the widget's config.
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
        /// The SQLite log; created with its key file (`<db>.key`) on first start.
        #[arg(long, default_value = "unticked.db")]
        db: PathBuf,
        /// Records per second one client address may post (bursts of three seconds' worth);
        /// 0 turns the limit off.
        #[arg(long, default_value_t = 20)]
        rate_limit: u32,
        /// Records one client address may store in any 24 hours (refilled evenly); past it
        /// 429 quota-exceeded. 0 turns the quota off (behind a proxy, every client shares its address).
        #[arg(long, default_value_t = 1000)]
        daily_quota: u32,
    },
    /// Post N pre-signed records to a collector (its own, unless --url) and print records/s,
    /// p50/p99 latency and peak memory beside the raw signature verification rate.
    Bench {
        /// A running collector to post to; by default the bench starts its own on a fresh log.
        #[arg(long)]
        url: Option<String>,
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
    },
    /// Recompute the log from its stored records and check every signed checkpoint.
    /// Exit 0 when clean, 1 naming the first bad index, 2 when the log cannot be read.
    Verify {
        /// The SQLite log written by `unticked serve`.
        #[arg(long, default_value = "unticked.db", conflicts_with = "url")]
        db: PathBuf,
        /// The collector's key file; `<db>.key` by default.
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
        Command::Serve {
            config,
            www,
            addr,
            db,
            rate_limit,
            daily_quota,
        } => serve::main(serve::Options {
            config,
            www,
            addr,
            db,
            rate_limit,
            daily_quota,
        }),
        Command::Bench {
            url,
            config,
            www,
            records,
            concurrency,
            acked,
        } => bench::main(bench::Options {
            url,
            config,
            www,
            records,
            concurrency,
            acked,
        }),
        Command::Verify {
            db,
            key,
            url,
            public_key,
            checkpoint,
        } => {
            let anchor = match checkpoint.map(std::fs::read_to_string) {
                None => Ok(None),
                Some(Ok(text)) => verify::Anchor::from_json(&text).map(Some),
                Some(Err(e)) => Err(verify::Broken::Unreadable(format!("--checkpoint: {e}"))),
            };
            let (what, outcome) = match &url {
                Some(url) => {
                    let token = std::env::var(admin::TOKEN_VARIABLE).unwrap_or_default();
                    let outcome =
                        anchor.and_then(|a| verify::verify_url(url, &token, public_key.as_deref(), a.as_ref()));
                    (url.clone(), outcome)
                }
                None => {
                    let key = key.unwrap_or_else(|| store::Keys::path_for(&db));
                    let outcome = anchor.and_then(|a| {
                        let public = verify::public_key(public_key.as_deref(), &key)?;
                        verify::verify(&db, &public, a.as_ref())
                    });
                    (db.display().to_string(), outcome)
                }
            };
            match outcome {
                Ok(clean) => {
                    println!(
                        "unticked verify: {what}: {} records, {} checkpoints, root {}: clean",
                        clean.records,
                        clean.checkpoints,
                        unticked_core::record::hex(&clean.root)
                    );
                    ExitCode::SUCCESS
                }
                Err(verify::Broken::At { index, problem }) => {
                    println!("unticked verify: {what}: index {index}: {problem}");
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
