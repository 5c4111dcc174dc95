//! The Lambda wiring the dispatcher's binaries share (`src/main.rs`, `src/bin/*.rs`):
//! the delivery over the AWS adapters, and the intake's context. Tests build the same pieces
//! over an emulator, so what they exercise is what the functions run.

use std::sync::Arc;

use triggerline::time::RandomIds;
use triggerline::usecases::delivery::Delivery;
use triggerline::usecases::intake::{Intake, SyncRecord};
use triggerline_aws::AwsBackend;
use triggerline_aws::lambda::{self, BootError, FunctionEnv};
use triggerline_http::ApiAuth;
use triggerline_webhook::HttpWebhookClient;

use crate::Context;

/// The delivery of the functions that post webhooks (intake and queue consumer): one pooled
/// [`HttpWebhookClient`], guarded against private targets unless
/// `TRIGGERLINE_ALLOW_PRIVATE_TARGETS` says otherwise. Needs the secret key and public URL.
pub fn webhook_delivery(backend: &AwsBackend, env: &FunctionEnv) -> Result<Delivery, BootError> {
    let client = HttpWebhookClient::new(env.allow_private_targets);
    lambda::delivery(backend, Arc::new(client), env)
        .inspect_err(|e| tracing::error!(error = %e, "invalid function environment"))
        .map_err(Into::into)
}

/// The intake on AWS. No in-process worker (`signal: None`): the SQS work queue hands fresh work
/// to the queue consumer. A synchronous start writes once, with its outcome
/// ([`SyncRecord::WithOutcome`]), because every DynamoDB write is billed. Auth is
/// [`ApiAuth::Upstream`]: API Gateway's JWT authorizer checked the caller.
pub fn http_context(delivery: Delivery, env: &FunctionEnv) -> Context {
    Context {
        intake: Intake {
            delivery,
            signal: None,
            sync_record: SyncRecord::WithOutcome,
            ids: Arc::new(RandomIds),
            sync_wait: env.sync_wait,
        },
        auth: ApiAuth::Upstream,
    }
}
