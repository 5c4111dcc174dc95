//! Health, unknown routes and methods, and what one client may hold of the server.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{expect_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_needs_no_token() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    expect_error(
        app.get("/nothing/here").await,
        StatusCode::NOT_FOUND,
        "no route",
    )
    .await;
    let response = app.post("/triggers/v1", &serde_json::json!({})).await;
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "").await;
}

/// The response head exactly as it crosses the wire, for `GET path` with the token.
async fn raw_head(app: &crate::helpers::TestApp, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        crate::helpers::TOKEN
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    raw.split("\r\n\r\n").next().unwrap().to_owned()
}

// The official SDKs hand response headers to users as a case-sensitive dict:
// `headers.get("X-Total-Count")` must find the count, as it does against SailPoint.
#[tokio::test]
async fn header_names_go_out_in_canonical_case() {
    let app = spawn_app().await;

    let head = raw_head(&app, "/triggers/v1?count=true&limit=1").await;

    let lines: Vec<&str> = head.lines().collect();
    assert_eq!(lines[0], "HTTP/1.1 200 OK", "{head}");
    assert!(lines.contains(&"X-Total-Count: 24"), "{head}");
    assert!(lines.contains(&"Content-Type: application/json"), "{head}");
    assert!(
        lines.iter().any(|l| l.starts_with("Content-Length: ")),
        "{head}"
    );
    assert!(!head.contains("x-total-count"), "{head}");
    assert!(!head.contains("content-type"), "{head}");
}

/// Sends `head` (and whatever of a body it carries) on a new connection and reads until the
/// server closes it; `None` if it is still open after [`PATIENCE`].
async fn send_and_read_to_close(app: &crate::helpers::TestApp, head: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .ok()?
        .unwrap();
    Some(String::from_utf8_lossy(&raw).into_owned())
}

fn system_clock() -> std::sync::Arc<dyn triggerline::time::Clock> {
    std::sync::Arc::new(triggerline::time::SystemClock)
}

fn one_second() -> triggerline::duration::IsoDuration {
    triggerline::duration::IsoDuration::parse("client_timeout", "PT1S").unwrap()
}

/// How long a test here lets the server take (a bound, not a wait).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

// The callback takes requests from anyone who can reach it: a body that never comes must not
// hold its connection (an open file) for as long as the client likes.
#[tokio::test]
async fn a_request_body_that_never_arrives_is_answered_408_and_its_connection_closed() {
    let app = spawn_app_with(|c| c.client_timeout = one_second(), system_clock()).await;
    let callback = "/trigger-invocations/v1/0190a0a0-0000-7000-8000-000000000000/complete";

    let answer = send_and_read_to_close(
        &app,
        &format!(
            "POST {callback} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"secret\":"
        ),
    )
    .await
    .expect("the connection was still open");

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"detailCode\":\"408 Request Timeout\""),
        "{answer}"
    );
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");

    // Nothing was harmed: the next caller is served as before.
    let health = app.client.get(format!("{}/health", app.base)).send().await;
    assert_eq!(health.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refused_request_does_not_wait_for_its_body_either() {
    let app = spawn_app_with(|c| c.client_timeout = one_second(), system_clock()).await;

    // No token: refused before the body is read, and the rest of it is not waited for.
    let answer = send_and_read_to_close(
        &app,
        "POST /trigger-invocations/v1/start HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .expect("the connection was still open");

    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_client_timeout() {
    let app = spawn_app_with(|c| c.client_timeout = one_second(), system_clock()).await;

    let answer = send_and_read_to_close(&app, "").await;

    assert_eq!(answer.as_deref(), Some(""), "closed without an answer");
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let app = spawn_app_with(|c| c.max_connections = Some(2), system_clock()).await;
    let address = app.base.trim_start_matches("http://");
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let health = || {
        app.client
            .get(format!("{}/health", app.base))
            .timeout(PATIENCE)
            .send()
    };

    // Both slots are taken (by clients that send nothing); a third caller is not served...
    let mut waiting = tokio::spawn(health());
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), &mut waiting).await;
    assert!(
        early.is_err(),
        "served past the connection limit: {early:?}"
    );

    // ...until one of them goes.
    drop(held.pop());
    let answer = waiting.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}

// Requests sent one after another without reading the answers fill the socket's buffers; the
// server then waits to write. That wait must end, or the connection holds its slot for good.
#[tokio::test]
async fn a_client_that_takes_no_answers_is_let_go_and_its_slot_given_to_the_next() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(
        |c| {
            c.client_timeout = one_second();
            c.max_connections = Some(1);
        },
        system_clock(),
    )
    .await;
    let address = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (_unread, mut requests) = stream.into_split();

    // The OpenAPI document (over 200 KB, no token) again and again until the server hangs up:
    // a write fails once it has closed the connection.
    let hung_up = tokio::time::timeout(PATIENCE, async {
        let request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
        while requests.write_all(request).await.is_ok() {}
    })
    .await;
    let next = app
        .client
        .get(format!("{}/health", app.base))
        .timeout(PATIENCE)
        .send()
        .await;

    assert!(
        hung_up.is_ok(),
        "the server still waits on a client that reads nothing"
    );
    assert_eq!(next.unwrap().status(), StatusCode::OK);
}

// Each body may be 1 MiB; thousands sent slowly at once must not be gigabytes held.
#[tokio::test]
async fn bodies_past_the_memory_budget_are_refused_503_and_the_rest_still_served() {
    let app = spawn_app_with(
        |c| {
            c.client_timeout = one_second();
            c.max_body_memory = 1;
        },
        system_clock(),
    )
    .await;
    // Two callbacks that each send 600 KiB of a 700 KiB body and stop: together over 1 MiB.
    let head = format!(
        "POST /trigger-invocations/v1/0190a0a0-0000-7000-8000-000000000000/complete HTTP/1.1\r\n\
         Host: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        700 * 1024,
        " ".repeat(600 * 1024)
    );

    let (one, other) = tokio::join!(
        send_and_read_to_close(&app, &head),
        send_and_read_to_close(&app, &head)
    );

    let mut statuses: Vec<String> = [one, other]
        .into_iter()
        .map(|answer| answer.expect("the connection was still open")[..12].to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["HTTP/1.1 408", "HTTP/1.1 503"]);
    let health = app.client.get(format!("{}/health", app.base)).send().await;
    assert_eq!(health.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn an_outsized_head_is_refused_and_a_body_larger_than_the_buffer_still_read() {
    let app = spawn_app().await;

    // hyper reads a head in growing parts and gives up once an incomplete one fills its
    // buffer: with 64 KiB, a head can reach about twice that at most.
    let huge = app
        .client
        .get(format!("{}/health", app.base))
        .header("X-Padding", "x".repeat(200 * 1024))
        .send()
        .await
        .unwrap();
    // 1 MiB of JSON, read through the 64 KiB buffer in parts, reaches the handler whole (and
    // is refused for what it is: a start with no trigger).
    let large = app
        .post(
            "/trigger-invocations/v1/start",
            &serde_json::json!({"padding": "x".repeat(1000 * 1024)}),
        )
        .await;

    assert_eq!(huge.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    expect_error(large, StatusCode::BAD_REQUEST, "triggerId").await;
}
