//! The dispatcher's Lambda handlers over the AWS adapters on moto. One test binary for all of
//! them: each binary links the whole AWS SDK, so one per file cost CI minutes of linking and
//! gigabytes of disk.
mod intake_recovery;
mod lambda_dispatcher;
mod queue_dead_letters;
