//! Bilinear resize as two matrix products, so its backward pass is candle's
//! matmul backward (Candle 0.11 has no backward for upsample_bilinear2d).
//! Used by the chest model's random elastic baseline.

use candle_core::{Result, Tensor};

/// Bilinear interpolation matrix (out×inp) mapping a length-`inp` signal to
/// length `out`. `align_corners=true` maps first/last samples onto each
/// other (right for fields in normalized grid units); `false` uses PyTorch's
/// half-pixel centres (right for images).
pub fn interp_matrix(out: usize, inp: usize, align_corners: bool) -> Vec<f32> {
    let mut m = vec![0f32; out * inp];
    for o in 0..out {
        let src = if align_corners {
            if out > 1 {
                o as f64 * (inp as f64 - 1.0) / (out as f64 - 1.0)
            } else {
                0.0
            }
        } else {
            ((o as f64 + 0.5) * inp as f64 / out as f64 - 0.5).max(0.0)
        };
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = (i0 + 1).min(inp - 1);
        let f = (src - i0 as f64) as f32;
        m[o * inp + i0] += 1.0 - f;
        m[o * inp + i1] += f;
    }
    m
}

/// Bilinear resize of N×C×H×W to N×C×oh×ow as two matrix products
/// (A_h · X · A_wᵀ), so the backward pass is candle's matmul backward.
pub fn resize_bilinear(xs: &Tensor, oh: usize, ow: usize, align_corners: bool) -> Result<Tensor> {
    let (_n, _c, h, w) = xs.dims4()?;
    let dev = xs.device();
    let ah = Tensor::from_vec(interp_matrix(oh, h, align_corners), (oh, h), dev)?
        .to_dtype(xs.dtype())?;
    let awt = Tensor::from_vec(interp_matrix(ow, w, align_corners), (ow, w), dev)?
        .to_dtype(xs.dtype())?
        .t()?;
    ah.broadcast_matmul(xs)?.broadcast_matmul(&awt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn resize_matches_hand_values_and_backward_runs() {
        let dev = Device::Cpu;
        // align_corners: [0, 3] -> 4 samples 0,1,2,3.
        let t = Tensor::from_vec(vec![0f32, 3.0, 0.0, 3.0], (1, 1, 2, 2), &dev).unwrap();
        let up: Vec<f32> = resize_bilinear(&t, 2, 4, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(up, vec![0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]);
        // Half-pixel: [0, 4] -> 4 samples 0, 1, 3, 4 (PyTorch align_corners=False).
        let t = Tensor::from_vec(vec![0f32, 4.0], (1, 1, 1, 2), &dev).unwrap();
        let up: Vec<f32> = resize_bilinear(&t, 1, 4, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(up, vec![0.0, 1.0, 3.0, 4.0]);
        // Backward: d(sum(resize(x)))/dx = column sums of the matrices.
        let v = Var::from_vec(vec![1f32; 6], (1, 1, 2, 3), &dev).unwrap();
        let s = resize_bilinear(v.as_tensor(), 3, 5, true)
            .unwrap()
            .sum_all()
            .unwrap();
        let g: Vec<f32> = s
            .backward()
            .unwrap()
            .get(&v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Rows 2->3: column sums [1.5, 1.5]; cols 3->5: [1.5, 2, 1.5].
        let want = [2.25f32, 3.0, 2.25, 2.25, 3.0, 2.25];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
