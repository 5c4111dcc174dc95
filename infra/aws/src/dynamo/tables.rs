//! Creating the tables (development against an emulator; production tables come from
//! `template.yaml`, which must declare the same keys and indexes: see [`super`]). The write
//! sharding lives in the key values (`<value>#<shard>`), not in the key schema, so the shapes
//! below are those of every version of the store.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::AsyncSleep;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use triggerline::Error;

use super::codec::failure;
use super::{
    INV_BY_CREATED, INV_BY_SUBSCRIPTION, INV_BY_TRIGGER, INV_CREATED, INV_DEADLINE, INV_DUE,
    INV_EXPIRES, INV_GROUP, INV_ID, INV_LIST_PROJECTION, INV_OPEN_BY_DEADLINE, INV_OPEN_STATE,
    INV_SUBSCRIPTION, INV_TRIGGER, INV_UNSENT, INV_UNSENT_BY_DUE, SUB_BY_TRIGGER, SUB_ID, SUB_PK,
    SUB_TRIGGER,
};
use crate::error::unavailable;

/// How long to wait for a table to become ACTIVE (DynamoDB takes seconds; moto none).
const ACTIVE_WITHIN: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

/// What an index copies of each item besides the keys.
enum Projected {
    All,
    KeysOnly,
    /// These attributes, except the index's own hash key (it has it anyway).
    Include(&'static [&'static str]),
}

/// One index: its name, hash key, range key and projection.
type Index = (&'static str, &'static str, &'static str, Projected);

/// One table's shape: its hash key, its GSIs, all keys strings.
struct Shape {
    key: &'static str,
    indexes: &'static [Index],
}

const SUBSCRIPTIONS: Shape = Shape {
    key: SUB_PK,
    indexes: &[(SUB_BY_TRIGGER, SUB_TRIGGER, SUB_ID, Projected::All)],
};

const LISTED: Projected = Projected::Include(&INV_LIST_PROJECTION);

const INVOCATIONS: Shape = Shape {
    key: INV_ID,
    indexes: &[
        (INV_BY_TRIGGER, INV_TRIGGER, INV_CREATED, LISTED),
        (INV_BY_SUBSCRIPTION, INV_SUBSCRIPTION, INV_CREATED, LISTED),
        (INV_BY_CREATED, INV_GROUP, INV_CREATED, LISTED),
        (
            INV_OPEN_BY_DEADLINE,
            INV_OPEN_STATE,
            INV_DEADLINE,
            Projected::KeysOnly,
        ),
        (INV_UNSENT_BY_DUE, INV_UNSENT, INV_DUE, Projected::KeysOnly),
    ],
};

impl Projected {
    fn of(&self, hash: &str) -> Projection {
        match self {
            Projected::All => Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
            Projected::KeysOnly => Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
            Projected::Include(attributes) => Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(
                    attributes
                        .iter()
                        .filter(|a| **a != hash)
                        .map(|a| (*a).to_owned())
                        .collect(),
                ))
                .build(),
        }
    }
}

/// Creates either table if it is missing, with its keys, indexes and TTL, and waits until both
/// are ACTIVE. A concurrent creator is fine: whoever loses sees `ResourceInUse` and waits too.
pub async fn create_missing(
    client: &Client,
    subscriptions_table: &str,
    invocations_table: &str,
) -> Result<(), Error> {
    create_table(client, subscriptions_table, &SUBSCRIPTIONS).await?;
    create_table(client, invocations_table, &INVOCATIONS).await?;
    wait_active(client, subscriptions_table).await?;
    wait_active(client, invocations_table).await?;
    enable_ttl(client, invocations_table).await
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, Error> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| failure("build table schema", e))
}

async fn create_table(client: &Client, table: &str, shape: &Shape) -> Result<(), Error> {
    let mut attributes = vec![shape.key];
    for (_, hash, range, _) in shape.indexes {
        for name in [*hash, *range] {
            if !attributes.contains(&name) {
                attributes.push(name);
            }
        }
    }
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(shape.key, KeyType::Hash)?);
    for name in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| failure("build table schema", e))?,
        );
    }
    for (name, hash, range, projection) in shape.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(*name)
                .key_schema(key(hash, KeyType::Hash)?)
                .key_schema(key(range, KeyType::Range)?)
                .projection(projection.of(hash))
                .build()
                .map_err(|e| failure("build table schema", e))?,
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(err) => Err(unavailable("CreateTable", err)),
    }
}

async fn pause(client: &Client) {
    if let Some(sleep) = client.config().sleep_impl() {
        sleep.sleep(POLL).await;
    }
}

async fn wait_active(client: &Client, table: &str) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| unavailable("DescribeTable", e))?;
        let description = out.table();
        let active = description.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        let indexes_active = description.is_some_and(|t| {
            t.global_secondary_indexes().iter().all(|i| {
                i.index_status()
                    .is_none_or(|s| *s == aws_sdk_dynamodb::types::IndexStatus::Active)
            })
        });
        if active && indexes_active {
            return Ok(());
        }
        if started.elapsed() > ACTIVE_WITHIN {
            return Err(failure(
                "DescribeTable",
                format!("table {table} is not ACTIVE after {ACTIVE_WITHIN:?}"),
            ));
        }
        pause(client).await;
    }
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), Error> {
    let enabled = |status: Option<&TimeToLiveStatus>| {
        matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        )
    };
    let describe = || async {
        client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| unavailable("DescribeTimeToLive", e))
            .map(|out| {
                out.time_to_live_description()
                    .and_then(|d| d.time_to_live_status())
                    .cloned()
            })
    };
    if enabled(describe().await?.as_ref()) {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(INV_EXPIRES)
        .enabled(true)
        .build()
        .map_err(|e| failure("build TTL specification", e))?;
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // A concurrent creator enabled it first (DynamoDB refuses a second enable).
        Err(_) if enabled(describe().await?.as_ref()) => Ok(()),
        Err(err) => Err(unavailable("UpdateTimeToLive", err)),
    }
}
