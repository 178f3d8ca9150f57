//! The accept / quarantine decision taken before de-identification.

use crate::config::FilterConfig;
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;

/// Why an object is not forwarded. Reasons name attributes, never values.
pub fn check(obj: &DefaultDicomObject, cfg: &FilterConfig) -> Result<(), String> {
    let get = |t| crate::dicom::text(obj, t);
    let sop_class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    if sop_class == uids::MEDIA_STORAGE_DIRECTORY_STORAGE {
        return Err(
            "DICOMDIR (media storage directory): its records point at the original files; \
                    regenerate it from the de-identified files instead"
                .into(),
        );
    }
    let listed =
        |list: &[String], v: &str| list.iter().any(|x| x.trim().eq_ignore_ascii_case(v.trim()));
    if listed(&cfg.quarantine_sop_classes, sop_class) {
        return Err(format!(
            "SOP class {sop_class} is configured for quarantine"
        ));
    }
    let modality = get(tags::MODALITY);
    if listed(&cfg.quarantine_modalities, &modality) {
        return Err(format!("modality {modality} is configured for quarantine"));
    }
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
    if listed(&cfg.quarantine_transfer_syntaxes, ts) {
        return Err(format!("transfer syntax {ts} is configured for quarantine"));
    }
    if cfg.quarantine_burned_in_annotation
        && get(tags::BURNED_IN_ANNOTATION).eq_ignore_ascii_case("YES")
    {
        return Err(
            "BurnedInAnnotation=YES: the pixels carry identifying text and no pixel route \
                    cleans them"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::parse;

    fn obj(name: &str) -> DefaultDicomObject {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/dicom")
            .join(name);
        parse(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn configured_lists_quarantine_with_a_reason() {
        let mut cfg = FilterConfig {
            quarantine_burned_in_annotation: true,
            quarantine_sop_classes: vec![],
            quarantine_modalities: vec![],
            quarantine_transfer_syntaxes: vec![],
            duplicate_sop_instance_uid: crate::config::DuplicateUid::Quarantine,
        };
        let mr = obj("mr/MR_small.dcm");
        assert!(check(&mr, &cfg).is_ok());
        cfg.quarantine_modalities = vec!["mr".into()];
        assert!(check(&mr, &cfg).unwrap_err().contains("modality MR"));
        cfg.quarantine_modalities.clear();
        cfg.quarantine_transfer_syntaxes = vec!["1.2.840.10008.1.2.1".into()];
        assert!(check(&mr, &cfg).unwrap_err().contains("transfer syntax"));
        cfg.quarantine_transfer_syntaxes.clear();
        cfg.quarantine_sop_classes = vec!["1.2.840.10008.5.1.4.1.1.4".into()];
        assert!(check(&mr, &cfg).unwrap_err().contains("SOP class"));
        assert!(check(
            &obj("us/GREYSCALE_IMAGE.dcm"),
            &FilterConfig {
                quarantine_sop_classes: vec![],
                ..cfg
            }
        )
        .unwrap_err()
        .contains("BurnedInAnnotation"));
    }
}
