//! One JSON object per submission version, one per line: the row's fields, its scores
//! by name and its normalized answers as typed JSON, unchanged.

use epro_store::ExportRow;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::layout::{Layout, scores};

/// Returns the NDJSON object of one row: one version of a submission.
/// `correctionReason` and `correctedAt` are `null` for version 1.
pub(crate) fn record(layout: &Layout, row: &ExportRow) -> Value {
    let answers: Value = serde_json::from_str(&row.normalized_answers).unwrap_or(Value::Null);
    let scores: Map<String, Value> = scores(&row.scores).into_iter().collect();
    json!({
        "submissionId": row.submission_id,
        "version": row.version,
        "correctionReason": row.correction_reason,
        "correctedAt": row.corrected_at.map(format_utc),
        "trialId": layout.trial_id,
        "formId": layout.form_id,
        "formVersion": row.form_version,
        "patientId": row.patient_id,
        "completedAt": format_utc(row.completed_at),
        "completedAtOffset": format_offset(row.completed_at),
        "receivedAt": format_utc(row.received_at),
        "source": row.source.as_str(),
        "status": row.status.as_str(),
        "queryCount": row.query_count,
        "scores": scores,
        "answers": answers,
    })
}

/// Formats an instant as RFC 3339 in UTC with a `Z`.
pub(crate) fn format_utc(instant: OffsetDateTime) -> String {
    instant.to_offset(UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
}

/// Formats the UTC offset of an instant as `+08:00`, or `+05:30:15` when it
/// has seconds.
pub(crate) fn format_offset(instant: OffsetDateTime) -> String {
    let offset = instant.offset();
    let total = offset.whole_seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let total = total.unsigned_abs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if seconds == 0 {
        format!("{sign}{hours:02}:{minutes:02}")
    } else {
        format!("{sign}{hours:02}:{minutes:02}:{seconds:02}")
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn format_offset_writes_sign_hours_minutes() {
        assert_eq!(format_offset(datetime!(2026-12-04 20:15 +08:00)), "+08:00");
        assert_eq!(format_offset(datetime!(2026-12-04 20:15 -03:30)), "-03:30");
        assert_eq!(format_offset(datetime!(2026-12-04 20:15 UTC)), "+00:00");
        assert_eq!(format_offset(datetime!(2026-12-04 20:15 +05:30:15)), "+05:30:15");
    }

    #[test]
    fn format_utc_moves_to_utc() {
        assert_eq!(format_utc(datetime!(2026-12-04 20:15 +08:00)), "2026-12-04T12:15:00Z");
    }
}
