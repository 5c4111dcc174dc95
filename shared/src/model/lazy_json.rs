//! A JSON value that a store can hand back as the text it read, parsed only if someone looks.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::de::{self, MapAccess, SeqAccess, Visitor};
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
    /// [`RawValue`] checked that it is JSON, but not all that parsing it into a [`Value`]
    /// checks: how deeply it nests, that every number fits an `f64`, that every `\u` escape is
    /// a character. serde_json's own parser checks that here, in one pass that builds nothing,
    /// so that the parse later cannot fail.
    ///
    /// Errors: [`Unparsable`] when it would not parse (only a damaged row can: what is stored
    /// was parsed once).
    pub fn from_text(text: Box<RawValue>) -> Result<Self, Unparsable> {
        serde_json::from_str::<Parses>(text.get()).map_err(Unparsable)?;
        Ok(LazyJson(Arc::new(Inner {
            text: Some(text),
            value: OnceLock::new(),
        })))
    }

    /// JSON text as a store read it, without [`LazyJson::from_text`]'s check: for a reader
    /// that hands the invocation only to code that never looks at this value (a callback judges
    /// the secret, the state and the due times, and writes the outcome). The check is a full
    /// parse of the text, about 5 % of a callback's instructions, for a guarantee such a reader
    /// never uses. Should the text not parse when looked at after all (only a damaged
    /// row can fail to), the value reads as `null` and the log says so; every reader that
    /// answers with the input or sends it uses [`LazyJson::from_text`].
    pub fn from_text_unchecked(text: Box<RawValue>) -> Self {
        LazyJson(Arc::new(Inner {
            text: Some(text),
            value: OnceLock::new(),
        }))
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

/// JSON text that would not parse into a [`Value`].
#[derive(Debug, thiserror::Error)]
#[error("JSON that does not parse as a value: {0}")]
pub struct Unparsable(#[source] pub serde_json::Error);

/// Text that parses into a [`Value`]: deserialized as `Value` is (`deserialize_any`, with its
/// limits and checks), keeping nothing. Unlike `serde::de::IgnoredAny`, which serde_json skips
/// over as a [`RawValue`] is, without those checks.
struct Parses;

impl<'de> Deserialize<'de> for Parses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Parses)
    }
}

impl<'de> Visitor<'de> for Parses {
    type Value = Parses;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Parses, A::Error> {
        while items.next_element::<Parses>()?.is_some() {}
        Ok(Parses)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Parses, A::Error> {
        while entries.next_entry::<Parses, Parses>()?.is_some() {}
        Ok(Parses)
    }
}

/// Text that [`LazyJson::from_text`] took parses; text taken unchecked that does not reads as
/// `null`.
fn parse(text: Option<&RawValue>) -> Value {
    let text = text.map_or("null", RawValue::get);
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored JSON read without its check does not parse; read as null");
        Value::Null
    })
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
        LazyJson::from_text(raw(json)).expect("parses")
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    /// Each is JSON to a [`RawValue`] and not to a [`Value`]; the check refuses them all, so
    /// the parse on deref never meets one.
    #[test]
    fn text_is_taken_exactly_when_it_parses_into_a_value() {
        let deepest = nested(127);
        let unparsable = [
            nested(128),
            format!(r#"{{"a": {deepest}}}"#),
            "1e400".to_owned(),
            r#"{"n": [-1e309]}"#.to_owned(),
            r#""\ud800""#.to_owned(),
            r#"{"\udc00": 1}"#.to_owned(),
        ];
        for json in &unparsable {
            assert!(serde_json::from_str::<Value>(json).is_err(), "{json}");
            let refused = LazyJson::from_text(raw(json)).err();
            assert!(refused.is_some(), "{json} taken");
        }
        for json in [
            deepest.as_str(),
            "1e308",
            "18446744073709551616",
            r#""\ud83d\ude00""#,
            r#"{"s": "[[[{{{", "t": ["]]]"]}"#,
        ] {
            assert_eq!(
                *text(json),
                serde_json::from_str::<Value>(json).expect("parses"),
                "{json}"
            );
        }
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
    fn unchecked_text_reads_as_its_value_or_as_null_when_it_would_not_parse() {
        let read = LazyJson::from_text_unchecked(raw(r#"{"a": [1]}"#));
        assert_eq!(*read, json!({"a": [1]}));
        let damaged = LazyJson::from_text_unchecked(raw("1e400"));
        assert_eq!(*damaged, Value::Null);
        assert_eq!(damaged.into_value(), Value::Null);
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
