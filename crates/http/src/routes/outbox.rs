//! The outbox for operators: `GET /v1/outbox/dead-letters` lists the events
//! the sink refused `outbox.dead_letter_after_rejections` times. It needs the
//! operator token. `epro outbox replay` sends them again.
//!
//! The reply carries ids, event types, counters and the sink's last error,
//! never answers: outbox events hold none.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use epro_store::OutboxEventState;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses, ToSchema};
use uuid::Uuid;

use crate::auth::{self, Permission, Principal, Scope};
use crate::error::{ApiError, ErrorShape, FieldError};
use crate::openapi::errors::{self, Layers};
use crate::state::AppState;

/// The query parameters of the list endpoint, as named in error messages.
const PAGING_PARAMETERS: &[&str] = &["after", "limit"];

/// Most events returned by one list request.
const MAX_PAGE: usize = 500;

/// Paging of the list endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// The `next` cursor of the previous page: a sequence number.
    after: Option<i64>,
    /// Most events in the reply, 1 to 500; 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One dead-lettered event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeadLetter)]
pub struct DeadLetterBody {
    /// The event's position in the outbox.
    seq: i64,
    /// The id consumers deduplicate on; a replay keeps it.
    event_id: Uuid,
    /// `submission.accepted` or `alert.raised`.
    #[serde(rename = "type")]
    event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    trial_id: String,
    submission_id: String,
    /// Publish attempts so far.
    attempts: u32,
    /// How many times the sink refused the event.
    rejections: u32,
    /// The sink's last error text.
    #[schema(required = true)]
    last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    dead_lettered_at: Option<OffsetDateTime>,
}

/// A page of dead letters.
#[derive(Serialize, ToSchema)]
#[schema(as = DeadLetterPage)]
pub struct DeadLettersBody {
    events: Vec<DeadLetterBody>,
    /// Pass as `after` to read the next page; `null` on the last page.
    #[schema(required = true)]
    next: Option<i64>,
}

/// The errors of [`dead_letters`].
pub(crate) struct DeadLetterErrors;

impl IntoResponses for DeadLetterErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::ManageOutbox },
            ApiError::InvalidEnvelope(vec![FieldError::query_parameter(PAGING_PARAMETERS, Some(MAX_PAGE))]),
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Lists dead-lettered events, oldest first.
#[utoipa::path(
    get,
    path = "/v1/outbox/dead-letters",
    operation_id = "listDeadLetters",
    tag = "outbox",
    summary = "List dead-lettered events",
    description = "Events the sink refused `outbox.dead_letter_after_rejections` times, oldest first; \
        `epro outbox replay` sends them again. Never contains answers. Needs `manage_outbox` (admin).",
    params(DeadLetterParams),
    responses(
        (status = 200, description = "One page of events; pass `next` as `after` for the next.",
            body = DeadLettersBody),
        DeadLetterErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<DeadLetterParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLettersBody>, ApiError> {
    auth::require_in(&state, &principal, Permission::ManageOutbox, Scope::System)?;
    let Query(params) = params.map_err(|rejection| {
        tracing::debug!(error.message = %rejection.body_text(), "Invalid query parameters");
        ApiError::InvalidEnvelope(vec![FieldError::query_parameter(PAGING_PARAMETERS, Some(MAX_PAGE))])
    })?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::query_parameter(PAGING_PARAMETERS, Some(MAX_PAGE))]));
    }

    let states = state
        .store
        .outbox_dead_letters(params.after, limit)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to list dead letters"))?;

    let next = if states.len() == limit { states.last().map(|state| state.event.seq) } else { None };
    let events = states.into_iter().map(dead_letter_body).collect();
    Ok(Json(DeadLettersBody { events, next }))
}

fn dead_letter_body(state: OutboxEventState) -> DeadLetterBody {
    let event = state.event;
    DeadLetterBody {
        seq: event.seq,
        event_id: event.event_id,
        event_type: event.event_type,
        occurred_at: event.occurred_at,
        trial_id: event.trial_id,
        submission_id: event.submission_id,
        attempts: event.attempts,
        rejections: state.rejections,
        last_error: state.last_error,
        dead_lettered_at: state.dead_lettered_at,
    }
}
