//! Standard Webhooks verification, written from the specification rather than shared with the
//! server's signer, so that `listen` proves what a third-party receiver would see.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a `webhook-timestamp` may be from the receiver's clock (the specification's
/// suggested tolerance), so that a captured request cannot be replayed later.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// What the signature headers of one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// One of the `v1,` signatures is the HMAC of this request.
    Valid,
    /// The request is not what the secret signed; the reason says which check failed.
    Invalid(String),
    /// No signing secret is known, so nothing was checked.
    Unverified,
}

impl Verdict {
    pub fn label(&self) -> &str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid(_) => "invalid",
            Verdict::Unverified => "unverified",
        }
    }
}

/// Checks `webhook-id`, `webhook-timestamp` and `webhook-signature` (a space-separated list of
/// `v1,<base64>`) against `secret` (`whsec_<base64 key>`), at unix time `now`.
pub fn verify(
    secret: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Verdict {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Verdict::Invalid(
            "a webhook-id, webhook-timestamp or webhook-signature header is missing".into(),
        );
    };
    let Ok(seconds) = timestamp.parse::<i64>() else {
        return Verdict::Invalid(format!(
            "webhook-timestamp `{timestamp}` is not unix seconds"
        ));
    };
    // `abs_diff`: a sender's timestamp may be any i64, and `now - seconds` can overflow.
    let away = now.abs_diff(seconds);
    if away > TOLERANCE_SECS.unsigned_abs() {
        return Verdict::Invalid(format!(
            "webhook-timestamp is {away} s away from this clock (tolerance {TOLERANCE_SECS} s)"
        ));
    }
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
    else {
        return Verdict::Invalid("the signing secret is not `whsec_<base64>`".into());
    };
    let mut signed = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    for candidate in signatures.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(bytes) = STANDARD.decode(encoded) else {
            continue;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            return Verdict::Invalid("the signing key is unusable".into());
        };
        mac.update(&signed);
        // verify_slice compares in constant time.
        if mac.verify_slice(&bytes).is_ok() {
            return Verdict::Valid;
        }
    }
    Verdict::Invalid("no v1 signature matches this body and the signing secret".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's reference vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn the_reference_vector_is_valid() {
        let verdict = verify(SECRET, Some(ID), Some(TS), Some(SIG), BODY, 1614265330);
        assert_eq!(verdict, Verdict::Valid);
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let list = format!("v1,bm90IGl0 {SIG}");
        let verdict = verify(SECRET, Some(ID), Some(TS), Some(&list), BODY, 1614265330);
        assert_eq!(verdict, Verdict::Valid);
    }

    #[test]
    fn a_changed_body_or_another_secret_is_invalid() {
        let changed = verify(
            SECRET,
            Some(ID),
            Some(TS),
            Some(SIG),
            br#"{"test": 1}"#,
            1614265330,
        );
        assert!(matches!(changed, Verdict::Invalid(_)), "{changed:?}");
        let other = verify(
            "whsec_b3RoZXI=",
            Some(ID),
            Some(TS),
            Some(SIG),
            BODY,
            1614265330,
        );
        assert!(matches!(other, Verdict::Invalid(_)), "{other:?}");
    }

    #[test]
    fn an_old_timestamp_is_invalid_even_with_a_good_signature() {
        let verdict = verify(
            SECRET,
            Some(ID),
            Some(TS),
            Some(SIG),
            BODY,
            1614265330 + 301,
        );
        let Verdict::Invalid(reason) = verdict else {
            panic!("{verdict:?}");
        };
        assert!(reason.contains("webhook-timestamp"), "{reason}");
    }

    /// Timestamps at the ends of i64: `now - seconds` overflowed there (a panic in a debug
    /// build; in a release build `i64::MIN + now` wrapped so that its distance read as negative,
    /// within the tolerance).
    #[test]
    fn a_timestamp_at_the_ends_of_i64_is_far_away() {
        let now = 1614265330;
        for far in [i64::MIN, i64::MIN + 1, now - i64::MAX, i64::MAX] {
            let ts = far.to_string();
            let verdict = verify(SECRET, Some(ID), Some(&ts), Some(SIG), BODY, now);
            let Verdict::Invalid(reason) = verdict else {
                panic!("{ts}: {verdict:?}");
            };
            assert!(reason.contains("away from this clock"), "{ts}: {reason}");
        }
    }

    #[test]
    fn missing_headers_are_invalid() {
        let verdict = verify(SECRET, Some(ID), None, Some(SIG), BODY, 1614265330);
        assert!(matches!(verdict, Verdict::Invalid(_)));
    }
}
