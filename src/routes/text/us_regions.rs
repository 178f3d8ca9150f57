//! Ultrasound's optional "blank outside the regions" mode: everything
//! outside the Sequence of Ultrasound Regions (0018,6011) is image chrome,
//! where scanners print names, IDs and dates.

use super::frames::Rect;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// The regions' rectangles (RegionLocationMinX0 … MaxY1, inclusive in the
/// standard, exclusive here); `None` when the object has none.
pub fn regions(obj: &DefaultDicomObject) -> Option<Vec<Rect>> {
    let items = obj
        .get(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .and_then(|e| e.items())?;
    let num = |o: &dicom_object::InMemDicomObject, t: Tag| -> Option<usize> {
        o.get(t)?
            .value()
            .to_int::<i64>()
            .ok()
            .map(|v| v.max(0) as usize)
    };
    let rects: Vec<Rect> = items
        .iter()
        .filter_map(|i| {
            Some(Rect {
                x0: num(i, tags::REGION_LOCATION_MIN_X0)?,
                y0: num(i, tags::REGION_LOCATION_MIN_Y0)?,
                x1: num(i, tags::REGION_LOCATION_MAX_X1)? + 1,
                y1: num(i, tags::REGION_LOCATION_MAX_Y1)? + 1,
            })
        })
        .filter(|r| r.x1 > r.x0 && r.y1 > r.y0)
        .collect();
    (!rects.is_empty()).then_some(rects)
}

/// The part of a `w × h` image outside every rectangle of `inside`, as
/// disjoint rectangles: horizontal bands cut at every region edge, and in
/// each band the runs no region covers.
pub fn outside(inside: &[Rect], w: usize, h: usize) -> Vec<Rect> {
    let inside: Vec<Rect> = inside.iter().map(|r| r.clip(w, h)).collect();
    let mut cuts: Vec<usize> = vec![0, h];
    for r in &inside {
        cuts.extend([r.y0, r.y1]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for band in cuts.windows(2) {
        let (y0, y1) = (band[0], band[1]);
        if y0 >= y1 {
            continue;
        }
        let mut covered: Vec<(usize, usize)> = inside
            .iter()
            .filter(|r| r.y0 <= y0 && r.y1 >= y1)
            .map(|r| (r.x0, r.x1))
            .collect();
        covered.sort_unstable();
        let mut x = 0;
        for (a, b) in covered {
            if a > x {
                out.push(Rect {
                    x0: x,
                    y0,
                    x1: a,
                    y1,
                });
            }
            x = x.max(b);
        }
        if x < w {
            out.push(Rect {
                x0: x,
                y0,
                x1: w,
                y1,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_plus_inside_tiles_the_image() {
        let inside = [
            Rect {
                x0: 10,
                y0: 20,
                x1: 60,
                y1: 70,
            },
            Rect {
                x0: 40,
                y0: 50,
                x1: 90,
                y1: 95,
            },
        ];
        let (w, h) = (100, 100);
        let out = outside(&inside, w, h);
        for y in 0..h {
            for x in 0..w {
                let inn = inside
                    .iter()
                    .any(|r| x >= r.x0 && x < r.x1 && y >= r.y0 && y < r.y1);
                let n = out
                    .iter()
                    .filter(|r| x >= r.x0 && x < r.x1 && y >= r.y0 && y < r.y1)
                    .count();
                assert_eq!(n, usize::from(!inn), "({x}, {y})");
            }
        }
    }
}
