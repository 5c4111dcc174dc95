//! Idempotent starts: the `Idempotency-Key` of `start` and `test`, the hash of the request it
//! is bound to, and the record a store keeps of it for [`KEEP_FOR`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The request header (and the field every error about it names).
pub const HEADER: &str = "Idempotency-Key";

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// How long a key is remembered: a repeat within this answers what the first request answered.
pub const KEEP_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// A caller's `Idempotency-Key`: 1 to [`MAX_KEY_BYTES`] printable ASCII characters (space to
/// `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key, or [`Error::Invalid`] naming the header.
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey> {
        if raw.is_empty() || raw.len() > MAX_KEY_BYTES {
            return Err(Error::invalid(
                HEADER,
                format!("must be 1 to {MAX_KEY_BYTES} characters, not {}", raw.len()),
            ));
        }
        if let Some(bad) = raw.iter().find(|b| !(0x20..=0x7e).contains(*b)) {
            return Err(Error::invalid(
                HEADER,
                format!("must be printable ASCII; found byte 0x{bad:02x}"),
            ));
        }
        // Every byte is ASCII, so this cannot fail; no unwrap on request data all the same.
        String::from_utf8(raw.to_vec())
            .map(IdempotencyKey)
            .map_err(|_| Error::invalid(HEADER, "must be printable ASCII"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One keyed request: whose key (`scope`: the caller's identity, so that two API tokens or
/// tenants never share keys), the key, and the hash of what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub scope: String,
    pub key: IdempotencyKey,
    /// [`request_hash`] of the request.
    pub request_hash: String,
}

impl Keyed {
    /// `route` names the operation (`start`, `test`), so that one key cannot be reused across
    /// them; `request` is the parsed body, hashed in canonical form (object keys sorted, no
    /// whitespace), so that field order and spacing do not make a repeat differ.
    pub fn new(
        scope: impl Into<String>,
        key: IdempotencyKey,
        route: &str,
        request: &impl Serialize,
    ) -> Result<Keyed> {
        Ok(Keyed {
            scope: scope.into(),
            key,
            request_hash: request_hash(route, request)?,
        })
    }

    /// The key under which a store keeps the record: the scope length-prefixed, so that no
    /// scope and key pair can spell another's.
    pub fn record_key(&self) -> String {
        format!(
            "idem#{}:{}#{}",
            self.scope.len(),
            self.scope,
            self.key.as_str()
        )
    }
}

/// The SHA-256 (hex) of `route`, a newline and the canonical JSON of `request`.
pub fn request_hash(route: &str, request: &impl Serialize) -> Result<String> {
    // `serde_json::Value`'s maps are sorted (no `preserve_order`), which makes this canonical.
    let value = serde_json::to_value(request)
        .map_err(|e| Error::invalid("body", format!("cannot be hashed: {e}")))?;
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(value.to_string().as_bytes());
    Ok(hex::encode(hasher.finalize()))
}

/// An invocation a keyed request raised, as its answer showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Raised {
    pub id: String,
    pub subscription_id: String,
    pub subscription_name: String,
}

/// What a store keeps of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// [`Keyed::record_key`].
    pub key: String,
    pub request_hash: String,
    pub created: DateTime<Utc>,
    /// After this the key is free again (and the record may be deleted).
    pub expires: DateTime<Utc>,
    /// The invocations the first request raised, once they were accepted; `None` while it is
    /// still being accepted (or died before it was).
    pub raised: Option<Vec<Raised>>,
}

/// The scope of a caller known only by its bearer token (the local stack's one token): a
/// digest of the token, so that the token itself is never stored.
pub fn token_scope(token: &str) -> String {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    format!("token:{}", &digest[..32])
}
