//! W3C trace context: kept with the invocations of a request, started when the request has
//! none, sent with every delivery attempt (a new span each), logged with the callback.

use std::sync::Arc;

use chrono::Duration as Span;
use serde_json::json;
use triggerline::delivery::Reply;
use triggerline::ports::WebhookRequest;
use triggerline::time::{IdGenerator, RandomIds};
use triggerline::trace::TraceContext;
use triggerline::usecases::complete::complete;
use triggerline::usecases::intake::{Intake, Started};
use triggerline::wire::{CompleteInvocation, InvocationStatus, StartInvocation, TestInvocation};

use crate::support::{FIRE, RESPOND, Stack, answered, example_input, example_output};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Random ids, and trace bytes all `0x5a`: a started trace is known in advance.
#[derive(Debug)]
struct FixedTraces;

impl IdGenerator for FixedTraces {
    fn id(&self) -> String {
        RandomIds.id()
    }
    fn secret(&self, bytes: usize) -> String {
        RandomIds.secret(bytes)
    }
    fn trace_bytes(&self, out: &mut [u8]) {
        out.fill(0x5a);
    }
}

fn intake(stack: &Stack) -> Intake {
    Intake {
        ids: Arc::new(FixedTraces),
        ..stack.intake()
    }
}

fn start(trigger_id: &str, trace: Option<TraceContext>) -> StartInvocation {
    let request: StartInvocation = serde_json::from_value(
        json!({"triggerId": trigger_id, "input": example_input(trigger_id)}),
    )
    .unwrap();
    StartInvocation { trace, ..request }
}

fn given() -> TraceContext {
    TraceContext::parse(Some(PARENT), &["congo=t61rcWkgMzE"]).unwrap()
}

fn header(request: &WebhookRequest, name: &str) -> Option<String> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn sent_trace(request: &WebhookRequest) -> TraceContext {
    let parent = header(request, "traceparent").expect("a traceparent header");
    let state = header(request, "tracestate");
    TraceContext::parse(
        Some(&parent),
        &state.as_deref().into_iter().collect::<Vec<_>>(),
    )
    .expect("a valid traceparent")
}

/// Delivers every queued item once.
async fn deliver_all(stack: &Stack) {
    for queued in stack.queue.queued() {
        stack.delivery().deliver(&queued.item).await.unwrap();
    }
}

#[tokio::test]
async fn a_start_keeps_its_trace_and_each_delivery_attempt_is_a_new_span_of_it() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    stack.webhooks.reply(Reply::TimedOut);

    let Started::Queued(raised) = intake(&stack)
        .start(start(FIRE, Some(given())))
        .await
        .unwrap()
    else {
        panic!("queued");
    };
    assert_eq!(raised[0].trace, Some(given()));
    assert_eq!(stack.invocation(&raised[0].id).await.trace, Some(given()));

    deliver_all(&stack).await;
    stack.advance(Span::minutes(1));
    deliver_all(&stack).await;

    let requests = stack.webhooks.requests();
    assert_eq!(requests.len(), 2, "a failed attempt and its retry");
    let (first, second) = (sent_trace(&requests[0]), sent_trace(&requests[1]));
    for sent in [&first, &second] {
        assert_eq!(sent.trace_id(), TRACE_ID);
        assert_eq!(sent.flags(), "01");
        assert_ne!(sent.parent_id(), given().parent_id(), "a span of its own");
        assert_eq!(sent.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    }
    assert_ne!(
        first.parent_id(),
        second.parent_id(),
        "each attempt its own span"
    );
}

#[tokio::test]
async fn without_a_trace_a_start_starts_one_that_every_invocation_of_it_shares() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    stack.webhook(FIRE, "ASYNC").await;

    let Started::Queued(raised) = intake(&stack).start(start(FIRE, None)).await.unwrap() else {
        panic!("queued");
    };
    deliver_all(&stack).await;

    let started = format!("00-{}-{}-01", "5a".repeat(16), "5a".repeat(8));
    assert_eq!(raised.len(), 2);
    for invocation in &raised {
        let trace = invocation.trace.as_ref().unwrap();
        assert_eq!(trace.traceparent, started);
        assert_eq!(trace.tracestate, None);
    }
    let requests = stack.webhooks.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(sent_trace(request).trace_id(), "5a".repeat(16));
        assert_eq!(header(request, "tracestate"), None);
    }
}

#[tokio::test]
async fn a_test_invocation_keeps_the_trace_it_was_sent_with() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let request: TestInvocation = serde_json::from_value(json!({"triggerId": FIRE})).unwrap();

    let started = intake(&stack)
        .test(TestInvocation {
            trace: Some(given()),
            ..request
        })
        .await
        .unwrap();
    deliver_all(&stack).await;

    assert_eq!(started[0].0.trace, Some(given()));
    assert_eq!(
        sent_trace(&stack.webhooks.requests()[0]).trace_id(),
        TRACE_ID
    );
}

#[tokio::test]
async fn an_eventbridge_delivery_carries_the_trace_in_its_metadata() {
    let stack = Stack::new();
    stack
        .subscribe(json!({
            "name": "To the bus", "triggerId": RESPOND, "type": "EVENTBRIDGE",
            "eventBridgeConfig": {"awsAccount": "123456789012", "awsRegion": "us-east-1"},
        }))
        .await;

    intake(&stack)
        .start(start(RESPOND, Some(given())))
        .await
        .unwrap();
    deliver_all(&stack).await;

    let published = stack.events.published();
    assert_eq!(published.len(), 1);
    let detail = published[0].detail_value();
    let metadata = &detail["_metadata"];
    let sent = TraceContext::parse(
        metadata["traceparent"].as_str(),
        &[metadata["tracestate"].as_str().unwrap()],
    )
    .unwrap();
    assert_eq!(sent.trace_id(), TRACE_ID);
    assert_eq!(sent.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
}

#[tokio::test]
async fn the_status_detail_shows_the_trace_and_the_list_does_not() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let Started::Queued(raised) = intake(&stack)
        .start(start(FIRE, Some(given())))
        .await
        .unwrap()
    else {
        panic!("queued");
    };

    let stored = stack.invocation(&raised[0].id).await;
    let detail = serde_json::to_value(InvocationStatus::detail(&stored)).unwrap();
    let summary = serde_json::to_value(InvocationStatus::summary(&stored)).unwrap();

    assert_eq!(detail["traceparent"], PARENT);
    assert_eq!(detail["tracestate"], "congo=t61rcWkgMzE");
    assert!(summary.get("traceparent").is_none(), "{summary}");
}

#[tokio::test]
async fn a_callback_with_its_own_trace_completes_as_any_other() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let Started::Queued(raised) = intake(&stack)
        .start(start(RESPOND, Some(given())))
        .await
        .unwrap()
    else {
        panic!("queued");
    };
    stack.webhooks.reply(answered(200, json!({})));
    deliver_all(&stack).await;
    let id = &raised[0].id;
    let request: CompleteInvocation = serde_json::from_value(json!({
        "secret": stack.key.callback_secret(id), "output": example_output(RESPOND),
    }))
    .unwrap();
    let callback = TraceContext::parse(
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"),
        &[],
    );

    complete(
        &stack.completion(),
        id,
        CompleteInvocation {
            trace: callback,
            ..request
        },
    )
    .await
    .unwrap();

    let finished = stack.invocation(id).await;
    assert_eq!(
        finished.state,
        triggerline::model::InvocationState::Completed
    );
    assert_eq!(
        finished.trace,
        Some(given()),
        "the invocation's trace stays"
    );
}
