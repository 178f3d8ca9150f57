//! The shared CPU convolution path (`deidgate::models::ops::Conv`) end to
//! end, against candle's own convolutions, on real weights and real images:
//!
//! - the chest displacement network: the gateway's folded NHWC network vs
//!   the trainable candle U-Net in eval mode;
//! - the PP-OCRv4 text detector: NHWC convs vs the same network with every
//!   conv on candle's `conv2d` / `conv_transpose2d`.
//!
//! `timing` (ignored) prints ms per image of both paths in the same process:
//! `cargo test --release --test conv_path -- --ignored --nocapture`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use deidgate::models::chest::unet::{UNet, UNetInference};
use deidgate::models::chest::{warp, ChestDeformer};
use deidgate::models::text::{self, DbNet, Fmap};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data(rel: &str) -> PathBuf {
    let p = root().join("../shared/data").join(rel);
    assert!(p.exists(), "shared test data not found at {}", p.display());
    p
}

/// A real chest radiograph at `s`×`s`, values in [0, 1].
fn chest_image(s: usize) -> Vec<f32> {
    let img = image::open(data("chest/hannover_covid/png/006f3a8a.png"))
        .unwrap()
        .to_luma8();
    let img = image::imageops::resize(
        &img,
        s as u32,
        s as u32,
        image::imageops::FilterType::Triangle,
    );
    img.pixels().map(|p| p.0[0] as f32 / 255.0).collect()
}

fn chest_model() -> ChestDeformer {
    let dir = root().join("models/chest");
    ChestDeformer::load(&dir).unwrap_or_else(|e| panic!("chest model in {}: {e}", dir.display()))
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn chest_field_fast_path_equals_candle() {
    let m = chest_model();
    let s = m.input_size();
    let img = chest_image(s);
    let x = Tensor::from_slice(&img, (1, 1, s, s), &Device::Cpu).unwrap();
    // The network output (tanh, in (−1, 1)).
    let want = m.unet().unwrap().forward_t(&x, false).unwrap();
    let got = m.inference_net().forward(&x).unwrap();
    let d = max_abs(&host(&got), &host(&want));
    assert!(d < 1e-4, "U-Net output: max |fast − candle| = {d}");
    // The bounded, smoothed field the gateway applies.
    let [dx, dy] = m.displacement(&img).unwrap();
    let field = warp::displacement(&want, m.mu() as f64).unwrap();
    let fx = host(&field.get(0).unwrap().get(0).unwrap());
    let fy = host(&field.get(0).unwrap().get(1).unwrap());
    let d = max_abs(&dx, &fx).max(max_abs(&dy, &fy));
    assert!(
        d < 1e-4 * m.mu(),
        "field: max |fast − candle| = {d} (μ = {})",
        m.mu()
    );
    let peak = dx.iter().chain(&dy).fold(0f32, |a, v| a.max(v.abs()));
    assert!(peak > 0.1 * m.mu(), "field is not trivially zero: {peak}");
}

fn text_input() -> Fmap {
    let img = image::open(data("images/astronaut.png")).unwrap().to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (pw, ph) = text::network_size(w, h, 1.0, 960);
    text::preprocess(img.as_raw(), w, h, pw, ph)
}

fn text_net() -> DbNet {
    DbNet::load(
        &root().join("models/text").join(text::DET_WEIGHTS),
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn text_map_fast_path_equals_candle() {
    let x = text_input();
    let got = text_net().forward(&x).unwrap();
    let want = text_net().candle_reference().forward(&x).unwrap();
    assert_eq!((got.c, got.h, got.w), (1, x.h, x.w));
    let d = max_abs(&got.data, &want.data);
    assert!(d < 1e-4, "text map: max |fast − candle| = {d}");
    let (lo, hi) = got
        .data
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    assert!(hi - lo > 1e-3, "a flat map proves nothing: {lo}..{hi}");
}

fn ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

#[test]
#[ignore = "timing; run in release with --nocapture"]
fn timing() {
    let threads = rayon::current_num_threads();
    let m = chest_model();
    let s = m.input_size();
    let x = Tensor::from_slice(&chest_image(s), (1, 1, s, s), &Device::Cpu).unwrap();
    let unet = m.unet().unwrap();
    let candle = ms(5, || {
        unet.forward_t(&x, false).unwrap();
    });
    let fast = ms(5, || {
        m.inference_net().forward(&x).unwrap();
    });
    println!("chest U-Net {s}², {threads} threads: candle {candle:.1} ms, fast path {fast:.1} ms");
    // Smaller generators (random weights), for sizing the field network.
    for (size, width) in [(128, 16), (128, 32), (64, 16), (64, 32)] {
        let vm = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu);
        let g = UNet::new(vb.clone(), width).unwrap();
        let fast_net = UNetInference::new(vb, width).unwrap();
        let x = Tensor::rand(0f32, 1f32, (1, 1, size, size), &Device::Cpu).unwrap();
        let candle = ms(5, || {
            g.forward_t(&x, false).unwrap();
        });
        let fast = ms(5, || {
            fast_net.forward(&x).unwrap();
        });
        println!(
            "chest U-Net {size}² width {width}, random weights: candle {candle:.1} ms, fast path {fast:.1} ms"
        );
    }
    let xt = text_input();
    let (net, reference) = (text_net(), text_net().candle_reference());
    let plain_net = text_net().without_lifting();
    let fast = ms(5, || {
        net.forward(&xt).unwrap();
    });
    let plain = ms(5, || {
        plain_net.forward(&xt).unwrap();
    });
    let candle = ms(3, || {
        reference.forward(&xt).unwrap();
    });
    println!(
        "text detector {}x{}: candle convs {candle:.1} ms, fast path {fast:.1} ms \
         (upsampled maps built: {plain:.1} ms)",
        xt.w, xt.h
    );
}
