//! [`WebhookSink`]: POSTs each batch as one signed JSON request to an HTTP endpoint,
//! and [`verify_webhook_signature`] for receivers.
//!
//! Guarantee: `publish` returns `Ok` only after the endpoint responded to the
//! request with a 2xx status. The body is `{"events":[message, ...]}` in `seq` order, with
//! [`message`] as the wire format. Each request carries two headers:
//!
//! - `Epro-Timestamp`: the time of signing, in Unix seconds;
//! - `Epro-Signature`: `v1=` and the lowercase hex HMAC-SHA256, keyed with the shared
//!   secret, of `<timestamp>.<body>`.
//!
//! Signing the timestamp lets the receiver reject a replayed request by its age.
//!
//! Errors:
//!
//! - [`PublishError::Rejected`]: the endpoint responded 4xx other than 408 and 429.
//! - [`PublishError::Unavailable`]: connecting failed or timed out, or the endpoint
//!   responded 408, 429, 5xx or another non-2xx status. Redirects are not followed,
//!   because a 301 or 302 would turn the POST into a GET.

use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use epro_store::OutboxEvent;
use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::sink::{PublishError, SecretUrl, Sink, message};

/// Header with the Unix time in seconds at which the request was signed.
pub const TIMESTAMP_HEADER: &str = "Epro-Timestamp";
/// Header with the request's signature, `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Epro-Signature";

/// Prefix of the signature scheme this version writes and accepts.
const SIGNATURE_PREFIX: &str = "v1=";

/// Maximum number of characters of an error response's body in the error message.
const MAX_ERROR_BODY_CHARS: usize = 200;

type HmacSha256 = Hmac<Sha256>;

/// The `webhook` sink's settings.
///
/// ```toml
/// [outbox.sink]
/// type = "webhook"
/// url = "https://receiver.example/epro/events"
/// secret = "a long random string shared with the receiver"
/// timeout_milliseconds = 10000
/// ```
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoint that receives the POST requests, `http://` or `https://`. A password
    /// or query in it is masked in `Debug` and serialization.
    pub url: SecretUrl,
    /// Key of the HMAC-SHA256 signature, shared with the receiver. Never serialized
    /// or logged. Prefer the `EPRO_OUTBOX__SINK__SECRET` environment variable to
    /// writing it in a file.
    #[serde(skip_serializing)]
    pub secret: SecretString,
    /// Maximum time for one request, from connecting to reading the whole response.
    #[serde(default = "default_timeout_ms")]
    pub timeout_milliseconds: u64,
    /// Maximum time to open the TCP (and TLS) connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_milliseconds: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl WebhookConfig {
    /// Returns a configuration with the default timeouts.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: SecretUrl::new(url),
            secret: SecretString::from(secret.into()),
            timeout_milliseconds: default_timeout_ms(),
            connect_timeout_milliseconds: default_connect_timeout_ms(),
        }
    }
}

/// A sink that POSTs each batch to an HTTP endpoint with an HMAC signature.
pub struct WebhookSink {
    config: WebhookConfig,
    url: reqwest::Url,
    client: reqwest::Client,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Checks `config` and builds the HTTP client.
    ///
    /// # Errors
    ///
    /// Fails when the URL is invalid or not `http` or `https`, the secret is empty,
    /// a timeout is zero, or the HTTP client cannot be built (for example when no
    /// root certificate can be loaded).
    pub fn new(config: WebhookConfig) -> anyhow::Result<Self> {
        let redacted = config.url.redacted();
        let url =
            reqwest::Url::parse(config.url.expose()).with_context(|| format!("invalid webhook url {redacted}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("webhook url {redacted} must start with http:// or https://");
        }
        if config.secret.expose_secret().is_empty() {
            bail!("webhook secret must not be empty");
        }
        if config.timeout_milliseconds == 0 || config.connect_timeout_milliseconds == 0 {
            bail!("webhook timeout_milliseconds and connect_timeout_milliseconds must be greater than 0");
        }

        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_milliseconds))
            .connect_timeout(Duration::from_millis(config.connect_timeout_milliseconds))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("epro-outbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("failed to build the webhook HTTP client")?;
        Ok(WebhookSink { config, url, client })
    }
}

#[async_trait::async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        if events.is_empty() {
            return Ok(());
        }
        let messages: Vec<_> = events.iter().map(message).collect();
        let body = serde_json::to_vec(&json!({ "events": messages })).context("failed to serialize webhook body")?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign_webhook(self.config.secret.expose_secret().as_bytes(), timestamp, &body);
        let redacted = self.config.url.redacted();

        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // `without_url` keeps credentials in the URL out of the message.
            Err(error) => {
                let kind = if error.is_timeout() { "timed out" } else { "failed" };
                return Err(PublishError::Unavailable(
                    anyhow::Error::new(error.without_url())
                        .context(format!("webhook POST of {} events to {redacted} {kind}", events.len())),
                ));
            }
        };

        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = error_body(response).await;
        let error = anyhow!("webhook {redacted} responded {status} to {} events{detail}", events.len());
        if is_retryable(status) { Err(PublishError::Unavailable(error)) } else { Err(PublishError::Rejected(error)) }
    }
}

/// Returns `true` for statuses that do not reject the events: 408, 429, 5xx and any
/// other status that is neither a success nor 4xx.
fn is_retryable(status: StatusCode) -> bool {
    let is_client_error = status.is_client_error();
    !is_client_error || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
}

/// Returns `: <start of the body>` for an error message, or nothing when the body is
/// empty or unreadable.
async fn error_body(response: reqwest::Response) -> String {
    let Ok(text) = response.text().await else {
        return String::new();
    };
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut start: String = text.chars().take(MAX_ERROR_BODY_CHARS).collect();
    if start.len() < text.len() {
        start.push('…');
    }
    format!(": {start}")
}

/// Returns the `Epro-Signature` value of `body` signed at `timestamp` (Unix seconds):
/// `v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn sign_webhook(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = signed_payload_mac(secret, timestamp, body);
    format!("{SIGNATURE_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

fn signed_payload_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Reason a webhook request failed [`verify_webhook_signature`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// `Epro-Timestamp` is not a whole number of Unix seconds.
    #[error("invalid Epro-Timestamp {0:?}: expected Unix seconds")]
    InvalidTimestamp(String),
    /// `Epro-Signature` is not `v1=` followed by 64 hex digits.
    #[error("invalid Epro-Signature: expected v1=<64 hex digits>")]
    InvalidSignatureFormat,
    /// The signature does not match the timestamp and body for this secret.
    #[error("Epro-Signature does not match the request body and timestamp")]
    SignatureMismatch,
    /// The signature is valid but the timestamp is too far from now, so the request
    /// may be a replay.
    #[error("Epro-Timestamp is {age_seconds} s from now, beyond the tolerance of {tolerance_seconds} s")]
    TimestampOutsideTolerance {
        /// Seconds between the timestamp and now; negative for a timestamp in the
        /// future.
        age_seconds: i64,
        /// The tolerance the receiver allowed, in seconds.
        tolerance_seconds: u64,
    },
}

/// Verifies a webhook request as a receiver: the signature in `signature_header`
/// must be the HMAC-SHA256 with `secret` of `<timestamp_header>.<body>`, and the
/// timestamp must be within `tolerance` of `now`, in either direction.
///
/// `body` must be the raw request body, byte for byte, not a re-serialized parse.
/// The comparison of the signature runs in constant time.
///
/// # Errors
///
/// Returns the first check that failed: a malformed header, a signature mismatch
/// (wrong secret, tampered body or timestamp), or a timestamp outside the tolerance.
pub fn verify_webhook_signature(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let timestamp_text = timestamp_header.trim();
    let timestamp: i64 =
        timestamp_text.parse().map_err(|_| SignatureError::InvalidTimestamp(timestamp_text.to_owned()))?;
    let signature_hex =
        signature_header.trim().strip_prefix(SIGNATURE_PREFIX).ok_or(SignatureError::InvalidSignatureFormat)?;
    let signature = hex::decode(signature_hex).map_err(|_| SignatureError::InvalidSignatureFormat)?;
    if signature.len() != 32 {
        return Err(SignatureError::InvalidSignatureFormat);
    }

    signed_payload_mac(secret, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| SignatureError::SignatureMismatch)?;

    let age_seconds = now.unix_timestamp().saturating_sub(timestamp);
    let tolerance_seconds = tolerance.as_secs();
    if age_seconds.unsigned_abs() > tolerance_seconds {
        return Err(SignatureError::TimestampOutsideTolerance { age_seconds, tolerance_seconds });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-7f3a";
    const BODY: &[u8] = br#"{"events":[{"eventId":"0190f0a8-3a55-7c2e-9e61-8d1b2f4a6c01"}]}"#;
    const TOLERANCE: Duration = Duration::from_secs(300);

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).expect("timestamp")
    }

    #[test]
    fn sign_webhook_matches_independent_hmac() {
        // Computed with: printf '1740000000.{"a":1}' | openssl dgst -sha256 -hmac key
        let expected = "v1=0584c3be152492a4962bd5569cd4664fa47fa14f1aa8d91883267b15f22aad0e";

        let signature = sign_webhook(b"key", 1_740_000_000, br#"{"a":1}"#);

        assert_eq!(signature, expected);
    }

    #[test]
    fn verify_accepts_fresh_signature() {
        let signature = sign_webhook(SECRET, 1_740_000_000, BODY);

        let checks = [
            verify_webhook_signature(SECRET, "1740000000", &signature, BODY, at(1_740_000_000), TOLERANCE),
            verify_webhook_signature(SECRET, "1740000000", &signature, BODY, at(1_740_000_300), TOLERANCE),
            verify_webhook_signature(SECRET, "1740000000", &signature, BODY, at(1_739_999_700), TOLERANCE),
            verify_webhook_signature(
                SECRET,
                " 1740000000 ",
                &format!(" {signature} "),
                BODY,
                at(1_740_000_000),
                TOLERANCE,
            ),
        ];

        for (index, check) in checks.into_iter().enumerate() {
            assert_eq!(check, Ok(()), "case {index}");
        }
    }

    #[test]
    fn verify_rejects_tampered_request() {
        let signature = sign_webhook(SECRET, 1_740_000_000, BODY);
        let tampered_body =
            BODY.to_vec().into_iter().map(|byte| if byte == b'6' { b'7' } else { byte }).collect::<Vec<_>>();
        let now = at(1_740_000_000);

        let cases = [
            (verify_webhook_signature(SECRET, "1740000000", &signature, &tampered_body, now, TOLERANCE), "body"),
            (verify_webhook_signature(SECRET, "1740000001", &signature, BODY, now, TOLERANCE), "timestamp"),
            (verify_webhook_signature(b"other-secret", "1740000000", &signature, BODY, now, TOLERANCE), "secret"),
        ];

        for (result, case) in cases {
            assert_eq!(result, Err(SignatureError::SignatureMismatch), "tampered {case}");
        }
    }

    #[test]
    fn verify_rejects_replayed_request() {
        let signature = sign_webhook(SECRET, 1_740_000_000, BODY);

        let old = verify_webhook_signature(SECRET, "1740000000", &signature, BODY, at(1_740_000_301), TOLERANCE);
        let future = verify_webhook_signature(SECRET, "1740000000", &signature, BODY, at(1_739_999_000), TOLERANCE);

        assert_eq!(old, Err(SignatureError::TimestampOutsideTolerance { age_seconds: 301, tolerance_seconds: 300 }));
        assert_eq!(
            future,
            Err(SignatureError::TimestampOutsideTolerance { age_seconds: -1000, tolerance_seconds: 300 })
        );
    }

    #[test]
    fn verify_rejects_malformed_headers() {
        let signature = sign_webhook(SECRET, 1_740_000_000, BODY);
        let now = at(1_740_000_000);
        let hex_only = signature.trim_start_matches(SIGNATURE_PREFIX);

        let cases = [
            ("soon", signature.clone(), SignatureError::InvalidTimestamp("soon".to_owned())),
            ("", signature.clone(), SignatureError::InvalidTimestamp(String::new())),
            ("1740000000", hex_only.to_owned(), SignatureError::InvalidSignatureFormat),
            ("1740000000", format!("v0={hex_only}"), SignatureError::InvalidSignatureFormat),
            ("1740000000", "v1=zz".to_owned(), SignatureError::InvalidSignatureFormat),
            ("1740000000", format!("v1={}", &hex_only[..62]), SignatureError::InvalidSignatureFormat),
        ];

        for (timestamp, signature, expected) in cases {
            let result = verify_webhook_signature(SECRET, timestamp, &signature, BODY, now, TOLERANCE);
            assert_eq!(result, Err(expected), "timestamp {timestamp:?}, signature {signature:?}");
        }
    }

    #[test]
    fn is_retryable_maps_statuses() {
        let cases = [
            (StatusCode::REQUEST_TIMEOUT, true),
            (StatusCode::TOO_MANY_REQUESTS, true),
            (StatusCode::INTERNAL_SERVER_ERROR, true),
            (StatusCode::SERVICE_UNAVAILABLE, true),
            (StatusCode::FOUND, true),
            (StatusCode::BAD_REQUEST, false),
            (StatusCode::UNAUTHORIZED, false),
            (StatusCode::NOT_FOUND, false),
            (StatusCode::PAYLOAD_TOO_LARGE, false),
            (StatusCode::UNPROCESSABLE_ENTITY, false),
        ];
        for (status, expected) in cases {
            assert_eq!(is_retryable(status), expected, "{status}");
        }
    }

    #[test]
    fn webhook_config_debug_hides_secret() {
        let config = WebhookConfig::new("https://hook:pa55word@receiver.test/events?token=tok3n", "s3cret-hmac-key");

        let debug = format!("{config:?}");
        let serialized = serde_json::to_string(&config).expect("serialize config");
        let sink_debug = format!("{:?}", WebhookSink::new(config).expect("valid config"));

        for text in [&debug, &serialized, &sink_debug] {
            assert!(!text.contains("s3cret-hmac-key"), "{text}");
            assert!(!text.contains("pa55word"), "{text}");
            assert!(!text.contains("tok3n"), "{text}");
        }
        assert!(debug.contains("https://hook:***@receiver.test/events?***"), "{debug}");
    }

    #[test]
    fn webhook_sink_rejects_bad_config() {
        let cases = [
            (WebhookConfig::new("receiver.test/events", "secret"), "invalid webhook url"),
            (WebhookConfig::new("ftp://receiver.test/events", "secret"), "http:// or https://"),
            (WebhookConfig::new("http://receiver.test/events", ""), "secret"),
            (
                WebhookConfig { timeout_milliseconds: 0, ..WebhookConfig::new("http://receiver.test/", "secret") },
                "timeout",
            ),
        ];
        for (config, expected) in cases {
            let error = WebhookSink::new(config).expect_err("config must be rejected");
            assert!(format!("{error:#}").contains(expected), "expected {expected:?} in: {error:#}");
        }
    }
}
