//! The `triggerline` binary as people and scripts use it: the real binary serves on 127.0.0.1
//! over a temp SQLite dir, and every client subcommand runs as its own process against it, with
//! its output and exit code checked. `listen` runs as a background process whose `--json` lines
//! the tests read as they come.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

mod flood;

const TOKEN: &str = "cli-test-token";
const PRE_APPROVAL: &str = "idn:access-request-pre-approval";
/// How long anything here may take before the test gives up (a deadline, not a wait).
const PATIENCE: Duration = Duration::from_secs(30);

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_triggerline"));
    // The tests' own environment must not leak into the processes they start.
    for name in [
        "TRIGGERLINE_URL",
        "TRIGGERLINE_API_TOKEN",
        "TRIGGERLINE_DATA_DIR",
        "TRIGGERLINE_LISTEN",
        "TRIGGERLINE_SIGNING_SECRET",
    ] {
        command.env_remove(name);
    }
    command
}

/// A running `triggerline`, killed when dropped.
struct Server {
    child: Child,
    base: String,
    _data: TempDir,
}

impl Server {
    /// `triggerline serve --listen 127.0.0.1:0 …`
    fn start() -> Server {
        Server::start_with(&["serve"])
    }

    /// The server with `leading` before its flags (`["serve"]`, or nothing for the default).
    fn start_with(leading: &[&str]) -> Server {
        let mut command = binary();
        command.args(leading).stderr(Stdio::null());
        Server::spawn(command, tempfile::tempdir().unwrap())
    }

    /// `command` (the binary and what comes before the flags), serving over `data`.
    fn spawn(mut command: Command, data: TempDir) -> Server {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("TRIGGERLINE_API_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("triggerline exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("triggerline listening on ") {
                break url.to_owned();
            }
        };
        Server {
            child,
            base,
            _data: data,
        }
    }

    /// Runs `triggerline <args>` against this server with the right token.
    fn cli(&self, args: &[&str]) -> Run {
        self.cli_with(args, &[("TRIGGERLINE_API_TOKEN", TOKEN)])
    }

    fn cli_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = binary()
            .args(args)
            .env("TRIGGERLINE_URL", &self.base)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `GET` on the API, for checking what the CLI did without the CLI.
    async fn api(&self, path: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Polls an invocation's status until `done` holds, or fails at the deadline.
    async fn invocation_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self
                .api(&format!("/trigger-invocations/v1/{id}/status"))
                .await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "invocation {id} never got there: {status}"
            );
            // A poll interval, so that the loop does not flood the server while it waits.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts `triggerline listen <args> --json` in the background.
    fn listen(&self, data_dir: &Path, args: &[&str]) -> Listener {
        let mut child = binary()
            .arg("listen")
            .args(args)
            .args(["--json", "--data-dir"])
            .arg(data_dir)
            .env("TRIGGERLINE_URL", &self.base)
            .env("TRIGGERLINE_API_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listener = Listener {
            child,
            events,
            ready: None,
        };
        let ready = listener.next("ready");
        assert_eq!(ready["triggerId"], args[0]);
        listener.ready = Some(ready);
        listener
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }
}

/// A background `listen`, killed when dropped.
struct Listener {
    child: Child,
    events: mpsc::Receiver<String>,
    /// The `ready` event it printed once subscribed.
    ready: Option<Value>,
}

impl Listener {
    /// The next JSON line whose `event` is `kind` (earlier lines of other kinds are skipped).
    fn next(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.events.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = self.child.kill();
                    let mut stderr = String::new();
                    if let Some(mut err) = self.child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
                    }
                    panic!("no `{kind}` event from listen ({e}); stderr: {stderr}");
                }
            };
            let event: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if event["event"] == kind {
                return event;
            }
        }
    }

    /// Waits for the process to end by itself (`--count`): its stdout closes, then it is reaped.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("listen did not exit"),
            }
        }
        self.child.wait().unwrap().code()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_server_flags_alone_still_start_the_server() {
    let server = Server::start_with(&[]);

    let run = server.cli(&["triggers", "list", "--json"]).ok();

    assert!(run.json().as_array().is_some_and(|list| !list.is_empty()));
}

#[test]
fn triggers_list_and_show_print_tables_or_json() {
    let server = Server::start();

    let table = server.cli(&["triggers", "list"]).ok();
    let json = server.cli(&["triggers", "list", "--json"]).ok().json();
    let shown = server
        .cli(&["triggers", "show", PRE_APPROVAL, "--json"])
        .ok()
        .json();
    let missing = server.cli(&["triggers", "show", "idn:no-such-trigger"]);

    let header = table.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("TYPE") && header.contains("NAME"),
        "{header}"
    );
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(PRE_APPROVAL))
        .unwrap();
    assert!(
        row.contains("REQUEST_RESPONSE") && row.contains("Access Request Submitted"),
        "{row}"
    );
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), table.stdout.lines().count() - 1);
    assert_eq!(shown["id"], PRE_APPROVAL);
    assert!(shown["exampleOutput"].is_object());
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(
        missing.stderr.contains("idn:no-such-trigger") && missing.stderr.contains("triggers list"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_subscription_is_created_changed_and_deleted_from_the_command_line() {
    let server = Server::start();

    let created = server
        .cli(&[
            "subscriptions",
            "create",
            "--json",
            "--trigger",
            "idn:identity-created",
            "--name",
            "HR",
            "--target",
            "https://hr.example.com/hook",
            "--filter",
            "$.identity",
            "--bearer-token",
            "t0k",
        ])
        .ok()
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    let table = server
        .cli(&["subscriptions", "list", "--trigger", "idn:identity-created"])
        .ok();
    let disabled = server
        .cli(&["subscriptions", "disable", &id, "--json"])
        .ok()
        .json();
    let renamed = server
        .cli(&[
            "subscriptions",
            "update",
            &id,
            "--name",
            "HR 2",
            "--mode",
            "async",
            "--deadline",
            "10m",
            "--json",
        ])
        .ok()
        .json();
    let stored = server.api("/trigger-subscriptions/v1").await;
    // The same duration forms as --delay: sent as ISO-8601.
    assert_eq!(renamed["responseDeadline"], "PT600S");
    let deleted = server.cli(&["subscriptions", "delete", &id]).ok();
    let gone = server.cli(&["subscriptions", "show", &id]);

    assert!(
        created["signingSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(
        created["httpConfig"]["httpAuthenticationType"],
        "BEARER_TOKEN"
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("https://hr.example.com/hook")),
        "{table:?}"
    );
    assert_eq!(disabled["enabled"], false);
    assert_eq!(renamed["name"], "HR 2");
    assert_eq!(renamed["httpConfig"]["httpDispatchMode"], "ASYNC");
    assert_eq!(stored[0]["name"], "HR 2");
    assert_eq!(stored[0]["enabled"], false);
    assert_eq!(stored[0]["filter"], "$.identity");
    assert!(deleted.stdout.contains(&id));
    assert_eq!(gone.code, Some(1), "{gone:?}");
    assert!(gone.stderr.contains("does not exist"), "{gone:?}");
}

#[test]
fn filter_test_exits_0_on_a_match_and_4_when_nothing_is_selected() {
    let server = Server::start();
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), r#"{"identity": {"type": "HUMAN"}}"#).unwrap();
    let input = input.path().to_str().unwrap();

    let example = server.cli(&[
        "filter",
        "test",
        "$.identity",
        "--trigger",
        "idn:identity-created",
    ]);
    let human = server.cli(&[
        "filter",
        "test",
        r#"$[?($.identity.type == "HUMAN")]"#,
        "--input",
        input,
        "--json",
    ]);
    let none = server.cli(&["filter", "test", "$.nothing", "--input", input]);

    assert_eq!(example.code, Some(0), "{example:?}");
    assert_eq!(human.code, Some(0), "{human:?}");
    assert_eq!(human.json()["isValid"], true);
    assert_eq!(none.code, Some(4), "{none:?}");
    assert!(none.stdout.contains("no match"), "{none:?}");
}

#[tokio::test]
async fn listen_acknowledges_an_async_invocation_and_completes_it_through_the_callback() {
    let server = Server::start();
    let state = tempfile::tempdir().unwrap();
    let trigger = server
        .cli(&["triggers", "show", PRE_APPROVAL, "--json"])
        .ok()
        .json();
    let mut listener = server.listen(
        state.path(),
        &[
            PRE_APPROVAL,
            "--mode",
            "async",
            "--complete-after",
            "1s",
            "--count",
            "1",
        ],
    );

    let started = server.cli(&["invoke", PRE_APPROVAL, "--json"]).ok().json();
    let id = started["invocations"][0]["id"].as_str().unwrap().to_owned();
    // Held by the server until listen completes the invocation (1 s after acknowledging it).
    let status = server
        .cli(&["status", &id, "--wait", "20s", "--json"])
        .ok()
        .json();
    let delivery = listener.next("delivery");
    let answer = listener.next("answer");
    let completed = listener.next("completed");
    let stopped = listener.next("stopped");
    let exit = listener.exit_code();
    let timeline = server.cli(&["status", &id]).ok();

    let ready = listener.ready.take().unwrap();
    assert_eq!(ready["subscription"], "created");
    assert_eq!(ready["verifying"], true);
    assert_eq!(delivery["invocationId"], id.as_str());
    assert_eq!(delivery["webhookId"], id.as_str());
    assert_eq!(delivery["signature"], "valid", "{delivery}");
    assert_eq!(delivery["body"]["_metadata"]["responseMode"], "async");
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"], serde_json::json!({}));
    assert_eq!(completed["invocationId"], id.as_str());
    assert_eq!(stopped["disabled"], true);
    assert_eq!(exit, Some(0));
    assert_eq!(status["status"], "COMPLETED", "{status}");
    assert_eq!(
        status["completeInvocationInput"]["output"],
        trigger["exampleOutput"]
    );
    assert_eq!(status["attempts"][0]["outcome"], "acknowledged");
    assert!(
        timeline.stdout.contains("acknowledged") && timeline.stdout.contains("COMPLETED"),
        "{timeline:?}"
    );
    let listed = server.api("/trigger-subscriptions/v1").await;
    assert_eq!(
        listed[0]["enabled"], false,
        "listen disables its subscription when it stops"
    );
}

#[tokio::test]
async fn a_test_invocation_of_a_fire_and_forget_trigger_reaches_listen_and_shows_in_status() {
    let server = Server::start();
    let state = tempfile::tempdir().unwrap();
    let mut listener = server.listen(state.path(), &["idn:identity-created", "--count", "1"]);

    let tested = server
        .cli(&["invoke", "idn:identity-created", "--test", "--json"])
        .ok()
        .json();
    let id = tested[0]["id"].as_str().unwrap().to_owned();
    let delivery = listener.next("delivery");
    let answer = listener.next("answer");
    server
        .invocation_until(&id, |s| !s["completed"].is_null())
        .await;
    let listed = server
        .cli(&["status", "--trigger", "idn:identity-created", "--json"])
        .ok()
        .json();
    let table = server
        .cli(&["status", "--trigger", "idn:identity-created"])
        .ok();

    assert_eq!(
        delivery["body"]["_metadata"]["triggerType"],
        "fireAndForget"
    );
    assert_eq!(delivery["signature"], "valid", "{delivery}");
    assert_eq!(answer["status"], 200);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["type"], "TEST");
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{table:?}"));
    assert!(
        row.contains("TEST") && row.contains("triggerline listen"),
        "{row}"
    );
}

/// POST `body` to the API as JSON, for setting up what the CLI then shows.
async fn post(server: &Server, path: &str, body: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "POST {path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn text_from_others_is_shown_escaped_never_acting_on_the_terminal() {
    let server = Server::start();
    let hostile = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nFAKE: all good";
    post(
        &server,
        "/trigger-subscriptions/v1",
        &json!({"name": hostile, "triggerId": "idn:identity-created", "type": "HTTP",
            "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC"}}),
    )
    .await;

    let listed = server.cli(&["subscriptions", "list"]).ok();

    assert!(
        !listed.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("evil\\u{1b}[2J"),
        "{}",
        listed.stdout
    );
    assert!(
        !listed.stdout.lines().any(|l| l.starts_with("FAKE")),
        "{}",
        listed.stdout
    );
}

#[tokio::test]
async fn an_invocation_with_the_deepest_input_the_server_takes_is_still_listed() {
    let server = Server::start();
    let levels = 125;
    let deep: Value = serde_json::from_str(&format!(
        "{}1{}",
        "{\"a\":".repeat(levels),
        "}".repeat(levels)
    ))
    .unwrap();
    let triggers = server.api("/triggers/v1").await;
    let created = triggers
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "idn:identity-created")
        .unwrap();
    let mut input = created["exampleInput"].clone();
    input["attributes"] = deep;
    post(
        &server,
        "/trigger-subscriptions/v1",
        &json!({"name": "deep", "triggerId": "idn:identity-created", "type": "HTTP",
            "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC"}}),
    )
    .await;
    let started = post(
        &server,
        "/trigger-invocations/v1/start",
        &json!({"triggerId": "idn:identity-created", "input": input}),
    )
    .await;
    let id = started["invocations"][0]["id"].as_str().unwrap();

    let listed = server.cli(&["status"]).ok();
    let shown = server.cli(&["status", id, "--json"]).ok();

    assert!(listed.stdout.contains(id), "{}", listed.stdout);
    // Printed whole (too deep for this test's own JSON reader).
    assert!(
        shown.stdout.contains(&format!("\"id\": \"{id}\"")),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_second_listen_reuses_its_subscription_and_still_verifies_signatures() {
    let server = Server::start();
    let state = tempfile::tempdir().unwrap();
    let output = tempfile::NamedTempFile::new().unwrap();
    let answer = r#"{"approved": true, "comment": "from the CLI test", "approver": "cli"}"#;
    std::fs::write(output.path(), answer).unwrap();
    let output = output.path().to_str().unwrap();
    let first = server.listen(state.path(), &[PRE_APPROVAL, "--count", "1"]);
    let first_id = first.ready.as_ref().unwrap()["subscriptionId"].clone();
    drop(first);

    let mut second = server.listen(
        state.path(),
        &[PRE_APPROVAL, "--count", "1", "--output", output],
    );
    let invoked = server.cli(&["invoke", PRE_APPROVAL, "--sync", "--json"]);
    let delivery = second.next("delivery");

    let ready = second.ready.take().unwrap();
    assert_eq!(ready["subscription"], "reused");
    assert_eq!(ready["subscriptionId"], first_id);
    assert_eq!(ready["verifying"], true);
    assert_eq!(delivery["signature"], "valid", "{delivery}");
    assert_eq!(invoked.code, Some(0), "{invoked:?}");
    let invocation = &invoked.json()["invocations"][0];
    assert_eq!(invocation["status"], "COMPLETED");
    assert_eq!(invocation["output"]["comment"], "from the CLI test");
}

#[test]
fn listen_without_its_remembered_secret_recreates_its_subscription() {
    let server = Server::start();
    let first_state = tempfile::tempdir().unwrap();
    let other_state = tempfile::tempdir().unwrap();
    let first = server.listen(first_state.path(), &[PRE_APPROVAL]);
    let first_id = first.ready.as_ref().unwrap()["subscriptionId"].clone();
    drop(first);

    let second = server.listen(other_state.path(), &[PRE_APPROVAL]);

    let ready = second.ready.as_ref().unwrap();
    assert_eq!(ready["subscription"], "recreated");
    assert_ne!(ready["subscriptionId"], first_id);
    assert_eq!(ready["verifying"], true);
}

#[test]
fn a_delivery_signed_with_another_secret_is_refused_and_the_sync_invoke_exits_4() {
    let server = Server::start();
    let state = tempfile::tempdir().unwrap();
    drop(server.listen(state.path(), &[PRE_APPROVAL]));
    let mut listener = server.listen(
        state.path(),
        &[
            PRE_APPROVAL,
            "--count",
            "1",
            "--signing-secret",
            "whsec_bm90LXRoZS1yaWdodC1rZXk=",
        ],
    );

    let invoked = server.cli(&["invoke", PRE_APPROVAL, "--sync"]);
    let delivery = listener.next("delivery");

    assert_eq!(delivery["signature"], "invalid", "{delivery}");
    assert!(
        delivery["signatureError"]
            .as_str()
            .unwrap()
            .contains("no v1 signature"),
        "{delivery}"
    );
    assert_eq!(invoked.code, Some(4), "{invoked:?}");
    assert!(invoked.stdout.contains("FAILED"), "{invoked:?}");
}

#[test]
fn a_wrong_token_exits_1_and_says_to_set_the_token_variable() {
    let server = Server::start();

    let run = server.cli_with(
        &["subscriptions", "list"],
        &[("TRIGGERLINE_API_TOKEN", "wrong")],
    );
    let missing = server.cli_with(&["triggers", "list"], &[]);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("TRIGGERLINE_API_TOKEN"), "{run:?}");
    assert!(run.stdout.is_empty());
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(missing.stderr.contains("no token was sent"), "{missing:?}");
}

#[test]
fn a_service_that_is_not_there_exits_3() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let output = binary()
        .args(["status", "--url", &url, "--api-token", TOKEN])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach Triggerline") && stderr.contains(&url),
        "{stderr}"
    );
}

// A server batch raises at most 1,000 invocations: 100 starts to 11 subscriptions would be
// 1,100, so the CLI sends them in requests sized to the trigger's fan-out (90, then 10).
#[tokio::test]
async fn invoke_inputs_to_a_wide_fan_out_stays_within_a_batchs_invocations() {
    let server = Server::start();
    for i in 0..11 {
        let name = format!("S{i}");
        server
            .cli(&[
                "subscriptions",
                "create",
                "--trigger",
                "idn:identity-created",
                "--name",
                &name,
                "--target",
                // Nothing listens there: the deliveries fail on 127.0.0.1, never leave it.
                "http://127.0.0.1:9/hook",
            ])
            .ok();
    }
    let files = tempfile::tempdir().unwrap();
    let inputs = files.path().join("inputs.jsonl");
    let line = serde_json::json!({"identity": {"id": "a", "name": "a", "type": "IDENTITY"},
                                  "attributes": {}})
    .to_string();
    std::fs::write(&inputs, vec![line; 100].join("\n")).unwrap();

    let raised = server
        .cli(&[
            "invoke",
            "idn:identity-created",
            "--inputs",
            inputs.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();

    let starts = raised["starts"].as_array().unwrap();
    assert_eq!(starts.len(), 100);
    assert!(
        starts
            .iter()
            .all(|s| s["invocations"].as_array().unwrap().len() == 11)
    );
}

#[tokio::test]
async fn invoke_inputs_raises_one_start_per_line_through_start_batch() {
    let server = Server::start();
    let state = tempfile::tempdir().unwrap();
    let mut listener = server.listen(state.path(), &["idn:identity-created", "--count", "3"]);
    let files = tempfile::tempdir().unwrap();
    let person = |name: &str| {
        serde_json::json!({"identity": {"id": name, "name": name, "type": "IDENTITY"},
                           "attributes": {}})
        .to_string()
    };
    let good = files.path().join("good.jsonl");
    let lines = [person("ann"), String::new(), person("bob"), person("cy")];
    std::fs::write(&good, lines.join("\n")).unwrap();
    let bad = files.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\n\n{{\"identity\": 5}}\n", person("dee"))).unwrap();
    let broken = files.path().join("broken.jsonl");
    std::fs::write(&broken, format!("{}\nnot json\n", person("eve"))).unwrap();

    let raised = server
        .cli(&[
            "invoke",
            "idn:identity-created",
            "--inputs",
            good.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    let mut delivered: Vec<String> = (0..3)
        .map(|_| {
            let delivery = listener.next("delivery");
            delivery["body"]["identity"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    delivered.sort();
    let refused = server.cli(&[
        "invoke",
        "idn:identity-created",
        "--inputs",
        bad.to_str().unwrap(),
    ]);
    let unreadable = server.cli(&[
        "invoke",
        "idn:identity-created",
        "--inputs",
        broken.to_str().unwrap(),
    ]);
    let listed = server.api("/trigger-invocations/v1/status?limit=250").await;
    // Twenty 100 KB inputs are two MB: more than one request's 1 MiB body.
    let large = files.path().join("large.jsonl");
    let blob = serde_json::json!({"identity": {"id": "big", "name": "big", "type": "IDENTITY"},
                                  "attributes": {"blob": "x".repeat(100_000)}})
    .to_string();
    std::fs::write(&large, vec![blob; 20].join("\n")).unwrap();
    let split = server
        .cli(&[
            "invoke",
            "idn:identity-created",
            "--inputs",
            large.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    let empty = files.path().join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let nothing = server.cli(&[
        "invoke",
        "idn:identity-created",
        "--inputs",
        empty.to_str().unwrap(),
    ]);

    let starts = raised["starts"].as_array().unwrap();
    assert_eq!(starts.len(), 3, "{raised}");
    for start in starts {
        assert_eq!(
            start["invocations"].as_array().unwrap().len(),
            1,
            "{raised}"
        );
    }
    assert_eq!(delivered, ["ann", "bob", "cy"]);
    // The server checks every start before it writes any: a bad line raises nothing.
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("starts[1]") && refused.stderr.contains("is line 3"),
        "{refused:?}"
    );
    assert_eq!(unreadable.code, Some(2), "{unreadable:?}");
    assert!(
        unreadable.stderr.contains("broken.jsonl:2"),
        "{unreadable:?}"
    );
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(split["starts"].as_array().unwrap().len(), 20);
    assert_eq!(nothing.code, Some(2), "{nothing:?}");
    assert!(nothing.stderr.contains("holds no input"), "{nothing:?}");
}

#[test]
fn usage_errors_exit_2() {
    let server = Server::start();

    let missing_flag = server.cli(&[
        "subscriptions",
        "create",
        "--trigger",
        "idn:identity-created",
    ]);
    let unreadable = server.cli(&["invoke", PRE_APPROVAL, "--input", "/nonexistent/input.json"]);
    let client_after_server_flags = binary()
        .args(["--listen", "127.0.0.1:0", "status"])
        .output()
        .unwrap();

    assert_eq!(missing_flag.code, Some(2), "{missing_flag:?}");
    assert!(missing_flag.stderr.contains("--name"), "{missing_flag:?}");
    assert_eq!(unreadable.code, Some(2), "{unreadable:?}");
    assert!(
        unreadable.stderr.contains("/nonexistent/input.json"),
        "{unreadable:?}"
    );
    assert_eq!(client_after_server_flags.status.code(), Some(2));
}
