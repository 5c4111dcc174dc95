//! The `triggerline` CLI's client side: subcommands that talk to a running Triggerline over its
//! HTTP API (`triggers`, `subscriptions`, `filter`, `invoke`, `status`), and `listen`, a
//! development receiver on 127.0.0.1 that subscribes itself to a trigger and answers deliveries as
//! told. The server is not here: `infra/local`'s binary parses `serve` and hands every other
//! subcommand to [`run`].
//!
//! Exit codes are a contract with scripts ([`Error::exit_code`], docs/cli.md): 0 ok, 1 the API
//! refused, 2 usage, 3 the service cannot be reached, 4 the answer was negative (a filter that
//! selects nothing, an invocation that did not complete).
#![forbid(unsafe_code)]

/// `println!` that ignores a closed stdout: when the reader went away (`| head`), there is no one
/// left to tell, and a panic would only add noise.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = crate::output::printable_lines(&format!($($arg)*));
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }};
}

mod args;
mod client;
mod commands;
mod duration;
mod error;
mod listen;
mod output;
mod shutdown;
mod signature;

pub use args::{Command, Connection};
pub use error::Error;
pub use shutdown::shutdown_signal;
pub use signature::{Verdict, verify};

use std::process::ExitCode;

/// What a command came to when the API answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The request succeeded but its answer is "no": exit code 4.
    Negative,
}

/// Runs one client subcommand to completion; errors are printed on stderr, saying what to do.
pub async fn run(command: Command) -> ExitCode {
    match commands::run(command).await {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Negative) => ExitCode::from(error::NEGATIVE),
        Err(e) => {
            eprintln!("error: {}", output::printable_lines(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
