//! The event publisher on EventBridge.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use triggerline::Error;
use triggerline::ports::{Event, EventPublisher};

use crate::{AwsSettings, Clients};

/// Creates a custom bus if it is missing (`default` always exists).
pub async fn create_missing_bus(_client: &Client, _name: &str) -> Result<(), Error> {
    unimplemented!("create_missing_bus")
}

/// [`EventPublisher`] on EventBridge `PutEvents`.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    clients: Clients,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(clients: Clients, settings: &AwsSettings) -> Self {
        EventBridgePublisher {
            clients,
            bus: settings.event_bus.clone(),
        }
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, _events: &[Event]) -> Result<(), Error> {
        let _ = (&self.clients, &self.bus);
        unimplemented!("publish")
    }
}
