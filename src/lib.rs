//! The `billstream` binary's library half: configuration, wiring of adapters and roles, and the HTTP application
//! that merges every crate's routes. No business logic lives here.

pub mod auth;
pub mod config;
pub mod database;
pub mod http;
pub mod run;
pub mod scale;
pub mod telemetry;

pub use http::{AppState, app};
