//! Waiting for the signal to stop, for `listen` and for the server (`infra/local`), which
//! stop the same way.

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. A signal that cannot be listened for is reported to
/// `cannot_listen` (its name and why) and left out: the other still stops the process. The
/// caller decides how to report, since only the server has a log.
pub async fn shutdown_signal(cannot_listen: impl Fn(&'static str, std::io::Error)) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            cannot_listen("SIGINT", e);
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                cannot_listen("SIGTERM", e);
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
