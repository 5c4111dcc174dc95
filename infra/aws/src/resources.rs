//! Creating missing resources at start (`TRIGGERLINE_AWS_CREATE_RESOURCES=true`): for
//! development and tests against an emulator. A real deployment's resources come from
//! `template.yaml`.
//!
//! The code is behind the crate's `create-resources` feature. The Lambda packages are built
//! without it, so their bootstraps carry none of the table, queue and bus creation calls, and a
//! function asked to create resources refuses to start ([`NotBuiltIn`]) instead of ignoring it.

/// Whether this build can create resources (the `create-resources` feature).
pub const BUILT_IN: bool = cfg!(feature = "create-resources");

/// [`crate::settings::env::CREATE_RESOURCES`] asked for what this build leaves out.
#[derive(Debug, thiserror::Error)]
#[error(
    "TRIGGERLINE_AWS_CREATE_RESOURCES is set, but this build cannot create resources: it was built without the `create-resources` feature, as the Lambda packages are"
)]
pub struct NotBuiltIn;

/// Creates the tables, the work queue with its dead-letter queue, the ordered (FIFO) queue and
/// the bus, where missing.
#[cfg(feature = "create-resources")]
pub async fn create_missing(
    clients: &crate::Clients,
    settings: &crate::AwsSettings,
) -> Result<(), triggerline::Error> {
    use crate::{dynamo, eventbridge, sqs};

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
    sqs::create_missing_ordered_queue(clients.sqs(), &settings.ordered_queue).await?;
    eventbridge::create_missing_bus(clients.eventbridge(), &settings.event_bus).await
}

/// The tables only, for the functions that use nothing else of [`create_missing`]: with
/// `settings.create_resources`, creates them where missing; otherwise does nothing. Asked of a
/// build without the feature, [`NotBuiltIn`].
#[cfg_attr(not(feature = "create-resources"), allow(unused_variables))]
pub async fn create_missing_tables(
    clients: &crate::Clients,
    settings: &crate::AwsSettings,
) -> Result<(), triggerline::Error> {
    if asked(settings)? {
        #[cfg(feature = "create-resources")]
        crate::dynamo::tables::create_missing(
            clients.dynamodb(),
            &settings.subscriptions_table,
            &settings.invocations_table,
        )
        .await?;
    }
    Ok(())
}

/// [`create_missing_tables`] for Triggerline's bus, for the functions that publish completion
/// events without the rest of the dispatcher (callback, sweep).
#[cfg_attr(not(feature = "create-resources"), allow(unused_variables))]
pub async fn create_missing_bus(
    clients: &crate::Clients,
    settings: &crate::AwsSettings,
) -> Result<(), triggerline::Error> {
    if asked(settings)? {
        #[cfg(feature = "create-resources")]
        crate::eventbridge::create_missing_bus(clients.eventbridge(), &settings.event_bus).await?;
    }
    Ok(())
}

/// Whether `settings` ask for missing resources to be created; [`NotBuiltIn`] when they do and
/// this build cannot, so that the function refuses to start rather than run without them.
fn asked(settings: &crate::AwsSettings) -> Result<bool, triggerline::Error> {
    if settings.create_resources && !BUILT_IN {
        return Err(triggerline::Error::unavailable(NotBuiltIn));
    }
    Ok(settings.create_resources)
}
