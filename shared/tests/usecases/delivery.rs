//! One attempt: what is sent, how the answer is judged, and what is written.

use chrono::Duration as Span;
use serde_json::json;
use triggerline::delivery::Reply;
use triggerline::model::{AttemptOutcome, Invocation, InvocationState};
use triggerline::ports::{Handoff, SubscriptionAdmin, WorkItem};
use triggerline::secrets::{secret_matches, webhook_signature};
use triggerline::usecases::complete::complete;
use triggerline::usecases::intake::Started;
use triggerline::usecases::notify::COMPLETED_EVENT;
use triggerline::wire::StartInvocation;

use crate::support::{
    FIRE, PUBLIC_URL, RESPOND, Stack, answered, example_input, example_output, t0,
};

/// Starts `trigger_id` (queued, not synchronous) and returns its one invocation and work item.
async fn raised(stack: &Stack, trigger_id: &str) -> (Invocation, WorkItem) {
    let request: StartInvocation = serde_json::from_value(
        json!({"triggerId": trigger_id, "input": example_input(trigger_id)}),
    )
    .unwrap();
    let Started::Queued(mut raised) = stack.intake().start(request).await.unwrap() else {
        panic!("queued");
    };
    let invocation = raised.remove(0);
    let item = stack.queue.queued()[0].item.clone();
    assert_eq!(item.invocation_id, invocation.id);
    (invocation, item)
}

fn header<'a>(request: &'a triggerline::ports::WebhookRequest, name: &str) -> &'a str {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn a_delivered_fire_and_forget_invocation_is_signed_authenticated_and_completed() {
    let stack = Stack::new();
    let subscription = stack.webhook(FIRE, "SYNC").await;
    let (invocation, item) = raised(&stack, FIRE).await;

    let settled = stack.delivery().deliver(&item).await.unwrap().unwrap();

    let requests = stack.webhooks.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.url, "https://hooks.example.com/triggerline");
    assert_eq!(header(request, "webhook-id"), invocation.id);
    let timestamp = t0().timestamp();
    assert_eq!(header(request, "webhook-timestamp"), timestamp.to_string());
    assert_eq!(
        header(request, "webhook-signature"),
        webhook_signature(
            subscription.signing_secret.expose(),
            &invocation.id,
            timestamp,
            &request.body
        )
    );
    // base64("hooks:s3cret-passw0rd")
    assert_eq!(
        header(request, "authorization"),
        "Basic aG9va3M6czNjcmV0LXBhc3N3MHJk"
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["_metadata"]["invocationId"], invocation.id.as_str());
    assert!(
        body["_metadata"].get("callbackURL").is_none(),
        "nothing to call back"
    );

    assert_eq!(settled.state, InvocationState::Completed);
    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Completed);
    assert_eq!(stored.completed, Some(t0()));
    assert_eq!(stored.attempts.len(), 1);
    assert_eq!(stored.attempts[0].outcome, AttemptOutcome::Completed);
    assert_eq!(stored.attempts[0].status_code, Some(200));
    assert_eq!(stored.attempts[0].target, "hooks.example.com");
    assert!(
        stack.queue.queued().is_empty(),
        "done work leaves the queue"
    );
    assert!(
        stack.events.published().is_empty(),
        "FIRE_AND_FORGET publishes no completion event"
    );
    assert_eq!(stack.watch.changed_ids(), vec![invocation.id]);
}

#[tokio::test]
async fn a_failed_attempt_is_retried_on_the_schedule_until_the_last() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let (invocation, mut item) = raised(&stack, FIRE).await;

    stack.webhooks.reply(answered(503, json!({})));
    stack.delivery().deliver(&item).await.unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(
        stored.state,
        InvocationState::Pending,
        "a retry is still to come"
    );
    assert_eq!(stored.attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(
        stored.attempts[0].error.as_deref(),
        Some("subscriber answered 503")
    );
    let queued = stack.queue.queued();
    // BACKOFF[0] = 5 s, at the middle of its ±20 % spread.
    assert_eq!(queued[0].item.not_before, t0() + Span::seconds(5));
    assert_eq!(queued[0].item.attempts, 1);

    // Attempt 2 asks for a later retry; attempt 3 is the last (max_attempts = 3).
    stack.advance(Span::seconds(5));
    item = queued[0].item.clone();
    stack.webhooks.reply(Reply::Answered {
        status: 429,
        body: vec![],
        retry_after: Some(std::time::Duration::from_secs(90)),
    });
    stack.delivery().deliver(&item).await.unwrap();
    let queued = stack.queue.queued();
    assert_eq!(queued[0].item.not_before, t0() + Span::seconds(95));

    stack.advance(Span::seconds(90));
    stack.webhooks.reply(Reply::TimedOut);
    stack.delivery().deliver(&queued[0].item).await.unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Failed);
    assert_eq!(stored.attempts.len(), 3);
    assert!(stored.error.unwrap().contains("no answer within 10 s"));
    assert!(stack.queue.queued().is_empty());
}

#[tokio::test]
async fn a_refusal_that_cannot_change_is_not_retried() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let (invocation, item) = raised(&stack, FIRE).await;
    stack.webhooks.reply(answered(404, json!({})));

    stack.delivery().deliver(&item).await.unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Failed);
    assert_eq!(stored.attempts.len(), 1);
    assert!(stack.queue.queued().is_empty());
}

#[tokio::test]
async fn an_async_subscriber_acknowledges_and_completes_later() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let (invocation, item) = raised(&stack, RESPOND).await;
    stack.webhooks.reply(answered(200, json!({})));

    stack.delivery().deliver(&item).await.unwrap();

    let sent: serde_json::Value =
        serde_json::from_slice(&stack.webhooks.requests()[0].body).unwrap();
    assert_eq!(
        sent["_metadata"]["callbackURL"],
        format!(
            "{PUBLIC_URL}/trigger-invocations/v1/{}/complete",
            invocation.id
        )
    );
    let secret = sent["_metadata"]["secret"].as_str().unwrap();
    assert!(secret_matches(secret, &invocation.secret_hash));
    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Acknowledged);
    assert_eq!(stored.attempts[0].outcome, AttemptOutcome::Acknowledged);
    assert!(stack.events.published().is_empty(), "not finished yet");
}

#[tokio::test]
async fn a_sync_answer_completes_and_announces_the_invocation() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    let (invocation, item) = raised(&stack, RESPOND).await;
    stack.webhooks.reply(answered(200, example_output(RESPOND)));

    stack.delivery().deliver(&item).await.unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Completed);
    assert_eq!(stored.output, Some(example_output(RESPOND)));
    let events = stack.events.published();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail_type, COMPLETED_EVENT);
    let detail = events[0].detail_value();
    assert_eq!(detail["invocationId"], invocation.id.as_str());
    assert_eq!(detail["status"], "COMPLETED");
}

/// A subscriber that calls back before it acknowledges (or a sweep that times the invocation
/// out meanwhile) settles it first; the acknowledgement then changes nothing and must not
/// announce the invocation a second time.
#[tokio::test]
async fn a_callback_before_the_acknowledgement_is_announced_once() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let (invocation, item) = raised(&stack, RESPOND).await;
    let completion = stack.completion();
    let secret = stack.key.callback_secret(&invocation.id);
    let id = invocation.id.clone();
    stack.webhooks.during_next(Box::new(move || {
        Box::pin(async move {
            let body = json!({"secret": secret, "output": example_output(RESPOND)});
            complete(&completion, &id, serde_json::from_value(body).unwrap())
                .await
                .unwrap();
        })
    }));

    stack.delivery().deliver(&item).await.unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Completed);
    let events = stack.events.published();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].detail_value()["status"], "COMPLETED");
}

#[tokio::test]
async fn an_answer_that_breaks_the_output_schema_fails_without_retry() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "SYNC").await;
    let (invocation, item) = raised(&stack, RESPOND).await;
    stack
        .webhooks
        .reply(answered(200, json!({"approved": "maybe"})));

    stack.delivery().deliver(&item).await.unwrap();

    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Failed);
    assert!(stored.error.unwrap().contains("invalid output"));
}

#[tokio::test]
async fn work_of_a_deleted_subscription_fails_without_a_request() {
    let stack = Stack::new();
    let subscription = stack.webhook(FIRE, "SYNC").await;
    let (invocation, item) = raised(&stack, FIRE).await;
    stack.subscriptions.delete(&subscription.id).await.unwrap();

    stack.delivery().deliver(&item).await.unwrap();

    assert!(stack.webhooks.requests().is_empty());
    let stored = stack.invocation(&invocation.id).await;
    assert_eq!(stored.state, InvocationState::Failed);
    assert!(stored.error.unwrap().contains("deleted"));
}

/// The callback and the sweep settle invocations without touching the queue: the work a
/// settled invocation still has is dropped here, unsent.
#[tokio::test]
async fn work_of_an_invocation_no_longer_pending_is_dropped_unsent() {
    let stack = Stack::new();
    stack.webhook(RESPOND, "ASYNC").await;
    let (invocation, item) = raised(&stack, RESPOND).await;
    stack.advance(Span::hours(2));
    assert_eq!(stack.sweep().time_out_overdue().await.unwrap(), 1);

    let delivered = stack.delivery().deliver(&item).await.unwrap();

    assert_eq!(delivered, None);
    assert!(stack.webhooks.requests().is_empty());
    assert!(stack.queue.queued().is_empty());
    assert_eq!(
        stack.invocation(&invocation.id).await.state,
        InvocationState::TimedOut
    );
}

#[tokio::test]
async fn a_hand_off_without_a_whole_attempt_of_lease_left_is_left_to_the_queue() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let (invocation, item) = raised(&stack, FIRE).await;
    let handoff = stack.signal.handoffs().remove(0);
    assert_eq!(handoff.item, item);

    // It waited behind a busy worker until 5 s of its 60 s lease were left.
    stack.advance(Span::seconds(55));
    let stale = Handoff {
        leased_until: t0() + Span::seconds(60),
        ..handoff
    };
    assert_eq!(stack.delivery().deliver_handoff(stale).await.unwrap(), None);
    assert!(stack.webhooks.requests().is_empty());
    assert_eq!(
        stack.invocation(&invocation.id).await.state,
        InvocationState::Pending
    );
}

#[tokio::test]
async fn a_fresh_hand_off_is_delivered_from_what_it_carries() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let (invocation, _) = raised(&stack, FIRE).await;
    let handoff = stack.signal.handoffs().remove(0);

    let settled = stack.delivery().deliver_handoff(handoff).await.unwrap();

    assert_eq!(settled.unwrap().state, InvocationState::Completed);
    assert_eq!(stack.webhooks.requests().len(), 1);
    assert_eq!(
        stack.invocation(&invocation.id).await.state,
        InvocationState::Completed
    );
}
