//! Scenario 2: N concurrent callbacks racing on one ACKNOWLEDGED invocation.
//!
//! One ASYNC subscription on `idn:access-request-pre-approval`; one invocation is started and
//! acknowledged by the receiver, which keeps its callback URL and secret. N tasks, each with its
//! own output (`comment: "racer <i>"`), wait at a barrier and then POST the callback at once.
//! Exactly one may get 204; the others must get the documented 400 ("invocation <id> is already
//! COMPLETED"). The stored output must be the winner's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use triggerline_bench::triggerline::Triggerline;

use crate::hooks::{Hooks, Mode, approval};
use crate::kill_cycles::REQUEST_RESPONSE;
use crate::verify::status_of;

/// What one race showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Race {
    pub backend: &'static str,
    pub racers: usize,
    /// Answer -> count: "204", "400 already COMPLETED", or the status and message otherwise.
    pub answers: BTreeMap<String, usize>,
    pub winners: usize,
    /// Whether every other racer got the documented 400.
    pub rest_documented: bool,
    pub final_status: String,
    /// Whether the stored output is the one the 204 racer sent.
    pub output_is_winners: bool,
    /// From the barrier to the last answer.
    pub race_ms: f64,
    /// Warnings and errors the server logged (`RUST_LOG=warn`): count and the first few.
    pub log_lines: usize,
    pub log_sample: Vec<String>,
    /// The causes of the store errors in the log ("store unavailable ... error=<cause>"),
    /// cut at the first 110 characters, with their counts.
    pub store_errors: BTreeMap<String, usize>,
}

pub async fn run(
    server: &Triggerline,
    client: &reqwest::Client,
    backend: &'static str,
    racers: usize,
) -> anyhow::Result<Race> {
    let api = &server.api;
    let hooks = Hooks::start(Mode::Record, client.clone()).await?;
    api.subscribe("chaos race", REQUEST_RESPONSE, &hooks.url, "ASYNC")
        .await?;
    let input = api.example_input(REQUEST_RESPONSE).await?;
    let started = api
        .post("/trigger-invocations/v1/start")
        .json(&json!({"triggerId": REQUEST_RESPONSE, "input": input}))
        .send()
        .await?;
    let status = started.status();
    let body: Value = started.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.as_u16() == 202, "start answered {status}: {body}");
    let id = body["invocations"][0]["id"]
        .as_str()
        .with_context(|| format!("no invocation id in {body}"))?
        .to_owned();

    // Delivered, acknowledged by the receiver, and recorded ACKNOWLEDGED by the server.
    let waited = Instant::now();
    let callback = loop {
        if let Some(callback) = hooks.take_callbacks().pop() {
            break callback;
        }
        if waited.elapsed() > Duration::from_secs(60) {
            bail!("invocation {id} was not delivered within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    loop {
        match status_of(api, &id).await.as_str() {
            "ACKNOWLEDGED" => break,
            "PENDING" if waited.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => bail!("invocation {id} is {other}, not ACKNOWLEDGED"),
        }
    }

    let barrier = Arc::new(Barrier::new(racers + 1));
    let mut tasks = JoinSet::new();
    for i in 0..racers {
        let body = json!({"secret": callback.secret, "output": approval(&format!("racer {i}"))})
            .to_string();
        let request = client
            .post(&callback.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    classify(status, &text)
                }
                Err(e) if e.is_timeout() => "no answer (timeout)".to_owned(),
                Err(_) => "transport error".to_owned(),
            };
            (i, answer)
        });
    }
    barrier.wait().await;
    let released = Instant::now();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut winner = None;
    while let Some(done) = tasks.join_next().await {
        let (i, answer) = done.context("a racer failed")?;
        if answer == "204" {
            winner = Some(i);
        }
        *answers.entry(answer).or_insert(0) += 1;
    }
    let race_ms = released.elapsed().as_secs_f64() * 1e3;

    let invocation: Value = api
        .get(&format!("/trigger-invocations/v1/{id}/status"))
        .send()
        .await?
        .json()
        .await?;
    let log = server.log_lines();
    let winners = answers.get("204").copied().unwrap_or(0);
    let documented = answers.get(ALREADY).copied().unwrap_or(0);
    let comment = invocation["completeInvocationInput"]["output"]["comment"]
        .as_str()
        .unwrap_or("");
    Ok(Race {
        backend,
        racers,
        winners,
        rest_documented: winners == 1 && documented == racers - 1,
        final_status: invocation["status"]
            .as_str()
            .unwrap_or("(no status)")
            .to_owned(),
        output_is_winners: winner.is_some_and(|i| comment == format!("racer {i}")),
        answers,
        race_ms,
        log_lines: log.len(),
        store_errors: store_errors(&log),
        log_sample: log.into_iter().take(4).collect(),
    })
}

/// The documented answer to a callback on a finished invocation (functions/http/src/error.rs:
/// `Error::NotOpen` is a 400 "invocation <id> is already COMPLETED").
const ALREADY: &str = "400 already COMPLETED";

fn classify(status: u16, text: &str) -> String {
    match status {
        204 => "204".to_owned(),
        400 if text.contains("is already COMPLETED") => ALREADY.to_owned(),
        _ => {
            let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            let message = json["messages"][0]["text"]
                .as_str()
                .or_else(|| json["error"].as_str())
                .unwrap_or(text);
            format!("{status} {}", message.chars().take(100).collect::<String>())
        }
    }
}

/// Counts the causes of "store unavailable" log lines.
fn store_errors(log: &[String]) -> BTreeMap<String, usize> {
    let mut causes = BTreeMap::new();
    for line in log {
        if let Some((_, rest)) = line.split_once(" error=") {
            let cause: String = rest.chars().take(110).collect();
            *causes.entry(cause).or_insert(0) += 1;
        }
    }
    causes
}
