//! `--rate`: a limiter shared by all clients that spaces request starts
//! evenly, like Go's `rate.NewLimiter(rate, 1)` (burst of one).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct RateLimiter {
    interval: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `None` for an unlimited rate (0).
    pub fn per_second(rate: u64) -> Option<RateLimiter> {
        (rate > 0).then(|| RateLimiter {
            interval: Duration::from_secs(1) / rate.min(u32::MAX as u64) as u32,
            next_slot: Mutex::new(None),
        })
    }

    /// Waits for this caller's slot. Slots are handed out in call order and
    /// never bunch up: a caller that arrives late starts a new spacing from
    /// now instead of catching up with a burst.
    pub async fn wait(&self) {
        let now = Instant::now();
        let slot = {
            let mut next = self
                .next_slot
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = next.map_or(now, |next| next.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_unlimited() {
        assert!(RateLimiter::per_second(0).is_none());
    }

    #[tokio::test]
    async fn spaces_requests_evenly() {
        let limiter = RateLimiter::per_second(200).expect("limited");
        let start = Instant::now();
        for _ in 0..21 {
            limiter.wait().await;
        }
        // The first slot is immediate, then one every 5ms.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    }
}
