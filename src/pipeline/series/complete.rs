//! When a held series is complete: the expected frame count has arrived, or
//! nothing new came for the quiet period (the count is often unknown:
//! ImagesInAcquisition is optional and absent in many real series).

use super::holding::OpenSeries;
use std::time::{Duration, SystemTime};

pub fn is_complete(s: &OpenSeries, quiet: Duration, now: SystemTime) -> bool {
    // A folder seen between its creation and its first instance's rename is
    // not an idle series: without this, the first slices of a new series
    // could be claimed on their own and quarantined as "too few slices".
    if s.instances == 0 {
        return false;
    }
    let counted = s.expected.is_some_and(|e| s.frames >= e);
    let idle = now.duration_since(s.last).unwrap_or_default() >= quiet;
    counted || idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_or_quiet() {
        let now = SystemTime::now();
        let s = |frames, expected, ago| OpenSeries {
            key: "1".into(),
            instances: frames,
            frames,
            expected,
            last: now - Duration::from_secs(ago),
        };
        let q = Duration::from_secs(10);
        assert!(is_complete(&s(5, Some(5), 0), q, now));
        assert!(!is_complete(&s(4, Some(5), 0), q, now));
        assert!(!is_complete(&s(4, None, 9), q, now));
        assert!(is_complete(&s(4, None, 10), q, now));
        assert!(!is_complete(&s(0, None, 100), q, now), "empty folder");
    }
}
