//! API tests: each test starts the real application on port 0 with its own
//! SQLite file and talks to it over HTTP. Set TEST_LOG=1 to see its logs.

mod access;
mod alerts;
mod audit;
mod corrections;
mod export;
mod fhir;
mod helpers;
mod openapi;
mod read;
mod rules;
mod seed;
mod submit;
mod trials;
