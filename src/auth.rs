//! Bearer-key authentication: the key (the second word of `Authorization`, as Lago reads it) names one organization,
//! whose id the handlers get as the `OrgId` extension. Known keys are cached in memory; unknown ones always go to the
//! database, so a new key works at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use schemas::{ApiError, OrgId};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone)]
pub struct Keys {
    pool: PgPool,
    cache: Arc<RwLock<HashMap<String, Uuid>>>,
}

impl Keys {
    pub fn new(pool: PgPool) -> Self {
        Keys { pool, cache: Arc::default() }
    }

    async fn organization(&self, key: &str) -> Result<Option<Uuid>, ApiError> {
        if let Some(org) = self.cache.read().ok().and_then(|c| c.get(key).copied()) {
            return Ok(Some(org));
        }
        let org = billing::store::organizations::find_by_api_key(&self.pool, key).await.map_err(ApiError::from)?;
        if let (Some(org), Ok(mut cache)) = (org, self.cache.write()) {
            cache.insert(key.to_owned(), org);
        }
        Ok(org)
    }
}

/// The key of an `Authorization` header: its second whitespace-separated word (the scheme word is not checked).
pub fn bearer_key(header: &str) -> Option<&str> {
    header.split_whitespace().nth(1)
}

pub async fn require_org(State(keys): State<Keys>, mut req: Request, next: Next) -> Response {
    let key = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_key).map(str::to_owned);
    let Some(key) = key else { return ApiError::Unauthorized.into_response() };
    match keys.organization(&key).await {
        Ok(Some(org)) => {
            req.extensions_mut().insert(OrgId(org));
            next.run(req).await
        }
        Ok(None) => ApiError::Unauthorized.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_key;

    #[test]
    fn key_is_the_second_word() {
        assert_eq!(bearer_key("Bearer abc"), Some("abc"));
        assert_eq!(bearer_key("  bearer   abc  extra"), Some("abc"));
        assert_eq!(bearer_key("Bearer"), None);
        assert_eq!(bearer_key(""), None);
    }
}
