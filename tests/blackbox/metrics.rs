//! `GET /metrics` and the state-change log lines of the real `triggerline` binary: real
//! deliveries to real receivers, then a scrape, then the logs. The binary runs in its own
//! process, so its metrics are its own (an app built in this test process would share the one
//! global recorder with every other test here).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{CREATED, PRE, approval, example};
use crate::helpers::{TOKEN, http_subscription};
use crate::receiver::{Answer, Receiver};

const SCRAPE_TOKEN: &str = "scrape-token";
const FAILING: &str = "idn:source-created";
const DYNAMIC: &str = "idn:access-request-dynamic-approver";

/// One series of a Prometheus text page.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format: `name{a="x",b="y"} value` per line; `#` lines are help and type.
fn parse(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// The sum of the series of `name` carrying every label of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Server {
    fn start(data: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_triggerline"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            // Retention deletes a failed invocation a second after it failed, and runs every
            // second, so a purge is seen within the test.
            .args(["--retention-failed", "PT1S", "--purge-interval", "PT1S"])
            .arg("--data-dir")
            .arg(data)
            .env("TRIGGERLINE_API_TOKEN", TOKEN)
            .env("TRIGGERLINE_METRICS_TOKEN", SCRAPE_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = stdout.next().expect("exited before listening").unwrap();
            if let Some(url) = line.strip_prefix("triggerline listening on ") {
                break url.to_owned();
            }
        };
        Server {
            child,
            base,
            client: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Subscribes `url` and returns the subscription's id.
    async fn subscribe(&self, trigger: &str, url: &str, mode: &str) -> String {
        let created = self
            .post(
                "/trigger-subscriptions/v1",
                &http_subscription(trigger, url, mode),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let body: Value = created.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    async fn raise(&self, body: Value) -> reqwest::Response {
        self.post("/trigger-invocations/v1/start", &body).await
    }

    async fn scrape(&self) -> Vec<Sample> {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .bearer_auth(SCRAPE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        parse(&response.text().await.unwrap())
    }

    /// Scrapes until `holds` is true of the page, for at most 20 s.
    async fn scrape_until(&self, what: &str, holds: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let samples = self.scrape().await;
            if holds(&samples) {
                return samples;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within 20 s: {samples:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server with SIGTERM and returns its JSON log lines.
    async fn stop(mut self) -> Vec<Value> {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let mut stderr = self.child.stderr.take().unwrap();
        let mut child = self.child;
        let logs = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || {
                let mut logs = String::new();
                stderr.read_to_string(&mut logs).unwrap();
                child.wait().unwrap();
                logs
            }),
        )
        .await
        .expect("no graceful stop within 30 s")
        .unwrap();
        logs.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_move_the_counters_histograms_and_gauges_and_each_state_change_is_logged() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let mut delivered = Receiver::start(vec![Answer::Empty(200)]).await;
    let refusing = Receiver::start(vec![Answer::Empty(400)]).await;
    let approving = Receiver::start(vec![Answer::Json(200, approval())]).await;
    let mut acknowledging = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    server.subscribe(CREATED, &delivered.url, "SYNC").await;
    server.subscribe(FAILING, &refusing.url, "SYNC").await;
    server.subscribe(PRE, &approving.url, "SYNC").await;
    let dynamic = server.subscribe(DYNAMIC, &acknowledging.url, "ASYNC").await;

    // The scrape has its own token: none, or the API's, is refused.
    let url = format!("{}/metrics", server.base);
    let anonymous = server.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let with_api_token = server
        .client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(with_api_token.status(), StatusCode::UNAUTHORIZED);
    let before = server.scrape().await;
    assert_eq!(
        value(&before, "triggerline_delivery_attempts_total", &[]),
        0.0
    );
    // Every documented reason of a cut request is there at zero before any cut.
    for reason in ["body_late", "body_memory", "answer_untaken"] {
        assert!(
            before
                .iter()
                .any(|s| s.name == "triggerline_requests_cut_total"
                    && s.labels.get("reason").map(String::as_str) == Some(reason)
                    && s.value == 0.0),
            "no {reason} series"
        );
    }

    // Delivered, refused (a 400 is not retried: FAILED after one attempt), acknowledged, and
    // one for an hour from now.
    for (trigger, input) in [(CREATED, example(CREATED)), (FAILING, example(FAILING))] {
        let started = server
            .raise(json!({"triggerId": trigger, "input": input}))
            .await;
        assert_eq!(started.status(), StatusCode::ACCEPTED);
    }
    let started = server
        .raise(json!({"triggerId": DYNAMIC, "input": example(DYNAMIC)}))
        .await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let later = server
        .raise(json!({"triggerId": CREATED, "input": example(CREATED), "delay": "PT1H"}))
        .await;
    assert_eq!(later.status(), StatusCode::ACCEPTED);
    // A synchronous start, answered by its SYNC subscriber.
    let answered = server
        .raise(json!({"triggerId": PRE, "input": example(PRE), "isSynchronous": true}))
        .await;
    assert_eq!(answered.status(), StatusCode::OK);
    delivered.next().await;
    let acknowledged = acknowledging.next().await.body;

    let page = server
        .scrape_until("the three background deliveries", |s| {
            value(s, "triggerline_deliveries_total", &[]) >= 4.0
        })
        .await;
    let count = |name: &str, labels: &[(&str, &str)]| value(&page, name, labels);
    let attempts = "triggerline_delivery_attempts_total";
    assert_eq!(
        count(attempts, &[("trigger", CREATED), ("outcome", "completed")]),
        1.0
    );
    assert_eq!(
        count(attempts, &[("trigger", FAILING), ("outcome", "failed")]),
        1.0
    );
    assert_eq!(
        count(
            attempts,
            &[("trigger", DYNAMIC), ("outcome", "acknowledged")]
        ),
        1.0
    );
    assert_eq!(
        count(attempts, &[("trigger", PRE), ("outcome", "completed")]),
        1.0
    );
    assert_eq!(count(attempts, &[]), 4.0, "the delayed one is not due");
    let deliveries = "triggerline_deliveries_total";
    assert_eq!(
        count(deliveries, &[("trigger", CREATED), ("status", "COMPLETED")]),
        1.0
    );
    assert_eq!(
        count(deliveries, &[("trigger", FAILING), ("status", "FAILED")]),
        1.0
    );
    assert_eq!(
        count(
            deliveries,
            &[("trigger", DYNAMIC), ("status", "ACKNOWLEDGED")]
        ),
        1.0
    );
    assert_eq!(
        count(deliveries, &[("trigger", PRE), ("status", "COMPLETED")]),
        1.0
    );
    assert_eq!(
        count(
            "triggerline_invocations_created_total",
            &[("trigger", CREATED)]
        ),
        2.0
    );
    // Histograms: one sample per attempt, and one for the synchronous start.
    let attempt_times = "triggerline_delivery_duration_seconds_count";
    assert_eq!(count(attempt_times, &[("trigger", CREATED)]), 1.0);
    assert_eq!(count(attempt_times, &[]), 4.0);
    let bucketed = count(
        "triggerline_delivery_duration_seconds_bucket",
        &[("trigger", CREATED), ("le", "+Inf")],
    );
    assert_eq!(bucketed, 1.0);
    assert_eq!(
        count(
            "triggerline_sync_start_duration_seconds_count",
            &[("trigger", PRE), ("outcome", "finished")]
        ),
        1.0
    );
    assert!(count("triggerline_sync_start_duration_seconds_sum", &[]) > 0.0);
    // Store writes: every start was accepted; the worker's deliveries were settled, and the
    // synchronous start's outcome was written after its answer (on SQLite the accept commits
    // while the subscriber answers).
    let writes = "triggerline_store_write_duration_seconds_count";
    assert_eq!(count(writes, &[("operation", "record")]), 0.0);
    assert_eq!(count(writes, &[("operation", "accept")]), 5.0);
    assert_eq!(count(writes, &[("operation", "settle")]), 3.0);
    assert_eq!(count(writes, &[("operation", "settle_soon")]), 1.0);
    // Gauges, read from the store: the delayed one waits in the queue, the acknowledged one
    // for its callback; nothing is being delivered now.
    let depth = "triggerline_queue_depth";
    assert_eq!(count(depth, &[("state", "scheduled")]), 1.0);
    assert_eq!(count(depth, &[("state", "due")]), 0.0);
    assert_eq!(count(depth, &[("state", "leased")]), 0.0);
    let open = "triggerline_invocations_open";
    assert_eq!(count(open, &[("status", "PENDING")]), 1.0);
    assert_eq!(count(open, &[("status", "ACKNOWLEDGED")]), 1.0);
    assert_eq!(count("triggerline_deliveries_in_flight", &[]), 0.0);

    // The subscriber fails the acknowledged invocation through its callback.
    let metadata = &acknowledged["_metadata"];
    let id = metadata["invocationId"].as_str().unwrap().to_owned();
    let callback = server
        .client
        .post(metadata["callbackURL"].as_str().unwrap())
        .json(&json!({"secret": metadata["secret"], "error": "no approver today"}))
        .send()
        .await
        .unwrap();
    assert!(callback.status().is_success(), "{}", callback.status());
    let page = server
        .scrape_until("the callback, a sweep and a purge", |s| {
            value(s, "triggerline_purged_total", &[]) >= 1.0
                && value(
                    s,
                    "triggerline_invocations_open",
                    &[("status", "ACKNOWLEDGED")],
                ) == 0.0
        })
        .await;
    assert_eq!(
        value(
            &page,
            "triggerline_invocation_transitions_total",
            &[
                ("trigger", DYNAMIC),
                ("from", "ACKNOWLEDGED"),
                ("to", "FAILED")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "triggerline_store_write_duration_seconds_count",
            &[("operation", "transition")]
        ),
        1.0
    );
    assert!(value(&page, "triggerline_sweeps_total", &[("result", "ok")]) >= 1.0);
    assert_eq!(
        value(&page, "triggerline_sweeps_total", &[("result", "error")]),
        0.0
    );
    // Every metric is described.
    for name in [
        "triggerline_delivery_attempts_total",
        "triggerline_queue_depth",
    ] {
        let page = server
            .client
            .get(&url)
            .bearer_auth(SCRAPE_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(&format!("# HELP {name} ")), "{page}");
    }

    // The subscriber acknowledges the next one and never calls back: with a deadline of 3 s,
    // the sweep times it out.
    let patched = server
        .client
        .patch(format!(
            "{}/trigger-subscriptions/v1/{dynamic}",
            server.base
        ))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json-patch+json")
        .body(r#"[{"op": "replace", "path": "/responseDeadline", "value": "PT3S"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let started = server
        .raise(json!({"triggerId": DYNAMIC, "input": example(DYNAMIC)}))
        .await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let page = server
        .scrape_until("the deadline sweep", |s| {
            value(s, "triggerline_sweep_timed_out_total", &[]) >= 1.0
        })
        .await;
    assert_eq!(value(&page, "triggerline_sweep_timed_out_total", &[]), 1.0);
    assert_eq!(
        value(
            &page,
            "triggerline_invocation_transitions_total",
            &[("trigger", DYNAMIC), ("to", "TIMED_OUT")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "triggerline_invocations_open",
            &[("status", "ACKNOWLEDGED")]
        ),
        0.0
    );

    // The logs: one JSON line per state change, which a person follows by the invocation id.
    let logs = server.stop().await;
    let changes: Vec<&Value> = logs
        .iter()
        .filter(|l| l["target"] == "triggerline::invocation")
        .collect();
    let followed: Vec<(Value, Value)> = changes
        .iter()
        .filter(|l| l["fields"]["invocation"] == id.as_str())
        .map(|l| (l["fields"]["from"].clone(), l["fields"]["to"].clone()))
        .collect();
    assert_eq!(
        followed,
        [
            (Value::Null, json!("PENDING")),
            (json!("PENDING"), json!("ACKNOWLEDGED")),
            (json!("ACKNOWLEDGED"), json!("FAILED")),
        ],
        "{changes:#?}"
    );
    let last = changes
        .iter()
        .rfind(|l| l["fields"]["invocation"] == id.as_str())
        .unwrap();
    assert_eq!(last["fields"]["trigger"], DYNAMIC);
    assert!(
        last["fields"]["subscription"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(last["fields"]["error"], "no approver today");
    // Every invocation raised has its creation line: six starts, one invocation each.
    let raised = changes
        .iter()
        .filter(|l| l["fields"]["to"] == "PENDING" && l["fields"].get("from").is_none())
        .count();
    assert_eq!(raised, 6, "{changes:#?}");
    let timed_out = changes
        .iter()
        .filter(|l| l["fields"]["to"] == "TIMED_OUT")
        .collect::<Vec<_>>();
    assert_eq!(timed_out.len(), 1, "{changes:#?}");
    let error = timed_out[0]["fields"]["error"].as_str().unwrap();
    assert!(error.contains("deadline"), "{error}");
}
