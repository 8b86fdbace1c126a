//! What the subscribers (and the `publish` scenario's publishers) count, shared with the
//! coordinator: the process-wide monotonic clock that stamps publications, the measured
//! window, delivery and loss counters, and latency histograms.
//!
//! The hot path touches only relaxed atomics (added once per socket read, not per frame) and
//! a histogram owned by its thread: each thread records into its own `HdrHistogram` behind an
//! uncontended mutex, and the coordinator merges them after a step. A publication belongs to
//! the window when its *send* time is inside it, so warm-up traffic and stragglers from an
//! earlier step never count, whenever they arrive.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Instant;

use hdrhistogram::Histogram;

static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since the process's clock origin (monotonic, shared by every thread).
pub(crate) fn now_ns() -> u64 {
    ns_of(Instant::now())
}

/// An instant as nanoseconds on [`now_ns`]'s clock (0 for instants before the origin).
pub(crate) fn ns_of(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*ORIGIN).as_nanos()).unwrap_or(u64::MAX)
}

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, 3 significant digits.
const HIST_MAX_US: u64 = 600_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Every thread's histogram, so the coordinator can reset and merge them.
static HISTOGRAMS: Mutex<Vec<Arc<Mutex<Histogram<u64>>>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL_HISTOGRAM: Arc<Mutex<Histogram<u64>>> = {
        let h = Arc::new(Mutex::new(new_histogram()));
        HISTOGRAMS.lock().unwrap_or_else(PoisonError::into_inner).push(h.clone());
        h
    };
}

/// Runs `f` with this thread's histogram locked (uncontended except while the coordinator
/// merges).
pub(crate) fn with_local_histogram<R>(f: impl FnOnce(&mut Histogram<u64>) -> R) -> R {
    LOCAL_HISTOGRAM.with(|h| f(&mut h.lock().unwrap_or_else(PoisonError::into_inner)))
}

/// Counters shared by every subscriber connection and the coordinator.
#[derive(Default)]
pub(crate) struct Shared {
    window_start_ns: AtomicU64,
    window_end_ns: AtomicU64,
    /// Publications received whose send time is inside the window.
    pub(crate) delivered_in_window: AtomicU64,
    /// Every publication received, whenever sent.
    pub(crate) delivered_total: AtomicU64,
    /// Publications missing between two received offsets on one connection.
    pub(crate) gaps: AtomicU64,
    /// Publications received with an offset not above the last one (duplicates, reordering).
    pub(crate) reordered: AtomicU64,
    /// Text frames that needed a full JSON parse (replies, pings, unusual publications).
    pub(crate) slow_path: AtomicU64,
    /// Subscribed connections that ended without the generator closing them.
    pub(crate) disconnects: AtomicU64,
    /// Subscribed connections currently open.
    pub(crate) alive: AtomicUsize,
    /// The first reason a subscribed connection ended (close code, error…).
    pub(crate) first_disconnect: Mutex<Option<String>>,
    /// Socket.IO joins the open fleet lost when it was set up (not reset by a step).
    pub(crate) lost_joins: AtomicU64,
}

/// What one read's worth of frames adds to [`Shared`], applied in one go.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) delivered_in_window: u64,
    pub(crate) delivered_total: u64,
    pub(crate) gaps: u64,
    pub(crate) reordered: u64,
    pub(crate) slow_path: u64,
}

impl Shared {
    /// The measured window, in ns on [`now_ns`]'s clock: `[start, end)`.
    pub(crate) fn window(&self) -> (u64, u64) {
        (
            self.window_start_ns.load(Relaxed),
            self.window_end_ns.load(Relaxed),
        )
    }

    /// Zeroes the per-step counters and histograms and sets the next window.
    pub(crate) fn start_step(&self, start_ns: u64, end_ns: u64) {
        self.window_start_ns.store(start_ns, Relaxed);
        self.window_end_ns.store(end_ns, Relaxed);
        for counter in [
            &self.delivered_in_window,
            &self.delivered_total,
            &self.gaps,
            &self.reordered,
            &self.slow_path,
            &self.disconnects,
        ] {
            counter.store(0, Relaxed);
        }
        *self
            .first_disconnect
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        reset_histograms();
    }

    /// Adds a read's counts.
    pub(crate) fn apply(&self, batch: &Batch) {
        let pairs = [
            (&self.delivered_in_window, batch.delivered_in_window),
            (&self.delivered_total, batch.delivered_total),
            (&self.gaps, batch.gaps),
            (&self.reordered, batch.reordered),
            (&self.slow_path, batch.slow_path),
        ];
        for (counter, n) in pairs {
            if n != 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }

    /// Records why a subscribed connection ended; the first reason of a step is kept.
    pub(crate) fn note_disconnect(&self, reason: String) {
        self.disconnects.fetch_add(1, Relaxed);
        let mut first = self
            .first_disconnect
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(reason);
    }

    /// All threads' latencies since the step started, merged.
    pub(crate) fn merged_histogram(&self) -> Histogram<u64> {
        merged_histogram()
    }
}

/// Empties every thread's latency histogram.
pub(crate) fn reset_histograms() {
    for h in HISTOGRAMS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        h.lock().unwrap_or_else(PoisonError::into_inner).reset();
    }
}

/// Every thread's latencies since the last reset, merged.
pub(crate) fn merged_histogram() -> Histogram<u64> {
    let mut merged = new_histogram();
    for h in HISTOGRAMS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        // Same bounds everywhere, so adding cannot fail.
        let _ = merged.add(&*h.lock().unwrap_or_else(PoisonError::into_inner));
    }
    merged
}

/// Records one latency, in µs, into `hist` (clamped to the histogram's range).
pub(crate) fn record_latency(hist: &mut Histogram<u64>, latency_ns: u64) {
    hist.saturating_record((latency_ns / 1000).clamp(1, HIST_MAX_US));
}
