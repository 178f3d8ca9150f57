//! Run the generator training loop (`deidgate train mri`) until the
//! coordinator wires it into the CLI:
//!
//!   cargo run --release --example mri_train -- --data ../shared/data/mri --out /tmp/mri_gen --iters 20

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: deidgate::cli::train_mri::Args,
}

fn main() -> anyhow::Result<()> {
    deidgate::cli::train_mri::run(Cli::parse().args)
}
