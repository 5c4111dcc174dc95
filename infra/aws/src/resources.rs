//! Creating missing resources at start (`TRIGGERLINE_AWS_CREATE_RESOURCES=true`): for
//! development and tests against an emulator. A real deployment's resources come from
//! `template.yaml`.

use triggerline::Error;

use crate::{AwsSettings, Clients, dynamo, eventbridge, sqs};

/// Creates the tables, the work queue with its dead-letter queue, and the bus, where missing.
pub async fn create_missing(clients: &Clients, settings: &AwsSettings) -> Result<(), Error> {
    dynamo::tables::create_missing(
        clients.dynamodb(),
        &settings.subscriptions_table,
        &settings.invocations_table,
    )
    .await?;
    sqs::create_missing_queues(
        clients.sqs(),
        &settings.work_queue,
        &settings.dead_letter_queue,
    )
    .await?;
    eventbridge::create_missing_bus(clients.eventbridge(), &settings.event_bus).await
}
