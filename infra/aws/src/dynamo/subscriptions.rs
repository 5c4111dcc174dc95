//! Subscriptions in DynamoDB.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use triggerline::Error;
use triggerline::model::Subscription;
use triggerline::ports::SubscriptionStore;
use triggerline::query::{Page, SubscriptionQuery};

/// [`SubscriptionStore`] on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoSubscriptionStore {
    client: Client,
    table: String,
}

impl DynamoSubscriptionStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoSubscriptionStore {
            client,
            table: table.to_owned(),
        }
    }
}

#[async_trait]
impl SubscriptionStore for DynamoSubscriptionStore {
    async fn create(&self, _s: &Subscription, _max: usize) -> Result<(), Error> {
        let _ = (&self.client, &self.table);
        unimplemented!("DynamoSubscriptionStore::create")
    }
    async fn get(&self, _id: &str) -> Result<Option<Subscription>, Error> {
        unimplemented!("DynamoSubscriptionStore::get")
    }
    async fn list(&self, _q: &SubscriptionQuery) -> Result<Page<Subscription>, Error> {
        unimplemented!("DynamoSubscriptionStore::list")
    }
    async fn list_for_trigger(&self, _t: &str) -> Result<Vec<Subscription>, Error> {
        unimplemented!("DynamoSubscriptionStore::list_for_trigger")
    }
    async fn replace(&self, _s: &Subscription, _v: u64) -> Result<(), Error> {
        unimplemented!("DynamoSubscriptionStore::replace")
    }
    async fn delete(&self, _id: &str) -> Result<(), Error> {
        unimplemented!("DynamoSubscriptionStore::delete")
    }
}
