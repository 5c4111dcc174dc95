//! What the real `triggerline` binary writes to stderr when stderr is not a terminal (a file, a
//! pipe, a log collector).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::delivery::{PRE, example};
use crate::helpers::{TOKEN, http_subscription};
use crate::receiver::{Answer, Receiver};

#[tokio::test]
async fn piped_logs_carry_no_colour_codes_and_an_expected_542_is_no_error() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_triggerline"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sync-wait",
            "PT0.3S",
            "--data-dir",
        ])
        .arg(data.path())
        .env("TRIGGERLINE_API_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
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
    let client = reqwest::Client::new();
    let receiver = Receiver::start(vec![Answer::Json(200, json!({}))]).await;
    let created = client
        .post(format!("{base}/trigger-subscriptions/v1"))
        .bearer_auth(TOKEN)
        .json(&http_subscription(PRE, &receiver.url, "ASYNC"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    // An ASYNC subscriber answers through the callback, later than the wait: 542.
    let started = client
        .post(format!("{base}/trigger-invocations/v1/start"))
        .bearer_auth(TOKEN)
        .json(&json!({"triggerId": PRE, "input": example(PRE), "isSynchronous": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status().as_u16(), 542);
    // SIGTERM (not `Child::kill`, a SIGKILL): the graceful stop writes its last lines.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut stderr = child.stderr.take().unwrap();
    let (exit, logs) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut logs = String::new();
            stderr.read_to_string(&mut logs).unwrap();
            (child.wait().unwrap(), logs)
        }),
    )
    .await
    .expect("no graceful stop within 30 s")
    .unwrap();

    assert!(exit.success(), "{exit:?}\n{logs}");
    assert!(logs.contains("stopped"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in piped logs:\n{logs}"
    );
    assert!(
        !logs.lines().any(|l| l.contains("ERROR")),
        "an error was logged:\n{logs}"
    );
}
