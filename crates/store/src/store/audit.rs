//! The part of [`Store`] that reads the audit trail and checks its hash chain.

use super::{OpenBackend, Store, dispatch};
use crate::audit::ChainWalk;
use crate::model::{AuditFilter, AuditRecord, AuditVerification, StoreError};

/// Rows read per page while walking the chain: enough to keep the round trips few,
/// small enough that memory stays bounded whatever the length of the trail.
const VERIFY_PAGE_ROWS: usize = 1_000;

impl Store {
    /// Reads up to `filter.limit` audit rows that match every filter set, in `seq`
    /// order after `filter.after_seq`. Pass the last `seq` of a page as the next
    /// `after_seq`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn audit_events(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self, backend => backend.audit_events(filter).await)
    }

    /// Walks the whole audit trail in `seq` order, one page at a time, and checks that
    /// every row links to the row before and matches its own hash. Stops at the first
    /// row that does not.
    ///
    /// Rows appended while the walk runs are checked too, until a page comes back
    /// empty.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn audit_verify(&self) -> Result<AuditVerification, StoreError> {
        let mut walk = ChainWalk::default();
        let mut after_seq = 0;
        loop {
            let filter = AuditFilter { after_seq, limit: VERIFY_PAGE_ROWS, ..AuditFilter::default() };
            let page = self.audit_events(filter).await?;
            let Some(last) = page.last() else {
                return Ok(AuditVerification::Intact { entries: walk.checked(), head: walk.head() });
            };
            after_seq = last.seq;

            for record in &page {
                if let Err(broken) = walk.check(record) {
                    return Ok(AuditVerification::Broken(broken));
                }
            }
        }
    }
}
