//! Smoke test for a `--features cuda` build: runs a conv and a matmul on the
//! first CUDA device and prints timings, so a GPU machine can be checked quickly.
use candle_core::{DType, Device, Tensor};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let dev = Device::new_cuda(0)?;
    let x = Tensor::randn(0f32, 1.0, (1, 32, 256, 256), &dev)?;
    let w = Tensor::randn(0f32, 0.1, (32, 32, 3, 3), &dev)?;
    for i in 0..3 {
        let t = Instant::now();
        let y = x.conv2d(&w, 1, 1, 1, 1)?;
        let s = y.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        println!(
            "conv 32->32 @256^2 run {i}: {:.3} ms (sum {s:.1})",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let a = Tensor::randn(0f32, 1.0, (2048, 2048), &dev)?;
    let t = Instant::now();
    let c = a.matmul(&a)?;
    let s = c.sum_all()?.to_scalar::<f32>()?;
    println!(
        "matmul 2048: {:.3} ms ({s:.1})",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
