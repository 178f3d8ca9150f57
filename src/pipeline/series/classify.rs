//! Whether an incoming object belongs to a head MR series, and what the
//! holding area needs to know about it (no PHI: counts and the keyed
//! pseudonym of the series).

use crate::config::FilterConfig;
use crate::deid::pseudonym::Pseudonymizer;
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
}

/// `Some` for a head MR instance that passes the filter; anything else
/// (including objects the filter or the parser rejects) takes the ordinary
/// per-instance path, which quarantines what it cannot handle.
pub fn classify(
    bytes: &[u8],
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
    if !crate::pipeline::mri::select::is_head_mr(&obj, &class) {
        return None;
    }
    crate::pipeline::filter::check(&obj, filter).ok()?;
    let text = |t| crate::deid::engine::text(&obj, t);
    let series = text(tags::SERIES_INSTANCE_UID);
    if series.is_empty() {
        return None;
    }
    let n = |t| text(t).parse::<usize>().ok().filter(|n| *n > 0);
    let (frames, expected) = match n(tags::NUMBER_OF_FRAMES) {
        Some(f) => (f, Some(f)),
        None => (1, n(tags::IMAGES_IN_ACQUISITION)),
    };
    Some(HeadInstance {
        key: pseudo.uid(&series),
        frames,
        expected,
    })
}
