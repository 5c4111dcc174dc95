//! Secrets: the per-invocation callback secret, the Standard Webhooks signature, the
//! [`Secret`] string that never shows in `Debug`, and the at-rest encryption of subscription
//! credentials ([`CredentialKey`]).
//!
//! The callback secret is derived, not stored: `HMAC-SHA256(service key, invocation id)`. A
//! retry can resend the same secret, while the store keeps only its SHA-256 hash, so a copy of
//! the database cannot complete invocations.
//!
//! Subscription credentials must be sent as they are, so they cannot be hashed; the stores keep
//! them sealed with AES-256-GCM under a key derived from the service key ([`CredentialKey`]),
//! so a copy of the database (or a DynamoDB export or backup) without the key gives none away.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{HttpAuth, Subscription, Target};

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

    /// The key subscription credentials are sealed with at rest: HKDF-SHA256 of this key, so
    /// that the two uses never share key material (a callback secret is an HMAC output under
    /// the raw key; an AEAD key must not also be one).
    pub fn credential_key(&self) -> CredentialKey {
        let prk =
            ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, CREDENTIAL_KEY_SALT).extract(&self.0);
        // Expansion only fails for outputs over 255 hash lengths; a 32-byte key is far below.
        let okm = prk
            .expand(&[CREDENTIAL_KEY_INFO], &AES_256_GCM)
            .unwrap_or_else(|_| unreachable!());
        CredentialKey {
            key: Arc::new(LessSafeKey::new(UnboundKey::from(okm))),
            random: SystemRandom::new(),
        }
    }
}

/// A secret string (a password, a token, a signing key): `Debug` shows `<redacted>`, and it has
/// no `Display`, so it reaches a log only through an explicit [`Secret::expose`]. It serializes
/// as the plain string: the API's write-only fields and the sealed store body are made of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// What a redacted credential shows instead.
pub const REDACTED: &str = "*****";

/// `url` with the credentials of its userinfo replaced by [`REDACTED`]: the password
/// (`https://user:*****@host/`), or the user name when it stands alone, as a token often does
/// (`https://*****@host/`). A URL without userinfo (or that does not parse) is returned as it is.
pub fn redacted_url(url: &str) -> std::borrow::Cow<'_, str> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.into();
    };
    // Both setters fail only for URLs that cannot have userinfo, which then have none.
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(REDACTED));
    } else if !parsed.username().is_empty() {
        let _ = parsed.set_username(REDACTED);
    } else {
        return url.into();
    }
    String::from(parsed).into()
}

/// HKDF salt and info of [`SecretKey::credential_key`]: fixed and public, they only separate
/// this key from any other derived from the same service key. Changing them makes every stored
/// credential unreadable.
const CREDENTIAL_KEY_SALT: &[u8] = b"triggerline";
const CREDENTIAL_KEY_INFO: &[u8] = b"triggerline subscription credentials v1";

/// How a sealed value starts: `sealed:v1:` then base64url (no padding) of the 96-bit random
/// nonce, the ciphertext and the 128-bit GCM tag. A stored value without it was written before
/// credentials were encrypted and is read as it is (it is sealed on the subscription's next
/// write); no webhook URL (http or https) or realistic token starts with it.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// The AEAD key of subscription credentials (AES-256-GCM), derived from the service key by
/// [`SecretKey::credential_key`]; cheap to clone. Each value is sealed with a fresh random
/// nonce, and with the subscription id and field name as associated data, so that a sealed
/// value copied into another subscription or field does not open.
#[derive(Clone)]
pub struct CredentialKey {
    key: Arc<LessSafeKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(<redacted>)")
    }
}

/// Why a subscription's credentials could not be sealed or opened. Both are store failures
/// (the caller cannot fix them), never a request error.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no random nonce could be drawn to seal {field} of subscription {id}")]
    Random { id: String, field: &'static str },
    #[error(
        "{field} of subscription {id} does not decrypt: the service key (secret.key, \
         TRIGGERLINE_SECRET_KEY) is not the one it was sealed with, or the record was altered"
    )]
    Open { id: String, field: &'static str },
}

/// A subscription as the stores keep it: its credentials sealed. Made only by
/// [`CredentialKey::seal`] and turned back only by [`CredentialKey::open`]; it serializes to
/// the same JSON shape as [`Subscription`], so stored bodies keep their layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSubscription(Subscription);

impl SealedSubscription {
    /// The subscription id (not secret), for errors about a body that does not open.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

/// Field names of the sealed values (also their associated data), as the API names them.
const URL: &str = "httpConfig.url";
const PASSWORD: &str = "httpConfig.basicAuthConfig.password";
const TOKEN: &str = "httpConfig.bearerTokenAuthConfig.bearerToken";
const SIGNING_SECRET: &str = "signingSecret";
const PREVIOUS_SIGNING_SECRET: &str = "previousSigningSecret";

impl CredentialKey {
    /// Seals what is secret in `subscription`: the signing secret (and the previous one, during
    /// a rotation's grace period), the basic password or bearer
    /// token, and the whole webhook URL (which may carry credentials in its userinfo, path or
    /// query). Everything else (names, trigger, type, version) stays readable, as the stores
    /// query and show it.
    pub fn seal(&self, subscription: &Subscription) -> Result<SealedSubscription, CredentialError> {
        let id = subscription.id.as_str();
        let mut sealed = subscription.clone();
        sealed.signing_secret =
            Secret(self.seal_text(id, SIGNING_SECRET, sealed.signing_secret.expose())?);
        if let Some(previous) = &mut sealed.previous_signing_secret {
            previous.secret =
                Secret(self.seal_text(id, PREVIOUS_SIGNING_SECRET, previous.secret.expose())?);
        }
        if let Target::Http(http) = &mut sealed.target {
            http.url = self.seal_text(id, URL, &http.url)?;
            match &mut http.auth {
                HttpAuth::None => {}
                HttpAuth::Basic { password, .. } => {
                    *password = Secret(self.seal_text(id, PASSWORD, password.expose())?);
                }
                HttpAuth::Bearer { token } => {
                    *token = Secret(self.seal_text(id, TOKEN, token.expose())?);
                }
            }
        }
        Ok(SealedSubscription(sealed))
    }

    /// Opens what [`CredentialKey::seal`] sealed. A value without [`SEALED_PREFIX`] is taken as
    /// it is: it was stored before credentials were encrypted.
    pub fn open(&self, sealed: SealedSubscription) -> Result<Subscription, CredentialError> {
        let mut subscription = sealed.0;
        let id = subscription.id.clone();
        subscription.signing_secret =
            Secret(self.open_text(&id, SIGNING_SECRET, subscription.signing_secret.0)?);
        if let Some(previous) = &mut subscription.previous_signing_secret {
            previous.secret = Secret(self.open_text(
                &id,
                PREVIOUS_SIGNING_SECRET,
                std::mem::take(&mut previous.secret.0),
            )?);
        }
        if let Target::Http(http) = &mut subscription.target {
            http.url = self.open_text(&id, URL, std::mem::take(&mut http.url))?;
            match &mut http.auth {
                HttpAuth::None => {}
                HttpAuth::Basic { password, .. } => {
                    *password =
                        Secret(self.open_text(&id, PASSWORD, std::mem::take(&mut password.0))?);
                }
                HttpAuth::Bearer { token } => {
                    *token = Secret(self.open_text(&id, TOKEN, std::mem::take(&mut token.0))?);
                }
            }
        }
        Ok(subscription)
    }

    fn seal_text(
        &self,
        id: &str,
        field: &'static str,
        plain: &str,
    ) -> Result<String, CredentialError> {
        let mut nonce = [0u8; NONCE_LEN];
        let random = || CredentialError::Random {
            id: id.to_owned(),
            field,
        };
        self.random.fill(&mut nonce).map_err(|_| random())?;
        let mut in_out = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(id, field)),
                &mut in_out,
            )
            // Only fails for plaintexts over GCM's 64 GiB limit.
            .map_err(|_| random())?;
        let mut packed = Vec::with_capacity(NONCE_LEN + in_out.len());
        packed.extend_from_slice(&nonce);
        packed.extend_from_slice(&in_out);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(packed)))
    }

    fn open_text(
        &self,
        id: &str,
        field: &'static str,
        stored: String,
    ) -> Result<String, CredentialError> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored);
        };
        let failed = || CredentialError::Open {
            id: id.to_owned(),
            field,
        };
        let mut packed = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| failed())?;
        if packed.len() < NONCE_LEN {
            return Err(failed());
        }
        let mut in_out = packed.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&packed).map_err(|_| failed())?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(associated_data(id, field)), &mut in_out)
            .map_err(|_| failed())?;
        String::from_utf8(plain.to_vec()).map_err(|_| failed())
    }
}

/// `{id}\0{field}`: the NUL keeps (`a`, `b.c`) and (`a\0b`, `c`) apart (ids never hold one).
fn associated_data(id: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(id.len() + 1 + field.len());
    aad.extend_from_slice(id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
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

/// The `webhook-signature` header value signed with each of `signing_secrets` (the current
/// secret first, then the previous one during a rotation's grace period): the signatures
/// separated by a space, as Standard Webhooks specifies, so that a receiver holding either
/// secret finds one that verifies.
pub fn webhook_signatures<'a>(
    signing_secrets: impl IntoIterator<Item = &'a Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    signing_secrets
        .into_iter()
        .map(|secret| webhook_signature(secret.expose(), id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
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

    use crate::duration::IsoDuration;
    use crate::model::{DispatchMode, HttpTarget};

    const TOKEN: &str = "bearer-t0ken-4f1c";
    const PASSWORD: &str = "url-passw0rd-9e2d";
    const SIGNING: &str = "whsec_c2lnbmluZy1rZXktb2YtdGhlLXRlc3Q=";

    fn subscription(id: &str) -> Subscription {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Subscription {
            heartbeat_timeout: None,
            health: Default::default(),
            id: id.into(),
            name: "n".into(),
            description: None,
            trigger_id: "idn:identity-created".into(),
            trigger_name: "Identity Created".into(),
            target: Target::Http(HttpTarget {
                url: format!("https://hook-user:{PASSWORD}@hooks.example.com/in?x=1"),
                mode: DispatchMode::Sync,
                auth: HttpAuth::Bearer {
                    token: TOKEN.into(),
                },
            }),
            response_deadline: IsoDuration::parse("responseDeadline", "PT1H").unwrap(),
            enabled: true,
            filter: None,
            signing_secret: SIGNING.into(),
            previous_signing_secret: None,
            created: at,
            modified: at,
            version: 1,
        }
    }

    fn key(byte: u8) -> CredentialKey {
        SecretKey::new(vec![byte; 32]).credential_key()
    }

    #[test]
    fn sealed_subscriptions_hold_no_secret_and_open_to_the_original() {
        let original = subscription("sub-1");
        let sealed = key(7).seal(&original).unwrap();
        let stored = serde_json::to_string(&sealed).unwrap();
        for secret in [TOKEN, PASSWORD, SIGNING, "hooks.example.com", "hook-user"] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
        }
        assert_eq!(stored.matches(SEALED_PREFIX).count(), 3, "{stored}");
        // What a store reads back.
        let read: SealedSubscription = serde_json::from_str(&stored).unwrap();
        assert_eq!(key(7).open(read).unwrap(), original);
        // A fresh nonce each time: equal secrets do not give equal ciphertexts.
        let again = serde_json::to_string(&key(7).seal(&original).unwrap()).unwrap();
        assert_ne!(stored, again);
    }

    #[test]
    fn the_credential_key_is_derived_not_the_raw_service_key() {
        // Sealed under the raw service key as an AES key, nothing opens.
        let raw = CredentialKey {
            key: Arc::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap(),
            )),
            random: SystemRandom::new(),
        };
        let sealed = raw.seal(&subscription("sub-1")).unwrap();
        assert!(matches!(
            key(7).open(sealed),
            Err(CredentialError::Open { .. })
        ));
    }

    #[test]
    fn another_key_or_another_subscription_does_not_open_a_sealed_value() {
        let sealed = key(7).seal(&subscription("sub-1")).unwrap();
        let err = key(8).open(sealed.clone()).unwrap_err();
        assert!(matches!(err, CredentialError::Open { .. }), "{err}");
        assert!(!err.to_string().contains(TOKEN));
        // The same sealed values moved into another subscription's record.
        let mut moved = sealed;
        moved.0.id = "sub-2".into();
        assert!(matches!(
            key(7).open(moved),
            Err(CredentialError::Open { .. })
        ));
    }

    #[test]
    fn records_written_before_encryption_are_read_as_they_are() {
        let legacy = serde_json::to_string(&subscription("sub-1")).unwrap();
        let read: SealedSubscription = serde_json::from_str(&legacy).unwrap();
        assert_eq!(key(7).open(read).unwrap(), subscription("sub-1"));
    }

    #[test]
    fn debug_of_a_subscription_shows_no_secret() {
        let text = format!("{:?}", subscription("sub-1"));
        for secret in [TOKEN, PASSWORD, SIGNING] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("hook-user:*****@hooks.example.com"), "{text}");
        let mut basic = subscription("sub-2");
        basic.target = Target::Http(HttpTarget {
            url: "https://h.example.com/".into(),
            mode: DispatchMode::Sync,
            auth: HttpAuth::Basic {
                user_name: "u".into(),
                password: PASSWORD.into(),
            },
        });
        let text = format!("{basic:?} {:?}", key(7));
        assert!(!text.contains(PASSWORD), "{text}");
    }

    #[test]
    fn urls_show_their_credentials_redacted() {
        assert_eq!(
            redacted_url("https://u:p%40ss@h.example.com:8443/a?b=c"),
            "https://u:*****@h.example.com:8443/a?b=c"
        );
        assert_eq!(
            redacted_url("https://ghp_token@h.example.com/a"),
            "https://*****@h.example.com/a"
        );
        // Without userinfo the text is kept exactly (no normalization).
        assert_eq!(
            redacted_url("https://h.example.com"),
            "https://h.example.com"
        );
        assert_eq!(redacted_url("not a url"), "not a url");
    }

    #[test]
    fn during_a_grace_period_two_signatures_go_out_each_verifying_with_its_secret() {
        const NEW: &str = "whsec_bmV3LXNpZ25pbmcta2V5";
        let mut rotated = subscription("sub-1");
        rotated.signing_secret = NEW.into();
        let until = rotated.created + chrono::Duration::hours(24);
        rotated.previous_signing_secret = Some(crate::model::PreviousSigningSecret {
            secret: SIGNING.into(),
            until,
        });
        let (id, ts, body) = ("inv-1", 1_700_000_000, br#"{"a":1}"#.as_slice());

        let header = webhook_signatures(
            rotated.signing_secrets(until - chrono::Duration::seconds(1)),
            id,
            ts,
            body,
        );

        // Standard Webhooks: `v1,<b64> v1,<b64>`, the new secret's first.
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [
                webhook_signature(NEW, id, ts, body),
                webhook_signature(SIGNING, id, ts, body)
            ]
        );
        assert!(parts.iter().all(|p| p.starts_with("v1,")), "{header}");
        assert_ne!(parts[0], parts[1]);

        // At the end of the grace period (exclusive), only the new one.
        let after = webhook_signatures(rotated.signing_secrets(until), id, ts, body);
        assert_eq!(after, webhook_signature(NEW, id, ts, body));
        // Without a rotation, exactly the one signature as before.
        let plain = subscription("sub-2");
        assert_eq!(
            webhook_signatures(plain.signing_secrets(until), id, ts, body),
            webhook_signature(SIGNING, id, ts, body)
        );
    }

    #[test]
    fn a_rotated_out_secret_is_sealed_in_its_own_field_and_hidden_from_debug() {
        let mut rotated = subscription("sub-1");
        rotated.signing_secret = "whsec_bmV3LXNpZ25pbmcta2V5".into();
        rotated.previous_signing_secret = Some(crate::model::PreviousSigningSecret {
            secret: SIGNING.into(),
            until: rotated.created,
        });
        let stored = serde_json::to_string(&key(7).seal(&rotated).unwrap()).unwrap();
        assert!(!stored.contains(SIGNING), "{stored}");
        assert_eq!(stored.matches(SEALED_PREFIX).count(), 4, "{stored}");
        let read: SealedSubscription = serde_json::from_str(&stored).unwrap();
        assert_eq!(key(7).open(read).unwrap(), rotated);
        // Moved into the current secret's field, it does not open.
        let mut swapped: Subscription = serde_json::from_str(&stored).unwrap();
        let previous = swapped.previous_signing_secret.take().unwrap();
        swapped.signing_secret = previous.secret;
        assert!(key(7).open(SealedSubscription(swapped)).is_err());
        let text = format!("{rotated:?}");
        assert!(!text.contains(SIGNING), "{text}");
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
