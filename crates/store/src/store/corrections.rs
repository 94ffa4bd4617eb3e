//! The part of [`Store`] that corrects stored submissions and records investigators'
//! signatures, and reads a submission with all its versions.

use super::{OpenBackend, Store, dispatch};
use crate::model::{CorrectionOutcome, NewCorrection, NewSignature, SignOutcome, StoreError, SubmissionHistory};

impl Store {
    /// Stores a correction as the next version of its submission, or reports a retry
    /// or an outdated base version.
    ///
    /// In one transaction: the `submission_versions` row, the data queries of the new
    /// version, the voiding of every valid signature on the submission with one
    /// [`SIGNATURE_VOIDED`](crate::SIGNATURE_VOIDED) audit row each, a
    /// [`SUBMISSION_CORRECTED`](crate::SUBMISSION_CORRECTED) outbox event (ids,
    /// version numbers and changed linkIds, never answers) and a
    /// [`SUBMISSION_CORRECTED`](crate::SUBMISSION_CORRECTED) audit row whose
    /// `before_value` and `after_value` hold the changed items' answers and whose
    /// reason is the correction's.
    ///
    /// Version N+1 is always made from version N. When the base version already has a
    /// successor, the request is compared with it by content hash: the same content is
    /// [`CorrectionOutcome::Replayed`], other content
    /// [`CorrectionOutcome::Conflict`], as is a base version above the latest. On
    /// PostgreSQL the submission's row is locked first, so two corrections of one
    /// submission run one after the other.
    ///
    /// # Errors
    ///
    /// [`StoreError::Overloaded`] when the SQLite writer's queue is full,
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when no item changes, the reason is blank, the actor
    /// empty, the answers or scores are not the JSON expected, or the transaction fails
    /// to commit. Nothing is stored in any of these cases.
    pub async fn correct(&self, correction: NewCorrection) -> Result<CorrectionOutcome, StoreError> {
        dispatch!(self, backend => backend.correct(correction).await)
    }

    /// Signs the latest version of a submission: one `signatures` row and one
    /// [`SIGNATURE_APPLIED`](crate::SIGNATURE_APPLIED) audit row, in one transaction.
    /// A valid signature by the same signer with the same meaning on that version is
    /// returned as [`SignOutcome::AlreadySigned`], and nothing is written.
    ///
    /// # Errors
    ///
    /// [`StoreError::Overloaded`] when the SQLite writer's queue is full,
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when the signer is empty, the meaning blank, or the
    /// transaction fails to commit. Nothing is stored in any of these cases.
    pub async fn sign(&self, signature: NewSignature) -> Result<SignOutcome, StoreError> {
        dispatch!(self, backend => backend.sign(signature).await)
    }

    /// Reads a submission with the data queries of every version, every version and
    /// every signature, all as of one commit, or `None` if no submission has this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn submission_history(&self, id: &str) -> Result<Option<SubmissionHistory>, StoreError> {
        dispatch!(self, backend => backend.submission_history(id).await)
    }
}
