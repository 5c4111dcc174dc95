//! The event publisher on EventBridge.
//!
//! An [`Event`] names its bus: `None` for Triggerline's own bus (completion events), or the ARN
//! of a subscriber's bus (`arn:aws:events:<region>:<account>:event-bus/<name>`, EVENTBRIDGE
//! subscriptions). `PutEvents` reaches a bus of another account by its ARN, but only in the
//! client's region, so a bus in another region is put to by a client for that region, derived
//! from the process's configuration and kept for the next time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::config::Region;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use triggerline::Error;
use triggerline::limits::EVENTBRIDGE_ENTRY_BYTES;
use triggerline::ports::{Event, EventPublisher};

use crate::error::{AwsFailure, unavailable};
use crate::{AwsSettings, Clients};

/// Entries per `PutEvents`.
const MAX_ENTRIES: usize = 10;
/// Bytes per `PutEvents` request, counted as EventBridge counts them.
const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Creates a custom bus if it is missing (`default` always exists).
#[cfg(feature = "create-resources")]
pub async fn create_missing_bus(client: &Client, name: &str) -> Result<(), Error> {
    if name == "default" {
        return Ok(());
    }
    match client.create_event_bus().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable("CreateEventBus", e)),
    }
}

/// The region of a bus ARN (`arn:aws:events:<region>:<account>:event-bus/<name>`); `None` for
/// a plain name.
pub fn bus_region(bus: &str) -> Option<&str> {
    let mut parts = bus.strip_prefix("arn:")?.split(':');
    let (_partition, service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (service == "events" && !region.is_empty()).then_some(region)
}

/// [`EventPublisher`] on EventBridge `PutEvents`.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    clients: Clients,
    bus: String,
    /// Clients for the other regions subscribers' buses are in.
    regional: Arc<Mutex<HashMap<String, Client>>>,
}

impl EventBridgePublisher {
    pub fn new(clients: Clients, settings: &AwsSettings) -> Self {
        EventBridgePublisher {
            clients,
            bus: settings.event_bus.clone(),
            regional: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The client that reaches `bus`.
    fn client_for(&self, bus: &str) -> Client {
        let home = self.clients.config().region().map(Region::as_ref);
        let region = match bus_region(bus) {
            Some(region) if Some(region) != home => region,
            _ => return self.clients.eventbridge().clone(),
        };
        let mut regional = self.regional.lock().unwrap_or_else(|e| e.into_inner());
        regional
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_eventbridge::config::Builder::from(self.clients.config())
                    .region(Region::new(region.to_owned()))
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }

    async fn put(&self, client: Client, entries: Vec<PutEventsRequestEntry>) -> Result<(), Error> {
        let count = entries.len();
        let out = client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| unavailable("PutEvents", e))?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        let codes = out
            .entries()
            .iter()
            .filter_map(|e| {
                e.error_code()
                    .map(|code| format!("{code} ({})", e.error_message().unwrap_or("")))
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::unavailable(AwsFailure {
            operation: "PutEvents",
            detail: format!(
                "{} of {count} events rejected: {codes}",
                out.failed_entry_count()
            ),
        }))
    }
}

/// What EventBridge counts towards a request's size.
fn entry_size(entry: &PutEventsRequestEntry) -> usize {
    [entry.source(), entry.detail_type(), entry.detail()]
        .into_iter()
        .map(|s| s.map_or(0, str::len))
        .sum()
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    /// Puts every event, grouped by the region of its bus, at most 10 and 256 KiB per
    /// `PutEvents`, the requests concurrently. Fails with [`Error::Unavailable`] when any
    /// request fails or EventBridge rejects any entry (the error names their codes); entries of
    /// other requests may have been put by then, and a retry puts them again.
    async fn publish(&self, events: &[Event]) -> Result<(), Error> {
        let mut requests: Vec<(Client, Vec<PutEventsRequestEntry>, usize)> = Vec::new();
        let mut open: HashMap<String, usize> = HashMap::new();
        for event in events {
            let bus = event.bus.as_deref().unwrap_or(&self.bus);
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source(&event.source)
                .detail_type(&event.detail_type)
                .detail(event.detail.get())
                .build();
            let size = entry_size(&entry);
            // The use cases keep inputs and outputs well under this; an event past it would
            // fail inside PutEvents with a less telling error.
            if size > EVENTBRIDGE_ENTRY_BYTES {
                return Err(Error::TooLarge {
                    field: "detail".to_owned(),
                    size,
                    limit: EVENTBRIDGE_ENTRY_BYTES,
                    name: "EVENTBRIDGE_ENTRY_BYTES",
                });
            }
            let region = bus_region(bus).unwrap_or("").to_owned();
            let fits = open.get(&region).is_some_and(|&i| {
                let (_, entries, bytes) = &requests[i];
                entries.len() < MAX_ENTRIES && bytes + size <= MAX_REQUEST_BYTES
            });
            match open.get(&region) {
                Some(&i) if fits => {
                    requests[i].1.push(entry);
                    requests[i].2 += size;
                }
                _ => {
                    open.insert(region, requests.len());
                    requests.push((self.client_for(bus), vec![entry], size));
                }
            }
        }
        let puts = requests
            .into_iter()
            .map(|(client, entries, _)| self.put(client, entries));
        futures::future::join_all(puts)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_a_bus_arn_only() {
        assert_eq!(
            bus_region("arn:aws:events:eu-west-1:123456789012:event-bus/default"),
            Some("eu-west-1")
        );
        assert_eq!(
            bus_region("arn:aws-cn:events:cn-north-1:123456789012:event-bus/x"),
            Some("cn-north-1")
        );
        assert_eq!(bus_region("triggerline"), None);
        assert_eq!(bus_region("arn:aws:sqs:us-east-1:123456789012:q"), None);
        assert_eq!(bus_region("arn:aws:events::123456789012:event-bus/x"), None);
    }
}
