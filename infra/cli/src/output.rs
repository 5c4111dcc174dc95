//! Printing: plain tables for people, the API's JSON for scripts.

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

/// A table without borders, headers in capitals, so that `grep` and `awk` work on it.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    // comfy-table pads each line with a leading space and trailing spaces.
    table
        .lines()
        .map(|line| {
            line.trim_end()
                .strip_prefix(' ')
                .unwrap_or(line.trim_end())
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Key: value lines, keys aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A field as text: strings bare, null as `-`, anything else as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn field(value: &Value, key: &str) -> String {
    text(value.get(key).unwrap_or(&Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_have_a_header_and_one_line_per_row_without_borders() {
        let out = table(
            &["id", "name"],
            vec![
                vec!["a".into(), "First".into()],
                vec!["bb".into(), "Second".into()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("ID"), "{out}");
        assert!(lines[0].contains("NAME"));
        assert!(lines[2].starts_with("bb"), "{out}");
        assert!(!out.contains('|') && !out.contains('+'));
    }

    #[test]
    fn text_shows_null_as_a_dash_and_strings_bare() {
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&json!("x")), "x");
        assert_eq!(text(&json!(true)), "true");
        assert_eq!(field(&json!({"a": 1}), "b"), "-");
    }
}
