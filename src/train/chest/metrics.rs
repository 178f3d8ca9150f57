//! ROC AUC and percentile-bootstrap confidence intervals, the figures the
//! model card reports for re-identification and classification.
//!
//! Evaluation only, so it lives in `crate::train`.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

/// Area under the ROC curve via the Mann-Whitney U statistic (ties count
/// half). None when one of the classes is empty.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over runs of equal scores.
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// Macro-average AUC over outputs (`scores[i][k]`, `labels[i][k]`),
/// skipping outputs with a single class present.
pub fn mean_auc(scores: &[Vec<f32>], labels: &[Vec<bool>]) -> Option<f64> {
    let k = scores.first()?.len();
    let aucs: Vec<f64> = (0..k)
        .filter_map(|j| {
            let s: Vec<f32> = scores.iter().map(|r| r[j]).collect();
            let l: Vec<bool> = labels.iter().map(|r| r[j]).collect();
            roc_auc(&s, &l)
        })
        .collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

/// An AUC with its 95 % percentile-bootstrap interval.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ci {
    pub auc: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

impl std::fmt::Display for Ci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} [{:.3}, {:.3}]", self.auc, self.lo, self.hi)
    }
}

/// Bootstrap over items (pairs or images): resample with replacement
/// `reps` times, recompute `stat`, take the 2.5/97.5 percentiles.
/// Replicates where the statistic is undefined are skipped.
pub fn bootstrap<F: Fn(&[usize]) -> Option<f64>>(
    n: usize,
    reps: usize,
    seed: u64,
    stat: F,
) -> Option<Ci> {
    let all: Vec<usize> = (0..n).collect();
    let auc = stat(&all)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut vals: Vec<f64> = (0..reps)
        .filter_map(|_| {
            let s: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
            stat(&s)
        })
        .collect();
    if vals.is_empty() {
        return None;
    }
    vals.sort_by(f64::total_cmp);
    let q = |p: f64| vals[((p * (vals.len() - 1) as f64).round() as usize).min(vals.len() - 1)];
    Some(Ci {
        auc,
        lo: q(0.025),
        hi: q(0.975),
        n,
    })
}

/// Bootstrap CI of a binary AUC.
pub fn bootstrap_auc(scores: &[f32], labels: &[bool], reps: usize, seed: u64) -> Option<Ci> {
    bootstrap(scores.len(), reps, seed, |idx| {
        let s: Vec<f32> = idx.iter().map(|&i| scores[i]).collect();
        let l: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
        roc_auc(&s, &l)
    })
}

/// Bootstrap CI of a macro-average multi-label AUC (resampling images).
pub fn bootstrap_mean_auc(
    scores: &[Vec<f32>],
    labels: &[Vec<bool>],
    reps: usize,
    seed: u64,
) -> Option<Ci> {
    bootstrap(scores.len(), reps, seed, |idx| {
        let s: Vec<Vec<f32>> = idx.iter().map(|&i| scores[i].clone()).collect();
        let l: Vec<Vec<bool>> = idx.iter().map(|&i| labels[i].clone()).collect();
        mean_auc(&s, &l)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_hand_values() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[1.0, 2.0], &[false, true]), Some(1.0));
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.7], &[true, true]), None);
    }

    #[test]
    fn auc_matches_pairwise_count() {
        let s = [0.3f32, 0.3, 0.9, 0.1, 0.5, 0.5, 0.2];
        let l = [true, false, true, false, false, true, true];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for i in 0..s.len() {
            for j in 0..s.len() {
                if l[i] && !l[j] {
                    pairs += 1.0;
                    wins += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&s, &l).unwrap() - wins / pairs).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_interval_brackets_estimate_and_is_seeded() {
        let s: Vec<f32> = (0..200)
            .map(|i| ((i * 37) % 101) as f32 + if i % 2 == 0 { 30.0 } else { 0.0 })
            .collect();
        let l: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
        let a = bootstrap_auc(&s, &l, 1000, 1).unwrap();
        let b = bootstrap_auc(&s, &l, 1000, 1).unwrap();
        assert!(a.lo <= a.auc && a.auc <= a.hi && a.hi - a.lo > 0.01);
        assert_eq!((a.lo, a.hi), (b.lo, b.hi));
    }
}
