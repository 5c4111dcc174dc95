//! Creating the tables (development against an emulator; production tables come from
//! `template.yaml`, which must declare the same keys and indexes).

use aws_sdk_dynamodb::Client;
use triggerline::Error;

/// Creates either table if it is missing, with its keys, indexes and TTL.
pub async fn create_missing(
    _client: &Client,
    _subscriptions_table: &str,
    _invocations_table: &str,
) -> Result<(), Error> {
    unimplemented!("create tables")
}
