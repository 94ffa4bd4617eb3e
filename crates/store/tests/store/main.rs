//! Tests of epro-store. Each shared test runs twice: against a real SQLite file in a
//! temporary directory, and against a fresh database on the PostgreSQL server named by
//! `TEST_EPRO_POSTGRES_URL` (skipped without it). `postgres` contains the tests of what
//! only PostgreSQL has.

mod access;
mod alerts;
mod audit;
mod batching;
mod corrections;
mod export;
mod intake;
mod metrics;
mod outbox;
mod postgres;
mod queries;
mod revalidation;
mod schema;
mod submit;
mod support;
mod trials;
