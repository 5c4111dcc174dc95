//! A minimal async mutex (this crate has no async runtime dependency of its own).

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

/// Serializes this process's subscription writes (the create and delete transactions, and
/// the replace that could run beside them).
///
/// DynamoDB itself does not need it: the transactions are atomic across processes. moto's are
/// not under concurrency: a cancelled TransactWriteItems restores a copy of the whole table
/// taken when it began, which undoes writes that committed meanwhile, or brings back a write a
/// cancelled transaction had applied before its check failed, so concurrent creates could pass
/// the limit. Taking turns within the process avoids that, and on DynamoDB spares the
/// TransactionConflict retries that concurrent creates for one trigger would otherwise cost.
#[derive(Debug, Clone, Default)]
pub(crate) struct TurnLock {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    held: bool,
    waiting: Vec<Waker>,
}

/// Holding a turn; dropping it (also when the holder's future is cancelled) ends the turn.
#[derive(Debug)]
pub(crate) struct Turn {
    state: Arc<Mutex<State>>,
}

impl TurnLock {
    pub(crate) async fn turn(&self) -> Turn {
        poll_fn(|cx| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.held {
                state.waiting.push(cx.waker().clone());
                Poll::Pending
            } else {
                state.held = true;
                Poll::Ready(())
            }
        })
        .await;
        Turn {
            state: Arc::clone(&self.state),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.held = false;
            std::mem::take(&mut state.waiting)
        };
        // Every waiter is woken, so a cancelled one cannot swallow the turn.
        for waker in waiting {
            waker.wake();
        }
    }
}
