//! The command line: `epro serve`, `epro forms check`, `epro migrate`,
//! `epro revalidate` and `epro outbox`, and what each returns as its exit
//! status.

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
    /// Check the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Create or upgrade the database schema, then exit. `serve` does this
    /// too at start; this command lets a deployment do it beforehand.
    Migrate {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
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
