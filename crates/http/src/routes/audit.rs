//! The audit trail for reviewers: `GET /v1/audit` lists audit rows in `seq` order,
//! filtered by trial, patient, submission, actor and time, paged by a `seq` cursor.
//! It needs `read_audit`: an admin reads every row; a data manager or monitor
//! reads only with `trialId` set to their trial.
//!
//! The reply is streamed. The first page is read before the status is sent, so a
//! database error is still a proper error reply. Later pages are read and written one
//! at a time, so a large listing never sits in memory whole. A database error after
//! the reply started ends the body early, and the truncated JSON tells the client the
//! read failed.
//!
//! Each row carries `prevHash` and `hash`, so that a reviewer can recompute the chain
//! from this reply alone; `before` and `after` are sent exactly as stored, because the
//! hash covers their text.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use epro_store::{AuditFilter, AuditRecord, Store};
use futures_util::StreamExt as _;
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::auth::{self, Permission, Principal, Scope};
use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError};
use crate::openapi::errors::{self, Layers};
use crate::openapi::shapes;
use crate::state::AppState;

/// The query parameters of the endpoint, as named in error messages.
const PARAMETERS: &[&str] = &["trialId", "patientId", "submissionId", "actor", "from", "to", "after", "limit"];

/// Rows returned when the request names no `limit`.
const DEFAULT_LIMIT: usize = 100;

/// Most rows one request returns.
const MAX_LIMIT: usize = 10_000;

/// Rows read from the store at a time while the reply streams.
const PAGE_ROWS: usize = 500;

/// The filters and paging of the list endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only rows of this trial.
    trial_id: Option<String>,
    /// Only rows about this patient.
    patient_id: Option<String>,
    /// Only rows about this submission.
    submission_id: Option<String>,
    /// Only rows written by this actor, such as `operator` or `patient:P-0001`.
    actor: Option<String>,
    /// Only rows at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only rows before this instant (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// The `next` cursor of the previous page: a `seq`.
    after: Option<i64>,
    /// Most rows in the reply, 1 to 10,000; 100 when absent.
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<usize>,
}

/// One audit row as the reply carries it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry)]
pub(crate) struct AuditEntryBody<'a> {
    /// The row's position in the trail and in the hash chain.
    seq: i64,
    /// When the change was written, as stored.
    occurred_at: &'a str,
    actor: &'a str,
    action: &'a str,
    entity: &'a str,
    entity_id: &'a str,
    #[schema(required = true)]
    trial_id: Option<&'a str>,
    #[schema(required = true)]
    patient_id: Option<&'a str>,
    #[schema(required = true)]
    submission_id: Option<&'a str>,
    /// The entity before the change, exactly as stored.
    #[schema(required = true, schema_with = crate::openapi::any_json_value)]
    before: Option<&'a RawValue>,
    /// The entity after the change, exactly as stored.
    #[schema(required = true, schema_with = crate::openapi::any_json_value)]
    after: Option<&'a RawValue>,
    #[schema(required = true)]
    reason: Option<&'a str>,
    #[schema(required = true)]
    request_id: Option<&'a str>,
    /// True when `before` and `after` are withheld (sent as null) because they
    /// concern a patient whose data the caller may not read, as for an admin.
    /// Such a row's hash cannot be recomputed from this reply; `epro audit
    /// verify` checks it in the database.
    values_redacted: bool,
    /// The previous row's `hash`, in hex.
    #[schema(required = true)]
    prev_hash: Option<String>,
    /// SHA-256 over `prevHash` and this row's canonical content, in hex.
    #[schema(required = true)]
    hash: Option<String>,
}

/// The errors of [`list`].
pub(crate) struct AuditErrors;

impl IntoResponses for AuditErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::ReadAudit },
            ApiError::InvalidEnvelope(vec![
                FieldError::query_parameter(PARAMETERS, Some(MAX_LIMIT)),
                FieldError::query_value("from", EnvelopeProblem::InvalidDateTime),
            ]),
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Lists audit rows, oldest first, as `{"entries": [...], "next": seq | null}`.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "listAuditTrail",
    tag = "audit",
    summary = "Read the audit trail",
    description = "Audit rows in `seq` order with their hash chain, streamed. A database failure after the \
        reply started ends the body early, so JSON that does not parse means the read failed. Needs \
        `read_audit`: admins read every row, data managers and monitors only with `trialId` set to their trial.",
    params(AuditParams),
    responses(
        (status = 200, description = "One page of rows; pass `next` as `after` for the next.",
            body = shapes::AuditPage),
        AuditErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    let Query(params) = params.map_err(|rejection| {
        tracing::debug!(error.message = %rejection.body_text(), "Invalid query parameters");
        ApiError::InvalidEnvelope(vec![FieldError::query_parameter(PARAMETERS, Some(MAX_LIMIT))])
    })?;
    let scope = match params.trial_id.as_deref() {
        Some(trial_id) => Scope::Trial(trial_id),
        None => Scope::System,
    };
    auth::require_in(&state, &principal, Permission::ReadAudit, scope)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::query_parameter(PARAMETERS, Some(MAX_LIMIT))]));
    }
    let mut errors = Vec::new();
    let from = parse_instant("from", params.from.as_deref(), &mut errors);
    let to = parse_instant("to", params.to.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::InvalidEnvelope(errors));
    }

    let filter = AuditFilter {
        trial_id: params.trial_id,
        patient_id: params.patient_id,
        submission_id: params.submission_id,
        actor: params.actor,
        from,
        to,
        after_seq: params.after.unwrap_or(0),
        limit: limit.min(PAGE_ROWS),
    };
    let first_page = state
        .store
        .audit_events(filter.clone())
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read the audit trail"))?;

    let pages = Pages {
        store: state.store.clone(),
        principal,
        filter,
        remaining: limit,
        page: Some(first_page),
        started: false,
    };
    let mut response = Body::from_stream(pages.into_stream()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn parse_instant(name: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    let value = value?;
    match OffsetDateTime::parse(value, &Rfc3339) {
        Ok(instant) => Some(instant),
        Err(_) => {
            errors.push(FieldError::query_value(name, EnvelopeProblem::InvalidDateTime));
            None
        }
    }
}

/// The state of a streaming reply: the rows still to send and where to read next.
struct Pages {
    store: Store,
    /// The caller, whose roles decide which rows' values are withheld.
    principal: Principal,
    filter: AuditFilter,
    /// Rows the request may still receive.
    remaining: usize,
    /// The page read but not sent yet.
    page: Option<Vec<AuditRecord>>,
    /// Whether a row was written already, so the next needs a comma.
    started: bool,
}

impl Pages {
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        let opening = stream::once(async { Ok(Bytes::from_static(b"{\"entries\":[")) });
        let rows = stream::unfold(Some(self), |pages| async move { pages?.next_chunk().await });
        opening.chain(rows)
    }

    /// Writes the current page and reads the next, or writes the closing part with
    /// the cursor once the rows run out. Returns `None` after the closing part.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::io::Error>, Option<Pages>)> {
        let page = self.page.take()?;
        let full_page = page.len() == self.filter.limit;
        let mut chunk = Vec::with_capacity(page.len() * 512);
        for record in &page {
            if self.started {
                chunk.push(b',');
            }
            self.started = true;
            let redact = !may_read_values(&self.principal, record);
            if let Err(error) = serde_json::to_writer(&mut chunk, &entry_body(record, redact)) {
                return Some((Err(std::io::Error::other(error)), None));
            }
        }
        self.remaining -= page.len();
        let last_seq = page.last().map(|record| record.seq);

        if !full_page || self.remaining == 0 {
            // `next` is set when the request's limit cut the listing short, because more
            // rows may follow; a short page means the trail has no more.
            let next = if full_page { last_seq } else { None };
            let closing = serde_json::json!(next).to_string();
            chunk.extend_from_slice(format!("],\"next\":{closing}}}").as_bytes());
            return Some((Ok(Bytes::from(chunk)), None));
        }

        self.filter.after_seq = last_seq.unwrap_or(self.filter.after_seq);
        self.filter.limit = self.remaining.min(PAGE_ROWS);
        match self.store.audit_events(self.filter.clone()).await {
            Ok(next_page) => {
                self.page = Some(next_page);
                Some((Ok(Bytes::from(chunk)), Some(self)))
            }
            Err(error) => {
                tracing::error!(error.message = %error, "Failed to read the audit trail while streaming; reply cut short");
                Some((Err(std::io::Error::other("failed to read the audit trail")), None))
            }
        }
    }
}

/// Returns whether the caller may read the before and after values of `record`:
/// always for rows about no patient, otherwise only with `read_submissions` for the
/// whole trial. Values of corrections hold answers, which an admin must not see.
fn may_read_values(principal: &Principal, record: &AuditRecord) -> bool {
    match (&record.patient_id, &record.trial_id) {
        (None, _) => true,
        (Some(_), Some(trial_id)) => {
            auth::require(principal, Permission::ReadSubmissions, Scope::Trial(trial_id)).is_ok()
        }
        (Some(_), None) => false,
    }
}

fn entry_body(record: &AuditRecord, redact: bool) -> AuditEntryBody<'_> {
    AuditEntryBody {
        seq: record.seq,
        occurred_at: &record.occurred_at,
        actor: &record.actor,
        action: &record.action,
        entity: &record.entity,
        entity_id: &record.entity_id,
        trial_id: record.trial_id.as_deref(),
        patient_id: record.patient_id.as_deref(),
        submission_id: record.submission_id.as_deref(),
        before: if redact { None } else { raw_json(record.before_value.as_deref()) },
        after: if redact { None } else { raw_json(record.after_value.as_deref()) },
        values_redacted: redact,
        reason: record.reason.as_deref(),
        request_id: record.request_id.as_deref(),
        prev_hash: record.prev_hash.map(hex::encode),
        hash: record.hash.map(hex::encode),
    }
}

/// Borrows stored JSON text as a raw value, so that it is sent byte for byte. The store
/// checks these columns are valid JSON, so `None` means the column was empty.
fn raw_json(text: Option<&str>) -> Option<&RawValue> {
    text.and_then(|text| serde_json::from_str(text).ok())
}
