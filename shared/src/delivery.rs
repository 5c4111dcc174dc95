//! The rules of delivery, free of I/O: what a subscriber receives, what its answer means (the
//! table in `design/api.md`), and when a failed attempt is tried again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::catalog::CatalogEntry;
use crate::model::{DispatchMode, Invocation, InvocationState, TriggerType};

/// How long a subscriber has to answer one HTTP delivery.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Response bodies beyond this are cut off (and so fail output validation).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Whether the subscriber of `invocation` may call back (ASYNC and DYNAMIC): only its payload
/// carries the callback URL and secret.
pub fn calls_back(invocation: &Invocation) -> bool {
    invocation
        .response_mode
        .is_some_and(|mode| mode != DispatchMode::Sync)
}

/// The body a subscriber receives: the trigger input with `_metadata` merged at the top.
pub fn payload(invocation: &Invocation, callback_url: &str, secret: &str) -> Value {
    let mut metadata = json!({
        "triggerId": invocation.trigger_id,
        "triggerType": invocation.trigger_type.metadata_name(),
        "invocationId": invocation.id,
    });
    if let Some(mode) = invocation.response_mode {
        metadata["responseMode"] = json!(match mode {
            DispatchMode::Sync => "sync",
            DispatchMode::Async => "async",
            DispatchMode::Dynamic => "dynamic",
        });
        if calls_back(invocation) {
            metadata["callbackURL"] = json!(callback_url);
            metadata["secret"] = json!(secret);
        }
    }
    let mut body = match &*invocation.input {
        Value::Object(input) => input.clone(),
        other => {
            let mut m = Map::new();
            m.insert("input".into(), other.clone());
            m
        }
    };
    body.insert("_metadata".into(), metadata);
    Value::Object(body)
}

/// [`payload`] as the JSON an HTTP subscriber receives, byte for byte the same, written
/// straight from the invocation: building the `Value` first copied the whole input per attempt.
pub fn payload_json(invocation: &Invocation, callback_url: &str, secret: &str) -> Vec<u8> {
    let body = Payload {
        input: &invocation.input,
        metadata: Metadata::of(invocation, callback_url, secret),
    };
    // Serializing borrowed JSON values and strings into a Vec cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `_metadata`, its fields in the order of a `serde_json::Map` (sorted), as [`payload`] has them.
#[derive(serde::Serialize)]
struct Metadata<'a> {
    #[serde(rename = "callbackURL", skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
    #[serde(rename = "invocationId")]
    invocation_id: &'a str,
    #[serde(rename = "responseMode", skip_serializing_if = "Option::is_none")]
    response_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
    #[serde(rename = "triggerId")]
    trigger_id: &'a str,
    #[serde(rename = "triggerType")]
    trigger_type: &'static str,
}

impl<'a> Metadata<'a> {
    fn of(invocation: &'a Invocation, callback_url: &'a str, secret: &'a str) -> Self {
        let mode = invocation.response_mode;
        let calls_back = calls_back(invocation);
        Metadata {
            callback_url: calls_back.then_some(callback_url),
            invocation_id: &invocation.id,
            response_mode: mode.map(|m| match m {
                DispatchMode::Sync => "sync",
                DispatchMode::Async => "async",
                DispatchMode::Dynamic => "dynamic",
            }),
            secret: calls_back.then_some(secret),
            trigger_id: &invocation.trigger_id,
            trigger_type: invocation.trigger_type.metadata_name(),
        }
    }
}

/// The input's members with `_metadata` in its sorted place (replacing an input member of that
/// name), or `{"_metadata": ..., "input": ...}` for an input that is not an object.
struct Payload<'a> {
    input: &'a Value,
    metadata: Metadata<'a>,
}

impl serde::Serialize for Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const KEY: &str = "_metadata";
        let mut map = serializer.serialize_map(None)?;
        match self.input {
            Value::Object(members) => {
                let mut placed = false;
                for (name, value) in members {
                    if name == KEY {
                        continue;
                    }
                    if !placed && name.as_str() > KEY {
                        map.serialize_entry(KEY, &self.metadata)?;
                        placed = true;
                    }
                    map.serialize_entry(name, value)?;
                }
                if !placed {
                    map.serialize_entry(KEY, &self.metadata)?;
                }
            }
            other => {
                map.serialize_entry(KEY, &self.metadata)?;
                map.serialize_entry("input", other)?;
            }
        }
        map.end()
    }
}

/// What came back from one HTTP delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The subscriber answered.
    Answered {
        status: u16,
        body: Vec<u8>,
        /// `Retry-After`, when the subscriber sent one.
        retry_after: Option<Duration>,
    },
    /// No answer within [`ATTEMPT_TIMEOUT`].
    TimedOut,
    /// No connection (refused, unreachable, DNS, TLS).
    Unreachable(String),
    /// The target resolves to an address deliveries may not go to.
    Blocked(String),
}

/// What an attempt means for the invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Final success: REQUEST_RESPONSE answered with a valid output, or FIRE_AND_FORGET delivered.
    Completed { output: Option<Value> },
    /// The subscriber took it and will complete it through the callback.
    Acknowledged,
    /// The attempt failed; `retry` says whether another attempt may succeed.
    Failed {
        error: String,
        retry: bool,
        retry_after: Option<Duration>,
    },
}

/// Reads a reply by the table in `design/api.md`.
pub fn judge(entry: &CatalogEntry, invocation: &Invocation, reply: &Reply) -> Verdict {
    let (status, body, retry_after) = match reply {
        Reply::Answered {
            status,
            body,
            retry_after,
        } => (*status, body, *retry_after),
        Reply::TimedOut => {
            return failed(
                format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
                true,
            );
        }
        Reply::Unreachable(why) => return failed(format!("connection failed: {why}"), true),
        Reply::Blocked(why) => return failed(format!("target refused: {why}"), false),
    };
    if !(200..300).contains(&status) {
        let retry = status >= 500 || status == 408 || status == 429;
        return Verdict::Failed {
            error: format!("subscriber answered {status}"),
            retry,
            retry_after,
        };
    }
    if invocation.trigger_type == TriggerType::FireAndForget {
        return Verdict::Completed { output: None };
    }
    let acknowledges = match invocation.response_mode {
        Some(DispatchMode::Async) => true,
        Some(DispatchMode::Dynamic) => status == 202,
        Some(DispatchMode::Sync) | None => false,
    };
    if acknowledges {
        return Verdict::Acknowledged;
    }
    if status != 200 {
        return failed(
            format!("subscriber answered {status}; a response needs 200 with the output"),
            false,
        );
    }
    let output: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return failed(format!("the answer is not JSON: {e}"), false),
    };
    // It would be recorded and handed on rounded, as a request's input would be if taken.
    if let Some((path, number)) = crate::numbers::integer_beyond_64_bits(body) {
        let field = if path.is_empty() {
            "output".to_owned()
        } else {
            format!("output.{path}")
        };
        return failed(
            format!(
                "invalid output: {field}: `{number}` is an integer beyond 64 bits, which would \
                 not be kept as sent; answer it as a string"
            ),
            false,
        );
    }
    // An output that would not fit the invocation's record is a failed attempt, not a store
    // failure after the subscriber already acted.
    if let Err(e) = crate::limits::check_output("output", &output) {
        return failed(format!("the answer is too large: {e}"), false);
    }
    match entry.check_output("output", &output) {
        Ok(()) => Verdict::Completed {
            output: Some(output),
        },
        Err(e) => failed(format!("invalid output: {e}"), false),
    }
}

/// A failed verdict. Its error is kept with the attempt (and, for the last, as the
/// invocation's), so it is bounded: it may quote what the subscriber sent (an output that
/// breaks the schema is quoted by the violation), up to 128 KiB.
fn failed(error: String, retry: bool) -> Verdict {
    Verdict::Failed {
        error: crate::limits::bounded_error(error),
        retry,
        retry_after: None,
    }
}

/// Whether a mode's acknowledgements and FIRE_AND_FORGET deliveries are retried. A SYNC answer
/// has one 10 s window: the caller is waiting on it.
pub fn retries(invocation: &Invocation) -> bool {
    !(invocation.trigger_type == TriggerType::RequestResponse
        && invocation.response_mode == Some(DispatchMode::Sync))
}

/// The retry schedule: delay before attempt `n + 1` after `n` failed attempts (n ≥ 1), before
/// jitter. After the last entry the delay stays at one hour.
pub const BACKOFF: &[Duration] = &[
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
];

/// `Retry-After` is honoured within these bounds.
pub const RETRY_AFTER_CLAMP: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));

/// When to try again after `attempts` failed attempts, or `None` when the invocation has had
/// its last one. `jitter` in [0, 1) spreads retries ±20 % so that a recovering subscriber is not
/// hit by all of them at once.
pub fn next_attempt(
    now: DateTime<Utc>,
    attempts: u32,
    max_attempts: u32,
    retry_after: Option<Duration>,
    deadline: Option<DateTime<Utc>>,
    jitter: f64,
) -> Option<DateTime<Utc>> {
    if attempts >= max_attempts {
        return None;
    }
    let delay = match retry_after {
        Some(asked) => asked.clamp(RETRY_AFTER_CLAMP.0, RETRY_AFTER_CLAMP.1),
        None => {
            let base = BACKOFF[(attempts as usize).saturating_sub(1).min(BACKOFF.len() - 1)];
            base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
        }
    };
    let at = crate::time::later(
        now,
        chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1)),
    );
    match deadline {
        Some(d) if at >= d => None,
        _ => Some(at),
    }
}

/// The state an open invocation moves to for a verdict.
pub fn state_after(verdict: &Verdict) -> InvocationState {
    match verdict {
        Verdict::Completed { .. } => InvocationState::Completed,
        Verdict::Acknowledged => InvocationState::Acknowledged,
        Verdict::Failed { .. } => InvocationState::Failed,
    }
}

/// Checks the public base URL that callback and status URLs are made from
/// (`{base}/trigger-invocations/v1/{id}/complete`), and returns it without a trailing slash.
/// Every ASYNC subscriber is sent a URL built on it, so one it cannot call (no scheme, another
/// scheme, a query or fragment the path would be appended after, or credentials, which every
/// subscriber would be sent) is refused at start rather than found when callbacks never come.
/// Blank is unset (an empty environment variable), returned as empty for the caller's default.
pub fn public_base_url(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Ok(String::new());
    }
    // Room for `/trigger-invocations/v1/{id}/complete` within a URL a subscriber takes.
    let most = crate::limits::MAX_URL_BYTES - 128;
    if text.trim().len() > most {
        return Err(format!("is longer than {most} bytes"));
    }
    let url = url::Url::parse(text.trim())
        .map_err(|e| format!("`{text}` is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` is not an http or https URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a query or fragment; give the base URL alone"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{text}` carries credentials, which every subscriber would be sent"
        ));
    }
    Ok(text.trim().trim_end_matches('/').to_owned())
}

/// The host of `url`, as an attempt records its target: empty when it has none or does not
/// parse.
pub fn url_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::model::InvocationType;
    use chrono::TimeZone;

    #[test]
    fn a_public_base_url_is_one_a_subscriber_can_call() {
        for (good, base) in [
            ("https://api.example.com", "https://api.example.com"),
            ("https://api.example.com/", "https://api.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "https://example.com/triggerline/",
                "https://example.com/triggerline",
            ),
        ] {
            assert_eq!(public_base_url(good).as_deref(), Ok(base), "{good}");
        }
        for bad in [
            "notaurl",
            "api.example.com",
            "ftp://example.com",
            "https://",
            "file:///tmp",
            "https://example.com/?a=b",
            "https://example.com/#x",
            "https://user:pw@example.com",
        ] {
            assert!(public_base_url(bad).is_err(), "{bad}");
        }
        let long = format!("https://{}.com", "a".repeat(2_000));
        assert!(public_base_url(&long).unwrap_err().contains("longer than"));
        assert_eq!(public_base_url(" ").as_deref(), Ok(""), "blank is unset");
    }

    /// An invocation of `trigger` as raised, with the trigger's example input.
    pub(crate) fn invocation(trigger: &str, mode: Option<DispatchMode>) -> Invocation {
        let entry = Catalog::builtin().get(trigger).unwrap();
        Invocation {
            heartbeat: None,
            id: "inv".into(),
            trigger_id: trigger.into(),
            trigger_type: entry.trigger.trigger_type,
            subscription_id: "s".into(),
            subscription_name: "n".into(),
            invocation_type: InvocationType::RealTime,
            response_mode: mode,
            state: InvocationState::Pending,
            created: Utc::now(),
            completed: None,
            deadline: None,
            input: entry.trigger.example_input.clone().into(),
            content_json: json!({}).into(),
            output: None,
            error: None,
            ordering_key: None,
            secret_hash: String::new(),
            attempts: vec![],
            trace: None,
        }
    }

    fn answered(status: u16, body: &str) -> Reply {
        Reply::Answered {
            status,
            body: body.as_bytes().to_vec(),
            retry_after: None,
        }
    }

    const PRE: &str = "idn:access-request-pre-approval";
    const OUTPUT: &str = r#"{"approved": true, "comment": "ok", "approver": "bot"}"#;

    #[test]
    fn the_subscriber_table_of_api_md() {
        let entry = Catalog::builtin().get(PRE).unwrap();
        let sync = invocation(PRE, Some(DispatchMode::Sync));
        let asynchronous = invocation(PRE, Some(DispatchMode::Async));
        let dynamic = invocation(PRE, Some(DispatchMode::Dynamic));
        let ff = invocation("idn:identity-created", None);
        let ff_entry = Catalog::builtin().get("idn:identity-created").unwrap();

        assert!(matches!(
            judge(entry, &sync, &answered(200, OUTPUT)),
            Verdict::Completed { output: Some(_) }
        ));
        assert_eq!(
            judge(entry, &asynchronous, &answered(200, "{}")),
            Verdict::Acknowledged
        );
        assert!(matches!(
            judge(entry, &dynamic, &answered(200, OUTPUT)),
            Verdict::Completed { .. }
        ));
        assert_eq!(
            judge(entry, &dynamic, &answered(202, "{}")),
            Verdict::Acknowledged
        );
        assert_eq!(
            judge(ff_entry, &ff, &answered(204, "")),
            Verdict::Completed { output: None }
        );
    }

    #[test]
    fn failures_say_why_and_whether_to_retry() {
        let entry = Catalog::builtin().get(PRE).unwrap();
        let sync = invocation(PRE, Some(DispatchMode::Sync));
        let cases = [
            (
                answered(200, r#"{"approved": "yes"}"#),
                "invalid output",
                false,
            ),
            (
                answered(
                    200,
                    r#"{"approved": true, "comment": "ok", "approver": "bot", "n": [123456789012345678901234567890]}"#,
                ),
                "invalid output: output.n[0]: `123456789012345678901234567890` is an integer beyond 64 bits",
                false,
            ),
            (answered(500, ""), "answered 500", true),
            (answered(429, ""), "answered 429", true),
            (answered(408, ""), "answered 408", true),
            (answered(404, ""), "answered 404", false),
            (Reply::TimedOut, "no answer within 10 s", true),
            (
                Reply::Unreachable("refused".into()),
                "connection failed",
                true,
            ),
        ];
        for (reply, why, retry) in cases {
            match judge(entry, &sync, &reply) {
                Verdict::Failed {
                    error, retry: r, ..
                } => {
                    assert!(error.contains(why), "{error}");
                    assert_eq!(r, retry, "{why}");
                }
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_invalid_output_quoting_a_huge_value_is_kept_short() {
        let entry = Catalog::builtin().get(PRE).unwrap();
        let sync = invocation(PRE, Some(DispatchMode::Sync));
        // The schema's violation quotes the value: 100 KiB of it, within MAX_OUTPUT_BYTES.
        let huge = format!(
            r#"{{"approved": "{}", "comment": "c", "approver": "a"}}"#,
            "y".repeat(100 * 1024)
        );
        match judge(entry, &sync, &answered(200, &huge)) {
            Verdict::Failed { error, retry, .. } => {
                assert!(error.starts_with("invalid output"), "{error}");
                assert!(
                    error.len() <= crate::limits::MAX_ATTEMPT_ERROR_BYTES,
                    "{}",
                    error.len()
                );
                assert!(!retry);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn payload_json_is_the_payload_serialized_byte_for_byte() {
        let inputs = [
            json!({"identity": {"id": "1", "name": "Ann"}, "Zebra": 1, "a": [1, 2]}),
            json!({"_metadata": "replaced", "ABC": true, "zz": null, "_a": 1, "_z": 2}),
            json!({}),
            json!(["not", "an", "object"]),
            json!("text"),
            json!({"emoji": "\u{1F600}", "quote": "a\"b\\c\n"}),
        ];
        let modes = [
            None,
            Some(DispatchMode::Sync),
            Some(DispatchMode::Async),
            Some(DispatchMode::Dynamic),
        ];
        for input in inputs {
            for mode in modes {
                let mut inv = invocation(PRE, mode);
                inv.input = input.clone().into();
                let built = serde_json::to_vec(&payload(&inv, "https://cb/x", "s3cr3t")).unwrap();
                assert_eq!(
                    String::from_utf8(payload_json(&inv, "https://cb/x", "s3cr3t")).unwrap(),
                    String::from_utf8(built).unwrap(),
                    "input {input}, mode {mode:?}"
                );
            }
        }
    }

    #[test]
    fn payload_merges_metadata_and_hides_the_secret_from_sync_receivers() {
        let mut asynchronous = invocation(PRE, Some(DispatchMode::Async));
        asynchronous.id = "i-1".into();
        let body = payload(
            &asynchronous,
            "http://tl/trigger-invocations/v1/i-1/complete",
            "s3",
        );
        assert_eq!(body["_metadata"]["triggerType"], "requestResponse");
        assert_eq!(body["_metadata"]["responseMode"], "async");
        assert_eq!(body["_metadata"]["secret"], "s3");
        assert_eq!(
            body["_metadata"]["callbackURL"],
            "http://tl/trigger-invocations/v1/i-1/complete"
        );
        assert_eq!(
            body["accessRequestId"],
            asynchronous.input["accessRequestId"]
        );
        let sync = invocation(PRE, Some(DispatchMode::Sync));
        assert!(
            payload(&sync, "u", "s")
                .get("_metadata")
                .unwrap()
                .get("secret")
                .is_none()
        );
        let ff = invocation("idn:identity-created", None);
        assert_eq!(
            payload(&ff, "u", "s")["_metadata"]["triggerType"],
            "fireAndForget"
        );
    }

    #[test]
    fn backoff_follows_the_schedule_within_deadline_and_attempt_cap() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let at = |n, jitter| next_attempt(now, n, 8, None, None, jitter).unwrap() - now;
        assert_eq!(at(1, 0.5), chrono::Duration::seconds(5));
        assert_eq!(at(2, 0.5), chrono::Duration::seconds(30));
        assert_eq!(at(7, 0.5), chrono::Duration::hours(1));
        assert!(
            at(1, 0.0) >= chrono::Duration::seconds(4)
                && at(1, 0.99) <= chrono::Duration::seconds(6)
        );
        assert_eq!(next_attempt(now, 8, 8, None, None, 0.5), None);
        let deadline = now + chrono::Duration::seconds(10);
        assert_eq!(next_attempt(now, 2, 8, None, Some(deadline), 0.5), None);
        let honoured = next_attempt(now, 1, 8, Some(Duration::from_secs(90)), None, 0.5).unwrap();
        assert_eq!(honoured - now, chrono::Duration::seconds(90));
        let clamped =
            next_attempt(now, 1, 8, Some(Duration::from_secs(86_400)), None, 0.5).unwrap();
        assert_eq!(clamped - now, chrono::Duration::hours(1));
    }
}
