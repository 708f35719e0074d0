//! The one error type every handler returns, rendered in Lago's shape.
//!
//! Server faults carry their detail in a response extension ([`InternalDetail`]) so that one middleware logs it once
//! and the client only ever sees a generic body.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Field -> Lago error codes (`value_is_mandatory`, `value_already_exist`, `value_is_invalid`, ...), every field at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(BTreeMap<String, Vec<String>>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `code` for `field` (once).
    pub fn add(&mut self, field: impl Into<String>, code: impl Into<String>) {
        let codes = self.0.entry(field.into()).or_default();
        let code = code.into();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    /// `Ok(())` when nothing was recorded, else the errors.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn to_json(&self) -> Value {
        json!(self.0)
    }

    /// Moves every error of `other` into this set.
    pub fn merge(&mut self, other: ValidationErrors) {
        for (field, codes) in other.0 {
            for code in codes {
                self.add(field.clone(), code);
            }
        }
    }
}

/// One field error, as a shortcut.
pub fn field_error(field: &str, code: &str) -> ValidationErrors {
    let mut e = ValidationErrors::new();
    e.add(field, code);
    e
}

/// Detail of a server fault, left on the response for the logging middleware.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not JSON (`Bad Request`), or the request misses its root object (Lago's `BadRequest: ...`).
    BadRequest(String),
    /// 401: missing or unknown API key.
    Unauthorized,
    /// 404 with `code` = `<object>_not_found`.
    NotFound(&'static str),
    /// 404 for a path (or method) no route serves, without authentication, as Lago's catch-all route.
    RouteNotFound,
    /// 403 with a Lago code, e.g. `feature_unavailable`.
    Forbidden(&'static str),
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge,
    /// 422 `validation_errors`.
    Validation(ValidationErrors),
    /// 422 `validation_errors` with nested details, e.g. a batch's errors keyed by event index.
    ValidationDetails(Value),
    /// 405 `not_allowed` with a Lago code, for an action the object's state forbids.
    NotAllowed(&'static str),
    /// 500: logged once with its detail; the client gets a generic body.
    Internal(String),
    /// 503: a dependency is down or overloaded; the client should retry. Logged like a 500.
    Unavailable(String),
}

impl ApiError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::NotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) | ApiError::ValidationDetails(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON body, exactly as Lago renders it.
    pub fn body(&self) -> Value {
        let status = self.status().as_u16();
        match self {
            ApiError::BadRequest(message) => json!({"status": status, "error": message}),
            ApiError::Unauthorized => json!({"status": status, "error": "Unauthorized"}),
            ApiError::NotFound(object) => {
                json!({"status": status, "error": "Not Found", "code": format!("{object}_not_found")})
            }
            ApiError::RouteNotFound => json!({"status": status, "error": "Not Found", "code": "resource_not_found"}),
            ApiError::Forbidden(code) => json!({"status": status, "error": "Forbidden", "code": code}),
            ApiError::NotAllowed(code) => json!({"status": status, "error": "Method Not Allowed", "code": code}),
            ApiError::PayloadTooLarge => {
                json!({"status": status, "error": "Payload Too Large", "code": "payload_too_large"})
            }
            ApiError::Validation(errors) => json!({
                "status": status,
                "error": "Unprocessable Entity",
                "code": "validation_errors",
                "error_details": errors.to_json(),
            }),
            ApiError::ValidationDetails(details) => json!({
                "status": status,
                "error": "Unprocessable Entity",
                "code": "validation_errors",
                "error_details": details,
            }),
            ApiError::Internal(_) => json!({"status": status, "error": "Internal Server Error"}),
            ApiError::Unavailable(_) => json!({"status": status, "error": "Service Unavailable"}),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::Internal(detail) | ApiError::Unavailable(detail) = self {
            response.extensions_mut().insert(InternalDetail(detail));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_body_lists_every_field() {
        let mut e = ValidationErrors::new();
        e.add("code", "value_is_mandatory");
        e.add("name", "value_is_mandatory");
        e.add("code", "value_is_mandatory");
        let body = ApiError::Validation(e).body();
        assert_eq!(
            body,
            json!({"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                   "error_details": {"code": ["value_is_mandatory"], "name": ["value_is_mandatory"]}})
        );
    }

    #[test]
    fn not_found_names_the_object() {
        assert_eq!(
            ApiError::NotFound("billable_metric").body(),
            json!({"status": 404, "error": "Not Found", "code": "billable_metric_not_found"})
        );
    }

    #[test]
    fn internal_detail_stays_out_of_the_body() {
        let body = ApiError::internal("connection refused to 10.0.0.1").body();
        assert_eq!(body, json!({"status": 500, "error": "Internal Server Error"}));
    }
}
