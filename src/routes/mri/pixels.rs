//! Stored pixel values in and out of MR instances.
//!
//! Read: decode any supported transfer syntax to native samples and keep
//! the raw bytes of every frame, so a voxel the model does not touch is
//! written back as exactly the bytes it came in with. Write: native pixel
//! data in Explicit VR Little Endian at the instance's own BitsAllocated,
//! BitsStored and PixelRepresentation; the modality rescale is never
//! applied (the values stay stored values).

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// The sample format of an instance's pixel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
}

impl Format {
    fn bytes(self) -> usize {
        self.bits_allocated as usize / 8
    }

    /// The stored value of one sample (bits above BitsStored ignored).
    pub fn value(self, b: &[u8]) -> f32 {
        let raw: u32 = match self.bytes() {
            1 => b[0] as u32,
            2 => u16::from_le_bytes([b[0], b[1]]) as u32,
            _ => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        };
        let bits = self.bits_stored as u32;
        let v = if bits >= 32 {
            raw
        } else {
            raw & ((1u32 << bits) - 1)
        };
        if self.signed && bits < 32 && v >> (bits - 1) & 1 == 1 {
            (v as i64 - (1i64 << bits)) as f32
        } else if self.signed {
            v as i32 as f32
        } else {
            v as f32
        }
    }

    /// `v` rounded and clamped into the stored range, as sample bytes.
    pub fn encode(self, v: f32, out: &mut [u8]) {
        let bits = self.bits_stored.min(32) as i64;
        let (lo, hi) = if self.signed {
            (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
        } else {
            (0, (1i64 << bits) - 1)
        };
        let r = if v.is_finite() { v.round() as i64 } else { 0 };
        let s = r.clamp(lo, hi);
        let mask = if bits >= 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        };
        let word = (s as u32) & mask;
        let le = word.to_le_bytes();
        out.copy_from_slice(&le[..self.bytes()]);
    }
}

/// The decoded samples of one instance: raw native bytes for every frame.
pub struct Pixels {
    pub format: Format,
    pub rows: usize,
    pub columns: usize,
    pub frames: usize,
    pub data: Vec<u8>,
}

impl Pixels {
    fn frame_len(&self) -> usize {
        self.rows * self.columns * self.format.bytes()
    }

    /// The raw bytes of one frame.
    pub fn frame(&self, f: usize) -> &[u8] {
        let n = self.frame_len();
        &self.data[f * n..(f + 1) * n]
    }

    pub fn frame_mut(&mut self, f: usize) -> &mut [u8] {
        let n = self.frame_len();
        &mut self.data[f * n..(f + 1) * n]
    }

    pub fn sample_bytes(&self) -> usize {
        self.format.bytes()
    }
}

/// Decode the pixel data of an MR instance; `Err` is a quarantine reason.
pub fn decode(obj: &DefaultDicomObject) -> Result<Pixels, String> {
    use dicom_pixeldata::{PixelDecoder, PixelRepresentation};
    if obj.meta().transfer_syntax().trim_end_matches('\0') == "1.2.840.10008.1.2.2" {
        return Err("big-endian pixel data is not handled".into());
    }
    let d = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
        .map_err(|_| "the pixel decoder panicked".to_string())?
        .map_err(|e| format!("cannot decode the pixel data: {e}"))?;
    if d.samples_per_pixel() != 1 {
        return Err("not a greyscale image (SamplesPerPixel != 1)".into());
    }
    let format = Format {
        bits_allocated: d.bits_allocated(),
        bits_stored: d.bits_stored(),
        signed: d.pixel_representation() == PixelRepresentation::Signed,
    };
    if ![8, 16, 32].contains(&format.bits_allocated)
        || format.bits_stored == 0
        || format.bits_stored > format.bits_allocated
    {
        return Err(format!(
            "{} bits allocated, {} stored: not handled",
            format.bits_allocated, format.bits_stored
        ));
    }
    let px = Pixels {
        format,
        rows: d.rows() as usize,
        columns: d.columns() as usize,
        frames: d.number_of_frames() as usize,
        data: Vec::new(),
    };
    let need = px.frame_len() * px.frames;
    let raw = d.data();
    if raw.len() < need {
        return Err("the pixel data is shorter than the image".into());
    }
    Ok(Pixels {
        data: raw[..need].to_vec(),
        ..px
    })
}

/// Put `px` back as native Explicit VR Little Endian pixel data; the
/// sample format attributes are rewritten with the values they had.
pub fn write_back(obj: &mut DefaultDicomObject, px: Pixels) {
    let us = |v: u16| PrimitiveValue::from(v);
    let f = px.format;
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        us(f.bits_allocated),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        us(f.bits_stored),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        us(f.bits_stored - 1),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        us(f.signed as u16),
    ));
    let mut data = px.data;
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let vr = if f.bits_allocated == 8 {
        VR::OB
    } else {
        VR::OW
    };
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(data),
    ));
    let evrle = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    obj.update_meta(|m| m.set_transfer_syntax(&evrle));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip_in_every_format() {
        let cases = [
            (
                Format {
                    bits_allocated: 16,
                    bits_stored: 12,
                    signed: false,
                },
                [0.0, 4095.0, 17.0],
            ),
            (
                Format {
                    bits_allocated: 16,
                    bits_stored: 12,
                    signed: true,
                },
                [-2048.0, 2047.0, -1.0],
            ),
            (
                Format {
                    bits_allocated: 16,
                    bits_stored: 16,
                    signed: true,
                },
                [-32768.0, 32767.0, 5.0],
            ),
            (
                Format {
                    bits_allocated: 8,
                    bits_stored: 8,
                    signed: false,
                },
                [0.0, 255.0, 9.0],
            ),
            (
                Format {
                    bits_allocated: 32,
                    bits_stored: 32,
                    signed: true,
                },
                [-70000.0, 70000.0, 0.0],
            ),
        ];
        for (f, values) in cases {
            for v in values {
                let mut b = vec![0u8; f.bytes()];
                f.encode(v, &mut b);
                assert_eq!(f.value(&b), v, "{f:?}");
            }
        }
    }

    #[test]
    fn out_of_range_values_are_clamped_and_high_bits_ignored() {
        let f = Format {
            bits_allocated: 16,
            bits_stored: 12,
            signed: false,
        };
        let mut b = [0u8; 2];
        f.encode(9000.4, &mut b);
        assert_eq!(f.value(&b), 4095.0);
        f.encode(-3.0, &mut b);
        assert_eq!(f.value(&b), 0.0);
        // An overlay bit above BitsStored does not change the value.
        assert_eq!(f.value(&[0x05, 0x80]), 5.0);
    }
}
