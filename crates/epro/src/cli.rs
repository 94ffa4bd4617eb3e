//! The command line: `epro serve`, `epro forms check`, `epro trials`,
//! `epro migrate`, `epro revalidate`, `epro outbox` and `epro export`, and
//! what each returns as its exit status.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// ePRO data collection: validates patient questionnaire submissions
/// against their trial's forms and stores them durably.
#[derive(Debug, Parser)]
#[command(name = "epro", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the outbox relay until SIGTERM or Ctrl-C.
    Serve {
        /// Configuration file (TOML). EPRO_<SECTION>__<KEY> variables override its keys.
        #[arg(long, short)]
        config: PathBuf,
        /// Address to listen on, overriding http.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Work with form files.
    Forms {
        #[command(subcommand)]
        command: FormsCommand,
    },
    /// Manage the trials and form versions stored in the database.
    Trials {
        #[command(subcommand)]
        command: TrialsCommand,
    },
    /// Re-run a form's current rules over its stored submissions: record
    /// recomputed scores beside the originals and raise new data queries.
    /// Safe to rerun.
    Revalidate {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Trial id.
        #[arg(long)]
        trial: String,
        /// Form id.
        #[arg(long)]
        form: String,
        /// Only submissions of this form version (default: every version).
        #[arg(long)]
        version: Option<String>,
    },
    /// Inspect the outbox and send events again.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Create staff accounts and manage their tokens, reading the database
    /// directly. `staff create --role admin` makes the first administrator.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Check the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Export a form's submissions for analysis (CSV, NDJSON or FHIR NDJSON),
    /// or its codebook, reading the database directly. Works while the server
    /// runs. Writes one audit row per export. The cursor for the next
    /// incremental export goes to stderr and to --cursor-file.
    Export(ExportArgs),
    /// Create or upgrade the database schema, then exit. `serve` does this
    /// too at start; this command lets a deployment do it beforehand.
    Migrate {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Subcommands of `epro staff`. Each writes one audit row with actor `cli`.
#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create a staff account and print its first token as JSON, once.
    Create {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Staff id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(long)]
        id: String,
        /// Name shown in listings.
        #[arg(long)]
        name: String,
        /// A role as ROLE, ROLE:TRIAL or ROLE:TRIAL:SITE: admin, data_manager:TRIAL,
        /// monitor:TRIAL, investigator:TRIAL:SITE or site_staff:TRIAL:SITE. Repeat for
        /// several roles. Trial and site ids are not checked against the trial files here;
        /// `POST /v1/staff` checks them.
        #[arg(long = "role", required = true, value_parser = parse_grant)]
        roles: Vec<epro_store::RoleGrant>,
        /// Days the token is valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: u32,
    },
    /// Issue another token for a staff account and print it as JSON, once.
    IssueToken {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Staff id.
        #[arg(long)]
        id: String,
        /// Days the token is valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: u32,
    },
    /// Revoke every active token of a staff account.
    RevokeTokens {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Staff id.
        #[arg(long)]
        id: String,
    },
    /// List staff accounts with their roles, one JSON object per line.
    List {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Parses `ROLE[:TRIAL[:SITE]]` into a grant whose trial and site fit the role.
fn parse_grant(text: &str) -> Result<epro_store::RoleGrant, String> {
    let mut parts = text.splitn(3, ':');
    let role = parts.next().unwrap_or_default().parse::<epro_store::Role>().map_err(|error| error.to_string())?;
    let grant = epro_store::RoleGrant {
        role,
        trial_id: parts.next().filter(|part| !part.is_empty()).map(str::to_owned),
        site_id: parts.next().filter(|part| !part.is_empty()).map(str::to_owned),
    };
    grant.check().map_err(|error| format!("{error}; write admin, data_manager:TRIAL or investigator:TRIAL:SITE"))?;
    Ok(grant)
}

/// Options of `epro export`, named as the HTTP endpoint's query parameters.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Trial id.
    #[arg(long)]
    pub trial: String,
    /// Form id.
    #[arg(long)]
    pub form: String,
    /// Output format: csv, ndjson or fhir for submissions (default csv); json or csv
    /// with --codebook (default json).
    #[arg(long)]
    pub format: Option<String>,
    /// Write the codebook (every item with its type, labels, answer codes and
    /// ordinal values) instead of the submissions.
    #[arg(long)]
    pub codebook: bool,
    /// Export only submissions committed after this cursor, printed by an earlier
    /// export. Overrides the cursor in --cursor-file.
    #[arg(long)]
    pub since: Option<String>,
    /// File that keeps the cursor between runs: read as --since when it exists and
    /// --since is not given, and replaced with the next cursor after a complete
    /// export.
    #[arg(long, value_name = "PATH")]
    pub cursor_file: Option<PathBuf>,
    /// CSV header names: linkId (default) or label.
    #[arg(long, value_parser = ["linkId", "label"])]
    pub header: Option<String>,
    /// Language of label headers: en or zh-CN (default: http.default_language).
    #[arg(long, value_parser = ["en", "zh-CN"])]
    pub label_language: Option<String>,
    /// Start the CSV with the UTF-8 byte-order mark that Excel needs for Chinese text.
    #[arg(long)]
    pub bom: bool,
    /// Write to this file instead of standard output. It is replaced only after a
    /// complete export.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// Subcommands of `epro outbox`.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List dead-lettered events: those the sink refused
    /// outbox.dead_letter_after_rejections times. Prints one JSON object per
    /// line, without answers.
    DeadLetters {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Only events with a sequence number above this one.
        #[arg(long)]
        after: Option<i64>,
        /// Maximum number of events to print, from 1 to 500 as in the API; page on with
        /// --after and the last seq printed.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
    },
    /// Send outbox events again: every dead letter, or the events named by
    /// id (delivered or not). Works while the server runs; its relay picks
    /// them up. Each replayed event gets an audit row.
    Replay {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Replay every dead-lettered event.
        #[arg(long, conflicts_with = "event_id", required_unless_present = "event_id")]
        dead_letters: bool,
        /// Replay this event (its eventId); repeat for several.
        #[arg(long = "event-id", value_name = "EVENT_ID")]
        event_id: Vec<uuid::Uuid>,
        /// The reason the events are sent again, kept in the audit trail.
        #[arg(long)]
        reason: String,
    },
}

/// Subcommands of `epro audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit trail's hash chain and report the first row that was
    /// changed, inserted or deleted. Exits 0 when the chain is intact, 1 when
    /// it is broken. Prints the head (SEQ:HASH) to keep for --expect-head.
    Verify {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// A head printed by an earlier run, as SEQ:HASH; fails when that row
        /// is gone or has another hash, which a chain cut at its end shows.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<crate::audit_cli::RecordedHead>,
    },
}

/// Subcommands of `epro trials`.
#[derive(Debug, Subcommand)]
pub enum TrialsCommand {
    /// Load a trials directory (one folder per trial with its trial.toml and
    /// form files) into the database. Safe to rerun: what is stored already is
    /// left as it is. A form whose id and version are stored with other
    /// content stops the import before anything is written; give it a new
    /// version. `epro serve` does this for trials.directory at start.
    Import {
        /// Configuration file (TOML); only its [database] section is read.
        #[arg(long, short)]
        config: PathBuf,
        /// The trials directory.
        directory: PathBuf,
    },
    /// Print every trial with its sites and form versions and their status.
    List {
        /// Configuration file (TOML); only its [database] section is read.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Subcommands of `epro forms`.
#[derive(Debug, Subcommand)]
pub enum FormsCommand {
    /// Load each form file and print what is supported, what is not yet
    /// evaluated, what is ignored and every error. Exits 1 if any file is
    /// invalid.
    Check {
        /// FHIR R4 Questionnaire (.json) or native-format (.toml) files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Exit statuses of the binary.
pub mod exit {
    /// The command did what it was asked.
    pub const SUCCESS: u8 = 0;
    /// The command ran and found a problem (an invalid form file).
    pub const INVALID_INPUT: u8 = 1;
    /// The command could not run: bad configuration, unusable database or
    /// address, a server that failed.
    pub const FAILURE: u8 = 2;
}
