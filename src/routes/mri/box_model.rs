//! A crude stand-in model: it overwrites an anterior-inferior box of the
//! field of view. It exists so the series route can be tested end to end
//! without trained weights (`[mri] model = "box"`), and as a lower anchor
//! when the real remodeler is compared; it is not a de-facing method.

use super::model::FaceModel;
use crate::models::mri::{Mode, Remodeled, Volume};

/// Fills the box with one constant value (visible, and never all air).
pub struct BoxModel;

/// The value written into the box.
pub const FILL: f32 = 1000.0;

impl FaceModel for BoxModel {
    fn remodel(&self, vol: &Volume, mode: Mode) -> anyhow::Result<Remodeled> {
        let [ni, nj, nk] = vol.dims;
        anyhow::ensure!(vol.data.len() == ni * nj * nk, "volume size mismatch");
        // Bounding box of the field of view in patient coordinates (LPS):
        // anterior is -y, inferior is -z.
        let (mut ymin, mut ymax, mut zmin, mut zmax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &i in &[0, ni - 1] {
            for &j in &[0, nj - 1] {
                for &k in &[0, nk - 1] {
                    let p = vol.world(i as f64, j as f64, k as f64);
                    (ymin, ymax) = (ymin.min(p[1]), ymax.max(p[1]));
                    (zmin, zmax) = (zmin.min(p[2]), zmax.max(p[2]));
                }
            }
        }
        let y_cut = ymin + 0.3 * (ymax - ymin);
        let z_cut = zmin + 0.6 * (zmax - zmin);
        let mut data = vol.data.clone();
        let mut face = vec![false; data.len()];
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let p = vol.world(i as f64, j as f64, k as f64);
                    if p[1] < y_cut && p[2] < z_cut {
                        let v = i + ni * (j + nj * k);
                        data[v] = FILL;
                        face[v] = true;
                    }
                }
            }
        }
        Ok(Remodeled {
            data,
            face,
            note: format!("box stand-in ({} requested)", mode.name()),
        })
    }
}
