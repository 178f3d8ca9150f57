//! The flow through the gateway, from counter samples taken every second:
//! instances per minute over the last minute (a difference over the
//! window, since the counters only grow), and per-minute totals of the last
//! hour for the page's chart, each second's increase added to the minute of
//! the wall clock it fell in.

use crate::pipeline::router::Router;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WINDOW: usize = 61;
/// Minutes kept for the chart (the current one included).
pub const MINUTES: u64 = 60;

/// The counters sampled, in this order.
pub const SERIES: [&str; 5] = [
    "received",
    "deidentified",
    "forwarded",
    "quarantined",
    "dead_lettered",
];

/// One sample of the counters named by [`SERIES`].
pub type Counts = [u64; 5];

/// The gateway's counters now: instances received, de-identified and
/// quarantined, and, over every DICOM destination, delivered and
/// dead-lettered.
pub fn counts(router: &Router) -> Counts {
    let m = &crate::metrics::METRICS;
    let (mut forwarded, mut dead) = (0, 0);
    for d in &router.dicom {
        forwarded += d.queue.counters.delivered.load(Relaxed);
        dead += d.queue.counters.dead_lettered.load(Relaxed);
    }
    [
        m.instances_stored.load(Relaxed),
        m.instances_deidentified.load(Relaxed),
        forwarded,
        m.instances_quarantined.load(Relaxed),
        dead,
    ]
}

#[derive(Default)]
struct Samples {
    /// The last [`WINDOW`] seconds: (time, counts).
    seconds: VecDeque<(Instant, Counts)>,
    /// (unix minute, increase in that minute), oldest first, gaps left out.
    minutes: VecDeque<(u64, Counts)>,
}

#[derive(Default)]
pub struct Throughput(Mutex<Samples>);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Throughput {
    pub fn sample(&self, c: Counts) {
        self.sample_at(Instant::now(), unix_now(), c);
    }

    fn sample_at(&self, at: Instant, unix: u64, c: Counts) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let minute = unix / 60;
        // The counters start at zero with the process: the first sample's
        // increase is all of them.
        let prev = s.seconds.back().map(|(_, p)| *p).unwrap_or_default();
        let increase: Counts = std::array::from_fn(|i| c[i].saturating_sub(prev[i]));
        match s.minutes.back_mut() {
            Some((m, sum)) if *m == minute => {
                for (total, d) in sum.iter_mut().zip(increase) {
                    *total += d;
                }
            }
            _ => s.minutes.push_back((minute, increase)),
        }
        while s
            .minutes
            .front()
            .is_some_and(|(m, _)| m + MINUTES <= minute)
        {
            s.minutes.pop_front();
        }
        s.seconds.push_back((at, c));
        while s.seconds.len() > WINDOW {
            s.seconds.pop_front();
        }
    }

    /// (received, de-identified) per minute over the last minute.
    pub fn per_minute(&self) -> (f64, f64) {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (s.seconds.front(), s.seconds.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let mins = (b.0 - a.0).as_secs_f64() / 60.0;
                (
                    (b.1[0] - a.1[0]) as f64 / mins,
                    (b.1[1] - a.1[1]) as f64 / mins,
                )
            }
            _ => (0.0, 0.0),
        }
    }

    /// The last [`MINUTES`] minutes, oldest first, the current one last:
    /// (start of the minute in unix seconds, increase of each counter).
    /// Minutes without a sample (before the start) are zeros.
    pub fn minutes(&self) -> Vec<(u64, Counts)> {
        self.minutes_at(unix_now())
    }

    fn minutes_at(&self, unix: u64) -> Vec<(u64, Counts)> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = unix / 60;
        (now + 1 - MINUTES..=now)
            .map(|m| {
                let sum = s
                    .minutes
                    .iter()
                    .find(|(at, _)| *at == m)
                    .map(|(_, c)| *c)
                    .unwrap_or_default();
                (m * 60, sum)
            })
            .collect()
    }

    /// Samples once a second until the runtime stops.
    pub fn spawn(state: super::State) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                state.throughput.sample(counts(&state.router));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_land_in_their_minute_and_old_minutes_go() {
        let t = Throughput::default();
        let start = Instant::now();
        let base = 1_700_000_000 / 60 * 60;
        // What the process counted before the first sample is charted too.
        t.sample_at(start, base, [5, 5, 0, 0, 0]);
        t.sample_at(start + Duration::from_secs(1), base + 1, [8, 7, 1, 1, 0]);
        t.sample_at(start + Duration::from_secs(2), base + 59, [9, 7, 1, 1, 2]);
        t.sample_at(start + Duration::from_secs(3), base + 61, [10, 9, 3, 1, 2]);
        let m = t.minutes_at(base + 61);
        assert_eq!(m.len(), MINUTES as usize);
        assert_eq!(m[MINUTES as usize - 1], (base + 60, [1, 2, 2, 0, 0]));
        assert_eq!(m[MINUTES as usize - 2], (base, [9, 7, 1, 1, 2]));
        assert!(m[..MINUTES as usize - 2].iter().all(|(_, c)| *c == [0; 5]));
        // An hour later the first minute has gone from the chart and the ring.
        let later = base + MINUTES * 60;
        t.sample_at(start + Duration::from_secs(4), later, [10, 9, 3, 1, 2]);
        let m = t.minutes_at(later);
        assert_eq!(m[0], (base + 60, [1, 2, 2, 0, 0]));
        assert_eq!(t.0.lock().unwrap().minutes.len(), 2);
        let (received, _) = t.per_minute();
        assert!(received > 0.0);
    }
}
