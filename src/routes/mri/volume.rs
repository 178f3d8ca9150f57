//! A series' instances as one volume, and the model's result back into the
//! instances' own pixel data.
//!
//! An exact duplicate slice (same position and phase as another, see
//! `geometry::stack`) is left out of the volume and receives the face values
//! of the slice it repeats, so it comes back remodeled, once, as itself.
//!
//! Voxels outside the model's face mask are never converted: their sample
//! bytes stay the decoded input bytes, so they are bit-identical by
//! construction. Inside the mask the new value is rounded and clamped into
//! the instance's stored range.

use super::geometry::{frames_of, stack, Stack};
use super::pixels::{decode, Pixels};
use crate::models::mri::Volume;
use dicom_object::DefaultDicomObject;

/// The volume and what is needed to write it back.
pub struct Assembled {
    pub stack: Stack,
    /// Decoded pixels of each instance, in input order.
    pub pixels: Vec<Pixels>,
    pub volume: Volume,
}

/// Geometry first (cheap, and the usual reason to refuse), then decoding.
pub fn assemble(objs: &[DefaultDicomObject], min_slices: usize) -> Result<Assembled, String> {
    let mut frames = Vec::new();
    for (n, o) in objs.iter().enumerate() {
        frames.extend(frames_of(o, n).map_err(|e| format!("geometry: {e}"))?);
    }
    let stack = stack(frames, min_slices)?;
    let pixels = objs.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let [ni, nj, nk] = stack.dims;
    let mut data = vec![0f32; ni * nj * nk];
    for f in stack
        .frames
        .iter()
        .chain(stack.duplicates.iter().map(|(f, _)| f))
    {
        let px = &pixels[f.instance];
        if (px.columns, px.rows) != (ni, nj) || f.frame >= px.frames {
            return Err("the pixel data does not match Rows/Columns/NumberOfFrames".into());
        }
    }
    for (k, f) in stack.frames.iter().enumerate() {
        let px = &pixels[f.instance];
        let bytes = px.frame(f.frame);
        let w = px.sample_bytes();
        let slab = &mut data[k * ni * nj..(k + 1) * ni * nj];
        for (v, b) in slab.iter_mut().zip(bytes.chunks_exact(w)) {
            *v = px.format.value(b);
        }
    }
    Ok(Assembled {
        volume: Volume {
            dims: stack.dims,
            data,
            affine: stack.affine,
        },
        stack,
        pixels,
    })
}

/// The instances' pixels with the face voxels replaced by `new`.
pub fn apply(a: Assembled, new: &[f32], face: &[bool]) -> Result<Vec<Pixels>, String> {
    let n = a.volume.data.len();
    if new.len() != n || face.len() != n {
        return Err(format!(
            "the face model returned {} values and {} mask voxels for {n} voxels",
            new.len(),
            face.len()
        ));
    }
    let [ni, nj, _] = a.stack.dims;
    let mut pixels = a.pixels;
    // A duplicate slice gets the face values of the slice it repeats.
    let slices = a.stack.frames.iter().enumerate().map(|(k, f)| (f, k));
    let duplicates = a.stack.duplicates.iter().map(|(f, k)| (f, *k));
    for (f, k) in slices.chain(duplicates) {
        let px = &mut pixels[f.instance];
        let (format, w) = (px.format, px.sample_bytes());
        let bytes = px.frame_mut(f.frame);
        let base = k * ni * nj;
        for (v, b) in bytes.chunks_exact_mut(w).enumerate() {
            if face[base + v] {
                format.encode(new[base + v], b);
            }
        }
    }
    Ok(pixels)
}
