//! A minimal async mutex (this crate has no async runtime dependency of its own).

use std::collections::HashMap;
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

/// One [`TurnLock`] per key, kept only while someone holds or awaits it.
///
/// The invocation store's conditional writes take a turn per invocation id. DynamoDB needs no
/// such thing (a conditional write is atomic, across processes too), but moto evaluates a
/// condition and applies the update as separate steps without a lock, so two concurrent
/// transitions of one invocation could both pass `state IN (...)`. Concurrent writes to one
/// invocation are rare (a callback racing the deadline sweep or a delivery), so taking turns
/// per id costs nothing measurable and keeps the emulator honest.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyedTurns {
    locks: Arc<Mutex<HashMap<String, (usize, TurnLock)>>>,
}

/// A turn on one key; dropping it ends the turn and forgets the key when nobody else wants it.
#[derive(Debug)]
pub(crate) struct KeyedTurn {
    turn: Option<Turn>,
    key: String,
    locks: Arc<Mutex<HashMap<String, (usize, TurnLock)>>>,
}

impl KeyedTurns {
    pub(crate) async fn turn(&self, key: &str) -> KeyedTurn {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = locks.entry(key.to_owned()).or_default();
            entry.0 += 1;
            entry.1.clone()
        };
        // Registered before awaiting, so that a cancelled wait still gives its count back.
        let mut keyed = KeyedTurn {
            turn: None,
            key: key.to_owned(),
            locks: Arc::clone(&self.locks),
        };
        keyed.turn = Some(lock.turn().await);
        keyed
    }
}

impl Drop for KeyedTurn {
    fn drop(&mut self) {
        drop(self.turn.take());
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = locks.get_mut(&self.key) {
            entry.0 -= 1;
            if entry.0 == 0 {
                locks.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::Future;

    use super::*;

    #[test]
    fn keys_are_forgotten_once_nobody_holds_them() {
        let turns = KeyedTurns::default();
        let waker = Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut first = Box::pin(turns.turn("a"));
        let Poll::Ready(first_turn) = first.as_mut().poll(&mut cx) else {
            panic!("a free key is taken at once");
        };
        let mut second = Box::pin(turns.turn("a"));
        assert!(
            second.as_mut().poll(&mut cx).is_pending(),
            "a held key waits"
        );
        let mut other = Box::pin(turns.turn("b"));
        assert!(
            other.as_mut().poll(&mut cx).is_ready(),
            "keys are independent"
        );
        drop(first_turn);
        let Poll::Ready(second_turn) = second.as_mut().poll(&mut cx) else {
            panic!("the turn passes on when the holder is done");
        };
        drop(second_turn);
        drop(other);
        assert!(turns.locks.lock().unwrap().is_empty());
    }
}
