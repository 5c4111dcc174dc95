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

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use triggerline::time::Clock;
use triggerline_embedded::Sqlite;
use triggerline_http::ApiAuth;

/// Work in the queue, by `state` (`due`, `scheduled`, `leased`); read at scrape time.
pub const QUEUE_DEPTH: &str = "triggerline_queue_depth";
/// Open invocations, by `status` (`PENDING`, `ACKNOWLEDGED`); read at scrape time.
pub const OPEN: &str = "triggerline_invocations_open";

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
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics is off");
            return None;
        }
    };
    triggerline::telemetry::describe();
    metrics::describe_gauge!(
        QUEUE_DEPTH,
        metrics::Unit::Count,
        "Work in the delivery queue, by state (due, scheduled, leased); read at scrape time."
    );
    metrics::describe_gauge!(
        OPEN,
        metrics::Unit::Count,
        "Open invocations, by status; read at scrape time."
    );
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
