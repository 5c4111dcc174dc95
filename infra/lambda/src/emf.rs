//! The functions' metrics as CloudWatch embedded metric format (EMF): JSON lines on stdout that
//! CloudWatch Logs turns into metrics, with no API call and no agent.
//!
//! [`Emf`] is the functions' recorder for the `metrics` facade that the use cases record through
//! ([`triggerline::telemetry`]). It adds up counters and keeps histogram samples in memory, and
//! [`flush`] writes them as one line per distinct set of labels, once per Lambda invocation
//! (the mains call it when a handler returns: [`metered`]): a batch of ten SQS records is a
//! line or two, not one per attempt.
//!
//! What becomes a dimension: the small fixed label sets ([`DIMENSIONS`]: attempt outcome,
//! status, state, store operation, sweep result). The trigger id is written into the line as a
//! property, not a dimension: every dimension value is a billed custom metric, and per-trigger
//! numbers are a CloudWatch Logs Insights query away (`stats sum(DeliveryAttempts) by Trigger`).
//! Gauges are not emitted: a gauge read when a function's invocation ends says nothing about
//! the service (Lambda's own `ConcurrentExecutions` and SQS's queue metrics say it).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, SharedString, Unit};
use serde_json::{Map, Value, json};

/// The namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "Triggerline";

/// Labels written as CloudWatch dimensions; any other label is a property of the line.
pub const DIMENSIONS: &[&str] = &["outcome", "status", "from", "to", "operation", "result"];

/// EMF takes at most 100 values per metric in one line; more samples go into further lines.
const MAX_VALUES: usize = 100;

/// Samples one histogram series keeps between flushes; past it, samples are dropped (a handler
/// that records this many between flushes is not one of Triggerline's).
const MAX_SAMPLES: usize = 10 * MAX_VALUES;

/// One metric's values in a line: its CloudWatch name, unit, and values.
type Values = (String, Option<&'static str>, Vec<f64>);

/// The recorder: counters and histogram samples since the last flush, by series.
#[derive(Debug)]
pub struct Emf {
    namespace: String,
    series: Mutex<Series>,
}

#[derive(Debug, Default)]
struct Series {
    counters: BTreeMap<Key, Arc<AtomicU64>>,
    histograms: BTreeMap<Key, Arc<Samples>>,
    units: HashMap<String, Unit>,
}

/// One histogram series' samples since the last flush.
#[derive(Debug, Default)]
struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        let mut samples = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < MAX_SAMPLES {
            samples.push(value);
        }
    }
}

impl Emf {
    pub fn new(namespace: impl Into<String>) -> Emf {
        Emf {
            namespace: namespace.into(),
            series: Mutex::new(Series::default()),
        }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        // A panic while holding the lock left counters, not invariants: keep going.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes everything recorded since the last call as EMF lines (one JSON object per line)
    /// to `out`, and starts again from zero. Writes nothing when nothing was recorded.
    pub fn write_lines(&self, out: &mut impl Write) -> std::io::Result<()> {
        for line in self.take_lines(now_millis()) {
            let mut text = serde_json::to_vec(&line)?;
            text.push(b'\n');
            // One write per line, so that no log line lands in the middle of it.
            out.write_all(&text)?;
        }
        out.flush()
    }

    /// The EMF documents of everything recorded since the last call, stamped `timestamp`
    /// (epoch milliseconds).
    pub fn take_lines(&self, timestamp: u64) -> Vec<Value> {
        let series = self.series();
        // Values by label set.
        let mut by_labels: BTreeMap<Vec<Label>, Vec<Values>> = BTreeMap::new();
        for (key, count) in &series.counters {
            let n = count.swap(0, Ordering::Relaxed);
            if n > 0 {
                by_labels
                    .entry(key.labels().cloned().collect())
                    .or_default()
                    .push((cloudwatch_name(key.name()), Some("Count"), vec![n as f64]));
            }
        }
        for (key, samples) in &series.histograms {
            let taken = std::mem::take(&mut *samples.0.lock().unwrap_or_else(|e| e.into_inner()));
            if taken.is_empty() {
                continue;
            }
            let (unit, scale) = match series.units.get(key.name()) {
                // CloudWatch shows latencies in milliseconds.
                Some(Unit::Seconds) => (Some("Milliseconds"), 1000.0),
                Some(Unit::Count) => (Some("Count"), 1.0),
                _ => (None, 1.0),
            };
            by_labels
                .entry(key.labels().cloned().collect())
                .or_default()
                .push((
                    cloudwatch_name(key.name()),
                    unit,
                    taken.into_iter().map(|v| v * scale).collect(),
                ));
        }
        drop(series);
        let mut lines = Vec::new();
        for (labels, metrics) in by_labels {
            let mut rest = metrics;
            // Each pass writes up to 100 values of every metric; a histogram with more goes on
            // in the next line (counters are single values and go in the first).
            while !rest.is_empty() {
                let mut line = Map::new();
                let mut dimensions = Vec::new();
                for label in &labels {
                    let name = camel(label.key());
                    if DIMENSIONS.contains(&label.key()) {
                        dimensions.push(name.clone());
                    }
                    line.insert(name, json!(label.value()));
                }
                let mut declared = Vec::new();
                let mut left = Vec::new();
                for (name, unit, mut values) in rest {
                    let more = values.split_off(values.len().min(MAX_VALUES));
                    let value = match values.as_slice() {
                        [one] => json!(one),
                        many => json!(many),
                    };
                    declared.push(match unit {
                        Some(unit) => json!({"Name": name, "Unit": unit}),
                        None => json!({"Name": name}),
                    });
                    line.insert(name.clone(), value);
                    if !more.is_empty() {
                        left.push((name, unit, more));
                    }
                }
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": [dimensions],
                            "Metrics": declared,
                        }],
                    }),
                );
                lines.push(Value::Object(line));
                rest = left;
            }
        }
        lines
    }
}

impl metrics::Recorder for Emf {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut series = self.series();
        Counter::from_arc(series.counters.entry(key.clone()).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut series = self.series();
        Histogram::from_arc(series.histograms.entry(key.clone()).or_default().clone())
    }
}

impl Emf {
    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let Some(unit) = unit {
            self.series().units.insert(key.as_str().to_owned(), unit);
        }
    }
}

/// `triggerline_delivery_attempts_total` → `DeliveryAttempts`: the Prometheus name without its
/// prefix and unit suffix, in CloudWatch's CamelCase.
pub fn cloudwatch_name(name: &str) -> String {
    let bare = name.strip_prefix("triggerline_").unwrap_or(name);
    let bare = ["_total", "_seconds"]
        .iter()
        .find_map(|suffix| bare.strip_suffix(suffix))
        .unwrap_or(bare);
    camel(bare)
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The installed recorder, if [`install`] installed one.
static INSTALLED: OnceLock<&'static Emf> = OnceLock::new();

/// Installs an [`Emf`] recorder for `namespace` as the process's `metrics` recorder (once; later
/// calls do nothing), and describes Triggerline's metrics to it.
pub fn install(namespace: &str) {
    if INSTALLED.get().is_some() {
        return;
    }
    // Leaked once per process: the global recorder lives as long as the process anyway.
    let emf: &'static Emf = Box::leak(Box::new(Emf::new(namespace)));
    match metrics::set_global_recorder(emf) {
        Ok(()) => {
            let _ = INSTALLED.set(emf);
            triggerline::telemetry::describe();
        }
        Err(e) => tracing::warn!(error = %e, "another metrics recorder is installed; no EMF"),
    }
}

/// Writes the metrics recorded since the last flush to stdout, where Lambda sends them to
/// CloudWatch Logs. Call it when a handler returns ([`metered`] does).
pub fn flush() {
    let Some(emf) = INSTALLED.get() else {
        return;
    };
    if let Err(e) = emf.write_lines(&mut std::io::stdout().lock()) {
        tracing::warn!(error = %e, "metrics not written");
    }
}

/// Runs `handler` and then [`flush`]es: what a function's main wraps each invocation in.
pub async fn metered<F: std::future::Future>(handler: F) -> F::Output {
    let output = handler.await;
    flush();
    output
}

/// [`flush`]es, then passes `response` on: a router's response mapping
/// (`axum::middleware::map_response(emf::flushed::<Response>)`), so an HTTP function writes
/// each request's metrics as its handler answers.
pub async fn flushed<R>(response: R) -> R {
    flush();
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use metrics::Recorder;
    use triggerline::telemetry;

    use super::*;

    /// A recorder of its own, set for this thread only while `record` runs.
    fn recorded(record: impl FnOnce()) -> Vec<Value> {
        let emf = Emf::new("Triggerline/test");
        metrics::with_local_recorder(&emf, || {
            telemetry::describe();
            record();
        });
        emf.take_lines(1_741_944_413_271)
    }

    fn line_with<'a>(lines: &'a [Value], metric: &str) -> Vec<&'a Value> {
        lines.iter().filter(|l| l.get(metric).is_some()).collect()
    }

    #[test]
    fn names_are_camel_case_without_prefix_or_unit() {
        assert_eq!(cloudwatch_name(telemetry::ATTEMPTS), "DeliveryAttempts");
        assert_eq!(
            cloudwatch_name(telemetry::ATTEMPT_DURATION),
            "DeliveryDuration"
        );
        assert_eq!(cloudwatch_name(telemetry::SWEEPS), "Sweeps");
        assert_eq!(
            cloudwatch_name(telemetry::STORE_WRITE),
            "StoreWriteDuration"
        );
    }

    #[test]
    fn a_line_declares_its_namespace_dimensions_and_units_at_its_root() {
        let lines = recorded(|| {
            for _ in 0..3 {
                telemetry::attempted(
                    "idn:identity-created",
                    triggerline::model::AttemptOutcome::Failed,
                    std::time::Duration::from_millis(250),
                );
            }
        });

        // Counted and timed attempts: one line per label set.
        let counted = line_with(&lines, "DeliveryAttempts");
        assert_eq!(counted.len(), 1, "{lines:#?}");
        let line = counted[0];
        assert_eq!(line["DeliveryAttempts"], json!(3.0));
        assert_eq!(line["Outcome"], "failed");
        assert_eq!(line["Trigger"], "idn:identity-created");
        let aws = &line["_aws"];
        assert_eq!(aws["Timestamp"], 1_741_944_413_271_u64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Triggerline/test");
        // The trigger is a property, not a dimension.
        assert_eq!(directive["Dimensions"], json!([["Outcome"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "DeliveryAttempts", "Unit": "Count"}])
        );

        let timed = line_with(&lines, "DeliveryDuration");
        assert_eq!(timed.len(), 1, "{lines:#?}");
        assert_eq!(timed[0]["DeliveryDuration"], json!([250.0, 250.0, 250.0]));
        assert_eq!(
            timed[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "DeliveryDuration", "Unit": "Milliseconds"}])
        );
        assert_eq!(
            timed[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        // Every metric a line declares is a number or numbers at its root.
        for line in &lines {
            for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
            {
                let name = metric["Name"].as_str().unwrap();
                assert!(line[name].is_number() || line[name].is_array(), "{line}");
            }
        }
    }

    #[test]
    fn a_flush_starts_again_from_zero() {
        let emf = Emf::new(DEFAULT_NAMESPACE);
        metrics::with_local_recorder(&emf, || {
            metrics::counter!(telemetry::SWEEPS, "result" => "error").increment(1);
        });
        let first = emf.take_lines(1);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["Sweeps"], json!(1.0));
        assert_eq!(first[0]["Result"], "error");
        assert!(emf.take_lines(2).is_empty(), "nothing new, nothing written");

        metrics::with_local_recorder(&emf, || {
            metrics::counter!(telemetry::SWEEPS, "result" => "error").increment(2);
        });
        assert_eq!(emf.take_lines(3)[0]["Sweeps"], json!(2.0));
    }

    #[test]
    fn more_than_a_hundred_samples_go_on_in_further_lines() {
        let emf = Emf::new(DEFAULT_NAMESPACE);
        metrics::with_local_recorder(&emf, || {
            telemetry::describe();
            for _ in 0..150 {
                telemetry::store_write("settle", std::time::Duration::from_millis(2));
            }
        });
        let lines = emf.take_lines(1);
        let sizes: Vec<usize> = lines
            .iter()
            .map(|l| l["StoreWriteDuration"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 50]);
        for line in &lines {
            assert_eq!(line["Operation"], "settle");
            assert_eq!(
                line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                json!([["Operation"]])
            );
        }
    }

    #[test]
    fn gauges_are_not_emitted_and_lines_are_json() {
        let emf = Emf::new(DEFAULT_NAMESPACE);
        metrics::with_local_recorder(&emf, || {
            let _in_flight = telemetry::InFlight::start();
            metrics::counter!(telemetry::PURGED).increment(4);
        });
        let mut out = Vec::new();
        emf.write_lines(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["Purged"], json!(4.0));
        assert!(!text.contains("InFlight"), "{text}");
        // A metric with no labels has the empty dimension set.
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        // The recorder describes nothing it is not told.
        emf.describe_gauge("x".into(), Some(Unit::Count), "".into());
    }
}
