//! Tests of epro-store against real SQLite files in temporary directories.

mod batching;
mod outbox;
mod schema;
mod submit;
mod support;
