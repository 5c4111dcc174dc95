//! One stack of in-memory ports, and the contexts each use case takes, built over it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use triggerline::catalog::Catalog;
use triggerline::delivery::Reply;
use triggerline::memory::{
    MemoryIdempotency, MemoryInvocations, MemoryQueue, MemorySubscriptions, MemoryWatch,
    RecordingEvents, RecordingSignal,
};
use triggerline::model::{Invocation, Subscription};
use triggerline::ports::{InvocationStore, WebhookClient, WebhookRequest};
use triggerline::secrets::SecretKey;
use triggerline::time::{FixedJitter, ManualClock, RandomIds};
use triggerline::usecases::Subscriptions;
use triggerline::usecases::complete::Completion;
use triggerline::usecases::delivery::{Delivery, DeliveryPolicy};
use triggerline::usecases::intake::{Intake, SyncRecord};
use triggerline::usecases::notify::Notifier;
use triggerline::usecases::sweep::Sweep;
use triggerline::wire::SubscriptionPostRequest;

pub const FIRE: &str = "idn:identity-created";
pub const RESPOND: &str = "idn:access-request-pre-approval";
pub const PUBLIC_URL: &str = "https://triggerline.example.com";

/// What a subscriber does while it holds a request, before it answers.
pub type During = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A webhook client that answers from a script (then `200 {}`) and keeps every request.
#[derive(Clone, Default)]
pub struct ScriptedWebhooks {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<WebhookRequest>>>,
    during: Arc<Mutex<Option<During>>>,
}

impl std::fmt::Debug for ScriptedWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedWebhooks").finish_non_exhaustive()
    }
}

impl ScriptedWebhooks {
    pub fn reply(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    /// Runs `act` when the next request arrives, before it is answered: a subscriber that
    /// calls back first, or a sweep that runs meanwhile.
    pub fn during_next(&self, act: During) {
        *self.during.lock().unwrap() = Some(act);
    }

    pub fn requests(&self) -> Vec<WebhookRequest> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait]
impl WebhookClient for ScriptedWebhooks {
    async fn post(&self, request: WebhookRequest) -> Reply {
        self.requests.lock().unwrap().push(request);
        let during = self.during.lock().unwrap().take();
        if let Some(act) = during {
            act().await;
        }
        self.replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| answered(200, json!({})))
    }
}

pub fn answered(status: u16, body: Value) -> Reply {
    Reply::Answered {
        status,
        body: body.to_string().into_bytes(),
        retry_after: None,
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

/// The example input and output of a catalog trigger.
pub fn example_input(trigger_id: &str) -> Value {
    Catalog::builtin()
        .get(trigger_id)
        .unwrap()
        .trigger
        .example_input
        .clone()
}

pub fn example_output(trigger_id: &str) -> Value {
    Catalog::builtin()
        .get(trigger_id)
        .unwrap()
        .trigger
        .example_output
        .clone()
        .unwrap()
}

#[derive(Debug, Clone)]
pub struct Stack {
    pub clock: Arc<ManualClock>,
    pub subscriptions: MemorySubscriptions,
    pub invocations: MemoryInvocations,
    pub queue: MemoryQueue,
    pub events: RecordingEvents,
    pub watch: MemoryWatch,
    pub signal: RecordingSignal,
    pub webhooks: ScriptedWebhooks,
    pub key: SecretKey,
    pub max_attempts: u32,
    pub health: triggerline::health::HealthPolicy,
    pub keys: MemoryIdempotency,
}

impl Stack {
    pub fn new() -> Stack {
        let invocations = MemoryInvocations::default();
        Stack {
            clock: Arc::new(ManualClock::new(t0())),
            subscriptions: MemorySubscriptions::default(),
            queue: MemoryQueue::over(&invocations),
            invocations,
            events: RecordingEvents::default(),
            watch: MemoryWatch::default(),
            signal: RecordingSignal::default(),
            webhooks: ScriptedWebhooks::default(),
            key: SecretKey::new(vec![7; 32]),
            max_attempts: 3,
            health: Default::default(),
            keys: MemoryIdempotency::default(),
        }
    }

    pub fn notifier(&self) -> Notifier {
        Notifier {
            events: Some(Arc::new(self.events.clone())),
            watch: Arc::new(self.watch.clone()),
            event_source: "triggerline".into(),
            inline_completion_events: false,
            poke: None,
        }
    }

    pub fn delivery(&self) -> Delivery {
        Delivery {
            catalog: Catalog::builtin(),
            subscriptions: Arc::new(self.subscriptions.clone()),
            invocations: Arc::new(self.invocations.clone()),
            queue: Arc::new(self.queue.clone()),
            client: Arc::new(self.webhooks.clone()),
            events: Arc::new(self.events.clone()),
            clock: self.clock.clone(),
            // The middle of the spread: retries land exactly on the schedule.
            jitter: Arc::new(FixedJitter(0.5)),
            key: self.key.clone(),
            policy: DeliveryPolicy {
                public_url: PUBLIC_URL.into(),
                max_attempts: self.max_attempts,
                event_source: "triggerline".into(),
                subscriber_bus: "default".into(),
                lease: Duration::from_secs(60),
                health: self.health.clone(),
            },
            notifier: self.notifier(),
        }
    }

    /// The local stack's intake: an in-process worker (the recording signal), a write before
    /// each inline delivery, and a wait limit long enough to deliver from the request.
    pub fn intake(&self) -> Intake {
        Intake {
            delivery: self.delivery(),
            signal: Some(Arc::new(self.signal.clone())),
            sync_record: SyncRecord::BeforeDelivery,
            ids: Arc::new(RandomIds),
            sync_wait: Duration::from_secs(25),
            keys: Some(Arc::new(self.keys.clone())),
            events_inline: false,
        }
    }

    pub fn completion(&self) -> Completion {
        Completion {
            catalog: Catalog::builtin(),
            invocations: Arc::new(self.invocations.clone()),
            clock: self.clock.clone(),
            notifier: self.notifier(),
        }
    }

    pub fn sweep(&self) -> Sweep {
        Sweep {
            invocations: Arc::new(self.invocations.clone()),
            clock: self.clock.clone(),
            notifier: self.notifier(),
        }
    }

    /// The subscription use cases over this stack's store and clock.
    pub fn subscription_uses(&self) -> Subscriptions {
        Subscriptions::new(
            Arc::new(self.subscriptions.clone()),
            Catalog::builtin(),
            self.clock.clone(),
            Arc::new(RandomIds),
        )
    }

    /// Creates a subscription through its use case, from a SailPoint request body.
    pub async fn subscribe(&self, request: Value) -> Subscription {
        let request: SubscriptionPostRequest = serde_json::from_value(request).unwrap();
        self.subscription_uses().create(request).await.unwrap()
    }

    /// An HTTP subscription of `trigger_id` in `mode`, with basic auth.
    pub async fn webhook(&self, trigger_id: &str, mode: &str) -> Subscription {
        self.subscribe(json!({
            "name": format!("{mode} receiver"),
            "triggerId": trigger_id,
            "type": "HTTP",
            "httpConfig": {
                "url": "https://hooks.example.com/triggerline",
                "httpDispatchMode": mode,
                "httpAuthenticationType": "BASIC_AUTH",
                "basicAuthConfig": {"userName": "hooks", "password": "s3cret-passw0rd"}
            },
            "responseDeadline": "PT1H",
        }))
        .await
    }

    pub async fn invocation(&self, id: &str) -> Invocation {
        self.invocations.get(id).await.unwrap().unwrap()
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }
}
