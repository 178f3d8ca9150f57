//! Face removal, the pydeface-style comparison anchor: the face region is set
//! to the volume's background (its minimum, normally 0).

use super::warp::FaceRegion;
use super::Volume;

pub fn deface(vol: &Volume, w: &FaceRegion) -> Vec<f32> {
    // data are finite (checked before registration); 0 unless the scale is signed
    let bg = vol.data.iter().cloned().fold(0.0f32, f32::min);
    vol.data
        .iter()
        .zip(&w.face)
        .map(|(&v, &f)| if f { bg } else { v })
        .collect()
}
