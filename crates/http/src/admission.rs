//! Admission control: the limits a request must pass before a handler does
//! any work for it, and the middleware that applies them.
//!
//! [`router`](crate::router) applies the layers in this order, outermost
//! first, so that the cheapest check runs first and each rejection still gets
//! the JSON error body from [`render_errors`](crate::error::render_errors):
//!
//! 1. [`limit_rate_per_ip`]: a token bucket per client address (429).
//! 2. [`limit_concurrency`]: a global limit on requests in flight. A full
//!    limit rejects at once (503); nothing ever waits in a queue for a slot.
//! 3. [`limit_time`]: a deadline for the whole request, body included (503).
//! 4. [`check_content_encoding`]: `identity` or `gzip` only (415), so the
//!    gzip decoder behind it never replies with a bare status code.
//!
//! The per-patient limit needs the patient id from the body, so the intake
//! pipeline applies it with [`Admission::check_patient`] after parsing the
//! envelope. `/healthz`, `/readyz` and `/metrics` skip the rate and
//! concurrency limits, so a busy server still answers its probes.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body;
use crate::error::ApiError;
use crate::rejection_log::RejectionLog;
use crate::state::AppState;

/// How often the rate limiters forget clients whose buckets are full again,
/// so that the memory they use follows the active clients, not every
/// client ever seen.
const FORGET_IDLE_CLIENTS_INTERVAL: Duration = Duration::from_secs(60);

/// Routes that no rate or concurrency limit applies to: load balancers and
/// Prometheus must reach them on a busy server.
const EXEMPT_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The admission limits of the HTTP API. `None` turns a limit off;
/// [`AdmissionSettings::default`] turns every limit off.
#[derive(Debug, Clone)]
pub struct AdmissionSettings {
    /// Requests handled at the same time; one more is rejected at once with
    /// 503 `overloaded`.
    pub max_concurrent_requests: Option<usize>,
    /// Deadline for a whole request, from the first middleware to the reply.
    /// A request past it gets 503 `timed_out`.
    pub request_timeout: Option<Duration>,
    /// Token bucket per client IP address.
    pub rate_per_ip: Option<IpRate>,
    /// Submissions per patient and trial in any one minute.
    pub rate_per_patient_per_minute: Option<NonZeroU32>,
    /// Shortest time between two log lines about the same limit.
    pub rejection_log_interval: Duration,
}

/// A token bucket: `per_second` tokens are added each second, up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct IpRate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            max_concurrent_requests: None,
            request_timeout: None,
            rate_per_ip: None,
            rate_per_patient_per_minute: None,
            rejection_log_interval: Duration::from_secs(10),
        }
    }
}

/// The limit that rejected a request; its label is the `limit` label of
/// `admission_rejections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `http.max_concurrent_requests` was reached.
    Concurrency,
    /// The store's queue of submissions waiting for the writer was full.
    StoreQueue,
    /// `http.request_timeout_seconds` passed.
    Timeout,
    /// `http.rate_limit_per_ip_per_second` with its burst was used up.
    RateIp,
    /// `http.rate_limit_per_patient_per_minute` was used up.
    RatePatient,
    /// The body was larger than `http.max_body_bytes` once decompressed.
    BodySize,
    /// A new connection did not send its request headers within
    /// `http.header_read_timeout_seconds` and was closed.
    HeaderTimeout,
}

impl Limit {
    /// Every limit, in the order of [`Limit::index`].
    pub const ALL: [Limit; 7] = [
        Limit::Concurrency,
        Limit::StoreQueue,
        Limit::Timeout,
        Limit::RateIp,
        Limit::RatePatient,
        Limit::BodySize,
        Limit::HeaderTimeout,
    ];

    /// Returns the metric label and log field value of this limit.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Concurrency => "concurrency",
            Limit::StoreQueue => "store_queue",
            Limit::Timeout => "timeout",
            Limit::RateIp => "rate_ip",
            Limit::RatePatient => "rate_patient",
            Limit::BodySize => "body_size",
            Limit::HeaderTimeout => "header_timeout",
        }
    }

    /// Returns the position of this limit in [`Limit::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The run-time state of the admission limits, shared by every request of
/// one application.
pub struct Admission {
    settings: AdmissionSettings,
    /// `None` when the concurrency limit is off.
    in_flight: Option<Arc<Semaphore>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Keyed by trial id and patient id, because patient pseudonyms are only
    /// unique within a trial.
    per_patient: Option<DefaultKeyedRateLimiter<(String, String)>>,
    rejection_log: Mutex<RejectionLog>,
    /// When the rate limiters last forgot their idle clients.
    last_forget: Mutex<Instant>,
}

impl Admission {
    /// Creates the limits described by `settings`.
    pub fn new(settings: AdmissionSettings) -> Admission {
        let in_flight = settings.max_concurrent_requests.map(|permits| Arc::new(Semaphore::new(permits)));
        let per_ip = settings
            .rate_per_ip
            .map(|rate| RateLimiter::keyed(Quota::per_second(rate.per_second).allow_burst(rate.burst)));
        let per_patient = settings.rate_per_patient_per_minute.map(|rate| RateLimiter::keyed(Quota::per_minute(rate)));
        let rejection_log = Mutex::new(RejectionLog::new(settings.rejection_log_interval));
        Admission { settings, in_flight, per_ip, per_patient, rejection_log, last_forget: Mutex::new(Instant::now()) }
    }

    /// Returns the settings these limits were created from.
    pub fn settings(&self) -> &AdmissionSettings {
        &self.settings
    }

    /// Takes one token from the bucket of the patient `patient_id` of
    /// `trial_id`.
    ///
    /// # Errors
    ///
    /// [`ApiError::RateLimited`] when the bucket is empty.
    pub fn check_patient(&self, trial_id: &str, patient_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_patient else {
            return Ok(());
        };
        self.forget_idle_clients();
        let key = (trial_id.to_owned(), patient_id.to_owned());
        limiter.check_key(&key).map_err(|not_until| ApiError::RateLimited {
            limit: Limit::RatePatient,
            retry_after_seconds: whole_seconds(not_until.wait_time_from(limiter.clock().now())),
        })
    }

    /// Takes one token from the bucket of the client at `ip`.
    fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_ip else {
            return Ok(());
        };
        self.forget_idle_clients();
        limiter.check_key(&client_key(ip)).map_err(|not_until| ApiError::RateLimited {
            limit: Limit::RateIp,
            retry_after_seconds: whole_seconds(not_until.wait_time_from(limiter.clock().now())),
        })
    }

    /// Takes a slot for one request in flight, or `Ok(None)` when the limit
    /// is off. The slot is freed when the permit drops.
    fn try_enter(&self) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        match &self.in_flight {
            None => Ok(None),
            Some(semaphore) => Arc::clone(semaphore)
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ApiError::Overloaded { limit: Limit::Concurrency }),
        }
    }

    /// Counts a rejection for the rate-limited log and returns the number of
    /// rejections the log line should report, or `None` when a line about
    /// this limit was written less than an interval ago.
    pub(crate) fn count_rejection_for_log(&self, limit: Limit) -> Option<u64> {
        let mut log = self.rejection_log.lock().unwrap_or_else(PoisonError::into_inner);
        log.record(limit, Instant::now())
    }

    /// Drops the buckets of clients that have not been limited for a while.
    /// Runs at most once per [`FORGET_IDLE_CLIENTS_INTERVAL`], on whichever
    /// request comes first, so no background task is needed.
    fn forget_idle_clients(&self) {
        let Ok(mut last_forget) = self.last_forget.try_lock() else {
            return;
        };
        if last_forget.elapsed() < FORGET_IDLE_CLIENTS_INTERVAL {
            return;
        }
        *last_forget = Instant::now();
        drop(last_forget);

        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_patient {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Rejects a request whose client has used up its token bucket.
///
/// The client is the TCP peer address from [`ConnectInfo`]. Behind a
/// reverse proxy that is the proxy, so the limit then applies to all its
/// clients together. `X-Forwarded-For` is not trusted, because any client
/// can send it. A request without [`ConnectInfo`] (a test through
/// `oneshot`) passes.
pub async fn limit_rate_per_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip());
    if let Some(ip) = peer
        && !is_exempt(&request)
        && let Err(error) = state.admission.check_ip(ip)
    {
        return error.into_response();
    }
    next.run(request).await
}

/// Rejects a request at once with 503 `overloaded` when
/// `max_concurrent_requests` requests are already in flight.
///
/// The slot is held until the handler has produced its response. Bodies of
/// epro's responses are in memory by then, so writing them takes no slot.
pub async fn limit_concurrency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_exempt(&request) {
        return next.run(request).await;
    }
    match state.admission.try_enter() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(error) => error.into_response(),
    }
}

/// Replies 503 `timed_out` when the request, body included, takes longer
/// than `request_timeout`.
///
/// The handler is dropped at the deadline. A submission it had already
/// queued for the store is still committed, which is why the message tells
/// the client to retry with the same `submissionId`: the retry then gets the
/// stored receipt.
pub async fn limit_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(timeout) = state.admission.settings.request_timeout else {
        return next.run(request).await;
    };
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::TimedOut { timeout_seconds: timeout.as_secs() }.into_response(),
    }
}

/// Accepts request bodies that are plain or gzip-compressed and rejects any
/// other `Content-Encoding` with 415 `unsupported_content_encoding`.
///
/// The value is matched without regard to case or surrounding spaces and
/// written back as the exact lowercase token that the gzip decoder behind
/// this layer compares byte for byte. A gzip request is marked with
/// [`GzipBody`] for [`mark_decompression_errors`].
pub async fn check_content_encoding(mut request: Request, next: Next) -> Response {
    let values: Vec<&HeaderValue> = request.headers().get_all(header::CONTENT_ENCODING).iter().collect();
    let encoding = match values.as_slice() {
        [] => return next.run(request).await,
        [value] => value.to_str().map(|text| text.trim().to_ascii_lowercase()).ok(),
        _ => None,
    };
    match encoding.as_deref() {
        Some("gzip") => {
            request.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            request.extensions_mut().insert(GzipBody);
        }
        Some("identity") => {
            request.headers_mut().remove(header::CONTENT_ENCODING);
        }
        _ => return ApiError::UnsupportedContentEncoding.into_response(),
    }
    next.run(request).await
}

/// Marks a request whose body arrived gzip-compressed.
#[derive(Debug, Clone, Copy)]
struct GzipBody;

/// Runs behind the gzip decoder: turns its body type back into [`Body`]
/// and, for a gzip request, wraps the body's errors so that a corrupt body
/// is answered 400 `invalid_compressed_body` rather than 500.
pub fn mark_decompression_errors<B>(request: Request<B>) -> Request
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let is_gzip = request.extensions().get::<GzipBody>().is_some();
    request.map(|decoded| {
        let decoded = Body::new(decoded);
        if is_gzip { body::mark_decompression_errors(decoded) } else { decoded }
    })
}

/// Builds the reply to a request whose handler panicked. The panic hook installed by
/// the binary has logged the panic with its location, inside the request
/// span, so this only builds the 500 reply.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Panicked.into_response()
}

/// Returns whether the request goes to a route that skips the rate and
/// concurrency limits.
fn is_exempt(request: &Request) -> bool {
    request.extensions().get::<MatchedPath>().is_some_and(|route| EXEMPT_ROUTES.contains(&route.as_str()))
}

/// Returns the address a client's bucket is keyed by. An IPv4 address is
/// kept as is, also when it arrives mapped into IPv6. An IPv6 address is
/// cut to its /64 prefix, because one host usually controls a whole /64 and
/// could otherwise take a fresh bucket for every request.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// Rounds a wait up to whole seconds for `Retry-After`, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn client_key_groups_ipv6_by_prefix() {
        let first: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let second: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other_prefix: IpAddr = "2001:db8:1:3::1".parse().unwrap();

        assert_eq!(client_key(first), client_key(second));
        assert_ne!(client_key(first), client_key(other_prefix));
        assert_eq!(client_key(first), IpAddr::V6("2001:db8:1:2::".parse::<Ipv6Addr>().unwrap()));
    }

    #[test]
    fn client_key_unmaps_ipv4_in_ipv6() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(client_key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    }

    #[test]
    fn whole_seconds_rounds_up_to_one() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(10)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }

    #[test]
    fn check_patient_limits_per_trial_and_patient() {
        let settings =
            AdmissionSettings { rate_per_patient_per_minute: NonZeroU32::new(2), ..AdmissionSettings::default() };
        let admission = Admission::new(settings);

        assert!(admission.check_patient("demo", "P-1").is_ok());
        assert!(admission.check_patient("demo", "P-1").is_ok());
        let third = admission.check_patient("demo", "P-1").unwrap_err();

        let ApiError::RateLimited { limit, retry_after_seconds } = third else {
            panic!("expected a rate limit, got {third:?}");
        };
        assert_eq!(limit, Limit::RatePatient);
        assert!((1..=30).contains(&retry_after_seconds), "a token returns every 30 s, got {retry_after_seconds}");
        assert!(admission.check_patient("demo", "P-2").is_ok(), "another patient has its own bucket");
        assert!(admission.check_patient("other", "P-1").is_ok(), "the same pseudonym in another trial");
    }

    #[test]
    fn try_enter_rejects_when_full() {
        let settings = AdmissionSettings { max_concurrent_requests: Some(1), ..AdmissionSettings::default() };
        let admission = Admission::new(settings);

        let first = admission.try_enter().unwrap();
        assert!(first.is_some());
        assert!(matches!(admission.try_enter(), Err(ApiError::Overloaded { limit: Limit::Concurrency })));
        drop(first);
        assert!(admission.try_enter().unwrap().is_some(), "the slot is free again");
    }

    #[test]
    fn limit_index_matches_all() {
        for (position, limit) in Limit::ALL.iter().enumerate() {
            assert_eq!(limit.index(), position, "{}", limit.label());
        }
    }
}
