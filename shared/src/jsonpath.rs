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
        let (path, shape, patterns) = compile(text)?;
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
            },
        })
    }

    /// Reads a stored filter. It passed [`JsonPathFilter::parse`] when it was saved; one that
    /// no longer passes the text limits (saved before they existed) is kept, but never runs.
    fn from_stored(text: String) -> Self {
        let compiled = match compile(&text) {
            Ok((path, shape, _)) => Compiled::Ready {
                path,
                shape: Arc::new(shape),
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
        self.matches_sized(input, cost::Size::of(input))
    }

    /// As [`JsonPathFilter::matches`], with `size` measured once by [`cost::Size::of`] on this
    /// same `input`.
    pub fn matches_sized(&self, input: &Value, size: cost::Size) -> bool {
        match self.evaluate_sized(input, size) {
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
        self.evaluate_sized(input, cost::Size::of(input))
    }

    /// As [`JsonPathFilter::evaluate`], with `size` already measured by [`cost::Size::of`] on
    /// this same `input` (a fan-out measures its input once for all its subscriptions' filters;
    /// the walk is linear in the input).
    pub fn evaluate_sized(&self, input: &Value, size: cost::Size) -> Outcome {
        let (path, shape) = match &self.compiled {
            Compiled::Ready { path, shape } => (path, shape),
            Compiled::Refused(reason) => return Outcome::OverBudget(reason.clone()),
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

/// Whether a cost bound is within [`EVALUATION_BUDGET`]; a NaN bound is not.
fn within_budget(estimate: f64) -> bool {
    estimate
        .partial_cmp(&EVALUATION_BUDGET)
        .is_some_and(|o| o.is_le())
}

/// Checks the text limits, parses, and reads the cost shape (with the literal regex patterns).
fn compile(text: &str) -> Result<(JsonPath, cost::Query, Vec<String>), Rejection> {
    scan_structure(text).map_err(Rejection::Limit)?;
    let path = JsonPath::parse(text).map_err(|e| {
        Rejection::Syntax(format!("`{text}` is not a valid JSONPath expression: {e}"))
    })?;
    let mut patterns = Vec::new();
    let shape = cost::Query::read(text, &mut patterns).ok_or_else(|| {
        Rejection::Limit(format!(
            "`{text}` is JSONPath, but not in a form whose cost Triggerline can bound"
        ))
    })?;
    Ok((path, shape, patterns))
}

/// The limits checked before the text reaches the parser: length, nesting of parentheses and
/// brackets, and nesting of filters (string literals skipped).
fn scan_structure(text: &str) -> Result<(), String> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(format!(
            "is {} bytes long; a filter may be at most {MAX_FILTER_BYTES}",
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
                if open.len() > MAX_FILTER_NESTING {
                    return Err(format!(
                        "nests parentheses and brackets more than {MAX_FILTER_NESTING} deep"
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
                    if filters > MAX_NESTED_FILTERS {
                        return Err(format!(
                            "nests filters (`[?…]`) more than {MAX_NESTED_FILTERS} deep"
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
