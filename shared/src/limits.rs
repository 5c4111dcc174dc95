//! Size and reach limits, checked up front in the use cases so that both backends answer alike
//! (a 413 naming the limit) instead of an AWS service refusing a write halfway through a flow.
//!
//! The AWS services set the outer bounds: a DynamoDB item holds at most 400 KB, one
//! TransactWriteItems at most 4 MB and 100 items, an EventBridge entry and an SQS message at
//! most 256 KB. What Triggerline stores and sends must fit them with room to spare:
//!
//! - An invocation's `input` and `contentJson` together ([`MAX_INPUT_BYTES`], 128 KiB of JSON)
//!   travel whole in the events that carry them: a `Trigger Invocation Requested` event, and
//!   the event an EVENTBRIDGE subscription receives (with `_metadata`, under 1 KiB): both stay
//!   under the 256 KiB entry limit with 128 KiB to spare.
//! - A subscriber's output ([`MAX_OUTPUT_BYTES`], 128 KiB of JSON) travels whole in the
//!   `Trigger Invocation Completed` event (with ids and times, under 1 KiB).
//! - An invocation's trace context (`crate::trace`) is at most a 55-character `traceparent` and
//!   a 512-character `tracestate` (a longer one is dropped): under 1 KiB more in its item, its
//!   SQS work message and the event an EVENTBRIDGE subscription receives, within the room above.
//! - One invocation item then holds at most 128 KiB of input (stored deflated: never more than
//!   the text plus 0.1 %), 128 KiB of output (or of a callback's error), the attempts (each
//!   under 2 KiB: a host name, an error of at most [`MAX_ATTEMPT_ERROR_BYTES`], times and a
//!   status; the retry policy makes a handful a round) and about 1 KiB of ids, times and
//!   names: at most ~260 KiB plus attempts, which leaves over 100 KiB, 50 attempts' worth,
//!   under DynamoDB's 400 KiB item limit. So an invocation keeps at most
//!   [`MAX_KEPT_ATTEMPTS`] over all its rounds: the retry policy's attempts per round
//!   (`TRIGGERLINE_MAX_ATTEMPTS`) are bounded by it, and a `/retry` (a new round, which keeps
//!   the earlier attempts) that could pass it is refused. Written on moto, that largest
//!   invocation is 299,798 bytes (`the_largest_invocation_the_bounds_allow_fits_one_item`).
//! - A fan-out writes one item per subscription: at most 50 (a FIRE_AND_FORGET trigger's
//!   subscription limit) of at most ~130 KiB each when written, 6.5 MiB in the worst case, more
//!   than one 4 MB transaction takes. The DynamoDB store splits such a fan-out into several
//!   transactions of at most 4 MB (see `infra/aws/src/dynamo/invocations.rs`), so the limit
//!   here is per invocation, not per fan-out.
//! - A subscription item holds its name (255 characters: at most 1,020 bytes of UTF-8), its
//!   `description` ([`MAX_DESCRIPTION_CHARS`]: at most 8,000 bytes), its webhook URL
//!   ([`MAX_URL_BYTES`]), its filter (4,096 bytes, `crate::jsonpath`), its credentials
//!   ([`MAX_CREDENTIAL_BYTES`] each, a user name and a password or one bearer token; sealed at
//!   rest, which adds a nonce, a tag and base64's third: under 11 KiB each) and under 2 KiB of
//!   ids, times, secrets and health. Even counted twice (the DynamoDB item keeps the model as
//!   JSON beside the attributes it is queried by) that is under 100 KiB of the 400 KiB item.
//!   Without these bounds only the request body's 1 MiB held, and DynamoDB refused a larger
//!   item with a `ValidationException` that reached the caller as a 503 to retry.

use crate::Error;

/// The most bytes of one DynamoDB item (400 KB).
pub const DYNAMODB_ITEM_BYTES: usize = 400 * 1024;
/// The most bytes one DynamoDB TransactWriteItems takes (4 MB).
pub const DYNAMODB_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// The most items one DynamoDB TransactWriteItems takes.
pub const DYNAMODB_TRANSACTION_ITEMS: usize = 100;
/// The most bytes of one EventBridge entry (256 KB).
pub const EVENTBRIDGE_ENTRY_BYTES: usize = 256 * 1024;
/// The most bytes of one SQS message (256 KB).
pub const SQS_MESSAGE_BYTES: usize = 256 * 1024;

/// The most bytes of an invocation's `input` and `contentJson` together, as compact JSON.
pub const MAX_INPUT_BYTES: usize = 128 * 1024;
/// The most bytes of a subscriber's output, as compact JSON (a SYNC answer or a callback).
pub const MAX_OUTPUT_BYTES: usize = 128 * 1024;

/// The most delivery attempts one invocation keeps, its `/retry` rounds included: the room
/// for attempts that the item limit leaves (above).
pub const MAX_KEPT_ATTEMPTS: usize = 50;

/// The most bytes of an attempt's `error` (and of the error a failed delivery leaves on its
/// invocation): with the longest host name and the attempt's other fields, an attempt stays
/// under the 2 KiB each of the item calculation above counts.
pub const MAX_ATTEMPT_ERROR_BYTES: usize = 1_024;

/// `error` cut to at most [`MAX_ATTEMPT_ERROR_BYTES`] (at a character boundary), saying so.
pub fn bounded_error(error: String) -> String {
    const CUT: &str = "… (cut)";
    if error.len() <= MAX_ATTEMPT_ERROR_BYTES {
        return error;
    }
    let mut end = MAX_ATTEMPT_ERROR_BYTES - CUT.len();
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &error[..end])
}

/// The most characters of a subscription's `description`.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// The most bytes of a webhook URL (`httpConfig.url`), as many as an EventBridge API
/// destination's endpoint takes; longer ones are more than many receivers' servers accept in a
/// request line anyway.
pub const MAX_URL_BYTES: usize = 2_048;
/// The most bytes of each webhook credential (`userName`, `password`, `bearerToken`). Sent in an
/// `Authorization` header: most servers refuse a header line over 8 KiB.
pub const MAX_CREDENTIAL_BYTES: usize = 8_192;

/// The largest request body any route accepts (a 413 beyond), a `start-batch` included.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most starts in one `/start-batch` request. The request body's limit (1 MiB) still holds
/// for the batch as a whole; each start's input keeps [`MAX_INPUT_BYTES`].
pub const MAX_BATCH_STARTS: usize = 100;
/// The most invocations one `/start-batch` request raises, summed over its starts' fan-outs:
/// twenty full fan-outs. Without it, 100 starts to a trigger with 50 subscriptions raised 5,000
/// invocations in one request (about 50 MB of items at 9 KB of input each), a request that held
/// the local writer for its whole commit and broke the AWS emulator.
pub const MAX_BATCH_INVOCATIONS: usize = 1_000;
/// The most bytes of `input` and `contentJson` one `/start-batch` request writes, summed over
/// its invocations (each start's input counted once per matched subscription): what the largest
/// single start writes, [`MAX_INPUT_BYTES`] to 50 subscriptions (6.25 MiB), so that a batch
/// costs a store no more than one start already may.
pub const MAX_BATCH_WRITE_BYTES: usize = MAX_INPUT_BYTES * 50;

/// The most operations in one JSON Patch (`PATCH /trigger-subscriptions/v1/{id}`). A
/// subscription has a dozen patchable fields; each operation costs a look at the patched
/// document's size (below), so their number bounds the request's work.
pub const MAX_PATCH_OPERATIONS: usize = 100;

/// The largest a subscription's document may grow while a patch is applied: what a PUT may
/// send. A `copy` doubles what it copies, so thirty of them, 1.3 KB of patch, would make a
/// document of gigabytes.
pub const MAX_PATCHED_BYTES: usize = MAX_BODY_BYTES;

/// The size of `value` as compact JSON if it is at most `limit` bytes, `None` past it (found
/// without writing more than `limit + 1` bytes' worth).
pub fn json_bytes_within(value: &serde_json::Value, limit: usize) -> Option<usize> {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written += buf.len();
            if self.written > self.limit {
                return Err(std::io::ErrorKind::Other.into());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.written)
}

/// The size of `value` as compact JSON.
pub fn json_bytes(value: &serde_json::Value) -> usize {
    // With no limit the count never stops early, so there is always a size.
    json_bytes_within(value, usize::MAX).unwrap_or(usize::MAX)
}

/// Checks that an invocation's input and content fit [`MAX_INPUT_BYTES`]; returns their size.
///
/// Errors: [`Error::TooLarge`] naming `input` and the limit.
pub fn check_input(
    input: &serde_json::Value,
    content: Option<&serde_json::Value>,
) -> Result<usize, Error> {
    let size = json_bytes(input) + content.map_or(0, json_bytes);
    if size > MAX_INPUT_BYTES {
        return Err(Error::TooLarge {
            field: "input".to_owned(),
            size,
            limit: MAX_INPUT_BYTES,
            name: "MAX_INPUT_BYTES",
        });
    }
    Ok(size)
}

/// Checks that an output fits [`MAX_OUTPUT_BYTES`].
///
/// Errors: [`Error::TooLarge`] naming `field` and the limit.
pub fn check_output(field: &str, output: &serde_json::Value) -> Result<(), Error> {
    let size = json_bytes(output);
    if size > MAX_OUTPUT_BYTES {
        return Err(Error::TooLarge {
            field: field.to_owned(),
            size,
            limit: MAX_OUTPUT_BYTES,
            name: "MAX_OUTPUT_BYTES",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn an_attempt_error_is_cut_at_its_bound_and_says_so() {
        let whole = "x".repeat(MAX_ATTEMPT_ERROR_BYTES);
        assert_eq!(bounded_error(whole.clone()), whole, "at the bound: whole");
        // Two-byte characters across the cut: it falls on a boundary, under the bound.
        for long in ["é".repeat(100_000), format!("x{}", "é".repeat(100_000))] {
            let cut = bounded_error(long.clone());
            assert!(cut.len() <= MAX_ATTEMPT_ERROR_BYTES, "{}", cut.len());
            assert!(cut.len() >= MAX_ATTEMPT_ERROR_BYTES - 12, "{}", cut.len());
            assert!(cut.ends_with("… (cut)"), "{cut}");
            assert!(long.starts_with(cut.trim_end_matches("… (cut)")));
        }
    }

    #[test]
    fn a_batch_writes_at_most_what_one_start_to_a_full_fan_out_may() {
        let fan_out = crate::model::TriggerType::FireAndForget.max_subscriptions();
        assert_eq!(MAX_BATCH_WRITE_BYTES, MAX_INPUT_BYTES * fan_out);
    }

    #[test]
    fn json_bytes_counts_compact_json() {
        let value = json!({"a": [1, 2], "b": "x"});
        assert_eq!(json_bytes(&value), value.to_string().len());
    }

    #[test]
    fn input_and_content_count_together_against_the_limit() {
        let half = json!("x".repeat(MAX_INPUT_BYTES / 2));
        assert!(check_input(&half, None).is_ok());
        let err = check_input(&half, Some(&half)).err();
        assert!(
            matches!(&err, Some(Error::TooLarge { field, limit, .. }) if field == "input" && *limit == MAX_INPUT_BYTES),
            "{err:?}"
        );
    }

    #[test]
    fn a_sync_answer_over_the_output_limit_is_a_failed_attempt_naming_the_limit() {
        use crate::catalog::Catalog;
        use crate::delivery::{Reply, Verdict, judge};
        use crate::model::{DispatchMode, Invocation, InvocationState, InvocationType};

        let trigger = "idn:access-request-pre-approval";
        let entry = Catalog::builtin().get(trigger).unwrap();
        let invocation = Invocation {
            heartbeat: None,
            id: "inv".into(),
            trigger_id: trigger.into(),
            trigger_type: entry.trigger.trigger_type,
            subscription_id: "s".into(),
            subscription_name: "n".into(),
            invocation_type: InvocationType::RealTime,
            response_mode: Some(DispatchMode::Sync),
            state: InvocationState::Pending,
            created: chrono::Utc::now(),
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
        };
        let answer =
            json!({"approved": true, "comment": "x".repeat(MAX_OUTPUT_BYTES), "approver": "bot"});
        let reply = Reply::Answered {
            status: 200,
            body: answer.to_string().into_bytes(),
            retry_after: None,
        };
        match judge(entry, &invocation, &reply) {
            Verdict::Failed { error, retry, .. } => {
                assert!(error.contains("MAX_OUTPUT_BYTES"), "{error}");
                assert!(!retry, "the same answer would come again");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_output_over_the_limit_names_its_field() {
        let big = json!("x".repeat(MAX_OUTPUT_BYTES));
        assert!(matches!(
            check_output("output", &big),
            Err(Error::TooLarge { field, .. }) if field == "output"
        ));
        assert!(check_output("output", &json!({"approved": true})).is_ok());
    }
}
