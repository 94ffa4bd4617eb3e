//! Tests of epro-store against real SQLite files in temporary directories.

mod batching;
mod intake;
mod metrics;
mod outbox;
mod queries;
mod revalidation;
mod schema;
mod submit;
mod support;
