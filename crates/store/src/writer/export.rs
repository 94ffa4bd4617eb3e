//! The audit row of an export. Exports read answers in bulk, so each one leaves a
//! trace of who read which form, though the export itself writes nothing else.

use rusqlite::Connection;
use time::OffsetDateTime;

use super::{AuditEvent, EXPORT_CREATED, insert_audit_event};
use crate::columns::format_utc;
use crate::model::ExportAudit;

/// Appends one audit row: action [`EXPORT_CREATED`], entity `form`, entity id
/// `TRIAL/FORM`, no reason.
///
/// # Errors
///
/// Fails when the actor is empty (a CHECK rejects it) or the insert fails.
pub(super) fn record_export(connection: &Connection, audit: &ExportAudit, now: OffsetDateTime) -> anyhow::Result<()> {
    let occurred_at = format_utc(now)?;
    let entity_id = audit.entity_id();
    insert_audit_event(
        connection,
        &AuditEvent {
            occurred_at: &occurred_at,
            actor: &audit.actor,
            action: EXPORT_CREATED,
            entity: "form",
            entity_id: &entity_id,
            request_id: audit.request_id.as_deref(),
            reason: None,
        },
    )
}
