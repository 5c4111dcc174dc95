//! Turns the stores take for the emulator's sake: within one process, subscription writes one
//! at a time, and writes to one invocation one at a time.
//!
//! moto is not linearizable: a conditional write checks its condition and applies the update as
//! two unlocked steps, and a cancelled `TransactWriteItems` restores a copy of its tables taken
//! when it began (undoing writes that committed meanwhile, or bringing back a write that a
//! cancelled transaction had applied before its check failed). So two concurrent transitions of
//! one invocation could both pass `state IN (...)`, and concurrent creates could pass the
//! subscription limit: built without the turns, the contract suite's 20 concurrent creates at
//! a limit of 1 let two win in 1 of 3 runs on moto 5.2.
//!
//! DynamoDB needs none of it: a conditional write and a transaction are atomic, across
//! processes too, and the stores already handle their refusals ([`super::codec::Try`]). Nor
//! would a lock in one process help there: a Lambda execution environment serves one request at
//! a time, so the subscription API's writes never meet another of the same process; concurrent
//! creates come from different environments, where only the conditions and the
//! TransactionConflict retries ([`super::codec::retry_on_conflict`]: up to 8 tries over about
//! half a second of pauses) decide, with or without this lock. The dispatcher's records of one
//! SQS batch (at most 10) are distinct invocations but for a redelivered duplicate, which the
//! conditions turn away as stale.
//!
//! So the turns exist only in builds that may face an emulator: those with the
//! `create-resources` feature (the tests, the local server, `cargo lambda watch` on moto). The
//! Lambda packages are built without it and compile every turn to nothing.

#[cfg(feature = "create-resources")]
pub(crate) use emulator::{KeyedTurns, TurnLock};
#[cfg(not(feature = "create-resources"))]
pub(crate) use production::{KeyedTurns, TurnLock};

/// No turns: DynamoDB's conditions decide alone.
#[cfg(not(feature = "create-resources"))]
mod production {
    /// A turn that is always free.
    #[derive(Debug)]
    pub(crate) struct Turn;

    #[derive(Debug, Clone, Default)]
    pub(crate) struct TurnLock {}

    impl TurnLock {
        pub(crate) async fn turn(&self) -> Turn {
            Turn
        }
    }

    #[derive(Debug, Clone, Default)]
    pub(crate) struct KeyedTurns {}

    impl KeyedTurns {
        pub(crate) async fn turn(&self, _key: &str) -> Turn {
            Turn
        }
    }
}

/// A minimal async mutex (this crate has no async runtime dependency of its own).
#[cfg(feature = "create-resources")]
mod emulator {
    use std::collections::HashMap;
    use std::future::poll_fn;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::task::{Poll, Waker};

    /// Serializes this process's subscription writes (the create and delete transactions, and
    /// the replace that could run beside them), so that moto's transactions do not undo each other.
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
    /// The invocation store's conditional writes take a turn per invocation id, so that moto's
    /// check and update of one write are not interleaved with another's.
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
}
