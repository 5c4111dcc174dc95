//! `triggerline listen`: a development receiver on 127.0.0.1. It points a subscription at itself
//! (its own, created once and reused, or one named with `--subscription`), prints each delivery,
//! verifies its Standard Webhooks signature, answers as told, and can complete ASYNC and DYNAMIC
//! invocations through their callback.
//!
//! The signing secret is shown only in the 201 of a creation, so the receiver remembers the
//! secrets of the subscriptions it created in `<data-dir>/listen-secrets.json` (owner-only). Its
//! own subscription whose secret is not remembered there (the file was deleted, another data dir)
//! is deleted and created again, so that signatures can always be checked; a subscription named
//! with `--subscription` is never recreated, and is verified only when its secret is given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::Outcome;
use crate::args::{Listen, ListenMode};
use crate::client::{Api, eq_filter};
use crate::commands::{find_subscription, find_trigger, read_json};
use crate::error::{Error, Result};
use crate::output::{field, pretty};
use crate::signature::{Verdict, verify};

const SUBSCRIPTIONS: &str = "/trigger-subscriptions/v1";
const SECRETS_FILE: &str = "listen-secrets.json";
/// The callback is one small POST to the service; longer than this means it is not answering.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(args: Listen) -> Result<Outcome> {
    let api = Api::new(&args.connection)?;
    let json = args.connection.json;
    let trigger = find_trigger(&api, &args.trigger).await?;
    let output = match &args.output {
        Some(path) => read_json(path).await?,
        None => match &trigger["exampleOutput"] {
            Value::Null => json!({}),
            example => example.clone(),
        },
    };
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|source| Error::Io {
            what: format!("cannot listen on 127.0.0.1:{}", args.port),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| Error::Io {
        what: "cannot read the receiver's address".into(),
        source,
    })?;
    let url = format!("http://{address}/");
    let subscribed = subscribe(&api, &args, &url).await?;
    let subscription_id = field(&subscribed.subscription, "id");

    let (done, mut finished) = mpsc::unbounded_channel();
    let http = reqwest::Client::builder()
        .timeout(CALLBACK_TIMEOUT)
        .build()
        .map_err(|e| Error::usage("listen", format!("cannot build an HTTP client: {e}")))?;
    let receiver = Arc::new(Receiver {
        secret: subscribed.secret.clone(),
        mode: args.mode,
        status: args.status,
        delay: args.delay,
        complete_after: args.complete_after,
        output,
        json,
        http,
        done,
    });
    let ready = json!({
        "event": "ready",
        "url": url,
        "triggerId": args.trigger,
        "subscriptionId": subscription_id,
        "subscription": subscribed.how,
        "mode": args.mode.dispatch().as_api(),
        "verifying": subscribed.secret.is_some(),
    });
    if json {
        outln!("{ready}");
    } else {
        outln!(
            "listening on {url} for {} ({}), subscription {subscription_id} ({}), mode {}",
            args.trigger,
            field(&trigger, "type"),
            subscribed.how,
            args.mode.dispatch().as_api()
        );
        if subscribed.secret.is_none() {
            outln!(
                "signatures are not verified: the signing secret of this subscription is unknown (pass --signing-secret)"
            );
        }
        outln!("waiting for deliveries; Ctrl-C stops");
    }

    let count = args.count;
    let stop = async move {
        let mut seen = 0_u64;
        let enough = async {
            while finished.recv().await.is_some() {
                seen += 1;
                if count.is_some_and(|n| seen >= n) {
                    return;
                }
            }
        };
        tokio::select! {
            () = enough => {},
            // `listen` keeps no log to report a signal it cannot listen for to.
            () = crate::shutdown_signal(|_, _| {}) => {},
        }
    };
    let router = Router::new().fallback(receive).with_state(receiver);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await;

    let disabled = if args.keep_enabled {
        false
    } else {
        let off = json!([{"op": "replace", "path": "/enabled", "value": false}]);
        match api
            .patch(&format!("{SUBSCRIPTIONS}/{subscription_id}"), &off)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                eprintln!("warning: could not disable subscription {subscription_id}: {e}");
                false
            }
        }
    };
    if json {
        outln!(
            "{}",
            json!({"event": "stopped", "subscriptionId": subscription_id, "disabled": disabled})
        );
    } else if disabled {
        outln!(
            "stopped; subscription {subscription_id} disabled (the next `listen` enables it again)"
        );
    } else {
        outln!("stopped");
    }
    served.map_err(|source| Error::Io {
        what: "the receiver stopped".into(),
        source,
    })?;
    Ok(Outcome::Ok)
}

struct Subscribed {
    subscription: Value,
    /// `created`, `reused` or `recreated`.
    how: &'static str,
    secret: Option<String>,
}

async fn subscribe(api: &Api, args: &Listen, url: &str) -> Result<Subscribed> {
    let mut book = SecretBook::open(&args.data_dir).await?;
    let point_here = || -> Value {
        let mut ops = vec![
            json!({"op": "replace", "path": "/httpConfig/url", "value": url}),
            json!({"op": "replace", "path": "/httpConfig/httpDispatchMode", "value": args.mode.dispatch().as_api()}),
            json!({"op": "replace", "path": "/enabled", "value": true}),
        ];
        if let Some(filter) = &args.filter {
            ops.push(json!({"op": "replace", "path": "/filter", "value": filter}));
        }
        Value::Array(ops)
    };
    if let Some(id) = &args.subscription {
        find_subscription(api, id).await?;
        let subscription = api
            .patch(&format!("{SUBSCRIPTIONS}/{id}"), &point_here())
            .await?;
        let secret = args
            .signing_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .or_else(|| book.get(id));
        return Ok(Subscribed {
            subscription,
            how: "reused",
            secret,
        });
    }
    let mine = api
        .get(
            SUBSCRIPTIONS,
            &[("filters", eq_filter("triggerId", &args.trigger)?)],
        )
        .await?
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|s| s["name"] == args.name.as_str())
                .cloned()
        });
    let mut how = "created";
    if let Some(existing) = mine {
        let id = field(&existing, "id");
        if let Some(secret) = args
            .signing_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .or_else(|| book.get(&id))
        {
            let subscription = api
                .patch(&format!("{SUBSCRIPTIONS}/{id}"), &point_here())
                .await?;
            return Ok(Subscribed {
                subscription,
                how: "reused",
                secret: Some(secret),
            });
        }
        // Its secret was shown once, to a receiver that did not keep it: a new subscription
        // brings a new secret.
        api.delete(&format!("{SUBSCRIPTIONS}/{id}")).await?;
        how = "recreated";
    }
    let mut body = json!({
        "name": args.name,
        "triggerId": args.trigger,
        "type": "HTTP",
        "description": "A development receiver started by `triggerline listen`.",
        "enabled": true,
        "httpConfig": {"url": url, "httpDispatchMode": args.mode.dispatch().as_api(), "httpAuthenticationType": "NO_AUTH"},
    });
    if let Some(filter) = &args.filter {
        body["filter"] = json!(filter);
    }
    let created = match api.post(SUBSCRIPTIONS, &body).await {
        Ok(answer) => answer.body,
        Err(Error::Refused {
            method,
            path,
            status,
            message,
        }) => {
            return Err(Error::Refused {
                method,
                path,
                status,
                message: format!(
                    "{message} (a REQUEST_RESPONSE trigger takes one subscription: `listen --subscription <id>` points an existing one at this receiver)"
                ),
            });
        }
        Err(e) => return Err(e),
    };
    let id = field(&created, "id");
    let secret = created["signingSecret"].as_str().map(str::to_owned);
    if let Some(secret) = &secret {
        book.put(&id, secret);
        book.save().await?;
    }
    Ok(Subscribed {
        subscription: created,
        how,
        secret,
    })
}

/// Signing secrets of the subscriptions this receiver created, by subscription id.
struct SecretBook {
    path: PathBuf,
    secrets: BTreeMap<String, String>,
}

impl SecretBook {
    async fn open(data_dir: &Path) -> Result<SecretBook> {
        let path = data_dir.join(SECRETS_FILE);
        let secrets = match tokio::fs::read_to_string(&path).await {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::usage(
                    path.display().to_string(),
                    format!("not a secrets file ({e}); delete it"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(Error::Read { path, source }),
        };
        Ok(SecretBook { path, secrets })
    }

    fn get(&self, id: &str) -> Option<String> {
        self.secrets.get(id).cloned()
    }

    fn put(&mut self, id: &str, secret: &str) {
        self.secrets.insert(id.to_owned(), secret.to_owned());
    }

    /// Written to a fresh owner-only file and renamed over the old one, so a crash leaves either
    /// file whole and the secrets are never readable by others.
    async fn save(&self) -> Result<()> {
        let io = |source| Error::Io {
            what: format!("cannot write {}", self.path.display()),
            source,
        };
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        // A map of strings always serializes.
        let text = serde_json::to_string_pretty(&self.secrets).unwrap_or_default();
        let temporary = self.path.with_extension("json.tmp");
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&temporary).await.map_err(io)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, text.as_bytes())
            .await
            .map_err(io)?;
        file.sync_all().await.map_err(io)?;
        tokio::fs::rename(&temporary, &self.path).await.map_err(io)
    }
}

struct Receiver {
    secret: Option<String>,
    mode: ListenMode,
    status: Option<u16>,
    delay: Option<Duration>,
    complete_after: Option<Duration>,
    output: Value,
    json: bool,
    http: reqwest::Client,
    /// One message per delivery handled (answered, and completed when that was asked).
    done: mpsc::UnboundedSender<()>,
}

/// What to answer one delivery, and whether to complete it later.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
    complete: bool,
}

impl Receiver {
    fn answer(&self, delivery: &Value) -> Answer {
        let metadata = &delivery["_metadata"];
        let fire_and_forget = metadata["triggerType"] == "fireAndForget";
        let has_callback = metadata["callbackURL"].is_string() && metadata["secret"].is_string();
        let later = self.complete_after.is_some() && has_callback && !fire_and_forget;
        let (default, body, complete) = match self.mode {
            _ if fire_and_forget => (200, json!({}), false),
            ListenMode::Sync => (200, self.output.clone(), false),
            ListenMode::Async => (200, json!({}), later),
            ListenMode::Dynamic if later => (202, json!({}), true),
            ListenMode::Dynamic => (200, self.output.clone(), false),
        };
        let status = self.status.unwrap_or(default);
        Answer {
            status,
            body,
            complete: complete && (200..300).contains(&status),
        }
    }

    fn print(&self, event: Value, human: impl FnOnce() -> String) {
        if self.json {
            outln!("{event}");
        } else {
            outln!("{}", human());
        }
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = match &receiver.secret {
        Some(secret) => verify(
            secret,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            &body,
            Utc::now().timestamp(),
        ),
        None => Verdict::Unverified,
    };
    let text = String::from_utf8_lossy(&body);
    let delivery: Value =
        crate::output::parse_json(&text).unwrap_or_else(|_| Value::String(text.into_owned()));
    let metadata = &delivery["_metadata"];
    let invocation = field(metadata, "invocationId");
    let reason = match &verdict {
        Verdict::Invalid(reason) => Some(reason.clone()),
        _ => None,
    };
    receiver.print(
        json!({
            "event": "delivery",
            "receivedAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "path": uri.path(),
            "webhookId": header("webhook-id"),
            "invocationId": invocation,
            "triggerId": metadata["triggerId"],
            "signature": verdict.label(),
            "signatureError": reason,
            "body": delivery,
        }),
        || {
            let mut line = format!(
                "\n--> {} delivery {invocation} of {} ({}, {}), signature {}",
                Utc::now().format("%H:%M:%S%.3f"),
                field(metadata, "triggerId"),
                field(metadata, "triggerType"),
                field(metadata, "responseMode"),
                verdict.label(),
            );
            if let Some(reason) = &reason {
                line.push_str(&format!(": {reason}"));
            }
            format!("{line}\n{}", pretty(&delivery))
        },
    );

    if let Verdict::Invalid(reason) = verdict {
        // A receiver must not act on a request it cannot prove came from Triggerline.
        let _ = receiver.done.send(());
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": reason})),
        )
            .into_response();
    }
    let answer = receiver.answer(&delivery);
    if let Some(delay) = receiver.delay {
        tokio::time::sleep(delay).await;
    }
    receiver.print(
        json!({"event": "answer", "invocationId": invocation, "status": answer.status, "body": answer.body}),
        || format!("<-- {} {}", answer.status, answer.body),
    );
    if answer.complete {
        let after = receiver.complete_after.unwrap_or_default();
        let callback = field(metadata, "callbackURL");
        let secret = field(metadata, "secret");
        let task = Arc::clone(&receiver);
        if !receiver.json {
            outln!(
                "    completing through {callback} in {}",
                humantime::format_duration(after)
            );
        }
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            task.complete(&invocation, &callback, &secret).await;
            let _ = task.done.send(());
        });
    } else {
        let _ = receiver.done.send(());
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (status, axum::Json(answer.body)).into_response()
}

impl Receiver {
    async fn complete(&self, invocation: &str, callback: &str, secret: &str) {
        let sent = self
            .http
            .post(callback)
            .json(&json!({"secret": secret, "output": self.output}))
            .send()
            .await;
        let (status, message) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (Some(status), crate::client::error_message(&body))
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        self.print(
            json!({
                "event": if ok { "completed" } else { "completion-failed" },
                "invocationId": invocation,
                "status": status,
                "message": message,
            }),
            || {
                if ok {
                    format!("==> completed {invocation} through the callback")
                } else {
                    format!(
                        "==> completing {invocation} failed ({}): {}",
                        status.map_or("no answer".to_owned(), |s| s.to_string()),
                        message.unwrap_or_default()
                    )
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(
        mode: ListenMode,
        status: Option<u16>,
        complete_after: Option<Duration>,
    ) -> Receiver {
        let (done, _) = mpsc::unbounded_channel();
        Receiver {
            secret: None,
            mode,
            status,
            delay: None,
            complete_after,
            output: json!({"approved": true}),
            json: true,
            http: reqwest::Client::new(),
            done,
        }
    }

    fn delivery(trigger_type: &str, callback: bool) -> Value {
        let mut metadata = json!({"triggerType": trigger_type, "invocationId": "i"});
        if callback {
            metadata["callbackURL"] = json!("http://127.0.0.1:1/cb");
            metadata["secret"] = json!("s");
        }
        json!({"_metadata": metadata})
    }

    #[test]
    fn each_mode_answers_as_the_readme_table_says() {
        let later = Some(Duration::from_secs(2));
        let sync =
            receiver(ListenMode::Sync, None, None).answer(&delivery("requestResponse", false));
        assert_eq!(
            sync,
            Answer {
                status: 200,
                body: json!({"approved": true}),
                complete: false
            }
        );
        let asynchronous =
            receiver(ListenMode::Async, None, later).answer(&delivery("requestResponse", true));
        assert_eq!(
            asynchronous,
            Answer {
                status: 200,
                body: json!({}),
                complete: true
            }
        );
        let dynamic_later =
            receiver(ListenMode::Dynamic, None, later).answer(&delivery("requestResponse", true));
        assert_eq!(
            dynamic_later,
            Answer {
                status: 202,
                body: json!({}),
                complete: true
            }
        );
        let dynamic_now =
            receiver(ListenMode::Dynamic, None, None).answer(&delivery("requestResponse", true));
        assert_eq!(
            dynamic_now,
            Answer {
                status: 200,
                body: json!({"approved": true}),
                complete: false
            }
        );
    }

    #[test]
    fn a_failing_status_or_a_fire_and_forget_trigger_is_never_completed() {
        let later = Some(Duration::from_secs(1));
        let failing = receiver(ListenMode::Async, Some(503), later)
            .answer(&delivery("requestResponse", true));
        assert_eq!(failing.status, 503);
        assert!(!failing.complete);
        let event =
            receiver(ListenMode::Async, None, later).answer(&delivery("fireAndForget", false));
        assert_eq!(
            event,
            Answer {
                status: 200,
                body: json!({}),
                complete: false
            }
        );
    }

    #[tokio::test]
    async fn the_secret_book_keeps_secrets_in_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = SecretBook::open(&dir.path().join("fresh")).await.unwrap();
        assert_eq!(book.get("s1"), None);
        book.put("s1", "whsec_a2V5");
        book.save().await.unwrap();

        let again = SecretBook::open(&dir.path().join("fresh")).await.unwrap();
        assert_eq!(again.get("s1").as_deref(), Some("whsec_a2V5"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("fresh").join(SECRETS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
