//! `template.yaml` declares the tables the stores create for tests and the local server
//! (`tables::create_missing`): the same keys, attribute definitions, indexes and projections.
//! The cost test prices each flow's index writes from the created table's description, so a
//! template that drifted from it would be billed for writes nobody counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::TableDescription;
use triggerline_aws::testing::dynamo_tables;
use yaml_rust2::{Yaml, YamlLoader};

/// A table's shape, as comparable text: key, attribute definitions, and per index its keys,
/// projection type and projected attributes.
#[derive(Debug, PartialEq)]
struct Shape {
    key: Vec<String>,
    attributes: BTreeSet<String>,
    indexes: BTreeSet<String>,
}

fn key_text(name: &str, key_type: &str) -> String {
    format!("{name}:{key_type}")
}

fn from_template(table: &Yaml) -> Shape {
    let properties = &table["Properties"];
    let keys = |schema: &Yaml| -> Vec<String> {
        schema
            .as_vec()
            .unwrap()
            .iter()
            .map(|k| {
                key_text(
                    k["AttributeName"].as_str().unwrap(),
                    k["KeyType"].as_str().unwrap(),
                )
            })
            .collect()
    };
    let attributes = properties["AttributeDefinitions"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| {
            key_text(
                a["AttributeName"].as_str().unwrap(),
                a["AttributeType"].as_str().unwrap(),
            )
        })
        .collect();
    let indexes = properties["GlobalSecondaryIndexes"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|index| {
            let projection = &index["Projection"];
            let mut projected: Vec<&str> = projection["NonKeyAttributes"]
                .as_vec()
                .map(|v| v.iter().map(|a| a.as_str().unwrap()).collect())
                .unwrap_or_default();
            projected.sort_unstable();
            format!(
                "{} {:?} {} {:?}",
                index["IndexName"].as_str().unwrap(),
                keys(&index["KeySchema"]),
                projection["ProjectionType"].as_str().unwrap(),
                projected
            )
        })
        .collect();
    Shape {
        key: keys(&properties["KeySchema"]),
        attributes,
        indexes,
    }
}

fn from_description(table: &TableDescription) -> Shape {
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<String> {
        schema
            .iter()
            .map(|k| key_text(k.attribute_name(), k.key_type().as_str()))
            .collect()
    };
    Shape {
        key: keys(table.key_schema()),
        attributes: table
            .attribute_definitions()
            .iter()
            .map(|a| key_text(a.attribute_name(), a.attribute_type().as_str()))
            .collect(),
        indexes: table
            .global_secondary_indexes()
            .iter()
            .map(|index| {
                let projection = index.projection().unwrap();
                let mut projected: Vec<&str> = projection
                    .non_key_attributes()
                    .iter()
                    .map(String::as_str)
                    .collect();
                projected.sort_unstable();
                format!(
                    "{} {:?} {} {:?}",
                    index.index_name().unwrap(),
                    keys(index.key_schema()),
                    projection.projection_type().unwrap().as_str(),
                    projected
                )
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_declares_the_tables_the_stores_create() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let template = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let resources = &template["Resources"];

    let (_moto, clients, settings) = dynamo_tables().await;
    for (resource, table) in [
        ("SubscriptionsTable", &settings.subscriptions_table),
        ("InvocationsTableV2", &settings.invocations_table),
    ] {
        let declared = &resources[resource];
        assert!(!declared.is_badvalue(), "template.yaml has no {resource}");
        let described = clients
            .dynamodb()
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap();
        assert_eq!(
            from_template(declared),
            from_description(described.table().unwrap()),
            "{resource} in template.yaml and the table the stores create differ"
        );
    }
}

/// `MaxAttempts` allows what the functions accept: 1 to `MAX_KEPT_ATTEMPTS`, the attempts that
/// fit an invocation's item with the largest input and output
/// (`the_largest_invocation_the_bounds_allow_fits_one_item`). The template once allowed 100,
/// and an invocation past 50 attempts of that size could no longer record one.
#[test]
fn the_template_bounds_max_attempts_as_the_functions_do() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let template = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let parameter = &template["Parameters"]["MaxAttempts"];
    assert_eq!(parameter["MinValue"].as_i64(), Some(1));
    assert_eq!(
        parameter["MaxValue"].as_i64(),
        Some(triggerline::limits::MAX_KEPT_ATTEMPTS as i64)
    );
}
