//! What the generator reports: one record per step or scenario, printed as a human-readable
//! line and as one JSON line (starting with `{`, for scripts), and the comparison table that
//! `loadgen table` builds from the JSON lines of a whole `bench/run.sh` run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::fleet::Protocol;

/// Every kind of JSON line the generator prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Record {
    /// One fan-out measurement at one rate.
    FanoutStep(Step),
    /// The outcome of `fanout --find-max`.
    FanoutMax(FindMax),
    /// Idle memory per connection.
    Idle(Idle),
    /// Closed-loop publishing throughput and latency.
    Publish(Publish),
}

/// One fan-out measurement: a warm-up, then a measured window at a steady publication rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Step {
    pub(crate) label: String,
    /// `native` (`fanout`) or `socketio` (`sio-fanout`).
    #[serde(default)]
    pub(crate) protocol: Protocol,
    /// Socket.IO: joins lost when the subscribers were set up (those subscribers are not in
    /// `subscribers`).
    #[serde(default)]
    pub(crate) lost_joins: u64,
    /// Subscribers asked for.
    pub(crate) n: usize,
    /// Subscribers connected when the step started.
    pub(crate) subscribers: usize,
    /// Publications per second asked for.
    pub(crate) rate_asked: f64,
    /// Publications per second sent in the window.
    pub(crate) rate_sent: f64,
    pub(crate) window_s: f64,
    /// Publications sent in the window.
    pub(crate) published: u64,
    /// `subscribers × published`.
    pub(crate) expected: u64,
    /// Deliveries of window publications, counted until the drain deadline.
    pub(crate) delivered: u64,
    pub(crate) deliveries_per_s: f64,
    /// `expected − delivered`: lost, or later than the drain deadline.
    pub(crate) missing: u64,
    /// Offsets (Socket.IO: sequence numbers) skipped on a connection (any publication,
    /// warm-up included).
    pub(crate) gaps: u64,
    /// Offsets (sequence numbers) received twice or lower than the last one.
    pub(crate) reordered: u64,
    /// Subscribers the server disconnected during the step.
    pub(crate) disconnects: u64,
    pub(crate) disconnect_reason: Option<String>,
    pub(crate) publish_errors: u64,
    pub(crate) publish_error: Option<String>,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    /// Server CPU over the window, % of one core (`None` without `--server-pid`).
    pub(crate) server_cpu_pct: Option<f64>,
    /// Server resident memory at the end of the window.
    pub(crate) server_rss_kib: Option<u64>,
    /// The generator's own CPU over the window, % of one core.
    pub(crate) gen_cpu_pct: Option<f64>,
    /// Time the server's threads waited for a CPU over the window, % of the window: near 0 on
    /// a machine doing nothing else.
    pub(crate) server_runq_wait_pct: Option<f64>,
    /// The same for the generator.
    pub(crate) gen_runq_wait_pct: Option<f64>,
    /// Worst delay of a publication behind the publisher's schedule.
    pub(crate) publisher_lag_ms: f64,
    /// Text frames that took the generator's slow path (full JSON parse).
    pub(crate) slow_path_frames: u64,
    pub(crate) pass: bool,
    /// `pass`, or every reason the step failed.
    pub(crate) verdict: String,
}

/// The highest passing rate a `--find-max` search found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FindMax {
    pub(crate) label: String,
    #[serde(default)]
    pub(crate) protocol: Protocol,
    /// Socket.IO joins lost over every subscriber set-up of the search.
    #[serde(default)]
    pub(crate) lost_joins: u64,
    /// Reordered deliveries over every step of the search.
    #[serde(default)]
    pub(crate) reordered: u64,
    pub(crate) n: usize,
    pub(crate) p99_limit_ms: f64,
    /// The best passing step, if any passed.
    pub(crate) best: Option<Box<Step>>,
    /// The step with the most deliveries and no loss, whatever its latency: the throughput a
    /// server sustains when the latency limit is out of reach (a busy machine, a large N).
    pub(crate) best_lossless: Option<Box<Step>>,
    /// Lowest rate that failed, if one did.
    pub(crate) lowest_failing_rate: Option<f64>,
    pub(crate) steps: usize,
    pub(crate) elapsed_s: f64,
    /// Why the search stopped.
    pub(crate) stopped: String,
}

/// Idle memory: server RSS before and after opening N subscribed connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Idle {
    pub(crate) label: String,
    #[serde(default)]
    pub(crate) protocol: Protocol,
    /// Socket.IO joins not acknowledged within the setup timeout.
    #[serde(default)]
    pub(crate) lost_joins: usize,
    pub(crate) n: usize,
    pub(crate) subscribed: usize,
    pub(crate) failed: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) setup_s: f64,
    pub(crate) settle_s: f64,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
    pub(crate) kib_per_connection: Option<f64>,
    /// Server CPU while the connections sat idle, % of one core.
    pub(crate) server_cpu_pct: Option<f64>,
}

/// One `publish` run: P closed-loop publishers over K channels, a warm-up then a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Publish {
    pub(crate) label: String,
    /// `http` or `ws`.
    pub(crate) via: String,
    /// Publishers asked for.
    pub(crate) publishers: usize,
    /// Publishers whose connection opened.
    pub(crate) connected: usize,
    pub(crate) channels: usize,
    /// Size of each publication's `data`, in bytes of JSON text.
    pub(crate) payload_bytes: usize,
    pub(crate) window_s: f64,
    /// Publishes sent in the window and acknowledged.
    pub(crate) acked: u64,
    /// Every publish acknowledged, warm-up included.
    pub(crate) acked_total: u64,
    /// `acked / window_s`.
    pub(crate) publications_per_s: f64,
    /// Latency from sending a publish to reading its reply, over the window's publishes.
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    /// Errors of the whole run, warm-up included.
    pub(crate) errors: u64,
    /// The same by code: the server's codes (`store_unavailable`…), `http_<status>` for an
    /// HTTP error without one, or the generator's own (`connect_failed`, `connection_lost`,
    /// `reply_timeout`, `bad_reply`).
    pub(crate) errors_by_code: BTreeMap<String, u64>,
    /// The first error, as `code: message`.
    pub(crate) first_error: Option<String>,
    pub(crate) server_cpu_pct: Option<f64>,
    pub(crate) server_rss_kib: Option<u64>,
    pub(crate) gen_cpu_pct: Option<f64>,
    pub(crate) server_runq_wait_pct: Option<f64>,
    pub(crate) gen_runq_wait_pct: Option<f64>,
    pub(crate) pass: bool,
    /// `pass`, or every reason the run failed.
    pub(crate) verdict: String,
}

impl Record {
    /// Prints the human-readable line(s) then the JSON line.
    pub(crate) fn print(&self) {
        println!("{}", self.human());
        match serde_json::to_string(self) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("loadgen: cannot encode the record: {err}"),
        }
    }

    fn human(&self) -> String {
        match self {
            Self::FanoutStep(s) => human_step(s),
            Self::FanoutMax(m) => {
                let found = match &m.best {
                    Some(best) => format!(
                        "{:.0} deliveries/s at {} publications/s (p99 {:.2} ms)",
                        best.deliveries_per_s,
                        rate(best.rate_asked),
                        best.p99_ms
                    ),
                    None => "no rate passed".to_owned(),
                };
                let lossless = m.best_lossless.as_ref().map_or("none".to_owned(), |l| {
                    format!(
                        "{:.0} deliveries/s (p99 {:.2} ms)",
                        l.deliveries_per_s, l.p99_ms
                    )
                });
                let sio = match m.protocol {
                    Protocol::Native => String::new(),
                    Protocol::SocketIo => format!(
                        "; joins lost {}, deliveries reordered {}",
                        m.lost_joins, m.reordered
                    ),
                };
                format!(
                    "[{}] {} N={} find-max: {found}; most without loss at any latency: \
                     {lossless}; lowest failing rate {}; {} steps in {:.0} s{sio}; stopped: {}",
                    m.label,
                    fanout_name(m.protocol),
                    m.n,
                    m.lowest_failing_rate.map_or("none".to_owned(), rate),
                    m.steps,
                    m.elapsed_s,
                    m.stopped
                )
            }
            Self::Idle(i) => format!(
                "[{}] {} N={}: {} subscribed, {} failed{}{} in {:.1} s; server RSS {} → {} = {} \
                 per connection; server CPU while idle {}",
                i.label,
                idle_name(i.protocol),
                i.n,
                i.subscribed,
                i.failed,
                match i.protocol {
                    Protocol::Native => String::new(),
                    Protocol::SocketIo => format!(", {} joins lost", i.lost_joins),
                },
                i.first_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" (first: {e})")),
                i.setup_s,
                opt_mib(i.rss_before_kib),
                opt_mib(i.rss_after_kib),
                i.kib_per_connection
                    .map_or("n/a".to_owned(), |k| format!("{k:.1} KiB")),
                opt_pct(i.server_cpu_pct)
            ),
            Self::Publish(p) => human_publish(p),
        }
    }
}

/// Waiting for a CPU more than this share of a window means the cores were not ours.
const BUSY_WAIT_PCT: f64 = 10.0;

/// The scenario's name in the output.
fn fanout_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Native => "fanout",
        Protocol::SocketIo => "sio-fanout",
    }
}

fn idle_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Native => "idle",
        Protocol::SocketIo => "sio-idle",
    }
}

fn human_step(s: &Step) -> String {
    let sio = match s.protocol {
        Protocol::Native => String::new(),
        Protocol::SocketIo => format!(" reordered {} joins lost {}", s.reordered, s.lost_joins),
    };
    let mut line = format!(
        "[{}] {} N={} rate {}/s (sent {:.1}/s): {:.0} deliveries/s, latency ms p50 {:.2} \
         p99 {:.2} p99.9 {:.2} max {:.2}; missing {} gaps {} disconnects {}{sio}; server CPU {} \
         RSS {}; generator CPU {}; waiting for a CPU: server {} generator {}",
        s.label,
        fanout_name(s.protocol),
        s.subscribers,
        rate(s.rate_asked),
        s.rate_sent,
        s.deliveries_per_s,
        s.p50_ms,
        s.p99_ms,
        s.p999_ms,
        s.max_ms,
        s.missing,
        s.gaps,
        s.disconnects,
        opt_pct(s.server_cpu_pct),
        opt_mib(s.server_rss_kib),
        opt_pct(s.gen_cpu_pct),
        opt_pct(s.server_runq_wait_pct),
        opt_pct(s.gen_runq_wait_pct),
    );
    let _ = write!(line, " → {}", if s.pass { "PASS" } else { "FAIL" });
    if busy(s.server_runq_wait_pct, s.gen_runq_wait_pct) {
        line.push_str(" [machine busy: another process shared the cores]");
    }
    if !s.pass {
        let _ = write!(line, " ({})", s.verdict);
    }
    line
}

fn human_publish(p: &Publish) -> String {
    let mut line = format!(
        "[{}] publish via {} P={} K={} payload {} B: {:.0} publications/s, latency ms p50 {:.2} \
         p99 {:.2} p99.9 {:.2} max {:.2}; errors {}; server CPU {} RSS {}; generator CPU {}; \
         waiting for a CPU: server {} generator {}",
        p.label,
        p.via,
        p.connected,
        p.channels,
        p.payload_bytes,
        p.publications_per_s,
        p.p50_ms,
        p.p99_ms,
        p.p999_ms,
        p.max_ms,
        p.errors,
        opt_pct(p.server_cpu_pct),
        opt_mib(p.server_rss_kib),
        opt_pct(p.gen_cpu_pct),
        opt_pct(p.server_runq_wait_pct),
        opt_pct(p.gen_runq_wait_pct),
    );
    let _ = write!(line, " → {}", if p.pass { "PASS" } else { "FAIL" });
    // Only the generator's wait tells: the server's own threads (workers, the store's writer)
    // and PostgreSQL's backends share core 0 by design, so the server waits for a CPU anyway.
    if busy(None, p.gen_runq_wait_pct) {
        line.push_str(" [machine busy: another process shared the generator's core]");
    }
    if !p.pass {
        let _ = write!(line, " ({})", p.verdict);
    }
    line
}

fn busy(server_wait_pct: Option<f64>, gen_wait_pct: Option<f64>) -> bool {
    [server_wait_pct, gen_wait_pct]
        .into_iter()
        .flatten()
        .any(|w| w > BUSY_WAIT_PCT)
}

/// A rate as people write it: whole numbers above 10, one decimal below.
pub(crate) fn rate(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn opt_pct(p: Option<f64>) -> String {
    p.map_or("n/a".to_owned(), |p| format!("{p:.0}%"))
}

fn opt_mib(k: Option<u64>) -> String {
    k.map_or("n/a".to_owned(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

// === the comparison table ===

/// One row of the table: a measure, its value per label.
struct Row {
    name: String,
    values: BTreeMap<String, f64>,
    decimals: usize,
}

/// Reads the JSON lines of `files` (other lines are skipped) and prints one table comparing
/// the labels, with a column `A/B` for each ratio whose two labels are there (without any:
/// `switchboard/floor`).
pub(crate) fn table(files: &[PathBuf], ratios: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut records = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        records.extend(
            text.lines()
                .filter(|l| l.starts_with('{'))
                .filter_map(|l| serde_json::from_str::<Record>(l).ok()),
        );
    }
    let mut labels: Vec<String> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut put = |name: String, label: &str, value: Option<f64>, decimals: usize| {
        if !labels.iter().any(|l| l == label) {
            labels.push(label.to_owned());
        }
        let Some(value) = value else { return };
        match rows.iter_mut().find(|r| r.name == name) {
            Some(row) => {
                row.values.insert(label.to_owned(), value);
            }
            None => rows.push(Row {
                name,
                values: BTreeMap::from([(label.to_owned(), value)]),
                decimals,
            }),
        }
    };
    for record in &records {
        let (label, rows) = rows_of(record);
        for (name, value, decimals) in rows {
            put(name, label, value, decimals);
        }
    }
    // Steps of a find-max search are in the file too; the table shows only single-rate runs'.
    let searched: Vec<&String> = records
        .iter()
        .filter_map(|r| match r {
            Record::FanoutMax(m) => Some(&m.label),
            _ => None,
        })
        .collect();
    if !searched.is_empty() {
        rows.retain(|r| !r.name.contains(" @"));
    }
    let default = [("switchboard", "floor")];
    let ratios = if ratios.is_empty() {
        &default[..]
    } else {
        ratios
    };
    print!("{}", render(&labels, &rows, ratios));
    Ok(())
}

/// A table cell before rendering: measure, value (if known), decimals.
type Cell = (String, Option<f64>, usize);

/// One record's label and cells.
fn rows_of(record: &Record) -> (&str, Vec<Cell>) {
    let mib = |k: Option<u64>| k.map(|k| k as f64 / 1024.0);
    match record {
        Record::FanoutMax(m) => {
            let n = m.n;
            let f = fanout_name(m.protocol);
            let b = m.best.as_deref();
            let l = m.best_lossless.as_deref();
            let limit = m.p99_limit_ms;
            let rows = vec![
                (
                    format!("{f} N={n}: max deliveries/s (p99<{limit}ms, no loss)"),
                    Some(b.map_or(0.0, |b| b.deliveries_per_s)),
                    0,
                ),
                (
                    format!("{f} N={n}:   at publications/s"),
                    b.map(|b| b.rate_asked),
                    1,
                ),
                (
                    format!("{f} N={n}:   p50 latency ms"),
                    b.map(|b| b.p50_ms),
                    2,
                ),
                (
                    format!("{f} N={n}:   p99 latency ms"),
                    b.map(|b| b.p99_ms),
                    2,
                ),
                (
                    format!("{f} N={n}:   server CPU %"),
                    b.and_then(|b| b.server_cpu_pct),
                    0,
                ),
                (
                    format!("{f} N={n}:   server RSS MiB"),
                    mib(b.and_then(|b| b.server_rss_kib)),
                    1,
                ),
                (
                    format!("{f} N={n}:   generator CPU %"),
                    b.and_then(|b| b.gen_cpu_pct),
                    0,
                ),
                (
                    format!("{f} N={n}:   server waiting for a CPU %"),
                    b.and_then(|b| b.server_runq_wait_pct),
                    0,
                ),
                (
                    format!("{f} N={n}:   generator waiting for a CPU %"),
                    b.and_then(|b| b.gen_runq_wait_pct),
                    0,
                ),
                (
                    format!("{f} N={n}:   lowest failing publications/s"),
                    m.lowest_failing_rate,
                    1,
                ),
                (
                    format!("{f} N={n}: most no-loss deliveries/s seen (any p99)"),
                    l.map(|l| l.deliveries_per_s),
                    0,
                ),
                (
                    format!("{f} N={n}:   its p99 latency ms"),
                    l.map(|l| l.p99_ms),
                    2,
                ),
            ];
            let mut rows = rows;
            if m.protocol == Protocol::SocketIo {
                rows.push((
                    format!("{f} N={n}: joins lost (whole search)"),
                    Some(m.lost_joins as f64),
                    0,
                ));
                rows.push((
                    format!("{f} N={n}: deliveries reordered (whole search)"),
                    Some(m.reordered as f64),
                    0,
                ));
            }
            (&m.label, rows)
        }
        Record::FanoutStep(s) => {
            let at = format!(
                "{} N={} @{}/s",
                fanout_name(s.protocol),
                s.n,
                rate(s.rate_asked)
            );
            let rows = vec![
                (format!("{at}: deliveries/s"), Some(s.deliveries_per_s), 0),
                (format!("{at}:   p50 latency ms"), Some(s.p50_ms), 2),
                (format!("{at}:   p99 latency ms"), Some(s.p99_ms), 2),
                (format!("{at}:   missing"), Some(s.missing as f64), 0),
                (format!("{at}:   server CPU %"), s.server_cpu_pct, 0),
                (format!("{at}:   generator CPU %"), s.gen_cpu_pct, 0),
                (
                    format!("{at}:   server waiting for a CPU %"),
                    s.server_runq_wait_pct,
                    0,
                ),
                (
                    format!("{at}:   generator waiting for a CPU %"),
                    s.gen_runq_wait_pct,
                    0,
                ),
            ];
            (&s.label, rows)
        }
        Record::Publish(p) => {
            let at = format!("publish via {} P={} K={}", p.via, p.publishers, p.channels);
            let rows = vec![
                (
                    format!("{at}: publications/s"),
                    Some(p.publications_per_s),
                    0,
                ),
                (format!("{at}:   p50 latency ms"), Some(p.p50_ms), 2),
                (format!("{at}:   p99 latency ms"), Some(p.p99_ms), 2),
                (format!("{at}:   max latency ms"), Some(p.max_ms), 2),
                (format!("{at}:   errors"), Some(p.errors as f64), 0),
                (format!("{at}:   server CPU %"), p.server_cpu_pct, 0),
                (format!("{at}:   generator CPU %"), p.gen_cpu_pct, 0),
                (
                    format!("{at}:   server waiting for a CPU %"),
                    p.server_runq_wait_pct,
                    0,
                ),
                (
                    format!("{at}:   generator waiting for a CPU %"),
                    p.gen_runq_wait_pct,
                    0,
                ),
            ];
            (&p.label, rows)
        }
        Record::Idle(i) => {
            let n = i.n;
            let f = idle_name(i.protocol);
            let rows = vec![
                (
                    format!("{f} N={n}: KiB per connection"),
                    i.kib_per_connection,
                    1,
                ),
                (
                    format!("{f} N={n}:   server RSS MiB"),
                    mib(i.rss_after_kib),
                    1,
                ),
                (format!("{f} N={n}:   setup s"), Some(i.setup_s), 1),
            ];
            let mut rows = rows;
            if i.protocol == Protocol::SocketIo {
                rows.push((
                    format!("{f} N={n}:   joins lost"),
                    Some(i.lost_joins as f64),
                    0,
                ));
            }
            (&i.label, rows)
        }
    }
}

fn render(labels: &[String], rows: &[Row], ratios: &[(&str, &str)]) -> String {
    let has = |label: &str| labels.iter().any(|l| l == label);
    // Only the ratios whose two labels are both in the table.
    let ratios: Vec<(&str, &str, String)> = ratios
        .iter()
        .filter(|(over, under)| has(over) && has(under))
        .map(|(over, under)| (*over, *under, format!("{over}/{under}")))
        .collect();
    let width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let name_width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    let mut out = format!("{:<name_width$}", "measure");
    for label in labels {
        let _ = write!(out, " {label:>width$}");
    }
    for (_, _, name) in &ratios {
        let _ = write!(out, " {name}");
    }
    out.push('\n');
    for row in rows {
        let _ = write!(out, "{:<name_width$}", row.name);
        for label in labels {
            match row.values.get(label) {
                Some(v) => {
                    let _ = write!(out, " {v:>width$.prec$}", prec = row.decimals);
                }
                None => {
                    let _ = write!(out, " {:>width$}", "—");
                }
            }
        }
        for (a, b, name) in &ratios {
            let ratio_width = name.chars().count();
            match (row.values.get(*a), row.values.get(*b)) {
                (Some(a), Some(b)) if *b != 0.0 => {
                    let _ = write!(out, " {:>ratio_width$}", format!("{:.2}×", a / b));
                }
                _ => {
                    let _ = write!(out, " {:>ratio_width$}", "—");
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_column_per_ratio_whose_labels_are_there() {
        let labels = ["switchboard", "socketioxide", "node-socketio"].map(String::from);
        let rows = [Row {
            name: "sio-idle N=10: KiB per connection".to_owned(),
            values: BTreeMap::from([
                ("switchboard".to_owned(), 4.0),
                ("socketioxide".to_owned(), 8.0),
                ("node-socketio".to_owned(), 16.0),
            ]),
            decimals: 1,
        }];
        let ratios = [
            ("switchboard", "socketioxide"),
            ("switchboard", "node-socketio"),
            ("switchboard", "floor"),
        ];
        let table = render(&labels, &rows, &ratios);
        let mut lines = table.lines();
        let header = lines.next().expect("a header");
        assert!(header.contains("switchboard/socketioxide switchboard/node-socketio"));
        assert!(!header.contains("floor"), "{header}");
        let row = lines.next().expect("a row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["0.50×", "0.25×"], "{row:?}");
    }
}
