//! Generate mode: each face's replaced area is painted by the decoder with a
//! replacement identity instead of the synthetic fill. Everything else (the
//! ellipse, the feather, bit-identical keep regions, the recorded original
//! bytes) is the replacement code's own ([`replace_faces_with`]).

use anyhow::Result;
use candle_core::Tensor;

use super::super::detect::Face;
use super::super::image::RgbImage;
use super::super::replace::{
    replace_faces_with, FaceFill, FillContext, ReplaceConfig, Replacement,
};
use super::crop::{bilinear, crop_rgb, CropBox};
use super::model::MedSem;

impl MedSem {
    /// The decoder's rendering of `ctx.face` with the replacement identity
    /// drawn from `seed`, as a fill over image coordinates.
    pub fn face_fill(&self, ctx: &FillContext, seed: u64) -> Result<FaceFill> {
        let s = self.cfg.size;
        let b = CropBox::around(ctx.face);
        let crop = Tensor::from_vec(crop_rgb(ctx.img, &b, s), (1, 3, s, s), &self.device)?;
        let code = self.seeded_codes(1, seed)?;
        let out: Vec<f32> = self.render(&crop, &code)?.flatten_all()?.to_vec1()?;
        Ok(Box::new(move |x, y| {
            let (u, v) = b.to_crop(x, y, s);
            let mut px = [0f32; 3];
            for (c, p) in px.iter_mut().enumerate() {
                let plane = &out[c * s * s..(c + 1) * s * s];
                *p = (bilinear(plane, s, s, u, v) + 1.0) * 127.5;
            }
            px
        }))
    }
}

/// Replaces every face of `img` by the generator's rendering; keep regions
/// stay bit-identical. The identity of face `i` comes from `cfg.seed` and
/// `i`, so a replayed instance gives the same bytes.
pub fn generate_faces(
    img: &mut RgbImage,
    faces: &[Face],
    cfg: &ReplaceConfig,
    model: &MedSem,
) -> Result<Replacement> {
    replace_faces_with(img, faces, cfg, |ctx| {
        model.face_fill(ctx, cfg.seed ^ (ctx.index as u64).wrapping_mul(0x9E37_79B9))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::photo::medsem::MedSemConfig;
    use crate::models::photo::KeepRegion;
    use candle_core::Device;

    #[test]
    fn generated_face_keeps_keep_regions_and_is_deterministic() {
        let cfg = MedSemConfig::tiny();
        let model = MedSem::new(cfg, &Device::Cpu).unwrap();
        let face = Face {
            bbox: [40.0, 40.0, 100.0, 110.0],
            score: 0.99,
            landmarks: [
                (58.0, 65.0),
                (82.0, 65.0),
                (70.0, 80.0),
                (60.0, 95.0),
                (80.0, 95.0),
            ],
        };
        let data: Vec<u8> = (0..160 * 150 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let original = RgbImage::new(160, 150, data).unwrap();
        let rc = ReplaceConfig {
            keep: vec![KeepRegion::Periocular],
            seed: 5,
            ..ReplaceConfig::default()
        };
        let mut a = original.clone();
        let rep = generate_faces(&mut a, std::slice::from_ref(&face), &rc, &model).unwrap();
        assert_eq!(rep.regions.len(), 1);
        assert_ne!(a, original);
        let k = rep.kept[0];
        for y in k.y..k.y + k.height {
            for x in k.x..k.x + k.width {
                assert_eq!(a.pixel(x, y), original.pixel(x, y));
            }
        }
        let mut b = original.clone();
        generate_faces(&mut b, &[face], &rc, &model).unwrap();
        assert_eq!(a, b);
    }
}
