//! Property tests over everything that parses request data: thousands of generated inputs, and
//! not one may panic. Each parser must answer every input with a value or a typed error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::{Value, json};

use triggerline::Error;
use triggerline::catalog::Catalog;
use triggerline::duration::IsoDuration;
use triggerline::jsonpath::{JsonPathFilter, check_filter, cost};
use triggerline::model::Subscription;
use triggerline::ports::{SubscriptionAdmin, SubscriptionStore};
use triggerline::query::{InvocationQuery, Page, RawCollection, SubscriptionQuery, TriggerQuery};
use triggerline::time::{RandomIds, SystemClock};
use triggerline::usecases::subscriptions::{Subscriptions, validate_filter};
use triggerline::wire::{
    SubscriptionPatchRequest, SubscriptionPostRequest, ValidateFilterInputDto,
};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a failure is worth it; a long one is not.
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-zA-Z0-9 .@_\\-]{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map("[a-z]{1,3}|type|identity|name|changes", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// ISO-8601-shaped text: the right letters with numbers of any size, and some noise.
fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u32..100).prop_map(|n| n.to_string()),
        "[0-9]{1,40}",
        Just("96000000".to_owned()),
        "[0-9]{1,5}[.,][0-9]{1,5}",
    ];
    let unit = prop_oneof![
        Just("Y"),
        Just("M"),
        Just("W"),
        Just("D"),
        Just("H"),
        Just("S"),
        Just("T")
    ];
    (
        "P|p|-P|PT|",
        prop::collection::vec((number, unit), 0..6),
        "|T|[A-Z]",
    )
        .prop_map(|(head, parts, tail)| {
            let body: String = parts.into_iter().map(|(n, u)| format!("{n}{u}")).collect();
            format!("{head}{body}{tail}")
        })
}

/// JSONPath-shaped text: pieces of the grammar put together at random, valid or not.
fn jsonpath_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(".a".to_owned()),
        Just(".type".to_owned()),
        Just("..".to_owned()),
        Just("*".to_owned()),
        Just("[0]".to_owned()),
        Just("[-1]".to_owned()),
        Just("[1:3]".to_owned()),
        Just("[::-1]".to_owned()),
        Just("['a','b']".to_owned()),
        Just("[?".to_owned()),
        Just("]".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("@".to_owned()),
        Just("$".to_owned()),
        Just(" == ".to_owned()),
        Just(" != ".to_owned()),
        Just(" < ".to_owned()),
        Just(" && ".to_owned()),
        Just(" || ".to_owned()),
        Just("!".to_owned()),
        Just("'x'".to_owned()),
        Just("\"HUMAN\"".to_owned()),
        Just("1".to_owned()),
        Just("-2.5e3".to_owned()),
        // Jayway's, as SailPoint's filters are written.
        Just(" in ['a', 'b']".to_owned()),
        Just(" nin [1]".to_owned()),
        Just(" =~ /a.*/i".to_owned()),
        Just(" contains 'x'".to_owned()),
        Just(" size 2".to_owned()),
        Just(" anyof ['a']".to_owned()),
        Just(".length()".to_owned()),
        Just("[?(".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("length(".to_owned()),
        Just("count(".to_owned()),
        Just("value(".to_owned()),
        Just("match(".to_owned()),
        Just("search(".to_owned()),
        Just(", ".to_owned()),
        Just("'[a-z]+'".to_owned()),
        Just("'(?:a*){20}b'".to_owned()),
        Just("'\\u00e9\\''".to_owned()),
        "[ -~]{0,3}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| format!("${}", pieces.concat()))
}

/// Well-formed filters, built from the grammar, so that evaluation is reached often.
fn valid_filter() -> impl Strategy<Value = String> {
    let rel = prop_oneof![
        Just("@".to_owned()),
        Just("@.a".to_owned()),
        Just("@.type".to_owned()),
        Just("@[0]".to_owned()),
        Just("$.identity.type".to_owned()),
        Just("@..a".to_owned()),
        Just("@.*".to_owned()),
    ];
    let singular = prop_oneof![
        Just("@".to_owned()),
        Just("@.a".to_owned()),
        Just("@.name".to_owned()),
        Just("@['type']".to_owned()),
        Just("$.identity.type".to_owned()),
        Just("'x'".to_owned()),
        Just("1".to_owned()),
        Just("null".to_owned()),
        Just("length(@.name)".to_owned()),
    ];
    let test = prop_oneof![
        rel.clone(),
        (singular.clone(), "==|!=|<|<=|>|>=", singular.clone())
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (singular.clone(), "[a-z.*+?]{0,6}").prop_map(|(a, p)| format!("match({a}, '{p}')")),
        (singular, "[a-z.*+?]{0,6}").prop_map(|(a, p)| format!("search({a}, '{p}')")),
        rel.prop_map(|r| format!("count({r}) > 1")),
    ];
    let expr = test.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), "&&|\\|\\|", inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|e| format!("!({e})")),
            inner.prop_map(|e| format!("@[?{e}]")),
        ]
    });
    let segment = prop_oneof![
        Just(".a".to_owned()),
        Just(".identity".to_owned()),
        Just("..a".to_owned()),
        Just("..*".to_owned()),
        Just("[*]".to_owned()),
        Just("[0, 1]".to_owned()),
        Just("[1:]".to_owned()),
        expr.prop_map(|e| format!("[?{e}]")),
    ];
    let spaced = |text: String| {
        text.replace("[?", "[ ?\t")
            .replace('(', "( ")
            .replace(')', "\n)")
            .replace(", ", " ,\r\n")
            .replace('.', " .")
            .replace(" . .", " ..")
    };
    (prop::collection::vec(segment, 0..4), any::<bool>()).prop_map(move |(s, space)| {
        let text = format!("${}", s.concat());
        if space { spaced(text) } else { text }
    })
}

proptest! {
    #![proptest_config(config(2500))]

    #[test]
    fn durations_never_panic(text in prop_oneof![duration_text(), any::<String>()]) {
        for parsed in [
            IsoDuration::parse("responseDeadline", &text),
            IsoDuration::parse_bounded("delay", &text),
        ] {
            match parsed {
                Ok(d) => {
                    prop_assert!(d.as_millis() > 0);
                    prop_assert!(d.as_chrono() > chrono::Duration::zero());
                    prop_assert_eq!(d.as_str(), text.as_str());
                }
                Err(Error::Invalid { field, .. }) => {
                    prop_assert!(field == "responseDeadline" || field == "delay")
                }
                Err(other) => prop_assert!(false, "not a validation error: {other}"),
            }
        }
        if let Ok(d) = IsoDuration::parse_bounded("delay", &text) {
            prop_assert!(d.as_millis() <= 366 * 86_400_000);
        }
    }

    #[test]
    fn the_query_language_never_panics(
        limit in prop::option::of(prop_oneof!["[0-9]{0,25}", any::<String>()]),
        offset in prop::option::of(prop_oneof!["[0-9]{0,25}", any::<String>()]),
        count in prop::option::of("true|false|TRUE|[a-z]{0,4}"),
        filters in prop::option::of(prop_oneof![
            "(id|triggerId|type|subscriptionId|name|not|\\(|or|and| |\"|'|\\\\|eq|le|ge|co|[a-z]{1,3}|\"[^\"]{0,5}\"| )*",
            any::<String>(),
        ]),
        sorters in prop::option::of(prop_oneof![
            "(-?(id|name|triggerId|triggerName|created|completed|subscriptionName|[a-z]{0,3}),?)*",
            any::<String>(),
        ]),
        items in prop::collection::vec("[a-z]{0,3}", 0..40),
    ) {
        let raw = RawCollection { limit, offset, count, filters, sorters };
        let expect_field = |e: Error| match e {
            Error::Invalid { field, .. } => {
                ["limit", "offset", "count", "filters", "sorters"].contains(&field.as_str())
            }
            _ => false,
        };
        match TriggerQuery::parse(&raw) {
            Ok(q) => {
                let page = q.apply(&items, |item: &String, _| Some(item.clone()));
                prop_assert!(page.items.len() <= q.limit);
                prop_assert!(q.offset + q.limit <= triggerline::query::MAX_REACHABLE);
            }
            Err(e) => prop_assert!(expect_field(e)),
        }
        match SubscriptionQuery::parse(&raw) {
            Ok(q) => {
                let page = q.apply(&items, |item: &String, _| Some(item.clone()));
                prop_assert!(page.items.len() <= q.limit);
            }
            Err(e) => prop_assert!(expect_field(e)),
        }
        if let Err(e) = InvocationQuery::parse(&raw) {
            prop_assert!(expect_field(e));
        }
    }

    #[test]
    fn any_text_as_a_filter_never_panics(
        text in prop_oneof![jsonpath_text(), any::<String>()],
        input in json_value(),
    ) {
        match JsonPathFilter::parse("filter", &text) {
            Ok(filter) => {
                filter.matches(&input);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.starts_with("filter:"), "{}", e);
                // Whatever the parser takes, the cost reader reads.
                prop_assert!(!e.contains("cannot bound"), "{}", e);
            }
        }
        if let Value::Object(_) = &input {
            if let Err(e) = check_filter(&text, &input) {
                prop_assert!(e.to_string().starts_with("filter:"), "{}", e);
            }
        }
    }

    #[test]
    fn every_well_formed_filter_is_bounded_and_evaluated(
        text in valid_filter(),
        input in json_value(),
    ) {
        // The cost reader must know every form the parser takes: a filter the parser accepts is
        // refused only for a limit, never as "cannot bound".
        match JsonPathFilter::parse("filter", &text) {
            Ok(filter) => {
                filter.matches(&input);
                // A stored copy reads back and answers the same.
                let stored: JsonPathFilter = serde_json::from_value(json!(text)).unwrap();
                prop_assert_eq!(stored.matches(&input), filter.matches(&input));
            }
            // Spacing the parser does not take is not this property's concern.
            Err(_) if serde_json_path::JsonPath::parse(&text).is_err() => {}
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains("cannot bound"), "{}", e);
                prop_assert!(e.contains("steps") || e.contains("deep"), "{}", e);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// The cost bound is an upper bound: evaluating never yields more nodes than the bound's
    /// work (every selected node is counted at least once as work), plus the root that a query
    /// without segments selects for free.
    #[test]
    fn the_cost_bound_covers_what_evaluation_selects(
        text in valid_filter(),
        input in json_value(),
    ) {
        let Ok(path) = serde_json_path::JsonPath::parse(&text) else {
            return Ok(());
        };
        let shape = cost::Query::read(&text, &mut Vec::new());
        prop_assert!(shape.is_some(), "{} not read", text);
        let bound = shape.map(|s| s.cost(cost::Size::of(&input))).unwrap_or_default();
        let selected = path.query(&input).len() as f64;
        prop_assert!(selected <= bound + 1.0, "{}: {} selected, bound {}", text, selected, bound);
    }
}

/// A subscription store in a map, enough for the patch use case.
#[derive(Debug, Default)]
struct MapStore(Mutex<HashMap<String, Subscription>>);

impl MapStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Subscription>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SubscriptionStore for MapStore {
    async fn get(&self, id: &str) -> Result<Option<Subscription>, Error> {
        Ok(self.lock().get(id).cloned())
    }
    async fn list_for_trigger(&self, trigger_id: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        Ok(self
            .lock()
            .values()
            .filter(|s| s.trigger_id == trigger_id)
            .map(|s| Arc::new(s.clone()))
            .collect())
    }
    async fn replace(&self, s: &Subscription, _expected: u64) -> Result<(), Error> {
        self.lock().insert(s.id.clone(), s.clone());
        Ok(())
    }
}

#[async_trait]
impl SubscriptionAdmin for MapStore {
    async fn create(&self, s: &Subscription, _max: usize) -> Result<(), Error> {
        self.lock().insert(s.id.clone(), s.clone());
        Ok(())
    }

    async fn list(&self, _q: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
        Ok(Page {
            items: self.lock().values().cloned().collect(),
            total: None,
        })
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.lock().remove(id);
        Ok(())
    }
}

/// A path a patch may name: the patchable fields and their insides, others, and noise.
fn patch_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("".to_owned()),
        Just("/".to_owned()),
        "/(name|description|enabled|type|filter|responseDeadline|httpConfig|eventBridgeConfig|id|triggerId|signingSecret)",
        "/httpConfig/(url|httpDispatchMode|httpAuthenticationType|basicAuthConfig|bearerTokenAuthConfig|x)",
        "/httpConfig/(basicAuthConfig/(userName|password)|bearerTokenAuthConfig/bearerToken)",
        "/eventBridgeConfig/(awsAccount|awsRegion)",
        "/(name|filter|httpConfig)/(-|0|[0-9]{1,20}|~0|~1|~2|a~1b)",
        any::<String>(),
    ]
}

fn patch_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        Just(json!("true")),
        Just(json!(0)),
        Just(json!("P96000000D")),
        Just(json!("$..*..*..*")),
        Just(json!("$[?(@.type == 'x')]")),
        Just(json!("EVENTBRIDGE")),
        Just(json!({"awsAccount": "123456789012", "awsRegion": "us-east-1"})),
        Just(json!({"url": "https://u:p@other.example.com/h", "httpDispatchMode": "SYNC"})),
    ]
}

fn patch_op() -> impl Strategy<Value = Value> {
    (
        "add|remove|replace|move|copy|test|bogus",
        patch_path(),
        patch_path(),
        patch_value(),
    )
        .prop_map(|(op, path, from, value)| match op.as_str() {
            "remove" => json!({"op": op, "path": path}),
            "move" | "copy" => json!({"op": op, "path": path, "from": from}),
            _ => json!({"op": op, "path": path, "value": value}),
        })
}

fn subscriptions_with_one() -> (tokio::runtime::Runtime, Subscriptions, Subscription) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let subscriptions = Subscriptions::new(
        Arc::new(MapStore::default()),
        Catalog::builtin(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
    );
    let request: SubscriptionPostRequest = serde_json::from_value(json!({
        "name": "hr",
        "triggerId": "idn:identity-created",
        "type": "HTTP",
        "httpConfig": {
            "url": "https://hr.example.com/hook",
            "httpDispatchMode": "SYNC",
            "httpAuthenticationType": "BEARER_TOKEN",
            "bearerTokenAuthConfig": {"bearerToken": "t0ken"}
        },
        "filter": "$[?($.identity.type == \"IDENTITY\")]"
    }))
    .expect("a valid request");
    let created = runtime
        .block_on(subscriptions.create(request))
        .expect("created");
    (runtime, subscriptions, created)
}

/// Found by the property below: json-patch's `patch` panics ("unable to undo applied patches")
/// when it rolls back a `move` into the moved value's parent.
#[test]
fn a_patch_json_patch_cannot_undo_is_a_400_not_a_panic() {
    let (runtime, subscriptions, created) = subscriptions_with_one();
    let patch: SubscriptionPatchRequest = serde_json::from_value(json!([
        {"op": "move", "from": "/httpConfig/url", "path": "/httpConfig"},
        {"op": "add", "path": "/httpConfig/url", "value": null}
    ]))
    .unwrap();
    let err = runtime
        .block_on(subscriptions.patch(&created.id, patch))
        .unwrap_err();
    assert!(err.to_string().starts_with("[1].path:"), "{err}");
}

#[test]
fn a_filter_over_a_limit_is_a_400_naming_filter_when_patched_or_validated() {
    let (runtime, subscriptions, created) = subscriptions_with_one();
    let field_of = |e: Error| match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other}"),
    };
    let patch: SubscriptionPatchRequest = serde_json::from_value(json!([
        {"op": "replace", "path": "/filter", "value": "$..*..*..*"}
    ]))
    .expect("a patch");
    let err = runtime
        .block_on(subscriptions.patch(&created.id, patch))
        .expect_err("over budget");
    assert_eq!(field_of(err), "filter");
    let request: ValidateFilterInputDto = serde_json::from_value(json!({
        "input": {"a": 1},
        "filter": format!("$[?{}@.a{}]", "(".repeat(40), ")".repeat(40)),
    }))
    .expect("a request");
    assert_eq!(
        field_of(validate_filter(&request).expect_err("too deep")),
        "filter"
    );
    let request: ValidateFilterInputDto =
        serde_json::from_value(json!({"input": {"a": 1}, "filter": "$[?("})).expect("a request");
    let answer = validate_filter(&request).expect("bad syntax is an answer");
    assert!(!answer.is_valid_json_path);
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn json_patches_of_subscriptions_never_panic(
        ops in prop::collection::vec(patch_op(), 0..6),
    ) {
        let (runtime, subscriptions, created) = subscriptions_with_one();
        // Ops that are not even JSON Patch are refused by the body's parser, before the use case.
        let Ok(patch) = serde_json::from_value::<SubscriptionPatchRequest>(Value::Array(ops)) else {
            return Ok(());
        };
        match runtime.block_on(subscriptions.patch(&created.id, patch)) {
            Ok(updated) => {
                prop_assert_eq!(&updated.id, &created.id);
                prop_assert_eq!(&updated.trigger_id, &created.trigger_id);
            }
            Err(Error::Invalid { .. }) => {}
            Err(other) => prop_assert!(false, "not a validation error: {other}"),
        }
    }
}
