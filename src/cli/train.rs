//! `deidgate train …`: train a pixel model from data, in Rust.

use crate::models::chest::protocol::{self, ProtocolOpts};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TrainCmd {
    /// PriCheXy-Net chest deformation: the full train + evaluate protocol.
    Chest(ChestTrainArgs),
    /// MedSem-style photo generator (`[photo] mode = "generate"`).
    Photo(super::train_photo::TrainPhotoArgs),
    /// MRI face generator (`[mri] mode = "generate"`), 2.5-D.
    Mri(super::train_mri::Args),
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
        device: crate::models::chest::device(&c.device)?,
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
        TrainCmd::Photo(a) => super::train_photo::run(a),
        TrainCmd::Mri(a) => super::train_mri::run(a),
    }
}
