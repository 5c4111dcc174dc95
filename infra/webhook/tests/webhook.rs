//! `HttpWebhookClient` against real axum receivers on 127.0.0.1: what is sent, what comes back,
//! how failures map onto `Reply`, and the SSRF guard.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;
use triggerline::delivery::{MAX_RESPONSE_BYTES, Reply};
use triggerline::ports::{WebhookClient, WebhookRequest};
use triggerline_webhook::{HttpWebhookClient, MAX_IN_FLIGHT_PER_URL};

/// What a receiver got.
#[derive(Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// How a receiver answers.
#[derive(Debug, Clone)]
enum Answer {
    Json(&'static str),
    /// 2 MiB of `x`.
    Huge,
    /// Never: the handler awaits forever.
    Never,
    /// Headers and the first bytes of a body, then nothing more.
    Stalls,
    /// 503 with this `Retry-After`.
    RetryAfter(String),
    /// 307 to `/elsewhere` on `/`, 200 on any other path.
    Redirect,
}

/// A real receiver on 127.0.0.1 that forwards every request through the channel before it
/// answers.
struct Receiver {
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    async fn start(answer: Answer) -> Self {
        let (tx, requests) = mpsc::unbounded_channel();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            let answer = answer.clone();
            async move {
                let path = uri.path().to_owned();
                tx.send(Received {
                    path: path.clone(),
                    headers,
                    body,
                })
                .unwrap();
                respond(answer, &path).await
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.requests.recv())
            .await
            .expect("the receiver got nothing within 5 s")
            .unwrap()
    }

    /// Everything received so far, without waiting.
    fn drain(&mut self) -> Vec<Received> {
        std::iter::from_fn(|| self.requests.try_recv().ok()).collect()
    }
}

async fn respond(answer: Answer, path: &str) -> Response {
    match answer {
        Answer::Json(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Answer::Huge => vec![b'x'; 2 * 1024 * 1024].into_response(),
        Answer::Never => std::future::pending().await,
        Answer::Stalls => {
            let (mut writer, reader) = tokio::io::duplex(64);
            writer.write_all(br#"{"partial": "#).await.unwrap();
            // The writer stays open and silent, so the body never ends.
            tokio::spawn(async move {
                let _open = writer;
                std::future::pending::<()>().await
            });
            Body::from_stream(ReaderStream::new(reader)).into_response()
        }
        Answer::RetryAfter(value) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, value)],
        )
            .into_response(),
        Answer::Redirect if path == "/" => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "/elsewhere")],
        )
            .into_response(),
        Answer::Redirect => StatusCode::OK.into_response(),
    }
}

fn request(url: &str) -> WebhookRequest {
    WebhookRequest {
        url: url.to_owned(),
        headers: vec![],
        body: br#"{"hello": "world"}"#.to_vec(),
    }
}

fn local_client() -> HttpWebhookClient {
    HttpWebhookClient::new(true)
}

fn guarded_client() -> HttpWebhookClient {
    HttpWebhookClient::new(false)
}

#[tokio::test]
async fn a_json_answer_comes_back_and_the_request_arrives_as_sent() {
    let mut receiver = Receiver::start(Answer::Json(r#"{"approved": true}"#)).await;
    let mut sent = request(&receiver.url("/hooks/pre-approval?tenant=acme"));
    sent.headers = vec![
        ("Authorization".into(), "Bearer t0ken".into()),
        ("X-Trace".into(), "abc".into()),
    ];

    let reply = local_client().post(sent).await;

    assert_eq!(
        reply,
        Reply::Answered {
            status: 200,
            body: br#"{"approved": true}"#.to_vec(),
            retry_after: None,
        }
    );
    let got = receiver.next().await;
    assert_eq!(got.path, "/hooks/pre-approval");
    assert_eq!(got.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(got.headers[header::AUTHORIZATION], "Bearer t0ken");
    assert_eq!(got.headers["x-trace"], "abc");
    assert!(
        got.headers[header::USER_AGENT]
            .to_str()
            .unwrap()
            .starts_with("Triggerline/")
    );
    assert_eq!(&got.body[..], br#"{"hello": "world"}"#);
}

#[tokio::test]
async fn credentials_in_the_url_arrive_as_basic_auth() {
    let mut receiver = Receiver::start(Answer::Json("{}")).await;
    let url = format!("http://hook:s%3Dcret@{}/in", receiver.addr);

    let reply = local_client().post(request(&url)).await;

    assert!(
        matches!(reply, Reply::Answered { status: 200, .. }),
        "{reply:?}"
    );
    let got = receiver.next().await;
    assert_eq!(got.path, "/in");
    // base64("hook:s=cret")
    assert_eq!(got.headers[header::AUTHORIZATION], "Basic aG9vazpzPWNyZXQ=");
}

#[tokio::test]
async fn a_huge_answer_is_cut_at_the_cap() {
    let receiver = Receiver::start(Answer::Huge).await;

    let reply = local_client().post(request(&receiver.url("/"))).await;

    match reply {
        Reply::Answered { status, body, .. } => {
            assert_eq!(status, 200);
            assert_eq!(body.len(), MAX_RESPONSE_BYTES);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let mut receiver = Receiver::start(Answer::Never).await;
    let client = HttpWebhookClient::with_timeout(true, Duration::from_millis(300));

    let reply = client.post(request(&receiver.url("/"))).await;

    assert_eq!(reply, Reply::TimedOut);
    assert_eq!(
        receiver.next().await.path,
        "/",
        "the request arrived; only the answer was late"
    );
}

#[tokio::test]
async fn a_body_that_stalls_times_out_too() {
    let receiver = Receiver::start(Answer::Stalls).await;
    let client = HttpWebhookClient::with_timeout(true, Duration::from_millis(300));

    let reply = client.post(request(&receiver.url("/"))).await;

    assert_eq!(reply, Reply::TimedOut);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let reply = local_client()
        .post(request(&format!("http://{addr}/")))
        .await;

    match reply {
        Reply::Unreachable(why) => assert!(why.to_lowercase().contains("refused"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retry_after_is_read_as_seconds_or_as_a_date() {
    let seconds = Receiver::start(Answer::RetryAfter("7".into())).await;
    let in_two_minutes = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let date = Receiver::start(Answer::RetryAfter(in_two_minutes)).await;
    let client = local_client();

    let by_seconds = client.post(request(&seconds.url("/"))).await;
    let by_date = client.post(request(&date.url("/"))).await;

    assert_eq!(
        by_seconds,
        Reply::Answered {
            status: 503,
            body: vec![],
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    match by_date {
        Reply::Answered {
            status: 503,
            retry_after: Some(after),
            ..
        } => assert!(
            (Duration::from_secs(100)..=Duration::from_secs(120)).contains(&after),
            "{after:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn private_targets_are_blocked_without_any_request_reaching_them() {
    let mut receiver = Receiver::start(Answer::Json("{}")).await;
    let port = receiver.addr.port();
    let client = guarded_client();

    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        match client.post(request(&url)).await {
            Reply::Blocked(why) => assert!(why.ends_with("resolves to a private address"), "{why}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    match client
        .post(request(&format!("http://localhost:{port}/")))
        .await
    {
        Reply::Blocked(why) => assert_eq!(why, "localhost resolves to a private address"),
        other => panic!("{other:?}"),
    }

    // Every blocked post has returned, and a request forwards itself before it is answered, so
    // anything that had reached the receiver would already be in the channel.
    assert_eq!(receiver.drain().len(), 0);
}

#[tokio::test]
async fn private_targets_are_delivered_when_allowed() {
    let mut receiver = Receiver::start(Answer::Json("{}")).await;
    let url = format!("http://localhost:{}/", receiver.addr.port());

    let reply = local_client().post(request(&url)).await;

    assert!(
        matches!(reply, Reply::Answered { status: 200, .. }),
        "{reply:?}"
    );
    assert_eq!(receiver.next().await.path, "/");
}

#[tokio::test]
async fn only_http_and_https_are_delivered() {
    let client = local_client();

    for url in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
    ] {
        let reply = client.post(request(url)).await;

        assert!(matches!(reply, Reply::Blocked(_)), "{url}: {reply:?}");
    }
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let mut receiver = Receiver::start(Answer::Redirect).await;

    let reply = local_client().post(request(&receiver.url("/"))).await;

    assert!(
        matches!(reply, Reply::Answered { status: 307, .. }),
        "{reply:?}"
    );
    let paths: Vec<String> = receiver.drain().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/"]);
}

#[tokio::test]
async fn credentials_in_the_url_never_reach_the_reply() {
    let url = "http://user:pass@127.0.0.1:1/";

    let blocked = guarded_client().post(request(url)).await;
    let refused = local_client().post(request(url)).await;

    assert!(matches!(blocked, Reply::Blocked(_)), "{blocked:?}");
    assert!(matches!(refused, Reply::Unreachable(_)), "{refused:?}");
    for reply in [blocked, refused] {
        let text = format!("{reply:?}");
        assert!(!text.contains("pass"), "{text}");
        assert!(!text.contains("user"), "{text}");
    }
}

#[test]
fn the_host_an_attempt_records_comes_from_the_kept_target_or_the_url() {
    let url = "https://user:pw@hooks.example.com:8443/a?b=c#d";
    for client in [local_client(), guarded_client()] {
        // Twice: the first judges and keeps the target, the second answers from it.
        assert_eq!(client.host_of(url), "hooks.example.com");
        assert_eq!(client.host_of(url), "hooks.example.com");
        assert_eq!(client.host_of("not a url"), "");
    }
    // A target the guarded client refuses is not kept; its host comes from the URL.
    assert_eq!(guarded_client().host_of("http://10.0.0.7/hook"), "10.0.0.7");
    assert_eq!(local_client().host_of("http://[::1]:9/hook"), "[::1]");
}

/// At most [`MAX_IN_FLIGHT_PER_URL`] requests are in flight to one URL: the next attempt is sent
/// only once one of them has ended (here: timed out, the receiver never answers), while another
/// URL is served at once. The probe starts after the held requests, so its own timeout ends
/// after theirs and it can wait them out.
#[tokio::test]
async fn requests_in_flight_to_one_url_are_capped_and_another_url_does_not_wait() {
    let mut held = Receiver::start(Answer::Never).await;
    let mut other = Receiver::start(Answer::Json("{}")).await;
    let client = HttpWebhookClient::with_timeout(true, Duration::from_secs(1));
    let url = held.url("/");

    let holding: Vec<_> = (0..MAX_IN_FLIGHT_PER_URL)
        .map(|_| {
            let client = client.clone();
            let request = request(&url);
            tokio::spawn(async move { client.post(request).await })
        })
        .collect();
    for _ in 0..MAX_IN_FLIGHT_PER_URL {
        held.next().await;
    }

    let probe = {
        let client = client.clone();
        let request = request(&url);
        tokio::spawn(async move { client.post(request).await })
    };
    assert!(matches!(
        client.post(request(&other.url("/"))).await,
        Reply::Answered { status: 200, .. }
    ));
    other.next().await;
    assert!(
        holding.iter().all(|h| !h.is_finished()),
        "the other URL was answered while all of the first's were still held"
    );

    held.next().await;
    assert!(
        holding.iter().any(|h| h.is_finished()),
        "the probe arrived while {MAX_IN_FLIGHT_PER_URL} requests to its URL were in flight"
    );
    for h in holding {
        assert_eq!(h.await.unwrap(), Reply::TimedOut);
    }
    assert_eq!(probe.await.unwrap(), Reply::TimedOut);
}
