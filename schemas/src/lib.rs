//! Types shared by every Billstream crate: the API's objects and inputs as Lago renders and reads them, and errors in
//! Lago's shape (`status`, `error`, `code`, `error_details`).
//!
//! Nothing here does I/O; the HTTP glue is limited to turning an [`ApiError`] into a response and reading a JSON body.

pub mod body;
pub mod error;
pub mod event;
pub mod input;
pub mod objects;
pub mod pagination;

pub use error::{ApiError, ValidationErrors};

/// The organization a request acts for, set by the authentication layer from the bearer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgId(pub uuid::Uuid);
