//! Differentiable bilinear resampling for the chest deformation model
//! (PriCheXy-Net): PyTorch's `grid_sample` and the identity grid it offsets.
//! Candle 0.11 has no grid_sample, so it is composed from primitives whose
//! backward passes candle does have (gather, arithmetic).

use candle_core::{DType, Result, Tensor};

/// Bilinear `grid_sample` with `padding_mode="border"` and
/// `align_corners=true`, as PyTorch defines it.
///
/// `input` is N×C×H×W, `grid` is N×Ho×Wo×2 with (x, y) in [-1, 1]; -1 is the
/// centre of the first pixel and +1 that of the last. Coordinates outside are
/// clamped to the border. Gradients flow to both `input` and `grid` (the
/// corner indices come from `floor`, which candle treats as constant).
pub fn grid_sample(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = input.dims4()?;
    let (gn, ho, wo, two) = grid.dims4()?;
    if gn != n || two != 2 {
        candle_core::bail!(
            "grid_sample: grid {:?} for input {:?}",
            grid.dims(),
            input.dims()
        );
    }
    let gx = grid.narrow(3, 0, 1)?.squeeze(3)?; // N×Ho×Wo
    let gy = grid.narrow(3, 1, 1)?.squeeze(3)?;
    let ix = ((gx + 1.0)? * ((w as f64 - 1.0) / 2.0))?.clamp(0f32, (w - 1) as f32)?;
    let iy = ((gy + 1.0)? * ((h as f64 - 1.0) / 2.0))?.clamp(0f32, (h - 1) as f32)?;
    let x0 = ix.floor()?.detach();
    let y0 = iy.floor()?.detach();
    let wx = (&ix - &x0)?; // in [0, 1]
    let wy = (&iy - &y0)?;
    let x1 = (&x0 + 1.0)?.clamp(0f32, (w - 1) as f32)?;
    let y1 = (&y0 + 1.0)?.clamp(0f32, (h - 1) as f32)?;
    let flat = input.reshape((n, c, h * w))?;
    let gather = |yy: &Tensor, xx: &Tensor| -> Result<Tensor> {
        let idx = ((yy * w as f64)? + xx)?
            .to_dtype(DType::U32)?
            .reshape((n, 1, ho * wo))?
            .broadcast_as((n, c, ho * wo))?
            .contiguous()?;
        flat.gather(&idx, 2)?.reshape((n, c, ho, wo))
    };
    let v00 = gather(&y0, &x0)?;
    let v01 = gather(&y0, &x1)?;
    let v10 = gather(&y1, &x0)?;
    let v11 = gather(&y1, &x1)?;
    let wx = wx.unsqueeze(1)?.to_dtype(input.dtype())?;
    let wy = wy.unsqueeze(1)?.to_dtype(input.dtype())?;
    let top = (v00.broadcast_mul(&(1.0 - &wx)?)? + v01.broadcast_mul(&wx)?)?;
    let bot = (v10.broadcast_mul(&(1.0 - &wx)?)? + v11.broadcast_mul(&wx)?)?;
    top.broadcast_mul(&(1.0 - &wy)?)? + bot.broadcast_mul(&wy)?
}

/// The identity sampling grid (N×H×W×2, x then y, align_corners=true).
pub fn identity_grid(n: usize, h: usize, w: usize, device: &candle_core::Device) -> Result<Tensor> {
    let lin = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|i| {
                if len > 1 {
                    -1.0 + 2.0 * i as f32 / (len - 1) as f32
                } else {
                    0.0
                }
            })
            .collect()
    };
    let xs = Tensor::from_vec(lin(w), (1, w), device)?.broadcast_as((h, w))?;
    let ys = Tensor::from_vec(lin(h), (h, 1), device)?.broadcast_as((h, w))?;
    Tensor::stack(&[xs, ys], 2)?
        .unsqueeze(0)?
        .broadcast_as((n, h, w, 2))?
        .contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ops::tensor::rnd;
    use candle_core::{Device, Var};

    /// Reference grid_sample written independently with f64 loops.
    fn grid_sample_ref(
        inp: &[f32],
        c: usize,
        h: usize,
        w: usize,
        grid: &[f32],
        ho: usize,
        wo: usize,
    ) -> Vec<f64> {
        let mut out = vec![0f64; c * ho * wo];
        for i in 0..ho * wo {
            let gx = grid[2 * i] as f64;
            let gy = grid[2 * i + 1] as f64;
            let x = ((gx + 1.0) / 2.0 * (w - 1) as f64).clamp(0.0, (w - 1) as f64);
            let y = ((gy + 1.0) / 2.0 * (h - 1) as f64).clamp(0.0, (h - 1) as f64);
            for ch in 0..c {
                let px = |yy: i64, xx: i64| {
                    let yy = yy.clamp(0, h as i64 - 1) as usize;
                    let xx = xx.clamp(0, w as i64 - 1) as usize;
                    inp[ch * h * w + yy * w + xx] as f64
                };
                let (x0, y0) = (x.floor(), y.floor());
                let (fx, fy) = (x - x0, y - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                out[ch * ho * wo + i] = px(y0, x0) * (1.0 - fx) * (1.0 - fy)
                    + px(y0, x0 + 1) * fx * (1.0 - fy)
                    + px(y0 + 1, x0) * (1.0 - fx) * fy
                    + px(y0 + 1, x0 + 1) * fx * fy;
            }
        }
        out
    }

    #[test]
    fn grid_sample_matches_reference_including_border() {
        let dev = Device::Cpu;
        let (c, h, w, ho, wo) = (2, 5, 7, 4, 6);
        let inp = rnd(c * h * w, 1);
        // Grid in [-1.3, 1.3] so some points fall outside and hit the border.
        let grid: Vec<f32> = rnd(ho * wo * 2, 2).iter().map(|v| v * 2.6 - 1.3).collect();
        let t = Tensor::from_vec(inp.clone(), (1, c, h, w), &dev).unwrap();
        let g = Tensor::from_vec(grid.clone(), (1, ho, wo, 2), &dev).unwrap();
        let got: Vec<f32> = grid_sample(&t, &g)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = grid_sample_ref(&inp, c, h, w, &grid, ho, wo);
        for (a, b) in got.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn grid_sample_identity_grid_is_identity() {
        let dev = Device::Cpu;
        let inp = rnd(3 * 9 * 11, 3);
        let t = Tensor::from_vec(inp.clone(), (1, 3, 9, 11), &dev).unwrap();
        let g = identity_grid(1, 9, 11, &dev).unwrap();
        let got: Vec<f32> = grid_sample(&t, &g)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in got.iter().zip(&inp) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn grid_sample_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let (h, w, ho, wo) = (4, 5, 3, 3);
        let inp = rnd(h * w, 4);
        // Keep points strictly inside and ≥ 0.1 px away from integer positions
        // so the function is smooth where we difference it.
        let r = rnd(ho * wo * 4, 5);
        let grid: Vec<f32> = (0..ho * wo * 2)
            .map(|k| {
                let len = if k % 2 == 0 { w } else { h };
                let cell = (r[2 * k] * (len - 1) as f32).floor().min((len - 2) as f32);
                let px = cell + 0.1 + 0.8 * r[2 * k + 1];
                px / (len - 1) as f32 * 2.0 - 1.0
            })
            .collect();
        let wts = rnd(ho * wo, 6); // loss = sum(weights * out)
        let loss_of = |inp: &[f32], grid: &[f32]| -> f64 {
            let o = grid_sample_ref(inp, 1, h, w, grid, ho, wo);
            o.iter().zip(&wts).map(|(a, b)| a * *b as f64).sum()
        };
        let vi = Var::from_vec(inp.clone(), (1, 1, h, w), &dev).unwrap();
        let vg = Var::from_vec(grid.clone(), (1, ho, wo, 2), &dev).unwrap();
        let wt = Tensor::from_vec(wts.clone(), (1, 1, ho, wo), &dev).unwrap();
        let loss = (grid_sample(vi.as_tensor(), vg.as_tensor()).unwrap() * &wt)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let grad_of = |v: &Var| -> Vec<f32> {
            grads
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let (gi, gg) = (grad_of(&vi), grad_of(&vg));
        let eps = 1e-3f32;
        // Central differences of the loss in each entry of `base` (`loss` of
        // the perturbed copy) against the autograd gradient `g`.
        let check =
            |what: &str, base: &[f32], g: &[f32], tol: f64, loss: &dyn Fn(&[f32]) -> f64| {
                for k in 0..base.len() {
                    let (mut p, mut m) = (base.to_vec(), base.to_vec());
                    p[k] += eps;
                    m[k] -= eps;
                    let fd = (loss(&p) - loss(&m)) / (2.0 * eps as f64);
                    assert!(
                        (fd - g[k] as f64).abs() < tol,
                        "{what} grad {k}: {fd} vs {}",
                        g[k]
                    );
                }
            };
        check("input", &inp, &gi, 1e-3, &|p| loss_of(p, &grid));
        check("grid", &grid, &gg, 2e-3, &|p| loss_of(&inp, p));
    }
}
