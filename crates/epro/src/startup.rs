//! Building and running the server. [`Application::build`] does everything
//! that can fail before serving (read the trials directory, open and migrate
//! the database, import the trials into it and load the catalogue from it,
//! open the sink, bind the ports) and reports the bound address;
//! [`Application::run`] serves HTTP and runs the outbox relay and the alert
//! escalation until the shutdown token fires, then drains them. The API tests use the same two
//! steps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use epro_http::catalog::LiveCatalog;
use epro_http::{AppState, Metrics, Settings};
use epro_outbox::RelayConfig;
use epro_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use crate::catalog;
use crate::config::Config;
use crate::escalation::{self, EscalationConfig};
use crate::server::{self, Drained, ServeOptions};
use crate::trials_cli;

/// How often histogram samples are moved into their buckets, so they cannot
/// pile up in memory while `/metrics` is not scraped.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How often each instance checks the store's catalogue generation, so that a
/// form published or retired through another instance takes effect here
/// within this time.
const CATALOG_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How long the operations listener waits for its connections at the very
/// end of shutdown; its requests are short.
const OPS_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A server that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    /// The listener of `telemetry.metrics_listen`, when set.
    ops_listener: Option<TcpListener>,
    state: AppState,
    sink: Arc<dyn epro_outbox::Sink>,
    relay: RelayConfig,
    escalation: EscalationConfig,
    timing: ShutdownTiming,
    header_read_timeout: Duration,
}

/// The phases of a graceful shutdown.
#[derive(Debug, Clone, Copy)]
struct ShutdownTiming {
    /// Readiness is 503 but the listener still accepts.
    readiness_delay: Duration,
    /// Connections and the store's queue drain after the listener stopped.
    drain_timeout: Duration,
}

impl Application {
    /// Loads the trials, opens the store (running pending migrations), opens
    /// the outbox sink and binds the listeners.
    ///
    /// # Errors
    ///
    /// Fails on any invalid trial or form (listing every problem), an
    /// unusable database, sink or address.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let started = std::time::Instant::now();

        // Read and check the directory before the database is touched, so that a
        // bad trial never leaves a migrated schema behind.
        let trial_sources = catalog::read(&config.trials.directory)?;
        let backend = config.backend()?;
        if let epro_store::Backend::Sqlite { path } = &backend {
            create_parent_dir(path)?;
        }
        if let epro_outbox::SinkConfig::File { path } = &config.outbox.sink {
            create_parent_dir(path)?;
        }
        // The sink's settings are checked before the database is opened, so
        // that a bad sink setting never leaves a migrated schema behind.
        let sink = epro_outbox::build_sink(&config.outbox.sink).context("failed to open the outbox sink")?;
        let metrics = Metrics::new();
        let store = Store::open(config.store_config(Some(metrics.recorder()))?)
            .await
            .with_context(|| format!("failed to open database {}", backend.location()))?;
        let imported = trials_cli::import_read(&store, &config.trials.directory, &trial_sources).await?;
        tracing::info!(
            directory = %config.trials.directory.display(),
            trials_created = imported.trials_created,
            forms_published = imported.forms_published,
            forms_unchanged = imported.forms_unchanged,
            "Trials directory imported"
        );
        let catalog = LiveCatalog::load(&store).await.context("failed to load the trials from the database")?;
        let loaded = catalog.get();

        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("failed to listen on {} (http.listen)", config.http.listen))?;
        let port = listener.local_addr()?.port();
        let ops_listener = match config.telemetry.metrics_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("failed to listen on {address} (telemetry.metrics_listen)"))?,
            ),
            None => None,
        };

        let trial_count = loaded.trials().count();
        let form_count: usize = loaded.trials().map(|trial| trial.forms.len()).sum();
        let metrics_address = ops_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        tracing::info!(
            address = %listener.local_addr()?,
            metrics_address = metrics_address.map(tracing::field::display),
            database = %backend.location(),
            trials = trial_count,
            forms = form_count,
            max_concurrent_requests = config.http.max_concurrent_requests,
            startup_ms = started.elapsed().as_millis() as u64,
            "Server built"
        );

        if !config.auth.require_patient_token {
            tracing::warn!("auth.require_patient_token is off: anyone can submit for any patient id");
        }

        let settings = Settings {
            default_language: config.http.default_language,
            max_body_bytes: config.http.max_body_bytes,
            max_json_depth: config.http.max_json_depth,
            clock_skew_seconds: config.http.clock_skew_seconds,
            require_patient_token: config.auth.require_patient_token,
            patient_token_days: config.auth.patient_token_days,
            staff_token_days: config.auth.staff_token_days,
            admission: config.admission(),
        };
        let state = AppState::new(catalog, store, settings, metrics);
        Ok(Application {
            listener,
            ops_listener,
            state,
            sink,
            relay: config.relay(port),
            escalation: config.escalation(),
            timing: ShutdownTiming {
                readiness_delay: Duration::from_secs(config.http.shutdown_readiness_delay_seconds),
                drain_timeout: Duration::from_secs(config.http.shutdown_timeout_seconds),
            },
            header_read_timeout: Duration::from_secs(config.http.header_read_timeout_seconds),
        })
    }

    /// Returns the application's store, for setup that needs no HTTP request, such
    /// as the first staff account of a test.
    pub fn store(&self) -> &epro_store::Store {
        &self.state.store
    }

    /// Returns the address the server listens on (useful with port 0).
    ///
    /// # Errors
    ///
    /// Fails only if the socket can no longer report its address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Returns the address of the operations listener, when
    /// `telemetry.metrics_listen` is set.
    ///
    /// # Errors
    ///
    /// Fails only if the socket can no longer report its address.
    pub fn metrics_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.ops_listener.as_ref().map(TcpListener::local_addr).transpose()
    }

    /// Serves until `shutdown` is cancelled, then shuts down in order:
    ///
    /// 1. readiness turns 503, and the listener keeps accepting for
    ///    `http.shutdown_readiness_delay_seconds`, so a load balancer sees
    ///    the failing probe and stops sending before connections are
    ///    refused;
    /// 2. the listener closes, and requests in flight finish within
    ///    `http.shutdown_timeout_seconds`;
    /// 3. the alert escalation stops after its current batch, then the relay
    ///    after its own; events still pending go out after the next start;
    /// 4. the store commits everything already queued, so no submission
    ///    that was accepted into the queue is lost;
    /// 5. the operations listener closes last, so probes see every phase.
    ///
    /// # Errors
    ///
    /// Fails when the HTTP server or the relay fails on its own, or the
    /// escalation task panics.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application { listener, ops_listener, state, sink, relay, escalation, timing, header_read_timeout } = self;
        let store = state.store.clone();

        let relay_stop = CancellationToken::new();
        let relay_task = tokio::spawn(epro_outbox::run_relay(store.clone(), sink, relay, relay_stop.clone()));
        let escalation_stop = CancellationToken::new();
        let escalation_task = tokio::spawn(escalation::run_escalation(
            store.clone(),
            state.metrics.clone(),
            escalation,
            escalation_stop.clone(),
        ));
        let upkeep_stop = CancellationToken::new();
        let upkeep_task = tokio::spawn(run_metrics_upkeep(state.metrics.clone(), upkeep_stop.clone()));
        let catalog_stop = CancellationToken::new();
        let catalog_task = tokio::spawn(run_catalog_poll(state.clone(), catalog_stop.clone()));

        let stop_accepting = CancellationToken::new();
        let options = ServeOptions { header_read_timeout, drain_timeout: timing.drain_timeout };
        let mut server_task = tokio::spawn(server::serve(
            listener,
            epro_http::router(state.clone()),
            options,
            state.clone(),
            stop_accepting.clone(),
        ));
        let ops_stop = CancellationToken::new();
        let ops_task = ops_listener.map(|ops_listener| {
            let options = ServeOptions { header_read_timeout, drain_timeout: OPS_DRAIN_TIMEOUT };
            let app = epro_http::ops_router(state.clone());
            tokio::spawn(server::serve(ops_listener, app, options, state.clone(), ops_stop.clone()))
        });

        // The accept loop only ends before `stop_accepting` by panicking.
        let server_ended = tokio::select! {
            () = shutdown.cancelled() => None,
            joined = &mut server_task => Some(joined),
        };
        state.lifecycle.begin_shutdown();
        let served = match server_ended {
            Some(joined) => {
                tracing::error!("HTTP server stopped on its own; shutting down");
                join_result(joined).and_then(|_| Err(anyhow::anyhow!("HTTP server stopped on its own")))
            }
            None => {
                tracing::info!(
                    readiness_delay_seconds = timing.readiness_delay.as_secs(),
                    "Shutdown started: readiness is now 503, still accepting connections"
                );
                tokio::time::sleep(timing.readiness_delay).await;

                stop_accepting.cancel();
                match join_result(server_task.await)? {
                    Drained::Complete => tracing::info!("Requests drained"),
                    Drained::TimedOut => tracing::warn!(
                        timeout_seconds = timing.drain_timeout.as_secs(),
                        "Shutdown timed out with requests still in flight"
                    ),
                }
                Ok(())
            }
        };

        // The escalation writes to the store, so it stops before the store
        // closes; a batch under way commits first.
        escalation_stop.cancel();
        escalation_task.await.context("alert escalation panicked")?;

        // Stop the relay before the store: it finishes its current batch and
        // marks it delivered, so a clean stop never sends an event twice.
        relay_stop.cancel();
        let relayed = relay_task.await.context("outbox relay panicked")?;
        tracing::info!("Outbox relay stopped");
        store.close().await;
        tracing::info!("Store closed: every queued submission is committed");

        ops_stop.cancel();
        if let Some(ops_task) = ops_task {
            join_result(ops_task.await)?;
        }
        upkeep_stop.cancel();
        upkeep_task.await.context("metrics upkeep panicked")?;
        catalog_stop.cancel();
        catalog_task.await.context("catalogue poll panicked")?;

        served?;
        relayed.context("outbox relay failed")
    }
}

/// Turns the result of joining a [`server::serve`] task into an error when
/// the task panicked.
fn join_result(joined: Result<Drained, JoinError>) -> anyhow::Result<Drained> {
    joined.context("HTTP server panicked")
}

/// Runs [`Metrics::run_upkeep`] every [`METRICS_UPKEEP_INTERVAL`] until
/// `stop` is cancelled.
async fn run_metrics_upkeep(metrics: Metrics, stop: CancellationToken) {
    let mut interval = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => metrics.run_upkeep(),
        }
    }
}

/// Reloads the catalogue whenever the store's catalogue generation moves, checked
/// every [`CATALOG_POLL_INTERVAL`] until `stop` is cancelled. A failed check is
/// logged and tried again at the next tick, with the current catalogue kept.
async fn run_catalog_poll(state: AppState, stop: CancellationToken) {
    let mut interval = tokio::time::interval(CATALOG_POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {
                if let Err(error) = state.live_catalog.refresh_if_changed(&state.store).await {
                    tracing::warn!(error = %format!("{error:#}"), "Failed to refresh the catalogue");
                }
            }
        }
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
