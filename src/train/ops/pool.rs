//! A max-pool whose backward works for any kernel and stride (Candle 0.11
//! has none when kernel != stride), for the stems of the chest model's
//! attacker and classifier networks.

use candle_core::{Result, Tensor};

/// Max-pool (k×k, stride s, symmetric zero-cost padding `pad`) whose backward
/// works for any kernel/stride: the padded border is a large negative value,
/// each of the k² window offsets is a strided view (narrow + reshape), and
/// the result is their elementwise maximum. Output size is PyTorch's
/// floor((H + 2·pad − k)/s) + 1.
pub fn max_pool2d_padded(xs: &Tensor, k: usize, s: usize, pad: usize) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    let oh = (h + 2 * pad - k) / s + 1;
    let ow = (w + 2 * pad - k) / s + 1;
    // Room for k-1 + s*oh rows so every offset can take s*oh rows.
    let ph = (k - 1 + s * oh).max(h + 2 * pad);
    let pw = (k - 1 + s * ow).max(w + 2 * pad);
    let neg = -1e30f64;
    let dev = xs.device();
    // Pad `x` along `dim` with `before` and `after` slices of `neg`.
    let pad_along = |x: Tensor, dim: usize, before: usize, after: usize| -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let fill = |len: usize| -> Result<Tensor> {
            let mut shape = dims.clone();
            shape[dim] = len;
            Tensor::full(neg as f32, shape, dev)?.to_dtype(xs.dtype())
        };
        let mut parts = vec![];
        if before > 0 {
            parts.push(fill(before)?);
        }
        parts.push(x);
        if after > 0 {
            parts.push(fill(after)?);
        }
        Tensor::cat(&parts, dim)
    };
    let x = pad_along(xs.clone(), 3, pad, pw - w - pad)?;
    let x = pad_along(x, 2, pad, ph - h - pad)?;
    let mut out: Option<Tensor> = None;
    for ky in 0..k {
        for kx in 0..k {
            let v = x
                .narrow(2, ky, s * oh)?
                .narrow(3, kx, s * ow)?
                .reshape((n, c, oh, s, ow, s))?
                .narrow(3, 0, 1)?
                .narrow(5, 0, 1)?
                .reshape((n, c, oh, ow))?;
            out = Some(match out {
                None => v,
                Some(o) => o.maximum(&v)?,
            });
        }
    }
    out.ok_or_else(|| candle_core::Error::Msg("max_pool2d_padded: empty kernel".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ops::tensor::rnd;
    use candle_core::{Device, Var};

    #[test]
    fn max_pool_padded_matches_naive_and_has_gradient() {
        let dev = Device::Cpu;
        let (h, w) = (7, 6);
        let inp: Vec<f32> = rnd(h * w, 8).iter().map(|v| v - 0.5).collect();
        let v = Var::from_vec(inp.clone(), (1, 1, h, w), &dev).unwrap();
        let out = max_pool2d_padded(v.as_tensor(), 3, 2, 1).unwrap();
        assert_eq!(out.dims(), &[1, 1, 4, 3]);
        let got: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        for oy in 0..4i64 {
            for ox in 0..3i64 {
                let mut m = f32::NEG_INFINITY;
                for y in (2 * oy - 1)..(2 * oy + 2) {
                    for x in (2 * ox - 1)..(2 * ox + 2) {
                        if y >= 0 && x >= 0 && y < h as i64 && x < w as i64 {
                            m = m.max(inp[(y as usize) * w + x as usize]);
                        }
                    }
                }
                assert_eq!(got[(oy * 3 + ox) as usize], m);
            }
        }
        let g = out.sum_all().unwrap().backward().unwrap();
        let gs: f32 = g.get(&v).unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(
            (gs - 12.0).abs() < 1e-6,
            "one unit of gradient per output, got {gs}"
        );
    }
}
