//! The part of [`Store`] that keeps staff accounts, enrolments and their tokens, and
//! finds the credential a presented token belongs to.

use time::OffsetDateTime;

use super::{OpenBackend, Store, dispatch};
use crate::model::{
    AccessChange, AccessOutcome, ChangeOrigin, Credential, Enrolment, EnrolmentFilter, StaffMember, StoreError,
    TokenDigest,
};

impl Store {
    /// Applies one change to staff accounts, enrolments or tokens and appends its audit
    /// row, in one transaction. Creating what exists, or changing what does not,
    /// writes nothing and says so in the outcome. A revocation that finds no active
    /// token writes no audit row.
    ///
    /// # Errors
    ///
    /// [`StoreError::Overloaded`] when the SQLite writer's queue is full,
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when a grant does not fit its role, a token digest is
    /// taken, or the transaction fails. Nothing is changed in any of these cases.
    pub async fn change_access(&self, change: AccessChange, origin: ChangeOrigin) -> Result<AccessOutcome, StoreError> {
        dispatch!(self, backend => backend.change_access(change, origin).await)
    }

    /// Finds the staff or patient token whose digest is `digest`, revoked and expired
    /// tokens included, or `None` for a digest no token has.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn credential(&self, digest: TokenDigest) -> Result<Option<Credential>, StoreError> {
        dispatch!(self, backend => backend.credential(digest).await)
    }

    /// Lists enrolments that match `filter`, in patient id order, each with the number
    /// of its tokens active at `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn enrolments(&self, filter: EnrolmentFilter, now: OffsetDateTime) -> Result<Vec<Enrolment>, StoreError> {
        dispatch!(self, backend => backend.enrolments(filter, now).await)
    }

    /// Reads one patient's enrolment in a trial, or `None` if the patient is not
    /// enrolled.
    ///
    /// # Errors
    ///
    /// As [`enrolments`](Store::enrolments).
    pub async fn enrolment(&self, trial_id: &str, patient_id: &str) -> Result<Option<Enrolment>, StoreError> {
        let filter = EnrolmentFilter {
            trial_id: trial_id.to_owned(),
            site_id: None,
            patient_id: Some(patient_id.to_owned()),
            after: None,
            limit: 1,
        };
        Ok(self.enrolments(filter, OffsetDateTime::now_utc()).await?.pop())
    }

    /// Lists staff accounts in staff id order with their grants and the number of
    /// their tokens active at `now`; only `staff_id` when it is given.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn staff_members(
        &self,
        staff_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<StaffMember>, StoreError> {
        let staff_id = staff_id.map(str::to_owned);
        dispatch!(self, backend => backend.staff_members(staff_id, now).await)
    }
}
