//! Durability across a hard kill: the real `triggerline` binary, SIGKILLed, then restarted on the
//! same data dir.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TOKEN, http_subscription};

/// Starts the binary on a random port and returns it with its base URL (read from the line it
/// prints once listening).
pub fn start(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_triggerline"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("TRIGGERLINE_API_TOKEN", TOKEN)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("triggerline exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("triggerline listening on ") {
            break url.to_owned();
        }
    };
    (child, base)
}

#[tokio::test]
async fn a_subscription_survives_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let (mut first, base) = start(data.path(), &[]);
    let created: Value = client
        .post(format!("{base}/trigger-subscriptions/v1"))
        .bearer_auth(TOKEN)
        .json(&http_subscription(
            "idn:identity-created",
            "https://a.test",
            "SYNC",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    first.kill().unwrap(); // SIGKILL: no graceful shutdown, no flush.
    first.wait().unwrap();
    let (mut second, base) = start(data.path(), &[]);
    let response = client
        .get(format!("{base}/trigger-subscriptions/v1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let listed: Vec<Value> = response.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["name"], created["name"]);
    second.kill().unwrap();
    second.wait().unwrap();
}

/// A data dir written by a newer build is refused at startup: exit status 1 and one line on
/// stderr saying why, whatever RUST_BACKTRACE says, and the file is left as it was.
#[test]
fn a_database_from_a_newer_build_is_refused_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("triggerline.db");
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999;")
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_triggerline"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("TRIGGERLINE_API_TOKEN", TOKEN)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("schema version 999, newer than this build knows"),
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    let version: i64 = rusqlite::Connection::open(&file)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 999);
}
