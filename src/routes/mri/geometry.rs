//! Where each frame of a head MR series lies in patient space, and the
//! slice order that turns the frames into one regular volume.
//!
//! Classic MR has one frame per instance with ImagePositionPatient,
//! ImageOrientationPatient and PixelSpacing at the top level; Enhanced MR
//! keeps them in the per-frame or shared functional groups. Slices are
//! sorted along the normal of the image plane, which works the same for
//! sagittal, axial, coronal and oblique stacks.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// One frame of one instance and where it lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Index of the instance in the series' input list.
    pub instance: usize,
    /// Frame number inside that instance (0 for classic MR).
    pub frame: usize,
    pub position: [f64; 3],
    /// Row direction (increasing column index), then column direction.
    pub orientation: [f64; 6],
    /// Spacing between rows, then between columns (PixelSpacing order).
    pub spacing: [f64; 2],
    pub rows: usize,
    pub columns: usize,
    /// Echo and temporal position (EchoNumbers and TemporalPositionIdentifier
    /// for classic MR; EffectiveEchoTime and TemporalPositionIndex from the
    /// functional groups for Enhanced MR), when stated.
    pub phase: [Option<f64>; 2],
}

/// A regular stack: frames in slice order and the voxel-to-patient affine.
#[derive(Debug, Clone)]
pub struct Stack {
    pub frames: Vec<Frame>,
    /// (columns, rows, slices), columns fastest.
    pub dims: [usize; 3],
    pub affine: [[f64; 4]; 4],
    /// Exact duplicates (same position, echo and temporal position as a
    /// slice in `frames`, e.g. a slice sent again under a new SOP Instance
    /// UID), with the index in `frames` of the slice they repeat. They are
    /// not part of the volume; the model's face values of that slice are
    /// written into them too.
    pub duplicates: Vec<(Frame, usize)>,
}

fn numbers(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let s = crate::dicom::text(obj, tag);
    if s.is_empty() {
        return None;
    }
    s.split('\\').map(|v| v.trim().parse().ok()).collect()
}

fn fixed<const N: usize>(v: Option<Vec<f64>>) -> Option<[f64; N]> {
    v.and_then(|v| v.try_into().ok())
}

/// The first item of `seq` inside `item`.
fn first_item(item: &InMemDicomObject, seq: Tag) -> Option<&InMemDicomObject> {
    item.get(seq)?.items()?.first()
}

/// A value of a functional-group macro for one frame: per-frame first,
/// then shared (PS3.3 C.7.6.16).
fn group_value(obj: &InMemDicomObject, frame: usize, seq: Tag, tag: Tag) -> Option<Vec<f64>> {
    let per_frame = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.get(frame))
        .and_then(|f| first_item(f, seq))
        .and_then(|m| numbers(m, tag));
    per_frame.or_else(|| {
        let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)?;
        numbers(first_item(shared, seq)?, tag)
    })
}

fn count(obj: &InMemDicomObject, tag: Tag) -> Option<usize> {
    crate::dicom::text(obj, tag).parse().ok()
}

/// Frames of one instance, or why its geometry cannot be read.
pub fn frames_of(obj: &InMemDicomObject, instance: usize) -> Result<Vec<Frame>, String> {
    let rows = count(obj, tags::ROWS).ok_or("no Rows")?;
    let columns = count(obj, tags::COLUMNS).ok_or("no Columns")?;
    let n = count(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let enhanced = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .is_some()
        || obj.get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).is_some();
    (0..n)
        .map(|f| {
            let first = |v: Option<Vec<f64>>| v.and_then(|v| v.first().copied());
            let (pos, ori, spc, phase) = if enhanced {
                (
                    group_value(
                        obj,
                        f,
                        tags::PLANE_POSITION_SEQUENCE,
                        tags::IMAGE_POSITION_PATIENT,
                    ),
                    group_value(
                        obj,
                        f,
                        tags::PLANE_ORIENTATION_SEQUENCE,
                        tags::IMAGE_ORIENTATION_PATIENT,
                    ),
                    group_value(obj, f, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING),
                    [
                        first(group_value(
                            obj,
                            f,
                            tags::MR_ECHO_SEQUENCE,
                            tags::EFFECTIVE_ECHO_TIME,
                        )),
                        first(group_value(
                            obj,
                            f,
                            tags::FRAME_CONTENT_SEQUENCE,
                            tags::TEMPORAL_POSITION_INDEX,
                        )),
                    ],
                )
            } else {
                (
                    numbers(obj, tags::IMAGE_POSITION_PATIENT),
                    numbers(obj, tags::IMAGE_ORIENTATION_PATIENT),
                    numbers(obj, tags::PIXEL_SPACING),
                    [
                        first(numbers(obj, tags::ECHO_NUMBERS)),
                        first(numbers(obj, tags::TEMPORAL_POSITION_IDENTIFIER)),
                    ],
                )
            };
            Ok(Frame {
                instance,
                frame: f,
                position: fixed(pos).ok_or("no usable ImagePositionPatient")?,
                orientation: fixed(ori).ok_or("no usable ImageOrientationPatient")?,
                spacing: fixed(spc).ok_or("no usable PixelSpacing")?,
                rows,
                columns,
                phase,
            })
        })
        .collect()
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Sort `frames` into one regular stack. Every check names what differs:
/// a series that fails is quarantined with that reason.
pub fn stack(mut frames: Vec<Frame>, min_slices: usize) -> Result<Stack, String> {
    if frames.len() < min_slices.max(2) {
        return Err(format!(
            "too few slices: {} (at least {} needed)",
            frames.len(),
            min_slices.max(2)
        ));
    }
    let f0 = frames[0].clone();
    let row = [f0.orientation[0], f0.orientation[1], f0.orientation[2]];
    let col = [f0.orientation[3], f0.orientation[4], f0.orientation[5]];
    if (norm(row) - 1.0).abs() > 1e-3
        || (norm(col) - 1.0).abs() > 1e-3
        || dot(row, col).abs() > 1e-3
    {
        return Err("ImageOrientationPatient is not two orthogonal unit vectors".into());
    }
    for f in &frames {
        if (f.rows, f.columns) != (f0.rows, f0.columns) {
            return Err("slices differ in Rows/Columns".into());
        }
        if f.orientation
            .iter()
            .zip(&f0.orientation)
            .any(|(a, b)| (a - b).abs() > 1e-3)
        {
            return Err("slices differ in ImageOrientationPatient".into());
        }
        if f.spacing
            .iter()
            .zip(&f0.spacing)
            .any(|(a, b)| (a - b).abs() > 1e-3 * b.abs().max(1.0))
            || f.spacing.iter().any(|s| *s <= 0.0)
        {
            return Err("slices differ in PixelSpacing (or it is not positive)".into());
        }
    }
    let normal = cross(row, col);
    // Ties broken by (instance, frame) so the order never depends on arrival.
    frames.sort_by(|a, b| {
        dot(a.position, normal)
            .total_cmp(&dot(b.position, normal))
            .then(a.instance.cmp(&b.instance))
            .then(a.frame.cmp(&b.frame))
    });
    // Exact duplicates (same position and phase) are set aside: the first
    // in sort order stays in the volume. Other slices sharing a position
    // (echoes, phases) cannot form one volume.
    let mut kept: Vec<Frame> = Vec::with_capacity(frames.len());
    let mut duplicates = Vec::new();
    for f in frames {
        match kept.last() {
            Some(p) if dot(sub(f.position, p.position), normal).abs() < 1e-3 => {
                if p.phase != f.phase || norm(sub(f.position, p.position)) >= 1e-3 {
                    return Err(
                        "several slices share one position (echoes, phases or shifted repeats)"
                            .into(),
                    );
                }
                duplicates.push((f, kept.len() - 1));
            }
            _ => kept.push(f),
        }
    }
    let frames = kept;
    if frames.len() < min_slices.max(2) {
        return Err(format!(
            "too few slices: {} distinct (at least {} needed)",
            frames.len(),
            min_slices.max(2)
        ));
    }
    let d: Vec<f64> = frames.iter().map(|f| dot(f.position, normal)).collect();
    let gaps: Vec<f64> = d.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = (d[d.len() - 1] - d[0]) / (d.len() - 1) as f64;
    if gaps.iter().any(|g| (g - mean).abs() > 0.05 * mean + 0.01) {
        return Err("uneven slice spacing (missing slices or a gap)".into());
    }
    let first = frames[0].position;
    let last = frames[frames.len() - 1].position;
    let step = sub(last, first).map(|v| v / (frames.len() - 1) as f64);
    // Slices must follow the normal: a sheared stack is not a volume we
    // can write back slice by slice.
    if norm(sub(step, normal.map(|v| v * mean))) > 0.05 * mean + 0.01 {
        return Err("slice positions do not follow the slice normal".into());
    }
    let (sr, sc) = (f0.spacing[0], f0.spacing[1]);
    let affine = [
        [row[0] * sc, col[0] * sr, step[0], first[0]],
        [row[1] * sc, col[1] * sr, step[1], first[1]],
        [row[2] * sc, col[2] * sr, step[2], first[2]],
        [0.0, 0.0, 0.0, 1.0],
    ];
    Ok(Stack {
        dims: [f0.columns, f0.rows, frames.len()],
        frames,
        affine,
        duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: usize, pos: [f64; 3], ori: [f64; 6]) -> Frame {
        Frame {
            instance: i,
            frame: 0,
            position: pos,
            orientation: ori,
            spacing: [1.0, 2.0],
            rows: 4,
            columns: 3,
            phase: [None, None],
        }
    }

    const SAG: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    const AX: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    #[test]
    fn sagittal_slices_sort_along_the_normal() {
        // Normal of a sagittal stack is (1,0,0)x... = row x col = (-1,0,0).
        let frames: Vec<Frame> = [3.0, -1.0, 1.0, 5.0]
            .iter()
            .enumerate()
            .map(|(i, x)| frame(i, [*x, -10.0, 20.0], SAG))
            .collect();
        let s = stack(frames, 3).unwrap();
        let xs: Vec<f64> = s.frames.iter().map(|f| f.position[0]).collect();
        assert_eq!(xs, [5.0, 3.0, 1.0, -1.0]);
        assert_eq!(s.dims, [3, 4, 4]);
        // Column step 2 mm along +y, row step 1 mm along -z, slice -2 mm in x.
        assert_eq!(s.affine[1][0], 2.0);
        assert_eq!(s.affine[2][1], -1.0);
        assert_eq!(s.affine[0][2], -2.0);
        assert_eq!(s.affine[0][3], 5.0);
    }

    #[test]
    fn axial_stack_and_problems_are_named() {
        let ok: Vec<Frame> = (0..5)
            .map(|k| frame(k, [0.0, 0.0, k as f64 * 3.0], AX))
            .collect();
        assert_eq!(stack(ok.clone(), 5).unwrap().affine[2][2], 3.0);
        assert!(stack(ok.clone(), 6).unwrap_err().contains("too few slices"));
        let mut gap = ok.clone();
        gap.remove(2);
        assert!(stack(gap, 2).unwrap_err().contains("uneven"));
        let mut echo = ok.clone();
        echo[1].position = echo[0].position;
        echo[1].phase = [Some(2.0), None];
        assert!(stack(echo, 2).unwrap_err().contains("share one position"));
        let mut tilted = ok;
        tilted[1].orientation = SAG;
        assert!(stack(tilted, 2)
            .unwrap_err()
            .contains("ImageOrientationPatient"));
    }

    #[test]
    fn exact_duplicate_slices_are_set_aside() {
        let ok: Vec<Frame> = (0..5)
            .map(|k| frame(k, [0.0, 0.0, k as f64 * 3.0], AX))
            .collect();
        // Instance 5 repeats the slice at z = 6 (same echo); instance 6
        // repeats z = 0. Arrival order does not matter.
        let mut frames = ok.clone();
        frames.insert(0, frame(5, [0.0, 0.0, 6.0], AX));
        frames.push(frame(6, [0.0, 0.0, 0.0], AX));
        let s = stack(frames, 5).unwrap();
        assert_eq!(s.dims, [3, 4, 5]);
        assert_eq!(s.frames, ok);
        let dups: Vec<(usize, usize)> =
            s.duplicates.iter().map(|(f, k)| (f.instance, *k)).collect();
        assert_eq!(dups, [(6, 0), (5, 2)]);
        assert_eq!(s.affine[2][2], 3.0);
        // Duplicates do not count towards the slices needed.
        let mut few = ok[..3].to_vec();
        few.extend(
            ok[..3]
                .iter()
                .map(|f| frame(f.instance + 10, f.position, AX)),
        );
        assert!(stack(few, 4).unwrap_err().contains("too few slices: 3"));
    }
}
