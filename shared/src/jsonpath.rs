//! Subscription filters: RFC 9535 JSONPath expressions over the trigger input. An invocation goes
//! to a subscription only when its filter selects at least one node.
//!
//! The RFC's `match()` and `search()` functions are defined here on `regex-lite` rather than by
//! `serde_json_path`'s `regex` feature, whose engine and Unicode tables made up 0.7 MB of each
//! Lambda function that reads filters. The one thing I-Regexp (RFC 9485) has that `regex-lite`
//! lacks is Unicode property classes (`\p{L}`): a pattern using them does not compile, and the
//! function is false, as for any other invalid pattern.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json_path::JsonPath;
use serde_json_path::functions::{LogicalType, ValueType};

use crate::Error;

/// A parsed filter that remembers the caller's spelling.
#[derive(Debug, Clone)]
pub struct JsonPathFilter {
    text: String,
    path: JsonPath,
}

impl JsonPathFilter {
    /// Parses `text`; `field` names the request field in the error.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        let path = JsonPath::parse(text).map_err(|e| {
            Error::invalid(
                field,
                format!("`{text}` is not a valid JSONPath expression: {e}"),
            )
        })?;
        Ok(JsonPathFilter {
            text: text.to_owned(),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the expression selects at least one node of `input`.
    pub fn matches(&self, input: &Value) -> bool {
        !self.path.query(input).is_empty()
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
        let text = String::deserialize(d)?;
        JsonPathFilter::parse("filter", &text).map_err(serde::de::Error::custom)
    }
}

/// RFC 9535 §2.4.6: does the whole string match the I-Regexp?
#[serde_json_path::function(name = "match")]
fn match_whole(value: ValueType, pattern: ValueType) -> LogicalType {
    regex_test(&value, &pattern, |p| format!("^(?:{p})$"))
}

/// RFC 9535 §2.4.7: does some substring match the I-Regexp?
#[serde_json_path::function]
fn search(value: ValueType, pattern: ValueType) -> LogicalType {
    regex_test(&value, &pattern, |p| format!("(?:{p})"))
}

/// True when both arguments are strings and the pattern, put in `shape`, compiles and matches.
/// Anything else (a non-string argument, an invalid pattern) is false, as the RFC says.
fn regex_test(
    value: &ValueType,
    pattern: &ValueType,
    shape: impl FnOnce(&str) -> String,
) -> LogicalType {
    let (Some(Value::String(text)), Some(Value::String(pattern))) =
        (value.as_value(), pattern.as_value())
    else {
        return LogicalType::False;
    };
    // CRLF mode: I-Regexp's `.` matches any character but `\n` and `\r`.
    regex_lite::Regex::new(&format!("(?R){}", shape(pattern)))
        .is_ok_and(|re| re.is_match(text))
        .into()
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

/// Checks `filter` against a sample `input` without failing on a bad expression: a bad
/// expression is an answer here, not an error.
pub fn check_filter(filter: &str, input: &Value) -> FilterCheck {
    match JsonPathFilter::parse("filter", filter) {
        Ok(f) => FilterCheck {
            is_valid_json_path: true,
            is_path_exist: f.matches(input),
        },
        Err(_) => FilterCheck {
            is_valid_json_path: false,
            is_path_exist: false,
        },
    }
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
            check_filter("$.a", &input),
            FilterCheck {
                is_valid_json_path: true,
                is_path_exist: true
            }
        );
        assert_eq!(
            check_filter("$.b", &input),
            FilterCheck {
                is_valid_json_path: true,
                is_path_exist: false
            }
        );
        assert_eq!(
            check_filter("$[?(", &input),
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
}
