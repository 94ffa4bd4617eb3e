//! Logging setup: one `tracing` subscriber for the whole process, in text
//! for people or JSON for log collectors.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber. Logs go to stderr, so stdout stays free
/// for command output.
///
/// # Errors
///
/// Fails when `log_filter` is not a valid filter directive.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|error| anyhow::anyhow!("telemetry.log_filter {:?} is invalid: {error}", config.log_filter))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("failed to install the log subscriber: {error}"))
}
