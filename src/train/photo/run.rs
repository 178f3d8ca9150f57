//! `deidgate train photo` end to end: trains the learned path of the photo
//! route (the MedSem-style identity encoder and decoder; the semantics
//! encoder stays frozen) over a folder of face photographs, and writes
//! `config.json` + `{identity,semantics,decoder}.safetensors` for
//! `[photo] mode = "generate"`. Training only, so it lives in
//! `crate::train`; the command line is `crate::cli::train`.
//!
//! Prints counts and losses only: file names of patient photographs do not
//! belong in a terminal log.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{seq::SliceRandom, SeedableRng};

use super::dataset;
use super::train::{LossWeights, Trainer};
use crate::models::photo::medsem::{MedSem, MedSemConfig};
use crate::models::photo::Mtcnn;

/// What `deidgate train photo` is told.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// Folder of face photographs (png, jpg).
    pub data: PathBuf,
    /// Folder of medical-region masks: same file stem as the photo, png,
    /// white = medical region.
    pub masks: Option<PathBuf>,
    /// Where config.json and the weights are written.
    pub out: PathBuf,
    /// Side of the square face crop (multiple of 16).
    pub size: usize,
    pub epochs: usize,
    pub device: Device,
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// MTCNN weights used to crop faces; whole images when the file is
    /// missing.
    pub detector: PathBuf,
    /// A pretrained medical-semantics encoder to freeze instead of the
    /// seeded random one.
    pub semantics: Option<PathBuf>,
    pub weights: LossWeights,
    /// Seed of the batch order and of the initial weights.
    pub seed: u64,
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb
}

pub fn run(o: RunOpts) -> Result<()> {
    let device = o.device.clone();
    let _ = device.set_seed(o.seed);
    let mut cfg = MedSemConfig::with_size(o.size);
    cfg.validate()?;

    let detector = if o.detector.exists() {
        Some(Mtcnn::load(&o.detector, &candle_core::Device::Cpu)?)
    } else {
        eprintln!(
            "no MTCNN weights at {}: training on whole images (run scripts/fetch-weights.sh to crop faces)",
            o.detector.display()
        );
        None
    };
    let files = dataset::image_files(&o.data)?.len() as u64;
    let pb = bar(files, "loading {bar:30} {pos}/{len} photos");
    let data = dataset::load(
        &o.data,
        o.masks.as_deref(),
        o.size,
        detector.as_ref(),
        || pb.inc(1),
    )?;
    pb.finish_and_clear();
    let r = &data.report;
    eprintln!(
        "{} photos, {} face crops ({} photos without a face), {} masks, crops from {}",
        r.images,
        r.faces,
        r.without_face,
        r.with_mask,
        if r.detector { "MTCNN" } else { "whole images" }
    );
    cfg.training = serde_json::json!({ "data": r });

    let mut model = MedSem::new(cfg, &device)?;
    if let Some(p) = &o.semantics {
        model.load_semantics(p)?;
    }
    let weights = o.weights;
    let mut trainer = Trainer::new(model, o.lr, weights)?;
    let batch = o.batch.max(1);
    let n = data.samples.len();
    let per_epoch = n.div_ceil(batch);
    let pb = bar(
        (o.epochs * per_epoch) as u64,
        "epoch {prefix} {bar:30} {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = Vec::new();
    let started = Instant::now();
    for epoch in 1..=o.epochs {
        pb.set_prefix(format!("{epoch}/{}", o.epochs));
        order.shuffle(&mut rng);
        let mut sum = [0f64; 4];
        for idx in order.chunks(batch) {
            let b = data.batch(idx, &device)?;
            let l = trainer.step(&b)?;
            let k = idx.len() as f64;
            for (s, v) in sum
                .iter_mut()
                .zip([l.total, l.reconstruction, l.medical, l.swap])
            {
                *s += v as f64 * k;
            }
            pb.set_message(format!("loss {:.4}", l.total));
            pb.inc(1);
        }
        let m = sum.map(|s| s / n as f64);
        // Printed even when the bar is hidden (not a terminal): the loss
        // curve is the run's record.
        pb.suspend(|| {
            eprintln!(
                "epoch {epoch:>3}: total {:.4}  reconstruction {:.4}  medical {:.4}  swap {:.4}",
                m[0], m[1], m[2], m[3]
            )
        });
        history.push(serde_json::json!({
            "epoch": epoch, "total": m[0], "reconstruction": m[1], "medical": m[2], "swap": m[3]
        }));
    }
    pb.finish_and_clear();
    let train_s = started.elapsed().as_secs_f64();

    // Forward time of one crop (semantics encoder + decoder), as generate
    // mode runs it.
    let model = &trainer.model;
    let one = data.batch(&[0], &device)?;
    let code = model.seeded_codes(1, 1)?;
    model.render(&one.crops, &code)?;
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        model
            .render(&one.crops, &code)?
            .to_device(&candle_core::Device::Cpu)?;
    }
    let forward_ms = t.elapsed().as_secs_f64() * 1000.0 / reps as f64;
    eprintln!(
        "trained {} epochs in {train_s:.1} s; forward {forward_ms:.1} ms per {}px crop",
        o.epochs, o.size
    );

    let mut model = trainer.model;
    model.cfg.training = serde_json::json!({
        "data": data.report,
        "epochs": o.epochs,
        "batch": batch,
        "lr": o.lr,
        "loss_weights": {
            "medical": weights.medical, "identity": weights.identity, "margin": weights.margin
        },
        "semantics": if o.semantics.is_some() { "pretrained" } else { "seeded random, frozen" },
        "history": history,
        "train_seconds": train_s,
        "forward_ms_per_crop": forward_ms,
    });
    model.save(&o.out)?;
    eprintln!("wrote {}", o.out.display());
    Ok(())
}
