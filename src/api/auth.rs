//! Authentication (contract §4.1): a bearer API key, or an HS256 session cookie.
//!
//! The header is read before the snapshot is opened, so a bad cookie costs no storage
//! read; an API key is looked up in the request's snapshot.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use redb::ReadTransaction;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::debug;

use super::error::ApiError;
use crate::events::{Id, Instant, KeyHash, parse_id};
use crate::query;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "goatview_session";

/// What the caller presented, already checked as far as possible without storage.
#[derive(Debug)]
pub enum Credential {
    /// SHA-256 of a bearer key, still to be looked up.
    Key(KeyHash),
    /// The orgs of a valid session (possibly none).
    Session(Vec<Id>),
}

impl Credential {
    /// The orgs the caller may read; an unknown, revoked or expired key is a 401.
    pub fn orgs(&self, rtxn: &ReadTransaction, now: Instant) -> Result<Vec<Id>, ApiError> {
        match self {
            Credential::Key(hash) => match query::api_key_org(rtxn, *hash, now)? {
                Some(org) => Ok(vec![org]),
                None => {
                    debug!("Unknown, revoked or expired API key.");
                    Err(ApiError::Unauthorized)
                }
            },
            Credential::Session(orgs) => Ok(orgs.clone()),
        }
    }
}

/// The caller's credential. An `Authorization` header, if there is one, is the credential
/// (and the cookie is then not looked at), so it must be `Bearer <key>`.
pub fn credential(headers: &HeaderMap, secret: Option<&[u8]>, now: Instant) -> Result<Credential, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return bearer(value.as_bytes()).map(|key| Credential::Key(Sha256::digest(key).into())).ok_or_else(|| {
            debug!("Malformed Authorization header.");
            ApiError::Unauthorized
        });
    }
    let Some(token) = session_cookie(headers) else {
        debug!("No credentials.");
        return Err(ApiError::Unauthorized);
    };
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        debug!("Session cookie sent, but no session secret is configured.");
        return Err(ApiError::Unauthorized);
    };
    verify_session(token, secret, now).map(Credential::Session).map_err(|reason| {
        debug!(reason, "Session rejected.");
        ApiError::Unauthorized
    })
}

/// The key of `Bearer <key>` (scheme in any case), as the raw bytes sent.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let key = value[7..].trim_ascii();
    (!key.is_empty()).then_some(key)
}

/// The first `goatview_session` cookie of any `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| {
            let value = value.trim();
            value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
        })
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
    /// Critical extensions we would have to understand; we understand none.
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Claims {
    exp: serde_json::Number,
    nbf: Option<serde_json::Number>,
    org_ids: Vec<String>,
}

/// The `org_ids` of a valid HS256 JWT, or why it is not valid. The signature is checked
/// (in constant time) before the claims are read.
fn verify_session(token: &str, secret: &[u8], now: Instant) -> Result<Vec<Id>, &'static str> {
    let mut parts = token.split('.');
    let (Some(head_b64), Some(body_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three segments");
    };
    let head: JwtHeader = URL_SAFE_NO_PAD
        .decode(head_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("malformed header")?;
    if head.alg != "HS256" {
        return Err("alg is not HS256");
    }
    if head.crit.is_some() {
        return Err("unsupported critical header");
    }
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| "malformed signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "unusable secret")?;
    // The signing input is `header.payload`, exactly as sent.
    mac.update(&token.as_bytes()[..head_b64.len() + 1 + body_b64.len()]);
    mac.verify_slice(&sig).map_err(|_| "bad signature")?;

    let claims: Claims = URL_SAFE_NO_PAD
        .decode(body_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("malformed claims")?;
    if !later_than(&claims.exp, now) {
        return Err("expired");
    }
    if claims.nbf.as_ref().is_some_and(|nbf| later_than(nbf, now)) {
        return Err("not yet valid");
    }
    claims.org_ids.iter().map(|s| parse_id(s)).collect::<Option<Vec<_>>>().ok_or("malformed org_ids")
}

/// Whether a NumericDate (seconds since the epoch, possibly fractional) is after `now`.
fn later_than(t: &serde_json::Number, now: Instant) -> bool {
    if let Some(secs) = t.as_i64() {
        // t = secs.000 is after now = now.secs + fraction exactly when secs > now.secs.
        secs > now.secs
    } else if t.is_u64() {
        true // beyond i64::MAX seconds
    } else {
        t.as_f64().is_some_and(|f| f > now.secs as f64 + f64::from(now.nanos) / 1e9)
    }
}
