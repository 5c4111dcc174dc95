//! Subscription filters: RFC 9535 JSONPath expressions over the trigger input. An invocation goes
//! to a subscription only when its filter selects at least one node.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json_path::JsonPath;

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
    fn bad_expression_names_the_field() {
        let err = JsonPathFilter::parse("filter", "not a path").unwrap_err();
        assert!(err.to_string().starts_with("filter:"), "{err}");
    }
}
