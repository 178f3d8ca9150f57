//! Training loops of the PriCheXy-Net protocol: the re-identification
//! siamese network, the abnormality classifier, the identity pre-training
//! of the generator and the adversarial generator training. All loops are
//! device-generic (tensors live on `TrainOpts::device`).
//!
//! Training only, so it lives in `crate::train`; the generator it trains
//! is `crate::models::chest::unet`.

use super::classifier::DenseNet;
use super::siamese::Siamese;
use crate::models::chest::unet::UNet;
use crate::models::chest::warp;
use crate::train::ops::losses::{bce_with_logits, softplus};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use std::collections::HashMap;

/// Hyper-parameters shared by the loops.
#[derive(Clone, Debug)]
pub struct TrainOpts {
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub device: Device,
    /// Cap on steps per epoch of the generator loops (0: whole epoch), so a
    /// slow CPU can run the protocol end to end.
    pub max_steps: usize,
}

impl TrainOpts {
    fn cap(&self, steps: usize) -> usize {
        if self.max_steps == 0 {
            steps
        } else {
            steps.min(self.max_steps)
        }
    }
}

/// Adam (AdamW with zero weight decay; BatchNorm running statistics live in
/// the same VarMap and get zero gradients, so Adam leaves them alone).
pub fn adam(vars: &VarMap, lr: f64) -> Result<AdamW> {
    AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
}

/// Every image of the data set at model size, f32 in [0, 1], indexed like
/// the data set: originals, or their anonymized versions.
#[derive(Clone)]
pub struct Bank {
    pub size: usize,
    pub images: Vec<Vec<f32>>,
}

impl Bank {
    /// Images `idx` as an N×1×S×S tensor.
    pub fn batch(&self, idx: &[usize], dev: &Device) -> Result<Tensor> {
        let s = self.size;
        let mut v = Vec::with_capacity(idx.len() * s * s);
        for &i in idx {
            v.extend_from_slice(&self.images[i]);
        }
        Tensor::from_vec(v, (idx.len(), 1, s, s), dev)
    }
}

/// Which images of one split belong to the same patient.
pub struct PatientIndex {
    groups: Vec<Vec<usize>>,
    group_of: HashMap<usize, usize>,
    all: Vec<usize>,
}

/// A fixed list of image pairs with "same patient" truth.
#[derive(Clone, Debug, Default)]
pub struct Pairs {
    pub a: Vec<usize>,
    pub b: Vec<usize>,
    pub same: Vec<bool>,
}

impl PatientIndex {
    pub fn new(patients: &[String], idx: &[usize]) -> Self {
        let mut by: HashMap<&str, Vec<usize>> = HashMap::new();
        for &i in idx {
            by.entry(patients[i].as_str()).or_default().push(i);
        }
        let mut groups: Vec<Vec<usize>> = by.into_values().collect();
        groups.iter_mut().for_each(|g| g.sort_unstable());
        groups.sort();
        let mut group_of = HashMap::new();
        for (g, imgs) in groups.iter().enumerate() {
            for &i in imgs {
                group_of.insert(i, g);
            }
        }
        Self {
            groups,
            group_of,
            all: idx.to_vec(),
        }
    }

    pub fn patients(&self) -> usize {
        self.groups.len()
    }

    pub fn images(&self) -> usize {
        self.all.len()
    }

    /// Images whose patient has at least one other image (usable as anchors).
    pub fn anchors(&self) -> Vec<usize> {
        self.groups
            .iter()
            .filter(|g| g.len() > 1)
            .flatten()
            .copied()
            .collect()
    }

    fn positive(&self, i: usize, rng: &mut StdRng) -> usize {
        let g = &self.groups[self.group_of[&i]];
        loop {
            let j = g[rng.gen_range(0..g.len())];
            if j != i {
                return j;
            }
        }
    }

    fn negative(&self, i: usize, rng: &mut StdRng) -> usize {
        let gi = self.group_of[&i];
        loop {
            let j = self.all[rng.gen_range(0..self.all.len())];
            if self.group_of[&j] != gi {
                return j;
            }
        }
    }

    /// A same-patient partner for each of `anchors`, then a different-patient
    /// one for each (drawn in that order from `rng`).
    fn partners(&self, anchors: &[usize], rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
        let pos = anchors.iter().map(|&i| self.positive(i, rng)).collect();
        let neg = anchors.iter().map(|&i| self.negative(i, rng)).collect();
        (pos, neg)
    }

    /// Evaluation pairs: every same-patient pair (capped at `max_pos`,
    /// sampled when over), and as many random different-patient pairs.
    pub fn eval_pairs(&self, max_pos: usize, seed: u64) -> Pairs {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pos = vec![];
        for g in &self.groups {
            for (k, &i) in g.iter().enumerate() {
                for &j in &g[k + 1..] {
                    pos.push((i, j));
                }
            }
        }
        if pos.len() > max_pos {
            pos.shuffle(&mut rng);
            pos.truncate(max_pos);
        }
        let mut p = Pairs::default();
        for &(i, j) in &pos {
            p.a.push(i);
            p.b.push(j);
            p.same.push(true);
        }
        for &(i, _) in &pos {
            p.a.push(i);
            p.b.push(self.negative(i, &mut rng));
            p.same.push(false);
        }
        p
    }
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// One line per epoch on stderr, for logs where the bar is hidden.
fn epoch_line(what: &str, epoch: usize, epochs: usize, loss: f64, secs: f64) {
    eprintln!(
        "{what}: epoch {}/{epochs} loss {loss:.4} ({secs:.1}s)",
        epoch + 1
    );
}

/// Re-identification targets for `n` same-patient pairs followed by `n`
/// different-patient pairs: n ones, then n zeros.
fn same_then_different(n: usize, dev: &Device) -> Result<Tensor> {
    let mut y = vec![1f32; n];
    y.extend(vec![0f32; n]);
    Tensor::from_vec(y, 2 * n, dev)
}

/// How a training loop reports its epochs: a progress bar
/// `"{bar} {e + 1}/{epochs}"` showing the running mean loss as `metric` with
/// `prec` decimals, and an [`epoch_line`] `line` at the end of each epoch.
struct EpochLog<'a> {
    bar: &'a str,
    line: &'a str,
    metric: &'a str,
    prec: usize,
    epochs: usize,
}

impl EpochLog<'_> {
    /// Epoch `e`: `step` runs on each of the first `n` chunks (`size`
    /// indices each) of `order` and returns its loss.
    fn run(
        &self,
        e: usize,
        order: &[usize],
        size: usize,
        n: usize,
        mut step: impl FnMut(&[usize]) -> Result<Tensor>,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let pb = bar(n, &format!("{} {}/{}", self.bar, e + 1, self.epochs));
        let (mut total, mut steps) = (0.0, 0);
        for chunk in order.chunks(size).take(n) {
            let loss = step(chunk)?;
            total += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            steps += 1;
            let mean = total / steps as f64;
            pb.set_message(format!("{} {:.*}", self.metric, self.prec, mean));
            pb.inc(1);
        }
        pb.finish_and_clear();
        epoch_line(
            self.line,
            e,
            self.epochs,
            total / steps.max(1) as f64,
            t0.elapsed().as_secs_f64(),
        );
        Ok(())
    }
}

/// Train the siamese network on pairs (left[a], right[b]): for each anchor
/// one same-patient and one different-patient partner per epoch.
#[allow(clippy::too_many_arguments)]
pub fn train_reid(
    snn: &Siamese,
    vars: &VarMap,
    left: &Bank,
    right: &Bank,
    index: &PatientIndex,
    epochs: usize,
    o: &TrainOpts,
    what: &str,
) -> Result<()> {
    let mut opt = adam(vars, o.lr)?;
    let mut rng = StdRng::seed_from_u64(o.seed);
    let mut anchors = index.anchors();
    let half = (o.batch / 2).max(1);
    let log = EpochLog {
        bar: what,
        line: what,
        metric: "loss",
        prec: 4,
        epochs,
    };
    for e in 0..epochs {
        anchors.shuffle(&mut rng);
        let n = anchors.len().div_ceil(half);
        let step = |chunk: &[usize]| -> Result<Tensor> {
            let (pos, neg) = index.partners(chunk, &mut rng);
            let a = left.batch(chunk, &o.device)?;
            let a = Tensor::cat(&[&a, &a], 0)?;
            let b = Tensor::cat(
                &[right.batch(&pos, &o.device)?, right.batch(&neg, &o.device)?],
                0,
            )?;
            let y = same_then_different(chunk.len(), &o.device)?;
            let loss = bce_with_logits(&snn.forward_t(&a, &b, true)?, &y)?;
            opt.backward_step(&loss)?;
            Ok(loss)
        };
        log.run(e, &anchors, half, n, step)?;
    }
    Ok(())
}

/// "Same patient" logits of fixed pairs (inference mode).
pub fn score_pairs(
    snn: &Siamese,
    left: &Bank,
    right: &Bank,
    pairs: &Pairs,
    o: &TrainOpts,
) -> Result<Vec<f32>> {
    let mut out = vec![];
    for k in (0..pairs.a.len()).step_by(o.batch.max(1)) {
        let end = (k + o.batch.max(1)).min(pairs.a.len());
        let a = left.batch(&pairs.a[k..end], &o.device)?;
        let b = right.batch(&pairs.b[k..end], &o.device)?;
        out.extend(snn.forward_t(&a, &b, false)?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Labels of images `idx` as an N×K tensor.
fn label_batch(labels: &HashMap<usize, Vec<f32>>, idx: &[usize], dev: &Device) -> Result<Tensor> {
    let k = labels[&idx[0]].len();
    let v: Vec<f32> = idx.iter().flat_map(|i| labels[i].iter().copied()).collect();
    Tensor::from_vec(v, (idx.len(), k), dev)
}

/// Train the abnormality classifier on `idx` (all labelled) of `bank`.
pub fn train_classifier(
    cls: &DenseNet,
    vars: &VarMap,
    bank: &Bank,
    idx: &[usize],
    labels: &HashMap<usize, Vec<f32>>,
    epochs: usize,
    o: &TrainOpts,
) -> Result<()> {
    let mut opt = adam(vars, o.lr)?;
    let mut rng = StdRng::seed_from_u64(o.seed ^ 0xc1a5);
    let mut order = idx.to_vec();
    let log = EpochLog {
        bar: "classifier",
        line: "classifier",
        metric: "loss",
        prec: 4,
        epochs,
    };
    for e in 0..epochs {
        order.shuffle(&mut rng);
        let n = order.len().div_ceil(o.batch);
        let step = |chunk: &[usize]| -> Result<Tensor> {
            let x = bank.batch(chunk, &o.device)?;
            let y = label_batch(labels, chunk, &o.device)?;
            let loss = bce_with_logits(&cls.forward_t(&x, true)?, &y)?;
            opt.backward_step(&loss)?;
            Ok(loss)
        };
        log.run(e, &order, o.batch, n, step)?;
    }
    Ok(())
}

/// Classifier probabilities for images `idx` of `bank`.
pub fn score_classifier(
    cls: &DenseNet,
    bank: &Bank,
    idx: &[usize],
    o: &TrainOpts,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![];
    for chunk in idx.chunks(o.batch.max(1)) {
        let p = candle_nn::ops::sigmoid(&cls.forward_t(&bank.batch(chunk, &o.device)?, false)?)?;
        out.extend(p.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Pre-train the generator as the identity map: drive its tanh output (the
/// un-scaled displacement) to zero, which makes x̃ = x for every μ. Equivalent
/// to the paper's MSE(x̃, x) objective at its optimum, but with gradients that
/// do not vanish as μ gets small.
pub fn pretrain_identity(
    g: &UNet,
    vars: &VarMap,
    bank: &Bank,
    idx: &[usize],
    epochs: usize,
    o: &TrainOpts,
) -> Result<()> {
    let mut opt = adam(vars, o.lr * 10.0)?;
    let mut rng = StdRng::seed_from_u64(o.seed ^ 0x1d);
    let mut order = idx.to_vec();
    let log = EpochLog {
        bar: "identity",
        line: "identity pre-training",
        metric: "mse",
        prec: 5,
        epochs,
    };
    for e in 0..epochs {
        order.shuffle(&mut rng);
        let n = o.cap(order.len().div_ceil(o.batch));
        let step = |chunk: &[usize]| -> Result<Tensor> {
            let t = g.forward_t(&bank.batch(chunk, &o.device)?, true)?;
            let loss = t.sqr()?.mean_all()?;
            opt.backward_step(&loss)?;
            Ok(loss)
        };
        log.run(e, &order, o.batch, n, step)?;
    }
    Ok(())
}

/// The nets the generator is trained against (both keep learning).
pub struct Adversaries<'a> {
    pub snn: &'a Siamese,
    pub snn_vars: &'a VarMap,
    pub cls: Option<(&'a DenseNet, &'a VarMap)>,
}

/// Adversarial generator training. Generator loss per step:
/// BCE(classifier(x̃_l), y_l) + mean(softplus(SNN(x̃_a, x_p))) — the second
/// term pushes each anonymized image away from another image of the same
/// patient. Then the SNN learns re-identification on (x̃_a, x_p | x_n) and the
/// classifier learns on x̃_l. `labelled` are training images with labels
/// (may be empty: then the classifier term is dropped).
#[allow(clippy::too_many_arguments)]
pub fn train_generator(
    g: &UNet,
    g_vars: &VarMap,
    adv: &Adversaries,
    bank: &Bank,
    index: &PatientIndex,
    labelled: &[usize],
    labels: &HashMap<usize, Vec<f32>>,
    mu: f64,
    epochs: usize,
    o: &TrainOpts,
) -> Result<()> {
    let mut g_opt = adam(g_vars, o.lr)?;
    let mut s_opt = adam(adv.snn_vars, o.lr)?;
    let mut c_opt = match adv.cls {
        Some((_, v)) => Some(adam(v, o.lr)?),
        None => None,
    };
    let mut rng = StdRng::seed_from_u64(o.seed ^ 0x9e4);
    let mut anchors = index.anchors();
    let half = (o.batch / 2).max(1);
    let dev = &o.device;
    let what = format!("generator μ={mu}");
    let log = EpochLog {
        bar: &what,
        line: &what,
        metric: "loss",
        prec: 4,
        epochs,
    };
    for e in 0..epochs {
        anchors.shuffle(&mut rng);
        let n = o.cap(anchors.len().div_ceil(half));
        let step = |chunk: &[usize]| -> Result<Tensor> {
            let na = chunk.len();
            let (pos, neg) = index.partners(chunk, &mut rng);
            let lab: Vec<usize> = if labelled.is_empty() || adv.cls.is_none() {
                vec![]
            } else {
                (0..half)
                    .map(|_| labelled[rng.gen_range(0..labelled.len())])
                    .collect()
            };
            let mut all = chunk.to_vec();
            all.extend(&lab);
            let x = bank.batch(&all, dev)?;
            let d = warp::displacement(&g.forward_t(&x, true)?, mu)?;
            let xw = warp::warp(&x, &d)?;
            let xa = xw.narrow(0, 0, na)?;
            let xp = bank.batch(&pos, dev)?;
            let mut loss = softplus(&adv.snn.forward_t(&xa, &xp, true)?)?.mean_all()?;
            let cls_in = if lab.is_empty() {
                None
            } else {
                Some((
                    xw.narrow(0, na, lab.len())?,
                    label_batch(labels, &lab, dev)?,
                ))
            };
            if let (Some((c, _)), Some((xl, y))) = (adv.cls, &cls_in) {
                loss = (loss + bce_with_logits(&c.forward_t(xl, true)?, y)?)?;
            }
            g_opt.backward_step(&loss)?;
            // The attacker keeps learning to re-identify anonymized images.
            let xa = xa.detach();
            let a2 = Tensor::cat(&[&xa, &xa], 0)?;
            let b2 = Tensor::cat(&[xp, bank.batch(&neg, dev)?], 0)?;
            let y = same_then_different(na, dev)?;
            s_opt.backward_step(&bce_with_logits(&adv.snn.forward_t(&a2, &b2, true)?, &y)?)?;
            // The classifier keeps learning on anonymized images.
            if let (Some((c, _)), Some(opt), Some((xl, yl))) = (adv.cls, c_opt.as_mut(), &cls_in) {
                opt.backward_step(&bce_with_logits(&c.forward_t(&xl.detach(), true)?, yl)?)?;
            }
            Ok(loss)
        };
        log.run(e, &anchors, half, n, step)?;
    }
    Ok(())
}

/// Apply `f` (a batch anonymizer taking the images and their indices) to
/// every image of `bank`.
pub fn anonymize_bank<F>(bank: &Bank, o: &TrainOpts, f: F) -> Result<Bank>
where
    F: Fn(&Tensor, &[usize]) -> Result<Tensor>,
{
    let idx: Vec<usize> = (0..bank.images.len()).collect();
    let pb = bar(idx.len(), "anonymizing");
    let mut images = Vec::with_capacity(idx.len());
    for chunk in idx.chunks(o.batch.max(1)) {
        let y = f(&bank.batch(chunk, &o.device)?, chunk)?;
        for k in 0..chunk.len() {
            images.push(y.get(k)?.flatten_all()?.to_vec1::<f32>()?);
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(Bank {
        size: bank.size,
        images,
    })
}

/// Copy every variable of `src` into a fresh VarMap laid out by `build`
/// (a clone of a network's weights).
pub fn clone_vars<T>(
    src: &VarMap,
    dev: &Device,
    build: impl Fn(candle_nn::VarBuilder) -> Result<T>,
) -> Result<(T, VarMap)> {
    let dst = VarMap::new();
    let net = build(candle_nn::VarBuilder::from_varmap(&dst, DType::F32, dev))?;
    let src_data = src
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned VarMap".into()))?;
    let dst_data = dst
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned VarMap".into()))?;
    for (name, var) in dst_data.iter() {
        let s = src_data
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("clone_vars: {name} missing")))?;
        var.set(s.as_tensor())?;
    }
    drop(dst_data);
    Ok((net, dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_pairs_are_balanced_and_truthful() {
        let patients: Vec<String> = ["a", "a", "a", "b", "b", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let idx: Vec<usize> = (0..6).collect();
        let pi = PatientIndex::new(&patients, &idx);
        assert_eq!(pi.patients(), 3);
        assert_eq!(pi.anchors().len(), 5);
        let p = pi.eval_pairs(100, 1);
        assert_eq!(p.same.iter().filter(|&&s| s).count(), 4); // 3 + 1 same-patient pairs
        assert_eq!(p.same.len(), 8);
        for k in 0..p.same.len() {
            assert_eq!(patients[p.a[k]] == patients[p.b[k]], p.same[k]);
            assert_ne!(p.a[k], p.b[k]);
        }
    }

    #[test]
    fn clone_vars_copies_weights() {
        let dev = Device::Cpu;
        let src = VarMap::new();
        let a = UNet::new(
            candle_nn::VarBuilder::from_varmap(&src, DType::F32, &dev),
            2,
        )
        .unwrap();
        let (b, _) = clone_vars(&src, &dev, |vb| UNet::new(vb, 2)).unwrap();
        let x = Tensor::rand(0f32, 1f32, (1, 1, 16, 16), &dev).unwrap();
        let d = crate::models::ops::tensor::max_abs_diff(
            &a.forward_t(&x, false).unwrap(),
            &b.forward_t(&x, false).unwrap(),
        );
        assert_eq!(d, 0.0);
    }
}
