//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the WAL size threshold, on
//! the connection that committed: here the single writer thread, whose every millisecond holds
//! up a whole group of callers. This thread copies committed pages back into the database file
//! on its own connection, in PASSIVE mode (it never waits for, or blocks, the writer or the
//! readers), at most every [`INTERVAL`] while commits keep coming.
//!
//! It cannot keep the WAL small alone: SQLite restarts the WAL from its start only after a
//! checkpoint that copied every frame, and under steady load the writer appends while this one
//! copies (measured: 170 MB of WAL after seconds of the F&F bench). So the writer keeps an
//! automatic checkpoint at [`WRITER_PAGES`]: by then this thread has copied nearly all of the
//! WAL, the writer's checkpoint copies the rest while nothing is written, and the WAL restarts.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;

/// The longest a checkpoint waits after a commit. SQLite's default (every 1,000 pages, about
/// 4 MB of WAL) comes around in tens of milliseconds under load, so the WAL stays as small as
/// with automatic checkpoints.
const INTERVAL: Duration = Duration::from_millis(50);

/// The WAL size, in pages, at which the writer checkpoints inline (SQLite's default is 1,000):
/// the bound on the WAL, 16 MiB of 4 KiB pages.
pub(crate) const WRITER_PAGES: u32 = 4_000;

/// Tells the checkpoint thread that a commit added to the WAL; cheap, never blocks.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoints(SyncSender<()>);

impl Checkpoints {
    pub(crate) fn committed(&self) {
        // Full: a checkpoint is already due and will cover this commit too.
        if let Err(TrySendError::Disconnected(())) = self.0.try_send(()) {
            tracing::debug!("the checkpoint thread has stopped");
        }
    }
}

/// Starts the checkpoint thread on its own connection to `path`. It ends when every
/// [`Checkpoints`] handle is dropped; closing the last connection then checkpoints what is left.
pub(crate) fn spawn(path: &Path) -> Result<Checkpoints, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || run(&conn, &rx))
        .map_err(StoreError::Spawn)?;
    Ok(Checkpoints(tx))
}

fn run(conn: &Connection, commits: &Receiver<()>) {
    while commits.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite WAL checkpoint failed; the next commit retries");
        }
        // Commits arriving meanwhile leave one signal queued: one checkpoint covers them all.
        std::thread::sleep(INTERVAL);
    }
}
