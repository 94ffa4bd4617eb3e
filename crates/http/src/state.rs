//! The state every handler shares: the form catalogue, the store, the
//! settings read from the configuration, the admission limits, the metrics
//! recorder and the server's lifecycle flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use epro_forms::Catalog;

use crate::catalog::LiveCatalog;
use epro_store::Store;

use crate::admission::{Admission, AdmissionSettings, Limit};
use crate::auth::{SharedAuthenticator, TokenAuthenticator};
use crate::language::Language;
use crate::metrics::Metrics;

/// Shared, cheaply cloned handler state behind one `Arc`. axum clones the
/// state for every layer and handler of every request, and with several
/// `Arc`s their reference counts took 5.6% of a profile under overload.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The parts [`AppState`] shares, read through its `Deref`.
pub struct SharedState {
    /// The trials and forms, reloaded when they change; read it through
    /// [`SharedState::catalog`].
    pub live_catalog: Arc<LiveCatalog>,
    pub store: Store,
    pub settings: Arc<Settings>,
    pub lifecycle: Arc<Lifecycle>,
    /// The limits of `settings.admission` with their counters and buckets.
    pub admission: Arc<Admission>,
    pub metrics: Metrics,
    /// Turns bearer tokens into principals: epro's own tokens unless
    /// [`AppState::with_authenticator`] replaced it.
    pub authenticator: SharedAuthenticator,
}

/// The HTTP layer's part of the configuration.
#[derive(Debug)]
pub struct Settings {
    /// Language of messages when `Accept-Language` names neither zh-CN nor en.
    pub default_language: Language,
    /// Largest request body accepted, counted as the bytes arrive and after
    /// decompression.
    pub max_body_bytes: usize,
    /// Deepest nesting of JSON arrays and objects accepted in a body.
    pub max_json_depth: usize,
    /// How far in the future a `completedAt` may lie before it is rejected,
    /// to allow for device clocks that run fast.
    pub clock_skew_seconds: u64,
    /// Whether submissions need a patient token (or a staff token of the
    /// patient's site). `false` accepts anonymous submissions for any patient
    /// id, for demonstrations and benchmarks only.
    pub require_patient_token: bool,
    /// Lifetime of a new patient token, in days, unless the request asks for
    /// another.
    pub patient_token_days: u32,
    /// Lifetime of a new staff token, in days, unless the request asks for
    /// another.
    pub staff_token_days: u32,
    /// Concurrency, time and rate limits.
    pub admission: AdmissionSettings,
}

impl AppState {
    /// Creates the state of one application. `catalog` is a [`LiveCatalog`]
    /// loaded from the store, or an `Arc<Catalog>` built by hand, which never
    /// reloads. `metrics` should be the recorder the store was opened with, so
    /// that `/metrics` shows both.
    pub fn new(catalog: impl Into<LiveCatalog>, store: Store, settings: Settings, metrics: Metrics) -> AppState {
        let authenticator: SharedAuthenticator = Arc::new(TokenAuthenticator::new(store.clone()));
        AppState::with_authenticator(catalog, store, settings, metrics, authenticator)
    }

    /// Creates the state of one application that authenticates bearer tokens with
    /// `authenticator` instead of epro's own tokens.
    pub fn with_authenticator(
        catalog: impl Into<LiveCatalog>,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        authenticator: SharedAuthenticator,
    ) -> AppState {
        let admission = Arc::new(Admission::new(settings.admission.clone()));
        AppState(Arc::new(SharedState {
            authenticator,
            live_catalog: Arc::new(catalog.into()),
            store,
            settings: Arc::new(settings),
            lifecycle: Arc::new(Lifecycle::default()),
            admission,
            metrics,
        }))
    }

    /// Records a rejection by an admission limit: counts it in
    /// `admission_rejections_total` and logs it, at most one line per limit
    /// per `rejection_log_interval`.
    pub fn record_rejection(&self, limit: Limit) {
        self.metrics.record_admission_rejection(limit);
        if let Some(rejected) = self.admission.count_rejection_for_log(limit) {
            let interval_seconds = self.settings.admission.rejection_log_interval.as_secs();
            tracing::warn!(
                limit = limit.label(),
                rejected,
                interval_seconds,
                "Requests rejected by an admission limit"
            );
        }
    }
}

impl SharedState {
    /// Returns the catalogue as it is now. Hold the returned value for the
    /// whole request, so that it sees one catalogue even if a reload swaps it.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.live_catalog.get()
    }
}

/// Whether the server is draining. Readiness turns 503 as soon as this is
/// set, before the listener stops.
#[derive(Debug, Default)]
pub struct Lifecycle {
    shutting_down: AtomicBool,
}

impl Lifecycle {
    /// Marks the server as shutting down; irreversible.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Returns whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
