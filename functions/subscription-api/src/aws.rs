//! The Lambda wiring (`src/main.rs`): the subscription API's [`Context`] over the AWS adapters.
//! Tests build the same context over an emulator, so what they serve is what the function
//! serves.

use std::sync::Arc;

use triggerline::secrets::CredentialKey;
use triggerline::time::{RandomIds, SystemClock};
use triggerline_aws::dynamo::DynamoSubscriptionStore;
use triggerline_aws::{AwsSettings, Clients};
use triggerline_http::ApiAuth;

use crate::Context;

/// The context on AWS: the subscriptions table only (so the binary links no other service).
/// Auth is [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the caller before the
/// request reached the function. `credentials` seal the subscriptions' credentials, as the
/// dispatcher opens them (the same service key).
pub fn context(clients: &Clients, settings: &AwsSettings, credentials: CredentialKey) -> Context {
    Context {
        subscriptions: Arc::new(DynamoSubscriptionStore::new(
            clients.dynamodb().clone(),
            &settings.subscriptions_table,
            credentials,
        )),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        auth: ApiAuth::Upstream,
    }
}
