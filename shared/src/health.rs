//! Endpoint health (extension): what a subscription's delivery record says about its receiver,
//! and what that does to the next delivery. Pure rules over values; the delivery use case reads
//! and writes them ([`crate::usecases::delivery::Delivery`]).
//!
//! - A receiver answering 410 Gone disables its subscription at once.
//! - After `failures_to_open` consecutive failed attempts the circuit opens: nothing is sent for a
//!   cool-down that doubles with each opening in a row (30 s up to 10 min by default). When it
//!   ends, one delivery goes through as a probe (the circuit is half-open while it runs); its
//!   success closes the circuit, its failure opens it again for longer.
//! - A subscription that has failed every attempt for `disable_after` (5 days by default) is
//!   disabled.
//!
//! The health is kept in the subscription record itself, so both backends store it without a
//! schema of their own, and it is written only when it changes: a subscription that keeps
//! succeeding costs no write at all.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use serde_json::json;

use crate::model::Subscription;
use crate::ports::Event;

/// The `detail-type` of the event published on each health transition.
pub const HEALTH_CHANGED_EVENT: &str = "Subscription Health Changed";

/// How often a delivery held while a probe is out looks again.
const PROBE_RECHECK: Duration = Duration::seconds(5);

/// How the circuit breaker and automatic disabling behave (service configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// Consecutive failed attempts that open the circuit.
    pub failures_to_open: u32,
    /// The first cool-down; each opening in a row doubles it, up to `max_cool_down`.
    pub cool_down: Duration,
    pub max_cool_down: Duration,
    /// A subscription whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
    /// How long a probe holds the half-open circuit: longer than one attempt, so that a second
    /// probe goes only when the first one's process died.
    pub probe_lease: Duration,
    /// How often work held for a disabled subscription looks again whether it was re-enabled.
    pub disabled_recheck: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            failures_to_open: 5,
            cool_down: Duration::seconds(30),
            max_cool_down: Duration::minutes(10),
            disable_after: Duration::days(5),
            probe_lease: Duration::seconds(60),
            disabled_recheck: Duration::minutes(5),
        }
    }
}

/// The configuration variables of the health policy (the local server's flags read the same).
pub mod env {
    /// Consecutive failed attempts that open a subscription's circuit (default 5).
    pub const CIRCUIT_FAILURES: &str = "TRIGGERLINE_CIRCUIT_FAILURES";
    /// The first cool-down of an open circuit (ISO-8601, default PT30S).
    pub const CIRCUIT_COOL_DOWN: &str = "TRIGGERLINE_CIRCUIT_COOL_DOWN";
    /// The longest cool-down (ISO-8601, default PT10M).
    pub const CIRCUIT_MAX_COOL_DOWN: &str = "TRIGGERLINE_CIRCUIT_MAX_COOL_DOWN";
    /// How long a subscription may fail every attempt before it is disabled (ISO-8601,
    /// default P5D).
    pub const DISABLE_AFTER: &str = "TRIGGERLINE_DISABLE_AFTER";
}

/// Why a health setting was refused, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct SettingError {
    pub name: &'static str,
    pub reason: String,
}

impl HealthPolicy {
    /// The policy of the four settings (texts as configured; `None`: the default), checked:
    /// at least one failure to open, a cool-down of at least a second and a maximum not below
    /// it (both at most a day), a disabling period of at least an hour (at most a year).
    pub fn from_settings(
        failures: Option<&str>,
        cool_down: Option<&str>,
        max_cool_down: Option<&str>,
        disable_after: Option<&str>,
    ) -> Result<HealthPolicy, SettingError> {
        let default = HealthPolicy::default();
        let span = |name: &'static str,
                    text: Option<&str>,
                    default: Duration,
                    min: Duration,
                    max: Duration| {
            let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
                return Ok(default);
            };
            let value = crate::duration::IsoDuration::parse(name, text)
                .map_err(|e| SettingError {
                    name,
                    // The error names the setting already; this one names it once.
                    reason: match e {
                        crate::Error::Invalid { reason, .. } => reason,
                        other => other.to_string(),
                    },
                })?
                .as_chrono();
            if value < min || value > max {
                return Err(SettingError {
                    name,
                    reason: format!(
                        "`{text}` is out of range ({} s to {} s)",
                        min.num_seconds(),
                        max.num_seconds()
                    ),
                });
            }
            Ok(value)
        };
        let failures_to_open = match failures.map(str::trim).filter(|t| !t.is_empty()) {
            None => default.failures_to_open,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| SettingError {
                    name: env::CIRCUIT_FAILURES,
                    reason: format!("`{text}` is not a whole number from 1 to 1000"),
                })?,
        };
        let cool_down = span(
            env::CIRCUIT_COOL_DOWN,
            cool_down,
            default.cool_down,
            Duration::seconds(1),
            Duration::days(1),
        )?;
        let max_cool_down = span(
            env::CIRCUIT_MAX_COOL_DOWN,
            max_cool_down,
            default.max_cool_down.max(cool_down),
            cool_down,
            Duration::days(1),
        )?;
        let disable_after = span(
            env::DISABLE_AFTER,
            disable_after,
            default.disable_after,
            Duration::hours(1),
            Duration::days(366),
        )?;
        Ok(HealthPolicy {
            failures_to_open,
            cool_down,
            max_cool_down,
            disable_after,
            ..default
        })
    }

    /// The cool-down of the `openings`-th opening in a row (1-based).
    pub fn cool_down_for(&self, openings: u32) -> Duration {
        let doublings = openings.saturating_sub(1).min(30);
        self.cool_down
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_cool_down)
            .min(self.max_cool_down)
    }
}

/// The circuit breaker's position.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Circuit {
    /// Deliveries go through.
    #[default]
    Closed,
    /// Deliveries wait until `openUntil`.
    Open,
    /// One probe delivery is on its way (until `openUntil` at most); the others wait for it.
    HalfOpen,
}

/// What the delivery record says about a subscription's receiver. Stored with the subscription
/// and shown in its `health` field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub circuit: Circuit,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The first failure since the last success.
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Open: when the cool-down ends. Half-open: when the probe's hold ends.
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub open_until: Option<DateTime<Utc>>,
    /// Openings since the last success (sets the next cool-down).
    #[serde(default)]
    pub openings: u32,
    /// The last transition (opened, closed, disabled).
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub changed: Option<DateTime<Utc>>,
    /// Set when Triggerline disabled the subscription (`enabled` is then false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
}

/// Why a subscription was disabled by Triggerline, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disabled {
    pub reason: String,
    #[serde(with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
}

/// What one attempt said about the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed or acknowledged.
    Succeeded,
    Failed,
    /// Answered 410 Gone: the receiver says it is not coming back.
    Gone,
}

/// A health transition, published as `Subscription Health Changed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Opened,
    Closed,
    Disabled(String),
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Opened => "OPENED",
            Change::Closed => "CLOSED",
            Change::Disabled(_) => "DISABLED",
        }
    }
}

/// Whether a delivery to a subscription may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Send,
    /// The cool-down is over: this delivery may go as the probe, if it claims it first.
    Probe,
    /// Hold the delivery until then (not an attempt: it burns no retry).
    HoldUntil(DateTime<Utc>),
}

impl Health {
    /// Whether a delivery may go at `now` by the circuit alone.
    pub fn gate(&self, now: DateTime<Utc>) -> Gate {
        match (self.circuit, self.open_until) {
            (Circuit::Closed, _) => Gate::Send,
            // While a probe is out, look again soon: its success lets everything go.
            (Circuit::HalfOpen, Some(until)) if until > now => {
                Gate::HoldUntil(until.min(crate::time::later(now, PROBE_RECHECK)))
            }
            (_, Some(until)) if until > now => Gate::HoldUntil(until),
            _ => Gate::Probe,
        }
    }

    /// The health while a probe sent at `now` is on its way.
    pub fn probing(&self, now: DateTime<Utc>, policy: &HealthPolicy) -> Health {
        Health {
            circuit: Circuit::HalfOpen,
            open_until: Some(crate::time::later(now, policy.probe_lease)),
            ..self.clone()
        }
    }

    /// Nothing recorded: what a subscription starts with (and is stored without).
    pub fn is_default(&self) -> bool {
        *self == Health::default()
    }

    fn is_clean(&self) -> bool {
        self.circuit == Circuit::Closed
            && self.consecutive_failures == 0
            && self.failing_since.is_none()
            && self.openings == 0
    }
}

/// Whether a delivery to `subscription` may go at `now`: a disabled subscription holds its work
/// (re-enabling it lets what is still within its deadline go), otherwise the circuit decides.
pub fn gate(subscription: &Subscription, now: DateTime<Utc>, policy: &HealthPolicy) -> Gate {
    if !subscription.enabled {
        return Gate::HoldUntil(crate::time::later(now, policy.disabled_recheck));
    }
    subscription.health.gate(now)
}

/// The subscription as one attempt's `outcome` at `now` leaves it, with the transition it made;
/// `None` when nothing changes (the common case: a success of a healthy subscription), so that
/// nothing is written.
pub fn after_attempt(
    subscription: &Subscription,
    outcome: Outcome,
    now: DateTime<Utc>,
    policy: &HealthPolicy,
) -> Option<(Subscription, Option<Change>)> {
    let health = &subscription.health;
    let mut next = health.clone();
    let mut change = None;
    match outcome {
        Outcome::Succeeded => {
            if health.is_clean() {
                return None;
            }
            next = Health {
                changed: health.changed,
                disabled: health.disabled.clone(),
                ..Health::default()
            };
            if health.circuit != Circuit::Closed {
                next.changed = Some(now);
                change = Some(Change::Closed);
            }
        }
        Outcome::Failed | Outcome::Gone => {
            next.consecutive_failures = health.consecutive_failures.saturating_add(1);
            let since = *next.failing_since.get_or_insert(now);
            let failing_for = now.signed_duration_since(since);
            if !subscription.enabled {
                // Already disabled (a test delivery): counted, nothing more.
            } else if outcome == Outcome::Gone {
                change = Some(Change::Disabled(
                    "the receiver answered 410 Gone".to_owned(),
                ));
            } else if failing_for >= policy.disable_after {
                change = Some(Change::Disabled(format!(
                    "every attempt failed since {} (for {})",
                    crate::time::format_time(&since),
                    span(failing_for)
                )));
            } else if health.circuit == Circuit::HalfOpen
                || (health.circuit == Circuit::Closed
                    && next.consecutive_failures >= policy.failures_to_open)
            {
                next.circuit = Circuit::Open;
                next.openings = health.openings.saturating_add(1);
                next.open_until =
                    Some(crate::time::later(now, policy.cool_down_for(next.openings)));
                change = Some(Change::Opened);
            }
        }
    }
    let mut updated = subscription.clone();
    if let Some(Change::Disabled(reason)) = &change {
        updated.enabled = false;
        next.disabled = Some(Disabled {
            reason: reason.clone(),
            at: now,
        });
        // Nothing is sent while it is disabled; re-enabling it starts afresh.
        next.circuit = Circuit::Closed;
        next.open_until = None;
    }
    if change.is_some() {
        next.changed = Some(now);
    }
    updated.health = next;
    // One per write since creation: u64 is never reached.
    updated.version = subscription.version + 1;
    Some((updated, change))
}

/// The `Subscription Health Changed` event of a transition.
pub fn changed_event(source: &str, subscription: &Subscription, change: &Change) -> Event {
    Event::new(
        None,
        source,
        HEALTH_CHANGED_EVENT,
        &json!({
            "subscriptionId": subscription.id,
            "subscriptionName": subscription.name,
            "triggerId": subscription.trigger_id,
            "transition": change.name(),
            "reason": match change {
                Change::Disabled(reason) => Some(reason.as_str()),
                _ => None,
            },
            "enabled": subscription.enabled,
            "health": crate::wire::SubscriptionHealth::from_model(&subscription.health),
        }),
    )
}

/// The subscription with a probe claimed at `now` (half-open), to be written conditionally on
/// its version: of several deliveries that find the cool-down over, the one whose write wins
/// is the probe.
pub fn claim_probe(
    subscription: &Subscription,
    now: DateTime<Utc>,
    policy: &HealthPolicy,
) -> Subscription {
    Subscription {
        health: subscription.health.probing(now, policy),
        version: subscription.version + 1,
        ..subscription.clone()
    }
}

/// The subscription as a user's update that enables it leaves it: a subscription Triggerline
/// disabled starts afresh (its failures forgotten, its circuit closed).
pub fn on_enabled(updated: &mut Subscription, was_enabled: bool, now: DateTime<Utc>) {
    if updated.enabled && !was_enabled {
        updated.health = Health {
            changed: Some(now),
            ..Health::default()
        };
    }
}

/// A span for people, to the minute: `5 days 3 h`, `2 h 10 min`, `45 min` (`under a minute`).
fn span(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "under a minute".to_owned(),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (1, h, _) => format!("1 day {h} h"),
        (d, h, _) => format!("{d} days {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn subscription() -> Subscription {
        serde_json::from_value(serde_json::json!({
            "id": "s1", "name": "Listener", "description": null,
            "triggerId": "idn:identity-created", "triggerName": "Identity Created",
            "target": {"type": "HTTP", "url": "https://hooks.example.com/x", "mode": "SYNC",
                       "auth": {"kind": "none"}},
            "responseDeadline": "PT1H", "enabled": true, "filter": null,
            "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ3pXb7yV4gE=",
            "created": "2025-03-14T09:26:53.271Z", "modified": "2025-03-14T09:26:53.271Z",
            "version": 1
        }))
        .unwrap()
    }

    fn fail(s: &Subscription, now: DateTime<Utc>) -> (Subscription, Option<Change>) {
        after_attempt(s, Outcome::Failed, now, &HealthPolicy::default()).unwrap()
    }

    #[test]
    fn a_span_for_people_reads_to_the_minute() {
        use chrono::Duration as D;
        assert_eq!(span(D::seconds(59)), "under a minute");
        assert_eq!(span(D::minutes(45)), "45 min");
        assert_eq!(span(D::minutes(130)), "2 h 10 min");
        assert_eq!(span(D::hours(27)), "1 day 3 h");
        assert_eq!(
            span(D::days(5) + D::hours(3) + D::minutes(59)),
            "5 days 3 h"
        );
        assert_eq!(span(D::seconds(-5)), "under a minute");
    }

    #[test]
    fn a_healthy_subscription_that_succeeds_is_not_written() {
        let s = subscription();
        assert!(after_attempt(&s, Outcome::Succeeded, at(0), &HealthPolicy::default()).is_none());
    }

    #[test]
    fn the_fifth_failure_in_a_row_opens_the_circuit_for_30_seconds() {
        let mut s = subscription();
        for i in 0..4 {
            let (next, change) = fail(&s, at(i));
            assert_eq!(change, None);
            assert_eq!(next.version, s.version + 1);
            s = next;
        }
        assert_eq!(s.health.consecutive_failures, 4);
        assert_eq!(s.health.failing_since, Some(at(0)));
        assert_eq!(gate(&s, at(4), &HealthPolicy::default()), Gate::Send);
        let (s, change) = fail(&s, at(4));
        assert_eq!(change, Some(Change::Opened));
        assert_eq!(s.health.circuit, Circuit::Open);
        assert_eq!(s.health.open_until, Some(at(34)));
        assert_eq!(s.health.changed, Some(at(4)));
        assert_eq!(
            gate(&s, at(10), &HealthPolicy::default()),
            Gate::HoldUntil(at(34))
        );
        assert_eq!(gate(&s, at(34), &HealthPolicy::default()), Gate::Probe);
    }

    #[test]
    fn a_failed_probe_doubles_the_cool_down_up_to_ten_minutes_and_a_success_closes() {
        let policy = HealthPolicy::default();
        let mut s = subscription();
        for i in 0..5 {
            s = fail(&s, at(i)).0;
        }
        let mut now = 4;
        let mut cool_downs = Vec::new();
        for _ in 0..6 {
            now = (s.health.open_until.unwrap() - at(0)).num_seconds();
            s = claim_probe(&s, at(now), &policy);
            assert_eq!(s.health.circuit, Circuit::HalfOpen);
            assert_eq!(gate(&s, at(now + 1), &policy), Gate::HoldUntil(at(now + 6)));
            assert_eq!(
                gate(&s, at(now + 58), &policy),
                Gate::HoldUntil(at(now + 60))
            );
            assert_eq!(
                gate(&s, at(now + 60), &policy),
                Gate::Probe,
                "the probe died"
            );
            let (next, change) = fail(&s, at(now));
            assert_eq!(change, Some(Change::Opened));
            cool_downs.push((next.health.open_until.unwrap() - at(now)).num_seconds());
            s = next;
        }
        assert_eq!(cool_downs, [60, 120, 240, 480, 600, 600]);
        let (closed, change) =
            after_attempt(&s, Outcome::Succeeded, at(now + 700), &policy).unwrap();
        assert_eq!(change, Some(Change::Closed));
        assert_eq!(closed.health.circuit, Circuit::Closed);
        assert_eq!(closed.health.consecutive_failures, 0);
        assert_eq!(closed.health.openings, 0);
        assert_eq!(closed.health.changed, Some(at(now + 700)));
        assert!(after_attempt(&closed, Outcome::Succeeded, at(now + 701), &policy).is_none());
    }

    #[test]
    fn a_success_after_failures_short_of_opening_clears_them_without_a_transition() {
        let s = fail(&subscription(), at(0)).0;
        let (s, change) =
            after_attempt(&s, Outcome::Succeeded, at(1), &HealthPolicy::default()).unwrap();
        assert_eq!(change, None);
        assert_eq!(s.health.consecutive_failures, 0);
        assert_eq!(s.health.failing_since, None);
    }

    #[test]
    fn a_410_disables_at_once_and_enabling_again_starts_afresh() {
        let s = subscription();
        let (mut s, change) =
            after_attempt(&s, Outcome::Gone, at(7), &HealthPolicy::default()).unwrap();
        assert_eq!(
            change,
            Some(Change::Disabled("the receiver answered 410 Gone".into()))
        );
        assert!(!s.enabled);
        assert_eq!(s.health.disabled.as_ref().unwrap().at, at(7));
        assert!(matches!(
            gate(&s, at(8), &HealthPolicy::default()),
            Gate::HoldUntil(_)
        ));
        s.enabled = true;
        on_enabled(&mut s, false, at(9));
        assert_eq!(s.health.disabled, None);
        assert_eq!(s.health.consecutive_failures, 0);
        assert_eq!(gate(&s, at(9), &HealthPolicy::default()), Gate::Send);
    }

    #[test]
    fn failing_for_the_whole_period_disables_and_a_disabled_one_is_not_disabled_twice() {
        let policy = HealthPolicy::default();
        let s = fail(&subscription(), at(0)).0;
        let (s, change) = fail(&s, at(5 * 86_400 - 1));
        assert_eq!(change, None);
        let (s, change) = fail(&s, at(5 * 86_400));
        assert!(matches!(change, Some(Change::Disabled(ref r)) if r.contains("5 days")));
        assert!(!s.enabled);
        assert_eq!(s.health.circuit, Circuit::Closed);
        let (_, change) = after_attempt(&s, Outcome::Gone, at(5 * 86_400 + 1), &policy).unwrap();
        assert_eq!(change, None);
    }

    #[test]
    fn settings_are_checked_and_name_the_variable() {
        let policy =
            HealthPolicy::from_settings(Some("3"), Some("PT1S"), Some("PT4S"), Some("PT1H"))
                .unwrap();
        assert_eq!(policy.failures_to_open, 3);
        assert_eq!(policy.cool_down_for(4), Duration::seconds(4));
        assert_eq!(
            HealthPolicy::from_settings(None, None, None, Some(" ")).unwrap(),
            HealthPolicy::default()
        );
        for (settings, name) in [
            ((Some("0"), None, None, None), env::CIRCUIT_FAILURES),
            ((Some("-1"), None, None, None), env::CIRCUIT_FAILURES),
            (
                (Some("99999999999"), None, None, None),
                env::CIRCUIT_FAILURES,
            ),
            ((None, Some("PT0S"), None, None), env::CIRCUIT_COOL_DOWN),
            ((None, Some("30"), None, None), env::CIRCUIT_COOL_DOWN),
            (
                (None, Some("PT1M"), Some("PT30S"), None),
                env::CIRCUIT_MAX_COOL_DOWN,
            ),
            (
                (None, None, Some("P96000000D"), None),
                env::CIRCUIT_MAX_COOL_DOWN,
            ),
            ((None, None, None, Some("PT59M")), env::DISABLE_AFTER),
            ((None, None, None, Some("P400D")), env::DISABLE_AFTER),
        ] {
            let (f, c, m, d) = settings;
            let e = HealthPolicy::from_settings(f, c, m, d).unwrap_err();
            assert_eq!(e.name, name, "{settings:?}: {e}");
            assert_eq!(e.to_string().matches(name).count(), 1, "named once: {e}");
        }
    }

    #[test]
    fn cool_downs_do_not_overflow() {
        let policy = HealthPolicy::default();
        assert_eq!(policy.cool_down_for(1), Duration::seconds(30));
        assert_eq!(policy.cool_down_for(u32::MAX), Duration::minutes(10));
    }
}
