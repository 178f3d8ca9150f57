//! Whether an incoming object belongs to a head MR series, and what the
//! holding area needs to know about it (no PHI: counts and the keyed
//! pseudonym of the series).

use crate::config::FilterConfig;
use crate::deid::pseudonym::Pseudonymizer;
use crate::routes::SeriesHook;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;

/// A head MR instance to hold with its series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadInstance {
    /// The series' output UID (keyed pseudonym): names the holding folder.
    pub key: String,
    /// Frames in this instance (1 for classic MR).
    pub frames: usize,
    /// Frames the series should have: NumberOfFrames for Enhanced MR,
    /// ImagesInAcquisition for classic MR; `None` when unknown.
    pub expected: Option<usize>,
    /// What slice this is, as 16 hex digits (a hash, no PHI): instances with
    /// the same key are copies of one slice and count once towards
    /// `expected`. See [`slice_key`].
    pub slice: String,
}

/// The slice an instance holds, hashed: for classic MR its position along
/// the slice normal (ImagePositionPatient projected on the normal of
/// ImageOrientationPatient, to 0.01 mm) with EchoNumbers and
/// TemporalPositionIdentifier, so the echoes and phases of one position are
/// different slices; without usable geometry, and for multi-frame objects
/// (one instance holds all frames), `instance`: the caller passes the keyed
/// pseudonym of the SOP Instance UID, so no original UID is hashed into a
/// file name.
pub fn slice_key(
    obj: &dicom_object::InMemDicomObject,
    multi_frame: bool,
    instance: &str,
) -> String {
    use sha2::{Digest, Sha256};
    let text = |t| crate::dicom::text(obj, t);
    let numbers = |t| -> Option<Vec<f64>> {
        text(t)
            .split('\\')
            .map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect()
    };
    let position = (!multi_frame)
        .then(|| {
            let p = numbers(tags::IMAGE_POSITION_PATIENT).filter(|v| v.len() == 3)?;
            let o = numbers(tags::IMAGE_ORIENTATION_PATIENT).filter(|v| v.len() == 6)?;
            let n = [
                o[1] * o[5] - o[2] * o[4],
                o[2] * o[3] - o[0] * o[5],
                o[0] * o[4] - o[1] * o[3],
            ];
            let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            (len > 0.5).then(|| ((p[0] * n[0] + p[1] * n[1] + p[2] * n[2]) / len * 100.0).round())
        })
        .flatten();
    let what = match position {
        Some(d) => format!(
            "position {d} echo {} temporal {}",
            text(tags::ECHO_NUMBERS),
            text(tags::TEMPORAL_POSITION_IDENTIFIER)
        ),
        None => format!("instance {instance}"),
    };
    hex::encode(&Sha256::digest(what.as_bytes())[..8])
}

/// MR Image Storage: the classic one-slice-per-instance IOD.
const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";

/// (frames in this instance, frames the series should have, multi-frame).
/// A multi-frame object holds the whole series. A classic MR instance that
/// carries NumberOfFrames = 1 (some converters add it) is still one slice
/// of a series: counting it as a one-frame series would claim each slice
/// alone and quarantine it as too short.
fn counts(obj: &dicom_object::InMemDicomObject, class: &str) -> (usize, Option<usize>, bool) {
    let text = |t| crate::dicom::text(obj, t);
    let n = |t| text(t).parse::<usize>().ok().filter(|n| *n > 0);
    let classic = class.trim_end_matches('\0') == MR_IMAGE_STORAGE;
    match n(tags::NUMBER_OF_FRAMES).filter(|f| *f > 1 || !classic) {
        Some(f) => (f, Some(f), true),
        None => (1, n(tags::IMAGES_IN_ACQUISITION), false),
    }
}

/// `Some` for an instance the series route holds (head MR) that passes the
/// filter; anything else
/// (including objects the filter or the parser rejects) takes the ordinary
/// per-instance path, which quarantines what it cannot handle.
pub fn classify(
    bytes: &[u8],
    hook: &dyn SeriesHook,
    filter: &FilterConfig,
    pseudo: &Pseudonymizer,
) -> Option<HeadInstance> {
    crate::pipeline::precheck::check(bytes).ok()?;
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .read_until(tags::PIXEL_DATA)
        .from_reader(bytes)
        .ok()?;
    let class = obj.meta().media_storage_sop_class_uid().to_string();
    if !hook.holds(&obj) {
        return None;
    }
    crate::pipeline::filter::check(&obj, filter).ok()?;
    let text = |t| crate::dicom::text(&obj, t);
    let series = text(tags::SERIES_INSTANCE_UID);
    if series.is_empty() {
        return None;
    }
    let (frames, expected, multi_frame) = counts(&obj, &class);
    Some(HeadInstance {
        key: pseudo.uid(&series),
        frames,
        expected,
        slice: slice_key(
            &obj,
            multi_frame,
            &pseudo.uid(&text(tags::SOP_INSTANCE_UID)),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::InMemDicomObject;

    fn slice(pos: &str, echo: Option<&str>, sop: &str) -> InMemDicomObject {
        let mut o = InMemDicomObject::new_empty();
        let mut put = |t, vr, v: &str| {
            o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
        };
        put(tags::IMAGE_POSITION_PATIENT, VR::DS, pos);
        put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "0\\1\\0\\0\\0\\-1");
        put(tags::SOP_INSTANCE_UID, VR::UI, sop);
        if let Some(e) = echo {
            put(tags::ECHO_NUMBERS, VR::IS, e);
        }
        o
    }

    #[test]
    fn slice_keys_follow_position_along_the_normal_and_echo() {
        let k = |o: &InMemDicomObject| {
            slice_key(o, false, &crate::dicom::text(o, tags::SOP_INSTANCE_UID))
        };
        let a = k(&slice("-10\\-100\\80", None, "1.2.1"));
        assert_eq!(a.len(), 16);
        // A resend (other SOP UID, same slice; in-plane offsets do not move
        // a sagittal slice along its normal, x).
        assert_eq!(a, k(&slice("-10.001\\-90\\70", None, "1.2.2")));
        assert_ne!(a, k(&slice("-11\\-100\\80", None, "1.2.3")));
        // The second echo at the same position is another slice.
        let e1 = k(&slice("-10\\-100\\80", Some("1"), "1.2.4"));
        assert_ne!(e1, k(&slice("-10\\-100\\80", Some("2"), "1.2.5")));
        // Without geometry, or multi-frame: by SOP Instance UID.
        let mut o = slice("-10\\-100\\80", None, "1.2.6");
        assert_ne!(slice_key(&o, true, "2.25.6"), a);
        assert_ne!(slice_key(&o, true, "2.25.6"), slice_key(&o, true, "2.25.7"));
        o.remove_element(tags::IMAGE_POSITION_PATIENT);
        assert_eq!(
            slice_key(&o, false, "2.25.6"),
            slice_key(&o, true, "2.25.6")
        );
    }

    #[test]
    fn a_classic_slice_with_one_frame_is_still_one_slice_of_a_series() {
        const ENHANCED: &str = "1.2.840.10008.5.1.4.1.1.4.1";
        let mut o = slice("-10\\-100\\80", None, "1.2.1");
        let mut put = |t, vr, v: &str| {
            o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
        };
        put(tags::IMAGES_IN_ACQUISITION, VR::IS, "88");
        put(tags::NUMBER_OF_FRAMES, VR::IS, "1");
        assert_eq!(counts(&o, MR_IMAGE_STORAGE), (1, Some(88), false));
        assert_eq!(counts(&o, ENHANCED), (1, Some(1), true));
        o.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("120"),
        ));
        assert_eq!(counts(&o, MR_IMAGE_STORAGE), (120, Some(120), true));
        assert_eq!(counts(&o, ENHANCED), (120, Some(120), true));
        o.remove_element(tags::NUMBER_OF_FRAMES);
        assert_eq!(counts(&o, ENHANCED), (1, Some(88), false));
    }
}
