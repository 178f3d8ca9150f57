//! A smaller chest field network taught by the trained one (distillation).
//!
//! The field is Gaussian-smoothed and bounded by μ, so it carries little
//! high frequency: a narrow U-Net at 128² (or 64²) can predict what the
//! 256² width-32 generator predicts, at a sixteenth of the work. The student
//! sees the teacher's input shrunk to its size and is trained to give the
//! teacher's displacement (area-averaged to its grid) through the same
//! `−μ·tanh` and smoothing, so the bound holds by construction. The
//! teacher's fields are cached in the output folder: a rerun only trains.
//! Judged on held-out patients (same split and seed as the protocol) by the
//! relative field error at the teacher's size, next to the best any field at
//! the student's size could do (the teacher's own field shrunk and grown
//! back); privacy is judged by `deidgate eval chest --compare`.

use super::data::{split_by_patient, Dataset};
use super::train::adam;
use crate::models::chest::unet::UNet;
use crate::models::chest::{warp, ChestConfig, ChestDeformer};
use crate::routes::chest::geometry::{resample_square, upsample_field};
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What `deidgate train chest-distill` can be told.
#[derive(Clone, Debug)]
pub struct DistillOpts {
    pub data: Vec<PathBuf>,
    pub teacher: PathBuf,
    pub out: PathBuf,
    pub size: usize,
    pub width: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub test_frac: f64,
    pub max_per_source: Option<usize>,
    pub device: Device,
}

/// Held-out agreement with the teacher, at the teacher's size.
#[derive(Clone, Debug, Serialize)]
pub struct DistillReport {
    pub teacher: String,
    pub teacher_size: usize,
    pub size: usize,
    pub width: usize,
    pub train_images: usize,
    pub test_images: usize,
    /// ‖d_student − d_teacher‖ / ‖d_teacher‖ over the test images.
    pub relative_error: f64,
    /// The same for the teacher's field shrunk to the student's grid and
    /// grown back: the floor for any field at that size.
    pub relative_error_floor: f64,
    /// Cosine similarity of the two fields over the test images.
    pub cosine: f64,
    /// Mean |d| in pixels at the teacher's size: teacher, student.
    pub mean_disp_px: (f64, f64),
    pub epoch_losses: Vec<f64>,
    pub seconds: f64,
}

/// The teacher's field of every image, shrunk to `s`², cached in `out`.
fn teacher_fields(
    teacher: &ChestDeformer,
    ds: &Dataset,
    o: &DistillOpts,
) -> Result<Vec<[Vec<f32>; 2]>> {
    let ts = teacher.input_size();
    let cache = o
        .out
        .join(format!("teacher-fields-{}x{ts}.f32", ds.pixels.len()));
    let n = ds.pixels.len();
    let per = 2 * ts * ts;
    if let Ok(bytes) = std::fs::read(&cache) {
        if bytes.len() == n * per * 4 {
            eprintln!("teacher fields: cached in {}", cache.display());
            let all: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            return Ok(all
                .chunks_exact(per)
                .map(|c| [c[..ts * ts].to_vec(), c[ts * ts..].to_vec()])
                .collect());
        }
    }
    let t0 = Instant::now();
    let mut out = Vec::with_capacity(n);
    let mut bytes = Vec::with_capacity(n * per * 4);
    for i in 0..n {
        let f = teacher.displacement(&ds.image(i))?;
        for c in &f {
            for v in c {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.push(f);
        if (i + 1) % 100 == 0 {
            eprintln!(
                "teacher fields: {}/{n} ({:.0} ms/image)",
                i + 1,
                t0.elapsed().as_secs_f64() * 1000.0 / (i + 1) as f64
            );
        }
    }
    std::fs::create_dir_all(&o.out)?;
    std::fs::write(&cache, bytes).with_context(|| format!("writing {}", cache.display()))?;
    Ok(out)
}

/// Rows of `idx` as one N×C×S×S tensor from per-image channel planes.
fn stack(planes: &[Vec<Vec<f32>>], idx: &[usize], s: usize, dev: &Device) -> Result<Tensor> {
    let c = planes[idx[0]].len();
    let mut v = Vec::with_capacity(idx.len() * c * s * s);
    for &i in idx {
        for p in &planes[i] {
            v.extend_from_slice(p);
        }
    }
    Ok(Tensor::from_vec(v, (idx.len(), c, s, s), dev)?)
}

/// `deidgate train chest-distill`.
pub fn run(o: &DistillOpts) -> Result<DistillReport> {
    let t_all = Instant::now();
    ensure!(
        o.size >= 16 && o.size.is_multiple_of(16),
        "--size must be a multiple of 16"
    );
    let teacher = ChestDeformer::load(&o.teacher)
        .with_context(|| format!("teacher {}", o.teacher.display()))?;
    let (ts, mu) = (teacher.input_size(), teacher.mu());
    let s = o.size;
    let ds = Dataset::load(&o.data, ts, o.max_per_source)?;
    let split = split_by_patient(&ds.samples, o.test_frac, o.seed);
    eprintln!(
        "distill: {} images ({} train / {} test), teacher {ts}² → student {s}² width {}",
        ds.pixels.len(),
        split.train.len(),
        split.test.len(),
        o.width
    );
    let fields = teacher_fields(&teacher, &ds, o)?;
    let inputs: Vec<Vec<Vec<f32>>> = (0..ds.pixels.len())
        .map(|i| vec![resample_square(&ds.image(i), ts, ts, s)])
        .collect();
    let targets: Vec<Vec<Vec<f32>>> = fields
        .iter()
        .map(|[dx, dy]| {
            vec![
                resample_square(dx, ts, ts, s),
                resample_square(dy, ts, ts, s),
            ]
        })
        .collect();

    let vars = VarMap::new();
    let net = UNet::new(
        VarBuilder::from_varmap(&vars, DType::F32, &o.device),
        o.width,
    )?;
    let mut opt = adam(&vars, o.lr)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
    let mut order = split.train.clone();
    let mut epoch_losses = vec![];
    let scale = 1.0 / (mu as f64 * mu as f64);
    for epoch in 0..o.epochs {
        let t0 = Instant::now();
        order.shuffle(&mut rng);
        let (mut sum, mut steps) = (0f64, 0usize);
        for idx in order.chunks(o.batch) {
            let x = stack(&inputs, idx, s, &o.device)?;
            let t = stack(&targets, idx, s, &o.device)?;
            let d = warp::displacement(&net.forward_t(&x, true)?, mu as f64)?;
            let loss = ((d - t)?.sqr()?.mean_all()? * scale)?;
            opt.backward_step(&loss)?;
            sum += loss.to_scalar::<f32>()? as f64;
            steps += 1;
        }
        let mean = sum / steps.max(1) as f64;
        eprintln!(
            "distill: epoch {}/{} loss {mean:.5} (MSE / μ², {:.1}s)",
            epoch + 1,
            o.epochs,
            t0.elapsed().as_secs_f64()
        );
        epoch_losses.push(mean);
    }

    // Held-out agreement at the teacher's size.
    let (mut err, mut floor, mut norm, mut dot, mut ns) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let (mut mt, mut ms) = (0f64, 0f64);
    for &i in &split.test {
        let x = stack(&inputs, &[i], s, &o.device)?;
        let d = warp::displacement(&net.forward_t(&x, false)?, mu as f64)?;
        let d = d.clamp(-mu, mu)?.flatten_all()?.to_vec1::<f32>()?;
        for c in 0..2 {
            let student = upsample_field(&d[c * s * s..(c + 1) * s * s], s, ts, ts);
            let best = upsample_field(&targets[i][c], s, ts, ts);
            for ((t, st), b) in fields[i][c].iter().zip(&student).zip(&best) {
                let (t, st, b) = (*t as f64, *st as f64, *b as f64);
                err += (st - t).powi(2);
                floor += (b - t).powi(2);
                norm += t * t;
                ns += st * st;
                dot += st * t;
                mt += t.abs();
                ms += st.abs();
            }
        }
    }
    let count = (split.test.len() * 2 * ts * ts).max(1) as f64;
    let px = (ts as f64 - 1.0) / 2.0;
    let report = DistillReport {
        teacher: o.teacher.display().to_string(),
        teacher_size: ts,
        size: s,
        width: o.width,
        train_images: split.train.len(),
        test_images: split.test.len(),
        relative_error: (err / norm.max(1e-30)).sqrt(),
        relative_error_floor: (floor / norm.max(1e-30)).sqrt(),
        cosine: dot / (norm.sqrt() * ns.sqrt()).max(1e-30),
        mean_disp_px: (mt / count * px, ms / count * px),
        epoch_losses,
        seconds: t_all.elapsed().as_secs_f64(),
    };
    std::fs::create_dir_all(&o.out)?;
    vars.save(o.out.join("generator.safetensors"))?;
    let mut cfg = ChestConfig::new(mu, s, o.width);
    cfg.trained_on = ds.sources.clone();
    cfg.notes = format!(
        "deidgate train chest-distill from {} ({ts}², width {}); student {s}², width {}, \
         epochs {}, batch {}, Adam lr {}, seed {}, test fraction {}",
        o.teacher.display(),
        teacher.config().base_width,
        o.width,
        o.epochs,
        o.batch,
        o.lr,
        o.seed,
        o.test_frac
    );
    cfg.write(&o.out.join("config.json"))?;
    std::fs::write(
        o.out.join("distill.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    Ok(report)
}
