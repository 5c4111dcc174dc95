//! Time and identity as ports, so that deadlines, retries and ids can be driven by tests.

use std::sync::Mutex;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the random spread of retry times comes from, so that tests can fix it.
pub trait Jitter: Send + Sync + std::fmt::Debug {
    /// A number in `[0, 1)`.
    fn fraction(&self) -> f64;
}

/// Jitter from the thread's random generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn fraction(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// The same fraction every time (tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn fraction(&self) -> f64 {
        self.0
    }
}

/// Where ids and secrets come from.
pub trait IdGenerator: Send + Sync + std::fmt::Debug {
    /// A new unique record id (a UUID, as SailPoint's subscription ids are).
    fn id(&self) -> String;
    /// `bytes` bytes of secret randomness, base64 encoded.
    fn secret(&self, bytes: usize) -> String;
    /// Random bytes for a new W3C trace: its trace id and parent id
    /// ([`crate::trace::TraceContext::start`]). Random unless a generator fixes them.
    fn trace_bytes(&self, out: &mut [u8]) {
        rand::rng().fill_bytes(out);
    }
}

/// Whether `id` has the one shape invocation ids have: a lowercase hyphenated UUID, as every
/// id generator makes them ([`RandomIds`], and the dispatcher's ids derived from an event id).
/// Stored ids are never in another form, so a route can refuse any other spelling (upper case,
/// braces, 10 kB of text) before it reads a store, and refuses nothing that could be found.
pub fn is_invocation_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => matches!(b, b'0'..=b'9' | b'a'..=b'f'),
        })
}

/// UUID v7 ids and OS-seeded random secrets.
///
/// A v7 id starts with its creation time in milliseconds and ends in 74 random bits: as unique
/// and unguessable as a v4 (it authorizes nothing: the callback has its own secret), but ids
/// made close together sort close together. Keyed by a random v4, every insert of a burst dirtied
/// a different page of each id index, and the SQLite writer spent its commits writing them to
/// the WAL; keyed by v7, a burst's inserts share the rightmost pages. DynamoDB hashes the whole
/// key (and the index shards hash every byte), so partitioning does not change.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn id(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }

    fn secret(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        rand::rng().fill_bytes(&mut buf);
        base64::engine::general_purpose::STANDARD.encode(buf)
    }
}

/// How far ahead of now any time a request sets may lie: `delay`, `timestamp` and
/// `responseDeadline` (and so every deadline). One year covers every real schedule; past 9999 AD
/// RFC 3339 needs a signed, five-digit year, which neither sorts as text with the rest (every
/// store orders times as text) nor parses back, so one such row used to stop every sweep.
pub const MAX_AHEAD_DAYS: i64 = 365;

/// [`MAX_AHEAD_DAYS`] as a span.
pub fn max_ahead() -> chrono::TimeDelta {
    chrono::TimeDelta::days(MAX_AHEAD_DAYS)
}

/// `t + by`, or the latest time chrono can hold when that overflows. Every sum of a time and a
/// span goes through here or [`earlier`], so that no input can make time arithmetic panic.
pub fn later(t: DateTime<Utc>, by: chrono::TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(by).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - by`, or the earliest time chrono can hold when that overflows.
pub fn earlier(t: DateTime<Utc>, by: chrono::TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(by).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// RFC 3339 with millisecond precision and `Z`, the form SailPoint emits.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Serde helpers for [`format_time`].
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format_time(t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| {
                    DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(serde::de::Error::custom)
                })
                .transpose()
        }
    }
}
