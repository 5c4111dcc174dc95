//! The AWS adapters against a real moto server. One test binary for all of them: each binary
//! links the whole AWS SDK, so one per file cost CI minutes of linking and gigabytes of disk.
mod dynamo_contract;
mod dynamo_credentials;
mod dynamo_shards;
mod dynamo_template;
mod eventbridge;
mod sqs_dead_letters;
mod sqs_ordered;
mod sqs_queue;
