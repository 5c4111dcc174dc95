//! [`IdempotencyStore`] on the invocations table: one item per key, its `id` the key
//! ([`triggerline::idempotency::Keyed::record_key`], prefixed `idem#`), with `h` (the request's
//! hash), `ic` (created, [`format_time`] text), `ir` (what it raised, JSON; absent while in
//! progress) and the table's TTL attribute `x` (expiry, epoch seconds), so DynamoDB deletes it
//! after 24 hours by itself. It has none of the indexes' keys, so no list, sweep or purge of
//! invocations ever sees it.
//!
//! A claim is one conditional `PutItem` (`attribute_not_exists(id) OR x <= :now`): of two
//! Lambdas racing on one key exactly one writes, the other gets the item back with its
//! `ConditionalCheckFailed`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, TimeZone, Utc};
use triggerline::Error;
use triggerline::idempotency::{IdempotencyRecord, Raised};
use triggerline::ports::IdempotencyStore;
use triggerline::time::format_time;

use super::INV_EXPIRES as EXPIRES;
use super::INV_ID as ID;
use super::codec::{Item, failure, get_n, get_s, n, ok_if_condition_failed, s};
use super::lock::KeyedTurns;
use crate::error::{corrupt, unavailable};

const HASH: &str = "h";
const CREATED: &str = "ic";
const RAISED: &str = "ir";

/// The DynamoDB [`IdempotencyStore`], on the invocations table.
#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
    turns: KeyedTurns,
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoIdempotencyStore {
            client,
            table: table.to_owned(),
            turns: KeyedTurns::default(),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Item>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem idempotency key", e))?;
        Ok(out.item)
    }
}

fn from_item(key: &str, item: &Item) -> Result<IdempotencyRecord, Error> {
    const OP: &str = "read idempotency key";
    let created = get_s(item, CREATED)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| corrupt(OP, "no creation time"))?;
    let expires = get_n(item, EXPIRES)
        .and_then(|x| Utc.timestamp_opt(x, 0).single())
        .ok_or_else(|| corrupt(OP, "no expiry"))?;
    let raised = get_s(item, RAISED)
        .map(serde_json::from_str::<Vec<Raised>>)
        .transpose()
        .map_err(|e| corrupt(OP, e))?;
    Ok(IdempotencyRecord {
        key: key.to_owned(),
        request_hash: get_s(item, HASH)
            .ok_or_else(|| corrupt(OP, "no hash"))?
            .to_owned(),
        created,
        expires,
        raised,
    })
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, Error> {
        let _turn = self.turns.turn(&record.key).await;
        let mut item: Item = [
            (ID.to_owned(), s(&record.key)),
            (HASH.to_owned(), s(&record.request_hash)),
            (CREATED.to_owned(), s(format_time(&record.created))),
            (EXPIRES.to_owned(), n(record.expires.timestamp())),
        ]
        .into();
        if let Some(raised) = &record.raised {
            let json = serde_json::to_string(raised).map_err(|e| failure("encode raised", e))?;
            item.insert(RAISED.to_owned(), s(json));
        }
        // An item that expired between the failed condition and the read is gone or free:
        // try again (twice is plenty; a third miss means the table is being rewritten fast).
        for _ in 0..3 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#id) OR #x <= :now")
                .expression_attribute_names("#id", ID)
                .expression_attribute_names("#x", EXPIRES)
                .expression_attribute_values(":now", n(now.timestamp()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let old = match result {
                Ok(_) => return Ok(None),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        match failed.item() {
                            Some(old) => Some(old.clone()),
                            None => self.get(&record.key).await?,
                        }
                    }
                    _ => return Err(unavailable("PutItem idempotency key", err)),
                },
            };
            if let Some(old) = old {
                return from_item(&record.key, &old).map(Some);
            }
        }
        Err(failure("claim idempotency key", "the key kept changing"))
    }

    async fn record_raised(
        &self,
        key: &str,
        created: DateTime<Utc>,
        raised: &[Raised],
    ) -> Result<(), Error> {
        let _turn = self.turns.turn(key).await;
        let json = serde_json::to_string(raised).map_err(|e| failure("encode raised", e))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, s(key))
            .update_expression("SET #r = :r")
            .condition_expression("#c = :c")
            .expression_attribute_names("#r", RAISED)
            .expression_attribute_names("#c", CREATED)
            .expression_attribute_values(":r", s(json))
            .expression_attribute_values(":c", s(format_time(&created)))
            .send()
            .await;
        ok_if_condition_failed("UpdateItem idempotency key", result)
    }

    async fn release(&self, key: &str, created: DateTime<Utc>) -> Result<(), Error> {
        let _turn = self.turns.turn(key).await;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ID, s(key))
            .condition_expression("#c = :c AND attribute_not_exists(#r)")
            .expression_attribute_names("#r", RAISED)
            .expression_attribute_names("#c", CREATED)
            .expression_attribute_values(":c", s(format_time(&created)))
            .send()
            .await;
        ok_if_condition_failed("DeleteItem idempotency key", result)
    }
}
