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

/// A field as text: strings bare (but [`printable`]), null as `-`, anything else as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => printable(s),
        other => other.to_string(),
    }
}

/// `s` with every character that would act on the terminal rather than show (control
/// characters, line breaks among them, and the bidirectional overrides) written as a Rust
/// escape. What the CLI prints comes partly from others: a subscriber's callback `error`, a
/// subscription's name. Left raw, an escape sequence in one could clear the screen, fake a
/// line or retitle the window.
pub fn printable(s: &str) -> String {
    escape_where(s, |c| c.is_control() || is_bidi_control(c))
}

/// [`printable`], but line breaks stay: for whole lines of output, whose own breaks are the
/// CLI's (values from others within them went through [`text`] or [`printable`]).
pub fn printable_lines(s: &str) -> String {
    escape_where(s, |c| c != '\n' && (c.is_control() || is_bidi_control(c)))
}

fn escape_where(s: &str, escape: impl Fn(char) -> bool) -> String {
    if !s.chars().any(&escape) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if escape(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The characters that reorder the text around them (Unicode's bidirectional embeddings,
/// overrides and isolates), which can make a line read other than it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// The deepest JSON the CLI reads: above what the server takes in a body (serde_json's 128
/// levels) plus the levels an answer wraps around it, so that anything the server accepted
/// can be shown again; below what would overflow a stack.
const MAX_JSON_DEPTH: usize = 1024;

/// Parses JSON text nested up to [`MAX_JSON_DEPTH`] levels. serde_json stops at 128 by
/// default, and an answer that carries an input accepted at 125 levels is deeper than that.
pub fn parse_json(text: &str) -> Result<Value, String> {
    let depth = nesting(text.as_bytes());
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "nested {depth} levels deep; at most {MAX_JSON_DEPTH} are read"
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = serde::Deserialize::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// How deeply arrays and objects nest in JSON text (brackets inside strings do not count).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
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
    fn text_from_others_cannot_act_on_the_terminal() {
        let hostile = "denied\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nFAKE: all good\u{202E}";
        let shown = printable(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert!(shown.starts_with("denied\\u{1b}[2J"), "{shown}");
        assert!(shown.contains("\\u{202e}"), "{shown}");
        assert_eq!(text(&json!(hostile)), shown);
        assert_eq!(printable("plain: ok"), "plain: ok");
        // Whole lines keep their own breaks.
        assert_eq!(printable_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
    }

    #[test]
    fn json_deeper_than_serde_json_reads_by_default_is_read() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(parse_json(&deep).is_ok());
        let quoted = format!("\"{}\"", "[".repeat(5000));
        assert!(
            parse_json(&quoted).is_ok(),
            "brackets in strings do not count"
        );
        let too_deep = "[".repeat(MAX_JSON_DEPTH + 1);
        assert!(parse_json(&too_deep).unwrap_err().contains("levels deep"));
        assert!(parse_json("{} x").is_err());
    }

    #[test]
    fn text_shows_null_as_a_dash_and_strings_bare() {
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&json!("x")), "x");
        assert_eq!(text(&json!(true)), "true");
        assert_eq!(field(&json!({"a": 1}), "b"), "-");
    }
}
