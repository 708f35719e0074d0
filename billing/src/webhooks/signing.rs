//! Lago's two webhook signatures over the exact body bytes sent:
//! - `hmac`: `X-Lago-Signature` = base64(HMAC-SHA256(body, organization's `hmac_key`));
//! - `jwt`: an RS256 JWT whose claims are `data` (the body as a string) and `iss` (`LAGO_API_URL`).
//!
//! The RSA key is `LAGO_RSA_PRIVATE_KEY` (base64 of a PEM, PKCS#1 or PKCS#8, as Lago takes it) when the binary was
//! given one, else a key generated once and kept in Postgres, so every process of the installation (the API that
//! publishes the public half, the workers that sign) uses the same one.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use rsa::PrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;
use sqlx::PgPool;

use crate::{Error, Result};

/// base64(HMAC-SHA256(body, key)), standard alphabet with padding.
pub fn hmac_signature(key: &str, body: &[u8]) -> String {
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        // HMAC takes keys of any length; this branch cannot be reached.
        return String::new();
    };
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The RS256 JWT Lago sends: header `{"alg":"RS256","typ":"JWT"}`, claims `{"data": body, "iss": issuer}`.
pub fn jwt_signature(key: &SigningKey, body: &str, issuer: &str) -> Result<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::to_vec(&serde_json::json!({"data": body, "iss": issuer}))
        .map_err(|e| Error::Internal(format!("webhook claims: {e}")))?;
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let signature =
        key.signer.try_sign(signing_input.as_bytes()).map_err(|e| Error::Internal(format!("RS256: {e}")))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes())))
}

/// The installation's RSA key, ready to sign, with its public half as PEM.
pub struct SigningKey {
    signer: rsa::pkcs1v15::SigningKey<Sha256>,
    public_pem: String,
}

impl SigningKey {
    fn from_private(key: PrivateKey) -> Result<SigningKey> {
        let public_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::Internal(format!("webhook public key: {e}")))?;
        Ok(SigningKey { signer: rsa::pkcs1v15::SigningKey::new(key), public_pem })
    }

    /// A PEM private key, PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<SigningKey> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = PrivateKey::from_pkcs8_pem(pem.trim())
            .or_else(|_| PrivateKey::from_pkcs1_pem(pem.trim()))
            .map_err(|e| Error::Internal(format!("not a PEM RSA private key: {e}")))?;
        SigningKey::from_private(key)
    }

    /// `LAGO_RSA_PRIVATE_KEY`'s format: base64 of the PEM text (line breaks in the base64 are ignored).
    pub fn from_base64_pem(text: &str) -> Result<SigningKey> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let pem = STANDARD.decode(compact).map_err(|e| Error::Internal(format!("not base64: {e}")))?;
        SigningKey::from_pem(&String::from_utf8_lossy(&pem))
    }

    /// The public key as Lago publishes it: base64 of the PEM, in lines of 60 characters each ending with a line
    /// break (Ruby's `Base64.encode64`).
    pub fn public_key_base64(&self) -> String {
        let encoded = STANDARD.encode(self.public_pem.as_bytes());
        let mut out = String::with_capacity(encoded.len() + encoded.len() / 60 + 1);
        for chunk in encoded.as_bytes().chunks(60) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out
    }

    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }
}

static CONFIGURED: OnceLock<Arc<SigningKey>> = OnceLock::new();

/// Makes `key` (from `LAGO_RSA_PRIVATE_KEY`) the key of this process; called once at start by the binary.
pub fn configure(key: SigningKey) {
    let _ = CONFIGURED.set(Arc::new(key));
}

/// The key webhooks are signed with: the configured one, else the installation's, generated on first use.
pub async fn key(pool: &PgPool) -> Result<Arc<SigningKey>> {
    if let Some(k) = CONFIGURED.get() {
        return Ok(k.clone());
    }
    let stored: Option<String> = sqlx::query_scalar("SELECT private_key_pem FROM webhook_signing_keys WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    let pem = match stored {
        Some(pem) => pem,
        None => {
            // Key generation takes a while: off the async threads. Two processes racing both generate; the first
            // insert wins and both use the stored key.
            let pem = tokio::task::spawn_blocking(generate_pem)
                .await
                .map_err(|e| Error::Internal(format!("key generation: {e}")))??;
            sqlx::query("INSERT INTO webhook_signing_keys (id, private_key_pem) VALUES (1, $1) ON CONFLICT DO NOTHING")
                .bind(&pem)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT private_key_pem FROM webhook_signing_keys WHERE id = 1").fetch_one(pool).await?
        }
    };
    Ok(Arc::new(SigningKey::from_pem(&pem)?))
}

/// A new 2048-bit key (Lago's documented size) as PKCS#8 PEM.
fn generate_pem() -> Result<String> {
    let key = PrivateKey::new(&mut getrandom::SysRng, 2048)
        .map_err(|e| Error::Internal(format!("RSA key generation: {e}")))?;
    Ok(key.to_pkcs8_pem(LineEnding::LF).map_err(|e| Error::Internal(format!("PEM: {e}")))?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = hmac_signature("Jefe", b"what do ya want for nothing?");
        let hex: String = STANDARD.decode(sig).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
