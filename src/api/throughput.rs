//! Instances per minute, from counter samples taken every second. The
//! counters only grow, so a rate is a difference over the window.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: usize = 61;

/// Ring of (time, stored, de-identified) samples.
#[derive(Default)]
pub struct Throughput(Mutex<VecDeque<(Instant, u64, u64)>>);

impl Throughput {
    pub fn sample(&self) {
        let m = &crate::metrics::METRICS;
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back((
            Instant::now(),
            m.instances_stored.load(Relaxed),
            m.instances_deidentified.load(Relaxed),
        ));
        while q.len() > WINDOW {
            q.pop_front();
        }
    }

    /// (received, de-identified) per minute over the last minute.
    pub fn per_minute(&self) -> (f64, f64) {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (q.front(), q.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let mins = (b.0 - a.0).as_secs_f64() / 60.0;
                ((b.1 - a.1) as f64 / mins, (b.2 - a.2) as f64 / mins)
            }
            _ => (0.0, 0.0),
        }
    }

    /// Samples once a second until the runtime stops.
    pub fn spawn(state: super::State) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                state.throughput.sample();
            }
        });
    }
}
