//! The `epro` binary: parses the command line, loads the configuration,
//! installs logging, dispatches to the subcommand and maps its result to
//! an exit status. Nothing else happens here.

use std::process::ExitCode;

use clap::Parser;
use epro::cli::{Cli, Command, FormsCommand, exit};
use epro::config::Config;
use epro::startup::Application;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Forms { command: FormsCommand::Check { files } } => {
            return ExitCode::from(if epro::forms_check::run(&files) { exit::SUCCESS } else { exit::INVALID_INPUT });
        }
        Command::Serve { config, listen } => serve(&config, listen),
        Command::Migrate { config } => migrate(&config),
        Command::Trials { command } => epro::trials_cli::run(command),
        Command::Outbox { command } => epro::outbox_cli::run(command),
        Command::Staff { command } => epro::staff_cli::run(command),
        Command::Audit { command } => match epro::audit_cli::run(command) {
            Ok(intact) => return ExitCode::from(if intact { exit::SUCCESS } else { exit::INVALID_INPUT }),
            Err(error) => Err(error),
        },
        Command::Export(args) => epro::export_cli::run(args),
        Command::Revalidate { config, trial, form, version } => {
            revalidate(&config, epro::revalidate::Scope { trial_id: trial, form_id: form, form_version: version })
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(error) => {
            eprintln!("epro: {error:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn serve(config_path: &std::path::Path, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let mut config = Config::load(config_path)?;
    if let Some(listen) = listen {
        config.http.listen = listen;
    }
    epro::telemetry::init(&config.telemetry)?;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let application = Application::build(config).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        application.run(shutdown).await
    })
}

fn migrate(config_path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load_database(config_path)?;
    epro::telemetry::init(&config.telemetry)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // This command exists to migrate, whatever database.run_migrations says.
        let store_config = epro_store::StoreConfig { run_migrations: true, ..config.store_config()? };
        let store = epro_store::Store::open(store_config).await?;
        store.close().await;
        tracing::info!("Database schema is up to date");
        Ok(())
    })
}

fn revalidate(config_path: &std::path::Path, scope: epro::revalidate::Scope) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    epro::telemetry::init(&config.telemetry)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = epro_store::Store::open(config.store_config(None)?).await?;
        let result = match epro_http::catalog::LiveCatalog::load(&store).await {
            Ok(catalog) => epro::revalidate::run(&store, &catalog.get(), &scope).await,
            Err(error) => Err(error),
        };
        store.close().await;
        let summary = result?;
        println!(
            "revalidated {} submission(s) of {}/{}: {} new data queries, {} skipped (form version no longer published), run {}",
            summary.submissions, scope.trial_id, scope.form_id, summary.new_queries, summary.skipped, summary.run_id
        );
        Ok(())
    })
}

/// Cancels `shutdown` on SIGTERM or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error.message = %error, "Failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        _ = interrupt => tracing::info!("Received SIGINT"),
        () = terminate => tracing::info!("Received SIGTERM"),
    }
    shutdown.cancel();
}
