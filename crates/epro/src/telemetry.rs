//! Logging setup: one `tracing` subscriber for the whole process, in text
//! for people or JSON for log collectors, and a panic hook that reports
//! panics through it.

use std::panic::PanicHookInfo;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber and the panic hook. Logs go to stderr, so
/// stdout stays free for command output.
///
/// # Errors
///
/// Fails when `log_filter` is not a valid filter directive.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|error| anyhow::anyhow!("telemetry.log_filter {:?} is invalid: {error}", config.log_filter))?;
    // Colours only on a terminal, so that log files and collectors get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("failed to install the log subscriber: {error}"))?;

    std::panic::set_hook(Box::new(log_panic));
    Ok(())
}

/// Logs a panic as one error event in place of Rust's default message on
/// stderr. A handler's panic is logged inside its request span, so the line
/// carries the route and request id. The HTTP layer then replies 500
/// without logging it again.
fn log_panic(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic payload is not a string");
    let location = info.location().map(ToString::to_string).unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");

    // `RUST_BACKTRACE=1` turns backtraces on, as with the default hook.
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        tracing::error!(panic.message = message, panic.location = location, panic.thread = thread, panic.backtrace = %backtrace, "Panicked");
    } else {
        tracing::error!(panic.message = message, panic.location = location, panic.thread = thread, "Panicked");
    }
}
