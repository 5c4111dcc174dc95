//! The report: the machine, every scenario's numbers next to their targets, errors and log
//! lines; rendered as a plain-text table, and serialized as JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::Plan;
use crate::async_callback::AsyncCallbacks;
use crate::fire_and_forget::FireAndForget;
use crate::load::{Outcomes, Summary};
use crate::sync_round_trip::SyncRoundTrip;
use crate::triggerline::{CpuUse, Memory, ProcessInfo};
pub use triggerline_bench::machine::Machine;

/// Targets, as agreed for the local stack.
pub mod target {
    /// Fire-and-forget deliveries per second: the floor, and the aim.
    pub const DELIVERIES_PER_S: f64 = 10_000.0;
    pub const DELIVERIES_PER_S_AIM: f64 = 20_000.0;
    /// What a SYNC round trip may add over a direct call, in ms.
    pub const SYNC_ADDED_P50_MS: f64 = 0.3;
    pub const SYNC_ADDED_P99_MS: f64 = 2.0;
    /// ASYNC callback completions per second.
    pub const COMPLETIONS_PER_S: f64 = 5_000.0;
    /// Peak RSS with 1,000+ ASYNC invocations in flight, in MiB.
    pub const PEAK_RSS_MIB: f64 = 64.0;
}

/// Everything one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub machine: Machine,
    pub binary: PathBuf,
    pub plan: Plan,
    pub fire_and_forget: Vec<FireAndForget>,
    pub sync_round_trip: SyncRoundTrip,
    pub async_callbacks: AsyncCallbacks,
    /// The highest VmHWM of any scenario's process (each scenario runs its own process).
    pub peak_rss: Memory,
}

impl Report {
    pub fn new(
        machine: Machine,
        binary: PathBuf,
        plan: Plan,
        fire_and_forget: Vec<FireAndForget>,
        sync_round_trip: SyncRoundTrip,
        async_callbacks: AsyncCallbacks,
    ) -> Report {
        let peak_rss = fire_and_forget
            .iter()
            .map(|f| f.process.memory)
            .chain([
                sync_round_trip.process.memory,
                async_callbacks.process.memory,
            ])
            .max_by_key(|m| m.hwm_kib)
            .unwrap_or_default();
        Report {
            machine,
            binary,
            plan,
            fire_and_forget,
            sync_round_trip,
            async_callbacks,
            peak_rss,
        }
    }

    /// The plain-text report.
    pub fn render(&self) -> String {
        let p = &self.plan;
        let mut table = Table::default();
        for (n, f) in self.fire_and_forget.iter().enumerate() {
            fire_and_forget_rows(&mut table, n, f);
        }
        sync_rows(&mut table, &self.sync_round_trip);
        async_rows(&mut table, &self.async_callbacks);
        table.section("4  Memory (VmHWM at the end of each scenario's process)");
        table.row(
            "peak RSS over all runs",
            format!("{:.1} MiB", self.peak_rss.hwm_mib()),
            "(64 MiB applies to 3)",
            "",
        );

        let mut out = String::new();
        let _ = writeln!(
            out,
            "Triggerline benchmark ({}): {} deliveries per F&F run, {} SYNC pairs, {} ASYNC \
             invocations, {} producers",
            if p.quick { "quick" } else { "full" },
            group(p.deliveries as f64),
            group(p.sync_requests as f64),
            group(p.async_invocations as f64),
            p.producers
        );
        let _ = writeln!(out, "machine: {}", self.machine.one_line());
        let _ = writeln!(out, "binary:  {}", self.binary.display());
        let _ = writeln!(out, "(bench, receiver and triggerline share these CPUs)");
        out.push('\n');
        out.push_str(&table.render());
        out.push('\n');
        out.push_str(&self.problems());
        out
    }

    /// Failed requests, incomplete waits and log lines, per scenario; "none" when clean.
    fn problems(&self) -> String {
        let mut lines = Vec::new();
        let mut add = |scenario: &str, outcomes: &Outcomes| {
            for (kind, n) in &outcomes.errors {
                lines.push(format!("  {scenario}: {n} x {kind}"));
            }
        };
        for f in &self.fire_and_forget {
            let name = format!("F&F {} sub", f.subscriptions);
            add(&name, &f.start_outcomes);
        }
        add("SYNC", &self.sync_round_trip.through_outcomes);
        add("SYNC", &self.sync_round_trip.direct_outcomes);
        add("ASYNC", &self.async_callbacks.start_outcomes);
        add("ASYNC", &self.async_callbacks.callback_outcomes);
        for f in &self.fire_and_forget {
            if f.warmup_failed > 0 {
                lines.push(format!(
                    "  F&F {} sub: {} failed warm-up starts",
                    f.subscriptions, f.warmup_failed
                ));
            }
            if f.deliveries != f.expected_deliveries {
                lines.push(format!(
                    "  F&F {} sub: {} deliveries, expected {}",
                    f.subscriptions, f.deliveries, f.expected_deliveries
                ));
            }
        }
        let a = &self.async_callbacks;
        if a.malformed_deliveries > 0 {
            lines.push(format!(
                "  ASYNC: {} deliveries without invocationId/secret",
                a.malformed_deliveries
            ));
        }
        let mut logs = |scenario: &str, process: &ProcessInfo| {
            if process.log_lines > 0 {
                lines.push(format!(
                    "  {scenario}: {} triggerline log lines (warn+), first ones:",
                    process.log_lines
                ));
                lines.extend(process.log_sample.iter().map(|l| format!("    {l}")));
            }
        };
        for f in &self.fire_and_forget {
            logs(&format!("F&F {} sub", f.subscriptions), &f.process);
        }
        logs("SYNC", &self.sync_round_trip.process);
        logs("ASYNC", &a.process);
        if lines.is_empty() {
            "errors: none (every request got its expected status; no triggerline warnings)\n"
                .to_owned()
        } else {
            format!("errors and warnings:\n{}\n", lines.join("\n"))
        }
    }
}

fn fire_and_forget_rows(table: &mut Table, n: usize, f: &FireAndForget) {
    let plural = if f.subscriptions == 1 { "" } else { "s" };
    table.section(&format!(
        "1{}  FIRE_AND_FORGET, {} subscription{plural} on idn:identity-created ({} starts)",
        char::from(b'a' + n as u8),
        f.subscriptions,
        group(f.starts as f64)
    ));
    table.row(
        "deliveries/s (first start -> last delivery)",
        group(f.deliveries_per_s),
        ">= 10,000 (aim 20,000)",
        if f.deliveries_per_s >= target::DELIVERIES_PER_S_AIM {
            "ok (aim met)"
        } else {
            verdict(f.deliveries_per_s >= target::DELIVERIES_PER_S)
        },
    );
    table.row(
        "deliveries received",
        format!(
            "{} / {} in {:.2} s",
            group(f.deliveries as f64),
            group(f.expected_deliveries as f64),
            f.elapsed_s
        ),
        "",
        verdict(f.deliveries == f.expected_deliveries),
    );
    table.row(
        "starts accepted/s (producer side)",
        group(f.starts_per_s),
        "",
        "",
    );
    table.row("start latency p50 / p99", p50_p99(&f.start_latency), "", "");
    let completed = match f.all_completed_after_ms {
        Some(after) => format!(
            "all, {after:.0} ms after last delivery (sweeps: {}, last {:.0} ms)",
            f.status_sweeps, f.status_sweep_ms
        ),
        None => format!(
            "{} of {}: {:?}",
            f.invocations_completed, f.invocations, f.statuses
        ),
    };
    table.row(
        &format!("COMPLETED ({} incl. warm-up)", group(f.invocations as f64)),
        completed,
        "all",
        verdict(f.all_completed_after_ms.is_some()),
    );
    table.row("CPU cores busy: triggerline / bench", cores(&f.cpu), "", "");
    table.row("RSS / peak RSS at end", rss(&f.process.memory), "", "");
}

fn sync_rows(table: &mut Table, s: &SyncRoundTrip) {
    table.section(&format!(
        "2  SYNC round trip, idn:access-request-pre-approval ({} sequential requests each side)",
        group(s.requests as f64)
    ));
    let summary = |x: &Summary| format!("{:.3} / {:.3} / {:.3} ms", x.p50_ms, x.p99_ms, x.mean_ms);
    table.row(
        "through triggerline p50 / p99 / mean",
        summary(&s.through),
        "",
        "",
    );
    table.row(
        "direct to receiver  p50 / p99 / mean",
        summary(&s.direct),
        "",
        "",
    );
    table.row(
        "ratio through/direct (p50, mean)",
        format!("{:.1}x, {:.1}x", s.ratio_p50, s.ratio_mean),
        "",
        "",
    );
    table.row(
        "added latency at p50",
        format!("{:.3} ms", s.added_p50_ms),
        "<= 0.3 ms",
        verdict(s.added_p50_ms <= target::SYNC_ADDED_P50_MS),
    );
    table.row(
        "added latency at p99",
        format!("{:.3} ms", s.added_p99_ms),
        "<= 2 ms",
        verdict(s.added_p99_ms <= target::SYNC_ADDED_P99_MS),
    );
    table.row("CPU cores busy: triggerline / bench", cores(&s.cpu), "", "");
    table.row("RSS / peak RSS at end", rss(&s.process.memory), "", "");
}

fn async_rows(table: &mut Table, a: &AsyncCallbacks) {
    table.section(&format!(
        "3  ASYNC callbacks, idn:access-request-dynamic-approver ({} invocations)",
        group(a.invocations as f64)
    ));
    table.row(
        "starts accepted/s (producer side)",
        group(a.starts_per_s),
        "",
        "",
    );
    table.row(
        "deliveries recorded / ACKNOWLEDGED",
        format!(
            "{} / {}",
            group(a.delivered as f64),
            group(a.in_flight as f64)
        ),
        "",
        verdict(a.in_flight >= a.invocations),
    );
    table.row(
        &format!(
            "RSS / peak RSS, {} ASYNC in flight",
            group(a.in_flight as f64)
        ),
        rss(&a.memory_in_flight),
        "peak <= 64 MiB",
        verdict(a.memory_in_flight.hwm_mib() <= target::PEAK_RSS_MIB && a.in_flight >= 1_000),
    );
    table.row(
        "callback completions/s",
        group(a.completions_per_s),
        ">= 5,000",
        verdict(a.completions_per_s >= target::COMPLETIONS_PER_S),
    );
    table.row("CPU cores busy: triggerline / bench", cores(&a.cpu), "", "");
    table.row(
        "callback latency p50 / p99",
        p50_p99(&a.callback_latency),
        "",
        "",
    );
    table.row(
        "all COMPLETED afterwards",
        if a.all_completed {
            "yes".to_owned()
        } else {
            format!("no: {:?}", a.statuses)
        },
        "all",
        verdict(a.all_completed),
    );
    table.row("RSS / peak RSS at end", rss(&a.process.memory), "", "");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISS" }
}

fn p50_p99(s: &Summary) -> String {
    format!("{:.2} / {:.2} ms", s.p50_ms, s.p99_ms)
}

fn cores(cpu: &CpuUse) -> String {
    let (triggerline, bench) = cpu.cores();
    format!("{triggerline:.2} / {bench:.2} over {:.2} s", cpu.wall_s)
}

fn rss(m: &Memory) -> String {
    format!("{:.1} / {:.1} MiB", m.rss_mib(), m.hwm_mib())
}

/// A whole number with thousands separators: 12345.6 -> "12,346".
fn group(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Sections of `metric | value | target | verdict` rows, with aligned columns.
#[derive(Debug, Default)]
struct Table {
    lines: Vec<Line>,
}

#[derive(Debug)]
enum Line {
    Section(String),
    Row([String; 4]),
}

impl Table {
    fn section(&mut self, title: &str) {
        self.lines.push(Line::Section(title.to_owned()));
    }

    fn row(&mut self, metric: &str, value: impl Into<String>, target: &str, verdict: &str) {
        self.lines.push(Line::Row([
            metric.to_owned(),
            value.into(),
            target.to_owned(),
            verdict.to_owned(),
        ]));
    }

    fn render(&self) -> String {
        let header = ["metric", "value", "target", "verdict"].map(str::to_owned);
        let mut widths = header.clone().map(|h| h.len());
        for line in &self.lines {
            if let Line::Row(cells) = line {
                for (w, c) in widths.iter_mut().zip(cells) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let format_row = |cells: &[String; 4]| {
            let row = format!(
                "   {:<w0$}  {:<w1$}  {:<w2$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            row.trim_end().to_owned()
        };
        let mut out = format_row(&header);
        out.push('\n');
        let rule = "-".repeat(widths.iter().sum::<usize>() + 11);
        out.push_str(&rule);
        out.push('\n');
        for line in &self.lines {
            match line {
                Line::Section(title) => {
                    let _ = writeln!(out, "{title}");
                }
                Line::Row(cells) => {
                    out.push_str(&format_row(cells));
                    out.push('\n');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::group;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.4), "999");
        assert_eq!(group(1_000.0), "1,000");
        assert_eq!(group(12_345.6), "12,346");
        assert_eq!(group(1_234_567.0), "1,234,567");
    }
}
