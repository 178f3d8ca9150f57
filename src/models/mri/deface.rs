//! Face removal, the pydeface-style comparison anchor: the face region is set
//! to the volume's background (its minimum, normally 0).

use super::warp::FaceRegion;
use super::Volume;

pub fn deface(vol: &Volume, w: &FaceRegion) -> Vec<f32> {
    let bg = vol.data.iter().cloned().fold(f32::INFINITY, f32::min).min(0.0).max(f32::MIN);
    let bg = if bg.is_finite() { bg } else { 0.0 };
    vol.data
        .iter()
        .zip(&w.face)
        .map(|(&v, &f)| if f { bg } else { v })
        .collect()
}
