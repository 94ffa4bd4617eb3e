//! One module per resource; each path mirrors its URL.

pub mod alerts;
pub mod audit;
pub mod collection;
pub mod corrections;
pub mod export;
pub mod health;
pub mod metrics;
pub mod outbox;
pub mod patients;
pub mod queries;
pub mod staff;
pub mod submissions;
pub mod trials;
