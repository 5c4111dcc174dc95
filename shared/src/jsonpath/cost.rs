//! A static cost model of JSONPath queries: an upper bound on the work `serde_json_path` does to
//! evaluate a query over an input of a given size, computed before evaluating it.
//!
//! `serde_json_path` has no fuel parameter and keeps its parsed query private, so this module
//! reads the query text again (only text that `serde_json_path` has already accepted, and whose
//! nesting [`super::scan_structure`] has bounded) into the little it needs: segments, selectors,
//! and the queries and function calls inside filters.
//!
//! The bound follows how `serde_json_path_core` evaluates (every nodelist is a `Vec` of
//! references, built segment by segment, never deduplicated). For a nodelist `L` it tracks two
//! upper bounds: `count`, the number of entries, and `mass`, the total size (in nodes) of the
//! subtrees they head. With `N` the input's node count and `H` its height (nodes on the longest
//! root-to-leaf path):
//! - a child segment selects among the children of `L`: at most `mass` of them, themselves of
//!   total mass at most `mass`; a name or index selector picks at most one child per entry;
//! - a descendant segment first visits every node under `L` (`mass` visits); a node lies under
//!   at most `H` entries' subtrees, so what it selects has mass at most `mass × H`, and each
//!   result is copied once per level on the way up (`× H`, at [`COPY_WEIGHT`]);
//! - a filter runs its expression once per candidate: a relative query (`@…`) from all the
//!   candidates together (the bounds are linear, so per-candidate bounds add up), an absolute
//!   query (`$…`) from the root once per candidate, and a comparison of two values at most the
//!   smaller of their masses (deep equality).
//!
//! One unit is one node visited or one candidate tested (about 20-100 ns on a 2-core machine in
//! a release build); byte-level work (string comparison, `length()`) is not counted, and regex
//! work is budgeted separately, as it runs (see `super::regex`).

/// The weight of copying one result reference one level up, relative to visiting a node (a
/// `memcpy` of a pointer inside `Vec::append`, measured at about 1/16 of a node visit).
pub const COPY_WEIGHT: f64 = 1.0 / 16.0;

/// The deepest the analysis recurses; the structure check has already held filters to far less.
const MAX_DEPTH: usize = 128;

/// A query, as far as its cost is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    absolute: bool,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    descendant: bool,
    selectors: Vec<Selector>,
}

#[derive(Debug, Clone, PartialEq)]
enum Selector {
    /// A name or an index: at most one child per node.
    Single,
    /// A wildcard or a slice: every child, at most once each.
    Many,
    /// `?expr`: every child, tested with `expr`.
    Filter(Expr),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal,
    Query(Query),
    /// `&&`, `||`, `!` and parentheses: every part may be evaluated.
    All(Vec<Expr>),
    Compare(Box<Expr>, Box<Expr>),
    Function {
        name: String,
        args: Vec<Expr>,
    },
}

/// The work of one evaluation, and the bounds on the nodelist it yields.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    work: f64,
    count: f64,
    mass: f64,
}

/// The size of an input: `nodes` values in all, `height` on the longest path from the root.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub nodes: f64,
    pub height: f64,
}

impl Size {
    /// Counts `input`'s nodes and height, without recursion (an input's depth is bounded by its
    /// parser, but this walk does not rely on it).
    pub fn of(input: &serde_json::Value) -> Size {
        let mut nodes = 0u64;
        let mut height = 0u64;
        let mut stack = vec![(input, 1u64)];
        while let Some((value, level)) = stack.pop() {
            nodes = nodes.saturating_add(1);
            height = height.max(level);
            let next = level.saturating_add(1);
            match value {
                serde_json::Value::Array(items) => stack.extend(items.iter().map(|v| (v, next))),
                serde_json::Value::Object(map) => stack.extend(map.values().map(|v| (v, next))),
                _ => {}
            }
        }
        // Both are far below 2^53, where f64 stops counting exactly.
        Size {
            nodes: nodes as f64,
            height: height as f64,
        }
    }
}

impl Query {
    /// Reads `text`, a query `serde_json_path` accepted. `None` when the text is outside the
    /// grammar this reader knows (the caller then refuses the filter: no bound, no evaluation).
    /// `patterns` receives every string literal passed as the pattern of `match()` or
    /// `search()`.
    pub fn read(text: &str, patterns: &mut Vec<String>) -> Option<Query> {
        let mut reader = Reader {
            s: text.as_bytes(),
            i: 0,
            depth: 0,
            patterns,
        };
        let query = reader.query()?;
        reader.ws();
        (reader.i == reader.s.len()).then_some(query)
    }

    /// An upper bound on the units of work evaluating this query over an input of `size` takes.
    pub fn cost(&self, size: Size) -> f64 {
        let start = Outcome {
            work: 0.0,
            count: 1.0,
            mass: size.nodes,
        };
        self.from(start, size).work
    }

    /// Evaluates the bounds from a nodelist bounded by `start` (its `work` is ignored).
    fn from(&self, start: Outcome, size: Size) -> Outcome {
        let h = size.height.max(1.0);
        let (mut count, mut mass, mut work) = (start.count, start.mass, 0.0);
        for segment in &self.segments {
            // `nodes`: what the selectors run on; `kids`: the children they choose among.
            let (nodes_count, nodes_mass, kids_count, kids_mass) = if segment.descendant {
                (mass, mass * h, mass, mass * h)
            } else {
                (count, mass, mass, mass)
            };
            work += nodes_count;
            let (mut out_count, mut out_mass) = (0.0, 0.0);
            for selector in &segment.selectors {
                match selector {
                    Selector::Single => {
                        work += nodes_count;
                        out_count += nodes_count.min(kids_count);
                        out_mass += nodes_mass.min(kids_mass);
                    }
                    Selector::Many => {
                        work += kids_count;
                        out_count += kids_count;
                        out_mass += kids_mass;
                    }
                    Selector::Filter(expr) => {
                        let candidates = Outcome {
                            work: 0.0,
                            count: kids_count,
                            mass: kids_mass,
                        };
                        work += kids_count + expr.cost(candidates, size).work;
                        out_count += kids_count;
                        out_mass += kids_mass;
                    }
                }
            }
            let copies = if segment.descendant { h + 1.0 } else { 1.0 };
            work += out_count * copies * COPY_WEIGHT;
            count = out_count;
            mass = out_mass;
        }
        Outcome { work, count, mass }
    }
}

impl Expr {
    /// The work of evaluating this expression for every one of `candidates`, and the total mass
    /// of the values it yields (what comparing them may walk).
    fn cost(&self, candidates: Outcome, size: Size) -> Outcome {
        let n = candidates.count;
        let value = |work: f64, mass: f64| Outcome {
            work,
            count: n,
            mass,
        };
        match self {
            Expr::Literal => value(0.0, n),
            Expr::Query(q) if q.absolute => {
                let root = Outcome {
                    work: 0.0,
                    count: 1.0,
                    mass: size.nodes,
                };
                let once = q.from(root, size);
                value(n * once.work, n * once.mass)
            }
            Expr::Query(q) => {
                let all = q.from(candidates, size);
                value(all.work, all.mass)
            }
            Expr::All(parts) => {
                let work = parts
                    .iter()
                    .map(|p| p.cost(candidates, size).work)
                    .sum::<f64>();
                value(work + n, n)
            }
            Expr::Compare(a, b) => {
                let (a, b) = (a.cost(candidates, size), b.cost(candidates, size));
                value(a.work + b.work + n + a.mass.min(b.mass), n)
            }
            Expr::Function { name, args } => {
                let args: Vec<Outcome> = args.iter().map(|a| a.cost(candidates, size)).collect();
                let work = args.iter().map(|a| a.work).sum::<f64>() + n;
                let mass = match name.as_str() {
                    "length" | "count" | "match" | "search" => n,
                    _ => args.iter().map(|a| a.mass).sum::<f64>().max(n),
                };
                value(work, mass)
            }
        }
    }
}

/// A recursive-descent reader of RFC 9535 syntax, keeping only what the cost model needs.
/// Every step consumes input or gives up, so it ends on any text. `i` only moves past bytes it
/// has just peeked (so it never passes the end, and `+=` on it cannot overflow), bytes are read
/// with `get`, and `depth` is held to [`MAX_DEPTH`] by [`Reader::enter`]. The bounds are `f64`,
/// which saturate at infinity instead of overflowing; a NaN bound is refused by the caller.
struct Reader<'a, 'p> {
    s: &'a [u8],
    i: usize,
    depth: usize,
    patterns: &'p mut Vec<String>,
}

impl Reader<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.i.checked_add(ahead)?).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.i += 1)
    }

    fn starts_with(&self, prefix: &[u8]) -> bool {
        self.s
            .get(self.i..)
            .is_some_and(|rest| rest.starts_with(prefix))
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn query(&mut self) -> Option<Query> {
        self.enter()?;
        let absolute = match self.peek()? {
            b'$' => true,
            b'@' => false,
            _ => return None,
        };
        self.i += 1;
        let mut segments = Vec::new();
        loop {
            let before = self.i;
            self.ws();
            match self.peek() {
                Some(b'.') if self.peek_at(1) == Some(b'.') => {
                    self.i += 2;
                    let selectors = match self.peek()? {
                        b'[' => self.bracketed()?,
                        b'*' => {
                            self.i += 1;
                            vec![Selector::Many]
                        }
                        _ => {
                            self.name()?;
                            vec![Selector::Single]
                        }
                    };
                    segments.push(Segment {
                        descendant: true,
                        selectors,
                    });
                }
                Some(b'.') => {
                    self.i += 1;
                    let selector = if self.eat(b'*').is_some() {
                        Selector::Many
                    } else {
                        self.name()?;
                        Selector::Single
                    };
                    segments.push(Segment {
                        descendant: false,
                        selectors: vec![selector],
                    });
                }
                Some(b'[') => {
                    let selectors = self.bracketed()?;
                    segments.push(Segment {
                        descendant: false,
                        selectors,
                    });
                }
                _ => {
                    self.i = before;
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(Query { absolute, segments })
    }

    /// A member-name shorthand: at least one name character.
    fn name(&mut self) -> Option<()> {
        let start = self.i;
        while matches!(self.peek(), Some(b) if b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80)
        {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    fn bracketed(&mut self) -> Option<Vec<Selector>> {
        self.eat(b'[')?;
        let mut selectors = Vec::new();
        loop {
            self.ws();
            selectors.push(self.selector()?);
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(selectors);
                }
                _ => return None,
            }
        }
    }

    fn selector(&mut self) -> Option<Selector> {
        match self.peek()? {
            b'\'' | b'"' => {
                self.string()?;
                Some(Selector::Single)
            }
            b'*' => {
                self.i += 1;
                Some(Selector::Many)
            }
            b'?' => {
                self.i += 1;
                Some(Selector::Filter(self.logical()?))
            }
            b'-' | b':' | b'0'..=b'9' => {
                let start = self.i;
                let mut slice = false;
                while let Some(b) = self.peek() {
                    match b {
                        b':' => slice = true,
                        b'-' | b'0'..=b'9' | b' ' | b'\t' | b'\n' | b'\r' => {}
                        _ => break,
                    }
                    self.i += 1;
                }
                (self.i > start).then_some(if slice {
                    Selector::Many
                } else {
                    Selector::Single
                })
            }
            _ => None,
        }
    }

    /// `a || b && !c …`: precedence does not change the cost, so the parts are simply listed.
    fn logical(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut parts = Vec::new();
        loop {
            self.ws();
            parts.push(self.basic()?);
            self.ws();
            if self.starts_with(b"&&") || self.starts_with(b"||") {
                self.i += 2;
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(if parts.len() == 1 {
            parts.pop()?
        } else {
            Expr::All(parts)
        })
    }

    fn basic(&mut self) -> Option<Expr> {
        self.enter()?;
        self.ws();
        let expr = if self.peek() == Some(b'!') && self.peek_at(1) != Some(b'=') {
            self.i += 1;
            Expr::All(vec![self.basic()?])
        } else if self.eat(b'(').is_some() {
            let inner = self.logical()?;
            self.ws();
            self.eat(b')')?;
            inner
        } else {
            let left = self.comparable()?;
            let before = self.i;
            self.ws();
            let op_len = [&b"=="[..], b"!=", b"<=", b">=", b"<", b">"]
                .iter()
                .find(|op| self.starts_with(op))
                .map(|op| op.len());
            match op_len {
                Some(len) => {
                    self.i += len;
                    self.ws();
                    let right = self.comparable()?;
                    Expr::Compare(Box::new(left), Box::new(right))
                }
                None => {
                    self.i = before;
                    left
                }
            }
        };
        self.depth -= 1;
        Some(expr)
    }

    fn comparable(&mut self) -> Option<Expr> {
        self.ws();
        match self.peek()? {
            b'$' | b'@' => Some(Expr::Query(self.query()?)),
            b'\'' | b'"' => {
                self.string()?;
                Some(Expr::Literal)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                (self.i > start).then_some(Expr::Literal)
            }
            b'a'..=b'z' => {
                let start = self.i;
                while matches!(self.peek(), Some(b'_' | b'a'..=b'z' | b'0'..=b'9')) {
                    self.i += 1;
                }
                let name = String::from_utf8_lossy(self.s.get(start..self.i)?).into_owned();
                if self.peek() != Some(b'(') {
                    return matches!(name.as_str(), "true" | "false" | "null")
                        .then_some(Expr::Literal);
                }
                self.function(name)
            }
            _ => None,
        }
    }

    fn function(&mut self, name: String) -> Option<Expr> {
        self.enter()?;
        self.eat(b'(')?;
        let mut args = Vec::new();
        let mut pattern = None;
        self.ws();
        if self.eat(b')').is_none() {
            loop {
                self.ws();
                let literal = matches!(self.peek(), Some(b'\'' | b'"'));
                let start = self.i;
                args.push(self.logical()?);
                if literal && args.len() == 2 {
                    // The pattern argument: keep its text when it is exactly one string literal.
                    let end = self.i;
                    let mut again = Reader {
                        s: self.s.get(start..end)?,
                        i: 0,
                        depth: 0,
                        patterns: &mut Vec::new(),
                    };
                    pattern = again.string().filter(|_| {
                        again.ws();
                        again.i == again.s.len()
                    });
                }
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b')' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if matches!(name.as_str(), "match" | "search") {
            self.patterns.extend(pattern);
        }
        self.depth -= 1;
        Some(Expr::Function { name, args })
    }

    /// A string literal; its value, or `None` if it is not one.
    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.i += 1;
        let mut bytes = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'\\' => {
                    let escaped = self.peek()?;
                    self.i += 1;
                    let c = match escaped {
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        other => char::from(other),
                    };
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b == quote => break,
                b => bytes.push(b),
            }
        }
        String::from_utf8(bytes).ok()
    }

    /// The rest of a `\uXXXX` escape (and its low surrogate's, for a pair).
    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4()?;
        if (0xD800..0xDC00).contains(&high) {
            if !self.starts_with(b"\\u") {
                return None;
            }
            self.i += 2;
            let low = self.hex4()?;
            // `high` is in D800..DC00, so the sum stays under 0x110000.
            let code = 0x10000 + ((high - 0xD800) << 10) + low.checked_sub(0xDC00)?;
            return char::from_u32(code);
        }
        char::from_u32(high)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.s.get(self.i..self.i.checked_add(4)?)?).ok()?;
        let value = u32::from_str_radix(digits, 16).ok()?;
        self.i += 4;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(text: &str, nodes: f64, height: f64) -> f64 {
        Query::read(text, &mut Vec::new())
            .unwrap_or_else(|| panic!("{text} not read"))
            .cost(Size { nodes, height })
    }

    #[test]
    fn reads_every_shape_of_the_grammar() {
        for text in [
            "$",
            "$.a.b",
            "$['a', \"b\"][0][-1][1:2][::-1][ 1 : 3 : 1 ]",
            "$..a..*..[0]",
            "$.*[*]",
            r#"$[?($.identity.type == "HUMAN")]"#,
            r#"$.changes[?(@.attribute == "department")]"#,
            "$[?@.a && !@.b || (@.c != 1.5e3)]",
            "$[?@.a<=-1 && @.b>=2 && @.c<3 && @.d>4]",
            "$[?count(@.*) > 1 && length(@.a) == value(@..b)]",
            r#"$[?match(@.email, '[a-z]+@example\\.com') && search(@.x, "\u00e9\ud83d\ude00")]"#,
            "$[?true == false && null == null]",
            "$ [ ?  @.a ] .b",
            "$.ünïcode._x1",
        ] {
            assert!(Query::read(text, &mut Vec::new()).is_some(), "{text}");
        }
    }

    #[test]
    fn keeps_the_literal_patterns_of_match_and_search() {
        let mut patterns = Vec::new();
        Query::read(
            r#"$[?match(@.a, 'a\'b') || search(@.b, "x\u0041") || match(@.c, @.d) || length('zz') > 1]"#,
            &mut patterns,
        )
        .unwrap();
        assert_eq!(patterns, ["a'b", "xA"]);
    }

    #[test]
    fn nested_descents_grow_with_height_and_root_queries_in_filters_with_size() {
        let (n, h) = (10_000.0, 17.0);
        let one = cost("$..*", n, h);
        let two = cost("$..*..*", n, h);
        let three = cost("$..*..*..*", n, h);
        assert!(one < 4.0 * n, "{one}");
        assert!(two > 5.0 * one && three > 10.0 * two, "{one} {two} {three}");
        // Each candidate runs a query over the whole input: quadratic.
        assert!(cost("$..[?$..x]", n, h) > n * n, "root query per candidate");
        // The SailPoint example costs a few units per node.
        assert!(cost(r#"$[?($.identity.type == "HUMAN")]"#, n, h) < 10.0 * n);
        // A singular query does not depend on the input's size.
        assert_eq!(cost("$.a.b[0]", n, h), cost("$.a.b[0]", 1e9, 1e3));
    }
}
