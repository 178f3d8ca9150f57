//! `deidgate train photo` until the subcommand is wired into the CLI:
//!
//!   cargo run --release --example train_photo -- --data DIR [--masks DIR] \
//!       --out models/photo/medsem --size 96 --epochs 10 --device cpu
//!
//! The command's module is compiled here as it is; `crate::models` resolves
//! to the library's through the re-export below.

pub use deidgate::models;

#[path = "../src/cli/train_photo.rs"]
mod train_photo;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: train_photo::TrainPhotoArgs,
}

fn main() -> anyhow::Result<()> {
    train_photo::run(Cli::parse().args)
}
