//! The machine a run measured on: CPUs, model, kernel, memory and fsync latency.

use crate::load::Summary;

/// Where the numbers were taken.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_mib: u64,
    /// fsync of a 4 KiB write in the temp dir (where the data dirs live): p50 and p99, in ms.
    /// Every acknowledged write of triggerline waits for one (SQLite `synchronous=FULL`).
    pub fsync_p50_ms: f64,
    pub fsync_p99_ms: f64,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let fsync = fsync_latency(200).unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: value_of(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| format!("Linux {}", k.trim()))
                .unwrap_or_else(|_| "unknown".into()),
            memory_mib: value_of(&meminfo, "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            fsync_p50_ms: fsync.p50_ms,
            fsync_p99_ms: fsync.p99_ms,
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "{} CPUs (nproc) | {} | {} | {} MiB RAM | fsync p50 {:.2} ms, p99 {:.2} ms",
            self.cpus,
            self.cpu_model,
            self.kernel,
            self.memory_mib,
            self.fsync_p50_ms,
            self.fsync_p99_ms
        )
    }
}

/// Latency of `rounds` 4 KiB appends, each followed by an fsync, in a file in the temp dir.
fn fsync_latency(rounds: usize) -> std::io::Result<Summary> {
    use std::io::Write as _;
    let mut file = tempfile::tempfile()?;
    let block = [0u8; 4096];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        file.write_all(&block)?;
        let start = std::time::Instant::now();
        file.sync_all()?;
        times.push(start.elapsed());
    }
    Ok(Summary::of(&times))
}

/// `key : value` from a `/proc` file.
fn value_of(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}
