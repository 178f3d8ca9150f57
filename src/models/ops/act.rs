//! The bias and activation fused into each convolution's output pass: the
//! values are still in cache when the matrix product has written them, so
//! adding the bias and activating there costs no extra sweep over memory.

use candle_core::{Result, Tensor};

/// An activation applied after the per-channel bias.
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// Per-channel slopes for negative inputs.
    PRelu(Vec<f32>),
    /// Hard-swish `x·clamp(x+3, 0, 6)/6`, then the scalar affine
    /// `scale·y + shift` (PP-LCNetV3's "learnable affine"; `(1, 0)` for plain
    /// hard-swish).
    HardSwish {
        scale: f32,
        shift: f32,
    },
    Sigmoid,
    Tanh,
}

impl Act {
    /// Plain hard-swish.
    pub fn hard_swish() -> Self {
        Act::HardSwish {
            scale: 1.0,
            shift: 0.0,
        }
    }

    /// Apply to one pixel's channel vector.
    #[inline(always)]
    pub(super) fn apply_row(&self, row: &mut [f32]) {
        match self {
            Act::None => {}
            Act::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
            Act::PRelu(a) => row.iter_mut().zip(a).for_each(|(v, a)| *v = prelu(*v, *a)),
            Act::HardSwish { scale, shift } => row
                .iter_mut()
                .for_each(|v| *v = hard_swish(*v, *scale, *shift)),
            Act::Sigmoid => row.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            Act::Tanh => row.iter_mut().for_each(|v| *v = v.tanh()),
        }
    }

    /// The same activation on an NCHW tensor (the candle path, e.g. CUDA).
    pub fn forward_nchw(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::None => Ok(x.clone()),
            Act::Relu => x.relu(),
            Act::PRelu(a) => {
                let a = Tensor::from_slice(a, (1, a.len(), 1, 1), x.device())?;
                x.relu()? + x.minimum(0f32)?.broadcast_mul(&a)?
            }
            Act::HardSwish { scale, shift } => {
                let g = ((x + 3.0)?.clamp(0f32, 6f32)? / 6.0)?;
                (x * g)?.affine(*scale as f64, *shift as f64)
            }
            Act::Sigmoid => candle_nn::ops::sigmoid(x),
            Act::Tanh => x.tanh(),
        }
    }
}

/// PReLU as a select rather than a branch: the sign of a conv output is
/// noise to the branch predictor (perf put the branchy per-pixel pass at 12 %
/// of MTCNN's time). Same bits as the branch.
#[inline(always)]
pub(super) fn prelu(v: f32, a: f32) -> f32 {
    let neg = v * a;
    if v < 0.0 {
        neg
    } else {
        v
    }
}

/// Add a per-channel bias and activate, in place, over rows of `bias.len()`
/// channels (NHWC pixels). The activation is matched once, outside the pixel
/// loop, so the common cases compile to straight vector code: AVX-512 or
/// AVX2 code where the CPU has it (the same operations, so the same bits; perf put
/// the SSE2 version at 7 % of the text route).
pub fn bias_act(data: &mut [f32], bias: &[f32], act: &Act) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            unsafe { bias_act_avx512(data, bias, act) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { bias_act_avx2(data, bias, act) };
            return;
        }
    }
    bias_act_portable(data, bias, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bias_act_avx2(data: &mut [f32], bias: &[f32], act: &Act) {
    bias_act_portable(data, bias, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bias_act_avx512(data: &mut [f32], bias: &[f32], act: &Act) {
    bias_act_portable(data, bias, act)
}

#[inline(always)]
fn bias_act_portable(data: &mut [f32], bias: &[f32], act: &Act) {
    // Index loops, not iterator adaptors: `for_each` over chunks compiles to
    // a separate `fold` that is not inlined, so it kept SSE2 code inside the
    // AVX2 caller (perf: 4.6 % of the detector).
    let c = bias.len();
    let pixels = data.len() / c;
    macro_rules! each {
        (|$v:ident, $i:ident| $body:expr) => {
            for p in 0..pixels {
                let row = &mut data[p * c..(p + 1) * c];
                for $i in 0..c {
                    let $v = row[$i] + bias[$i];
                    row[$i] = $body;
                }
            }
        };
    }
    match act {
        Act::None => each!(|v, _i| v),
        Act::Relu => each!(|v, _i| v.max(0.0)),
        Act::PRelu(a) => each!(|v, i| prelu(v, a[i])),
        Act::HardSwish { scale, shift } => each!(|v, _i| hard_swish(v, *scale, *shift)),
        _ => data.chunks_exact_mut(c).for_each(|row| {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            act.apply_row(row);
        }),
    }
}

/// Hard-swish then the scalar affine (see [`Act::HardSwish`]).
#[inline(always)]
fn hard_swish(v: f32, scale: f32, shift: f32) -> f32 {
    scale * (v * (v + 3.0).clamp(0.0, 6.0) / 6.0) + shift
}

/// As [`bias_act`], for rows of `ld` floats of which the `bias.len()` at
/// `offset` are this layer's (one group's columns of a grouped output).
pub fn bias_act_strided(data: &mut [f32], ld: usize, offset: usize, bias: &[f32], act: &Act) {
    let n = bias.len();
    for row in data.chunks_mut(ld) {
        if row.len() < offset + n {
            break;
        }
        let row = &mut row[offset..offset + n];
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        act.apply_row(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn host_and_tensor_activations_agree() -> Result<()> {
        let dev = Device::Cpu;
        let vals: Vec<f32> = (0..24).map(|i| i as f32 * 0.7 - 8.0).collect();
        for act in [
            Act::None,
            Act::Relu,
            Act::PRelu(vec![0.1, 0.2, 0.3]),
            Act::HardSwish {
                scale: 1.5,
                shift: -0.2,
            },
            Act::Sigmoid,
            Act::Tanh,
        ] {
            let mut host = vals.clone();
            bias_act(&mut host, &[0.0; 3], &act);
            let t = Tensor::from_slice(&vals, (1, 8, 3, 1), &dev)?.permute((0, 2, 1, 3))?;
            let t = act
                .forward_nchw(&t.contiguous()?)?
                .permute((0, 2, 1, 3))?
                .flatten_all()?
                .to_vec1::<f32>()?;
            for (a, b) in host.iter().zip(&t) {
                assert!((a - b).abs() < 1e-5, "{act:?}: {a} vs {b}");
            }
        }
        Ok(())
    }
}
