//! CPU time and resident memory of a process, read from `/proc/<pid>/stat` and
//! `/proc/<pid>/status` (Linux only). The generator samples the server it is given and itself
//! at both ends of a measured window; CPU % is the CPU time used over the wall time between the
//! two samples, summed over the process's threads (100 % = one core busy).
//!
//! It also reads how long the process's threads sat runnable but waiting for a CPU
//! (`/proc/<pid>/task/*/schedstat`, second field). On a machine doing nothing else that is
//! near 0 %; a high figure means something else shared the core and the step's latency
//! measured the machine, not the server.

use std::time::Instant;

/// Kernel clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`): fixed at 100 by the Linux
/// ABI on every architecture we run, whatever the kernel's internal HZ.
const TICKS_PER_SECOND: f64 = 100.0;

/// Which process to sample.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pid {
    /// The generator itself.
    Own,
    /// Another process, by id.
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Self::Own => "/proc/self".to_owned(),
            Self::Other(pid) => format!("/proc/{pid}"),
        }
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    at: Instant,
    /// User + system CPU time, in ticks.
    cpu_ticks: u64,
    /// Resident set size, in KiB.
    pub(crate) rss_kib: u64,
    /// Time all threads spent waiting on a run queue, in ns (`None` without schedstats).
    runq_wait_ns: Option<u64>,
}

/// Reads a process's CPU time and RSS; `None` if it is gone or unreadable.
pub(crate) fn sample(pid: Pid) -> Option<Sample> {
    let dir = pid.dir();
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    Some(Sample {
        at: Instant::now(),
        cpu_ticks: cpu_ticks(&stat)?,
        rss_kib: rss_kib(&status)?,
        runq_wait_ns: runq_wait_ns(&dir),
    })
}

/// Time spent runnable but not running between two samples, in % of the wall time (summed over
/// threads, so two threads both waiting the whole time make 200 %).
pub(crate) fn runq_wait_percent(before: &Sample, after: &Sample) -> Option<f64> {
    let wall = after.at.saturating_duration_since(before.at).as_nanos() as f64;
    let waited = after.runq_wait_ns?.saturating_sub(before.runq_wait_ns?) as f64;
    (wall > 0.0).then(|| waited / wall * 100.0)
}

/// Sum of the second field of every thread's `schedstat`.
fn runq_wait_ns(dir: &str) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("{dir}/task")).ok()?.flatten() {
        // A thread may end between listing and reading: skip it.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += text.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU use between two samples, in % of one core.
pub(crate) fn cpu_percent(before: &Sample, after: &Sample) -> f64 {
    let wall = after.at.saturating_duration_since(before.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / TICKS_PER_SECOND / wall * 100.0
}

/// utime + stime: fields 14 and 15 of `stat`, counted after the `)` that ends the command name
/// (which may itself contain spaces and parentheses).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces_and_parentheses() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(290));
    }

    #[test]
    fn rss_comes_from_the_vmrss_line() {
        let status = "Name:\tfloor\nVmPeak:\t  9000 kB\nVmRSS:\t   5120 kB\nThreads:\t2\n";
        assert_eq!(rss_kib(status), Some(5120));
    }

    #[test]
    fn the_generator_can_sample_itself() {
        let a = sample(Pid::Own).expect("/proc/self is readable on Linux");
        assert!(a.rss_kib > 0);
        let b = sample(Pid::Own).expect("/proc/self is readable on Linux");
        assert!(cpu_percent(&a, &b) >= 0.0);
    }
}
