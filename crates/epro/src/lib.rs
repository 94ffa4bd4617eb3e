//! epro: an ePRO (electronic patient-reported outcomes) data collection
//! service. Patients' apps submit questionnaire answers over HTTP; epro
//! validates each submission against its trial's form, stores it durably
//! with an outbox event in the same transaction, and relays the events.
//!
//! # Layout
//!
//! - [`cli`]: subcommands and exit statuses; `main.rs` only dispatches.
//! - [`config`]: the TOML file and its `EPRO_*` overrides.
//! - [`telemetry`]: the log subscriber.
//! - [`catalog`]: reads trials and forms from the trials directory.
//! - [`trials_cli`]: `epro trials import` and `list`; `serve` imports its
//!   trials directory through it.
//! - [`startup`]: builds the server, then runs it until shutdown.
//! - [`server`]: the HTTP accept loop with its header timeout and drain.
//! - [`escalation`]: the task that escalates alerts nobody acknowledged in
//!   time.
//! - [`forms_check`]: the `epro forms check` report.
//! - [`revalidate`]: `epro revalidate`, current rules over stored submissions.
//! - [`outbox_cli`]: `epro outbox`, dead letters and replays.
//! - [`audit_cli`]: `epro audit verify`, the check of the audit hash chain.
//! - [`export_cli`]: `epro export`.
//!
//! The work itself lives in the library crates: `epro-forms` (form model
//! and validation, no IO), `epro-store` (the only SQL), `epro-outbox` (the
//! relay and sinks), `epro-export` (export formats) and `epro-http` (the API).

pub mod audit_cli;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod escalation;
pub mod export_cli;
pub mod forms_check;
pub mod outbox_cli;
pub mod revalidate;
pub mod server;
pub mod staff_cli;
pub mod startup;
pub mod telemetry;
pub mod trials_cli;
