//! A real webhook receiver on 127.0.0.1: it forwards every request through a channel and answers
//! from a script that the test can change mid-way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Json(u16, Value),
    /// A JSON text as written, for what `Value` cannot hold.
    Text(u16, &'static str),
    Empty(u16),
    /// Never answers (the dispatcher's 10 s timeout ends it).
    Hang,
    /// Answers after a pause (slow but in time).
    After(Duration, Box<Answer>),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
}

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: mpsc::UnboundedSender<Received>,
}

pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<VecDeque<Answer>>>,
    requests: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    /// Starts a receiver that answers with `answers` in order, repeating the last one.
    pub async fn start(answers: Vec<Answer>) -> Receiver {
        let script = Arc::new(Mutex::new(VecDeque::from(answers)));
        let (seen, requests) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(handle).with_state(Script {
            answers: script.clone(),
            seen,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url,
            script,
            requests,
        }
    }

    /// Replaces the script.
    pub fn answer(&self, answers: Vec<Answer>) {
        *self.script.lock().unwrap() = VecDeque::from(answers);
    }

    /// The next request, waiting at most 20 s for it.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(20), self.requests.recv())
            .await
            .expect("no delivery within 20 s")
            .expect("receiver stopped")
    }

    /// Requests received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(r) = self.requests.try_recv() {
            all.push(r);
        }
        all
    }
}

async fn handle(State(script): State<Script>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let _ = script.seen.send(Received { headers, raw, body });
    let answer = {
        let mut answers = script.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap_or(Answer::Empty(200))
        }
    };
    respond(answer).await
}

fn respond(
    answer: Answer,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(async move {
        match answer {
            Answer::Json(status, body) => {
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
            }
            Answer::Text(status, text) => (
                StatusCode::from_u16(status).unwrap(),
                [("Content-Type", "application/json")],
                text,
            )
                .into_response(),
            Answer::Empty(status) => StatusCode::from_u16(status).unwrap().into_response(),
            Answer::Hang => std::future::pending().await,
            Answer::After(pause, then) => {
                tokio::time::sleep(pause).await;
                respond(*then).await
            }
        }
    })
}
