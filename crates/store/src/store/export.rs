//! The part of [`Store`] that serves exports: the high-water mark an export starts
//! with, its pages of submissions in commit order, and its audit row.

use super::{OpenBackend, Store, dispatch};
use crate::model::{ExportAudit, ExportCursor, ExportPage, ExportRow, StoreError};

impl Store {
    /// Returns the high-water mark of a new export: every submission committed before
    /// this call is at or before it, and every submission committed later sorts after
    /// it. Export the rows after the caller's cursor up to this mark, then hand it out
    /// as the next cursor.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn export_mark(&self) -> Result<ExportCursor, StoreError> {
        dispatch!(self, backend => backend.export_mark().await)
    }

    /// Returns true when `cursor` was made by this store's backend, so that
    /// [`export_page`](Store::export_page) can take it.
    pub fn accepts_export_cursor(&self, cursor: &ExportCursor) -> bool {
        match &self.inner.backend {
            OpenBackend::Sqlite(_) => cursor.is_sqlite(),
            OpenBackend::Postgres(_) => !cursor.is_sqlite(),
        }
    }

    /// Reads up to `page.limit` submissions of one form that the mark `page.until`
    /// covers and the cursor `page.since` does not, in commit order. Pass the last
    /// row's [`key`](ExportRow::key) as `page.after` to read the next page; an empty
    /// page is the end.
    ///
    /// Each page is its own read, so a long export holds no transaction open. Pages
    /// still fit together: the rows a mark covers are settled when the mark is taken,
    /// and nothing is added among them later.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when a cursor belongs to the other backend or on a
    /// database error.
    pub async fn export_page(&self, page: &ExportPage<'_>) -> Result<Vec<ExportRow>, StoreError> {
        dispatch!(self, backend => backend.export_page(page).await)
    }

    /// Appends the audit row of an export: action
    /// [`EXPORT_CREATED`](crate::EXPORT_CREATED), entity `form`, entity id
    /// `TRIAL/FORM`, no reason.
    ///
    /// # Errors
    ///
    /// [`StoreError::Overloaded`] when the SQLite writer's queue is full,
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when the actor is empty or the write fails.
    pub async fn record_export(&self, audit: ExportAudit) -> Result<(), StoreError> {
        dispatch!(self, backend => backend.record_export(audit).await)
    }
}
