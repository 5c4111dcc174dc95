//! `GET /metrics`: the local stack's metrics in Prometheus' text format.
//!
//! The use cases record through the `metrics` facade ([`triggerline::telemetry`]); this module
//! installs the process's recorder (the Prometheus exporter, without its own listener: the
//! route is served by the app's router) and answers scrapes. Counters and histograms are
//! recorded where things happen; the gauges that describe the store (queue depth, open
//! invocations by status) are read from it at scrape time, in a few bounded walks of its
//! existing indexes ([`triggerline_embedded::StoreGauges`]), so no request pays for them and
//! they are right after a restart. On the AWS backend the queue is SQS, whose depth CloudWatch
//! already has; those gauges are left out there.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::KeyHasher;
use triggerline::time::Clock;
use triggerline_embedded::Sqlite;
use triggerline_http::ApiAuth;

/// Work in the queue, by `state` (`due`, `scheduled`, `leased`); read at scrape time.
pub const QUEUE_DEPTH: &str = "triggerline_queue_depth";
/// Open invocations, by `status` (`PENDING`, `ACKNOWLEDGED`); read at scrape time.
pub const OPEN: &str = "triggerline_invocations_open";

/// Connections being served now; set by the server as they open and close.
pub const CONNECTIONS_OPEN: &str = "triggerline_connections_open";
/// The most connections served at once (`--max-connections` or its default).
pub const CONNECTIONS_MAX: &str = "triggerline_connections_max";
/// Requests and answers the server gave up on, by `reason`: `body_late` (the body missed the
/// client timeout: 408), `body_memory` (the bodies' memory budget was spent: 503),
/// `answer_untaken` (the client took nothing of an answer for the client timeout).
pub const CUT: &str = "triggerline_requests_cut_total";

/// Upper bounds of the latency histograms' buckets, in seconds: from a local store write
/// (about a millisecond) to a synchronous start's longest wait.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into their buckets between scrapes (the exporter
/// keeps raw samples until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The text format's content type (version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's Prometheus recorder, installed by the first call. A process has one global
/// recorder; every app built in it (the tests build many) reports into it. `None` when another
/// recorder was installed first: then `/metrics` answers 503 saying so.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> Option<PrometheusHandle> {
    let builder = match PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
    {
        Ok(builder) => builder,
        Err(e) => {
            tracing::error!(error = %e, "metrics: invalid histogram buckets");
            return None;
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(KeptHandles::new(recorder)) {
        tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics is off");
        return None;
    }
    triggerline::telemetry::describe();
    for (gauge, help) in [
        (
            QUEUE_DEPTH,
            "Work in the delivery queue, by state (due, scheduled, leased); read at scrape time.",
        ),
        (OPEN, "Open invocations, by status; read at scrape time."),
        (CONNECTIONS_OPEN, "Connections being served now."),
        (
            CONNECTIONS_MAX,
            "The most connections served at once; more wait to be accepted.",
        ),
    ] {
        metrics::describe_gauge!(gauge, metrics::Unit::Count, help);
    }
    metrics::describe_counter!(
        CUT,
        metrics::Unit::Count,
        "Requests and answers given up on, by reason (body_late, body_memory, answer_untaken)."
    );
    // Shown at zero from the start, as documented, rather than from the first cut on: a
    // dashboard or alert on a reason then has a series before anything went wrong.
    for reason in ["body_late", "body_memory", "answer_untaken"] {
        metrics::counter!(CUT, "reason" => reason).absolute(0);
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        // Scrapes fold the samples in as well; without scrapes they pile up.
        tracing::warn!(error = %e, "metrics: no upkeep thread");
    }
    Some(handle)
}

/// A recorder that keeps the handles `inner` gives out. Prometheus' recorder copies a key's
/// labels and wraps its handle in a new `Arc` on every `counter!`/`histogram!` call: two mallocs
/// per call, about 18 per F&F delivery (of about 230). A key seen before costs a lookup and an
/// `Arc` clone here. Keys are bounded sets (`triggerline::telemetry` says which), so the maps
/// stay as small as the registry itself.
struct KeptHandles<R> {
    inner: R,
    counters: RwLock<Handles<Counter>>,
    gauges: RwLock<Handles<Gauge>>,
    histograms: RwLock<Handles<Histogram>>,
}

/// Handles by key. A `Key` hashes as the hash it computed when it was made, so the map uses
/// that instead of running SipHash over it on every `counter!` call.
type Handles<H> = HashMap<Key, H, BuildHasherDefault<KeyHasher>>;

impl<R> KeptHandles<R> {
    fn new(inner: R) -> Self {
        KeptHandles {
            inner,
            counters: RwLock::default(),
            gauges: RwLock::default(),
            histograms: RwLock::default(),
        }
    }
}

/// The handle kept for `key`, or the one `register` makes, kept from now on.
fn kept<H: Clone>(map: &RwLock<Handles<H>>, key: &Key, register: impl FnOnce() -> H) -> H {
    if let Some(handle) = map.read().unwrap_or_else(PoisonError::into_inner).get(key) {
        return handle.clone();
    }
    map.write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key.clone())
        .or_insert_with(register)
        .clone()
}

impl<R: Recorder> Recorder for KeptHandles<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        kept(&self.counters, key, || {
            self.inner.register_counter(key, metadata)
        })
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        kept(&self.gauges, key, || {
            self.inner.register_gauge(key, metadata)
        })
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        kept(&self.histograms, key, || {
            self.inner.register_histogram(key, metadata)
        })
    }
}

/// What a scrape reads.
#[derive(Clone, Debug)]
pub struct Scrape {
    handle: Option<PrometheusHandle>,
    /// The SQLite store, for its gauges (`None` on the AWS backend).
    store: Option<Sqlite>,
    clock: Arc<dyn Clock>,
}

/// The `/metrics` route: open, or behind its own bearer token when `token` is set (not the
/// management token: a scraper should not hold the keys to the API).
pub fn router(store: Option<Sqlite>, clock: Arc<dyn Clock>, token: Option<Arc<str>>) -> Router {
    let auth = token.map_or(ApiAuth::Upstream, ApiAuth::Token);
    Router::new()
        .route("/metrics", get(scrape))
        .route_layer(middleware::from_fn_with_state(
            auth,
            triggerline_http::require_bearer,
        ))
        .with_state(Scrape {
            handle: recorder(),
            store,
            clock,
        })
}

async fn scrape(State(scrape): State<Scrape>) -> Response {
    let Some(handle) = &scrape.handle else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are off: another metrics recorder was installed in this process\n",
        )
            .into_response();
    };
    if let Some(store) = &scrape.store {
        match store.gauges(scrape.clock.now()).await {
            Ok(g) => {
                let depth = [
                    ("due", g.due),
                    ("scheduled", g.scheduled),
                    ("leased", g.leased),
                ];
                for (state, n) in depth {
                    metrics::gauge!(QUEUE_DEPTH, "state" => state).set(n as f64);
                }
                let open = [("PENDING", g.pending()), ("ACKNOWLEDGED", g.acknowledged)];
                for (status, n) in open {
                    metrics::gauge!(OPEN, "status" => status).set(n as f64);
                }
            }
            // The rest of the page is still worth having; the gauges keep their last values.
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the store's gauges"),
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render()).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every call through the kept handles lands in the recorder's series, the first and the
    /// repeated ones alike, each label set in its own.
    #[test]
    fn kept_handles_record_into_the_inner_recorders_series() {
        let prometheus = PrometheusBuilder::new().build_recorder();
        let handle = prometheus.handle();
        let kept = KeptHandles::new(prometheus);
        metrics::with_local_recorder(&kept, || {
            for trigger in ["a", "a", "a", "b"] {
                metrics::counter!("kept_total", "trigger" => trigger).increment(1);
                metrics::gauge!("kept_gauge").increment(2.0);
                metrics::histogram!("kept_seconds", "trigger" => trigger).record(0.5);
            }
        });
        let page = handle.render();
        for line in [
            "kept_total{trigger=\"a\"} 3",
            "kept_total{trigger=\"b\"} 1",
            "kept_gauge 8",
            "kept_seconds_count{trigger=\"a\"} 3",
            "kept_seconds_count{trigger=\"b\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} not in:\n{page}");
        }
        assert_eq!(kept.counters.read().unwrap().len(), 2);
    }
}
