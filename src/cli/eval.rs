//! `deidgate eval …`: evaluate or benchmark a trained pixel model. The
//! arguments live here; the evaluation itself is in `crate::train::chest`.

use super::train::{protocol_opts, ChestProtocolArgs};
use crate::train::chest::{bench, protocol};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum EvalCmd {
    /// Privacy (re-trained re-id attacker) and utility (classifier) of a chest model.
    Chest(ChestEvalArgs),
}

#[derive(Args, Debug)]
pub struct ChestEvalArgs {
    /// Model folder with config.json + generator.safetensors.
    #[arg(long, default_value = "models/chest")]
    pub model: PathBuf,
    /// Where results.{json,md} go (default: <model>/eval).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only time inference (no data needed): ms per image at the model size,
    /// at 256² with the paper's width, and the native-size upsample + warp.
    #[arg(long)]
    pub bench: bool,
    /// Native size for the warp benchmark, WxH.
    #[arg(long, default_value = "2048x2500")]
    pub native: String,
    #[arg(long, default_value_t = 20)]
    pub reps: usize,
    /// Judge these model folders side by side at --size (each through its
    /// own grid), instead of --model alone; repeat the flag.
    #[arg(long = "compare")]
    pub compare: Vec<PathBuf>,
    /// With --compare: the random elastic baseline at each of these bounds.
    #[arg(long = "elastic-mu", value_delimiter = ',')]
    pub elastic_mu: Vec<f32>,
    #[command(flatten)]
    pub common: ChestProtocolArgs,
}

pub fn run(cmd: EvalCmd) -> anyhow::Result<()> {
    match cmd {
        EvalCmd::Chest(a) if a.bench => run_bench(&a),
        EvalCmd::Chest(a) if !a.compare.is_empty() => {
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/chest-compare"));
            let o = protocol_opts(&a.common, out)?;
            let r = protocol::compare(&o, &a.compare, &a.elastic_mu)?;
            print!("{}", protocol::markdown(&r));
            Ok(())
        }
        EvalCmd::Chest(a) => {
            let c = &a.common;
            let out = a.out.clone().unwrap_or_else(|| a.model.join("eval"));
            let o = protocol_opts(c, out)?;
            let r = protocol::eval(&o, &a.model)?;
            print!("{}", protocol::markdown(&r));
            Ok(())
        }
    }
}

fn run_bench(a: &ChestEvalArgs) -> anyhow::Result<()> {
    let dev = crate::train::chest::device(&a.common.device)?;
    let native = a
        .native
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--native must be WxH"))?;
    bench::report(&a.model, native, a.reps, &dev)
}
