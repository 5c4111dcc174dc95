//! In-memory adapters of the ports (feature `test-support`), for unit tests of the use cases.
//!
//! They keep the promises the SQLite and DynamoDB adapters keep, and are held to them by the
//! same contract suites (`shared/tests/memory_contract.rs`): conditional transitions, the
//! all-or-nothing `create_all` and `accept`, the per-trigger subscription limit, leases that
//! end at the times the caller gives (no clock of their own). What they leave out is only what
//! no use case can see: durability, credentials sealed at rest, unreadable rows.
//!
//! ```ignore
//! let subscriptions = MemorySubscriptions::default();
//! let invocations = MemoryInvocations::default();
//! let queue = MemoryQueue::over(&invocations); // writes what `invocations` reads
//! let events = RecordingEvents::default();     // `events.published()` after the call
//! let watch = MemoryWatch::default();          // `watch.changed_ids()` after the call
//! let signal = RecordingSignal::default();     // `signal.handoffs()` after the call
//! ```
//!
//! Every value is a cheap handle: clones share their state, so a test keeps one clone to look
//! into and hands another (as an `Arc<dyn Port>`) to the use case.

mod idempotency;
mod invocations;
mod notices;
mod queue;
mod subscriptions;

pub use idempotency::MemoryIdempotency;
pub use invocations::MemoryInvocations;
pub use notices::{MemoryWatch, RecordingEvents, RecordingSignal};
pub use queue::{MemoryQueue, Queued};
pub use subscriptions::MemorySubscriptions;

use std::sync::{Mutex, MutexGuard};

/// Locks `state`. A test that panicked while holding the lock left no write half done (every
/// write checks first and changes after), so a poisoned lock is still good.
fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
