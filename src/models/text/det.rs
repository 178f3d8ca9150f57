//! PP-OCRv4 mobile text detector (DBNet, Liao et al. 2020), as PaddleOCR
//! ships it in `ch_PP-OCRv4_det_infer.onnx`:
//!
//! - **Backbone** PPLCNetV3 in its re-parameterised inference form: a 3×3/2
//!   stem conv with BatchNorm, then 14 blocks of depthwise conv → pointwise
//!   conv. Every conv is followed by a "learnable affine" (scalar scale and
//!   bias, `lab`); every stride-1 conv also by hard-swish and a second
//!   affine (`act_lab`). Blocks 10 and 11 carry a squeeze-excite. Features
//!   are tapped after blocks 2, 4, 9 and 13 (strides 4, 8, 16, 32) and
//!   projected by 1×1 convs (`layer_list`).
//! - **Neck** RSE-FPN: per level a conv + residual squeeze-excite to 96
//!   channels, a top-down nearest-×2 sum, then per level a 3×3 conv +
//!   residual SE to 24 channels, upsampled to stride 4 and concatenated.
//! - **Head** DB binarisation branch: 3×3 conv + BN + ReLU, two 2×2/2
//!   transposed convs (the first with BN + ReLU), sigmoid. Output: a text
//!   probability map at input resolution.
//!
//! Tensor names are those written by `scripts/fetch-text-weights.sh`, which
//! checks the ONNX graph against this structure while converting. Scalar
//! affines and BatchNorm are folded into the conv weights at load time.
//!
//! Dense convs run as one GEMM each (Candle `matmul`, on the given device);
//! depthwise convs, squeeze-excite and the element-wise parts are plain
//! loops over channel-major feature maps.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// Stride of each backbone block's depthwise conv.
const STRIDES: [usize; 14] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1];
/// Blocks whose outputs feed the neck (strides 4, 8, 16, 32).
const TAPS: [usize; 4] = [2, 4, 9, 13];
const BN_EPS: f32 = 1e-5;
/// Hard-sigmoid slopes: Paddle's `hardsigmoid` (1/6) in the backbone SE,
/// slope 0.2 in the neck's RSE layers; both with offset 0.5.
const SE_SLOPE_BACKBONE: f32 = 1.0 / 6.0;
const SE_SLOPE_NECK: f32 = 0.2;

/// A channel-major (C×H×W) f32 feature map of one image.
#[derive(Clone, Debug)]
pub struct Fmap {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Fmap {
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), c * h * w, "feature map size");
        Self { c, h, w, data }
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }
}

#[derive(Clone, Copy, Debug)]
enum Act {
    None,
    Relu,
    /// hard-swish, then `scale * y + bias`.
    HswishLab(f32, f32),
    Sigmoid,
}

fn hswish(x: f32) -> f32 {
    x * (x + 3.0).clamp(0.0, 6.0) / 6.0
}

fn apply_act(data: &mut [f32], act: Act) {
    match act {
        Act::None => {}
        Act::Relu => data.iter_mut().for_each(|v| *v = v.max(0.0)),
        Act::HswishLab(s, b) => data.iter_mut().for_each(|v| *v = s * hswish(*v) + b),
        Act::Sigmoid => data.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
    }
}

/// The converted tensors, on the CPU, by name.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn tensor(&self, name: &str) -> Result<Tensor> {
        let t = self
            .0
            .get(name)
            .with_context(|| format!("text detector weights lack {name}"))?;
        Ok(t.to_dtype(DType::F32)?)
    }

    fn vec(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.tensor(name)?.flatten_all()?.to_vec1::<f32>()?)
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `[scale, bias]` of a learnable affine.
    fn lab(&self, name: &str) -> Result<(f32, f32)> {
        let v = self.vec(name)?;
        ensure!(v.len() == 2, "{name}: expected [scale, bias]");
        Ok((v[0], v[1]))
    }

    /// Per-channel `(scale, shift)` of an inference BatchNorm.
    fn bn(&self, name: &str) -> Result<(Vec<f32>, Vec<f32>)> {
        let g = self.vec(&format!("{name}.weight"))?;
        let b = self.vec(&format!("{name}.bias"))?;
        let m = self.vec(&format!("{name}.mean"))?;
        let v = self.vec(&format!("{name}.var"))?;
        let scale: Vec<f32> = g
            .iter()
            .zip(&v)
            .map(|(g, v)| g / (v + BN_EPS).sqrt())
            .collect();
        let shift = b
            .iter()
            .zip(&m)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok((scale, shift))
    }
}

/// Multiplies output channel `o` of a `[cout, …]` weight by `scale[o]`.
fn scale_rows(w: &mut [f32], scale: &[f32]) {
    let per = w.len() / scale.len();
    for (row, s) in w.chunks_mut(per).zip(scale) {
        row.iter_mut().for_each(|v| *v *= s);
    }
}

/// A dense conv (groups = 1, square kernel, padding k/2) run as one GEMM
/// `[cout, cin·k·k] × [cin·k·k, oh·ow]`.
///
/// A stride-1 k×k conv that does not widen the channels (the neck's and the
/// head's 3×3 convs) instead runs `[k·k·cout, cin] × [cin, h·w]` and sums the
/// k·k shifted planes: the same multiply count without an im2col buffer
/// k·k times the input's size.
struct DenseConv {
    w: Tensor,
    /// Rows `(ky, kx, co)`, for the shift-and-add form.
    w_shift: Option<Tensor>,
    b: Vec<f32>,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    act: Act,
}

impl DenseConv {
    /// `w` is `[cout, cin, k, k]` flattened; `b` has `cout` entries.
    fn new(
        w: Vec<f32>,
        b: Vec<f32>,
        shape: &[usize],
        stride: usize,
        act: Act,
        device: &Device,
    ) -> Result<Self> {
        ensure!(
            shape.len() == 4 && shape[2] == shape[3],
            "conv weight shape {shape:?}"
        );
        let (cout, cin, k) = (shape[0], shape[1], shape[2]);
        ensure!(b.len() == cout, "conv bias length");
        let w_shift = if stride == 1 && k > 1 && cout <= cin {
            let mut ws = vec![0.0f32; w.len()];
            for co in 0..cout {
                for ci in 0..cin {
                    for kk in 0..k * k {
                        ws[(kk * cout + co) * cin + ci] = w[(co * cin + ci) * k * k + kk];
                    }
                }
            }
            Some(Tensor::from_vec(ws, (k * k * cout, cin), device)?)
        } else {
            None
        };
        let w = Tensor::from_vec(w, (cout, cin * k * k), device)?;
        Ok(Self {
            w,
            w_shift,
            b,
            cin,
            cout,
            k,
            stride,
            act,
        })
    }

    /// Loads `{name}.weight` (+ `{name}.bias` when present, else zero), then
    /// folds `bn` (per-channel) and `lab` (scalar) into it.
    fn load(
        ws: &Weights,
        name: &str,
        stride: usize,
        bn: Option<&str>,
        lab: Option<&str>,
        act: Act,
        device: &Device,
    ) -> Result<Self> {
        let wt = ws.tensor(&format!("{name}.weight"))?;
        let shape = wt.dims().to_vec();
        let mut w = wt.flatten_all()?.to_vec1::<f32>()?;
        let bias_name = format!("{name}.bias");
        let mut b = if ws.has(&bias_name) {
            ws.vec(&bias_name)?
        } else {
            vec![0.0; shape[0]]
        };
        if let Some(bn) = bn {
            let (scale, shift) = ws.bn(bn)?;
            scale_rows(&mut w, &scale);
            b = b
                .iter()
                .zip(&scale)
                .zip(&shift)
                .map(|((b, s), t)| b * s + t)
                .collect();
        }
        if let Some(lab) = lab {
            let (s, t) = ws.lab(lab)?;
            w.iter_mut().for_each(|v| *v *= s);
            b.iter_mut().for_each(|v| *v = *v * s + t);
        }
        Self::new(w, b, &shape, stride, act, device)
    }

    fn forward(&self, x: &Fmap) -> Result<Fmap> {
        ensure!(
            x.c == self.cin,
            "conv expects {} channels, got {}",
            self.cin,
            x.c
        );
        if let Some(ws) = &self.w_shift {
            return self.forward_shift(ws, x);
        }
        let pad = self.k / 2;
        let oh = (x.h + 2 * pad - self.k) / self.stride + 1;
        let ow = (x.w + 2 * pad - self.k) / self.stride + 1;
        let cols = if self.k == 1 && self.stride == 1 {
            Tensor::from_slice(&x.data, (self.cin, oh * ow), self.w.device())?
        } else {
            let cols = im2col(x, self.k, self.stride, pad, oh, ow);
            Tensor::from_vec(cols, (self.cin * self.k * self.k, oh * ow), self.w.device())?
        };
        let mut data = self.w.matmul(&cols)?.flatten_all()?.to_vec1::<f32>()?;
        let act = self.act;
        data.par_chunks_mut(oh * ow)
            .zip(&self.b)
            .for_each(|(plane, b)| {
                plane.iter_mut().for_each(|v| *v += b);
                apply_act(plane, act);
            });
        Ok(Fmap::new(self.cout, oh, ow, data))
    }
}

impl DenseConv {
    /// Stride 1, padding k/2: `out[co](y, x) = b + Σ_{ky,kx} Y[ky,kx,co](y+ky−p, x+kx−p)`
    /// with `Y = w_shift × x`.
    fn forward_shift(&self, ws: &Tensor, x: &Fmap) -> Result<Fmap> {
        let (k, cout, h, w) = (self.k, self.cout, x.h, x.w);
        let pad = k / 2;
        let hw = h * w;
        let xs = Tensor::from_slice(&x.data, (self.cin, hw), ws.device())?;
        let y = ws.matmul(&xs)?.flatten_all()?.to_vec1::<f32>()?;
        let mut data = vec![0.0f32; cout * hw];
        let act = self.act;
        data.par_chunks_mut(hw).enumerate().for_each(|(co, out)| {
            out.fill(self.b[co]);
            for ky in 0..k {
                for kx in 0..k {
                    let src = &y[((ky * k + kx) * cout + co) * hw..][..hw];
                    let lo = pad.saturating_sub(kx);
                    let hi = (w + pad).saturating_sub(kx).min(w);
                    if lo >= hi {
                        continue;
                    }
                    for oy in 0..h {
                        let iy = oy + ky;
                        if iy < pad || iy - pad >= h {
                            continue;
                        }
                        let srow = &src[(iy - pad) * w + lo + kx - pad..][..hi - lo];
                        let orow = &mut out[oy * w + lo..oy * w + hi];
                        orow.iter_mut().zip(srow).for_each(|(o, v)| *o += v);
                    }
                }
            }
            apply_act(out, act);
        });
        Ok(Fmap::new(cout, h, w, data))
    }
}

/// Rows `(ci, ky, kx)`, columns `(oy, ox)`, zero padding.
fn im2col(x: &Fmap, k: usize, stride: usize, pad: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut cols = vec![0.0f32; x.c * k * k * oh * ow];
    cols.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(row, out)| {
            let (ci, ky, kx) = (row / (k * k), (row / k) % k, row % k);
            let src = &x.data[ci * x.plane()..(ci + 1) * x.plane()];
            for oy in 0..oh {
                let iy = (oy * stride + ky) as isize - pad as isize;
                if iy < 0 || iy >= x.h as isize {
                    continue;
                }
                let srow = &src[iy as usize * x.w..(iy as usize + 1) * x.w];
                let orow = &mut out[oy * ow..(oy + 1) * ow];
                for (ox, o) in orow.iter_mut().enumerate() {
                    let ix = (ox * stride + kx) as isize - pad as isize;
                    if ix >= 0 && (ix as usize) < x.w {
                        *o = srow[ix as usize];
                    }
                }
            }
        });
    cols
}

/// Depthwise conv (one k×k filter per channel, padding k/2), scalar affine
/// folded in, activation fused.
struct DepthwiseConv {
    w: Vec<f32>,
    b: Vec<f32>,
    c: usize,
    k: usize,
    stride: usize,
    act: Act,
}

impl DepthwiseConv {
    fn load(ws: &Weights, name: &str, stride: usize, act: Act) -> Result<Self> {
        let wt = ws.tensor(&format!("{name}.weight"))?;
        let (c, one, k, k2) = wt.dims4()?;
        ensure!(
            one == 1 && k == k2,
            "{name}: depthwise weight shape {:?}",
            wt.dims()
        );
        let mut w = wt.flatten_all()?.to_vec1::<f32>()?;
        let mut b = ws.vec(&format!("{name}.bias"))?;
        let (s, t) = ws.lab(&format!("{name}.lab"))?;
        w.iter_mut().for_each(|v| *v *= s);
        b.iter_mut().for_each(|v| *v = *v * s + t);
        Ok(Self {
            w,
            b,
            c,
            k,
            stride,
            act,
        })
    }

    fn forward(&self, x: &Fmap) -> Result<Fmap> {
        ensure!(
            x.c == self.c,
            "depthwise conv expects {} channels, got {}",
            self.c,
            x.c
        );
        let (k, s) = (self.k, self.stride);
        let pad = k / 2;
        let oh = (x.h + 2 * pad - k) / s + 1;
        let ow = (x.w + 2 * pad - k) / s + 1;
        let mut data = vec![0.0f32; self.c * oh * ow];
        let act = self.act;
        data.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(c, out)| {
                let src = &x.data[c * x.plane()..(c + 1) * x.plane()];
                let filt = &self.w[c * k * k..(c + 1) * k * k];
                out.iter_mut().for_each(|v| *v = self.b[c]);
                for ky in 0..k {
                    for kx in 0..k {
                        let wv = filt[ky * k + kx];
                        // ox range whose input column lies inside the image.
                        let lo = pad.saturating_sub(kx).div_ceil(s);
                        let hi = ((x.w + pad - kx) as isize - 1).div_euclid(s as isize) + 1;
                        let hi = (hi.max(0) as usize).min(ow);
                        if lo >= hi {
                            continue;
                        }
                        for oy in 0..oh {
                            let iy = (oy * s + ky) as isize - pad as isize;
                            if iy < 0 || iy >= x.h as isize {
                                continue;
                            }
                            let srow = &src[iy as usize * x.w..];
                            let orow = &mut out[oy * ow..(oy + 1) * ow];
                            if s == 1 {
                                let off = lo + kx - pad;
                                for (o, i) in orow[lo..hi].iter_mut().zip(&srow[off..off + hi - lo])
                                {
                                    *o += wv * i;
                                }
                            } else {
                                for (ox, o) in orow.iter_mut().enumerate().take(hi).skip(lo) {
                                    *o += wv * srow[ox * s + kx - pad];
                                }
                            }
                        }
                    }
                }
                apply_act(out, act);
            });
        Ok(Fmap::new(self.c, oh, ow, data))
    }
}

/// Squeeze-excite: global average → 1×1 conv → ReLU → 1×1 conv →
/// hard-sigmoid; the result scales the channels (`residual`: `x + x·se`).
struct SqueezeExcite {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    c: usize,
    r: usize,
    slope: f32,
    residual: bool,
}

impl SqueezeExcite {
    fn load(ws: &Weights, name: &str, slope: f32, residual: bool) -> Result<Self> {
        let w1 = ws.vec(&format!("{name}.conv1.weight"))?;
        let b1 = ws.vec(&format!("{name}.conv1.bias"))?;
        let w2 = ws.vec(&format!("{name}.conv2.weight"))?;
        let b2 = ws.vec(&format!("{name}.conv2.bias"))?;
        let r = b1.len();
        let c = b2.len();
        ensure!(w1.len() == r * c && w2.len() == r * c, "{name}: SE shapes");
        Ok(Self {
            w1,
            b1,
            w2,
            b2,
            c,
            r,
            slope,
            residual,
        })
    }

    fn forward(&self, x: &mut Fmap) -> Result<()> {
        ensure!(x.c == self.c, "SE expects {} channels, got {}", self.c, x.c);
        let n = x.plane() as f32;
        let pooled: Vec<f32> = x
            .data
            .chunks(x.plane())
            .map(|p| p.iter().sum::<f32>() / n)
            .collect();
        let hidden: Vec<f32> = (0..self.r)
            .map(|o| {
                let row = &self.w1[o * self.c..(o + 1) * self.c];
                (row.iter().zip(&pooled).map(|(w, v)| w * v).sum::<f32>() + self.b1[o]).max(0.0)
            })
            .collect();
        let (slope, residual) = (self.slope, self.residual);
        let plane = x.plane();
        x.data.par_chunks_mut(plane).enumerate().for_each(|(o, p)| {
            let row = &self.w2[o * self.r..(o + 1) * self.r];
            let z = row.iter().zip(&hidden).map(|(w, v)| w * v).sum::<f32>() + self.b2[o];
            let g = (slope * z + 0.5).clamp(0.0, 1.0);
            let g = if residual { 1.0 + g } else { g };
            p.iter_mut().for_each(|v| *v *= g);
        });
        Ok(())
    }
}

/// A transposed conv with kernel 2, stride 2 (each input pixel writes its own
/// 2×2 output cell), run as one GEMM `[cout·4, cin] × [cin, h·w]`.
struct ConvTranspose2x2 {
    w: Tensor,
    b: Vec<f32>,
    cin: usize,
    cout: usize,
    act: Act,
}

impl ConvTranspose2x2 {
    fn load(ws: &Weights, name: &str, bn: Option<&str>, act: Act, device: &Device) -> Result<Self> {
        let wt = ws.tensor(&format!("{name}.weight"))?;
        let (cin, cout, kh, kw) = wt.dims4()?;
        ensure!(kh == 2 && kw == 2, "{name}: 2×2 kernel expected");
        // [cin, cout, 2, 2] → [cout, 2, 2, cin]
        let mut w = wt
            .permute((1, 2, 3, 0))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut b = ws.vec(&format!("{name}.bias"))?;
        ensure!(b.len() == cout, "{name}: bias length");
        if let Some(bn) = bn {
            let (scale, shift) = ws.bn(bn)?;
            scale_rows(&mut w, &scale);
            b = b
                .iter()
                .zip(&scale)
                .zip(&shift)
                .map(|((b, s), t)| b * s + t)
                .collect();
        }
        let w = Tensor::from_vec(w, (cout * 4, cin), device)?;
        Ok(Self {
            w,
            b,
            cin,
            cout,
            act,
        })
    }

    fn forward(&self, x: &Fmap) -> Result<Fmap> {
        ensure!(
            x.c == self.cin,
            "conv transpose expects {} channels, got {}",
            self.cin,
            x.c
        );
        let xs = Tensor::from_slice(&x.data, (self.cin, x.plane()), self.w.device())?;
        let y = self.w.matmul(&xs)?.flatten_all()?.to_vec1::<f32>()?;
        let (h, w, plane) = (x.h, x.w, x.plane());
        let (oh, ow) = (2 * h, 2 * w);
        let mut data = vec![0.0f32; self.cout * oh * ow];
        let act = self.act;
        data.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(co, out)| {
                for d in 0..4 {
                    let (dy, dx) = (d / 2, d % 2);
                    let src = &y[(co * 4 + d) * plane..(co * 4 + d + 1) * plane];
                    for iy in 0..h {
                        let orow = &mut out[(2 * iy + dy) * ow..(2 * iy + dy + 1) * ow];
                        for ix in 0..w {
                            orow[2 * ix + dx] = src[iy * w + ix] + self.b[co];
                        }
                    }
                }
                apply_act(out, act);
            });
        Ok(Fmap::new(self.cout, oh, ow, data))
    }
}

struct Block {
    dw: DepthwiseConv,
    se: Option<SqueezeExcite>,
    pw: DenseConv,
}

/// Conv (no bias) + residual squeeze-excite: one level of the RSE-FPN.
struct RseLayer {
    conv: DenseConv,
    se: SqueezeExcite,
}

impl RseLayer {
    fn load(ws: &Weights, name: &str, device: &Device) -> Result<Self> {
        Ok(Self {
            conv: DenseConv::load(
                ws,
                &format!("{name}.conv"),
                1,
                None,
                None,
                Act::None,
                device,
            )?,
            se: SqueezeExcite::load(ws, &format!("{name}.se"), SE_SLOPE_NECK, true)?,
        })
    }

    fn forward(&self, x: &Fmap) -> Result<Fmap> {
        let mut y = self.conv.forward(x)?;
        self.se.forward(&mut y)?;
        Ok(y)
    }
}

fn upsample_nearest(x: &Fmap, f: usize) -> Fmap {
    if f == 1 {
        return x.clone();
    }
    let (oh, ow) = (x.h * f, x.w * f);
    let mut data = vec![0.0f32; x.c * oh * ow];
    data.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(c, out)| {
            let src = &x.data[c * x.plane()..(c + 1) * x.plane()];
            for oy in 0..oh {
                let srow = &src[(oy / f) * x.w..(oy / f + 1) * x.w];
                for (ox, o) in out[oy * ow..(oy + 1) * ow].iter_mut().enumerate() {
                    *o = srow[ox / f];
                }
            }
        });
    Fmap::new(x.c, oh, ow, data)
}

fn add_into(dst: &mut Fmap, src: &Fmap) -> Result<()> {
    ensure!(
        (dst.c, dst.h, dst.w) == (src.c, src.h, src.w),
        "shape mismatch in add"
    );
    dst.data
        .iter_mut()
        .zip(&src.data)
        .for_each(|(d, s)| *d += s);
    Ok(())
}

/// The detection network: a normalised BGR image (3×H×W, H and W multiples
/// of 32) in, a 1×H×W text probability map out.
pub struct DbNet {
    stem: DenseConv,
    blocks: Vec<Block>,
    layer_list: Vec<DenseConv>,
    ins_conv: Vec<RseLayer>,
    inp_conv: Vec<RseLayer>,
    head_conv: DenseConv,
    head_up1: ConvTranspose2x2,
    head_up2: ConvTranspose2x2,
}

impl DbNet {
    /// Loads `ppocr_det.safetensors` as written by `scripts/fetch-text-weights.sh`.
    /// Weights for GEMMs live on `device`; the rest runs on the CPU.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("loading {}", path.display()))?;
        let ws = Weights(map);
        let stem = DenseConv::load(
            &ws,
            "backbone.conv1",
            2,
            Some("backbone.conv1.bn"),
            None,
            Act::None,
            device,
        )?;
        let mut blocks = Vec::new();
        for (i, &stride) in STRIDES.iter().enumerate() {
            let p = format!("backbone.blocks.{i}");
            let act_name = format!("{p}.dw.act_lab");
            let dw_act = if ws.has(&act_name) {
                let (s, b) = ws.lab(&act_name)?;
                Act::HswishLab(s, b)
            } else {
                Act::None
            };
            if matches!(dw_act, Act::None) != (stride == 2) {
                bail!("{p}: weights do not match the expected block strides");
            }
            let se = if ws.has(&format!("{p}.se.conv1.weight")) {
                Some(SqueezeExcite::load(
                    &ws,
                    &format!("{p}.se"),
                    SE_SLOPE_BACKBONE,
                    false,
                )?)
            } else {
                None
            };
            let (s, b) = ws.lab(&format!("{p}.pw.act_lab"))?;
            blocks.push(Block {
                dw: DepthwiseConv::load(&ws, &format!("{p}.dw"), stride, dw_act)?,
                se,
                pw: DenseConv::load(
                    &ws,
                    &format!("{p}.pw"),
                    1,
                    None,
                    Some(&format!("{p}.pw.lab")),
                    Act::HswishLab(s, b),
                    device,
                )?,
            });
        }
        ensure!(
            !ws.has(&format!("backbone.blocks.{}.dw.weight", STRIDES.len())),
            "text detector weights have more backbone blocks than expected"
        );
        let level = |prefix: &str| -> Result<Vec<RseLayer>> {
            (0..4)
                .map(|j| RseLayer::load(&ws, &format!("{prefix}.{j}"), device))
                .collect()
        };
        let layer_list = (0..4)
            .map(|j| {
                DenseConv::load(
                    &ws,
                    &format!("backbone.layer_list.{j}"),
                    1,
                    None,
                    None,
                    Act::None,
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            stem,
            blocks,
            layer_list,
            ins_conv: level("neck.ins_conv")?,
            inp_conv: level("neck.inp_conv")?,
            head_conv: DenseConv::load(
                &ws,
                "head.conv1",
                1,
                Some("head.bn1"),
                None,
                Act::Relu,
                device,
            )?,
            head_up1: ConvTranspose2x2::load(
                &ws,
                "head.conv2",
                Some("head.bn2"),
                Act::Relu,
                device,
            )?,
            head_up2: ConvTranspose2x2::load(&ws, "head.conv3", None, Act::Sigmoid, device)?,
        })
    }

    /// Text probability (1×H×W) for a normalised 3×H×W input.
    pub fn forward(&self, x: &Fmap) -> Result<Fmap> {
        ensure!(x.c == 3, "3-channel input expected");
        ensure!(
            x.h.is_multiple_of(32) && x.w.is_multiple_of(32) && x.h > 0 && x.w > 0,
            "input sides must be positive multiples of 32, got {}×{}",
            x.w,
            x.h
        );
        let mut x = self.stem.forward(x)?;
        let mut feats = Vec::with_capacity(4);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.dw.forward(&x)?;
            if let Some(se) = &block.se {
                se.forward(&mut x)?;
            }
            x = block.pw.forward(&x)?;
            if TAPS.contains(&i) {
                feats.push(self.layer_list[feats.len()].forward(&x)?);
            }
        }
        // Top-down: level 3 (stride 32) down to level 0 (stride 4).
        let mut ins: Vec<Fmap> = feats
            .iter()
            .zip(&self.ins_conv)
            .map(|(f, l)| l.forward(f))
            .collect::<Result<_>>()?;
        for j in (0..3).rev() {
            let up = upsample_nearest(&ins[j + 1], 2);
            add_into(&mut ins[j], &up)?;
        }
        let ps: Vec<Fmap> = ins
            .iter()
            .zip(&self.inp_conv)
            .map(|(f, l)| l.forward(f))
            .collect::<Result<_>>()?;
        // Concatenate [p5↑8, p4↑4, p3↑2, p2] along channels.
        let mut cat = Vec::new();
        let mut c = 0;
        for j in (0..4).rev() {
            let up = upsample_nearest(&ps[j], 1 << j);
            ensure!(
                (up.h, up.w) == (ps[0].h, ps[0].w),
                "FPN level sizes disagree"
            );
            c += up.c;
            cat.extend_from_slice(&up.data);
        }
        let cat = Fmap::new(c, ps[0].h, ps[0].w, cat);
        let y = self.head_conv.forward(&cat)?;
        let y = self.head_up1.forward(&y)?;
        self.head_up2.forward(&y)
    }
}
