//! Pixels in and out of the photo route: one 8-bit colour frame decoded to
//! interleaved RGB (YBR_FULL converted), written back uncompressed.

use crate::models::photo::RgbImage;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// The single frame of an 8-bit colour photograph as interleaved RGB.
pub fn decode_rgb(obj: &DefaultDicomObject) -> Result<RgbImage, String> {
    use dicom_pixeldata::{PhotometricInterpretation as Pi, PixelDecoder, PlanarConfiguration};
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
            .map_err(|_| "photo route: the pixel decoder panicked".to_string())?
            .map_err(|e| format!("photo route: cannot decode the pixel data: {e}"))?;
    let (w, h) = (decoded.columns(), decoded.rows());
    if decoded.number_of_frames() != 1 {
        return Err(format!(
            "photo route: {} frames; only single-frame photographs are handled",
            decoded.number_of_frames()
        ));
    }
    if decoded.bits_allocated() != 8 || decoded.samples_per_pixel() != 3 {
        return Err(format!(
            "photo route: {} samples of {} bits; only 8-bit colour photographs are handled",
            decoded.samples_per_pixel(),
            decoded.bits_allocated()
        ));
    }
    let n = w as usize * h as usize;
    let raw = decoded.data();
    if raw.len() < n * 3 {
        return Err("photo route: the pixel data is shorter than the image".into());
    }
    let mut rgb: Vec<u8> = match decoded.planar_configuration() {
        PlanarConfiguration::Standard => raw[..n * 3].to_vec(),
        PlanarConfiguration::PixelFirst => (0..n * 3).map(|i| raw[(i % 3) * n + i / 3]).collect(),
    };
    match decoded.photometric_interpretation() {
        Pi::Rgb => {}
        Pi::YbrFull => ybr_to_rgb(&mut rgb),
        other => {
            return Err(format!(
                "photo route: photometric interpretation {other} is not handled"
            ))
        }
    }
    RgbImage::new(w, h, rgb).map_err(|e| format!("photo route: {e:#}"))
}

/// YBR_FULL (PS3.3 C.7.6.3.1.2) to RGB, in place.
fn ybr_to_rgb(px: &mut [u8]) {
    for p in px.chunks_exact_mut(3) {
        let (y, cb, cr) = (p[0] as f32, p[1] as f32 - 128.0, p[2] as f32 - 128.0);
        let c = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        p[0] = c(y + 1.402 * cr);
        p[1] = c(y - 0.344136 * cb - 0.714136 * cr);
        p[2] = c(y + 1.772 * cb);
    }
}

/// Writes `img` back as uncompressed interleaved RGB in Explicit VR Little
/// Endian (the replaced pixels must not be re-compressed lossily).
pub fn write_rgb(obj: &mut DefaultDicomObject, img: RgbImage) {
    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("RGB"),
    ));
    obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us(0)));
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(3)));
    obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, us(8)));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(8)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(7)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
    obj.remove_element(tags::NUMBER_OF_FRAMES);
    let mut data = img.data;
    if data.len() % 2 == 1 {
        data.push(0);
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(data),
    ));
    let evrle = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    obj.update_meta(|m| m.set_transfer_syntax(&evrle));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ybr_grey_stays_grey() {
        let mut px = [100u8, 128, 128];
        ybr_to_rgb(&mut px);
        assert_eq!(px, [100, 100, 100]);
    }
}
