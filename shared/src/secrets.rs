//! Secrets of delivery: the per-invocation callback secret and the Standard Webhooks signature.
//!
//! The callback secret is derived, not stored: `HMAC-SHA256(service key, invocation id)`. A
//! retry can resend the same secret, while the store keeps only its SHA-256 hash, so a copy of
//! the database cannot complete invocations.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The service's key for deriving callback secrets (kept outside the database).
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretKey(bytes)
    }

    /// The callback secret of one invocation.
    pub fn callback_secret(&self, invocation_id: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac(&self.0, invocation_id.as_bytes()))
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// What the store keeps of a callback secret. The secret has 256 bits of entropy, so a plain
/// SHA-256 is enough (no password hashing needed).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` is the secret behind `stored_hash`, compared in constant time.
pub fn secret_matches(presented: &str, stored_hash: &str) -> bool {
    hash_secret(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// The `webhook-signature` header value of Standard Webhooks: `v1,<base64 HMAC-SHA256>` over
/// `{id}.{timestamp}.{body}`, keyed by the base64 part of a `whsec_…` secret.
pub fn webhook_signature(signing_secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let encoded = signing_secret
        .strip_prefix("whsec_")
        .unwrap_or(signing_secret);
    let key = STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let mut message = Vec::with_capacity(id.len() + body.len() + 24);
    message.extend_from_slice(id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac(&key, &message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_secrets_are_stable_per_invocation_and_verify_against_their_hash() {
        let key = SecretKey::new(b"k".to_vec());
        let a = key.callback_secret("inv-1");
        assert_eq!(a, key.callback_secret("inv-1"));
        assert_ne!(a, key.callback_secret("inv-2"));
        assert!(secret_matches(&a, &hash_secret(&a)));
        assert!(!secret_matches("guess", &hash_secret(&a)));
    }

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks specification's reference tests.
        let sig = webhook_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
