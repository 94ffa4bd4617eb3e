//! The part of [`Store`] that keeps the trial catalogue: trials with their sites, and
//! the form versions published into them. Each change commits with its audit row
//! and advances the catalogue generation, which every instance polls to reload.

use super::{OpenBackend, Store, dispatch};
use crate::model::{
    CatalogSnapshot, FormRetirement, NewFormVersion, NewTrial, PublishOutcome, RetireOutcome, SiteAddition,
    SiteOutcome, StoreError, TrialOutcome,
};

impl Store {
    /// Creates a trial with its sites: a [`TRIAL_CREATED`](crate::TRIAL_CREATED) audit
    /// row and a [`SITE_ADDED`](crate::SITE_ADDED) row per site, in one transaction.
    /// A trial that exists with the same title, deadline and the sites asked for is
    /// returned unchanged; one that differs is a conflict, and nothing is written.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when a CHECK rejects a value (an empty title, a
    /// deadline below one second) or the transaction fails.
    pub async fn create_trial(&self, trial: NewTrial) -> Result<TrialOutcome, StoreError> {
        dispatch!(self, backend => backend.create_trial(trial).await)
    }

    /// Adds a site to a trial with its [`SITE_ADDED`](crate::SITE_ADDED) audit row.
    ///
    /// # Errors
    ///
    /// As [`create_trial`](Store::create_trial).
    pub async fn add_site(&self, addition: SiteAddition) -> Result<SiteOutcome, StoreError> {
        dispatch!(self, backend => backend.add_site(addition).await)
    }

    /// Publishes a form version with its [`FORM_PUBLISHED`](crate::FORM_PUBLISHED) audit
    /// row. The store keeps the document byte for byte with its SHA-256 and checks
    /// nothing in it: the caller has loaded it without errors.
    ///
    /// A form id and version are never reused. Publishing one again with the same
    /// format, document and rules returns [`PublishOutcome::Unchanged`], also after its
    /// retirement; other content returns [`PublishOutcome::Conflict`].
    ///
    /// # Errors
    ///
    /// As [`create_trial`](Store::create_trial).
    pub async fn publish_form(&self, form: NewFormVersion) -> Result<PublishOutcome, StoreError> {
        dispatch!(self, backend => backend.publish_form(form).await)
    }

    /// Retires a form version: it takes no new submissions, and everything stored for
    /// it stays readable. Writes a [`FORM_RETIRED`](crate::FORM_RETIRED) audit row with
    /// the reason. A retirement is final.
    ///
    /// # Errors
    ///
    /// As [`create_trial`](Store::create_trial); a blank reason or an empty actor is
    /// [`StoreError::Internal`], and nothing changes.
    pub async fn retire_form(&self, retirement: FormRetirement) -> Result<RetireOutcome, StoreError> {
        dispatch!(self, backend => backend.retire_form(retirement).await)
    }

    /// Reads the catalogue generation: a number that grows by one with every change
    /// to trials, sites and form versions, by any instance. Cheap enough to poll.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn catalog_generation(&self) -> Result<i64, StoreError> {
        dispatch!(self, backend => backend.catalog_generation().await)
    }

    /// Reads every trial and form version, with documents, in one transaction.
    ///
    /// # Errors
    ///
    /// As [`catalog_generation`](Store::catalog_generation).
    pub async fn catalog_snapshot(&self) -> Result<CatalogSnapshot, StoreError> {
        dispatch!(self, backend => backend.catalog_snapshot().await)
    }
}
