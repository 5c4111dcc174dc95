//! Stalled clients against the real binary under a low open-file limit, as a service started
//! with the common default of 1,024 (here 256, to need fewer connections) meets them.

use std::io::Write;
use std::net::TcpStream;
use std::process::Stdio;

use super::{PATIENCE, Server, TOKEN, binary};

/// A shell that lowers the open-file limit (soft and hard) and then becomes the server.
fn limited_server(open_files: u32, flags: &[&str]) -> (Server, std::path::PathBuf) {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("stderr.log");
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
        .arg(binary().get_program())
        .arg("serve")
        .args(flags)
        .env_remove("TRIGGERLINE_DATA_DIR")
        .env_remove("TRIGGERLINE_LISTEN")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    (Server::spawn(command, data), log)
}

/// Opens a connection that sends a callback's head and the start of a body it never finishes,
/// as anyone who can reach the callback URL can, without a token.
fn stalled_callback(base: &str) -> TcpStream {
    let address = base.trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&address, PATIENCE).unwrap();
    stream
        .write_all(
            b"POST /trigger-invocations/v1/0190a0a0-0000-7000-8000-000000000000/complete \
              HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .unwrap();
    stream
}

// Before the read deadline and the connection limit, 250 such connections used up the 256
// files: accepting failed ("Too many open files", every second) and no request, delivery or
// callback went through again until the attacker let go.
#[tokio::test]
async fn stalled_clients_cannot_take_the_open_files_that_requests_and_deliveries_need() {
    let (server, log) = limited_server(
        256,
        &["--client-timeout", "PT1S", "--delivery-concurrency", "16"],
    );
    let state = tempfile::tempdir().unwrap();
    let mut listener = server.listen(state.path(), &["idn:identity-created", "--count", "1"]);

    // Far more than the process may open; the ones past its connection limit wait in the
    // listen backlog, each cut off a second after it is taken up.
    let stalled: Vec<TcpStream> = (0..400).map(|_| stalled_callback(&server.base)).collect();
    let tested = reqwest::Client::new()
        .post(format!("{}/trigger-invocations/v1/test", server.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"triggerId": "idn:identity-created"}))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("the test invocation was never answered");
    let delivery = listener.next("delivery");

    assert_eq!(tested.status(), reqwest::StatusCode::OK);
    assert_eq!(
        delivery["body"]["_metadata"]["triggerId"],
        "idn:identity-created"
    );
    drop(stalled);
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .parse()
            .unwrap()
    };
    // 256 files less twice the 16 deliveries and 128 for the store and the rest.
    assert_eq!(series("triggerline_connections_max"), 96.0);
    assert!(series("triggerline_requests_cut_total{reason=\"body_late\"}") >= 96.0);
    // Read while the server's data dir, where the log is, still exists.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("Too many open files"), "{logged}");
    assert!(
        logged.contains("serving as many connections as allowed"),
        "the limit was reached and said so: {logged}"
    );
}
