//! `unticked`: lint a site owner's `consent.json`, and serve the demo shop.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod lint;
mod records;
mod serve;

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
        Command::Serve { config, www, addr } => serve::main(serve::Options { config, www, addr }),
    }
}
