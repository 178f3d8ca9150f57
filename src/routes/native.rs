//! Pixel data written back native (Explicit VR Little Endian), and what a
//! route that does so must say about the past: decoding does not undo a
//! lossy compression.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// Transfer syntaxes that are lossy whatever the object says (JPEG baseline
/// and extended, JPEG-LS near-lossless), with their PS3.3 C.7.6.1.1.5 method.
const ALWAYS_LOSSY: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2.4.50", "ISO_10918_1"),
    ("1.2.840.10008.1.2.4.51", "ISO_10918_1"),
    ("1.2.840.10008.1.2.4.81", "ISO_14495_1"),
];

/// Native output does not undo a lossy past: a lossy source keeps (or, from
/// an always-lossy transfer syntax, gains) LossyImageCompression "01"; a
/// lossless one gets no lossy marking. Ambiguous syntaxes (JPEG 2000, HTJ2K)
/// keep what the source declared.
pub fn mark_lossy_history(obj: &mut DefaultDicomObject, source_ts: &str) {
    let declared = crate::dicom::text(obj, tags::LOSSY_IMAGE_COMPRESSION);
    let Some((_, method)) = ALWAYS_LOSSY.iter().find(|(ts, _)| *ts == source_ts) else {
        return;
    };
    if declared == "01" {
        return;
    }
    obj.put(DataElement::new(
        tags::LOSSY_IMAGE_COMPRESSION,
        VR::CS,
        PrimitiveValue::from("01"),
    ));
    if obj.get(tags::LOSSY_IMAGE_COMPRESSION_METHOD).is_none()
        && obj.get(tags::LOSSY_IMAGE_COMPRESSION_RATIO).is_none()
    {
        obj.put(DataElement::new(
            tags::LOSSY_IMAGE_COMPRESSION_METHOD,
            VR::CS,
            PrimitiveValue::from(*method),
        ));
    }
}

/// Replaces Pixel Data with native `data` (padded to even length) as `vr`
/// (OB for 8-bit, OW for 16-bit samples), keeps a lossy past declared, and
/// switches the transfer syntax to Explicit VR Little Endian.
pub fn put_pixel_data(obj: &mut DefaultDicomObject, mut data: Vec<u8>, vr: VR) {
    let source_ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    if data.len() % 2 == 1 {
        data.push(0);
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(data),
    ));
    mark_lossy_history(obj, &source_ts);
    let evrle = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    obj.update_meta(|m| m.set_transfer_syntax(&evrle));
}
