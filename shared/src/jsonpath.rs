//! Subscription filters: RFC 9535 JSONPath expressions over the trigger input. An invocation goes
//! to a subscription only when its filter selects at least one node.
//!
//! The RFC's `match()` and `search()` functions are defined here on `regex-lite` rather than by
//! `serde_json_path`'s `regex` feature, whose engine and Unicode tables made up 0.7 MB of each
//! Lambda function that reads filters. The one thing I-Regexp (RFC 9485) has that `regex-lite`
//! lacks is Unicode property classes (`\p{L}`): a pattern using them does not compile, and the
//! function is false, as for any other invalid pattern.
//!
//! # Limits
//!
//! A filter is written by a subscriber and runs on every event of its trigger, so what it may
//! cost is bounded before it is parsed, when it is saved, and each time it runs:
//! - Text: at most [`MAX_FILTER_BYTES`] bytes, with parentheses and brackets nested at most
//!   [`MAX_FILTER_NESTING`] deep and filters (`[?…]`) within filters at most
//!   [`MAX_NESTED_FILTERS`] deep. Both protect the parser: `serde_json_path` recurses once per
//!   level (about 1,000 parentheses overflow a 2 MiB thread stack, which aborts the process), and
//!   its parse time doubles with each filter nested in another (20 levels: 4.5 s).
//! - Cost: [`cost`] bounds the work of an evaluation from the query's shape and the input's node
//!   count and height. At save time the bound over a reference input ([`REFERENCE_NODES`] nodes,
//!   [`REFERENCE_HEIGHT`] levels: a large SailPoint event) must be within [`EVALUATION_BUDGET`]:
//!   `$..*..*..*` or a root query per descendant (`$..[?$..x]`) are refused with a 400, while
//!   every filter whose cost grows linearly with the input passes. At run time the bound over
//!   the actual input decides: over the budget, the filter does not match (logged once at WARN)
//!   and is never evaluated, so a hostile filter costs one walk over the input.
//! - Regexes: patterns of at most [`regex::MAX_PATTERN_BYTES`] bytes compiling to at most
//!   [`regex::REGEX_SIZE_LIMIT`] bytes, compiled once into a bounded cache; a pattern written in
//!   the filter breaking either limit is a 400 at save time, one read from the input is false.
//!   Each evaluation has a regex budget ([`regex::REGEX_BUDGET`]), charged before each call from
//!   the pattern's compiled size and the text's length; an evaluation that runs out does not
//!   match (logged once at WARN).
//!
//! A filter stored before these limits existed and breaking one is kept (the subscription stays
//! readable and can be fixed), but matches nothing.

pub mod cost;
mod jayway;
pub mod regex;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json_path::JsonPath;
use serde_json_path::functions::{LogicalType, ValueType};

use crate::Error;

/// The longest filter, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// How deep parentheses and brackets may nest in a filter.
pub const MAX_FILTER_NESTING: usize = 32;
/// How deep filter selectors may nest in one another (`$[?@[?@[?…]]]`).
pub const MAX_NESTED_FILTERS: usize = 4;
/// The most work one evaluation may do, in [`cost`] units (about 20-100 ns each: at most some
/// 0.1 s on a 2-core machine).
pub const EVALUATION_BUDGET: f64 = 1_000_000.0;
/// The node count of the reference input a filter is checked against when saved.
pub const REFERENCE_NODES: f64 = 10_000.0;
/// The height of the reference input (nodes on its longest path).
pub const REFERENCE_HEIGHT: f64 = 17.0;

/// A parsed filter that remembers the caller's spelling.
#[derive(Clone)]
pub struct JsonPathFilter {
    text: String,
    compiled: Compiled,
}

#[derive(Debug, Clone)]
enum Compiled {
    Ready {
        path: JsonPath,
        shape: Arc<cost::Query>,
        /// Whether the query runs on the input inside a one-element array ([`FilterInput`]),
        /// as every filter read as Jayway does; an RFC 9535 text the reader did not take runs
        /// on the input itself.
        wrapped: bool,
    },
    /// A stored filter that breaks a limit: kept, shown, never evaluated.
    Refused(String),
}

/// Why a filter text is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    /// Not JSONPath: an answer (`isValidJSONPath: false`) in `validate-filter`.
    Syntax(String),
    /// Over a limit: a 400 everywhere.
    Limit(String),
}

impl Rejection {
    fn reason(self) -> String {
        match self {
            Rejection::Syntax(r) | Rejection::Limit(r) => r,
        }
    }
}

/// What one evaluation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Match,
    NoMatch,
    /// Not evaluated, or abandoned: the reason says which budget.
    OverBudget(String),
}

impl JsonPathFilter {
    /// Parses `text` from a request, with every limit; `field` names the request field in the
    /// error.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        Self::parse_request(text).map_err(|r| Error::invalid(field, r.reason()))
    }

    fn parse_request(text: &str) -> Result<Self, Rejection> {
        let (path, shape, patterns, wrapped) = compile(text)?;
        let reference = cost::Size {
            nodes: REFERENCE_NODES,
            height: REFERENCE_HEIGHT,
        };
        let estimate = shape.cost(reference);
        if !within_budget(estimate) {
            return Err(Rejection::Limit(format!(
                "`{text}` could take {estimate:.0} steps on an input of {REFERENCE_NODES} nodes \
                 {REFERENCE_HEIGHT} levels deep, more than the {EVALUATION_BUDGET} a filter may \
                 take; avoid descendant segments (`..`) under one another and root queries (`$`) \
                 inside filters over many nodes"
            )));
        }
        for pattern in &patterns {
            regex::check_literal(pattern).map_err(|e| Rejection::Limit(e.to_string()))?;
        }
        Ok(JsonPathFilter {
            text: text.to_owned(),
            compiled: Compiled::Ready {
                path,
                shape: Arc::new(shape),
                wrapped,
            },
        })
    }

    /// Reads a stored filter. It passed [`JsonPathFilter::parse`] when it was saved; one that
    /// no longer passes the text limits (saved before they existed) is kept, but never runs.
    fn from_stored(text: String) -> Self {
        let compiled = match compile(&text) {
            Ok((path, shape, _, wrapped)) => Compiled::Ready {
                path,
                shape: Arc::new(shape),
                wrapped,
            },
            Err(r) => Compiled::Refused(r.reason()),
        };
        JsonPathFilter { text, compiled }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the expression selects at least one node of `input`. A filter over its budget
    /// for this input does not match; that is logged once per filter, at WARN.
    pub fn matches(&self, input: &Value) -> bool {
        self.matches_in(&FilterInput::new(input.clone()))
    }

    /// As [`JsonPathFilter::matches`], on an input prepared once for every filter of a start.
    pub fn matches_in(&self, subject: &FilterInput) -> bool {
        match self.evaluate_in(subject) {
            Outcome::Match => true,
            Outcome::NoMatch => false,
            Outcome::OverBudget(reason) => {
                warn_once(&self.text, &reason);
                false
            }
        }
    }

    /// Evaluates the filter over `input` within the budgets.
    pub fn evaluate(&self, input: &Value) -> Outcome {
        self.evaluate_in(&FilterInput::new(input.clone()))
    }

    /// As [`JsonPathFilter::evaluate`], on an input prepared once ([`FilterInput`]: a fan-out
    /// measures its input once for all its subscriptions' filters; the walk is linear in the
    /// input).
    pub fn evaluate_in(&self, subject: &FilterInput) -> Outcome {
        let (path, shape, wrapped) = match &self.compiled {
            Compiled::Ready {
                path,
                shape,
                wrapped,
            } => (path, shape, *wrapped),
            Compiled::Refused(reason) => return Outcome::OverBudget(reason.clone()),
        };
        let (input, size) = if wrapped {
            (&subject.wrapped, subject.wrapped_size)
        } else {
            (subject.input(), subject.size)
        };
        let estimate = shape.cost(size);
        if !within_budget(estimate) {
            return Outcome::OverBudget(format!(
                "could take {estimate:.0} steps on this input ({} nodes, {} levels), more than \
                 the {EVALUATION_BUDGET} a filter may take",
                size.nodes, size.height
            ));
        }
        let budget = regex::Budget::install();
        let selected = !path.query(input).is_empty();
        if budget.exhausted() {
            return Outcome::OverBudget(format!(
                "its match()/search() calls need more than the {} regex steps a filter may take",
                regex::REGEX_BUDGET
            ));
        }
        if selected {
            Outcome::Match
        } else {
            Outcome::NoMatch
        }
    }
}

/// An input as filters read it. Held inside a one-element array, where a filter on the array
/// has the input as its one candidate: that is how a filter on the input itself (Jayway's
/// `$[?(@.a == 1)]`) is written in RFC 9535 ([`jayway`]).
#[derive(Debug, Clone)]
pub struct FilterInput {
    wrapped: Value,
    /// The input's size, and the array's (one node and one level more).
    size: cost::Size,
    wrapped_size: cost::Size,
}

impl FilterInput {
    /// Takes `input` (a move, not a copy), and measures it once.
    pub fn new(input: Value) -> FilterInput {
        let size = cost::Size::of(&input);
        FilterInput {
            wrapped: Value::Array(vec![input]),
            size,
            wrapped_size: cost::Size {
                nodes: size.nodes + 1.0,
                height: size.height + 1.0,
            },
        }
    }

    pub fn input(&self) -> &Value {
        match &self.wrapped {
            Value::Array(items) => items.first().unwrap_or(&Value::Null),
            other => other,
        }
    }

    /// The input back.
    pub fn into_input(self) -> Value {
        match self.wrapped {
            Value::Array(mut items) => items.pop().unwrap_or(Value::Null),
            other => other,
        }
    }
}

/// Whether a cost bound is within [`EVALUATION_BUDGET`]; a NaN bound is not.
fn within_budget(estimate: f64) -> bool {
    estimate
        .partial_cmp(&EVALUATION_BUDGET)
        .is_some_and(|o| o.is_le())
}

/// Checks the text limits, reads the filter as Jayway does ([`jayway`]), parses the RFC 9535
/// query that means the same, and reads its cost shape (with the literal regex patterns).
fn compile(text: &str) -> Result<(JsonPath, cost::Query, Vec<String>, bool), Rejection> {
    scan_structure(text, Limits::WRITTEN).map_err(Rejection::Limit)?;
    let (rfc, wrapped) = match jayway::to_rfc9535(text) {
        Some(translated) => (
            translated.map_err(|e| {
                Rejection::Syntax(format!("`{text}` is not a valid JSONPath expression: {e}"))
            })?,
            true,
        ),
        None => (text.to_owned(), false),
    };
    // The translation writes each filter on a node twice (as an array, as an object), so its
    // limits are looser than the text's; past them the filter is refused as too complex.
    scan_structure(&rfc, Limits::TRANSLATED)
        .map_err(|e| Rejection::Limit(format!("`{text}`, read as Jayway JSONPath, {e}")))?;
    let path = JsonPath::parse(&rfc).map_err(|e| {
        Rejection::Syntax(format!("`{text}` is not a valid JSONPath expression: {e}"))
    })?;
    let mut patterns = Vec::new();
    let shape = cost::Query::read(&rfc, &mut patterns).ok_or_else(|| {
        Rejection::Limit(format!(
            "`{text}` is JSONPath, but not in a form whose cost Triggerline can bound"
        ))
    })?;
    Ok((path, shape, patterns, wrapped))
}

/// Bounds on a filter's text: what was written, and the RFC 9535 text it is read as.
#[derive(Debug, Clone, Copy)]
struct Limits {
    bytes: usize,
    nesting: usize,
    filters: usize,
}

impl Limits {
    const WRITTEN: Limits = Limits {
        bytes: MAX_FILTER_BYTES,
        nesting: MAX_FILTER_NESTING,
        filters: MAX_NESTED_FILTERS,
    };
    /// Each filter on a named node is written twice, inside one more filter.
    const TRANSLATED: Limits = Limits {
        bytes: 8 * MAX_FILTER_BYTES,
        nesting: 2 * MAX_FILTER_NESTING,
        filters: 2 * MAX_NESTED_FILTERS,
    };
}

/// The limits checked before the text reaches the parser: length, nesting of parentheses and
/// brackets, and nesting of filters (string literals skipped).
fn scan_structure(text: &str, limits: Limits) -> Result<(), String> {
    let Limits {
        bytes: max_bytes,
        nesting: max_nesting,
        filters: max_filters,
    } = limits;
    if text.len() > max_bytes {
        return Err(format!(
            "is {} bytes long; a filter may be at most {max_bytes}",
            text.len()
        ));
    }
    // Each open parenthesis or bracket, and whether a filter selector started in it.
    let mut open: Vec<bool> = Vec::new();
    let mut filters = 0usize;
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\'' | b'"' => {
                while let Some(c) = bytes.next() {
                    if c == b'\\' {
                        bytes.next();
                    } else if c == b {
                        break;
                    }
                }
            }
            b'(' | b'[' => {
                open.push(false);
                if open.len() > max_nesting {
                    return Err(format!(
                        "nests parentheses and brackets more than {max_nesting} deep"
                    ));
                }
            }
            b')' | b']' => {
                filters = filters.saturating_sub(usize::from(open.pop() == Some(true)));
            }
            b'?' => {
                if let Some(in_filter @ false) = open.last_mut() {
                    *in_filter = true;
                    // At most one per byte of a text held to MAX_FILTER_BYTES.
                    filters += 1;
                    if filters > max_filters {
                        return Err(format!(
                            "nests filters (`[?…]`) more than {max_filters} deep"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Filters already reported over budget (by hash), so that each is logged once, not per event.
static WARNED: LazyLock<Mutex<HashSet<u64>>> = LazyLock::new(|| Mutex::new(HashSet::new()));
/// Past this many, the record starts over (a filter may then be logged again).
const WARNED_ENTRIES: usize = 4096;

/// Logs that `text` is over budget unless it was logged before; whether it logged.
fn warn_once(text: &str, reason: &str) -> bool {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let key = hasher.finish();
    // A poisoned lock only means another thread panicked mid-insert; the set is still valid.
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.len() >= WARNED_ENTRIES {
        warned.clear();
    }
    let first = warned.insert(key);
    if first {
        let shown: String = text.chars().take(200).collect();
        tracing::warn!(filter = %shown, reason, "subscription filter over its budget: treated as no match");
    }
    first
}

/// The caller's spelling only: the parsed forms would fill a log line with syntax trees.
impl std::fmt::Debug for JsonPathFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JsonPathFilter").field(&self.text).finish()
    }
}

impl PartialEq for JsonPathFilter {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Serialize for JsonPathFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for JsonPathFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(JsonPathFilter::from_stored(String::deserialize(d)?))
    }
}

/// RFC 9535 §2.4.6: does the whole string match the I-Regexp?
#[serde_json_path::function(name = "match")]
fn match_whole(value: ValueType, pattern: ValueType) -> LogicalType {
    regex_test(&value, &pattern, true)
}

/// RFC 9535 §2.4.7: does some substring match the I-Regexp?
#[serde_json_path::function]
fn search(value: ValueType, pattern: ValueType) -> LogicalType {
    regex_test(&value, &pattern, false)
}

// Jayway's operators and its reading of a filter on an object ([`jayway`]). A missing value
// (`Nothing`) or one of the wrong type makes each of them false, as a missing path fails every
// comparison in Jayway. A list argument is the JSON text the translation wrote.

/// Is the node an array?
#[serde_json_path::function]
fn jw_is_array(value: ValueType) -> LogicalType {
    matches!(value.as_value(), Some(Value::Array(_))).into()
}

/// Is the node an object?
#[serde_json_path::function]
fn jw_is_object(value: ValueType) -> LogicalType {
    matches!(value.as_value(), Some(Value::Object(_))).into()
}

/// Jayway `in`: the value is one of the list's.
#[serde_json_path::function]
fn jw_in(value: ValueType, list: ValueType) -> LogicalType {
    let (Some(value), Some(list)) = (value.as_value(), list_of(&list)) else {
        return LogicalType::False;
    };
    list.iter().any(|item| same(item, value)).into()
}

/// Jayway `nin`: a value that is not one of the list's (a missing value passes no comparison
/// in Jayway, this one included).
#[serde_json_path::function]
fn jw_nin(value: ValueType, list: ValueType) -> LogicalType {
    let (Some(value), Some(list)) = (value.as_value(), list_of(&list)) else {
        return LogicalType::False;
    };
    (!list.iter().any(|item| same(item, value))).into()
}

/// Jayway `subsetof`: every element of the array value is in the list.
#[serde_json_path::function]
fn jw_subsetof(value: ValueType, list: ValueType) -> LogicalType {
    array_against(&value, &list, |items, list| {
        items.iter().all(|i| list.iter().any(|l| same(i, l)))
    })
}

/// Jayway `anyof`: some element of the array value is in the list.
#[serde_json_path::function]
fn jw_anyof(value: ValueType, list: ValueType) -> LogicalType {
    array_against(&value, &list, |items, list| {
        items.iter().any(|i| list.iter().any(|l| same(i, l)))
    })
}

/// Jayway `noneof`: no element of the array value is in the list.
#[serde_json_path::function]
fn jw_noneof(value: ValueType, list: ValueType) -> LogicalType {
    array_against(&value, &list, |items, list| {
        !items.iter().any(|i| list.iter().any(|l| same(i, l)))
    })
}

/// Jayway `size`: the string's characters or the array's elements number `size`.
#[serde_json_path::function]
fn jw_size(value: ValueType, size: ValueType) -> LogicalType {
    let Some(size) = size.as_value().and_then(Value::as_f64) else {
        return LogicalType::False;
    };
    let length = match value.as_value() {
        Some(Value::String(s)) => s.chars().count(),
        Some(Value::Array(a)) => a.len(),
        _ => return LogicalType::False,
    };
    (length as f64 == size).into()
}

/// Jayway `empty true|false`: whether the string or array is empty.
#[serde_json_path::function]
fn jw_empty(value: ValueType, empty: ValueType) -> LogicalType {
    let Some(Value::Bool(empty)) = empty.as_value() else {
        return LogicalType::False;
    };
    let is_empty = match value.as_value() {
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => return LogicalType::False,
    };
    (is_empty == *empty).into()
}

/// Jayway `contains`: the string holds the substring, or the array the element.
#[serde_json_path::function]
fn jw_contains(value: ValueType, part: ValueType) -> LogicalType {
    match (value.as_value(), part.as_value()) {
        (Some(Value::String(s)), Some(Value::String(part))) => s.contains(part.as_str()).into(),
        (Some(Value::Array(items)), Some(part)) => items.iter().any(|i| same(i, part)).into(),
        _ => LogicalType::False,
    }
}

/// The list a translated filter passes as JSON text.
fn list_of(list: &ValueType) -> Option<Vec<Value>> {
    match list.as_value() {
        Some(Value::String(text)) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

fn array_against(
    value: &ValueType,
    list: &ValueType,
    test: impl Fn(&[Value], &[Value]) -> bool,
) -> LogicalType {
    match (value.as_value(), list_of(list)) {
        (Some(Value::Array(items)), Some(list)) => test(items, &list).into(),
        _ => LogicalType::False,
    }
}

/// Equal as Jayway compares: numbers by value (`1` is `1.0`), anything else as JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// True when both arguments are strings and the pattern compiles, is affordable and matches.
/// Anything else (a non-string argument, an invalid pattern) is false, as the RFC says.
fn regex_test(value: &ValueType, pattern: &ValueType, whole: bool) -> LogicalType {
    let (Some(Value::String(text)), Some(Value::String(pattern))) =
        (value.as_value(), pattern.as_value())
    else {
        return LogicalType::False;
    };
    regex::test(pattern, text, whole).into()
}

/// The answer of `validate-filter`: does the expression parse, does it select anything in the
/// sample input, and both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterCheck {
    pub is_valid_json_path: bool,
    pub is_path_exist: bool,
}

impl FilterCheck {
    pub fn is_valid(&self) -> bool {
        self.is_valid_json_path && self.is_path_exist
    }
}

/// Checks `filter` against a sample `input`. A filter that is not JSONPath is an answer here,
/// not an error; one over a limit (text, cost, regex, or its budget over this input) is the
/// same 400 naming `filter` that saving it would get.
pub fn check_filter(filter: &str, input: &Value) -> Result<FilterCheck, Error> {
    let parsed = match JsonPathFilter::parse_request(filter) {
        Ok(parsed) => parsed,
        Err(Rejection::Syntax(_)) => {
            return Ok(FilterCheck {
                is_valid_json_path: false,
                is_path_exist: false,
            });
        }
        Err(Rejection::Limit(reason)) => return Err(Error::invalid("filter", reason)),
    };
    let is_path_exist = match parsed.evaluate(input) {
        Outcome::Match => true,
        Outcome::NoMatch => false,
        Outcome::OverBudget(reason) => return Err(Error::invalid("filter", reason)),
    };
    Ok(FilterCheck {
        is_valid_json_path: true,
        is_path_exist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The Identity Attributes Changed input of SailPoint's `filtering-events.md`.
    fn attributes_changed() -> Value {
        json!({
            "identity": {"id": "ee769173319b41d19ccec6cea52f237b", "name": "john.doe",
                "type": "IDENTITY", "attributes": {"email": "john@example.com"}},
            "changes": [
                {"attribute": "department", "oldValue": "Sales", "newValue": "Marketing"},
                {"attribute": "manager",
                    "oldValue": {"id": "ee76", "name": "robert.brown", "type": "IDENTITY"},
                    "newValue": {"id": "ee77", "name": "mary.johnson", "type": "IDENTITY"}},
                {"attribute": "cloudLifecycleState", "oldValue": "active",
                    "newValue": "terminated"}
            ],
            "warnings": ["Account skipped"]
        })
    }

    /// Every example of SailPoint's filter documentation, read as Jayway reads it.
    #[test]
    fn sailpoint_documented_filters_mean_what_jayway_makes_them_mean() {
        let input = attributes_changed();
        let selects = |filter: &str| match JsonPathFilter::parse("filter", filter) {
            Ok(f) => f.matches(&input),
            Err(e) => panic!("{filter}: {e}"),
        };
        for (filter, expected) in [
            (r#"$[?($.identity.name == "john.doe")]"#, true),
            (r#"$[?($.identity.name != "george.washington")]"#, true),
            (r#"$[?($.identity.name != "john.doe")]"#, false),
            (r#"$.changes[?(@.attribute == "department")]"#, true),
            (r#"$.changes[?(@.attribute == "title")]"#, false),
            (
                r#"$.changes[?(@.attribute == "department" && @.newValue =~ /mark.*/i)]"#,
                true,
            ),
            (
                r#"$.changes[?(@.attribute == "department" && @.newValue =~ /mark.*/)]"#,
                false,
            ),
            (r#"$.changes[?(@.newValue =~ /Market/)]"#, false),
            (
                "$.changes[?(@.attribute == 'department' && @.newValue in ['sales','Marketing'])]",
                true,
            ),
            (
                "$.changes[?(@.attribute == 'department' && @.newValue nin ['sales','Marketing'])]",
                false,
            ),
            (
                "$.changes[?(@.attribute == 'department' && @.newValue nin ['sales','engineering'])]",
                true,
            ),
            (
                "$[?($.warnings subsetof ['Account skipped','Invalid account'])]",
                true,
            ),
            (
                "$[?($.warnings anyof ['Account skipped','Invalid account'])]",
                true,
            ),
            (
                "$[?($.warnings noneof ['Account skipped','Invalid account'])]",
                false,
            ),
            ("$[?($.warnings size 1)]", true),
            ("$[?($.warnings size 2)]", false),
            ("$[?($.warnings empty false)]", true),
            ("$[?($.changes.length() >= 3)]", true),
            ("$[?($.changes.length() >= 4)]", false),
            (r#"$[?($.identity.name contains "john")]"#, true),
            (r#"$[?($.identity.name contains "archer")]"#, false),
            (
                r#"$.changes[?(@.attribute == "cloudLifecycleState" && @.newValue == "terminated")]"#,
                true,
            ),
            (
                r#"$.changes[?(@.attribute == "cloudLifecycleState" || @.attribute == "department")]"#,
                true,
            ),
            ("$.identity.attributes[?(!@.alternateEmail)]", true),
            ("$.identity.attributes[?(@.email)]", true),
            ("$..id", true),
            ("$.changes[1].attribute", true),
            ("$.changes[-1:]", true),
            ("$.changes[0,1,2]", true),
            ("$.identity", true),
            ("$.nothing", false),
        ] {
            assert_eq!(selects(filter), expected, "{filter}");
        }
    }

    /// Jayway tests a filter on an object against the object itself, where RFC 9535 would
    /// test each of its members.
    #[test]
    fn a_filter_on_an_object_tests_the_object_as_jayway_does() {
        let input = attributes_changed();
        let selects = |filter: &str| {
            JsonPathFilter::parse("filter", filter)
                .unwrap()
                .matches(&input)
        };
        assert!(selects(r#"$[?(@.identity.type == "IDENTITY")]"#));
        assert!(
            !selects(r#"$[?(@.type == "IDENTITY")]"#),
            "the input has no type"
        );
        assert!(selects(r#"$.identity[?(@.type == "IDENTITY")]"#));
        assert!(selects(r#"$.identity[?(@.type == "IDENTITY")].name"#));
        assert!(!selects(r#"$.identity[?(@.type == "IDENTITY")].nickname"#));
        assert!(!selects(r#"$.identity[?(@.type == "MACHINE")]"#));
        // Filters one after another: each object is tested itself.
        assert!(selects(
            r#"$.identity[?(@.type == "IDENTITY")].attributes[?(@.email)]"#
        ));
        assert!(!selects(
            r#"$.identity[?(@.type == "IDENTITY")].attributes[?(@.phone)]"#
        ));
        // An array's elements are tested one by one, in both readings.
        assert!(selects(
            r#"$.changes[?(@.attribute == "manager")].newValue.name"#
        ));
        // A primitive passes no filter.
        assert!(!selects(r#"$.identity.name[?(@ == "john.doe")]"#));
        // RFC 9535's own syntax keeps RFC 9535's reading.
        assert!(selects(r#"$[?@.type == "IDENTITY"]"#));
        // Names RFC 9535's dot notation refuses.
        let dashed = json!({"first-name": "Ada"});
        let f = JsonPathFilter::parse("filter", r#"$[?($.first-name == "Ada")]"#).unwrap();
        assert!(f.matches(&dashed));
    }

    #[test]
    fn jayway_operators_that_cannot_apply_refuse_or_do_not_match() {
        let bad = |filter: &str| {
            JsonPathFilter::parse("filter", filter)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("$[?(@.a in 'x')]").starts_with("filter:"));
        assert!(bad("$[?(@.a =~ 'x')]").starts_with("filter:"));
        assert!(bad("$[?(@.a =~ /x/q)]").starts_with("filter:"));
        assert!(bad("$.changes.length()").contains("length()"));
        let input = json!({"a": 5, "s": "text", "l": [1, 2]});
        let selects = |filter: &str| {
            JsonPathFilter::parse("filter", filter)
                .unwrap()
                .matches(&input)
        };
        assert!(selects("$[?(@.a in [1, 5.0])]"), "numbers compare by value");
        assert!(!selects("$[?(@.missing in [1, 5])]"));
        assert!(
            !selects("$[?(@.missing nin [1, 5])]"),
            "a missing value passes nothing"
        );
        assert!(selects("$[?(@.a nin [1, 2])]"));
        // As in Jayway, a comparison with a missing path is false, `!=` too.
        assert!(!selects("$[?(@.missing != 'x')]"));
        assert!(!selects("$[?(@.missing == @.absent)]"));
        assert!(!selects("$[?(@.missing <= @.absent)]"));
        assert!(selects("$[?(@.s != 'x')]"));
        assert!(selects("$[?(!@.missing)]"));
        assert!(
            !selects("$[?(@.a contains 5)]"),
            "a number contains nothing"
        );
        assert!(selects("$[?(@.l contains 2)]"));
        assert!(!selects("$[?(@.s anyof ['text'])]"), "anyof takes an array");
        assert!(selects("$[?(@.s size 4)]"));
    }

    #[test]
    fn sailpoint_style_root_filter_matches_on_value() {
        let f = JsonPathFilter::parse("filter", r#"$[?($.identity.type == "HUMAN")]"#).unwrap();
        assert!(f.matches(&json!({"identity": {"type": "HUMAN"}})));
        assert!(!f.matches(&json!({"identity": {"type": "MACHINE"}})));
    }

    #[test]
    fn child_filter_selects_matching_items() {
        let f = JsonPathFilter::parse("filter", r#"$.changes[?(@.attribute == "department")]"#)
            .unwrap();
        assert!(f.matches(&json!({"changes": [{"attribute": "department"}]})));
        assert!(!f.matches(&json!({"changes": [{"attribute": "title"}]})));
    }

    #[test]
    fn check_reports_each_condition() {
        let input = json!({"a": 1});
        assert_eq!(
            check_filter("$.a", &input).unwrap(),
            FilterCheck {
                is_valid_json_path: true,
                is_path_exist: true
            }
        );
        assert_eq!(
            check_filter("$.b", &input).unwrap(),
            FilterCheck {
                is_valid_json_path: true,
                is_path_exist: false
            }
        );
        assert_eq!(
            check_filter("$[?(", &input).unwrap(),
            FilterCheck {
                is_valid_json_path: false,
                is_path_exist: false
            }
        );
    }

    #[test]
    fn match_is_anchored_and_search_is_not() {
        let input = json!({"user": {"email": "ada@example.com", "id": 7}});
        let selects = |filter: &str| {
            JsonPathFilter::parse("filter", filter)
                .unwrap()
                .matches(&input)
        };
        assert!(selects(r#"$[?match(@.email, '[a-z]+@example\\.com')]"#));
        assert!(!selects(r#"$[?match(@.email, 'example')]"#));
        assert!(selects(r#"$[?search(@.email, 'example')]"#));
        assert!(!selects(r#"$[?search(@.email, '^example')]"#));
        // A non-string argument or an invalid pattern is false, never an error.
        assert!(!selects(r#"$[?search(@.id, '7')]"#));
        assert!(!selects(r#"$[?search(@.email, '(')]"#));
        // `.` stops at line breaks, as I-Regexp says.
        let multi = json!({"n": {"note": "a\nb"}});
        let f = JsonPathFilter::parse("filter", r#"$[?match(@.note, 'a.b')]"#).unwrap();
        assert!(!f.matches(&multi));
        // Calls are type-checked when the filter is parsed.
        assert!(JsonPathFilter::parse("filter", "$[?match(@.a)]").is_err());
    }

    #[test]
    fn bad_expression_names_the_field() {
        let err = JsonPathFilter::parse("filter", "not a path").unwrap_err();
        assert!(err.to_string().starts_with("filter:"), "{err}");
    }

    fn limit_error(text: &str) -> String {
        let err = JsonPathFilter::parse("filter", text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("filter:"), "{err}");
        err
    }

    /// A chain `height` arrays deep, ending in `width` numbers: every number lies under
    /// `height` arrays, the worst case for nested descendant segments.
    fn deep_and_wide(height: usize, width: usize) -> Value {
        let mut v = Value::Array(vec![json!(0); width]);
        for _ in 0..height {
            v = Value::Array(vec![v, json!(1)]);
        }
        v
    }

    #[test]
    fn long_or_deeply_nested_filters_are_refused_before_parsing() {
        let long = format!("$[?@.a == '{}']", "x".repeat(MAX_FILTER_BYTES));
        assert!(limit_error(&long).contains("at most 4096"));
        // A thousand parentheses overflow the parser's stack (an abort, not a panic).
        let parens = format!("$[?{}@.a{}]", "(".repeat(1000), ")".repeat(1000));
        assert!(limit_error(&parens).contains("32 deep"));
        // Twenty nested filters took the parser 4.5 s.
        let filters = format!("$[?@{}]", "[?@".repeat(20) + &"]".repeat(20));
        assert!(limit_error(&filters).contains("filters (`[?…]`) more than 4 deep"));
        // Brackets and quotes inside string literals do not count.
        let quoted = format!(
            "$[?@.a == '{}' || @.b == \"{}\\\"\"]",
            "(".repeat(100),
            "[".repeat(100)
        );
        JsonPathFilter::parse("filter", &quoted).unwrap();
    }

    #[test]
    fn the_worst_filters_within_the_text_limits_parse_quickly_on_a_small_stack() {
        let parens = MAX_FILTER_NESTING - 1;
        let shapes = [
            format!("$[?{}@.a == 1{}]", "(".repeat(parens), ")".repeat(parens)),
            format!("$[?{}@.a{}]", "!(".repeat(parens), ")".repeat(parens)),
            format!("$[?@{}]", "[?@".repeat(3) + &"]".repeat(3)),
            format!(
                "$[?count(@{})>0]",
                "[?count(@".repeat(3) + &")>0]".repeat(3)
            ),
            format!(
                "$[?(@{}{}@.a == 1{}{})]",
                "[?(@".repeat(2) + "[?(",
                "(".repeat(20),
                ")".repeat(20),
                ")]".repeat(3)
            ),
        ];
        for text in shapes {
            let handle = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || {
                    let started = std::time::Instant::now();
                    let parsed = JsonPathFilter::parse("filter", &text);
                    (text, parsed.map(|_| ()), started.elapsed())
                })
                .unwrap();
            let (text, parsed, took) = handle.join().expect("no stack overflow");
            parsed.unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(took < std::time::Duration::from_secs(1), "{text}: {took:?}");
        }
    }

    #[test]
    fn filters_whose_cost_grows_faster_than_the_input_are_refused_at_save() {
        for hostile in ["$..*..*..*", "$..[?$..x]", "$..*[?@..*..*]"] {
            assert!(limit_error(hostile).contains("steps"), "{hostile}");
        }
        for fine in [
            "$..*",
            "$..a..b",
            "$..[?@.type == 'x']",
            r#"$[?($.identity.type == "HUMAN")]"#,
            "$.changes[?search(@.attribute, '^dep')]",
        ] {
            JsonPathFilter::parse("filter", fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
    }

    #[test]
    fn a_filter_over_budget_for_its_input_does_not_match_and_is_not_evaluated() {
        // Accepted at save (its cost grows as nodes × height), but on this input serde_json_path
        // builds a 10-million-entry nodelist (80 MB): about 2 s in a test build (0.9 s measured at
        // half this width).
        let f = JsonPathFilter::parse("filter", "$..*..*").unwrap();
        let input = deep_and_wide(100, 100_000);
        let started = std::time::Instant::now();
        assert!(matches!(f.evaluate(&input), Outcome::OverBudget(_)));
        assert!(!f.matches(&input));
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        // The same filter on an ordinary input runs.
        assert!(f.matches(&json!({"a": {"b": 1}})));
    }

    #[test]
    fn regexes_are_held_to_their_limits_at_save_and_their_budget_at_run_time() {
        let long = format!("$[?match(@.a, '{}')]", "a".repeat(600));
        assert!(limit_error(&long).contains("at most 512"));
        assert!(limit_error("$[?search(@.a, '(?:a{100}){100}')]").contains("compiles to more"));
        // A pattern from the input is not checked at save; too big, it is false at run time.
        let f = JsonPathFilter::parse("filter", "$[?search(@.a, @.p)]").unwrap();
        assert!(!f.matches(&json!({"x": {"a": "aaa", "p": "(?:a{100}){100}"}})));
        assert!(f.matches(&json!({"x": {"a": "aaa", "p": "a+"}})));
        // A slow pattern over long texts runs out of regex budget: no match, quickly.
        let f = JsonPathFilter::parse("filter", "$..[?search(@, '(?:a*){20}b')]").unwrap();
        let input = json!({"a": "a".repeat(100_000), "b": "a".repeat(100_000)});
        let started = std::time::Instant::now();
        assert!(matches!(f.evaluate(&input), Outcome::OverBudget(r) if r.contains("regex")));
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn a_stored_filter_over_the_limits_is_read_but_matches_nothing() {
        let parens = format!("$[?{}@.a{}]", "(".repeat(40), ")".repeat(40));
        let stored: JsonPathFilter = serde_json::from_value(json!(parens)).unwrap();
        assert_eq!(stored.as_str(), parens);
        assert!(!stored.matches(&json!({"x": {"a": 1}})));
        let fine: JsonPathFilter = serde_json::from_value(json!("$.a")).unwrap();
        assert!(fine.matches(&json!({"a": 1})));
    }

    #[test]
    fn validate_filter_answers_bad_syntax_but_refuses_what_is_over_a_limit() {
        let input = json!({"a": 1});
        assert!(!check_filter("$[?(", &input).unwrap().is_valid_json_path);
        for over in [
            "$..*..*..*",
            &format!("$[?{}@{}]", "(".repeat(40), ")".repeat(40)),
        ] {
            let err = check_filter(over, &input).unwrap_err().to_string();
            assert!(err.starts_with("filter:"), "{err}");
        }
        let err = check_filter("$..*..*", &deep_and_wide(100, 20_000))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("filter:") && err.contains("this input"),
            "{err}"
        );
    }

    #[test]
    fn an_over_budget_filter_is_logged_once() {
        let text = "$..*..*  (logged once)";
        assert!(warn_once(text, "over"));
        assert!(!warn_once(text, "over"));
    }
}
