//! Inference timing for `scripts/bench_models.sh`: the displacement at the
//! model size, and the field upsample + warp at a native radiograph size.

use super::unet::UNet;
use super::warp;
use crate::pipeline::chest::geometry::{upsample_field, warp};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
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
    let g = UNet::new(VarBuilder::from_varmap(&vars, DType::F32, dev), width)?;
    let x = Tensor::rand(0f32, 1f32, (1, 1, size, size), dev)?;
    median_ms(reps, || {
        let d = warp::displacement(&g.forward_t(&x, false)?, 0.01)?;
        let _host: Vec<f32> = d.flatten_all()?.to_vec1()?; // include the copy back
        Ok(())
    })
}

/// ms per image to upsample a `size`² field to w×h and warp a w×h image.
pub fn native_warp_ms(size: usize, w: usize, h: usize, reps: usize) -> anyhow::Result<f64> {
    let d: Vec<f32> = (0..size * size)
        .map(|i| ((i % 13) as f32 - 6.0) * 1e-3)
        .collect();
    let img: Vec<f32> = (0..w * h).map(|i| (i % 4096) as f32 / 4096.0).collect();
    median_ms(reps, || {
        let dx = upsample_field(&d, size, w, h);
        let dy = upsample_field(&d, size, w, h);
        let out = warp(&img, &dx, &dy, w, h);
        anyhow::ensure!(out.len() == w * h);
        Ok(())
    })
}
