//! The PriCheXy-Net protocol end to end: split by patient, train the
//! re-identification attacker and the classifier on original images,
//! pre-train the generator as identity, train it adversarially for each μ,
//! then re-train a fresh attacker on anonymized pairs and measure re-id and
//! classifier AUC (with bootstrap CIs) — also for the random elastic
//! baseline with the same bound. Writes `results.json` and `results.md`.
//!
//! Training and evaluation only, so it lives in `crate::train`; the
//! gateway runs only `crate::models::chest`.

use super::classifier::DenseNet;
use super::data::{split_by_patient, Dataset};
use super::elastic::random_field;
use super::metrics::{bootstrap_auc, bootstrap_mean_auc, Ci};
use super::siamese::Siamese;
use super::train::*;
use crate::models::chest::unet::UNet;
use crate::models::chest::{warp, ChestConfig, ChestDeformer};
use crate::routes::chest::geometry::{resample_square, upsample_field};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Everything the protocol can be told.
#[derive(Clone, Debug)]
pub struct ProtocolOpts {
    pub data: Vec<PathBuf>,
    pub out: PathBuf,
    pub size: usize,
    pub mus: Vec<f32>,
    /// The μ whose generator becomes `out/generator.safetensors`.
    pub default_mu: f32,
    pub base_width: usize,
    pub snn_width: usize,
    pub cls_growth: usize,
    pub cls_layers: usize,
    pub epochs_reid: usize,
    pub epochs_cls: usize,
    pub epochs_identity: usize,
    pub epochs_gen: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub test_frac: f64,
    pub max_per_source: Option<usize>,
    pub max_test_pairs: usize,
    pub bootstrap_reps: usize,
    pub elastic: bool,
    /// Cap on generator/identity steps per epoch (0: none).
    pub max_steps: usize,
    pub device: Device,
}

/// One line of the results table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub condition: String,
    pub mu: Option<f32>,
    /// Re-id AUC of an attacker trained on this condition's pairs.
    pub reid_auc: Option<Ci>,
    /// Re-id AUC of the original attacker (not re-trained) on this condition.
    pub reid_auc_original_attacker: Option<Ci>,
    /// Classifier (trained on originals) AUC on this condition's test images.
    pub classifier_auc: Option<Ci>,
    /// Mean |displacement| on the test images, in pixels at model size.
    pub mean_disp_px: Option<f64>,
    pub seconds: f64,
}

/// Counts and settings the model card quotes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub sources: Vec<String>,
    pub size: usize,
    pub train_patients: usize,
    pub train_images: usize,
    pub test_patients: usize,
    pub test_images: usize,
    pub test_pairs: usize,
    pub labelled_train: usize,
    pub labelled_test: usize,
    pub label_names: Vec<String>,
    pub settings: String,
    pub rows: Vec<Row>,
    pub total_seconds: f64,
}

/// Data, split and the nets trained on original images.
struct Context {
    o: ProtocolOpts,
    t: TrainOpts,
    orig: Bank,
    train_index: PatientIndex,
    test_pairs: Pairs,
    labels: HashMap<usize, Vec<f32>>,
    labelled_train: Vec<usize>,
    labelled_test: Vec<usize>,
    snn: Siamese,
    snn_vars: VarMap,
    cls: Option<(DenseNet, VarMap)>,
    report: Report,
}

fn vb(vars: &VarMap, dev: &Device) -> VarBuilder<'static> {
    VarBuilder::from_varmap(vars, DType::F32, dev)
}

impl Context {
    fn new(o: &ProtocolOpts) -> Result<Self> {
        let t0 = Instant::now();
        let ds = Dataset::load(&o.data, o.size, o.max_per_source)?;
        let split = split_by_patient(&ds.samples, o.test_frac, o.seed);
        let patients: Vec<String> = ds.samples.iter().map(|s| s.patient.clone()).collect();
        let train_index = PatientIndex::new(&patients, &split.train);
        let test_index = PatientIndex::new(&patients, &split.test);
        let test_pairs = test_index.eval_pairs(o.max_test_pairs, o.seed ^ 0x7e57);
        let labels: HashMap<usize, Vec<f32>> = ds
            .samples
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.labels.clone().map(|l| (i, l)))
            .collect();
        let labelled_train: Vec<usize> = split
            .train
            .iter()
            .copied()
            .filter(|i| labels.contains_key(i))
            .collect();
        let labelled_test: Vec<usize> = split
            .test
            .iter()
            .copied()
            .filter(|i| labels.contains_key(i))
            .collect();
        let orig = Bank {
            size: o.size,
            images: (0..ds.samples.len()).map(|i| ds.image(i)).collect(),
        };
        eprintln!(
            "chest data: {} images loaded in {:.1}s; train {} patients / {} images, test {} patients / {} images, {} test pairs",
            orig.images.len(),
            t0.elapsed().as_secs_f64(),
            train_index.patients(),
            train_index.images(),
            test_index.patients(),
            test_index.images(),
            test_pairs.same.len()
        );
        let t = TrainOpts {
            batch: o.batch,
            lr: o.lr,
            seed: o.seed,
            device: o.device.clone(),
            max_steps: o.max_steps,
        };
        let snn_vars = VarMap::new();
        let snn = Siamese::new(vb(&snn_vars, &o.device), o.snn_width)?;
        let cls = if labelled_train.is_empty() {
            None
        } else {
            let v = VarMap::new();
            let n = ds.label_names.len();
            Some((
                DenseNet::new(vb(&v, &o.device), n, o.cls_growth, o.cls_layers)?,
                v,
            ))
        };
        let report = Report {
            sources: ds.sources.clone(),
            size: o.size,
            train_patients: train_index.patients(),
            train_images: train_index.images(),
            test_patients: test_index.patients(),
            test_images: test_index.images(),
            test_pairs: test_pairs.same.len(),
            labelled_train: labelled_train.len(),
            labelled_test: labelled_test.len(),
            label_names: ds.label_names.clone(),
            settings: settings_line(o),
            rows: vec![],
            total_seconds: 0.0,
        };
        Ok(Self {
            o: o.clone(),
            t,
            orig,
            train_index,
            test_pairs,
            labels,
            labelled_train,
            labelled_test,
            snn,
            snn_vars,
            cls,
            report,
        })
    }

    /// Train the attacker and the classifier on original images; row "original".
    fn baseline(&mut self) -> Result<()> {
        let t0 = Instant::now();
        train_reid(
            &self.snn,
            &self.snn_vars,
            &self.orig,
            &self.orig,
            &self.train_index,
            self.o.epochs_reid,
            &self.t,
            "re-id (original)",
        )?;
        if let Some((c, v)) = &self.cls {
            train_classifier(
                c,
                v,
                &self.orig,
                &self.labelled_train,
                &self.labels,
                self.o.epochs_cls,
                &self.t,
            )?;
        }
        let reid = self.reid_ci(&self.snn, &self.orig)?;
        let cls = self.cls_ci(&self.orig)?;
        self.push(Row {
            condition: "original (no anonymization)".into(),
            mu: None,
            reid_auc: reid,
            reid_auc_original_attacker: reid,
            classifier_auc: cls,
            mean_disp_px: Some(0.0),
            seconds: t0.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    fn push(&mut self, row: Row) {
        eprintln!(
            "{}: re-id AUC {} (original attacker {}), classifier AUC {}",
            row.condition,
            fmt_ci(&row.reid_auc),
            fmt_ci(&row.reid_auc_original_attacker),
            fmt_ci(&row.classifier_auc)
        );
        self.report.rows.push(row);
    }

    /// Re-id AUC on the fixed test pairs (left image from `left`, right original).
    fn reid_ci(&self, snn: &Siamese, left: &Bank) -> Result<Option<Ci>> {
        let s = score_pairs(snn, left, &self.orig, &self.test_pairs, &self.t)?;
        Ok(bootstrap_auc(
            &s,
            &self.test_pairs.same,
            self.o.bootstrap_reps,
            self.o.seed,
        ))
    }

    /// Classifier (trained on originals) AUC on the labelled test images of `bank`.
    fn cls_ci(&self, bank: &Bank) -> Result<Option<Ci>> {
        let Some((c, _)) = &self.cls else {
            return Ok(None);
        };
        if self.labelled_test.is_empty() {
            return Ok(None);
        }
        let s = score_classifier(c, bank, &self.labelled_test, &self.t)?;
        let l: Vec<Vec<bool>> = self
            .labelled_test
            .iter()
            .map(|i| self.labels[i].iter().map(|&v| v > 0.5).collect())
            .collect();
        Ok(bootstrap_mean_auc(
            &s,
            &l,
            self.o.bootstrap_reps,
            self.o.seed,
        ))
    }

    /// The privacy/utility evaluation of one anonymized bank.
    fn evaluate(
        &mut self,
        condition: String,
        mu: f32,
        anon: &Bank,
        disp_px: f64,
        t0: Instant,
    ) -> Result<()> {
        let fresh_vars = VarMap::new();
        let fresh = Siamese::new(vb(&fresh_vars, &self.o.device), self.o.snn_width)?;
        train_reid(
            &fresh,
            &fresh_vars,
            anon,
            &self.orig,
            &self.train_index,
            self.o.epochs_reid,
            &self.t,
            "re-id (re-trained)",
        )?;
        let row = Row {
            condition,
            mu: Some(mu),
            reid_auc: self.reid_ci(&fresh, anon)?,
            reid_auc_original_attacker: self.reid_ci(&self.snn, anon)?,
            classifier_auc: self.cls_ci(anon)?,
            mean_disp_px: Some(disp_px),
            seconds: t0.elapsed().as_secs_f64(),
        };
        self.push(row);
        Ok(())
    }

    /// Anonymize every image by warping it along the displacement field
    /// `field(images, indices)` gives its batch; also the mean displacement
    /// in pixels.
    fn apply_field<F>(&self, field: F) -> Result<(Bank, f64)>
    where
        F: Fn(&Tensor, &[usize]) -> candle_core::Result<Tensor>,
    {
        let px = (self.o.size as f64 - 1.0) / 2.0;
        let sum = std::cell::Cell::new(0f64);
        let bank = anonymize_bank(&self.orig, &self.t, |x, idx| {
            let d = field(x, idx)?;
            sum.set(
                sum.get()
                    + d.abs()?
                        .mean_all()?
                        .to_dtype(DType::F64)?
                        .to_scalar::<f64>()?
                        * x.dim(0)? as f64,
            );
            warp::warp(x, &d)
        })?;
        Ok((bank, sum.get() / self.orig.images.len() as f64 * px))
    }

    /// Anonymize every image with a trained generator.
    fn apply_generator(&self, g: &UNet, mu: f32) -> Result<(Bank, f64)> {
        self.apply_field(|x, _| warp::displacement(&g.forward_t(x, false)?, mu as f64))
    }

    /// Anonymize every image with a loaded model of any size: each image is
    /// shrunk (or grown) to the model's grid and its field brought back, as
    /// the gateway's route does at native size.
    fn apply_deformer(&self, m: &ChestDeformer) -> Result<(Bank, f64)> {
        let (s, ms) = (self.o.size, m.input_size());
        self.apply_field(|x, _| {
            let n = x.dim(0)?;
            let all = x.flatten_all()?.to_vec1::<f32>()?;
            let mut v = Vec::with_capacity(n * 2 * s * s);
            for img in all.chunks_exact(s * s) {
                let small = resample_square(img, s, s, ms);
                let d = m
                    .displacement(&small)
                    .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
                for c in &d {
                    v.extend(upsample_field(c, ms, s, s));
                }
            }
            Tensor::from_vec(v, (n, 2, s, s), x.device())
        })
    }

    /// Anonymize every image with its own seeded random elastic field.
    fn apply_elastic(&self, mu: f32) -> Result<(Bank, f64)> {
        self.apply_field(|_, idx| {
            let fields = idx
                .iter()
                .map(|&i| {
                    random_field(
                        self.o.size,
                        mu as f64,
                        self.o.seed ^ (i as u64).wrapping_mul(0x9e37_79b9),
                        &self.o.device,
                    )
                })
                .collect::<candle_core::Result<Vec<Tensor>>>()?;
            Tensor::cat(&fields, 0)
        })
    }

    fn finish(mut self, t0: Instant) -> Result<Report> {
        self.report.total_seconds = t0.elapsed().as_secs_f64();
        std::fs::create_dir_all(&self.o.out)?;
        std::fs::write(
            self.o.out.join("results.json"),
            serde_json::to_string_pretty(&self.report)? + "\n",
        )?;
        std::fs::write(self.o.out.join("results.md"), markdown(&self.report))?;
        eprintln!("results: {}", self.o.out.join("results.md").display());
        Ok(self.report)
    }
}

fn fmt_ci(c: &Option<Ci>) -> String {
    c.map(|c| c.to_string()).unwrap_or_else(|| "n/a".into())
}

fn settings_line(o: &ProtocolOpts) -> String {
    format!(
        "size {s}, U-Net width {bw}, ResNet-18 width {sw}, DenseNet growth {g}×{l} layers/block, batch {b}, Adam lr {lr}, \
         epochs re-id {er} / classifier {ec} / identity {ei} / generator {eg} (max steps/epoch {ms}), seed {seed}, test fraction {tf}, bootstrap {br}",
        s = o.size,
        bw = o.base_width,
        sw = o.snn_width,
        g = o.cls_growth,
        l = o.cls_layers,
        b = o.batch,
        lr = o.lr,
        er = o.epochs_reid,
        ec = o.epochs_cls,
        ei = o.epochs_identity,
        eg = o.epochs_gen,
        ms = o.max_steps,
        seed = o.seed,
        tf = o.test_frac,
        br = o.bootstrap_reps
    )
}

/// The results as a markdown table (what MODEL.md quotes).
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Data: {}. Model size {}². Train {} patients / {} images; test {} patients / {} images; {} test pairs (half same-patient); labelled train/test images {} / {} ({}).\n\n",
        r.sources.join(", "),
        r.size,
        r.train_patients,
        r.train_images,
        r.test_patients,
        r.test_images,
        r.test_pairs,
        r.labelled_train,
        r.labelled_test,
        r.label_names.join(", ")
    ));
    s.push_str(&format!("Settings: {}.\n\n", r.settings));
    s.push_str("| condition | μ | mean \\|d\\| (px) | re-id AUC, re-trained attacker [95% CI] | re-id AUC, original attacker | classifier AUC [95% CI] | time (s) |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.0} |\n",
            row.condition,
            row.mu.map(|m| m.to_string()).unwrap_or_else(|| "–".into()),
            row.mean_disp_px
                .map(|d| format!("{d:.3}"))
                .unwrap_or_default(),
            fmt_ci(&row.reid_auc),
            fmt_ci(&row.reid_auc_original_attacker),
            fmt_ci(&row.classifier_auc),
            row.seconds
        ));
    }
    s.push_str(&format!("\nTotal time {:.0} s.\n", r.total_seconds));
    s
}

fn write_generator(
    dir: &std::path::Path,
    vars: &VarMap,
    o: &ProtocolOpts,
    mu: f32,
    report: &Report,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    vars.save(dir.join("generator.safetensors"))?;
    let mut cfg = ChestConfig::new(mu, o.size, o.base_width);
    cfg.trained_on = report.sources.clone();
    cfg.notes = format!("deidgate train chest; {}", report.settings);
    cfg.write(&dir.join("config.json"))
}

/// `deidgate train chest`: the whole protocol; writes one generator per μ
/// under `out/mu_<μ>/`, the default μ's also at `out/`.
pub fn train(o: &ProtocolOpts) -> Result<Report> {
    let t_all = Instant::now();
    let mut ctx = Context::new(o)?;
    ctx.baseline()?;
    // Identity pre-training once; every μ starts from a copy.
    let g_vars = VarMap::new();
    let g = UNet::new(vb(&g_vars, &o.device), o.base_width)?;
    let train_idx: Vec<usize> = ctx.train_index.anchors();
    pretrain_identity(
        &g,
        &g_vars,
        &ctx.orig,
        &train_idx,
        o.epochs_identity,
        &ctx.t,
    )?;
    drop(g);
    for &mu in &o.mus {
        let t0 = Instant::now();
        let (g, gv) = clone_vars(&g_vars, &o.device, |vb| UNet::new(vb, o.base_width))?;
        let (snn, sv) = clone_vars(&ctx.snn_vars, &o.device, |vb| Siamese::new(vb, o.snn_width))?;
        let cls = match &ctx.cls {
            Some((_, v)) => Some(clone_vars(v, &o.device, |vb| {
                DenseNet::new(vb, ctx.report.label_names.len(), o.cls_growth, o.cls_layers)
            })?),
            None => None,
        };
        let adv = Adversaries {
            snn: &snn,
            snn_vars: &sv,
            cls: cls.as_ref().map(|(c, v)| (c, v)),
        };
        train_generator(
            &g,
            &gv,
            &adv,
            &ctx.orig,
            &ctx.train_index,
            &ctx.labelled_train,
            &ctx.labels,
            mu as f64,
            o.epochs_gen,
            &ctx.t,
        )?;
        write_generator(&o.out.join(format!("mu_{mu}")), &gv, o, mu, &ctx.report)?;
        if mu == o.default_mu {
            write_generator(&o.out, &gv, o, mu, &ctx.report)?;
        }
        let (bank, px) = ctx.apply_generator(&g, mu)?;
        ctx.evaluate("PriCheXy-Net (learned field)".into(), mu, &bank, px, t0)?;
        ctx.finish_partial()?;
    }
    if o.elastic {
        for &mu in &o.mus {
            let t0 = Instant::now();
            let (bank, px) = ctx.apply_elastic(mu)?;
            ctx.evaluate("random elastic (same bound)".into(), mu, &bank, px, t0)?;
            ctx.finish_partial()?;
        }
    }
    ctx.finish(t_all)
}

impl Context {
    /// Write the table so far (a long run leaves usable results behind).
    fn finish_partial(&self) -> Result<()> {
        std::fs::create_dir_all(&self.o.out)?;
        std::fs::write(self.o.out.join("results.md"), markdown(&self.report))?;
        Ok(())
    }
}

/// `deidgate eval chest`: the same evaluation for an existing model folder
/// (its μ and size), with the elastic baseline at that μ.
pub fn eval(o: &ProtocolOpts, model: &std::path::Path) -> Result<Report> {
    let t_all = Instant::now();
    let cfg = ChestConfig::read(&model.join("config.json"))?;
    let mut o = o.clone();
    o.size = cfg.input_size;
    o.base_width = cfg.base_width;
    let deformer = ChestDeformer::load_on(model, &o.device)?;
    let mut ctx = Context::new(&o)?;
    ctx.baseline()?;
    let t0 = Instant::now();
    let (bank, px) = ctx.apply_generator(&deformer.unet()?, cfg.mu)?;
    ctx.evaluate(
        format!("PriCheXy-Net ({})", model.display()),
        cfg.mu,
        &bank,
        px,
        t0,
    )?;
    if o.elastic {
        let t0 = Instant::now();
        let (bank, px) = ctx.apply_elastic(cfg.mu)?;
        ctx.evaluate("random elastic (same bound)".into(), cfg.mu, &bank, px, t0)?;
    }
    ctx.finish(t_all)
}

/// `deidgate eval chest --compare A --compare B …`: several models judged at
/// one size (`o.size`) on the same split by the same protocol, each through
/// its own grid, then the random elastic baseline at each of `elastic_mus`.
pub fn compare(o: &ProtocolOpts, models: &[PathBuf], elastic_mus: &[f32]) -> Result<Report> {
    let t_all = Instant::now();
    let mut ctx = Context::new(o)?;
    ctx.baseline()?;
    for model in models {
        let m = ChestDeformer::load_on(model, &o.device)?;
        let t0 = Instant::now();
        let (bank, px) = ctx.apply_deformer(&m)?;
        let c = m.config();
        let name = format!(
            "learned field, {}² width {} ({})",
            c.input_size,
            c.base_width,
            model.display()
        );
        ctx.evaluate(name, c.mu, &bank, px, t0)?;
        ctx.finish_partial()?;
    }
    for &mu in elastic_mus {
        let t0 = Instant::now();
        let (bank, px) = ctx.apply_elastic(mu)?;
        ctx.evaluate("random elastic (same bound)".into(), mu, &bank, px, t0)?;
        ctx.finish_partial()?;
    }
    ctx.finish(t_all)
}
