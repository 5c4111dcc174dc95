//! AWS adapters for Triggerline's ports: DynamoDB stores ([`dynamo`]), the SQS delivery queue
//! ([`sqs`]) and the EventBridge publisher ([`eventbridge`]), over SDK clients built once per
//! process ([`Clients`]). The Lambda functions (through `triggerline-lambda`) and `triggerline
//! --backend aws` assemble them with [`AwsBackend::connect`].
//!
//! The DynamoDB key design, its indexes and which list queries cost a scan are written down in
//! [`dynamo`].
#![forbid(unsafe_code)]

pub mod clients;
pub mod dynamo;
pub mod error;
pub mod eventbridge;
pub mod resources;
pub mod secretsmanager;
pub mod settings;
pub mod sqs;
#[cfg(feature = "test-support")]
pub mod testing;

use std::sync::Arc;

pub use clients::Clients;
pub use settings::AwsSettings;
use triggerline::Error;
use triggerline::secrets::CredentialKey;

use dynamo::{DynamoIdempotencyStore, DynamoInvocationStore, DynamoSubscriptionStore};
use eventbridge::EventBridgePublisher;
use sqs::SqsDeliveryQueue;

/// Every AWS adapter, wired to one set of resources.
#[derive(Debug, Clone)]
pub struct AwsBackend {
    pub subscriptions: Arc<DynamoSubscriptionStore>,
    pub invocations: Arc<DynamoInvocationStore>,
    pub queue: Arc<SqsDeliveryQueue>,
    pub events: Arc<EventBridgePublisher>,
    /// The `Idempotency-Key`s of `start` and `test`, on the invocations table.
    pub keys: Arc<DynamoIdempotencyStore>,
}

impl AwsBackend {
    /// Builds the adapters. With `settings.create_resources`, first creates whatever tables,
    /// queues and bus are missing; then resolves the work and ordered queues' URLs (a `GetQueueUrl`
    /// each when a name was given). `credentials` seal and open the subscriptions' credentials (derived
    /// from the service key: every process sharing the tables needs the same one).
    pub async fn connect(
        clients: &Clients,
        settings: &AwsSettings,
        credentials: CredentialKey,
    ) -> Result<AwsBackend, Error> {
        if settings.create_resources {
            #[cfg(feature = "create-resources")]
            resources::create_missing(clients, settings).await?;
            #[cfg(not(feature = "create-resources"))]
            return Err(Error::unavailable(resources::NotBuiltIn));
        }
        let queue_url = sqs::resolve_queue_url(clients.sqs(), &settings.work_queue).await?;
        let ordered_url = sqs::resolve_queue_url(clients.sqs(), &settings.ordered_queue).await?;
        let invocations = Arc::new(invocation_store(clients, settings));
        Ok(AwsBackend {
            subscriptions: Arc::new(DynamoSubscriptionStore::new(
                clients.dynamodb().clone(),
                &settings.subscriptions_table,
                credentials,
            )),
            queue: Arc::new(
                SqsDeliveryQueue::new(clients.sqs().clone(), queue_url, invocations.clone())
                    .with_ordered_queue(ordered_url, settings.order_recheck),
            ),
            invocations,
            events: Arc::new(EventBridgePublisher::new(clients.clone(), settings)),
            keys: Arc::new(DynamoIdempotencyStore::new(
                clients.dynamodb().clone(),
                &settings.invocations_table,
            )),
        })
    }
}

/// The invocation store on `settings`' table, writing the TTL of finished invocations when
/// `settings.retention` is set.
pub fn invocation_store(clients: &Clients, settings: &AwsSettings) -> DynamoInvocationStore {
    let store = DynamoInvocationStore::new(clients.dynamodb().clone(), &settings.invocations_table);
    match settings.retention {
        Some(ttl) => store.with_retention(ttl.succeeded, ttl.failed),
        None => store,
    }
}
