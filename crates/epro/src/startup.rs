//! Building and running the server. [`Application::build`] does everything
//! that can fail before serving (load trials, open and migrate the
//! database, open the sink, bind the port) and reports the bound address;
//! [`Application::run`] serves HTTP and runs the outbox relay until the
//! shutdown token fires, then drains both. The API tests use the same two
//! steps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use epro_http::{AppState, Lifecycle, Settings};
use epro_outbox::RelayConfig;
use epro_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog;
use crate::config::Config;

/// A server that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    sink: Arc<dyn epro_outbox::Sink>,
    relay: RelayConfig,
    shutdown_timeout: Duration,
}

impl Application {
    /// Loads the trials, opens the store (running pending migrations), opens
    /// the outbox sink and binds the listener.
    ///
    /// # Errors
    ///
    /// Fails on any invalid trial or form (listing every problem), an
    /// unusable database, sink or address.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let started = std::time::Instant::now();

        let catalog = catalog::load(&config.trials.directory)?;
        let database_path = config.sqlite_path()?;
        create_parent_dir(&database_path)?;
        if let epro_outbox::SinkConfig::File { path } = &config.outbox.sink {
            create_parent_dir(path)?;
        }
        let store = Store::open(StoreConfig {
            path: database_path.clone(),
            max_batch: config.database.group_commit_max_rows,
            queue_capacity: config.database.queue_capacity,
            read_connections: config.database.read_connections,
        })
        .await
        .with_context(|| format!("failed to open database {}", database_path.display()))?;
        let sink = epro_outbox::build_sink(&config.outbox.sink).context("failed to open the outbox sink")?;

        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("failed to listen on {}", config.http.listen))?;

        let trial_count = catalog.trials().count();
        let form_count: usize = catalog.trials().map(|trial| trial.forms.len()).sum();
        tracing::info!(
            address = %listener.local_addr()?,
            database = %database_path.display(),
            trials = trial_count,
            forms = form_count,
            startup_ms = started.elapsed().as_millis() as u64,
            "Server built"
        );

        if config.auth.operator_token.is_none() {
            tracing::info!("Reading stored submissions is disabled: auth.operator_token is not set");
        }

        let state = AppState {
            catalog: Arc::new(catalog),
            store,
            settings: Arc::new(Settings {
                default_language: config.http.default_language,
                max_body_bytes: config.http.max_body_bytes,
                max_json_depth: config.http.max_json_depth,
                clock_skew_seconds: config.http.clock_skew_seconds,
                operator_token: config.auth.operator_token.clone(),
            }),
            lifecycle: Arc::new(Lifecycle::default()),
        };
        Ok(Application {
            listener,
            state,
            sink,
            relay: config.relay(),
            shutdown_timeout: Duration::from_secs(config.http.shutdown_timeout_seconds),
        })
    }

    /// Returns the address the server listens on (useful with port 0).
    ///
    /// # Errors
    ///
    /// Fails only if the socket can no longer report its address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then shuts down in order:
    /// readiness turns 503, the listener stops and in-flight requests
    /// finish, the relay stops after its current batch, and the store
    /// commits everything already queued.
    ///
    /// # Errors
    ///
    /// Fails when the HTTP server or the relay fails on its own.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application { listener, state, sink, relay, shutdown_timeout } = self;
        let store = state.store.clone();
        let lifecycle = state.lifecycle.clone();

        let relay_stop = CancellationToken::new();
        let relay_task = tokio::spawn(epro_outbox::run_relay(store.clone(), sink, relay, relay_stop.clone()));

        let graceful = {
            let shutdown = shutdown.clone();
            let lifecycle = lifecycle.clone();
            async move {
                shutdown.cancelled().await;
                lifecycle.begin_shutdown();
                tracing::info!("Shutdown started: readiness is now 503, draining requests");
            }
        };
        let app = epro_http::router(state);
        let server = axum::serve(listener, app).with_graceful_shutdown(graceful);

        let served = tokio::select! {
            served = server => served.context("HTTP server failed"),
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(shutdown_timeout).await;
            } => {
                tracing::warn!(timeout_seconds = shutdown_timeout.as_secs(), "Shutdown timed out with requests still in flight");
                Ok(())
            }
        };

        // Stop the relay before the store: it finishes its current batch and
        // marks it delivered, so a clean stop never sends an event twice.
        relay_stop.cancel();
        let relayed = relay_task.await.context("outbox relay panicked")?;
        tracing::info!("Outbox relay stopped");
        store.close().await;
        tracing::info!("Store closed: every queued submission is committed");

        served?;
        relayed.context("outbox relay failed")
    }
}

/// Creates the directory a data file goes in, so a fresh checkout starts
/// without manual setup.
fn create_parent_dir(file: &std::path::Path) -> anyhow::Result<()> {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).with_context(|| format!("failed to create directory {}", parent.display()))
        }
        _ => Ok(()),
    }
}
