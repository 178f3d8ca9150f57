//! `deidgate train photo`: trains the learned path of the photo route (the
//! MedSem-style identity encoder and decoder; the semantics encoder stays
//! frozen) over a folder of face photographs, and writes
//! `config.json` + `{identity,semantics,decoder}.safetensors` for
//! `[photo] mode = "generate"`.
//!
//! Prints counts and losses only: file names of patient photographs do not
//! belong in a terminal log.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{seq::SliceRandom, SeedableRng};

use crate::models::photo::medsem::{dataset, LossWeights, MedSem, MedSemConfig, Trainer};
use crate::models::photo::{Mtcnn, DEFAULT_WEIGHTS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainDevice {
    Cpu,
    Cuda,
}

/// Train the photo route's generate mode.
#[derive(Debug, Clone, Args)]
pub struct TrainPhotoArgs {
    /// Folder of face photographs (png, jpg).
    #[arg(long)]
    pub data: PathBuf,
    /// Folder of medical-region masks: same file stem as the photo, png,
    /// white = medical region.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Where config.json and the weights are written.
    #[arg(long, default_value = crate::models::photo::medsem::DEFAULT_DIR)]
    pub out: PathBuf,
    /// Side of the square face crop (multiple of 16).
    #[arg(long, default_value_t = 96)]
    pub size: usize,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, value_enum, default_value_t = TrainDevice::Cpu)]
    pub device: TrainDevice,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// MTCNN weights used to crop faces; whole images when the file is
    /// missing.
    #[arg(long, default_value = DEFAULT_WEIGHTS)]
    pub detector: PathBuf,
    /// A pretrained medical-semantics encoder (safetensors, `conv0..conv2`)
    /// to freeze instead of the seeded random one.
    #[arg(long)]
    pub semantics: Option<PathBuf>,
    /// Weight of the medical-region L1.
    #[arg(long, default_value_t = 10.0)]
    pub medical_weight: f64,
    /// Weight of the identity-swap hinge.
    #[arg(long, default_value_t = 1.0)]
    pub identity_weight: f64,
    /// Cosine margin of the identity-swap hinge.
    #[arg(long, default_value_t = 0.3)]
    pub margin: f64,
    /// Seed of the batch order and of the initial weights.
    #[arg(long, default_value_t = 0)]
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

pub fn run(args: TrainPhotoArgs) -> Result<()> {
    let device = match args.device {
        TrainDevice::Cpu => candle_core::Device::Cpu,
        TrainDevice::Cuda => candle_core::Device::new_cuda(0)
            .context("--device cuda (build with `--features cuda`)")?,
    };
    let _ = device.set_seed(args.seed);
    let mut cfg = MedSemConfig::with_size(args.size);
    cfg.validate()?;

    let detector = if args.detector.exists() {
        Some(Mtcnn::load(&args.detector, &candle_core::Device::Cpu)?)
    } else {
        eprintln!(
            "no MTCNN weights at {}: training on whole images (run scripts/fetch-weights.sh to crop faces)",
            args.detector.display()
        );
        None
    };
    let files = dataset::image_files(&args.data)?.len() as u64;
    let pb = bar(files, "loading {bar:30} {pos}/{len} photos");
    let data = dataset::load(
        &args.data,
        args.masks.as_deref(),
        args.size,
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
    if let Some(p) = &args.semantics {
        model.load_semantics(p)?;
    }
    let weights = LossWeights {
        medical: args.medical_weight,
        identity: args.identity_weight,
        margin: args.margin,
    };
    let mut trainer = Trainer::new(model, args.lr, weights)?;
    let batch = args.batch.max(1);
    let n = data.samples.len();
    let per_epoch = n.div_ceil(batch);
    let pb = bar(
        (args.epochs * per_epoch) as u64,
        "epoch {prefix} {bar:30} {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = Vec::new();
    let started = Instant::now();
    for epoch in 1..=args.epochs {
        pb.set_prefix(format!("{epoch}/{}", args.epochs));
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
        args.epochs, args.size
    );

    let mut model = trainer.model;
    model.cfg.training = serde_json::json!({
        "data": data.report,
        "epochs": args.epochs,
        "batch": batch,
        "lr": args.lr,
        "loss_weights": {
            "medical": weights.medical, "identity": weights.identity, "margin": weights.margin
        },
        "semantics": if args.semantics.is_some() { "pretrained" } else { "seeded random, frozen" },
        "history": history,
        "train_seconds": train_s,
        "forward_ms_per_crop": forward_ms,
    });
    model.save(&args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
