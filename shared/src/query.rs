//! The SailPoint collection-parameter language of every list endpoint: `limit`, `offset`,
//! `count`, `filters` (`id eq "x" and type le "HTTP"`) and `sorters` (`-created,triggerId`),
//! parsed into a typed [`ListQuery`] over the fields an endpoint allows. Anything the endpoint
//! does not support is a 400 naming the parameter, never silently ignored.

use std::cmp::Ordering;

use crate::Error;

/// The most items one page may hold, and the default page size.
pub const MAX_LIMIT: usize = 250;

/// How far into any list paging reaches, as SailPoint's status list ("may only fetch up to 2000
/// invocations"): `offset + limit` is held to it, an offset at or past it is an empty page, and
/// `X-Total-Count` counts at most this many. It bounds every list read on every backend: no
/// page or count reads more than this many rows, however many the store holds.
pub const MAX_REACHABLE: usize = 2000;

/// The most conditions one `filters` joins with `and`. An endpoint filters on at most three
/// fields, so a real filter has a handful; without a bound, SQLite refused a chain of about
/// 1,000 (its expression depth limit) and the list answered 503.
pub const MAX_CONDITIONS: usize = 16;

/// Collection parameters exactly as they arrived in the query string.
#[derive(Debug, Clone, Default)]
pub struct RawCollection {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub count: Option<String>,
    pub filters: Option<String>,
    pub sorters: Option<String>,
}

/// A comparison operator of the filter language that Triggerline evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ge,
    Le,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ge => "ge",
            Op::Le => "le",
        }
    }

    /// Whether `value` compares to `operand` as this operator asks (strings compare bytewise).
    pub fn holds(self, value: &str, operand: &str) -> bool {
        match self {
            Op::Eq => value == operand,
            Op::Ge => value >= operand,
            Op::Le => value <= operand,
        }
    }
}

/// The fields of one list endpoint: which can be filtered (and how) and which sorted.
pub trait QueryField: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// `(wire name, field, operators)` for every filterable field.
    const FILTERABLE: &'static [(&'static str, Self, &'static [Op])];
    /// `(wire name, field)` for every sortable field.
    const SORTABLE: &'static [(&'static str, Self)];

    /// The values an `eq` on this field can match, when they are an enum's; empty for any.
    fn values(self) -> &'static [&'static str] {
        &[]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition<F> {
    pub field: F,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey<F> {
    pub field: F,
    pub descending: bool,
}

/// A validated list request. Conditions are and-ed; sorters apply in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery<F> {
    pub conditions: Vec<Condition<F>>,
    pub sorters: Vec<SortKey<F>>,
    pub limit: usize,
    pub offset: usize,
    /// Whether the caller asked for the unpaged total (`X-Total-Count`).
    pub count: bool,
}

impl<F: QueryField> Default for ListQuery<F> {
    fn default() -> Self {
        ListQuery {
            conditions: Vec::new(),
            sorters: Vec::new(),
            limit: MAX_LIMIT,
            offset: 0,
            count: false,
        }
    }
}

/// One page of a list, with the unpaged total when it was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: Option<usize>,
}

impl<F: QueryField> ListQuery<F> {
    pub fn parse(raw: &RawCollection) -> Result<Self, Error> {
        let limit = match raw.limit.as_deref() {
            None => MAX_LIMIT,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_LIMIT)
                .ok_or_else(|| {
                    Error::invalid(
                        "limit",
                        format!("`{s}` is not an integer from 0 to {MAX_LIMIT}"),
                    )
                })?,
        };
        // Any whole number is a valid offset; past what is reachable it is an empty page.
        let offset = match raw.offset.as_deref() {
            None => 0,
            Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<usize>().unwrap_or(usize::MAX).min(MAX_REACHABLE)
            }
            Some(s) => {
                return Err(Error::invalid(
                    "offset",
                    format!("`{s}` is not an integer of 0 or more"),
                ));
            }
        };
        // Cannot underflow: `offset` was just held to at most MAX_REACHABLE.
        let limit = limit.min(MAX_REACHABLE - offset);
        let count = match raw.count.as_deref() {
            None => false,
            Some(s) if s.eq_ignore_ascii_case("true") => true,
            Some(s) if s.eq_ignore_ascii_case("false") => false,
            Some(s) => {
                return Err(Error::invalid(
                    "count",
                    format!("`{s}` is not true or false"),
                ));
            }
        };
        let conditions = match raw.filters.as_deref() {
            None => Vec::new(),
            Some(s) if s.trim().is_empty() => Vec::new(),
            Some(s) => parse_filters::<F>(s)?,
        };
        let sorters = match raw.sorters.as_deref() {
            None => Vec::new(),
            Some(s) => parse_sorters::<F>(s)?,
        };
        Ok(ListQuery {
            conditions,
            sorters,
            limit,
            offset,
            count,
        })
    }

    /// Whether `get`'s view of an item satisfies every condition.
    pub fn accepts<T>(&self, item: &T, get: impl Fn(&T, F) -> Option<String>) -> bool {
        self.conditions.iter().all(|c| {
            get(item, c.field)
                .map(|v| c.op.holds(&v, &c.value))
                .unwrap_or(false)
        })
    }

    /// Orders two items by the sorters; `get` reads a field as text (RFC 3339 times sort as
    /// text). Missing values sort first.
    pub fn compare<T>(&self, a: &T, b: &T, get: &impl Fn(&T, F) -> Option<String>) -> Ordering {
        for key in &self.sorters {
            let ord = get(a, key.field).cmp(&get(b, key.field));
            let ord = if key.descending { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }

    /// Filters, sorts (stably: items keep their given order on ties) and pages an in-memory list.
    pub fn apply<T: Clone>(&self, items: &[T], get: impl Fn(&T, F) -> Option<String>) -> Page<T> {
        let mut hits: Vec<&T> = items.iter().filter(|i| self.accepts(*i, &get)).collect();
        if !self.sorters.is_empty() {
            hits.sort_by(|a, b| self.compare(*a, *b, &get));
        }
        let total = self.count.then_some(hits.len().min(MAX_REACHABLE));
        let items = hits
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .cloned()
            .collect();
        Page { items, total }
    }
}

fn supported<F: QueryField>() -> String {
    F::FILTERABLE
        .iter()
        .map(|(name, _, ops)| {
            let ops: Vec<_> = ops.iter().map(|o| o.name()).collect();
            format!("{name} ({})", ops.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Symbol(char),
}

fn tokenize(s: &str) -> Result<Vec<Token>, Error> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => {
                        return Err(Error::invalid("filters", "a quoted value is not closed"));
                    }
                    Some('\\') => match chars.next() {
                        Some(escaped) => text.push(escaped),
                        None => {
                            return Err(Error::invalid("filters", "a quoted value is not closed"));
                        }
                    },
                    Some(q) if q == c => break,
                    Some(other) => text.push(other),
                }
            }
            tokens.push(Token::Str(text));
        } else if c.is_alphanumeric() || "_.:-+".contains(c) {
            let mut word = String::new();
            while let Some(&w) = chars.peek() {
                if w.is_alphanumeric() || "_.:-+".contains(w) {
                    word.push(w);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(Token::Word(word));
        } else {
            tokens.push(Token::Symbol(c));
            chars.next();
        }
    }
    Ok(tokens)
}

/// Operators of SailPoint's filter syntax that Triggerline recognises but does not evaluate, so
/// that using one is reported as unsupported rather than as a syntax error.
const KNOWN_OPERATORS: &[&str] = &[
    "eq", "ne", "gt", "ge", "lt", "le", "co", "sw", "in", "pr", "isnull", "ca",
];

fn parse_filters<F: QueryField>(s: &str) -> Result<Vec<Condition<F>>, Error> {
    let tokens = tokenize(s)?;
    // `i` stays within `tokens` (it only moves past four tokens just read), so `i + 4` cannot
    // overflow, and every token is read with `get`, never indexed.
    let mut conditions = Vec::new();
    let mut i = 0;
    loop {
        let field_name = match tokens.get(i) {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("not") => {
                return Err(Error::invalid("filters", "`not` is not supported"));
            }
            Some(Token::Word(w)) => w.clone(),
            Some(Token::Symbol('(')) => {
                return Err(Error::invalid(
                    "filters",
                    "parentheses are not supported; join conditions with `and`",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "filters",
                    format!(
                        "expected a field name in `{s}`; filterable: {}",
                        supported::<F>()
                    ),
                ));
            }
        };
        let Some((_, field, ops)) = F::FILTERABLE.iter().find(|(n, _, _)| *n == field_name) else {
            return Err(Error::invalid(
                "filters",
                format!(
                    "field `{field_name}` cannot be filtered here; filterable: {}",
                    supported::<F>()
                ),
            ));
        };
        let op_name = match tokens.get(i + 1) {
            Some(Token::Word(w)) => w.to_ascii_lowercase(),
            _ => {
                return Err(Error::invalid(
                    "filters",
                    format!("expected an operator after `{field_name}`"),
                ));
            }
        };
        let Some(op) = ops.iter().copied().find(|o| o.name() == op_name) else {
            let what = if KNOWN_OPERATORS.contains(&op_name.as_str()) {
                "is not supported"
            } else {
                "is not an operator"
            };
            let allowed: Vec<_> = ops.iter().map(|o| o.name()).collect();
            return Err(Error::invalid(
                "filters",
                format!(
                    "operator `{op_name}` {what} on `{field_name}`; supported: {}",
                    allowed.join(", ")
                ),
            ));
        };
        let value = match tokens.get(i + 2) {
            Some(Token::Str(v)) | Some(Token::Word(v)) => v.clone(),
            _ => {
                return Err(Error::invalid(
                    "filters",
                    format!("expected a value after `{field_name} {op_name}`"),
                ));
            }
        };
        // An enum's unknown value matches nothing: a misspelt `type eq "HTPP"` would answer
        // an empty list as if there were no such subscriptions.
        let values = field.values();
        if op == Op::Eq && !values.is_empty() && !values.contains(&value.as_str()) {
            return Err(Error::invalid(
                "filters",
                format!(
                    "`{value}` is not a value of `{field_name}`; values: {}",
                    values.join(", ")
                ),
            ));
        }
        if conditions.len() == MAX_CONDITIONS {
            return Err(Error::invalid(
                "filters",
                format!("at most {MAX_CONDITIONS} conditions may be joined with `and`"),
            ));
        }
        conditions.push(Condition {
            field: *field,
            op,
            value,
        });
        match tokens.get(i + 3) {
            None => return Ok(conditions),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => i += 4,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("or") => {
                return Err(Error::invalid(
                    "filters",
                    "`or` is not supported; only `and` combines conditions",
                ));
            }
            Some(other) => {
                return Err(Error::invalid(
                    "filters",
                    format!("unexpected {other:?} after a condition; join conditions with `and`"),
                ));
            }
        }
    }
}

fn parse_sorters<F: QueryField>(s: &str) -> Result<Vec<SortKey<F>>, Error> {
    let mut keys: Vec<SortKey<F>> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let key = sort_key(part)?;
        // A field sorted on again never changes the order its first key gave, so only the first
        // is kept: the keys are then at most the sortable fields, however long `sorters` is
        // (SQLite refuses an ORDER BY of 1,000 terms and more).
        if !keys.iter().any(|k| k.field == key.field) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// One term of `sorters`: a sortable field, `-` before it for descending.
fn sort_key<F: QueryField>(part: &str) -> Result<SortKey<F>, Error> {
    let (descending, name) = match part.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, part),
    };
    let Some((_, field)) = F::SORTABLE.iter().find(|(n, _)| *n == name) else {
        let sortable: Vec<_> = F::SORTABLE.iter().map(|(n, _)| *n).collect();
        return Err(Error::invalid(
            "sorters",
            format!(
                "`{name}` cannot be sorted on here; sortable: {}",
                sortable.join(", ")
            ),
        ));
    };
    Ok(SortKey {
        field: *field,
        descending,
    })
}

/// Fields of `GET /triggers/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerField {
    Id,
    Name,
}

impl QueryField for TriggerField {
    const FILTERABLE: &'static [(&'static str, Self, &'static [Op])] =
        &[("id", TriggerField::Id, &[Op::Eq, Op::Ge, Op::Le])];
    const SORTABLE: &'static [(&'static str, Self)] =
        &[("id", TriggerField::Id), ("name", TriggerField::Name)];
}

/// Fields of `GET /trigger-subscriptions/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionField {
    Id,
    TriggerId,
    Type,
    TriggerName,
}

impl QueryField for SubscriptionField {
    const FILTERABLE: &'static [(&'static str, Self, &'static [Op])] = &[
        ("id", SubscriptionField::Id, &[Op::Eq]),
        ("triggerId", SubscriptionField::TriggerId, &[Op::Eq]),
        ("type", SubscriptionField::Type, &[Op::Eq, Op::Le]),
    ];
    const SORTABLE: &'static [(&'static str, Self)] = &[
        ("triggerId", SubscriptionField::TriggerId),
        ("triggerName", SubscriptionField::TriggerName),
    ];

    fn values(self) -> &'static [&'static str] {
        match self {
            SubscriptionField::Type => &["HTTP", "EVENTBRIDGE", "INLINE", "SCRIPT", "WORKFLOW"],
            _ => &[],
        }
    }
}

/// Fields of `GET /trigger-invocations/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationField {
    TriggerId,
    SubscriptionId,
    SubscriptionName,
    Created,
    Completed,
}

impl QueryField for InvocationField {
    const FILTERABLE: &'static [(&'static str, Self, &'static [Op])] = &[
        ("triggerId", InvocationField::TriggerId, &[Op::Eq]),
        ("subscriptionId", InvocationField::SubscriptionId, &[Op::Eq]),
    ];
    const SORTABLE: &'static [(&'static str, Self)] = &[
        ("triggerId", InvocationField::TriggerId),
        ("subscriptionName", InvocationField::SubscriptionName),
        ("created", InvocationField::Created),
        ("completed", InvocationField::Completed),
    ];
}

pub type TriggerQuery = ListQuery<TriggerField>;
pub type SubscriptionQuery = ListQuery<SubscriptionField>;
pub type InvocationQuery = ListQuery<InvocationField>;

/// The collection parameters as OpenAPI query parameters, described from the same constants and
/// field tables the parser uses, so the document states the limits and operators the endpoint
/// enforces.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};

    use super::{ListQuery, MAX_LIMIT, MAX_REACHABLE, QueryField, supported};

    fn query(name: &str, description: String, schema: ObjectBuilder) -> Parameter {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(schema))
            .build()
    }

    impl<F: QueryField> utoipa::IntoParams for ListQuery<F> {
        fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
            let sortable: Vec<&str> = F::SORTABLE.iter().map(|(name, _)| *name).collect();
            vec![
                query(
                    "limit",
                    format!(
                        "How many items to return, 0 to {MAX_LIMIT}; `offset + limit` is held to \
                         {MAX_REACHABLE} (the furthest any list reaches)."
                    ),
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Int32,
                        )))
                        .minimum(Some(0))
                        .maximum(Some(MAX_LIMIT as u32))
                        .default(Some(MAX_LIMIT.into())),
                ),
                query(
                    "offset",
                    format!(
                        "How many items to skip. Any whole number is accepted; items past the \
                         {MAX_REACHABLE}th are not reachable, so an offset at or past it is an \
                         empty page."
                    ),
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Int32,
                        )))
                        .minimum(Some(0))
                        .default(Some(0.into())),
                ),
                query(
                    "count",
                    format!(
                        "If true, the `X-Total-Count` header carries the number of matching items \
                         (at most {MAX_REACHABLE})."
                    ),
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .default(Some(false.into())),
                ),
                query(
                    "filters",
                    format!(
                        "SailPoint filter expression, conditions joined with `and`, values quoted: \
                         `field op \"value\"`. Supported: {}. Anything else is a 400 naming \
                         `filters`.",
                        supported::<F>()
                    ),
                    ObjectBuilder::new().schema_type(Type::String),
                ),
                query(
                    "sorters",
                    format!(
                        "Comma-separated fields to sort by, `-` before a field for descending. \
                         Sortable: {}.",
                        sortable.join(", ")
                    ),
                    ObjectBuilder::new().schema_type(Type::String),
                ),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(filters: &str) -> RawCollection {
        RawCollection {
            filters: Some(filters.into()),
            ..Default::default()
        }
    }

    fn err_of<F: QueryField>(raw: RawCollection) -> String {
        ListQuery::<F>::parse(&raw).unwrap_err().to_string()
    }

    #[test]
    fn paging_reaches_2000_items_and_any_whole_offset_is_a_page() {
        let page = |offset: &str, limit: &str| {
            let q = InvocationQuery::parse(&RawCollection {
                offset: Some(offset.into()),
                limit: Some(limit.into()),
                ..Default::default()
            })
            .unwrap();
            (q.offset, q.limit)
        };
        assert_eq!(
            page("1900", "250"),
            (1900, 100),
            "held to offset + limit <= 2000"
        );
        assert_eq!(page("2000", "10"), (2000, 0));
        for huge in ["9223372036854775808", "18446744073709551616"] {
            assert_eq!(
                page(huge, "10"),
                (2000, 0),
                "{huge}: an empty page, not an error"
            );
        }
        for bad in ["-1", "+1", "1e3", "", " 1", "0x10"] {
            let err = err_of::<InvocationField>(RawCollection {
                offset: Some(bad.into()),
                ..Default::default()
            });
            assert!(err.starts_with("offset:"), "{bad}: {err}");
        }
        let q = InvocationQuery::parse(&RawCollection {
            count: Some("true".into()),
            ..Default::default()
        })
        .unwrap();
        let items: Vec<u32> = (0..2500).collect();
        let page = q.apply(&items, |_, _| None);
        assert_eq!(
            page.total,
            Some(2000),
            "the count stops at what is reachable"
        );
    }

    #[test]
    fn parses_sailpoint_examples() {
        let q = SubscriptionQuery::parse(&raw(
            r#"id eq "12cff757-c0c0-413b-8ad7-2a47956d1e89" and type le "HTTP""#,
        ))
        .unwrap();
        assert_eq!(
            q.conditions,
            vec![
                Condition {
                    field: SubscriptionField::Id,
                    op: Op::Eq,
                    value: "12cff757-c0c0-413b-8ad7-2a47956d1e89".into()
                },
                Condition {
                    field: SubscriptionField::Type,
                    op: Op::Le,
                    value: "HTTP".into()
                },
            ]
        );
        let q = TriggerQuery::parse(&RawCollection {
            sorters: Some("-id,name".into()),
            limit: Some("10".into()),
            offset: Some("5".into()),
            count: Some("true".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            q.sorters,
            vec![
                SortKey {
                    field: TriggerField::Id,
                    descending: true
                },
                SortKey {
                    field: TriggerField::Name,
                    descending: false
                }
            ]
        );
        assert_eq!((q.limit, q.offset, q.count), (10, 5, true));
    }

    #[test]
    fn defaults_are_sailpoints() {
        let q = InvocationQuery::parse(&RawCollection::default()).unwrap();
        assert_eq!((q.limit, q.offset, q.count), (250, 0, false));
    }

    #[test]
    fn rejects_what_the_endpoint_does_not_support() {
        let cases = [
            (raw(r#"name eq "x""#), "filters: field `name`"),
            (
                raw(r#"id sw "idn""#),
                "filters: operator `sw` is not supported on `id`",
            ),
            (raw(r#"id eq "a" or id eq "b""#), "filters: `or`"),
            (raw(r#"id eq "a"#), "filters: a quoted value"),
            (raw(r#"id eq"#), "filters: expected a value"),
        ];
        for (raw, expected) in cases {
            let err = err_of::<TriggerField>(raw);
            assert!(err.starts_with(expected), "{err}");
        }
        let limit = RawCollection {
            limit: Some("251".into()),
            ..Default::default()
        };
        assert!(err_of::<TriggerField>(limit).starts_with("limit:"));
        let offset = RawCollection {
            offset: Some("-1".into()),
            ..Default::default()
        };
        assert!(err_of::<TriggerField>(offset).starts_with("offset:"));
        let sorters = RawCollection {
            sorters: Some("created".into()),
            ..Default::default()
        };
        assert!(err_of::<TriggerField>(sorters).starts_with("sorters: `created`"));
        let count = RawCollection {
            count: Some("yes".into()),
            ..Default::default()
        };
        assert!(err_of::<TriggerField>(count).starts_with("count:"));
        // An enum's field takes its values only, for `eq`; `le` compares with any text.
        let unknown = err_of::<SubscriptionField>(raw(r#"type eq "FOO""#));
        assert!(
            unknown.starts_with("filters: `FOO` is not a value of `type`; values: HTTP,"),
            "{unknown}"
        );
        assert!(SubscriptionQuery::parse(&raw(r#"type eq "EVENTBRIDGE""#)).is_ok());
        assert!(SubscriptionQuery::parse(&raw(r#"type le "H""#)).is_ok());
    }

    #[test]
    fn long_filters_and_sorters_are_bounded() {
        let chain = |n: usize| vec![r#"id eq "a""#; n].join(" and ");
        let at = SubscriptionQuery::parse(&raw(&chain(MAX_CONDITIONS))).unwrap();
        assert_eq!(at.conditions.len(), MAX_CONDITIONS);
        for n in [MAX_CONDITIONS + 1, 2000] {
            let err = err_of::<SubscriptionField>(raw(&chain(n)));
            assert!(err.starts_with("filters: at most 16 conditions"), "{err}");
        }
        // Repeats add nothing to the order: the first key of each field is kept.
        let sorters = |s: &str| RawCollection {
            sorters: Some(s.into()),
            ..Default::default()
        };
        let many = ["-created", "completed", "created"].repeat(700).join(",");
        let q = InvocationQuery::parse(&sorters(&many)).unwrap();
        let keys: Vec<_> = q.sorters.iter().map(|k| (k.field, k.descending)).collect();
        assert_eq!(
            keys,
            [
                (InvocationField::Created, true),
                (InvocationField::Completed, false)
            ]
        );
    }

    #[test]
    fn applies_filters_sorting_and_paging_in_memory() {
        let items = vec!["c", "a", "d", "b"];
        let get = |s: &&str, _f: TriggerField| Some(s.to_string());
        let q = TriggerQuery::parse(&RawCollection {
            filters: Some(r#"id ge "b""#.into()),
            sorters: Some("-id".into()),
            limit: Some("2".into()),
            offset: Some("1".into()),
            count: Some("true".into()),
        })
        .unwrap();
        let page = q.apply(&items, get);
        assert_eq!(page.items, vec!["c", "b"]);
        assert_eq!(page.total, Some(3));
    }
}
