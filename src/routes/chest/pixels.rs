//! Pixel data in and out of the chest route: the single grey frame as stored
//! values (any bit depth 1–16 in 8- or 16-bit words, signed or not, any
//! transfer syntax the decoder knows), its display normalization for the
//! model, and the native Explicit VR Little Endian write-back.

use dicom_core::VR;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PhotometricInterpretation as Pi, PixelDecoder, PixelRepresentation};

/// One decoded grey frame.
pub struct Stored {
    pub width: usize,
    pub height: usize,
    /// Stored values (before Rescale), row-major; exact in f32 up to 16 bits.
    pub values: Vec<f32>,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub monochrome1: bool,
    /// Modality LUT: value = stored × slope + intercept.
    pub slope: f64,
    pub intercept: f64,
    /// First VOI window (centre, width), if any.
    pub window: Option<(f64, f64)>,
}

impl Stored {
    /// The range the stored values can take (BitsStored, PixelRepresentation).
    pub fn range(&self) -> (f32, f32) {
        let b = self.bits_stored as i32;
        if self.signed {
            (-(1i64 << (b - 1)) as f32, ((1i64 << (b - 1)) - 1) as f32)
        } else {
            (0.0, ((1i64 << b) - 1) as f32)
        }
    }

    /// The image as the model sees it: [0, 1], bright = dense (MONOCHROME2).
    /// Rescale, then the first VOI window (linear, PS3.3 C.11.2.1.2), or the
    /// image's own value range when it has no usable window.
    pub fn normalized(&self) -> Vec<f32> {
        let modality: Vec<f64> = self
            .values
            .iter()
            .map(|&v| v as f64 * self.slope + self.intercept)
            .collect();
        let (lo, hi) = match self.window {
            Some((c, w)) if w > 1.0 => (c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0),
            _ => modality
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v))),
        };
        let span = hi - lo;
        modality
            .iter()
            .map(|&m| {
                let y = if span > 0.0 {
                    ((m - lo) / span).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (if self.monochrome1 { 1.0 - y } else { y }) as f32
            })
            .collect()
    }
}

/// Decodes the single grey frame of `obj`. `Err` is a quarantine reason.
pub fn decode(obj: &DefaultDicomObject) -> Result<Stored, String> {
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
            .map_err(|_| "chest route: the pixel decoder panicked".to_string())?
            .map_err(|e| format!("chest route: cannot decode the pixel data: {e}"))?;
    if decoded.number_of_frames() != 1 {
        return Err(format!(
            "chest route: {} frames; only single-frame radiographs are handled",
            decoded.number_of_frames()
        ));
    }
    let monochrome1 = match decoded.photometric_interpretation() {
        Pi::Monochrome1 => true,
        Pi::Monochrome2 => false,
        other => {
            return Err(format!(
            "chest route: photometric interpretation {other} is not handled (MONOCHROME1/2 only)"
        ))
        }
    };
    let (alloc, stored, high) = (
        decoded.bits_allocated(),
        decoded.bits_stored(),
        decoded.high_bit(),
    );
    if decoded.samples_per_pixel() != 1
        || !(alloc == 8 || alloc == 16)
        || stored == 0
        || stored > alloc
        || high + 1 != stored
    {
        return Err(format!(
            "chest route: {} samples, BitsAllocated {alloc}, BitsStored {stored}, HighBit {high} \
             are not handled (one sample, 8 or 16 bits allocated, HighBit = BitsStored - 1)",
            decoded.samples_per_pixel()
        ));
    }
    let (width, height) = (decoded.columns() as usize, decoded.rows() as usize);
    let n = width * height;
    let bytes = alloc as usize / 8;
    let raw = decoded.data();
    if n == 0 || raw.len() < n * bytes {
        return Err("chest route: the pixel data is shorter than the image".into());
    }
    let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
    let mask = (1u32 << stored) - 1;
    let value = |word: u32| -> f32 {
        let v = word & mask;
        if signed && (v >> (stored - 1)) & 1 == 1 {
            (v as i64 - (1i64 << stored)) as f32
        } else {
            v as f32
        }
    };
    let values: Vec<f32> = if bytes == 1 {
        raw[..n].iter().map(|&b| value(b as u32)).collect()
    } else {
        raw[..n * 2]
            .chunks_exact(2)
            .map(|c| value(u16::from_le_bytes([c[0], c[1]]) as u32))
            .collect()
    };
    let rescale = decoded
        .rescale()
        .ok()
        .and_then(|r| r.first().copied())
        .map(|r| (r.slope, r.intercept))
        .unwrap_or((1.0, 0.0));
    let window = decoded
        .window()
        .ok()
        .flatten()
        .and_then(|w| w.first())
        .map(|w| (w.center, w.width));
    Ok(Stored {
        width,
        height,
        values,
        bits_allocated: alloc,
        bits_stored: stored,
        signed,
        monochrome1,
        slope: if rescale.0 == 0.0 { 1.0 } else { rescale.0 },
        intercept: rescale.1,
        window,
    })
}

/// Replaces the pixel data of `obj` with `values` (already rounded and in the
/// stored range) as native data in Explicit VR Little Endian. Geometry, bit
/// depth and photometric interpretation stay as they were.
pub fn write_native(obj: &mut DefaultDicomObject, s: &Stored, values: &[f32]) {
    let mask = if s.bits_allocated == 16 { 0xFFFF } else { 0xFF };
    // Two's complement in the allocated word, so signed values are sign-extended.
    let word = |v: f32| (v as i32 as u32) & mask;
    let (vr, data) = if s.bits_allocated == 16 {
        let mut d = Vec::with_capacity(values.len() * 2);
        values
            .iter()
            .for_each(|&v| d.extend_from_slice(&(word(v) as u16).to_le_bytes()));
        (VR::OW, d)
    } else {
        (VR::OB, values.iter().map(|&v| word(v) as u8).collect())
    };
    crate::routes::native::put_pixel_data(obj, data, vr);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(values: Vec<f32>, bits: u16, signed: bool, mono1: bool) -> Stored {
        Stored {
            width: values.len(),
            height: 1,
            values,
            bits_allocated: 16,
            bits_stored: bits,
            signed,
            monochrome1: mono1,
            slope: 1.0,
            intercept: 0.0,
            window: None,
        }
    }

    #[test]
    fn ranges_follow_bits_stored_and_sign() {
        assert_eq!(stored(vec![0.0], 12, false, false).range(), (0.0, 4095.0));
        assert_eq!(
            stored(vec![0.0], 12, true, false).range(),
            (-2048.0, 2047.0)
        );
        assert_eq!(stored(vec![0.0], 16, false, false).range(), (0.0, 65535.0));
    }

    #[test]
    fn normalization_inverts_monochrome1_and_uses_the_window() {
        let s = stored(vec![0.0, 50.0, 100.0], 12, false, false);
        assert_eq!(s.normalized(), vec![0.0, 0.5, 1.0]);
        let s = stored(vec![0.0, 50.0, 100.0], 12, false, true);
        assert_eq!(s.normalized(), vec![1.0, 0.5, 0.0]);
        let mut s = stored(vec![0.0, 1000.0, 3000.0], 12, false, false);
        s.window = Some((1000.5, 1001.0)); // [500, 1500]
        let n = s.normalized();
        assert_eq!((n[0], n[2]), (0.0, 1.0));
        assert!((n[1] - 0.5).abs() < 1e-3, "{n:?}");
    }
}
