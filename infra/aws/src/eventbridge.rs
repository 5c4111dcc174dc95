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
        let mut entries = Vec::with_capacity(events.len());
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
            entries.push((bus, entry, size));
        }
        let grouped = requests(
            entries
                .iter()
                .map(|(bus, _, size)| (bus_region(bus), *size)),
        );
        let mut entries: Vec<Option<PutEventsRequestEntry>> = entries
            .into_iter()
            .map(|(_, entry, _)| Some(entry))
            .collect();
        let puts = grouped.into_iter().map(|indexes| {
            let bus = events[indexes[0]].bus.as_deref().unwrap_or(&self.bus);
            let client = self.client_for(bus);
            let batch = indexes.iter().filter_map(|&i| entries[i].take()).collect();
            self.put(client, batch)
        });
        futures::future::join_all(puts.collect::<Vec<_>>())
            .await
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(drop)
    }
}

/// Groups entries, given as (region of their bus, size), into `PutEvents` requests: one region
/// each, at most [`MAX_ENTRIES`] entries and [`MAX_REQUEST_BYTES`] bytes, in the order given.
/// Each request is the indexes of its entries; an entry is never over the limit by itself
/// (`publish` refuses it first).
fn requests<'a>(entries: impl Iterator<Item = (Option<&'a str>, usize)>) -> Vec<Vec<usize>> {
    let mut requests: Vec<(Vec<usize>, usize)> = Vec::new();
    let mut open: HashMap<Option<&str>, usize> = HashMap::new();
    for (i, (region, size)) in entries.enumerate() {
        match open.get(&region) {
            Some(&r)
                if requests[r].0.len() < MAX_ENTRIES
                    && requests[r].1 + size <= MAX_REQUEST_BYTES =>
            {
                requests[r].0.push(i);
                requests[r].1 += size;
            }
            _ => {
                open.insert(region, requests.len());
                requests.push((vec![i], size));
            }
        }
    }
    requests.into_iter().map(|(indexes, _)| indexes).collect()
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

    /// EventBridge takes at most 10 entries and 256 KiB per request, counted as
    /// `entry_size` counts (source, detail type and detail in UTF-8 bytes).
    #[test]
    fn a_put_is_split_at_ten_entries_or_256_kib_per_region() {
        let kib = 1024;
        // Ten entries of 30 KiB are 300 KiB: eight fit (240 KiB), the ninth would be 270.
        let big = requests(std::iter::repeat_n((None, 30 * kib), 10));
        assert_eq!(big, vec![(0..8).collect::<Vec<_>>(), vec![8, 9]]);
        // Exactly 256 KiB fits; a byte more does not.
        let exact = requests([(None, 128 * kib), (None, 128 * kib), (None, 1)].into_iter());
        assert_eq!(exact, vec![vec![0, 1], vec![2]]);
        // The largest entry EventBridge takes fills a request by itself.
        let largest = requests(std::iter::repeat_n((None, EVENTBRIDGE_ENTRY_BYTES), 3));
        assert_eq!(largest, vec![vec![0], vec![1], vec![2]]);
        // Small entries: ten to a request.
        let small = requests(std::iter::repeat_n((None, 300), 25));
        assert_eq!(
            small.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        // Each region's requests fill on their own, in the order given.
        let mixed = requests(
            [
                (None, 200 * kib),
                (Some("eu-west-1"), 200 * kib),
                (None, 50 * kib),
                (Some("eu-west-1"), 100 * kib),
                (None, 10 * kib),
            ]
            .into_iter(),
        );
        assert_eq!(mixed, vec![vec![0, 2], vec![1], vec![3], vec![4]]);
    }

    #[test]
    fn an_entry_counts_its_source_detail_type_and_detail_in_bytes() {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name("a-long-bus-name-that-is-not-counted")
            .source("triggerline")
            .detail_type("Trigger Invocation Completed")
            .detail(r#"{"name":"Zoë"}"#)
            .build();
        assert_eq!(entry_size(&entry), 11 + 28 + 15);
    }
}
