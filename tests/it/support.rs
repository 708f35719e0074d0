//! A test application on its own fresh database of the shared test PostgreSQL, called without a socket. Every
//! response goes through the OpenAPI check.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use billstream::http::HttpSettings;
use billstream::{AppState, app};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use testkit::{TestDatabase, TestPostgres};
use tower::ServiceExt;

use crate::openapi::check_response;

pub const DEFAULT_BODY_LIMIT: usize = 5 * 1024 * 1024;

pub struct TestApp {
    pub pool: PgPool,
    pub router: Router,
    /// The API key of the test's organization.
    pub key: String,
    /// Dropped last: drops the test's database.
    _db: TestDatabase,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    /// Asserts a 2xx.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!((200..300).contains(&self.status), "expected 2xx, got {}: {}", self.status, self.body);
        self
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_body_limit(DEFAULT_BODY_LIMIT).await
    }

    pub async fn with_body_limit(limit: usize) -> TestApp {
        let db = TestPostgres::shared().database();
        let pool = PgPoolOptions::new().max_connections(8).connect(&db.url()).await.expect("connect to test database");
        billing::migrate(&pool).await.expect("migrate");
        let (_, key) = billing::store::organizations::create(&pool, "Test org", None).await.expect("create org");
        let settings = HttpSettings { max_body_bytes: limit, events_batch_limit: 10_000, ..HttpSettings::default() };
        let router = app(AppState::embedded(pool.clone(), settings));
        TestApp { pool, router, key, _db: db }
    }

    /// Another organization of the same installation; returns its key.
    pub async fn new_org(&self, name: &str) -> String {
        billing::store::organizations::create(&self.pool, name, None).await.expect("create org").1
    }

    /// A raw request: any method, any body bytes, any (or no) key.
    pub async fn raw(&self, method: &str, path: &str, key: Option<&str>, body: Vec<u8>) -> Resp {
        let mut req = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let req = req.body(Body::from(body)).expect("request");
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status().as_u16();
        let raw = response.into_body().collect().await.expect("body").to_bytes().to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        check_response(method, path, status, &body);
        Resp { status, body, raw }
    }

    pub async fn call_as(&self, key: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json")).unwrap_or_default();
        self.raw(method, path, Some(key), bytes).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call_as(&self.key, "GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call_as(&self.key, "POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call_as(&self.key, "PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call_as(&self.key, "DELETE", path, None).await
    }
}
