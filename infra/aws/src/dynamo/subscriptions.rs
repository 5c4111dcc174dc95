//! Subscriptions in DynamoDB: one item per subscription and one counter item per trigger, so
//! that the per-trigger limit is a condition of the same transaction as the insert.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use triggerline::Error;
use triggerline::catalog::Catalog;
use triggerline::error::ResourceKind;
use triggerline::model::{Subscription, TriggerType};
use triggerline::ports::{SubscriptionAdmin, SubscriptionStore};
use triggerline::query::{Op, Page, SubscriptionField, SubscriptionQuery};
use triggerline::secrets::{CredentialKey, SealedSubscription};

use super::codec::{
    Item, Transacted, Try, failure, get_n, get_s, n, retry_on_conflict, s, transact,
};
use super::lock::TurnLock;
use super::{
    SUB_BODY, SUB_BY_TRIGGER, SUB_COUNT, SUB_ID, SUB_PK, SUB_PK_PREFIX, SUB_TRIGGER,
    SUB_TRIGGER_NAME, SUB_TYPE, SUB_VERSION, TRIGGER_PK_PREFIX,
};
use crate::error::{corrupt, unavailable};

/// [`SubscriptionStore`] on one DynamoDB table. The body attribute holds the subscription with
/// its credentials sealed by `credentials` ([`CredentialKey::seal`]); bodies written before
/// credentials were encrypted are read as they are and sealed on their next write.
#[derive(Debug, Clone)]
pub struct DynamoSubscriptionStore {
    client: Client,
    table: String,
    writes: TurnLock,
    credentials: CredentialKey,
}

fn sub_pk(id: &str) -> String {
    format!("{SUB_PK_PREFIX}{id}")
}

fn counter_pk(trigger_id: &str) -> String {
    format!("{TRIGGER_PK_PREFIX}{trigger_id}")
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: ResourceKind::Subscription,
        id: id.to_owned(),
    }
}

/// The error of a write that kept losing races on the trigger's counter item.
fn counter_contended(operation: &'static str) -> impl FnOnce() -> Error {
    move || failure(operation, "the trigger's counter stayed contended")
}

fn item_of(subscription: &Subscription, credentials: &CredentialKey) -> Result<Item, Error> {
    let sealed = credentials
        .seal(subscription)
        .map_err(|e| failure("seal subscription credentials", e))?;
    let body = serde_json::to_string(&sealed).map_err(|e| failure("encode subscription", e))?;
    Ok(Item::from([
        (SUB_PK.to_owned(), s(sub_pk(&subscription.id))),
        (SUB_ID.to_owned(), s(&subscription.id)),
        (SUB_TRIGGER.to_owned(), s(&subscription.trigger_id)),
        (SUB_TRIGGER_NAME.to_owned(), s(&subscription.trigger_name)),
        (
            SUB_TYPE.to_owned(),
            s(subscription.subscription_type().as_str()),
        ),
        (SUB_VERSION.to_owned(), n(subscription.version)),
        (SUB_BODY.to_owned(), s(body)),
    ]))
}

fn from_item(item: &Item, credentials: &CredentialKey) -> Result<Subscription, Error> {
    let body = get_s(item, SUB_BODY).ok_or_else(|| corrupt("read subscription", "no body"))?;
    let sealed: SealedSubscription =
        serde_json::from_str(body).map_err(|e| corrupt("read subscription", e))?;
    credentials
        .open(sealed)
        .map_err(|e| corrupt("open subscription credentials", e))
}

impl DynamoSubscriptionStore {
    /// The store on `table`; every process sharing the table must hold the same
    /// `credentials` (derived from the same service key).
    pub fn new(client: Client, table: &str, credentials: CredentialKey) -> Self {
        DynamoSubscriptionStore {
            client,
            table: table.to_owned(),
            writes: TurnLock::default(),
            credentials,
        }
    }

    /// The subscription of a listed item; `None`, with a warning, when its body does not decode
    /// or its credentials do not open (a changed service key): it needs a person, and the
    /// trigger's other subscriptions must still be listed and delivered to.
    fn readable(&self, item: &Item) -> Option<Subscription> {
        from_item(item, &self.credentials)
            .inspect_err(|e| {
                let id = get_s(item, SUB_ID).unwrap_or("?");
                tracing::warn!(subscription = %id, error = ?e,
                    "unreadable subscription left out of a list");
            })
            .ok()
    }

    /// The item of `pk`, read consistently.
    async fn get_item(&self, pk: String) -> Result<Option<Item>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(SUB_PK, s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem subscription", e))?;
        Ok(out.item)
    }

    /// Every subscription of the trigger, in id order, from `byTrigger`; at most `limit`.
    async fn query_trigger(
        &self,
        trigger_id: &str,
        limit: Option<i32>,
    ) -> Result<Vec<Subscription>, Error> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SUB_BY_TRIGGER)
                .key_condition_expression("#t = :t")
                .expression_attribute_names("#t", SUB_TRIGGER)
                .expression_attribute_values(":t", s(trigger_id))
                .set_limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query subscriptions by trigger", e))?;
            found.extend(out.items().iter().filter_map(|item| self.readable(item)));
            start = out.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| found.len() >= l as usize) {
                return Ok(found);
            }
        }
    }

    /// Every subscription item (not the counters).
    async fn scan(&self) -> Result<Vec<Subscription>, Error> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#pk, :p)")
                .expression_attribute_names("#pk", SUB_PK)
                .expression_attribute_values(":p", s(SUB_PK_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Scan subscriptions", e))?;
            found.extend(out.items().iter().filter_map(|item| self.readable(item)));
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    /// The limit error naming the trigger's first subscription by id (as SQLite names its
    /// `MIN(id)`), or `None` when the trigger has none any more (a delete came in between).
    async fn limit_error(&self, trigger_id: &str, limit: usize) -> Result<Option<Error>, Error> {
        let first = self.query_trigger(trigger_id, Some(1)).await?;
        let Some(existing) = first.into_iter().next() else {
            return Ok(None);
        };
        let trigger_type = Catalog::builtin()
            .get(trigger_id)
            .map_or(TriggerType::FireAndForget, |e| e.trigger.trigger_type);
        Ok(Some(Error::SubscriptionLimit {
            trigger_id: trigger_id.to_owned(),
            trigger_type,
            limit,
            existing: existing.id,
        }))
    }

    /// One try of the create transaction.
    async fn try_create(
        &self,
        subscription: &Subscription,
        item: &Item,
        max_per_trigger: usize,
    ) -> Result<Try<()>, Error> {
        let build = |e| failure("build create transaction", e);
        let counter = Update::builder()
            .table_name(&self.table)
            .key(SUB_PK, s(counter_pk(&subscription.trigger_id)))
            .update_expression("SET #n = if_not_exists(#n, :zero) + :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_names("#n", SUB_COUNT)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_per_trigger))
            .build()
            .map_err(build)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", SUB_PK)
            .build()
            .map_err(build)?;
        let request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(counter).build())
            .transact_items(TransactWriteItem::builder().put(put).build());
        let cancelled = match transact(request, "TransactWriteItems create subscription").await? {
            Transacted::Written => return Ok(Try::Done(())),
            Transacted::Cancelled(cancelled) => cancelled,
        };
        let limit_failed;
        let id_failed;
        if cancelled.unexplained() {
            let count = self
                .get_item(counter_pk(&subscription.trigger_id))
                .await?
                .and_then(|c| get_n(&c, SUB_COUNT))
                .unwrap_or(0);
            limit_failed = usize::try_from(count).unwrap_or(usize::MAX) >= max_per_trigger;
            id_failed = self.get_item(sub_pk(&subscription.id)).await?.is_some();
        } else {
            if cancelled.conflict() {
                return Ok(Try::Again);
            }
            limit_failed = cancelled.condition_failed(0);
            id_failed = cancelled.condition_failed(1);
        }
        if limit_failed {
            // No subscription to name: a delete came in between, so the next try may fit.
            return match self
                .limit_error(&subscription.trigger_id, max_per_trigger)
                .await?
            {
                Some(limit) => Err(limit),
                None => Ok(Try::Again),
            };
        }
        if id_failed {
            return Err(Error::AlreadyExists {
                kind: ResourceKind::Subscription,
                id: subscription.id.clone(),
            });
        }
        Ok(Try::Again)
    }

    /// One try of the delete transaction.
    async fn try_delete(&self, id: &str) -> Result<Try<()>, Error> {
        let Some(stored) = self.get_item(sub_pk(id)).await? else {
            return Err(not_found(id));
        };
        let trigger_id = get_s(&stored, SUB_TRIGGER)
            .ok_or_else(|| corrupt("delete subscription", "no trigger id"))?;
        let build = |e| failure("build delete transaction", e);
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(SUB_PK, s(sub_pk(id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", SUB_PK)
            .build()
            .map_err(build)?;
        // Unconditional: a missing counter (data written by hand) must not block a delete.
        let counter = Update::builder()
            .table_name(&self.table)
            .key(SUB_PK, s(counter_pk(trigger_id)))
            .update_expression("SET #n = if_not_exists(#n, :one) - :one")
            .expression_attribute_names("#n", SUB_COUNT)
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(build)?;
        let request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().update(counter).build());
        match transact(request, "TransactWriteItems delete subscription").await? {
            Transacted::Written => Ok(Try::Done(())),
            Transacted::Cancelled(cancelled) if cancelled.condition_failed(0) => Err(not_found(id)),
            // A conflict, or an emulator naming no reason: the next try reads again.
            Transacted::Cancelled(_) => Ok(Try::Again),
        }
    }
}

/// Where a subscription list finds its candidates: the one item of an `id eq` (GetItem), the
/// `byTrigger` partition of a `triggerId eq` (Query), else every subscription (Scan). The
/// conditions are all checked on the candidates again ([`page_of`]).
#[derive(Debug, PartialEq)]
enum Source<'a> {
    Id(&'a str),
    Trigger(&'a str),
    Scan,
}

impl Source<'_> {
    fn of(query: &SubscriptionQuery) -> Source<'_> {
        let eq = |field| {
            query
                .conditions
                .iter()
                .find(|c| c.field == field && c.op == Op::Eq)
                .map(|c| c.value.as_str())
        };
        if let Some(id) = eq(SubscriptionField::Id) {
            Source::Id(id)
        } else if let Some(trigger_id) = eq(SubscriptionField::TriggerId) {
            Source::Trigger(trigger_id)
        } else {
            Source::Scan
        }
    }
}

/// The requested page of `candidates`: filtered, ordered by the query's sorters with id
/// breaking ties, then offset and limit.
fn page_of(query: &SubscriptionQuery, mut candidates: Vec<Subscription>) -> Page<Subscription> {
    // `apply` sorts stably, so ordering by id first makes id the final tie-break.
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    query.apply(&candidates, |s, field| {
        Some(match field {
            SubscriptionField::Id => s.id.clone(),
            SubscriptionField::TriggerId => s.trigger_id.clone(),
            SubscriptionField::Type => s.subscription_type().as_str().to_owned(),
            SubscriptionField::TriggerName => s.trigger_name.clone(),
        })
    })
}

#[async_trait]
impl SubscriptionStore for DynamoSubscriptionStore {
    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
        self.get_item(sub_pk(id))
            .await?
            .map(|item| from_item(&item, &self.credentials))
            .transpose()
    }

    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        let found = self.query_trigger(trigger_id, None).await?;
        Ok(found.into_iter().map(Arc::new).collect())
    }

    async fn replace(
        &self,
        subscription: &Subscription,
        expected_version: u64,
    ) -> Result<(), Error> {
        let item = item_of(subscription, &self.credentials)?;
        let _turn = self.writes.turn().await;
        // The trigger is part of the condition: the counters assume a subscription never moves.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(#pk) AND #v = :v AND #t = :t")
            .expression_attribute_names("#pk", SUB_PK)
            .expression_attribute_names("#v", SUB_VERSION)
            .expression_attribute_names("#t", SUB_TRIGGER)
            .expression_attribute_values(":v", n(expected_version))
            .expression_attribute_values(":t", s(&subscription.trigger_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let Some(PutItemError::ConditionalCheckFailedException(failed)) = err.as_service_error()
        else {
            return Err(unavailable("PutItem replace subscription", err));
        };
        // The old item comes with the failure on DynamoDB; moto may leave it out, so read it.
        let exists = match failed.item() {
            Some(_) => true,
            None => self.get_item(sub_pk(&subscription.id)).await?.is_some(),
        };
        Err(if exists {
            Error::Conflict {
                kind: ResourceKind::Subscription,
                id: subscription.id.clone(),
            }
        } else {
            not_found(&subscription.id)
        })
    }
}

#[async_trait]
impl SubscriptionAdmin for DynamoSubscriptionStore {
    async fn create(
        &self,
        subscription: &Subscription,
        max_per_trigger: usize,
    ) -> Result<(), Error> {
        let item = item_of(subscription, &self.credentials)?;
        let _turn = self.writes.turn().await;
        if max_per_trigger == 0 {
            return Err(self
                .limit_error(&subscription.trigger_id, 0)
                .await?
                .unwrap_or_else(|| Error::SubscriptionLimit {
                    trigger_id: subscription.trigger_id.clone(),
                    trigger_type: TriggerType::FireAndForget,
                    limit: 0,
                    existing: String::new(),
                }));
        }
        retry_on_conflict(
            &self.client,
            || self.try_create(subscription, &item, max_per_trigger),
            counter_contended("create subscription"),
        )
        .await
    }

    async fn list(&self, query: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
        let candidates = match Source::of(query) {
            Source::Id(id) => self.get(id).await?.into_iter().collect(),
            Source::Trigger(trigger_id) => self.query_trigger(trigger_id, None).await?,
            Source::Scan => self.scan().await?,
        };
        Ok(page_of(query, candidates))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let _turn = self.writes.turn().await;
        retry_on_conflict(
            &self.client,
            || self.try_delete(id),
            counter_contended("delete subscription"),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use triggerline::query::Condition;

    use super::*;

    fn query(conditions: &[(SubscriptionField, Op, &str)]) -> SubscriptionQuery {
        SubscriptionQuery {
            conditions: conditions
                .iter()
                .map(|&(field, op, value)| Condition {
                    field,
                    op,
                    value: value.to_owned(),
                })
                .collect(),
            ..SubscriptionQuery::default()
        }
    }

    #[test]
    fn a_list_reads_one_item_else_one_trigger_else_the_table() {
        use SubscriptionField::{Id, TriggerId, Type};
        assert_eq!(
            Source::of(&query(&[(TriggerId, Op::Eq, "t"), (Id, Op::Eq, "i")])),
            Source::Id("i")
        );
        assert_eq!(
            Source::of(&query(&[(Type, Op::Eq, "HTTP"), (TriggerId, Op::Eq, "t")])),
            Source::Trigger("t")
        );
        assert_eq!(Source::of(&query(&[(Type, Op::Eq, "HTTP")])), Source::Scan);
        assert_eq!(Source::of(&query(&[])), Source::Scan);
    }
}
