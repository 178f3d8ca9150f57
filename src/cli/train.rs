//! `deidgate train …`: train a pixel model from data, in Rust. The
//! arguments live here; the training itself is in `crate::train`.

use crate::train::chest::distill::DistillOpts;
use crate::train::chest::protocol::{self, ProtocolOpts};
use crate::train::photo::train::LossWeights;
use crate::train::{mri, photo};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TrainCmd {
    /// PriCheXy-Net chest deformation: the full train + evaluate protocol.
    Chest(ChestTrainArgs),
    /// A smaller chest field network taught by a trained one (distillation).
    ChestDistill(ChestDistillArgs),
    /// MedSem-style photo generator (`[photo] mode = "generate"`).
    Photo(TrainPhotoArgs),
    /// MRI face generator (`[mri] mode = "generate"`), 2.5-D.
    Mri(TrainMriArgs),
}

/// Settings shared by `train chest` and `eval chest`.
#[derive(Args, Debug, Clone)]
pub struct ChestProtocolArgs {
    /// Data folder (Hannover, NIH 64 px subset or full ChestX-ray14 layout); repeat for several.
    #[arg(long = "data")]
    pub data: Vec<PathBuf>,
    /// Model input side (multiple of 16); 256 in the paper.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// cpu, cuda (needs --features cuda) or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Epochs of every re-identification network (original and re-trained).
    #[arg(long, default_value_t = 10)]
    pub epochs_reid: usize,
    #[arg(long, default_value_t = 10)]
    pub epochs_cls: usize,
    /// ResNet-18 stage-1 width of the siamese branches (64 = real ResNet-18).
    #[arg(long, default_value_t = 16)]
    pub snn_width: usize,
    /// DenseNet growth rate and layers per dense block.
    #[arg(long, default_value_t = 12)]
    pub cls_growth: usize,
    #[arg(long, default_value_t = 4)]
    pub cls_layers: usize,
    /// Fraction of patients (per data set) held out for testing.
    #[arg(long, default_value_t = 0.25)]
    pub test_frac: f64,
    /// Use at most this many images of each data folder.
    #[arg(long)]
    pub max_images: Option<usize>,
    #[arg(long, default_value_t = 4000)]
    pub max_test_pairs: usize,
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Skip the random elastic baseline.
    #[arg(long)]
    pub no_elastic: bool,
}

#[derive(Args, Debug)]
pub struct ChestTrainArgs {
    #[command(flatten)]
    pub common: ChestProtocolArgs,
    /// Output folder: generator.safetensors + config.json (default μ), mu_<μ>/, results.{json,md}.
    #[arg(long, default_value = "models/chest")]
    pub out: PathBuf,
    /// Displacement bounds to train (normalized grid units).
    #[arg(long = "mu", value_delimiter = ',', default_values_t = vec![0.001f32, 0.005, 0.01])]
    pub mus: Vec<f32>,
    /// The μ written as the gateway's default model.
    #[arg(long, default_value_t = 0.01)]
    pub default_mu: f32,
    /// U-Net first-level width (32 in the paper).
    #[arg(long, default_value_t = 32)]
    pub width: usize,
    #[arg(long, default_value_t = 2)]
    pub epochs_identity: usize,
    #[arg(long, default_value_t = 10)]
    pub epochs_gen: usize,
    /// Cap on identity/generator steps per epoch (0: whole epochs); for slow CPUs.
    #[arg(long, default_value_t = 0)]
    pub max_steps: usize,
}

#[derive(Args, Debug)]
pub struct ChestDistillArgs {
    /// Data folder(s), as for `train chest`; repeat for several.
    #[arg(long = "data", required = true)]
    pub data: Vec<PathBuf>,
    /// The trained model whose field is learned.
    #[arg(long, default_value = "models/chest")]
    pub teacher: PathBuf,
    /// Output folder: generator.safetensors, config.json, distill.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Student input side (multiple of 16).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Student U-Net first-level width.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Same seed and test fraction as the teacher's protocol: same held-out patients.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.25)]
    pub test_frac: f64,
    #[arg(long)]
    pub max_images: Option<usize>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Build the protocol options from the shared arguments.
pub fn protocol_opts(c: &ChestProtocolArgs, out: PathBuf) -> anyhow::Result<ProtocolOpts> {
    anyhow::ensure!(
        c.size >= 16 && c.size.is_multiple_of(16),
        "--size must be a multiple of 16"
    );
    Ok(ProtocolOpts {
        data: c.data.clone(),
        out,
        size: c.size,
        mus: vec![0.01],
        default_mu: 0.01,
        base_width: 32,
        snn_width: c.snn_width,
        cls_growth: c.cls_growth,
        cls_layers: c.cls_layers,
        epochs_reid: c.epochs_reid,
        epochs_cls: c.epochs_cls,
        epochs_identity: 0,
        epochs_gen: 0,
        batch: c.batch,
        lr: c.lr,
        seed: c.seed,
        test_frac: c.test_frac,
        max_per_source: c.max_images,
        max_test_pairs: c.max_test_pairs,
        bootstrap_reps: c.bootstrap,
        elastic: !c.no_elastic,
        max_steps: 0,
        device: crate::train::chest::device(&c.device)?,
    })
}

pub fn run(cmd: TrainCmd) -> anyhow::Result<()> {
    match cmd {
        TrainCmd::Chest(a) => {
            let mut o = protocol_opts(&a.common, a.out.clone())?;
            anyhow::ensure!(!a.mus.is_empty(), "give at least one --mu");
            o.mus = a.mus.clone();
            o.default_mu = a.default_mu;
            o.base_width = a.width;
            o.epochs_identity = a.epochs_identity;
            o.epochs_gen = a.epochs_gen;
            o.max_steps = a.max_steps;
            let r = protocol::train(&o)?;
            print!("{}", protocol::markdown(&r));
            Ok(())
        }
        TrainCmd::ChestDistill(a) => {
            let r = crate::train::chest::distill::run(&DistillOpts {
                data: a.data,
                teacher: a.teacher,
                out: a.out,
                size: a.size,
                width: a.width,
                epochs: a.epochs,
                batch: a.batch,
                lr: a.lr,
                seed: a.seed,
                test_frac: a.test_frac,
                max_per_source: a.max_images,
                device: crate::train::chest::device(&a.device)?,
            })?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        TrainCmd::Photo(a) => photo::run::run(a.into_opts()?),
        TrainCmd::Mri(a) => mri::run::run(&a.into_opts()),
    }
}

#[derive(Args, Debug, Clone)]
pub struct TrainMriArgs {
    /// Folder (searched recursively) of NIfTI heads (.nii, .nii.gz).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write model.safetensors and config.json.
    #[arg(long, default_value = "models/mri/generator")]
    pub out: PathBuf,
    /// Template folder (the face region comes from its registration).
    #[arg(long, default_value = "models/mri")]
    pub models: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub iters: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Base channel width of the generator.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Square in-plane training patch around the face (multiple of 4).
    #[arg(long, default_value_t = 96)]
    pub patch: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Weight of the adversarial term in the generator loss; 0 trains by
    /// masked L1 reconstruction only (no discriminator).
    #[arg(long, default_value_t = 0.01)]
    pub adv_weight: f64,
    /// Base channel width of each PatchGAN critic.
    #[arg(long, default_value_t = 16)]
    pub d_width: usize,
}

impl TrainMriArgs {
    fn into_opts(self) -> mri::run::RunOpts {
        mri::run::RunOpts {
            data: self.data,
            out: self.out,
            models: self.models,
            train: mri::train::TrainOpts {
                iters: self.iters,
                lr: self.lr,
                width: self.width,
                patch: self.patch,
                seed: self.seed,
                adv_weight: self.adv_weight,
                d_width: self.d_width,
            },
        }
    }
}

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
    #[arg(long, default_value = crate::models::photo::DEFAULT_WEIGHTS)]
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

impl TrainPhotoArgs {
    fn into_opts(self) -> anyhow::Result<photo::run::RunOpts> {
        let device = match self.device {
            TrainDevice::Cpu => candle_core::Device::Cpu,
            TrainDevice::Cuda => candle_core::Device::new_cuda(0)
                .context("--device cuda (build with `--features cuda`)")?,
        };
        Ok(photo::run::RunOpts {
            data: self.data,
            masks: self.masks,
            out: self.out,
            size: self.size,
            epochs: self.epochs,
            device,
            batch: self.batch,
            lr: self.lr,
            detector: self.detector,
            semantics: self.semantics,
            weights: LossWeights {
                medical: self.medical_weight,
                identity: self.identity_weight,
                margin: self.margin,
            },
            seed: self.seed,
        })
    }
}
