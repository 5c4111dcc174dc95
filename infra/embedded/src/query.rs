//! Turns a validated [`ListQuery`] into SQL. Column names come only from the fixed table below
//! each field enum; every value the caller gave is bound as a parameter, never spliced in.

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use triggerline::query::{ListQuery, MAX_REACHABLE, Op, Page, QueryField, SortKey};

use crate::error::{db, to_sql_int};
use crate::quarantine::Unreadable;

/// How a list endpoint's fields map to one table's columns.
pub(crate) trait Columns: QueryField {
    /// The table, whose `id` column breaks ties and whose `body` column holds the model.
    const TABLE: &'static str;
    /// The order without sorters, before the `id` tie-break (`None`: by id alone).
    const DEFAULT_ORDER: Option<&'static str>;
    /// The columns a list reads, `id` first, as [`Columns::read`] takes them.
    const SELECT: &'static str;

    /// What a row is read as.
    type Item;

    /// Reads one selected row: its id, and the item or why it cannot be decoded.
    fn read(
        row: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<(String, Result<Self::Item, triggerline::Error>)>;

    fn column(self) -> &'static str;

    /// Whether the column can be NULL; NULLs sort first ascending and last descending, as
    /// missing values do in [`ListQuery::compare`].
    fn nullable(self) -> bool {
        false
    }
}

/// The `WHERE` clause (empty or starting with a space) and its parameters.
fn filter<F: Columns>(query: &ListQuery<F>) -> (String, Vec<Value>) {
    let mut clause = String::new();
    let mut params = Vec::with_capacity(query.conditions.len());
    for (i, condition) in query.conditions.iter().enumerate() {
        clause.push_str(if i == 0 { " WHERE " } else { " AND " });
        clause.push_str(condition.field.column());
        clause.push_str(match condition.op {
            Op::Eq => " = ?",
            Op::Ge => " >= ?",
            Op::Le => " <= ?",
        });
        params.push(Value::Text(condition.value.clone()));
    }
    (clause, params)
}

fn order<F: Columns>(sorters: &[SortKey<F>]) -> String {
    let mut keys: Vec<String> = sorters
        .iter()
        .map(|key| {
            let direction = match (key.descending, key.field.nullable()) {
                (false, false) => "ASC",
                (true, false) => "DESC",
                (false, true) => "ASC NULLS FIRST",
                (true, true) => "DESC NULLS LAST",
            };
            format!("{} {direction}", key.field.column())
        })
        .collect();
    if keys.is_empty() {
        keys.extend(F::DEFAULT_ORDER.map(str::to_owned));
    }
    // The final tie-break keeps pages from overlapping: every row has one place in the order.
    keys.push("id ASC".to_owned());
    keys.join(", ")
}

/// Reads one page of `query` (and the unpaged total when asked) from one snapshot. Rows whose
/// body cannot be decoded are left out of the page and returned beside it, for the caller to
/// quarantine or log: one bad row never fails the list for everyone.
pub(crate) fn page<F: Columns>(
    conn: &mut Connection,
    query: &ListQuery<F>,
) -> Result<(Page<F::Item>, Vec<Unreadable>), triggerline::Error> {
    let (clause, mut params) = filter(query);
    // One read transaction, so the total and the page see the same data.
    let tx = conn.transaction().map_err(db)?;
    let total = if query.count {
        // Counts what paging can reach, no further: a bounded read however big the table.
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {}{clause} LIMIT {MAX_REACHABLE})",
            F::TABLE
        );
        let n: i64 = tx
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_row(params_from_iter(&params), |row| row.get(0)))
            .map_err(db)?;
        Some(usize::try_from(n).unwrap_or(0))
    } else {
        None
    };
    let sql = format!(
        "SELECT {} FROM {}{clause} ORDER BY {} LIMIT ? OFFSET ?",
        F::SELECT,
        F::TABLE,
        order(&query.sorters)
    );
    params.push(Value::Integer(to_sql_int("limit", query.limit as u64)?));
    params.push(Value::Integer(to_sql_int("offset", query.offset as u64)?));
    let mut unreadable = Vec::new();
    let items = {
        let mut stmt = tx.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params_from_iter(&params), F::read)
            .map_err(db)?;
        let mut items = Vec::new();
        for row in rows {
            match row.map_err(db)? {
                (_, Ok(item)) => items.push(item),
                (id, Err(e)) => unreadable.push(Unreadable::new(id, &e)),
            }
        }
        items
    };
    tx.commit().map_err(db)?;
    Ok((Page { items, total }, unreadable))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use triggerline::query::{InvocationField, InvocationQuery, RawCollection, SubscriptionQuery};

    use super::*;

    #[test]
    fn values_are_bound_and_columns_come_from_the_whitelist() {
        let q = SubscriptionQuery::parse(&RawCollection {
            filters: Some(r#"id eq "x' OR 1=1 --" and type le "HTTP""#.into()),
            sorters: Some("-triggerName,triggerId".into()),
            ..Default::default()
        })
        .unwrap();
        let (clause, params) = filter(&q);
        assert_eq!(clause, " WHERE id = ? AND type <= ?");
        assert_eq!(
            params,
            vec![
                Value::Text("x' OR 1=1 --".into()),
                Value::Text("HTTP".into())
            ]
        );
        assert_eq!(
            order(&q.sorters),
            "trigger_name DESC, trigger_id ASC, id ASC"
        );
    }

    #[test]
    fn default_orders_and_nullable_columns() {
        let q = InvocationQuery::parse(&RawCollection::default()).unwrap();
        assert_eq!(order(&q.sorters), "created DESC, id ASC");
        let q = SubscriptionQuery::parse(&RawCollection::default()).unwrap();
        assert_eq!(order(&q.sorters), "id ASC");
        let sorters = [SortKey {
            field: InvocationField::Completed,
            descending: true,
        }];
        assert_eq!(order(&sorters), "completed DESC NULLS LAST, id ASC");
    }
}
