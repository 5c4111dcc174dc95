//! The store's gauges for `GET /metrics`: how much work is queued and how many invocations are
//! open, read at scrape time. Each count walks one of the existing partial indexes (named with
//! `INDEXED BY`, so a schema change that drops one fails loudly instead of scanning the table),
//! and stops after [`GAUGE_CAP`] entries: a scrape costs at most that many index steps however
//! large a backlog grows, and a gauge at the cap means "at least this many".

use chrono::{DateTime, Utc};
use triggerline::time::format_time;

use crate::Sqlite;
use crate::error::db;

/// The most index entries one count walks.
pub const GAUGE_CAP: u32 = 100_000;

/// Unleased work, in due-time order: the due items come first, so they are counted exactly up
/// to the cap.
const UNLEASED: &str = "SELECT count(*) FILTER (WHERE not_before <= ?1), count(*) FROM (
         SELECT not_before FROM invocations INDEXED BY invocations_unleased_by_not_before
          WHERE not_before IS NOT NULL AND leased_until IS NULL LIMIT ?2)";

/// Work leased to a delivery under way (or to one that died, until its lease ends).
const LEASED: &str = "SELECT count(*) FROM (
         SELECT 1 FROM invocations INDEXED BY invocations_leased_by_leased_until
          WHERE not_before IS NOT NULL AND leased_until IS NOT NULL LIMIT ?1)";

/// Open invocations with a deadline (REQUEST_RESPONSE), as the deadline sweep reads them.
const OPEN_WITH_DEADLINE: &str = "SELECT count(*) FILTER (WHERE state = 'ACKNOWLEDGED') FROM (
         SELECT state FROM invocations INDEXED BY invocations_open_by_deadline
          WHERE state IN ('PENDING', 'ACKNOWLEDGED') AND deadline IS NOT NULL LIMIT ?1)";

/// What the store holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreGauges {
    /// Unleased work due now: waiting for a free delivery slot.
    pub due: u64,
    /// Unleased work due later (retries, delayed starts).
    pub scheduled: u64,
    /// Work leased to a delivery.
    pub leased: u64,
    /// ACKNOWLEDGED invocations waiting for their callback.
    pub acknowledged: u64,
}

impl StoreGauges {
    /// PENDING invocations: every one has its work queued (due, scheduled or leased) until its
    /// delivery settles it.
    pub fn pending(&self) -> u64 {
        self.due + self.scheduled + self.leased
    }
}

impl Sqlite {
    /// Reads [`StoreGauges`] as of `now`, in three bounded index walks on a read connection.
    pub async fn gauges(&self, now: DateTime<Utc>) -> Result<StoreGauges, triggerline::Error> {
        let now = format_time(&now);
        self.read(move |conn| {
            let (due, unleased): (i64, i64) = conn
                .prepare_cached(UNLEASED)
                .and_then(|mut s| {
                    s.query_row(rusqlite::params![now, GAUGE_CAP], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                })
                .map_err(db)?;
            let leased: i64 = conn
                .prepare_cached(LEASED)
                .and_then(|mut s| s.query_row([GAUGE_CAP], |r| r.get(0)))
                .map_err(db)?;
            let acknowledged: i64 = conn
                .prepare_cached(OPEN_WITH_DEADLINE)
                .and_then(|mut s| s.query_row([GAUGE_CAP], |r| r.get(0)))
                .map_err(db)?;
            // Counts of at most GAUGE_CAP rows: never negative.
            let n = |count: i64| u64::try_from(count).unwrap_or(0);
            Ok(StoreGauges {
                due: n(due),
                scheduled: n(unleased - due),
                leased: n(leased),
                acknowledged: n(acknowledged),
            })
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every query walks the partial index it names, never the table.
    #[tokio::test]
    async fn each_count_is_an_index_walk() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("t.db")).await.unwrap();
        let plans = db
            .read(|conn| {
                let mut plans = Vec::new();
                for sql in [UNLEASED, LEASED, OPEN_WITH_DEADLINE] {
                    let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                    let nulls = std::iter::repeat_n(rusqlite::types::Null, s.parameter_count());
                    let detail: Vec<String> = s
                        .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    plans.push(detail.join("; "));
                }
                Ok(plans)
            })
            .await
            .unwrap();
        for plan in &plans {
            assert!(plan.contains("USING"), "{plan}");
            assert!(plan.contains("INDEX invocations_"), "{plan}");
            assert!(!plan.contains("SCAN invocations\n"), "{plan}");
        }
        assert_eq!(db.gauges(Utc::now()).await.unwrap(), StoreGauges::default());
    }
}
