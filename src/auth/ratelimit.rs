//! Lock-out of addresses that keep failing to authenticate.
//!
//! Tokens have 256 bits of entropy, so this is not what stops guessing; it
//! bounds the cost of Argon2 verifications and the growth of the audit log
//! under a flood of bad requests.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before old ones are pruned.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
struct Entry {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Counts failures per address in a sliding window of `window`.
pub struct FailureLimiter {
    max_failures: usize,
    window: Duration,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1) as usize,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds left if `ip` is locked out now.
    pub fn locked(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let map = self.lock();
        let until = map.get(&ip)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    /// Records a failure; returns true when it starts a lock-out.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now)
                    || e.failures.back().is_some_and(|t| now - *t < window)
            });
        }
        let e = map.entry(ip).or_default();
        while e.failures.front().is_some_and(|t| now - *t >= self.window) {
            e.failures.pop_front();
        }
        e.failures.push_back(now);
        if e.failures.len() >= self.max_failures && e.locked_until.is_none_or(|u| u <= now) {
            e.locked_until = Some(now + self.window);
            e.failures.clear();
            return true;
        }
        false
    }

    /// A success clears the address's failures.
    pub fn succeed(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_expires() {
        let l = FailureLimiter::new(3, Duration::from_millis(200));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(!l.fail(ip));
        assert!(!l.fail(ip));
        assert!(l.locked(ip).is_none());
        assert!(l.fail(ip));
        assert!(l.locked(ip).is_some());
        assert!(l.locked(other).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.locked(ip).is_none());
        l.fail(other);
        l.succeed(other);
        assert!(!l.fail(other) && !l.fail(other));
    }
}
