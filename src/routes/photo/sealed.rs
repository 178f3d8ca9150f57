//! The photo route's sealed record: the original pixels of the replaced
//! rectangles, kept in the key store under the new SOP Instance UID, and
//! how an audited `reid photo` puts them back.

use super::pixels::{decode_rgb, write_rgb};
use crate::models::photo::{restore, PixelRect, ReplacedRegion};
use dicom_object::DefaultDicomObject;

/// The replaced regions as bytes for the key store: per region `x y w h`
/// (u32 LE) then `w*h*3` original RGB bytes; preceded by the image size.
pub fn encode_regions(width: u32, height: u32, regions: &[ReplacedRegion]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [width, height, regions.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for r in regions {
        for v in [r.rect.x, r.rect.y, r.rect.width, r.rect.height] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&r.original);
    }
    out
}

/// Inverse of [`encode_regions`].
pub fn decode_regions(bytes: &[u8]) -> Result<(u32, u32, Vec<ReplacedRegion>), String> {
    let mut pos = 0usize;
    let u32_at = |pos: &mut usize| -> Result<u32, String> {
        let b = bytes.get(*pos..*pos + 4).ok_or("truncated region record")?;
        *pos += 4;
        Ok(u32::from_le_bytes(b.try_into().map_err(|_| "bad record")?))
    };
    let (w, h, n) = (u32_at(&mut pos)?, u32_at(&mut pos)?, u32_at(&mut pos)?);
    let mut regions = Vec::new();
    for _ in 0..n {
        let rect = PixelRect {
            x: u32_at(&mut pos)?,
            y: u32_at(&mut pos)?,
            width: u32_at(&mut pos)?,
            height: u32_at(&mut pos)?,
        };
        let len = rect.width as usize * rect.height as usize * 3;
        let original = bytes
            .get(pos..pos + len)
            .ok_or("truncated region pixels")?
            .to_vec();
        pos += len;
        regions.push(ReplacedRegion { rect, original });
    }
    Ok((w, h, regions))
}

/// Puts the sealed original regions back into a de-identified photograph.
pub fn restore_photo(obj: &mut DefaultDicomObject, sealed: &[u8]) -> Result<(), String> {
    let (w, h, regions) = decode_regions(sealed)?;
    let mut img = decode_rgb(obj)?;
    if (img.width, img.height) != (w, h) {
        return Err(format!(
            "the photograph is {}x{}, the stored regions belong to a {w}x{h} one",
            img.width, img.height
        ));
    }
    restore(&mut img, &regions).map_err(|e| format!("{e:#}"))?;
    write_rgb(obj, img);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_round_trip() {
        let regions = vec![ReplacedRegion {
            rect: PixelRect {
                x: 1,
                y: 2,
                width: 2,
                height: 1,
            },
            original: vec![1, 2, 3, 4, 5, 6],
        }];
        let b = encode_regions(10, 8, &regions);
        assert_eq!(decode_regions(&b).unwrap(), (10, 8, regions));
        assert!(decode_regions(&b[..b.len() - 1]).is_err());
    }
}
