//! Waits after failures (Flux requeues failures with exponential back-off too).

use std::time::Duration;

/// The wait after the n-th consecutive failure: 5 s doubling, at most 5 minutes, and never
/// longer than the object's own interval (a failing object is retried at least as often as a
/// healthy one runs).
pub fn after_failures(failures: u32, interval: Duration) -> Duration {
    Duration::from_secs(5)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(Duration::from_secs(300))
        .min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_minutes_capped_by_the_interval() {
        let hour = Duration::from_secs(3600);
        let secs: Vec<u64> = (1..=9).map(|n| after_failures(n, hour).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(after_failures(u32::MAX, hour).as_secs(), 300);
        assert_eq!(after_failures(4, Duration::from_secs(30)).as_secs(), 30);
    }
}
