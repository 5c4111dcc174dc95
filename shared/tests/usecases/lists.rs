//! The list use cases (subscriptions and invocation statuses) and a subscription's delete: the
//! query reaches the store whole (filters, sorters, paging, the count), and what the store
//! answers is what the caller gets.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use triggerline::Error;
use triggerline::query::{InvocationQuery, RawCollection, SubscriptionQuery};
use triggerline::usecases::InvocationStatuses;
use triggerline::usecases::intake::Started;
use triggerline::wire::StartInvocation;

use crate::support::{FIRE, RESPOND, Stack, example_input};

fn statuses(stack: &Stack) -> InvocationStatuses {
    InvocationStatuses::new(
        Arc::new(stack.invocations.clone()),
        Arc::new(stack.watch.clone()),
        Duration::from_secs(25),
    )
}

fn raw(filters: Option<&str>, sorters: Option<&str>, limit: &str, offset: &str) -> RawCollection {
    RawCollection {
        limit: Some(limit.into()),
        offset: Some(offset.into()),
        count: Some("true".into()),
        filters: filters.map(str::to_owned),
        sorters: sorters.map(str::to_owned),
    }
}

#[tokio::test]
async fn subscriptions_list_by_trigger_and_a_deleted_one_is_gone() {
    let stack = Stack::new();
    let fire = stack.webhook(FIRE, "SYNC").await;
    let respond = stack.webhook(RESPOND, "ASYNC").await;
    let uses = stack.subscription_uses();

    let all = uses
        .list(&SubscriptionQuery::parse(&raw(None, Some("triggerId"), "10", "0")).unwrap())
        .await
        .unwrap();
    assert_eq!(all.total, Some(2));
    let ids: Vec<_> = all.items.iter().map(|s| s.trigger_id.as_str()).collect();
    assert_eq!(ids, [RESPOND, FIRE], "sorted by triggerId");

    let filter = format!("triggerId eq \"{RESPOND}\"");
    let one = uses
        .list(&SubscriptionQuery::parse(&raw(Some(&filter), None, "10", "0")).unwrap())
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].id, respond.id);

    uses.delete(&fire.id).await.unwrap();
    let left = uses
        .list(&SubscriptionQuery::parse(&RawCollection::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    assert_eq!(left.items[0].id, respond.id);
    assert!(matches!(
        uses.delete(&fire.id).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn invocation_statuses_list_filtered_sorted_and_paged() {
    let stack = Stack::new();
    stack.webhook(FIRE, "SYNC").await;
    let respond = stack.webhook(RESPOND, "ASYNC").await;
    let mut raised = Vec::new();
    for (n, trigger) in [FIRE, RESPOND, RESPOND, RESPOND].into_iter().enumerate() {
        // One second apart, so that `created` orders them.
        stack.advance(chrono::Duration::seconds(1));
        let request: StartInvocation =
            serde_json::from_value(json!({"triggerId": trigger, "input": example_input(trigger)}))
                .unwrap();
        let Started::Queued(started) = stack.intake().start(request).await.unwrap() else {
            panic!("start {n} queued");
        };
        raised.push(started[0].id.clone());
    }
    let uses = statuses(&stack);

    let filter = format!("subscriptionId eq \"{}\"", respond.id);
    let newest_first = InvocationQuery::parse(&raw(Some(&filter), Some("-created"), "2", "0"));
    let page = uses.list(&newest_first.unwrap()).await.unwrap();
    assert_eq!(
        page.total,
        Some(3),
        "the count is of every match, not of the page"
    );
    let ids: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, [raised[3].clone(), raised[2].clone()]);

    let next = InvocationQuery::parse(&raw(Some(&filter), Some("-created"), "2", "2"));
    let page = uses.list(&next.unwrap()).await.unwrap();
    let ids: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, [raised[1].clone()]);

    let beyond = InvocationQuery::parse(&raw(None, None, "10", "1999"));
    assert!(uses.list(&beyond.unwrap()).await.unwrap().items.is_empty());
}
