//! SailPoint's filters are Jayway JSONPath; the evaluator underneath is RFC 9535
//! (`serde_json_path`). This module reads a filter as Jayway reads it and writes the RFC 9535
//! query that selects something exactly when Jayway's would, so that a filter written against
//! SailPoint's documentation (`filtering-events.md`) means the same here.
//!
//! Two things differ, and both are translated:
//! - **A filter on an object tests the object itself.** Jayway's `$.identity[?(@.type ==
//!   "IDENTITY")]` selects `identity` when its `type` is `IDENTITY`; RFC 9535 would test each of
//!   `identity`'s members instead. For a filter whose path before it names one node (member
//!   names and indexes only), the translation tests both readings, each guarded by the node's
//!   type (`jw_is_array`, `jw_is_object`): an array's elements are tested one by one, as both
//!   standards do, an object is tested itself. A filter after a wildcard, slice, descendant or
//!   another filter keeps RFC 9535's reading.
//! - **Jayway's operators**: `=~ /regex/flags` (the whole string, as Java's `matches()`), `in`,
//!   `nin`, `subsetof`, `anyof`, `noneof` (each with a list literal such as `['a','b']`), `size`,
//!   `empty`, `contains`, and the `.length()` suffix. Each becomes a function call
//!   (`match()`, `length()`, or one of the `jw_*` functions in `super`).
//!
//! A filter written in RFC 9535's own syntax, which Jayway lacks (a filter without parentheses,
//! `[?@.a]`, or a function call such as `match()`, `search()`, `count()`, `value()`), is not read
//! here: it is handed to the RFC 9535 parser as written and means what it meant before (so do
//! texts this reader does not understand; the parser then decides). Member names are written
//! in bracket notation, so Jayway names that RFC 9535's dot notation refuses (`$.first-name`)
//! work too.

use serde_json::Value;

/// The RFC 9535 text of a Jayway filter, or `None` when the text is not one this reader
/// understands (the caller then parses it as RFC 9535 as it is).
pub(crate) fn to_rfc9535(text: &str) -> Option<Result<String, String>> {
    let mut reader = Reader {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let query = reader.query()?;
    reader.ws();
    if reader.i != reader.s.len() || query.current {
        return None;
    }
    Some(top(&query))
}

/// Deeper than any filter the text limits let through; a reader that gets here gives up.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone)]
struct Query {
    /// `@` rather than `$`.
    current: bool,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
struct Segment {
    descendant: bool,
    selector: Selector,
}

#[derive(Debug, Clone)]
enum Selector {
    /// A member name, as its value (written back as `['…']`).
    Name(String),
    Wildcard,
    /// A bracketed selection other than a filter (`[0]`, `['a','b']`, `[1:3]`), written back as
    /// it came; `singular` when it names one node.
    Raw {
        text: String,
        singular: bool,
    },
    Filter(Box<Expr>),
    /// Jayway's `.length()` at the end of a path.
    Length,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Paren(Box<Expr>),
    /// An operand on its own: a query is an existence test.
    Operand(Operand),
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Compare(Operand, &'static str, Operand),
    /// `=~ /pattern/flags`: the pattern already carries its flags (`(?i)…`).
    Regex(Operand, String),
    /// `in`, `nin`, `subsetof`, `anyof`, `noneof`: the list as JSON text.
    List(Operand, &'static str, String),
    /// `size`, `empty`, `contains`: the `jw_` function and its second argument.
    Call(Operand, &'static str, Operand),
}

#[derive(Debug, Clone)]
enum Operand {
    Query(Query),
    /// A literal as written (strings keep their quotes).
    Literal(String),
}

// ---- writing RFC 9535 ----
//
// The query runs on the input inside a one-element array ([`super::FilterInput`]): a filter on
// that array has exactly one candidate, the input, so a condition about the input (or a node
// named from it) is a filter there, `$[?…]`, evaluated once. In that top filter the input is
// `@`; in filters inside it (`[?…]` of a path) the input is `$[0]`; a query without a top
// filter starts at `$[0]`.

/// Where a query is written: what the filter's own `$` becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The whole filter, when it needs no top filter.
    Outer,
    /// Inside the top filter, whose one candidate is the input.
    Top,
    /// Inside a filter of a path.
    Nested,
}

/// The query for the whole filter: a top filter when some filter follows a path that names
/// one node, else the path from the input.
fn top(query: &Query) -> Result<String, String> {
    if matches!(
        query.segments.last(),
        Some(Segment {
            selector: Selector::Length,
            ..
        })
    ) {
        return Err("`.length()` can only be compared in a filter, e.g. \
             `$[?(@.changes.length() >= 3)]`"
            .to_owned());
    }
    Ok(match first_filter(&query.segments) {
        Some(_) => format!("$[?{}]", condition(false, &query.segments, Ctx::Top)),
        None => query_text(query, Ctx::Outer),
    })
}

/// The first filter segment whose path before it names one node (member names and single
/// indexes, no descendant segment).
fn first_filter(segments: &[Segment]) -> Option<usize> {
    for (k, segment) in segments.iter().enumerate() {
        if segment.descendant {
            return None;
        }
        match &segment.selector {
            Selector::Filter(_) => return Some(k),
            Selector::Name(_) | Selector::Raw { singular: true, .. } => {}
            _ => return None,
        }
    }
    None
}

/// Whether the path `segments`, read from `base` as Jayway reads it, selects something: a
/// condition for a filter. `base` is the input in the top filter (`current` false, [`Ctx::Top`])
/// or the candidate of a filter (`current` true, [`Ctx::Nested`]). At the first filter on a
/// named node: the node is an array with an element that passes it (and the rest of the path,
/// read the same way from that element), or an object that passes it itself (and the rest of
/// the path from it). Without such a filter, the path's existence.
fn condition(current: bool, segments: &[Segment], ctx: Ctx) -> String {
    let path = |segments: &[Segment]| Query {
        current,
        segments: segments.to_vec(),
    };
    let Some(k) = first_filter(segments) else {
        return query_text(&path(segments), ctx);
    };
    let Selector::Filter(expr) = &segments[k].selector else {
        return query_text(&path(segments), ctx);
    };
    let (prefix, rest) = (&segments[..k], &segments[k + 1..]);
    let node = query_text(&path(prefix), ctx);
    let test = expr_text(expr, Ctx::Nested);
    let array = if rest.is_empty() {
        format!("{node}[?{test}]")
    } else {
        format!(
            "{node}[?({test}) && ({})]",
            condition(true, rest, Ctx::Nested)
        )
    };
    let itself = expr_text(&at(expr, prefix, current), ctx);
    let then = if rest.is_empty() {
        String::new()
    } else {
        let mut continued = prefix.to_vec();
        continued.extend(rest.iter().cloned());
        format!(" && ({})", condition(current, &continued, ctx))
    };
    format!("(jw_is_array({node}) && {array}) || (jw_is_object({node}) && ({itself}){then})")
}

/// `expr` with its own `@` (not that of filters inside it) read as the node at `prefix` from
/// the base (`current`: the candidate `@`, else the input `$`).
fn at(expr: &Expr, prefix: &[Segment], current: bool) -> Expr {
    let operand = |o: &Operand| match o {
        Operand::Query(q) if q.current => {
            let mut segments = prefix.to_vec();
            segments.extend(q.segments.iter().cloned());
            Operand::Query(Query { current, segments })
        }
        other => other.clone(),
    };
    let at = |e: &Expr| at(e, prefix, current);
    match expr {
        Expr::Or(parts) => Expr::Or(parts.iter().map(at).collect()),
        Expr::And(parts) => Expr::And(parts.iter().map(at).collect()),
        Expr::Not(e) => Expr::Not(Box::new(at(e))),
        Expr::Paren(e) => Expr::Paren(Box::new(at(e))),
        Expr::Operand(o) => Expr::Operand(operand(o)),
        Expr::Compare(a, op, b) => Expr::Compare(operand(a), op, operand(b)),
        Expr::Regex(a, p) => Expr::Regex(operand(a), p.clone()),
        Expr::List(a, f, l) => Expr::List(operand(a), f, l.clone()),
        Expr::Call(a, f, b) => Expr::Call(operand(a), f, operand(b)),
    }
}

fn query_text(query: &Query, ctx: Ctx) -> String {
    let root = match (query.current, ctx) {
        (true, _) => "@",
        (false, Ctx::Top) => "@",
        (false, Ctx::Outer | Ctx::Nested) => "$[0]",
    };
    format!("{root}{}", segments_text(&query.segments))
}

/// Segments as written after a root; their filters are [`Ctx::Nested`].
fn segments_text(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        if segment.descendant {
            out.push_str("..");
        }
        match &segment.selector {
            Selector::Name(name) => {
                out.push('[');
                out.push_str(&string_literal(name));
                out.push(']');
            }
            Selector::Wildcard => out.push_str("[*]"),
            Selector::Raw { text, .. } => {
                out.push('[');
                out.push_str(text);
                out.push(']');
            }
            Selector::Filter(expr) => {
                out.push_str("[?");
                out.push_str(&expr_text(expr, Ctx::Nested));
                out.push(']');
            }
            // Only ever last, and written by `operand_text` as `length(…)`.
            Selector::Length => {}
        }
    }
    out
}

fn operand_text(operand: &Operand, ctx: Ctx) -> String {
    match operand {
        Operand::Query(q) => match q.segments.last() {
            Some(Segment {
                selector: Selector::Length,
                ..
            }) => {
                let inner = Query {
                    current: q.current,
                    segments: q.segments[..q.segments.len() - 1].to_vec(),
                };
                format!("length({})", query_text(&inner, ctx))
            }
            _ => query_text(q, ctx),
        },
        Operand::Literal(text) => text.clone(),
    }
}

fn expr_text(expr: &Expr, ctx: Ctx) -> String {
    let join = |parts: &[Expr], sep: &str| {
        parts
            .iter()
            .map(|p| expr_text(p, ctx))
            .collect::<Vec<_>>()
            .join(sep)
    };
    match expr {
        Expr::Or(parts) => join(parts, " || "),
        Expr::And(parts) => join(parts, " && "),
        Expr::Not(e) => format!("!{}", expr_text(e, ctx)),
        Expr::Paren(e) => format!("({})", expr_text(e, ctx)),
        Expr::Operand(o) => operand_text(o, ctx),
        // Jayway's comparison with a path that selects nothing is false, whatever the operator
        // (the missing path throws, and the filter refuses the candidate); in RFC 9535 `!=` is
        // then true, and so are `==`, `<=` and `>=` between two missing paths. There, each path
        // compared must exist first (elsewhere RFC 9535 is already false, and a guard would
        // only add work).
        Expr::Compare(a, op, b) => {
            let compared = format!("{} {op} {}", operand_text(a, ctx), operand_text(b, ctx));
            let both_paths = matches!((a, b), (Operand::Query(_), Operand::Query(_)));
            let guarded = *op == "!=" || (both_paths && matches!(*op, "==" | "<=" | ">="));
            let exist: Vec<String> = [a, b]
                .into_iter()
                .filter_map(|o| existence_text(o, ctx))
                .collect();
            if !guarded || exist.is_empty() {
                compared
            } else {
                format!("({} && {compared})", exist.join(" && "))
            }
        }
        Expr::Regex(a, pattern) => {
            format!(
                "match({}, {})",
                operand_text(a, ctx),
                string_literal(pattern)
            )
        }
        Expr::List(a, function, list) => {
            format!(
                "{function}({}, {})",
                operand_text(a, ctx),
                string_literal(list)
            )
        }
        Expr::Call(a, function, b) => {
            format!(
                "{function}({}, {})",
                operand_text(a, ctx),
                operand_text(b, ctx)
            )
        }
    }
}

/// The existence test of an operand that is a path (less a `.length()` suffix); none for a
/// literal.
fn existence_text(operand: &Operand, ctx: Ctx) -> Option<String> {
    let Operand::Query(q) = operand else {
        return None;
    };
    let segments = match q.segments.last() {
        Some(Segment {
            selector: Selector::Length,
            ..
        }) => &q.segments[..q.segments.len() - 1],
        _ => &q.segments[..],
    };
    Some(query_text(
        &Query {
            current: q.current,
            segments: segments.to_vec(),
        },
        ctx,
    ))
}

/// `value` as an RFC 9535 single-quoted string literal.
fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

// ---- reading Jayway ----

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self
            .s
            .get(self.i..)
            .is_some_and(|rest| rest.starts_with(token.as_bytes()))
        {
            self.i += token.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn text(&self, from: usize) -> Option<String> {
        std::str::from_utf8(self.s.get(from..self.i)?)
            .ok()
            .map(str::to_owned)
    }

    fn query(&mut self) -> Option<Query> {
        self.enter()?;
        let current = match self.peek()? {
            b'$' => false,
            b'@' => true,
            _ => return None,
        };
        self.i += 1;
        let mut segments = Vec::new();
        loop {
            let descendant = self.eat("..");
            if !descendant && self.peek() == Some(b'.') {
                self.i += 1;
                if self.eat("length()") {
                    segments.push(Segment {
                        descendant,
                        selector: Selector::Length,
                    });
                    // Nothing may follow it.
                    break;
                }
                segments.push(Segment {
                    descendant,
                    selector: self.member()?,
                });
            } else if self.peek() == Some(b'[') {
                segments.push(Segment {
                    descendant,
                    selector: self.bracket()?,
                });
            } else if descendant {
                segments.push(Segment {
                    descendant,
                    selector: self.member()?,
                });
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(Query { current, segments })
    }

    /// What follows `.` or `..`: `*`, or a member name.
    fn member(&mut self) -> Option<Selector> {
        if self.eat("*") {
            return Some(Selector::Wildcard);
        }
        Some(Selector::Name(self.name()?))
    }

    /// A member name after `.`: up to the next character that ends a path.
    fn name(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() || b"[].()=!<>&|,'\"".contains(&b) {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| self.text(start)).flatten()
    }

    fn bracket(&mut self) -> Option<Selector> {
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b'?') {
            self.i += 1;
            self.ws();
            // Jayway writes a filter in parentheses; `[?@.a]` is RFC 9535's own form.
            if self.peek() != Some(b'(') {
                return None;
            }
            let expr = self.or()?;
            self.ws();
            if !self.eat("]") {
                return None;
            }
            return Some(Selector::Filter(Box::new(expr)));
        }
        if self.peek() == Some(b'*') {
            let save = self.i;
            self.i += 1;
            self.ws();
            if self.eat("]") {
                return Some(Selector::Wildcard);
            }
            self.i = save;
        }
        // Anything else is copied through: names, indexes, unions, slices.
        let start = self.i;
        let mut strings = 0;
        let mut commas_or_colons = 0;
        loop {
            match self.peek()? {
                b']' => break,
                b'\'' | b'"' => {
                    self.string()?;
                    strings += 1;
                }
                b'[' | b'(' | b'?' | b'$' | b'@' => return None,
                b',' | b':' | b'*' => {
                    commas_or_colons += 1;
                    self.i += 1;
                }
                _ => self.i += 1,
            }
        }
        let text = self.text(start)?.trim().to_owned();
        self.i += 1; // ']'
        if text.is_empty() {
            return None;
        }
        let number = text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        let singular = commas_or_colons == 0 && (strings == 1 || (strings == 0 && number));
        Some(Selector::Raw { text, singular })
    }

    /// A string literal (either quote); returns its text as written.
    fn string(&mut self) -> Option<String> {
        let start = self.i;
        let quote = self.peek()?;
        self.i += 1;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b if b == quote => {
                    self.i += 1;
                    break;
                }
                _ => self.i += 1,
            }
        }
        if self.i > self.s.len() {
            return None;
        }
        self.text(start)
    }

    fn or(&mut self) -> Option<Expr> {
        self.enter()?;
        let expr = self.joined("||", Self::and, Expr::Or);
        self.depth -= 1;
        expr
    }

    fn and(&mut self) -> Option<Expr> {
        self.joined("&&", Self::unary, Expr::And)
    }

    /// One or more `part`s joined by `op`: the part alone, or `all` of them.
    fn joined(
        &mut self,
        op: &str,
        part: fn(&mut Self) -> Option<Expr>,
        all: fn(Vec<Expr>) -> Expr,
    ) -> Option<Expr> {
        let mut parts = vec![part(self)?];
        loop {
            self.ws();
            if !self.eat(op) {
                break;
            }
            self.ws();
            parts.push(part(self)?);
        }
        Some(if parts.len() == 1 {
            parts.pop()?
        } else {
            all(parts)
        })
    }

    fn unary(&mut self) -> Option<Expr> {
        self.enter()?;
        self.ws();
        let expr = if self.peek() == Some(b'!') && self.s.get(self.i + 1) != Some(&b'=') {
            self.i += 1;
            self.ws();
            Expr::Not(Box::new(self.unary()?))
        } else if self.peek() == Some(b'(') {
            self.i += 1;
            let inner = self.or()?;
            self.ws();
            if !self.eat(")") {
                return None;
            }
            Expr::Paren(Box::new(inner))
        } else {
            self.comparison()?
        };
        self.depth -= 1;
        Some(expr)
    }

    fn comparison(&mut self) -> Option<Expr> {
        let left = self.operand()?;
        self.ws();
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                self.ws();
                return Some(Expr::Compare(left, op, self.operand()?));
            }
        }
        if self.eat("=~") {
            self.ws();
            return Some(Expr::Regex(left, self.regex()?));
        }
        let save = self.i;
        let word = self.word();
        let list = |f: &'static str| Some(f);
        let function = match word.as_deref() {
            Some("in") => list("jw_in"),
            Some("nin") => list("jw_nin"),
            Some("subsetof") => list("jw_subsetof"),
            Some("anyof") => list("jw_anyof"),
            Some("noneof") => list("jw_noneof"),
            _ => None,
        };
        if let Some(function) = function {
            self.ws();
            return Some(Expr::List(left, function, self.list()?));
        }
        let call = match word.as_deref() {
            Some("size") => Some("jw_size"),
            Some("empty") => Some("jw_empty"),
            Some("contains") => Some("jw_contains"),
            _ => None,
        };
        if let Some(function) = call {
            self.ws();
            return Some(Expr::Call(left, function, self.operand()?));
        }
        self.i = save;
        Some(Expr::Operand(left))
    }

    /// A lower-case word (an operator name), or nothing.
    fn word(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_lowercase()) {
            self.i += 1;
        }
        (self.i > start).then(|| self.text(start)).flatten()
    }

    fn operand(&mut self) -> Option<Operand> {
        self.ws();
        match self.peek()? {
            b'$' | b'@' => Some(Operand::Query(self.query()?)),
            b'\'' | b'"' => Some(Operand::Literal(self.string()?)),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_digit() || b"-+.eE".contains(&b))
                {
                    self.i += 1;
                }
                Some(Operand::Literal(self.text(start)?))
            }
            // An RFC 9535 function call (`match(…)`) is not Jayway: the reader gives up.
            b'a'..=b'z' => {
                let word = self.word()?;
                matches!(word.as_str(), "true" | "false" | "null").then_some(Operand::Literal(word))
            }
            _ => None,
        }
    }

    /// `/pattern/flags` as a pattern with its flags inline (`(?i)…`).
    fn regex(&mut self) -> Option<String> {
        if !self.eat("/") {
            return None;
        }
        let mut pattern = String::new();
        let start = self.i;
        loop {
            match self.peek()? {
                b'\\' if self.s.get(self.i + 1) == Some(&b'/') => {
                    self.i += 2;
                }
                b'\\' => self.i += 2,
                b'/' => break,
                _ => self.i += 1,
            }
        }
        let raw = std::str::from_utf8(self.s.get(start..self.i)?).ok()?;
        self.i += 1; // '/'
        let flags_start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.i += 1;
        }
        let flags = self.text(flags_start)?;
        if !flags.chars().all(|f| "imsx".contains(f)) {
            return None;
        }
        if !flags.is_empty() {
            pattern.push_str(&format!("(?{flags})"));
        }
        pattern.push_str(&raw.replace("\\/", "/"));
        Some(pattern)
    }

    /// `[literal, …]` as JSON array text.
    fn list(&mut self) -> Option<String> {
        if !self.eat("[") {
            return None;
        }
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.eat("]") {
                break;
            }
            let item = match self.operand()? {
                Operand::Literal(text) => literal_value(&text)?,
                _ => return None,
            };
            items.push(item);
            self.ws();
            if self.eat(",") {
                continue;
            }
            if !self.eat("]") {
                return None;
            }
            break;
        }
        serde_json::to_string(&Value::Array(items)).ok()
    }
}

/// The value of a literal as written in a filter (strings in either quote).
fn literal_value(text: &str) -> Option<Value> {
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        // As a double-quoted JSON string: `\'` is a quote, a bare `"` needs escaping.
        let mut json = String::from("\"");
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    '\'' => json.push('\''),
                    other => {
                        json.push('\\');
                        json.push(other);
                    }
                },
                '"' => json.push_str("\\\""),
                c => json.push(c),
            }
        }
        json.push('"');
        return serde_json::from_str(&json).ok();
    }
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(text: &str) -> String {
        to_rfc9535(text).unwrap().unwrap()
    }

    #[test]
    fn a_filter_on_the_input_is_one_condition_about_it() {
        assert_eq!(
            rfc("$[?($.identity.name contains \"john\")]"),
            "$[?(jw_is_array(@) && @[?(jw_contains($[0]['identity']['name'], \"john\"))]) || \
             (jw_is_object(@) && ((jw_contains(@['identity']['name'], \"john\"))))]"
        );
    }

    #[test]
    fn operators_become_functions() {
        assert!(
            rfc("$.changes[?(@.newValue in ['sales','engineering'])]")
                .contains(r#"jw_in(@['newValue'], '["sales","engineering"]')"#)
        );
        assert!(
            rfc("$.changes[?(@.newValue =~ /US.*Support/i)]")
                .contains("match(@['newValue'], '(?i)US.*Support')")
        );
        assert!(rfc("$[?($.changes.length() >= 3)]").contains("length(@['changes']) >= 3"));
        assert!(rfc("$[?($.warnings size 1)]").contains("jw_size(@['warnings'], 1)"));
    }

    #[test]
    fn a_filter_on_an_object_tests_the_object() {
        assert_eq!(
            rfc("$.identity[?(@.type == 'IDENTITY')].name"),
            "$[?(jw_is_array(@['identity']) && @['identity'][?((@['type'] == 'IDENTITY')) && \
             (@['name'])]) || (jw_is_object(@['identity']) && ((@['identity']['type'] == \
             'IDENTITY')) && (@['identity']['name']))]"
        );
    }

    /// Cut anywhere, or with an escape at its very end, a filter gives an answer, not a panic.
    #[test]
    fn any_prefix_of_a_filter_is_read_without_panicking() {
        let filters = [
            r#"$.changes[?(@.attribute == "department" && @.newValue =~ /US.*Sup\/port/i)]"#,
            "$.changes[?(@.newValue in ['sa\\'les','engineering'])].x[0,1]",
            r#"$[?($.identity.name contains "jo\"hn" || !@.a)]"#,
            "$['a\\']..b[?(@.c size 2)]",
        ];
        for filter in filters {
            for end in 0..=filter.len() {
                if filter.is_char_boundary(end) {
                    let _ = to_rfc9535(&filter[..end]);
                }
            }
        }
    }

    #[test]
    fn a_comparison_rfc_9535_would_pass_on_a_missing_path_first_asks_that_it_exists() {
        assert!(rfc("$.a[?(@.b != 'x')]").contains("(@['b'] && @['b'] != 'x')"));
        assert!(
            rfc("$.a[?(@.b == 'x')]").contains("?(@['b'] == 'x')"),
            "false anyway"
        );
        assert!(rfc("$.a[?(@.b <= @.c)]").contains("(@['b'] && @['c'] && @['b'] <= @['c'])"));
        assert!(
            rfc("$.a[?(@.b < @.c)]").contains("?(@['b'] < @['c'])"),
            "false anyway"
        );
    }

    #[test]
    fn paths_without_a_filter_on_a_named_node_start_at_the_input() {
        assert_eq!(
            rfc("$.changes[0].attribute"),
            "$[0]['changes'][0]['attribute']"
        );
        assert_eq!(rfc("$..id"), "$[0]..['id']");
        assert_eq!(
            rfc("$.changes[*][?(@.a == $.b)]"),
            "$[0]['changes'][*][?((@['a'] && $[0]['b'] && @['a'] == $[0]['b']))]"
        );
        assert!(
            to_rfc9535("$[?match(@.a, 'x.*')]").is_none(),
            "RFC 9535's own"
        );
        assert!(to_rfc9535("$[?@.a]").is_none(), "RFC 9535's own");
        assert!(to_rfc9535("not a path").is_none());
        assert!(to_rfc9535("$.a[?(@.b ==").is_none());
        assert!(to_rfc9535("$.a.length()").unwrap().is_err());
    }
}
