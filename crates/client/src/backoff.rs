//! Reconnect delays: exponential backoff with full jitter, capped.
//!
//! Attempt `n` (0 for the first retry after a drop) waits a uniformly random time in
//! `[min, min(max, min · 2ⁿ⁺¹)]`. The jitter spreads the reconnects of many clients dropped
//! at once (a server restart) instead of bringing them back in one wave; the cap bounds the
//! wait however long the server stays away. The connection task calls [`Backoff::delay`];
//! the caller only configures it.

use std::time::Duration;

use rand::Rng;

/// Reconnect backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Floor of every delay, and the scale of the exponential growth.
    pub min: Duration,
    /// Cap of every delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms growing to at most 10 s.
    fn default() -> Self {
        Self {
            min: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0-based), drawn with `rng`.
    ///
    /// Always within `[min, max]` (when `min > max`, exactly `max`).
    pub(crate) fn delay_with(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let floor = self.min.min(ceiling);
        if ceiling <= floor {
            return ceiling;
        }
        let span = (ceiling - floor).as_nanos();
        // `span` fits u64: it is at most `max`, and a Duration over 584 years of nanoseconds
        // is not a reconnect delay anyone configures; saturate rather than trust that.
        let span = u64::try_from(span).unwrap_or(u64::MAX);
        floor + Duration::from_nanos(rng.random_range(0..=span))
    }

    /// The delay before reconnect attempt `attempt`, drawn from the thread's generator.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, &mut rand::rng())
    }

    /// The upper bound of attempt `attempt`'s delay: `min · 2^(attempt + 1)`, capped at `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_add(1).min(31))
            .unwrap_or(u32::MAX);
        self.min
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::{SeedableRng, rngs::StdRng};

    use super::Backoff;

    const BACKOFF: Backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    #[test]
    fn delays_stay_between_min_and_max_for_every_attempt() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in (0..200).chain([u32::MAX - 1, u32::MAX]) {
            for _ in 0..50 {
                let delay = BACKOFF.delay_with(attempt, &mut rng);
                assert!(delay >= BACKOFF.min, "attempt {attempt}: {delay:?}");
                assert!(delay <= BACKOFF.max, "attempt {attempt}: {delay:?}");
                assert!(delay <= BACKOFF.ceiling(attempt));
            }
        }
    }

    #[test]
    fn ceiling_doubles_until_the_cap() {
        assert_eq!(BACKOFF.ceiling(0), Duration::from_millis(200));
        assert_eq!(BACKOFF.ceiling(1), Duration::from_millis(400));
        assert_eq!(BACKOFF.ceiling(3), Duration::from_millis(1600));
        assert_eq!(BACKOFF.ceiling(4), Duration::from_millis(3200));
        assert_eq!(BACKOFF.ceiling(5), BACKOFF.max);
        assert_eq!(BACKOFF.ceiling(u32::MAX), BACKOFF.max);
    }

    #[test]
    fn jitter_spreads_delays_over_the_whole_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<_> = (0..1000)
            .map(|_| BACKOFF.delay_with(10, &mut rng))
            .collect();
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(1000))
            .count();
        let high = delays
            .iter()
            .filter(|d| **d > Duration::from_millis(4000))
            .count();
        assert!(low > 50 && high > 50, "low {low}, high {high}");
    }

    #[test]
    fn first_attempt_is_jittered_too_and_inverted_bounds_give_max() {
        let mut rng = StdRng::seed_from_u64(3);
        let first: Vec<_> = (0..100).map(|_| BACKOFF.delay_with(0, &mut rng)).collect();
        assert!(
            first
                .iter()
                .all(|d| *d >= BACKOFF.min && *d <= 2 * BACKOFF.min)
        );
        assert!(first.iter().any(|d| *d != first[0]), "no jitter: {first:?}");
        let inverted = Backoff {
            min: Duration::from_secs(2),
            max: Duration::from_secs(1),
        };
        assert_eq!(inverted.delay_with(3, &mut rng), Duration::from_secs(1));
    }
}
