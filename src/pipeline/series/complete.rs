//! When a held series is complete: the expected frame count has arrived,
//! counted over distinct slices (a resent copy of a slice counts once; the
//! echoes and temporal positions of one position count separately), or
//! nothing new came for the quiet period (the count is often unknown:
//! ImagesInAcquisition is optional and absent in many real series). It is
//! claimed only once no member would be replayed from the spool log.

use super::holding::OpenSeries;
use std::time::{Duration, SystemTime};

pub fn is_complete(s: &OpenSeries, quiet: Duration, now: SystemTime) -> bool {
    // A folder seen between its creation and its first instance's rename is
    // not an idle series: without this, the first slices of a new series
    // could be claimed on their own and quarantined as "too few slices".
    if s.instances == 0 {
        return false;
    }
    let counted = s.expected.is_some_and(|e| s.distinct >= e);
    let idle = now.duration_since(s.last).unwrap_or_default() >= quiet;
    counted || idle
}

/// Whether a held series may be claimed: complete, and none of its members
/// still live in the spool log. A live member's record is replayed after a
/// crash and held again; had the series been claimed, that replay would
/// open a new series of that one instance (processed alone, or quarantined,
/// while the whole series was already delivered).
pub fn claimable(
    s: &OpenSeries,
    quiet: Duration,
    now: SystemTime,
    live: impl Fn(&str) -> bool,
) -> bool {
    is_complete(s, quiet, now) && !s.ids.iter().any(|id| live(id))
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
            distinct: frames,
            expected,
            last: now - Duration::from_secs(ago),
            ids: Vec::new(),
        };
        let q = Duration::from_secs(10);
        assert!(is_complete(&s(5, Some(5), 0), q, now));
        assert!(!is_complete(&s(4, Some(5), 0), q, now));
        assert!(!is_complete(&s(4, None, 9), q, now));
        assert!(is_complete(&s(4, None, 10), q, now));
        assert!(!is_complete(&s(0, None, 100), q, now), "empty folder");
    }

    #[test]
    fn duplicates_do_not_complete_a_series() {
        let now = SystemTime::now();
        let q = Duration::from_secs(10);
        let s = |instances, distinct| OpenSeries {
            key: "1".into(),
            instances,
            frames: instances,
            distinct,
            expected: Some(2),
            last: now,
            ids: Vec::new(),
        };
        // One slice sent twice: two instances, one distinct slice.
        assert!(!is_complete(&s(2, 1), q, now));
        // Two distinct positions.
        assert!(is_complete(&s(2, 2), q, now));
    }

    #[test]
    fn a_series_with_a_member_still_in_the_spool_log_waits() {
        let now = SystemTime::now();
        let q = Duration::from_secs(10);
        let s = OpenSeries {
            key: "1".into(),
            instances: 2,
            frames: 2,
            distinct: 2,
            expected: Some(2),
            last: now,
            ids: vec!["a".into(), "b".into()],
        };
        assert!(is_complete(&s, q, now));
        // "b"'s done mark is not durable yet: a crash would hold it again.
        assert!(!claimable(&s, q, now, |id| id == "b"));
        assert!(claimable(&s, q, now, |_| false));
    }
}
