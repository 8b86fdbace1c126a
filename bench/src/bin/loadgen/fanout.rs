//! Scenario `fanout`: N subscribers on one channel, one publisher at a steady rate; measures
//! deliveries per second, latency from send to receipt, and loss. `--find-max` searches for
//! the highest rate that passes (no loss, p99 under the limit) within a time budget.
//!
//! A step is: a warm-up, a measured window, then a bounded drain while the last window
//! publications arrive. Only publications *sent* in the window count, so the numbers do not
//! depend on when the step's edges fall. Server and generator CPU are sampled at the window's
//! edges. The search doubles the rate until a step fails, then bisects between the best pass
//! and the lowest failure above it (see [`next_rate`] for where it goes while nothing passed);
//! after a failure every subscriber is reconnected, so a backlog or a slow-consumer disconnect
//! never leaks into the next step.
//!
//! `sio-fanout` is the same scenario over Socket.IO (`FleetConfig::protocol`): subscribers join
//! a room, the publisher emits `pub` events numbered by a sequence that runs on across the
//! steps (so gaps and reordering are checked per subscriber as offsets are), and a step also
//! fails on a lost join. Reordered deliveries are counted and reported, not failed: the pass
//! criterion stays latency and loss, the same for every server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::fleet::{Fleet, FleetConfig, Protocol};
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
    /// Socket.IO: the sequence number of the next publication (from 1, across steps).
    pub(crate) next_seq: AtomicU64,
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
        let lost = match self.fleet.protocol {
            Protocol::Native => String::new(),
            Protocol::SocketIo => format!(
                ", {} joins lost, {} joined only after emitting join again",
                fleet.lost_joins, fleet.join_retries
            ),
        };
        println!(
            "[{}] {} subscribers connected in {:.1} s ({} failed{lost})",
            self.label,
            fleet.subscribed,
            fleet.setup.as_secs_f64(),
            fleet.failed
        );
        self.shared
            .lost_joins
            .store(fleet.lost_joins as u64, Relaxed);
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
        let first_seq = self.next_seq.load(Relaxed);
        let plan = Plan {
            protocol: self.fleet.protocol,
            channel: self.fleet.channel.clone(),
            first_seq,
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
        self.next_seq.store(first_seq + published.sent, Relaxed);
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
            protocol: self.fleet.protocol,
            lost_joins: shared.lost_joins.load(Relaxed),
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
        let mut lost_joins = fleet.lost_joins as u64;
        let mut reordered = 0;
        let mut best: Option<Box<Step>> = None;
        let mut best_lossless: Option<Box<Step>> = None;
        let mut tried: Vec<Outcome> = Vec::new();
        let mut rate = search.start_rate;
        let stopped = loop {
            // A reconnect after a failure costs about one fleet setup more.
            if started.elapsed() + step_time + fleet.setup > search.max_time {
                break format!(
                    "time budget of {:.0} s reached",
                    search.max_time.as_secs_f64()
                );
            }
            let step = self.step(rate, step_config).await?;
            Record::FanoutStep(step.clone()).print();
            reordered += step.reordered;
            tried.push(Outcome {
                rate,
                pass: step.pass,
                saturated: saturated(&step, step_config),
            });
            let more =
                |b: &Option<Box<Step>>| b.as_ref().is_none_or(|b| step.delivered > b.delivered);
            if lossless(&step) && more(&best_lossless) {
                best_lossless = Some(Box::new(step.clone()));
            }
            let passed = step.pass;
            if passed && best.as_ref().is_none_or(|b| rate > b.rate_asked) {
                best = Some(Box::new(step.clone()));
            }
            if publisher_behind(&step) {
                break format!("the publisher could not keep {}/s", report::rate(rate));
            }
            rate = match next_rate(&tried, search) {
                Ok(next) => next,
                Err(why) => break why,
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
                lost_joins += fleet.lost_joins as u64;
            }
        };
        fleet.close();
        Ok(FindMax {
            label: self.label.clone(),
            protocol: self.fleet.protocol,
            lost_joins,
            reordered,
            n: self.fleet.n,
            p99_limit_ms: step_config.p99_limit_ms,
            best,
            best_lossless,
            lowest_failing_rate: bounds(&tried).1,
            steps: tried.len(),
            elapsed_s: started.elapsed().as_secs_f64(),
            stopped,
        })
    }
}

/// What one step of a search taught it.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    rate: f64,
    pass: bool,
    /// Failed with loss or with a latency far over the limit: the server is past its capacity.
    saturated: bool,
}

/// A failing step's p99 above this many times the limit means the server is past capacity.
const SATURATED_P99_FACTOR: f64 = 3.0;

fn saturated(step: &Step, config: &StepConfig) -> bool {
    !lossless(step) || step.p99_ms > SATURATED_P99_FACTOR * config.p99_limit_ms
}

/// The highest passing rate, and the lowest failing rate above it (above nothing if none passed).
fn bounds(tried: &[Outcome]) -> (Option<f64>, Option<f64>) {
    let best = tried
        .iter()
        .filter(|o| o.pass)
        .map(|o| o.rate)
        .reduce(f64::max);
    let fail = tried
        .iter()
        .filter(|o| !o.pass && best.is_none_or(|b| o.rate > b))
        .map(|o| o.rate)
        .reduce(f64::min);
    (best, fail)
}

/// The next rate to try, or why the search is over.
///
/// Above a pass: keep doubling until the server is clearly past capacity (a saturated step, or
/// two failures above the best pass), then bisect between the best pass and the lowest failure
/// above it. One failure on latency alone does not end the doubling: near the limit p99 is
/// noisy and barely depends on the rate (one pass over a large room takes most of it), and the
/// search wants the highest rate that passes, not the first one that fails. With no pass yet,
/// it depends on how the steps failed: saturation means too much load, so go below the lowest
/// rate tried; a p99 just over the limit at low load can improve with load, because a busier
/// server puts more frames in each write, so go higher.
fn next_rate(tried: &[Outcome], search: &SearchConfig) -> Result<f64, String> {
    let double = |r: f64| {
        if r * 2.0 > search.max_rate {
            Err(format!(
                "--max-rate {} reached",
                report::rate(search.max_rate)
            ))
        } else {
            Ok(round_rate(r * 2.0))
        }
    };
    let converged = || format!("converged within {:.0} %", search.precision * 100.0);
    let highest = tried.iter().map(|o| o.rate).reduce(f64::max);
    let highest = highest.unwrap_or(search.start_rate);
    match bounds(tried) {
        (Some(pass), Some(fail)) if past_capacity(tried, pass) => {
            let mid = round_rate((pass + fail) / 2.0);
            if fail / pass <= 1.0 + search.precision || mid <= pass || mid >= fail {
                Err(converged())
            } else {
                Ok(mid)
            }
        }
        (Some(_), _) => double(highest),
        (None, _) => {
            let lowest = tried
                .iter()
                .map(|o| o.rate)
                .reduce(f64::min)
                .unwrap_or(search.start_rate);
            if tried.iter().any(|o| o.saturated) {
                let lower = round_rate(lowest / 2.0);
                if lower < MIN_RATE {
                    Err(format!(
                        "no rate passed, down to {}/s",
                        report::rate(lowest)
                    ))
                } else {
                    Ok(lower)
                }
            } else {
                double(highest)
            }
        }
    }
}

/// Whether the steps above the best pass show the server past its capacity.
fn past_capacity(tried: &[Outcome], best_pass: f64) -> bool {
    let above = || tried.iter().filter(|o| !o.pass && o.rate > best_pass);
    above().any(|o| o.saturated) || above().count() >= 2
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
    if skipped(step) > 0 {
        problems.push(format!("{} offsets skipped", skipped(step)));
    }
    // A subscriber whose join was lost is not counted in `expected`: its loss shows here.
    if step.lost_joins > 0 {
        problems.push(format!("{} joins lost", step.lost_joins));
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

/// Whether every publication of the window reached every subscriber, whatever the latency.
fn lossless(step: &Step) -> bool {
    step.missing == 0
        && skipped(step) == 0
        && step.disconnects == 0
        && step.publish_errors == 0
        && step.lost_joins == 0
}

/// Offsets skipped and never received. Socket.IO servers may deliver out of order
/// (socketioxide runs each event handler as its own task): a publication that overtakes the
/// one before it counts one gap, and the late one, when it comes, one reordering that fills
/// it. Native offsets come from the server's channel and are checked as they are.
fn skipped(step: &Step) -> u64 {
    match step.protocol {
        Protocol::Native => step.gaps,
        Protocol::SocketIo => step.gaps.saturating_sub(step.reordered),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SEARCH: SearchConfig = SearchConfig {
        start_rate: 10.0,
        max_rate: 1000.0,
        precision: 0.1,
        max_time: Duration::from_secs(240),
    };

    /// Runs the search against a server described by `outcome(rate)`; returns the rates tried
    /// and why it stopped.
    fn search(outcome: impl Fn(f64) -> (bool, bool)) -> (Vec<f64>, String) {
        let mut tried = Vec::new();
        let mut rate = SEARCH.start_rate;
        loop {
            let (pass, saturated) = outcome(rate);
            tried.push(Outcome {
                rate,
                pass,
                saturated,
            });
            assert!(tried.len() < 30, "the search does not end: {tried:?}");
            match next_rate(&tried, &SEARCH) {
                Ok(next) => rate = next,
                Err(why) => return (tried.iter().map(|o| o.rate).collect(), why),
            }
        }
    }

    #[test]
    fn the_search_doubles_then_bisects_to_within_the_precision() {
        let (rates, why) = search(|r| (r <= 57.0, r > 57.0));
        assert_eq!(rates, [10.0, 20.0, 40.0, 80.0, 60.0, 50.0, 55.0]);
        assert!(why.starts_with("converged"), "{why}");
    }

    #[test]
    fn one_failure_on_latency_alone_does_not_stop_the_doubling() {
        let (rates, why) = search(|r| (r != 20.0 && r <= 50.0, r > 50.0));
        assert_eq!(rates, [10.0, 20.0, 40.0, 80.0, 60.0, 50.0, 55.0]);
        assert!(why.starts_with("converged"), "{why}");
    }

    #[test]
    fn a_server_saturated_at_the_start_rate_is_searched_below_it() {
        let (rates, _) = search(|r| (r <= 3.0, r > 3.0));
        assert_eq!(&rates[..4], [10.0, 5.0, 2.5, 3.8]);
        let (rates, why) = search(|_| (false, true));
        assert_eq!(rates, [10.0, 5.0, 2.5, 1.3]);
        assert!(why.starts_with("no rate passed"), "{why}");
    }

    #[test]
    fn a_slow_pass_at_low_load_makes_the_search_go_up_not_down() {
        // Fails on latency alone below 20/s, passes up to 45/s, saturated above.
        let (rates, why) = search(|r| ((20.0..=45.0).contains(&r), r > 45.0));
        assert_eq!(&rates[..3], [10.0, 20.0, 40.0]);
        assert!(rates.iter().all(|r| *r >= 10.0), "{rates:?}");
        assert!(why.starts_with("converged"), "{why}");
    }

    #[test]
    fn the_search_stops_at_the_max_rate() {
        let (rates, why) = search(|_| (true, false));
        assert_eq!(rates.last(), Some(&640.0));
        assert!(why.contains("--max-rate"), "{why}");
    }
}
