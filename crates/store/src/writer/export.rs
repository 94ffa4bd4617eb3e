//! The audit row of an export. Exports read answers in bulk, so each one leaves a
//! trace of who read which form, though the export itself writes nothing else.

use rusqlite::Connection;
use time::OffsetDateTime;

use super::{EXPORT_CREATED, insert_audit_event};
use crate::audit::AuditEntry;
use crate::model::ExportAudit;

/// Appends one audit row: action [`EXPORT_CREATED`], entity `form`, entity id
/// `TRIAL/FORM`, no reason.
///
/// # Errors
///
/// Fails when the actor is empty (a CHECK rejects it) or the insert fails.
pub(super) fn record_export(connection: &Connection, audit: &ExportAudit, now: OffsetDateTime) -> anyhow::Result<()> {
    let entity_id = audit.entity_id();
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&audit.trial_id),
            request_id: audit.request_id.as_deref(),
            ..AuditEntry::new(now, &audit.actor, EXPORT_CREATED, "form", &entity_id)
        },
    )
}
