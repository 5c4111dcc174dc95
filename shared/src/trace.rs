//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` an invocation is raised with, kept with it, passed to every delivery and shown in
//! its status.
//!
//! Per the spec, a context that does not parse is ignored, never refused: a `start` with an
//! invalid `traceparent` starts a new trace (as one without it does), and a `tracestate` that is
//! invalid, longer than [`MAX_TRACESTATE_CHARS`] or has more than [`MAX_TRACESTATE_MEMBERS`]
//! members is dropped (so is any `tracestate` without a valid `traceparent`).
//!
//! Each delivery attempt is a new span of the invocation's trace: the `traceparent` a subscriber
//! receives keeps the trace id and flags and carries a parent id of its own, derived from the
//! invocation and the attempt ([`TraceContext::for_attempt`]), so that it needs no randomness in
//! the delivery path and a redelivered attempt reads the same.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::time::IdGenerator;

/// The longest `tracestate` kept (the spec's limit for one a vendor propagates).
pub const MAX_TRACESTATE_CHARS: usize = 512;
/// The most list members of a `tracestate` kept.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The length of a version-00 `traceparent`: `00-` 32 hex `-` 16 hex `-` 2 hex.
const TRACEPARENT_LEN: usize = 55;

/// A valid trace context: `traceparent` in its version-00 form, and the `tracestate` that came
/// with it, if any (valid, normalized: members trimmed and joined by `,`).
///
/// Stored with the invocation (in its body as created, on both backends) as
/// `{"traceparent": …, "tracestate": …}`: at most 55 + 512 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The context of an incoming request (or event): `None` when `traceparent` is absent or
    /// invalid. `tracestate` is every value of the header (or the one field), combined as the
    /// spec combines repeated headers, and dropped when invalid.
    pub fn parse(traceparent: Option<&str>, tracestate: &[&str]) -> Option<TraceContext> {
        let traceparent = parse_traceparent(traceparent?)?;
        Some(TraceContext {
            traceparent,
            tracestate: parse_tracestate(tracestate),
        })
    }

    /// A new trace: version 00, a random trace id, a random parent id, sampled (flags `01`).
    /// The bytes come from `ids`, so that tests (and event-derived ids) fix them.
    pub fn start(ids: &dyn IdGenerator) -> TraceContext {
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        ids.trace_bytes(&mut trace_id);
        ids.trace_bytes(&mut parent_id);
        nonzero(&mut trace_id);
        nonzero(&mut parent_id);
        TraceContext {
            traceparent: format!("00-{}-{}-01", hex::encode(trace_id), hex::encode(parent_id)),
            tracestate: None,
        }
    }

    /// The 32 lowercase hex digits of the trace id (what the logs carry as `trace_id`).
    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }

    /// The 16 lowercase hex digits of the parent (span) id.
    pub fn parent_id(&self) -> &str {
        self.traceparent.get(36..52).unwrap_or_default()
    }

    /// The two hex digits of the trace flags.
    pub fn flags(&self) -> &str {
        self.traceparent.get(53..55).unwrap_or_default()
    }

    /// The `traceparent` one delivery attempt sends: this trace id and flags, and a parent id
    /// of its own derived from the invocation id and the attempt's `span` number, so that each
    /// attempt is a distinct span of the same trace.
    pub fn for_attempt(&self, invocation_id: &str, span: u64) -> String {
        let digest = Sha256::new()
            .chain_update(self.traceparent.as_bytes())
            .chain_update(invocation_id.as_bytes())
            .chain_update(span.to_be_bytes())
            .finalize();
        let mut parent_id = [0u8; 8];
        parent_id.copy_from_slice(&digest[..8]);
        nonzero(&mut parent_id);
        format!(
            "00-{}-{}-{}",
            self.trace_id(),
            hex::encode(parent_id),
            self.flags()
        )
    }
}

/// An all-zero id is invalid; the generator's bytes are made valid rather than retried (a
/// fixed generator in tests would loop).
fn nonzero(bytes: &mut [u8]) {
    if bytes.iter().all(|b| *b == 0)
        && let Some(last) = bytes.last_mut()
    {
        *last = 1;
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A `traceparent` in its version-00 form, or `None` if it is invalid. A higher version (not
/// `ff`) is read as its version-00 prefix, as the spec asks, and sent on as version 00.
fn parse_traceparent(value: &str) -> Option<String> {
    let value = value.trim_matches([' ', '\t']);
    let bytes = value.as_bytes();
    // Every index and slice below is under TRACEPARENT_LEN (55), and ASCII makes each byte
    // a char boundary: none of them can panic once this holds.
    if bytes.len() < TRACEPARENT_LEN || !value.is_ascii() {
        return None;
    }
    let version = &value[0..2];
    if !is_lower_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && bytes.len() != TRACEPARENT_LEN {
        return None;
    }
    if bytes.len() > TRACEPARENT_LEN && bytes[TRACEPARENT_LEN] != b'-' {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let (trace_id, parent_id, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    if !is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags) {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(format!("00-{trace_id}-{parent_id}-{flags}"))
}

/// The list members of `values` (each a comma-separated list), trimmed and joined, or `None`
/// when there are none or any is invalid, or the list is too long.
fn parse_tracestate(values: &[&str]) -> Option<String> {
    let mut members = Vec::new();
    for value in values {
        for member in value.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            if !valid_member(member) || members.len() == MAX_TRACESTATE_MEMBERS {
                return None;
            }
            members.push(member);
        }
    }
    let joined = members.join(",");
    (!joined.is_empty() && joined.len() <= MAX_TRACESTATE_CHARS).then_some(joined)
}

/// `key=value`: a key of lowercase letters, digits and `_-*/` (with an optional `@vendor`), a
/// value of 1 to 256 printable ASCII characters other than `,` and `=`, not ending in a space.
fn valid_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let key_char = |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    let (tenant, vendor) = match key.split_once('@') {
        Some((tenant, vendor)) => (tenant, Some(vendor)),
        None => (key, None),
    };
    let tenant_ok = !tenant.is_empty()
        && tenant.len() <= 256
        && tenant.bytes().all(key_char)
        && (vendor.is_some() || tenant.as_bytes()[0].is_ascii_lowercase());
    let vendor_ok = vendor.is_none_or(|v| {
        !v.is_empty()
            && v.len() <= 14
            && v.as_bytes()[0].is_ascii_lowercase()
            && v.bytes().all(key_char)
    });
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
    tenant_ok && vendor_ok && value_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::time::RandomIds;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_kept_with_its_ids() {
        let trace = TraceContext::parse(Some(GOOD), &["congo=t61rcWkgMzE"]).unwrap();
        assert_eq!(trace.traceparent, GOOD);
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.parent_id(), "00f067aa0ba902b7");
        assert_eq!(trace.flags(), "01");
        assert_eq!(trace.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(TraceContext::parse(Some(bad), &["a=b"]), None, "{bad}");
        }
        assert_eq!(TraceContext::parse(None, &["a=b"]), None);
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        let trace = TraceContext::parse(Some(later), &[]).unwrap();
        assert_eq!(trace.traceparent, GOOD);
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn tracestate_is_combined_trimmed_and_dropped_when_invalid_or_too_long() {
        let state = |values: &[&str]| TraceContext::parse(Some(GOOD), values).unwrap().tracestate;
        assert_eq!(
            state(&["rojo=00f067aa0ba902b7 , ", "congo=t61rcWkgMzE"]).as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(
            state(&["tenant@vendor=x"]).as_deref(),
            Some("tenant@vendor=x")
        );
        assert_eq!(state(&[]), None);
        assert_eq!(state(&[" , "]), None);
        for bad in [
            "novalue", "Upper=x", "a=b=c", "a=", "=b", "a b=c", "a=\u{7f}",
        ] {
            assert_eq!(state(&[bad]), None, "{bad}");
        }
        let members: Vec<String> = (0..MAX_TRACESTATE_MEMBERS)
            .map(|i| format!("k{i}=v"))
            .collect();
        assert!(state(&[&members.join(",")]).is_some());
        let too_many: Vec<String> = (0..=MAX_TRACESTATE_MEMBERS)
            .map(|i| format!("k{i}=v"))
            .collect();
        assert_eq!(state(&[&too_many.join(",")]), None);
        let long = format!("a={},b={}", "x".repeat(254), "y".repeat(253));
        assert_eq!(state(&[&long]).map(|s| s.len()), Some(MAX_TRACESTATE_CHARS));
        let too_long = format!("a={},b={}", "x".repeat(256), "y".repeat(256));
        assert_eq!(state(&[&too_long]), None);
    }

    /// Bytes from a script, as a test's id generator gives them.
    #[derive(Debug)]
    struct Fixed(u8);

    impl IdGenerator for Fixed {
        fn id(&self) -> String {
            String::new()
        }
        fn secret(&self, _: usize) -> String {
            String::new()
        }
        fn trace_bytes(&self, out: &mut [u8]) {
            out.fill(self.0);
        }
    }

    #[test]
    fn a_new_trace_is_valid_sampled_version_00_from_the_generator() {
        let trace = TraceContext::start(&Fixed(0xab));
        assert_eq!(
            trace.traceparent,
            format!("00-{}-{}-01", "ab".repeat(16), "ab".repeat(8))
        );
        let zero = TraceContext::start(&Fixed(0));
        assert!(
            TraceContext::parse(Some(&zero.traceparent), &[]).is_some(),
            "{zero:?}"
        );
        let random = TraceContext::start(&RandomIds);
        assert_eq!(
            TraceContext::parse(Some(&random.traceparent), &[]),
            Some(random.clone())
        );
        assert_ne!(
            random.trace_id(),
            TraceContext::start(&RandomIds).trace_id()
        );
    }

    #[test]
    fn each_attempt_is_a_new_span_of_the_same_trace() {
        let trace = TraceContext::parse(Some(GOOD), &[]).unwrap();
        let first = trace.for_attempt("inv-1", 0);
        let second = trace.for_attempt("inv-1", 1);
        let other = trace.for_attempt("inv-2", 0);
        for sent in [&first, &second, &other] {
            let parsed = TraceContext::parse(Some(sent), &[]).unwrap();
            assert_eq!(parsed.trace_id(), trace.trace_id());
            assert_eq!(parsed.flags(), "01");
            assert_ne!(parsed.parent_id(), trace.parent_id());
        }
        assert_ne!(first, second);
        assert_ne!(first, other);
        assert_eq!(first, trace.for_attempt("inv-1", 0));
    }

    #[test]
    fn the_stored_form_is_bounded() {
        let trace = TraceContext::parse(
            Some(GOOD),
            &[&format!("a={},b={}", "x".repeat(254), "y".repeat(253))],
        )
        .unwrap();
        assert_eq!(
            trace.tracestate.as_ref().map(String::len),
            Some(MAX_TRACESTATE_CHARS)
        );
        let json = serde_json::to_string(&trace).unwrap();
        assert!(json.len() < 1024, "{}", json.len());
        let back: TraceContext = serde_json::from_str(&json).unwrap();
        assert_eq!(back, trace);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn junk_never_panics_and_what_is_kept_is_valid(
            parent in ".{0,80}",
            shaped in "[0-9a-fA-F-]{50,60}",
            states in proptest::collection::vec(".{0,600}", 0..3),
        ) {
            let states: Vec<&str> = states.iter().map(String::as_str).collect();
            for candidate in [parent.as_str(), shaped.as_str()] {
                if let Some(trace) = TraceContext::parse(Some(candidate), &states) {
                    prop_assert_eq!(trace.traceparent.len(), TRACEPARENT_LEN);
                    prop_assert!(TraceContext::parse(Some(&trace.traceparent), &[]).is_some());
                    if let Some(state) = &trace.tracestate {
                        prop_assert!(state.len() <= MAX_TRACESTATE_CHARS);
                        prop_assert!(state.split(',').count() <= MAX_TRACESTATE_MEMBERS);
                    }
                    let sent = trace.for_attempt("inv", 3);
                    prop_assert!(TraceContext::parse(Some(&sent), &[]).is_some());
                }
            }
        }
    }
}
