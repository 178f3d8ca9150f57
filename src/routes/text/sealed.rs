//! The text route's sealed record: the original bytes under every filled
//! box in every frame, kept in the key store under the new SOP Instance UID
//! so an audited re-identification can put them back exactly.

use super::frames::{Frames, Rect};

/// Marks a text-route record (the photo route's records have none).
pub const MAGIC: &[u8; 4] = b"DGTX";

/// `MAGIC`, then u32 LE: width, height, frames, bytes per pixel, boxes;
/// each box x0 y0 x1 y1; then per frame, per box, its bytes row by row.
pub fn encode(f: &Frames, rects: &[Rect]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let header = [f.width, f.height, f.frames, f.pixel_len(), rects.len()];
    for v in header {
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    for r in rects {
        for v in [r.x0, r.y0, r.x1, r.y1] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
    }
    for i in 0..f.frames {
        for r in rects {
            out.extend_from_slice(&f.cut(i, *r));
        }
    }
    out
}

/// Puts the original bytes of a record from [`encode`] back into `f`.
pub fn restore(f: &mut Frames, record: &[u8]) -> Result<(), String> {
    let body = record
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a text-route record")?;
    let mut pos = 0usize;
    let mut next = || -> Result<usize, String> {
        let b = body
            .get(pos..pos + 4)
            .ok_or("truncated text-route record")?;
        pos += 4;
        Ok(u32::from_le_bytes(b.try_into().map_err(|_| "bad record")?) as usize)
    };
    let (w, h, frames, px, n) = (next()?, next()?, next()?, next()?, next()?);
    if (w, h, frames, px) != (f.width, f.height, f.frames, f.pixel_len()) {
        return Err(format!(
            "the image is {}x{}x{} ({} bytes per pixel); the record belongs to {w}x{h}x{frames} \
             ({px})",
            f.width,
            f.height,
            f.frames,
            f.pixel_len()
        ));
    }
    let mut rects = Vec::with_capacity(n);
    for _ in 0..n {
        rects.push(Rect {
            x0: next()?,
            y0: next()?,
            x1: next()?,
            y1: next()?,
        });
    }
    let mut at = 4 * (5 + 4 * n);
    for i in 0..frames {
        for r in &rects {
            let len = r.clip(w, h).area() * px;
            let bytes = body
                .get(at..at + len)
                .ok_or("truncated text-route pixels")?;
            f.paste(i, *r, bytes)?;
            at += len;
        }
    }
    Ok(())
}

/// Puts the sealed original text back into a de-identified object (the
/// audited `deidgate reid photo`); it then says BurnedInAnnotation YES again.
pub fn restore_object(
    obj: &mut dicom_object::DefaultDicomObject,
    record: &[u8],
) -> Result<(), String> {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};
    let mut f = super::frames::decode(obj, usize::MAX)?;
    restore(&mut f, record)?;
    super::frames::write_back(obj, f);
    obj.put(DataElement::new(
        dicom_dictionary_std::tags::BURNED_IN_ANNOTATION,
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    Ok(())
}
