//! Resource names and switches, read from the environment once, at the edge (a Lambda's `main`,
//! or `triggerline --backend aws`). Every name has a default, so a development stack on an
//! emulator needs no configuration beyond `AWS_ENDPOINT_URL`.

/// Environment variables, named once.
pub mod env {
    pub const SUBSCRIPTIONS_TABLE: &str = "TRIGGERLINE_SUBSCRIPTIONS_TABLE";
    pub const INVOCATIONS_TABLE: &str = "TRIGGERLINE_INVOCATIONS_TABLE";
    pub const WORK_QUEUE: &str = "TRIGGERLINE_WORK_QUEUE";
    pub const DEAD_LETTER_QUEUE: &str = "TRIGGERLINE_DEAD_LETTER_QUEUE";
    pub const ORDERED_QUEUE: &str = "TRIGGERLINE_ORDERED_QUEUE";
    /// How often an acknowledged ordered invocation is looked at again (ISO-8601 duration),
    /// read by the edges with [`super::order_recheck`].
    pub const ORDER_RECHECK: &str = "TRIGGERLINE_ORDER_RECHECK";
    pub const EVENT_BUS: &str = "TRIGGERLINE_EVENT_BUS";
    pub const SUBSCRIBER_BUS: &str = "TRIGGERLINE_SUBSCRIBER_BUS";
    pub const EVENT_SOURCE: &str = "TRIGGERLINE_EVENT_SOURCE";
    pub const CREATE_RESOURCES: &str = "TRIGGERLINE_AWS_CREATE_RESOURCES";
}

/// Where Triggerline's state lives on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// DynamoDB table of subscriptions.
    pub subscriptions_table: String,
    /// DynamoDB table of invocations.
    pub invocations_table: String,
    /// SQS work queue: a queue URL, or a name resolved with `GetQueueUrl` at start.
    pub work_queue: String,
    /// SQS dead-letter queue of the work queue: a queue URL or a name. Created with the other
    /// resources; the queue consumer sends a record failing on its last receive there.
    pub dead_letter_queue: String,
    /// SQS FIFO queue of the work of invocations with an ordering key (one message group per
    /// subscription and key): a queue URL or a name (ending in `.fifo`).
    pub ordered_queue: String,
    /// How long an ordered invocation that was acknowledged (ASYNC: it waits for its callback)
    /// keeps its key's queue before it is looked at again; when it is found finished, the next
    /// of its key goes (see `crate::sqs`).
    pub order_recheck: std::time::Duration,
    /// Triggerline's own EventBridge bus: completion events go here.
    pub event_bus: String,
    /// Name of the bus EVENTBRIDGE subscriptions deliver to, in the subscriber's account and
    /// region (`arn:aws:events:<region>:<account>:event-bus/<name>`).
    pub subscriber_bus: String,
    /// `Source` of every event Triggerline puts.
    pub event_source: String,
    /// Create missing tables, queues and bus at start (development against an emulator; never
    /// on by default, so a real account is only changed by its template).
    pub create_resources: bool,
    /// How long finished invocations are kept before DynamoDB's TTL deletes them; `None`: no
    /// TTL is written. The functions always set it (from `TRIGGERLINE_RETENTION_*`, read by
    /// `triggerline_lambda::FunctionEnv`), since no purge runs on AWS; the local server's
    /// `--backend aws` leaves it off and purges on its own timer.
    pub retention: Option<InvocationTtl>,
}

/// How long after it finished an invocation expires (DynamoDB TTL), by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationTtl {
    /// COMPLETED invocations.
    pub succeeded: chrono::Duration,
    /// FAILED and TIMED_OUT invocations.
    pub failed: chrono::Duration,
}

/// [`AwsSettings::order_recheck`] unless [`env::ORDER_RECHECK`] says otherwise.
pub const DEFAULT_ORDER_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads [`env::ORDER_RECHECK`]: an ISO-8601 duration of 1 second to 12 hours (SQS's longest
/// visibility timeout), whole seconds. The error says why, for a message naming the variable.
pub fn order_recheck(text: &str) -> Result<std::time::Duration, String> {
    let parsed = triggerline::duration::IsoDuration::parse(env::ORDER_RECHECK, text.trim())
        .map_err(|e| e.to_string())?;
    let ms = parsed.as_millis();
    if !(1_000..=43_200_000).contains(&ms) || ms % 1_000 != 0 {
        return Err(format!(
            "{text} is not a whole number of seconds from PT1S to PT12H"
        ));
    }
    Ok(std::time::Duration::from_millis(ms))
}

/// Checks an event `source` against EventBridge's rules: 1 to 256 characters, and not in the
/// `aws.` namespace, which AWS keeps for its own services. Every `PutEvents` with another would
/// fail while running; a function refuses it at start instead.
pub fn event_source(text: &str) -> Result<(), String> {
    if text.is_empty() || text.chars().count() > 256 {
        return Err(format!("`{text}` must be 1 to 256 characters"));
    }
    if text.to_ascii_lowercase().starts_with("aws.") {
        return Err(format!(
            "`{text}` is in the `aws.` namespace, which AWS keeps for itself"
        ));
    }
    Ok(())
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            subscriptions_table: "triggerline-subscriptions".into(),
            invocations_table: "triggerline-invocations".into(),
            work_queue: "triggerline-work".into(),
            dead_letter_queue: "triggerline-work-dlq".into(),
            ordered_queue: "triggerline-ordered.fifo".into(),
            order_recheck: DEFAULT_ORDER_RECHECK,
            event_bus: "triggerline".into(),
            subscriber_bus: "default".into(),
            event_source: "triggerline".into(),
            create_resources: false,
            retention: None,
        }
    }
}

impl AwsSettings {
    /// Defaults overridden by whatever of [`env`] is set.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`AwsSettings::from_env`] over any lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let d = AwsSettings::default();
        let text =
            |name: &str, default: String| lookup(name).filter(|v| !v.is_empty()).unwrap_or(default);
        AwsSettings {
            subscriptions_table: text(env::SUBSCRIPTIONS_TABLE, d.subscriptions_table),
            invocations_table: text(env::INVOCATIONS_TABLE, d.invocations_table),
            work_queue: text(env::WORK_QUEUE, d.work_queue),
            dead_letter_queue: text(env::DEAD_LETTER_QUEUE, d.dead_letter_queue),
            ordered_queue: text(env::ORDERED_QUEUE, d.ordered_queue),
            order_recheck: d.order_recheck,
            event_bus: text(env::EVENT_BUS, d.event_bus),
            subscriber_bus: text(env::SUBSCRIBER_BUS, d.subscriber_bus),
            event_source: text(env::EVENT_SOURCE, d.event_source),
            create_resources: lookup(env::CREATE_RESOURCES)
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            retention: None,
        }
    }

    /// The same names with `prefix` in front (tests: one set of resources per test).
    pub fn prefixed(&self, prefix: &str) -> Self {
        AwsSettings {
            subscriptions_table: format!("{prefix}{}", self.subscriptions_table),
            invocations_table: format!("{prefix}{}", self.invocations_table),
            work_queue: format!("{prefix}{}", self.work_queue),
            dead_letter_queue: format!("{prefix}{}", self.dead_letter_queue),
            ordered_queue: format!("{prefix}{}", self.ordered_queue),
            event_bus: format!("{prefix}{}", self.event_bus),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_defaults_and_empty_values_do_not() {
        let settings = AwsSettings::from_lookup(|name| match name {
            env::INVOCATIONS_TABLE => Some("prod-invocations".into()),
            env::EVENT_BUS => Some(String::new()),
            env::CREATE_RESOURCES => Some("TRUE".into()),
            _ => None,
        });
        assert_eq!(settings.invocations_table, "prod-invocations");
        assert_eq!(settings.event_bus, "triggerline");
        assert_eq!(settings.subscriptions_table, "triggerline-subscriptions");
        assert!(settings.create_resources);
        assert!(!AwsSettings::from_lookup(|_| None).create_resources);
    }

    #[test]
    fn the_order_recheck_is_whole_seconds_from_one_second_to_twelve_hours() {
        assert_eq!(order_recheck("PT1S"), Ok(std::time::Duration::from_secs(1)));
        assert_eq!(
            order_recheck(" PT12H "),
            Ok(std::time::Duration::from_secs(43_200))
        );
        for bad in [
            "PT0S", "PT0.5S", "PT1.5S", "PT12H1S", "P1D", "30", "", "soon",
        ] {
            assert!(order_recheck(bad).is_err(), "{bad} was taken");
        }
    }
}
