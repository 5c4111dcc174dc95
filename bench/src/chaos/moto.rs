//! A `moto_server` child process (the AWS emulator) on a fixed loopback port, and the
//! environment that points `triggerline --backend aws` at it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// A running `moto_server`; killed when dropped.
#[derive(Debug)]
pub struct Moto {
    pub port: u16,
    child: Child,
}

impl Moto {
    /// Starts `binary -H 127.0.0.1 -p <port>` and waits until it answers HTTP.
    pub async fn start(
        binary: &Path,
        port: u16,
        log: &Path,
        client: &reqwest::Client,
    ) -> anyhow::Result<Moto> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context("cannot open the moto log")?;
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let mut moto = Moto { port, child };
        let began = Instant::now();
        loop {
            let url = format!("{}/moto-api/", moto.endpoint());
            let answered = client.get(&url).send().await;
            if answered.is_ok_and(|response| response.status().is_success()) {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                bail!("moto_server exited with {status} before answering");
            }
            if began.elapsed() > Duration::from_secs(60) {
                bail!("moto_server did not answer on port {port} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the emulator and reaps it: everything it held in memory is gone.
    pub async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The flags and environment of `triggerline --backend aws` against moto at `endpoint`, as the
/// README's "The local stack on the AWS adapters" says.
pub fn aws_backend(endpoint: &str) -> (Vec<String>, Vec<(String, String)>) {
    let args = vec!["--backend".to_owned(), "aws".to_owned()];
    let env = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("TRIGGERLINE_AWS_CREATE_RESOURCES", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    (args, env)
}

/// `moto_server` from `.venv/bin` under the current dir or next to the workspace of this
/// executable.
pub fn default_binary() -> PathBuf {
    let local = PathBuf::from(".venv/bin/moto_server");
    if local.is_file() {
        return local;
    }
    // target/release/triggerline-chaos -> the workspace root.
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            Some(
                exe.parent()?
                    .parent()?
                    .parent()?
                    .join(".venv/bin/moto_server"),
            )
        })
        .filter(|path| path.is_file())
        .unwrap_or(local)
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a free port")?;
    Ok(listener.local_addr()?.port())
}
