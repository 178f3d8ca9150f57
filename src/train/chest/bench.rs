//! Inference timing for `scripts/bench_models.sh` (`deidgate eval chest
//! --bench`): the displacement at the model size, and the field upsample +
//! warp at a native radiograph size. It times the gateway's code but is
//! itself an evaluation tool, so it lives in `crate::train`.

use crate::models::chest::unet::{UNet, UNetInference};
use crate::models::chest::{warp, ChestConfig};
use crate::routes::chest::geometry::warp_upsampled;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::path::Path;
use std::time::Instant;

/// Median milliseconds of `reps` runs of `f` after one warm-up run.
fn median_ms(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut t = vec![];
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        f()?;
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// ms per image for the displacement of a `size`² image with a generator of
/// `width` (random weights: timing does not depend on their values).
pub fn displacement_ms(
    size: usize,
    width: usize,
    reps: usize,
    dev: &Device,
) -> anyhow::Result<f64> {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, dev);
    UNet::new(vb.clone(), width)?; // the trained form creates the variables
                                   // The gateway's inference form (`ChestDeformer::displacement`).
    let g = UNetInference::new(vb, width)?;
    let x = Tensor::rand(0f32, 1f32, (1, 1, size, size), dev)?;
    median_ms(reps, || {
        let d = warp::displacement(&g.forward(&x)?, 0.01)?;
        let _host: Vec<f32> = d.flatten_all()?.to_vec1()?; // include the copy back
        Ok(())
    })
}

/// ms per image to warp a w×h image along a `size`² field brought to w×h
/// (the route's fused upsample and warp).
pub fn native_warp_ms(size: usize, w: usize, h: usize, reps: usize) -> anyhow::Result<f64> {
    let d: Vec<f32> = (0..size * size)
        .map(|i| ((i % 13) as f32 - 6.0) * 1e-3)
        .collect();
    let img: Vec<f32> = (0..w * h).map(|i| (i % 4096) as f32 / 4096.0).collect();
    median_ms(reps, || {
        let out = warp_upsampled(&img, &d, &d, size, w, h);
        anyhow::ensure!(out.len() == w * h);
        Ok(())
    })
}

/// Print the timings of `deidgate eval chest --bench`: the displacement at
/// the size `model/config.json` names (when there is one) and at the paper
/// size, and the upsample + warp at the native size `w`×`h`.
pub fn report(
    model: &Path,
    (w, h): (usize, usize),
    reps: usize,
    dev: &Device,
) -> anyhow::Result<()> {
    let on = if dev.is_cuda() { "cuda" } else { "cpu" };
    println!(
        "chest model inference ({on}, {} threads)",
        rayon::current_num_threads()
    );
    let mut sizes = vec![(256usize, 32usize, "paper size, random weights".to_string())];
    if let Ok(cfg) = ChestConfig::read(&model.join("config.json")) {
        sizes.insert(
            0,
            (
                cfg.input_size,
                cfg.base_width,
                format!("{} as configured", model.display()),
            ),
        );
    }
    for (s, width, what) in &sizes {
        let ms = displacement_ms(*s, *width, reps, dev)?;
        println!("displacement {s}x{s} width {width} ({what}): {ms:.1} ms/image");
        let ms = native_warp_ms(*s, w, h, reps.min(10))?;
        println!("upsample {s}x{s} field + warp at {w}x{h} (cpu): {ms:.1} ms/image");
    }
    println!("goals: < 50 ms/image on CPU for the 256x256 field; < 5 ms/image on an H100");
    Ok(())
}
