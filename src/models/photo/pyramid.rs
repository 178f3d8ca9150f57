//! The image pyramid P-Net slides over. P-Net sees 12×12 windows, so scaling
//! the image by `12 / min_face` makes the smallest wanted face 12 pixels; each
//! further level shrinks by `factor` until the short side drops below 12.

/// Scales of the pyramid levels, largest first. `f64` because the level sizes
/// are truncated, and facenet-pytorch computes them in double precision.
pub fn scales(width: u32, height: u32, min_face: f32, factor: f64) -> Vec<f64> {
    let m = 12.0 / min_face as f64;
    let mut min_side = width.min(height) as f64 * m;
    let mut scale = m;
    let mut out = Vec::new();
    while min_side >= 12.0 {
        out.push(scale);
        scale *= factor;
        min_side *= factor;
    }
    out
}

/// Size `(w, h)` of the level at `scale`: `int(side * scale + 1)` as in
/// facenet-pytorch, so that the level is never smaller than the scaled image.
pub fn level_size(width: u32, height: u32, scale: f64) -> (usize, usize) {
    (
        (width as f64 * scale + 1.0) as usize,
        (height as f64 * scale + 1.0) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_for_1024x768() {
        let s = scales(1024, 768, 20.0, 0.709);
        assert!((s[0] - 0.6).abs() < 1e-12);
        // 768*0.6 = 460.8 shrinks by 0.709 until below 12: 11 levels.
        assert_eq!(s.len(), 11);
        assert_eq!(level_size(1024, 768, s[0]), (615, 461));
        let last = *s.last().unwrap();
        assert!(768.0 * last >= 12.0 && 768.0 * last * 0.709 < 12.0);
    }

    #[test]
    fn tiny_image_has_no_levels_below_min_face() {
        assert!(scales(15, 15, 20.0, 0.709).is_empty());
    }
}
