//! What the two commands of this crate share: `triggerline-bench` (throughput, latency, memory)
//! and `triggerline-chaos` (kills, races and outages). Both drive the real release binary.

pub mod load;
pub mod machine;
pub mod receiver;
pub mod triggerline;
