//! Accounting: the status of every acknowledged invocation, read one by one through
//! `GET /trigger-invocations/v1/{id}/status`, polled until each is finished or a timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use triggerline_bench::triggerline::Api;

/// Reads in flight at once.
const READERS: usize = 16;

/// What the status API said of a set of invocations.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Accounting {
    pub checked: usize,
    /// Status -> count; "404" for an id the API does not know, "error ..." for a failed read.
    pub statuses: BTreeMap<String, usize>,
    /// Acknowledged but unknown to the status API.
    pub lost: usize,
    /// Known but not COMPLETED when the wait ended (PENDING, ACKNOWLEDGED, FAILED, ...).
    pub unfinished: usize,
    /// A few ids that are lost or unfinished, to reproduce with.
    pub examples: Vec<String>,
    /// How long it took until every invocation was finished (or the wait gave up).
    pub waited_s: f64,
}

/// The status of one invocation: "COMPLETED", "PENDING", ..., "404", or "error <kind>".
pub async fn status_of(api: &Api, id: &str) -> String {
    let answer = api
        .get(&format!("/trigger-invocations/v1/{id}/status"))
        .send()
        .await;
    match answer {
        Ok(response) if response.status().is_success() => {
            let json: Value = response.json().await.unwrap_or(Value::Null);
            json["status"].as_str().unwrap_or("(no status)").to_owned()
        }
        Ok(response) => response.status().as_u16().to_string(),
        Err(e) if e.is_timeout() => "error timeout".to_owned(),
        Err(_) => "error transport".to_owned(),
    }
}

/// Polls the status of `ids` until all are COMPLETED or `timeout` passed; ids that are not
/// COMPLETED are read again every second.
pub async fn until_completed(api: &Api, ids: Vec<String>, timeout: Duration) -> Accounting {
    let began = Instant::now();
    let checked = ids.len();
    let mut pending = ids;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let round = read_all(api, &pending).await;
        pending.clear();
        for (id, status) in round {
            if status != "COMPLETED" {
                pending.push(id.clone());
            }
            last.insert(id, status);
        }
        if pending.is_empty() || began.elapsed() > timeout {
            break;
        }
        eprintln!(
            "    {} of {checked} not COMPLETED yet ({:.0} s)",
            pending.len(),
            began.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut accounting = Accounting {
        checked,
        waited_s: began.elapsed().as_secs_f64(),
        ..Accounting::default()
    };
    for (id, status) in &last {
        *accounting.statuses.entry(status.clone()).or_insert(0) += 1;
        if status == "COMPLETED" {
            continue;
        }
        if status == "404" {
            accounting.lost += 1;
        } else {
            accounting.unfinished += 1;
        }
        if accounting.examples.len() < 10 {
            accounting.examples.push(format!("{id}: {status}"));
        }
    }
    accounting
}

/// The status of each id, `READERS` reads at a time.
pub async fn read_all(api: &Api, ids: &[String]) -> Vec<(String, String)> {
    let gate = Arc::new(Semaphore::new(READERS));
    let mut reads = JoinSet::new();
    for id in ids {
        let (api, id, gate) = (api.clone(), id.clone(), gate.clone());
        reads.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let status = status_of(&api, &id).await;
            (id, status)
        });
    }
    let mut out = Vec::with_capacity(ids.len());
    while let Some(done) = reads.join_next().await {
        if let Ok(pair) = done {
            out.push(pair);
        }
    }
    out
}
