//! Writes the OpenAPI document to the file named by the one argument (`docs/openapi.json`), or
//! to standard output without one.

use std::process::ExitCode;

fn main() -> ExitCode {
    let text = triggerline_openapi::json();
    match std::env::args_os().nth(1) {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(&path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write {}: {e}", path.to_string_lossy());
                ExitCode::FAILURE
            }
        },
    }
}
