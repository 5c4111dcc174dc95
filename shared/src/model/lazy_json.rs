//! A JSON value that a store can hand back as the text it read, parsed only if someone looks.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// An invocation's input or content: a [`Value`] shared by every holder (a fan-out's
/// invocations, the hand-off, the answer), which derefs to the value.
///
/// Read back from a store it starts as JSON text ([`LazyJson::from_text`]) and is parsed the
/// first time it is dereferenced: most readers of a stored invocation never look at its input
/// (a callback judges the secret, the state and the due times), and parsing it into a tree and
/// freeing the tree again was about a tenth of a callback's CPU.
#[derive(Clone)]
pub struct LazyJson(Arc<Inner>);

struct Inner {
    text: Option<Box<RawValue>>,
    value: OnceLock<Value>,
}

impl LazyJson {
    /// JSON text as a store read it, to be parsed when first looked at. Reading it as a
    /// [`RawValue`] checked that it is JSON, but not how deeply it nests; that is checked here
    /// (one pass, no allocation), so that the parse later cannot fail.
    ///
    /// Errors: [`TooDeep`] when it nests deeper than serde_json parses (only a damaged row can:
    /// what is stored was parsed once).
    pub fn from_text(text: Box<RawValue>) -> Result<Self, TooDeep> {
        let depth = depth(text.get());
        if depth > MAX_DEPTH {
            return Err(TooDeep { depth });
        }
        Ok(LazyJson(Arc::new(Inner {
            text: Some(text),
            value: OnceLock::new(),
        })))
    }

    /// The value, parsed now if it was read as text and nobody looked before.
    pub fn value(&self) -> &Value {
        self.0.value.get_or_init(|| parse(self.0.text.as_deref()))
    }

    /// The value, taken without a copy when this is its last handle.
    pub fn into_value(self) -> Value {
        match Arc::try_unwrap(self.0) {
            Ok(Inner { text, value }) => {
                value.into_inner().unwrap_or_else(|| parse(text.as_deref()))
            }
            Err(shared) => LazyJson(shared).value().clone(),
        }
    }

    /// Whether two handles share one value (a fan-out's invocations do).
    pub fn ptr_eq(a: &LazyJson, b: &LazyJson) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

/// The deepest nesting of arrays and objects that serde_json parses into a [`Value`] (its
/// recursion limit).
pub const MAX_DEPTH: usize = 127;

/// JSON text that nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON nested {depth} levels deep; at most {MAX_DEPTH} can be read")]
pub struct TooDeep {
    pub depth: usize,
}

/// How deeply `json` (valid JSON) nests arrays and objects.
fn depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in json.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Text that [`LazyJson::from_text`] took is valid JSON within [`MAX_DEPTH`], so it parses.
fn parse(text: Option<&RawValue>) -> Value {
    let text = text.map_or("null", RawValue::get);
    serde_json::from_str(text).expect("checked JSON within the depth limit parses")
}

impl From<Value> for LazyJson {
    fn from(value: Value) -> Self {
        LazyJson(Arc::new(Inner {
            text: None,
            value: OnceLock::from(value),
        }))
    }
}

impl Deref for LazyJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl PartialEq for LazyJson {
    fn eq(&self, other: &Self) -> bool {
        LazyJson::ptr_eq(self, other) || self.value() == other.value()
    }
}

impl fmt::Debug for LazyJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.value(), f)
    }
}

/// Written as its value, whatever the format: text read back is not copied through unparsed,
/// since only serde_json understands a [`RawValue`], and a value written is one that was
/// parsed from a request or is written to be read (the answer, the stored row).
impl Serialize for LazyJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LazyJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(LazyJson::from)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("valid JSON")
    }

    fn text(json: &str) -> LazyJson {
        LazyJson::from_text(raw(json)).expect("within the depth limit")
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn text_as_deep_as_serde_json_parses_is_taken_and_deeper_is_refused() {
        assert_eq!(
            *text(&nested(MAX_DEPTH)),
            serde_json::from_str::<Value>(&nested(MAX_DEPTH)).expect("parses")
        );
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH + 1)).is_err());
        assert_eq!(
            LazyJson::from_text(raw(&nested(MAX_DEPTH + 1))).err(),
            Some(TooDeep {
                depth: MAX_DEPTH + 1
            })
        );
        assert_eq!(
            LazyJson::from_text(raw(&format!("{{\"a\": {}}}", nested(MAX_DEPTH)))).err(),
            Some(TooDeep {
                depth: MAX_DEPTH + 1
            })
        );
    }

    #[test]
    fn brackets_inside_strings_do_not_nest() {
        let brackets = format!(
            r#"{{"s": "{}\"{}", "t": ["]]]"]}}"#,
            "[".repeat(300),
            "{".repeat(300)
        );
        let read = text(&brackets);
        assert_eq!(read["t"][0], "]]]");
        assert_eq!(depth(&brackets), 2);
    }

    #[test]
    fn text_derefs_to_the_value_it_spells() {
        let read = text(r#"{"b": [1, 2], "a": "x"}"#);
        assert_eq!(*read, json!({"a": "x", "b": [1, 2]}));
        assert_eq!(read["b"][1], 2);
    }

    #[test]
    fn equal_values_are_equal_whatever_their_text() {
        assert_eq!(
            text(r#"{"a":1,"b":2}"#),
            LazyJson::from(json!({"b": 2, "a": 1}))
        );
        assert_ne!(text(r#"{"a":1}"#), LazyJson::from(json!({"a": 2})));
    }

    #[test]
    fn it_is_written_and_read_as_its_value() {
        let read = text(r#"{ "a" : [ true ] }"#);
        assert_eq!(
            serde_json::to_string(&read).expect("serializes"),
            r#"{"a":[true]}"#
        );
        let back: LazyJson = serde_json::from_str(r#"{"a":[true]}"#).expect("deserializes");
        assert_eq!(back, read);
    }

    #[test]
    fn the_last_handle_gives_its_value_up() {
        assert_eq!(text(r#"[1]"#).into_value(), json!([1]));
        let shared = LazyJson::from(json!({"n": 1}));
        let kept = shared.clone();
        assert_eq!(shared.into_value(), json!({"n": 1}));
        assert_eq!(*kept, json!({"n": 1}));
    }

    #[test]
    fn clones_share_one_value() {
        let one = LazyJson::from(json!({"n": 1}));
        let two = one.clone();
        assert!(LazyJson::ptr_eq(&one, &two));
        assert!(std::ptr::eq(one.value(), two.value()));
    }
}
