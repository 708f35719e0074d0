//! Reading a JSON request body: over the size limit is 413, not JSON is 400 (`{"status":400,"error":"Bad Request"}`,
//! as Rails renders it), both before any change is made.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::ApiError;

/// A request body that parsed as a JSON object. The size limit is axum's `DefaultBodyLimit`, set once on the router.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// The raw request body, for handlers that parse it themselves (ingest uses simd-json); over the limit is 413.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("Bad Request".into())
            }
        })
    }
}

/// Parses a body that must be a JSON object.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        // Rails parses a JSON array as `{"_json": [...]}`: the root object is then missing, Lago's 400 below.
        Ok(_) => Ok(Map::new()),
        Err(_) => Err(ApiError::BadRequest("Bad Request".into())),
    }
}

/// Takes the root object Lago expects (`{"billable_metric": {...}}`); absent, empty or not an object is Lago's 400.
pub fn take_root(mut body: Map<String, Value>, root: &str) -> Result<Map<String, Value>, ApiError> {
    match body.remove(root) {
        Some(Value::Object(map)) if !map.is_empty() => Ok(map),
        _ => {
            Err(ApiError::BadRequest(format!("BadRequest: param is missing or the value is empty or invalid: {root}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_an_object() {
        assert!(parse_object(b"[1,2]").unwrap().is_empty());
        assert!(matches!(parse_object(b"{\"a\":"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_object(b"\xff\xfe"), Err(ApiError::BadRequest(_))));
        assert!(parse_object(b"{\"a\":1}").is_ok());
    }

    #[test]
    fn root_object_is_required() {
        let body = parse_object(br#"{"plan": {}}"#).unwrap();
        assert!(matches!(take_root(body, "billable_metric"), Err(ApiError::BadRequest(_))));
        let body = parse_object(br#"{"billable_metric": {}}"#).unwrap();
        assert!(matches!(take_root(body, "billable_metric"), Err(ApiError::BadRequest(_))));
        let body = parse_object(br#"{"billable_metric": {"code": "x"}}"#).unwrap();
        assert_eq!(take_root(body, "billable_metric").unwrap().len(), 1);
    }
}
