//! The intake pipeline shared by every submission endpoint: find the form,
//! check the completion time, validate the answers, and hand the result to
//! the store's group commit. Endpoints differ only in how they parse their
//! envelope and shape their reply.

use epro_forms::{Checked, PublishedForm, Score, Severity, Trial};
use epro_store::{NewAlert, NewQuery, NewSubmission, QueryRef, Receipt, SourceFormat, SubmitOutcome};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::auth::{self, Principal};
use crate::envelope::{Answers, Intake};
use crate::error::{ApiError, Detail, EnvelopeProblem, FieldError};
use crate::query_params;
use crate::state::AppState;

/// Whether the store wrote a new submission or matched an identical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Created,
    Replayed,
}

/// The receipt a client keeps as proof that its submission is stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Receipt)]
pub struct ReceiptBody {
    pub submission_id: String,
    pub trial_id: String,
    pub form_id: String,
    pub form_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// `accepted`, or `accepted_with_queries` when data queries were raised.
    #[schema(schema_with = receipt_status_schema)]
    pub status: &'static str,
    /// The data queries raised on this submission at intake.
    pub queries: Vec<QueryRefBody>,
}

/// Describes the `status` of a receipt and of a stored submission.
pub(crate) fn receipt_status_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["accepted", "accepted_with_queries"])
}

/// A data query named in a receipt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = QueryRef)]
pub struct QueryRefBody {
    pub query_id: String,
    /// The item's `linkId` (or the score's name) the query is about.
    pub item: String,
    /// `rule_violated`, `score_mismatch`, or `stale_form_version` when the
    /// submission named a retired version while a newer one is active.
    pub code: String,
    /// The rule's key or the score's name.
    pub rule: String,
}

impl From<Receipt> for ReceiptBody {
    fn from(receipt: Receipt) -> Self {
        ReceiptBody {
            submission_id: receipt.submission_id,
            trial_id: receipt.trial_id,
            form_id: receipt.form_id,
            form_version: receipt.form_version,
            received_at: receipt.received_at,
            status: receipt.status.as_str(),
            queries: receipt.queries.into_iter().map(QueryRefBody::from).collect(),
        }
    }
}

impl From<QueryRef> for QueryRefBody {
    fn from(query: QueryRef) -> Self {
        QueryRefBody { query_id: query.query_id, item: query.item, code: query.code, rule: query.rule }
    }
}

/// The form a submission is for, as the request named it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub trial_id: &'a str,
    /// `None` when the seed envelope named no form; allowed only for trials
    /// with exactly one form.
    pub form_id: Option<&'a str>,
}

/// Validates an intake against its form and stores it.
///
/// `pointer_base` is where the answers sit in the request body, so that
/// every finding's path points into the body the client sent.
///
/// # Errors
///
/// A submission that names a retired version is validated against that
/// version. It is stored with a `stale_form_version` data query when the form
/// has a newer active version, and rejected with 409 `form_version_retired`
/// when the form has none. A submission that names no version gets the
/// newest active one.
///
/// # Errors
///
/// 404 for an unknown trial, form or version; 409 for a version of a
/// withdrawn form; 429 when the patient is over
/// `http.rate_limit_per_patient_per_minute`; 422 with every finding when
/// validation fails; 409 when the submission id is stored with other
/// content; 503 when the store is full or shutting down.
pub async fn accept(
    state: &AppState,
    principal: &Principal,
    target: Target<'_>,
    intake: Intake,
    pointer_base: &str,
    received_at: OffsetDateTime,
    request_id: Option<String>,
) -> Result<(Disposition, ReceiptBody), ApiError> {
    let catalog = state.catalog();
    let trial = catalog
        .trial(target.trial_id)
        .ok_or_else(|| ApiError::UnknownTrial { trial_id: target.trial_id.to_owned() })?;
    let published = find_form(trial, target, intake.form_version.as_deref())?;
    let stale = stale_version(trial, published)?;
    let actor = auth::authorize_submission(state, principal, target.trial_id, &intake.patient_id).await?;
    // After the lookup, so that only real trials become keys of the limiter.
    state.admission.check_patient(target.trial_id, &intake.patient_id)?;

    let mut errors = Vec::new();
    if let (Some(named), Some(url)) = (&intake.questionnaire, &published.form.url) {
        let is_canonical = named.contains("://") || named.starts_with("urn:");
        if is_canonical && named != url {
            let problem = EnvelopeProblem::QuestionnaireMismatch { expected: url.clone() };
            return Err(ApiError::InvalidEnvelope(vec![FieldError::envelope("questionnaire", problem)]));
        }
    }

    let latest_allowed = received_at + time::Duration::seconds(state.settings.clock_skew_seconds as i64);
    if intake.completed_at > latest_allowed {
        let field = match intake.source {
            epro_store::SourceFormat::Fhir => "authored",
            _ => "completedAt",
        };
        errors.push(FieldError::envelope(
            field,
            EnvelopeProblem::InFuture { clock_skew_seconds: state.settings.clock_skew_seconds },
        ));
    }

    let Checked { normalized, findings, scores, alerts } = match &intake.answers {
        Answers::Native(answers) => epro_forms::check_native(&published.form, answers, pointer_base),
        Answers::Fhir(items) => epro_forms::check_fhir_items(&published.form, items, pointer_base),
    };
    let (rejecting, querying): (Vec<_>, Vec<_>) =
        findings.into_iter().partition(|finding| finding.problem.severity() == Severity::Reject);
    errors.extend(rejecting.into_iter().map(|finding| FieldError {
        item: finding.link_id,
        path: finding.pointer,
        detail: Detail::Answer(finding.problem),
    }));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }

    let mut queries = new_queries(querying);
    queries.extend(stale);
    let due_at = alert_due_at(trial, received_at)?;
    let alerts = alerts
        .into_iter()
        .map(|alert| NewAlert { rule: alert.rule, severity: alert.severity, items: alert.items, due_at })
        .collect();

    let normalized_answers = serde_json::to_string(&normalized)
        .map_err(|error| anyhow::anyhow!("failed to serialize normalized answers: {error}"))?;
    let content_sha256 = content_hash(target.trial_id, published, &intake, &normalized_answers)?;
    let submission = NewSubmission {
        submission_id: intake.submission_id,
        trial_id: target.trial_id.to_owned(),
        form_id: published.id.clone(),
        form_version: published.version.clone(),
        actor,
        patient_id: intake.patient_id,
        completed_at: intake.completed_at,
        received_at,
        source: intake.source,
        raw_answers: intake.raw,
        normalized_answers,
        content_sha256,
        request_id,
        scores: scores_json(&scores),
        queries,
        alerts,
    };

    match state.store.submit(submission).await {
        Ok(SubmitOutcome::Created(receipt)) => {
            state.metrics.record_submission_accepted(target.trial_id, &published.id);
            Ok((Disposition::Created, receipt.into()))
        }
        Ok(SubmitOutcome::Replayed(receipt)) => Ok((Disposition::Replayed, receipt.into())),
        Ok(SubmitOutcome::Conflict(receipt)) => Err(ApiError::Conflict { submission_id: receipt.submission_id }),
        Err(error) => Err(ApiError::from_store(error, "failed to store submission")),
    }
}

/// Returns when an alert raised now escalates: `received_at` plus the trial's
/// acknowledgement deadline (`[alerts]` in its trial file).
pub(crate) fn alert_due_at(trial: &Trial, received_at: OffsetDateTime) -> Result<OffsetDateTime, ApiError> {
    let deadline = trial.alerts.acknowledge_within;
    received_at
        .checked_add(time::Duration::try_from(deadline).map_err(|error| anyhow::anyhow!("alert deadline: {error}"))?)
        .ok_or_else(|| anyhow::anyhow!("alert deadline of trial {} overflows the date range", trial.id).into())
}

/// Code of the data query raised on a submission that names a retired form
/// version while a newer version of the form is active.
pub(crate) const STALE_FORM_VERSION: &str = "stale_form_version";

/// Decides what a submission for `published` needs because of retirement:
/// nothing for an active version, a `stale_form_version` query for a retired
/// version of a form that has a newer active one, and 409 for a version of a
/// form that has no active version left.
fn stale_version(trial: &Trial, published: &PublishedForm) -> Result<Option<NewQuery>, ApiError> {
    let Some(retired_at) = published.retired_at else {
        return Ok(None);
    };
    let Some(current) = trial.current_form(&published.id) else {
        return Err(ApiError::FormVersionRetired {
            form_id: published.id.clone(),
            version: published.version.clone(),
            retired_at,
        });
    };
    let retired_at = retired_at
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|error| anyhow::anyhow!("failed to format a retirement time: {error}"))?;
    let params = serde_json::json!({
        "version": published.version,
        "retiredAt": retired_at,
        "currentVersion": current.version,
    });
    Ok(Some(NewQuery {
        item: String::new(),
        code: STALE_FORM_VERSION.to_owned(),
        rule: String::new(),
        params: params.to_string(),
    }))
}

/// Turns findings into data queries to store, each with its code, rule and
/// message parameters.
pub fn new_queries(findings: impl IntoIterator<Item = epro_forms::Finding>) -> Vec<NewQuery> {
    findings
        .into_iter()
        .map(|finding| NewQuery {
            rule: query_rule(&finding.problem),
            code: finding.problem.code().to_owned(),
            params: query_params::encode(&finding.problem).to_string(),
            item: finding.link_id,
        })
        .collect()
}

/// Validates a stored submission again, from its raw answers as received,
/// with the form's current rules. Used by revalidation.
///
/// # Errors
///
/// Fails when the stored raw answers are not the JSON their source format
/// implies, which the store's checks make impossible for rows it wrote.
pub fn recheck(form: &epro_forms::Form, source: SourceFormat, raw: &str) -> anyhow::Result<Checked> {
    let value: serde_json::Value = serde_json::from_str(raw)?;
    Ok(match source {
        SourceFormat::Native => epro_forms::check_native(form, &value, "/answers"),
        SourceFormat::Seed => {
            let mut answers = value;
            if let Some(object) = answers.as_object_mut() {
                object.remove("completedAt");
            }
            epro_forms::check_native(form, &answers, "/formContent")
        }
        SourceFormat::Fhir => {
            let items = value.get("item").cloned().unwrap_or(serde_json::Value::Null);
            epro_forms::check_fhir_items(form, &items, "/item")
        }
    })
}

/// Returns the rule key or score name a query-raising finding is about.
fn query_rule(problem: &epro_forms::Problem) -> String {
    match problem {
        epro_forms::Problem::RuleViolated { rule, .. } => rule.clone(),
        epro_forms::Problem::ScoreMismatch { score, .. } => score.clone(),
        _ => String::new(),
    }
}

/// Encodes computed scores for storage: `[{name, value, sent}]`, the value
/// as a decimal string (exact, locale-free) or null when not computable.
pub fn scores_json(scores: &[Score]) -> String {
    let scores: Vec<serde_json::Value> = scores
        .iter()
        .map(|score| {
            serde_json::json!({
                "name": score.name,
                "value": score.value.map(|value| value.normalize().to_string()),
                "sent": score.sent,
            })
        })
        .collect();
    serde_json::Value::Array(scores).to_string()
}

fn find_form<'a>(trial: &'a Trial, target: Target<'_>, version: Option<&str>) -> Result<&'a PublishedForm, ApiError> {
    let Some(form_id) = target.form_id else {
        return trial.single_form().ok_or_else(|| {
            // Each form id once, in the order first published, and only forms that
            // still take submissions.
            let mut form_ids: Vec<String> = Vec::new();
            for form in trial.forms.iter().filter(|form| form.current) {
                if !form_ids.contains(&form.id) {
                    form_ids.push(form.id.clone());
                }
            }
            ApiError::InvalidEnvelope(vec![FieldError::envelope("formId", EnvelopeProblem::FormRequired { form_ids })])
        });
    };

    trial.form(form_id, version).map_err(|error| match error {
        epro_forms::LookupError::UnknownForm => {
            ApiError::UnknownForm { trial_id: target.trial_id.to_owned(), form_id: form_id.to_owned() }
        }
        epro_forms::LookupError::UnknownVersion => {
            ApiError::UnknownVersion { form_id: form_id.to_owned(), version: version.unwrap_or_default().to_owned() }
        }
    })
}

/// Hashes what makes two submissions "the same": trial, form, version,
/// patient, completion instant and offset, and the normalized answers.
/// A retry that reformats its JSON or sends a bare option code instead of a
/// full Coding is still the same submission.
fn content_hash(
    trial_id: &str,
    published: &PublishedForm,
    intake: &Intake,
    normalized_answers: &str,
) -> Result<[u8; 32], ApiError> {
    // A completion time the server stamped differs on every retry, so it is
    // not part of what identifies the content.
    let completed_at = if intake.completed_at_stamped {
        String::new()
    } else {
        intake
            .completed_at
            .format(&Rfc3339)
            .map_err(|error| anyhow::anyhow!("failed to format completedAt: {error}"))?
    };
    let identity = (trial_id, &published.id, &published.version, &intake.patient_id, completed_at, normalized_answers);
    let bytes = serde_json::to_vec(&identity).map_err(|error| anyhow::anyhow!("failed to encode content: {error}"))?;
    Ok(Sha256::digest(bytes).into())
}

/// Returns the server clock truncated to milliseconds, the precision
/// receipts carry.
pub fn now_millis() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now)
}
