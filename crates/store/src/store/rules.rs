//! The part of [`Store`] that serves the rule engine's results after intake: listing
//! data queries and changing their status for site staff, and paging through stored
//! submissions and recording revalidation results for `epro revalidate`.

use super::{OpenBackend, Store, dispatch};
use crate::model::{
    DataQuery, QueryFilter, QueryStatusChange, QueryUpdate, Revalidation, RevalidationOutcome, StoreError,
    StoredSubmission,
};
use crate::reader::SubmissionPage;

impl Store {
    /// Lists the data queries of a trial that match every filter in `filter`, in
    /// `query_id` order, which is creation order. Pass the last `query_id` of a page as
    /// `filter.after` to read the next one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn queries(&self, filter: QueryFilter) -> Result<Vec<DataQuery>, StoreError> {
        dispatch!(self, backend => backend.queries(filter).await)
    }

    /// Reads one data query, or `None` if no query has this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn query(&self, query_id: &str) -> Result<Option<DataQuery>, StoreError> {
        dispatch!(self, backend => backend.query(query_id).await)
    }

    /// Changes the status of a data query. In one savepoint, the writer updates the
    /// query, appends its history row to `data_query_events` and appends an audit row
    /// (action [`QUERY_STATUS_CHANGED`](crate::QUERY_STATUS_CHANGED), entity
    /// `data_query`).
    ///
    /// Any change between two different statuses is allowed, including reopening a
    /// closed query. Which changes a user may make is the caller's decision.
    ///
    /// # Errors
    ///
    /// [`StoreError::Overloaded`] when the writer's queue is full,
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] when the comment is blank, the actor is empty, or the
    /// batch fails to commit. Nothing is changed in any of these cases.
    pub async fn update_query_status(&self, change: QueryStatusChange) -> Result<QueryUpdate, StoreError> {
        dispatch!(self, backend => backend.update_query_status(change).await)
    }

    /// Reads up to `limit` submissions of one form in the order they were stored,
    /// each with its rowid, for revalidation. Pass the last rowid of a page as `after`
    /// to read the next one, and `form_version` to read only that version.
    ///
    /// NOTE: the rowid cursor is stable only while no `VACUUM` runs on the file,
    /// because `VACUUM` may renumber the rowids of a table without an INTEGER PRIMARY
    /// KEY.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn submissions_page(
        &self,
        trial_id: &str,
        form_id: &str,
        form_version: Option<&str>,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, StoredSubmission)>, StoreError> {
        let page = SubmissionPage { trial_id, form_id, form_version, after, limit };
        dispatch!(self, backend => backend.submissions_page(&page).await)
    }

    /// Records the results of re-running the rules over one stored submission. In one
    /// savepoint, the writer appends a `derived_records` row, raises each query the
    /// submission does not have yet with origin `revalidation`, and appends an audit
    /// row (action [`SUBMISSION_REVALIDATED`](crate::SUBMISSION_REVALIDATED)). The
    /// submission row is not touched.
    ///
    /// Waits for queue space rather than failing with [`StoreError::Overloaded`], so
    /// that a revalidation run slows down under load instead of failing. Keep only a
    /// few calls in flight, because each one waiting takes a place in the queue that
    /// submissions share.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] when the submission does not exist, a value fails a
    /// CHECK (see [`Revalidation`]), or the batch fails to commit. Nothing is recorded
    /// in any of these cases.
    pub async fn record_revalidation(&self, record: Revalidation) -> Result<RevalidationOutcome, StoreError> {
        dispatch!(self, backend => backend.record_revalidation(record).await)
    }
}
