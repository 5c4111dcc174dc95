//! A bound on how long a client may leave an answer untaken.
//!
//! A client that sends requests and never reads the answers (many pipelined requests on one
//! connection are enough, even to `/health`) fills the socket's buffers, and hyper then waits
//! to write, with no timeout of its own, holding the connection and its slot under
//! `--max-connections` for good. [`WriteStall`] fails a write that has made no progress for
//! the client timeout, which closes the connection. Like nginx's `send_timeout`, it counts
//! from the last progress, not from the start of the answer: a large page to a slow but
//! working client still goes through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner` (a connection's stream), whose writes fail after `timeout` without progress.
#[derive(Debug)]
pub struct WriteStall<T> {
    inner: T,
    timeout: Duration,
    /// Armed when a write first finds the client's buffers full; dropped on progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteStall<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        WriteStall {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// What a write that is not ready comes to: still pending, or failed once the client has
    /// taken nothing for the timeout.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        metrics::counter!(crate::metrics::CUT, "reason" => "answer_untaken").increment(1);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took no part of the answer for {} s",
                timeout.as_secs_f64()
            ),
        )))
    }

    /// `poll` on the inner stream, with the stall timer around it.
    fn write_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>>
    where
        T: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_with(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_with(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .write_with(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .write_with(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_takes_fails_after_the_timeout() {
        let (server, _client) = tokio::io::duplex(64);
        let mut server = WriteStall::new(server, Duration::from_secs(30));

        let written =
            tokio::time::timeout(Duration::from_secs(3600), server.write_all(&[b'x'; 1024]))
                .await
                .expect("the write was never given up");

        let error = written.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("for 30 s"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_client_that_keeps_taking_gets_the_whole_answer() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut server = WriteStall::new(server, Duration::from_secs(30));
        // 64 bytes every 20 s: each stall is shorter than the timeout, the whole far longer.
        let reader = tokio::spawn(async move {
            let mut taken = Vec::new();
            let mut chunk = [0u8; 64];
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                match client.read(&mut chunk).await.unwrap() {
                    0 => return taken,
                    n => taken.extend_from_slice(&chunk[..n]),
                }
            }
        });

        server.write_all(&[b'x'; 1024]).await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);

        assert_eq!(reader.await.unwrap().len(), 1024);
    }
}
