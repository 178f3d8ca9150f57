//! The three MTCNN networks (Zhang et al. 2016). Layer names match
//! facenet-pytorch's state dicts (`pnet.conv1.weight`, `rnet.dense4.bias`, …)
//! so the converted weights load without renaming.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{conv2d, linear, prelu, Conv2d, Conv2dConfig, Linear, PReLU, VarBuilder};

use crate::models::ops::dense_rows::{softmax2, DenseRows};
use crate::models::ops::nhwc::{flatten_whc, flatten_whc_nhwc, Nhwc};
use crate::models::ops::pool::{max_pool2d_ceil, max_pool_ceil_nhwc};
use crate::models::ops::Act;
use crate::models::ops::{Conv2dNhwc, ConvSpec};

/// Proposal network: fully convolutional, run over every pyramid level.
/// Output cell (y, x) looks at a 12×12 window at stride 2.
pub struct PNet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    vb: VarBuilder,
    name: &str,
) -> candle_core::Result<Conv2d> {
    conv2d(cin, cout, k, Conv2dConfig::default(), vb.pp(name))
}

impl PNet {
    pub fn load(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: conv(3, 10, 3, vb.clone(), "conv1")?,
            prelu1: prelu(Some(10), vb.pp("prelu1"))?,
            conv2: conv(10, 16, 3, vb.clone(), "conv2")?,
            prelu2: prelu(Some(16), vb.pp("prelu2"))?,
            conv3: conv(16, 32, 3, vb.clone(), "conv3")?,
            prelu3: prelu(Some(32), vb.pp("prelu3"))?,
            conv4_1: conv(32, 2, 1, vb.clone(), "conv4_1")?,
            conv4_2: conv(32, 4, 1, vb, "conv4_2")?,
        })
    }

    /// `(regression N×4×H×W, face probability N×H×W)` for an N×3×h×w input.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let xs = self.prelu1.forward(&self.conv1.forward(xs)?)?;
        let xs = max_pool2d_ceil(&xs, 2, 2)?;
        let xs = self.prelu2.forward(&self.conv2.forward(&xs)?)?;
        let xs = self.prelu3.forward(&self.conv3.forward(&xs)?)?;
        let prob = candle_nn::ops::softmax(&self.conv4_1.forward(&xs)?, 1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.conv4_2.forward(&xs)?;
        Ok((reg, prob))
    }
}

/// Refinement network: scores and regresses 24×24 crops of the proposals.
pub struct RNet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    dense4: Linear,
    prelu4: PReLU,
    dense5_1: Linear,
    dense5_2: Linear,
}

impl RNet {
    pub fn load(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: conv(3, 28, 3, vb.clone(), "conv1")?,
            prelu1: prelu(Some(28), vb.pp("prelu1"))?,
            conv2: conv(28, 48, 3, vb.clone(), "conv2")?,
            prelu2: prelu(Some(48), vb.pp("prelu2"))?,
            conv3: conv(48, 64, 2, vb.clone(), "conv3")?,
            prelu3: prelu(Some(64), vb.pp("prelu3"))?,
            dense4: linear(576, 128, vb.pp("dense4"))?,
            prelu4: prelu(Some(128), vb.pp("prelu4"))?,
            dense5_1: linear(128, 2, vb.pp("dense5_1"))?,
            dense5_2: linear(128, 4, vb.pp("dense5_2"))?,
        })
    }

    /// `(regression N×4, face probability N)` for an N×3×24×24 input.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let xs = self.prelu1.forward(&self.conv1.forward(xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu2.forward(&self.conv2.forward(&xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu3.forward(&self.conv3.forward(&xs)?)?;
        let xs = self
            .prelu4
            .forward(&self.dense4.forward(&flatten_whc(&xs)?)?)?;
        let prob = candle_nn::ops::softmax(&self.dense5_1.forward(&xs)?, 1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.dense5_2.forward(&xs)?;
        Ok((reg, prob))
    }
}

/// Output network: final score, box regression and the 5 landmarks on 48×48
/// crops.
pub struct ONet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    conv4: Conv2d,
    prelu4: PReLU,
    dense5: Linear,
    prelu5: PReLU,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

impl ONet {
    pub fn load(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: conv(3, 32, 3, vb.clone(), "conv1")?,
            prelu1: prelu(Some(32), vb.pp("prelu1"))?,
            conv2: conv(32, 64, 3, vb.clone(), "conv2")?,
            prelu2: prelu(Some(64), vb.pp("prelu2"))?,
            conv3: conv(64, 64, 3, vb.clone(), "conv3")?,
            prelu3: prelu(Some(64), vb.pp("prelu3"))?,
            conv4: conv(64, 128, 2, vb.clone(), "conv4")?,
            prelu4: prelu(Some(128), vb.pp("prelu4"))?,
            dense5: linear(1152, 256, vb.pp("dense5"))?,
            prelu5: prelu(Some(256), vb.pp("prelu5"))?,
            dense6_1: linear(256, 2, vb.pp("dense6_1"))?,
            dense6_2: linear(256, 4, vb.pp("dense6_2"))?,
            dense6_3: linear(256, 10, vb.pp("dense6_3"))?,
        })
    }

    /// `(regression N×4, landmarks N×10 as x1..x5 y1..y5 relative to the
    /// crop, face probability N)` for an N×3×48×48 input.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let xs = self.prelu1.forward(&self.conv1.forward(xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu2.forward(&self.conv2.forward(&xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu3.forward(&self.conv3.forward(&xs)?)?;
        let xs = max_pool2d_ceil(&xs, 2, 2)?;
        let xs = self.prelu4.forward(&self.conv4.forward(&xs)?)?;
        let xs = self
            .prelu5
            .forward(&self.dense5.forward(&flatten_whc(&xs)?)?)?;
        let prob = candle_nn::ops::softmax(&self.dense6_1.forward(&xs)?, 1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.dense6_2.forward(&xs)?;
        let landmarks = self.dense6_3.forward(&xs)?;
        Ok((reg, landmarks, prob))
    }
}

/// The complete detector: the three networks on one device.
pub struct Mtcnn {
    pub pnet: PNet,
    pub rnet: RNet,
    pub onet: ONet,
    pub device: Device,
    /// The same weights rearranged for the NHWC CPU path; `None` on a GPU.
    cpu: Option<CpuNets>,
}

/// P-Net output for one image: per output cell, 4 regression offsets and the
/// face probability, cells row by row.
pub struct PNetOut {
    pub h: usize,
    pub w: usize,
    pub reg: Vec<f32>,
    pub prob: Vec<f32>,
}

/// R-Net/O-Net output for a batch of crops, row-major per crop: 4 regression
/// offsets, 10 landmark coordinates (O-Net only: x1..x5 then y1..y5,
/// relative to the crop) and the face probability.
pub struct CropOut {
    pub reg: Vec<f32>,
    pub landmarks: Vec<f32>,
    pub prob: Vec<f32>,
}

/// Where `scripts/fetch-weights.sh` writes the converted weights, relative to
/// the repository root.
pub const DEFAULT_WEIGHTS: &str = "models/photo/mtcnn.safetensors";

impl Mtcnn {
    /// Load the three networks from one safetensors file with `pnet.*`,
    /// `rnet.*` and `onet.*` tensors (as written by `scripts/fetch-weights.sh`).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_file() {
            bail!(
                "MTCNN weights not found at {}: run scripts/fetch-weights.sh \
                 (downloads facenet-pytorch 2.6.0, MIT, and converts its weights)",
                path.display()
            );
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .with_context(|| format!("parsing {} as safetensors", path.display()))?;
        let what = |net: &str| {
            format!(
                "loading {net} from {} (re-run scripts/fetch-weights.sh if the file is stale)",
                path.display()
            )
        };
        let pnet = PNet::load(vb.pp("pnet")).with_context(|| what("pnet"))?;
        let rnet = RNet::load(vb.pp("rnet")).with_context(|| what("rnet"))?;
        let onet = ONet::load(vb.pp("onet")).with_context(|| what("onet"))?;
        let cpu = if device.is_cpu() {
            Some(CpuNets::new(&pnet, &rnet, &onet)?)
        } else {
            None
        };
        Ok(Self {
            pnet,
            rnet,
            onet,
            device: device.clone(),
            cpu,
        })
    }

    /// Use the candle NCHW networks even on the CPU (the reference the fast
    /// path is tested against).
    pub fn without_cpu_fast_path(mut self) -> Self {
        self.cpu = None;
        self
    }

    /// P-Net over one image in NHWC order (normalised).
    pub fn run_pnet(&self, x: Nhwc) -> Result<PNetOut> {
        if let Some(cpu) = &self.cpu {
            return Ok(cpu.pnet(x)?);
        }
        let (reg, prob) = self.pnet.forward(&x.to_nchw(&self.device)?)?;
        let (_, _, h, w) = reg.dims4()?;
        Ok(PNetOut {
            h,
            w,
            reg: reg.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1()?,
            prob: prob.flatten_all()?.to_vec1()?,
        })
    }

    /// R-Net over a batch of 24×24 crops in NHWC order.
    pub fn run_rnet(&self, x: Nhwc) -> Result<CropOut> {
        if let Some(cpu) = &self.cpu {
            return Ok(cpu.rnet(x)?);
        }
        let (reg, prob) = self.rnet.forward(&x.to_nchw(&self.device)?)?;
        Ok(CropOut {
            reg: reg.flatten_all()?.to_vec1()?,
            landmarks: Vec::new(),
            prob: prob.to_vec1()?,
        })
    }

    /// O-Net over a batch of 48×48 crops in NHWC order.
    pub fn run_onet(&self, x: Nhwc) -> Result<CropOut> {
        if let Some(cpu) = &self.cpu {
            return Ok(cpu.onet(x)?);
        }
        let (reg, landmarks, prob) = self.onet.forward(&x.to_nchw(&self.device)?)?;
        Ok(CropOut {
            reg: reg.flatten_all()?.to_vec1()?,
            landmarks: landmarks.flatten_all()?.to_vec1()?,
            prob: prob.to_vec1()?,
        })
    }
}

fn conv_parts(c: &Conv2d) -> candle_core::Result<(Tensor, Tensor)> {
    let bias = c
        .bias()
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg("MTCNN convolution without bias".into()))?;
    Ok((c.weight().clone(), bias))
}

/// A valid, stride-1 conv with bias and optional PReLU on the shared NHWC
/// path.
fn nhwc_conv(w: &Tensor, b: &Tensor, p: Option<&Tensor>) -> candle_core::Result<Conv2dNhwc> {
    let (co, ci, kh, kw) = w.dims4()?;
    let host = |t: &Tensor| {
        t.to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()
    };
    let act = match p {
        Some(a) => Act::PRelu(host(a)?),
        None => Act::None,
    };
    Conv2dNhwc::new(
        &host(w)?,
        [co, ci, kh, kw],
        host(b)?,
        ConvSpec::default(),
        act,
    )
}

fn fast_conv(c: &Conv2d, p: Option<&PReLU>) -> candle_core::Result<Conv2dNhwc> {
    let (w, b) = conv_parts(c)?;
    nhwc_conv(&w, &b, p.map(|p| p.weight()))
}

fn fast_dense(l: &Linear, p: Option<&PReLU>) -> candle_core::Result<DenseRows> {
    let b = l
        .bias()
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg("MTCNN dense layer without bias".into()))?;
    DenseRows::new(l.weight(), &b, p.map(|p| p.weight()))
}

/// Heads that read the same features are merged into one layer: one matrix
/// product instead of two or three.
fn merged_dense(ls: &[&Linear]) -> candle_core::Result<DenseRows> {
    let ws: Vec<Tensor> = ls.iter().map(|l| l.weight().clone()).collect();
    let bs = ls
        .iter()
        .map(|l| l.bias().cloned())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| candle_core::Error::Msg("MTCNN dense layer without bias".into()))?;
    DenseRows::new(&Tensor::cat(&ws, 0)?, &Tensor::cat(&bs, 0)?, None)
}

/// P-Net output rows computed per band on the CPU.
const PNET_BAND: usize = 32;
/// Crops per R-Net/O-Net chunk on the CPU.
const CROP_CHUNK: usize = 32;

/// The three networks rearranged for the NHWC CPU path (see
/// [`crate::models::ops::nhwc::Nhwc`] for why).
struct CpuNets {
    p1: Conv2dNhwc,
    p2: Conv2dNhwc,
    p3: Conv2dNhwc,
    p4: Conv2dNhwc,
    r1: Conv2dNhwc,
    r2: Conv2dNhwc,
    r3: Conv2dNhwc,
    r4: DenseRows,
    r5: DenseRows,
    o1: Conv2dNhwc,
    o2: Conv2dNhwc,
    o3: Conv2dNhwc,
    o4: Conv2dNhwc,
    o5: DenseRows,
    o6: DenseRows,
}

impl CpuNets {
    fn new(p: &PNet, r: &RNet, o: &ONet) -> candle_core::Result<Self> {
        let (w41, b41) = conv_parts(&p.conv4_1)?;
        let (w42, b42) = conv_parts(&p.conv4_2)?;
        Ok(Self {
            p1: fast_conv(&p.conv1, Some(&p.prelu1))?,
            p2: fast_conv(&p.conv2, Some(&p.prelu2))?,
            p3: fast_conv(&p.conv3, Some(&p.prelu3))?,
            p4: nhwc_conv(
                &Tensor::cat(&[&w41, &w42], 0)?,
                &Tensor::cat(&[&b41, &b42], 0)?,
                None,
            )?,
            r1: fast_conv(&r.conv1, Some(&r.prelu1))?,
            r2: fast_conv(&r.conv2, Some(&r.prelu2))?,
            r3: fast_conv(&r.conv3, Some(&r.prelu3))?,
            r4: fast_dense(&r.dense4, Some(&r.prelu4))?,
            r5: merged_dense(&[&r.dense5_1, &r.dense5_2])?,
            o1: fast_conv(&o.conv1, Some(&o.prelu1))?,
            o2: fast_conv(&o.conv2, Some(&o.prelu2))?,
            o3: fast_conv(&o.conv3, Some(&o.prelu3))?,
            o4: fast_conv(&o.conv4, Some(&o.prelu4))?,
            o5: fast_dense(&o.dense5, Some(&o.prelu5))?,
            o6: merged_dense(&[&o.dense6_1, &o.dense6_2, &o.dense6_3])?,
        })
    }

    /// P-Net in horizontal bands of [`PNET_BAND`] output rows. Each band
    /// reads the input rows its outputs see (2·rows + 10, starting at an even
    /// row so the 2×2 pooling lines up with the whole-image run), so the
    /// stitched result equals one pass over the whole level, while the
    /// intermediate maps stay small enough to live in cache.
    fn pnet(&self, x: Nhwc) -> candle_core::Result<PNetOut> {
        let row = x.w * x.c;
        let mut out: Option<PNetOut> = None;
        let mut j0 = 0;
        loop {
            let y0 = 2 * j0;
            let y1 = (y0 + 2 * PNET_BAND + 10).min(x.h);
            let last = y1 == x.h;
            let band = Nhwc::new(1, y1 - y0, x.w, x.c, x.data[y0 * row..y1 * row].to_vec());
            let part = self.pnet_band(&band)?;
            let rows = part.h;
            match &mut out {
                None => out = Some(part),
                Some(o) => {
                    o.h += part.h;
                    o.reg.extend_from_slice(&part.reg);
                    o.prob.extend_from_slice(&part.prob);
                }
            }
            if last {
                break;
            }
            j0 += rows;
        }
        Ok(out.expect("at least one band"))
    }

    fn pnet_band(&self, x: &Nhwc) -> candle_core::Result<PNetOut> {
        let x = self.p1.forward(x)?;
        let x = max_pool_ceil_nhwc(&x, 2, 2);
        let x = self.p2.forward(&x)?;
        let x = self.p3.forward(&x)?;
        let heads = self.p4.forward(&x)?;
        let cells = heads.h * heads.w;
        let mut reg = Vec::with_capacity(cells * 4);
        let mut prob = Vec::with_capacity(cells);
        for cell in heads.data.chunks_exact(6) {
            prob.push(softmax2(cell[0], cell[1]));
            reg.extend_from_slice(&cell[2..6]);
        }
        Ok(PNetOut {
            h: heads.h,
            w: heads.w,
            reg,
            prob,
        })
    }

    /// Run `net` over `x` in chunks of [`CROP_CHUNK`] crops and concatenate:
    /// small intermediate maps stay in cache and their memory is reused.
    fn chunked(
        x: Nhwc,
        net: impl Fn(Nhwc) -> candle_core::Result<CropOut>,
    ) -> candle_core::Result<CropOut> {
        let per = x.h * x.w * x.c;
        let mut out = CropOut {
            reg: Vec::with_capacity(x.n * 4),
            landmarks: Vec::new(),
            prob: Vec::with_capacity(x.n),
        };
        for data in x.data.chunks(per * CROP_CHUNK) {
            let n = data.len() / per;
            let part = net(Nhwc::new(n, x.h, x.w, x.c, data.to_vec()))?;
            out.reg.extend_from_slice(&part.reg);
            out.landmarks.extend_from_slice(&part.landmarks);
            out.prob.extend_from_slice(&part.prob);
        }
        Ok(out)
    }

    fn rnet(&self, x: Nhwc) -> candle_core::Result<CropOut> {
        Self::chunked(x, |x| self.rnet_chunk(x))
    }

    fn onet(&self, x: Nhwc) -> candle_core::Result<CropOut> {
        Self::chunked(x, |x| self.onet_chunk(x))
    }

    fn rnet_chunk(&self, x: Nhwc) -> candle_core::Result<CropOut> {
        let n = x.n;
        let x = self.r1.forward(&x)?;
        let x = max_pool_ceil_nhwc(&x, 3, 2);
        let x = self.r2.forward(&x)?;
        let x = max_pool_ceil_nhwc(&x, 3, 2);
        let x = self.r3.forward(&x)?;
        let x = self.r4.forward(flatten_whc_nhwc(&x), n)?;
        let heads = self.r5.forward(x, n)?;
        let mut out = CropOut {
            reg: Vec::with_capacity(n * 4),
            landmarks: Vec::new(),
            prob: Vec::with_capacity(n),
        };
        for row in heads.chunks_exact(6) {
            out.prob.push(softmax2(row[0], row[1]));
            out.reg.extend_from_slice(&row[2..6]);
        }
        Ok(out)
    }

    fn onet_chunk(&self, x: Nhwc) -> candle_core::Result<CropOut> {
        let n = x.n;
        let x = self.o1.forward(&x)?;
        let x = max_pool_ceil_nhwc(&x, 3, 2);
        let x = self.o2.forward(&x)?;
        let x = max_pool_ceil_nhwc(&x, 3, 2);
        let x = self.o3.forward(&x)?;
        let x = max_pool_ceil_nhwc(&x, 2, 2);
        let x = self.o4.forward(&x)?;
        let x = self.o5.forward(flatten_whc_nhwc(&x), n)?;
        let heads = self.o6.forward(x, n)?;
        let mut out = CropOut {
            reg: Vec::with_capacity(n * 4),
            landmarks: Vec::with_capacity(n * 10),
            prob: Vec::with_capacity(n),
        };
        for row in heads.chunks_exact(16) {
            out.prob.push(softmax2(row[0], row[1]));
            out.reg.extend_from_slice(&row[2..6]);
            out.landmarks.extend_from_slice(&row[6..16]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn random_nets() -> (PNet, RNet, ONet) {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        (
            PNet::load(vb.pp("pnet")).unwrap(),
            RNet::load(vb.pp("rnet")).unwrap(),
            ONet::load(vb.pp("onet")).unwrap(),
        )
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn random_input(n: usize, h: usize, w: usize) -> Nhwc {
        let t = Tensor::randn(0f32, 1.0, (n, 3, h, w), &Device::Cpu).unwrap();
        Nhwc::from_nchw(&t).unwrap()
    }

    #[test]
    fn missing_weights_say_how_to_fetch_them() {
        let err = Mtcnn::load("/nonexistent/mtcnn.safetensors", &Device::Cpu)
            .err()
            .expect("loading must fail");
        assert!(
            err.to_string().contains("scripts/fetch-weights.sh"),
            "{err}"
        );
    }

    #[test]
    fn banded_pnet_matches_whole_image_candle() {
        let (p, r, o) = random_nets();
        let cpu = CpuNets::new(&p, &r, &o).unwrap();
        // Odd sizes: several bands, ceil-mode pooling at the bottom edge.
        for (h, w) in [(101, 67), (12, 12), (47, 30)] {
            let x = random_input(1, h, w);
            let fast = cpu.pnet(x.clone()).unwrap();
            let (reg, prob) = p.forward(&x.to_nchw(&Device::Cpu).unwrap()).unwrap();
            let (_, _, rh, rw) = reg.dims4().unwrap();
            assert_eq!((fast.h, fast.w), (rh, rw));
            let reg: Vec<f32> = reg
                .permute((0, 2, 3, 1))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let prob: Vec<f32> = prob.flatten_all().unwrap().to_vec1().unwrap();
            assert!(max_diff(&fast.reg, &reg) < 1e-3);
            assert!(max_diff(&fast.prob, &prob) < 1e-4);
        }
    }

    #[test]
    fn chunked_rnet_onet_match_candle() {
        let (p, r, o) = random_nets();
        let cpu = CpuNets::new(&p, &r, &o).unwrap();
        let x = random_input(70, 24, 24);
        let fast = cpu.rnet(x.clone()).unwrap();
        let (reg, prob) = r.forward(&x.to_nchw(&Device::Cpu).unwrap()).unwrap();
        assert!(
            max_diff(
                &fast.reg,
                &reg.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            ) < 1e-3
        );
        assert!(max_diff(&fast.prob, &prob.to_vec1::<f32>().unwrap()) < 1e-4);

        let x = random_input(40, 48, 48);
        let fast = cpu.onet(x.clone()).unwrap();
        let (reg, marks, prob) = o.forward(&x.to_nchw(&Device::Cpu).unwrap()).unwrap();
        assert!(
            max_diff(
                &fast.reg,
                &reg.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            ) < 1e-3
        );
        assert!(
            max_diff(
                &fast.landmarks,
                &marks.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            ) < 1e-3
        );
        assert!(max_diff(&fast.prob, &prob.to_vec1::<f32>().unwrap()) < 1e-4);
    }
}
