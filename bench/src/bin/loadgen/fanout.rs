//! Scenario `fanout`: N subscribers on one channel, one publisher at a steady rate; measures
//! deliveries per second, latency from send to receipt, and loss. `--find-max` searches for
//! the highest rate that passes (no loss, p99 under the limit) within a time budget.
//!
//! A step is: a warm-up, a measured window, then a bounded drain while the last window
//! publications arrive. Only publications *sent* in the window count, so the numbers do not
//! depend on when the step's edges fall. Server and generator CPU are sampled at the window's
//! edges. The search doubles the rate until a step fails, then bisects between the best pass
//! and the lowest failure; after a failure every subscriber is reconnected, so a backlog or a
//! slow-consumer disconnect never leaks into the next step.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::fleet::{Fleet, FleetConfig};
use crate::procfs::{self, Pid};
use crate::publisher::{self, Plan};
use crate::report::{self, FindMax, Record, Step};
use crate::stats::{self, Shared};

/// Time between scheduling a step and its first publication (the publisher connects in it).
const LEAD: Duration = Duration::from_millis(300);

/// A step whose publisher sent less than this share of the asked rate (give or take the one
/// publication a window's edges can cut) measured the generator.
const MIN_RATE_SHARE: f64 = 0.95;

/// Lowest rate the search tries, in publications/s.
const MIN_RATE: f64 = 1.0;

/// What every step needs.
pub(crate) struct Bench {
    pub(crate) label: String,
    pub(crate) fleet: FleetConfig,
    pub(crate) server: Option<u32>,
    pub(crate) shared: Arc<Shared>,
    /// The publisher's own runtime.
    pub(crate) publisher: tokio::runtime::Handle,
}

/// Phase lengths and the pass criterion of a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepConfig {
    pub(crate) warmup: Duration,
    pub(crate) window: Duration,
    /// Longest wait after the window for its publications to arrive.
    pub(crate) drain: Duration,
    pub(crate) p99_limit_ms: f64,
}

/// Bounds of a `--find-max` search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchConfig {
    pub(crate) start_rate: f64,
    pub(crate) max_rate: f64,
    /// Stop bisecting once lowest failure / best pass is at most `1 + precision`.
    pub(crate) precision: f64,
    /// Total time budget; no step starts that could not end within it.
    pub(crate) max_time: Duration,
}

impl Bench {
    /// Opens the subscribers; fails unless every one subscribed.
    pub(crate) async fn open_fleet(&self) -> anyhow::Result<Fleet> {
        let fleet = Fleet::open(&self.fleet, &self.shared).await;
        println!(
            "[{}] {} subscribers connected in {:.1} s ({} failed)",
            self.label,
            fleet.subscribed,
            fleet.setup.as_secs_f64(),
            fleet.failed
        );
        if fleet.failed > 0 {
            let (failed, err) = (fleet.failed, fleet.first_error.clone().unwrap_or_default());
            fleet.close();
            bail!(
                "{failed} of {} subscribers failed to connect; first: {err}",
                self.fleet.n
            );
        }
        Ok(fleet)
    }

    /// Measures one rate with the subscribers already open.
    pub(crate) async fn step(&self, rate: f64, config: &StepConfig) -> anyhow::Result<Step> {
        let shared = &self.shared;
        let subscribers = shared.alive.load(Relaxed);
        let start = Instant::now() + LEAD;
        let window_start = start + config.warmup;
        let window_end = window_start + config.window;
        let window_ns = (stats::ns_of(window_start), stats::ns_of(window_end));
        shared.start_step(window_ns.0, window_ns.1);
        let plan = Plan {
            channel: self.fleet.channel.clone(),
            rate,
            start,
            end: window_end,
            window_ns,
            reply_wait: config.drain,
        };
        let publishing = self
            .publisher
            .spawn(publisher::run(self.fleet.target.clone(), plan));

        tokio::time::sleep_until(window_start.into()).await;
        let server_before = self.server.and_then(|pid| procfs::sample(Pid::Other(pid)));
        let own_before = procfs::sample(Pid::Own);
        tokio::time::sleep_until(window_end.into()).await;
        let server_after = self.server.and_then(|pid| procfs::sample(Pid::Other(pid)));
        let own_after = procfs::sample(Pid::Own);

        let published = publishing.await.context("the publisher panicked")??;
        let expected = subscribers as u64 * published.sent_in_window;
        let drain_deadline = window_end + config.drain;
        while shared.delivered_in_window.load(Relaxed) < expected && Instant::now() < drain_deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let hist = shared.merged_histogram();
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        let window_s = config.window.as_secs_f64();
        let delivered = shared.delivered_in_window.load(Relaxed);
        let cpu = |a: Option<procfs::Sample>, b: Option<procfs::Sample>| {
            Some(procfs::cpu_percent(a.as_ref()?, b.as_ref()?))
        };
        let wait = |a: Option<procfs::Sample>, b: Option<procfs::Sample>| {
            procfs::runq_wait_percent(a.as_ref()?, b.as_ref()?)
        };
        let mut step = Step {
            label: self.label.clone(),
            n: self.fleet.n,
            subscribers,
            rate_asked: rate,
            rate_sent: published.sent_in_window as f64 / window_s,
            window_s,
            published: published.sent_in_window,
            expected,
            delivered,
            deliveries_per_s: delivered as f64 / window_s,
            missing: expected.saturating_sub(delivered),
            gaps: shared.gaps.load(Relaxed),
            reordered: shared.reordered.load(Relaxed),
            disconnects: shared.disconnects.load(Relaxed),
            disconnect_reason: shared.first_disconnect.lock().ok().and_then(|r| r.clone()),
            publish_errors: published.replies_error,
            publish_error: published.first_error.clone(),
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: hist.max() as f64 / 1000.0,
            server_cpu_pct: cpu(server_before, server_after),
            server_rss_kib: server_after.map(|s| s.rss_kib),
            gen_cpu_pct: cpu(own_before, own_after),
            server_runq_wait_pct: wait(server_before, server_after),
            gen_runq_wait_pct: wait(own_before, own_after),
            publisher_lag_ms: published.max_lag.as_secs_f64() * 1000.0,
            slow_path_frames: shared.slow_path.load(Relaxed),
            pass: false,
            verdict: String::new(),
        };
        judge(&mut step, &published, config);
        Ok(step)
    }

    /// Doubles, then bisects, the rate to find the highest that passes.
    pub(crate) async fn find_max(
        &self,
        step_config: &StepConfig,
        search: &SearchConfig,
    ) -> anyhow::Result<FindMax> {
        let started = Instant::now();
        let step_time = LEAD + step_config.warmup + step_config.window + step_config.drain;
        let mut fleet = self.open_fleet().await?;
        let mut best: Option<Step> = None;
        let mut lowest_failing: Option<f64> = None;
        let mut rate = search.start_rate;
        let mut steps = 0;
        let stopped = loop {
            // A reconnect after a failure costs about one fleet setup more.
            if started.elapsed() + step_time + fleet.setup > search.max_time {
                break format!(
                    "time budget of {:.0} s reached",
                    search.max_time.as_secs_f64()
                );
            }
            let step = self.step(rate, step_config).await?;
            steps += 1;
            Record::FanoutStep(step.clone()).print();
            let passed = step.pass;
            let generator_bound = publisher_behind(&step);
            if passed {
                best = Some(step);
            } else {
                lowest_failing = Some(lowest_failing.map_or(rate, |f: f64| f.min(rate)));
            }
            if generator_bound {
                break format!("the publisher could not keep {}/s", report::rate(rate));
            }
            let best_rate = best.as_ref().map(|b| b.rate_asked);
            rate = match (best_rate, lowest_failing) {
                (_, None) if rate * 2.0 > search.max_rate => {
                    break format!("--max-rate {} reached", report::rate(search.max_rate));
                }
                (_, None) => rate * 2.0,
                (None, Some(fail)) if fail / 2.0 < MIN_RATE => {
                    break format!("fails even at {}/s", report::rate(fail));
                }
                (None, Some(fail)) => round_rate(fail / 2.0),
                (Some(pass), Some(fail)) if fail / pass <= 1.0 + search.precision => {
                    break format!("converged within {:.0} %", search.precision * 100.0);
                }
                (Some(pass), Some(fail)) => round_rate((pass + fail) / 2.0),
            };
            let healthy = self.shared.alive.load(Relaxed) == fleet.subscribed;
            if passed && healthy {
                // Let the previous step's stragglers arrive before the next warm-up.
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else {
                fleet.close();
                // Give the server time to notice the resets and free the connections.
                tokio::time::sleep(Duration::from_secs(1)).await;
                fleet = self.open_fleet().await?;
            }
        };
        fleet.close();
        Ok(FindMax {
            label: self.label.clone(),
            n: self.fleet.n,
            p99_limit_ms: step_config.p99_limit_ms,
            best,
            lowest_failing_rate: lowest_failing,
            steps,
            elapsed_s: started.elapsed().as_secs_f64(),
            stopped,
        })
    }
}

/// Sets `pass` and `verdict`: every problem is listed, none hidden behind another.
fn judge(step: &mut Step, published: &publisher::Report, config: &StepConfig) {
    let mut problems = Vec::new();
    if step.published == 0 {
        problems.push("nothing published in the window".to_owned());
    }
    if publisher_behind(step) {
        problems.push(format!(
            "publisher behind schedule ({:.1}/s sent, worst lag {:.0} ms): generator-bound",
            step.rate_sent, step.publisher_lag_ms
        ));
    }
    if step.missing > 0 {
        problems.push(format!("{} deliveries missing", step.missing));
    }
    if step.gaps > 0 {
        problems.push(format!("{} offsets skipped", step.gaps));
    }
    if step.disconnects > 0 {
        let why = step.disconnect_reason.as_deref().unwrap_or("unknown");
        problems.push(format!(
            "{} subscribers disconnected (first: {why})",
            step.disconnects
        ));
    }
    if published.replies_error > 0 {
        let why = published.first_error.as_deref().unwrap_or("unknown");
        problems.push(format!(
            "{} publish errors (first: {why})",
            published.replies_error
        ));
    }
    if step.p99_ms >= config.p99_limit_ms {
        problems.push(format!(
            "p99 {:.1} ms ≥ {} ms",
            step.p99_ms, config.p99_limit_ms
        ));
    }
    step.pass = problems.is_empty();
    step.verdict = if step.pass {
        "pass".to_owned()
    } else {
        problems.join("; ")
    };
}

/// Whether the publisher sent clearly fewer publications than the window should hold.
fn publisher_behind(step: &Step) -> bool {
    ((step.published + 1) as f64) < MIN_RATE_SHARE * step.rate_asked * step.window_s
}

/// Whole publications per second from 10/s up, tenths below.
fn round_rate(r: f64) -> f64 {
    if r >= 10.0 {
        r.round()
    } else {
        (r * 10.0).round() / 10.0
    }
}
