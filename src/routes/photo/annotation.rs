//! Lesions a clinician outlined on the photograph itself (its Graphic
//! Annotation Sequence) become keep boxes, so face replacement never paints
//! over them.

use crate::models::photo::{Graphic, GraphicType, GraphicUnits};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// The graphics of `obj`'s own Graphic Annotation Sequence (PS3.3 C.10.5):
/// annotation items whose Referenced Image Sequence, when present, names
/// this instance, on one of `layers` (all layers when empty). Graphics with
/// units, types or data this cannot read are skipped.
pub fn annotation_graphics(obj: &InMemDicomObject, layers: &[String]) -> Vec<Graphic> {
    use crate::dicom::text;
    fn items(o: &InMemDicomObject, t: dicom_core::Tag) -> &[InMemDicomObject] {
        o.get(t).and_then(|e| e.items()).unwrap_or(&[])
    }
    let own_uid = text(obj, tags::SOP_INSTANCE_UID);
    let mut out = Vec::new();
    for ann in items(obj, tags::GRAPHIC_ANNOTATION_SEQUENCE) {
        if !layers.is_empty() && !layers.contains(&text(ann, tags::GRAPHIC_LAYER)) {
            continue;
        }
        if ann.get(tags::REFERENCED_IMAGE_SEQUENCE).is_some()
            && !items(ann, tags::REFERENCED_IMAGE_SEQUENCE)
                .iter()
                .any(|r| text(r, tags::REFERENCED_SOP_INSTANCE_UID) == own_uid)
        {
            continue;
        }
        for g in items(ann, tags::GRAPHIC_OBJECT_SEQUENCE) {
            let units = GraphicUnits::parse(&text(g, tags::GRAPHIC_ANNOTATION_UNITS));
            let kind = GraphicType::parse(&text(g, tags::GRAPHIC_TYPE));
            let data = g
                .get(tags::GRAPHIC_DATA)
                .and_then(|e| e.value().to_multi_float32().ok());
            let (Some(units), Some(kind), Some(data)) = (units, kind, data) else {
                continue;
            };
            if data.len() % 2 != 0 {
                continue;
            }
            let points = data.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            out.push(Graphic {
                units,
                kind,
                points,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::photo::{annotation_keep, PixelRect};
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};
    fn graphic(units: &str, kind: &str, data: &[f32]) -> InMemDicomObject {
        InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::GRAPHIC_ANNOTATION_UNITS,
                VR::CS,
                PrimitiveValue::from(units),
            ),
            DataElement::new(tags::GRAPHIC_DIMENSIONS, VR::US, PrimitiveValue::from(2u16)),
            DataElement::new(
                tags::NUMBER_OF_GRAPHIC_POINTS,
                VR::US,
                PrimitiveValue::from((data.len() / 2) as u16),
            ),
            DataElement::new(
                tags::GRAPHIC_DATA,
                VR::FL,
                PrimitiveValue::F32(data.iter().copied().collect()),
            ),
            DataElement::new(tags::GRAPHIC_TYPE, VR::CS, PrimitiveValue::from(kind)),
        ])
    }

    fn annotation(
        layer: &str,
        referenced: Option<&str>,
        graphics: Vec<InMemDicomObject>,
    ) -> InMemDicomObject {
        use dicom_core::value::DataSetSequence;
        let mut item = InMemDicomObject::from_element_iter([
            DataElement::new(tags::GRAPHIC_LAYER, VR::CS, PrimitiveValue::from(layer)),
            DataElement::new(
                tags::GRAPHIC_OBJECT_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(graphics),
            ),
        ]);
        if let Some(uid) = referenced {
            let r = InMemDicomObject::from_element_iter([DataElement::new(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(uid),
            )]);
            item.put(DataElement::new(
                tags::REFERENCED_IMAGE_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![r]),
            ));
        }
        item
    }

    #[test]
    fn annotations_of_this_instance_become_keep_boxes() {
        use crate::models::photo::KeepRegion;
        use dicom_core::value::DataSetSequence;
        let square = [10.0, 10.0, 20.0, 10.0, 20.0, 30.0, 10.0, 10.0];
        let obj = InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("1.2.3"),
            ),
            DataElement::new(
                tags::GRAPHIC_ANNOTATION_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![
                    annotation(
                        "LESION",
                        None,
                        vec![
                            graphic("PIXEL", "POLYLINE", &square),
                            // An arrow: open, keeps nothing.
                            graphic("PIXEL", "POLYLINE", &[0.0, 0.0, 5.0, 5.0]),
                            graphic("PIXEL", "CIRCLE", &[50.0, 50.0, 50.0, 40.0]),
                            // Unknown units and odd data are skipped.
                            graphic("MATRIX", "CIRCLE", &[1.0, 1.0, 2.0, 2.0]),
                            graphic("PIXEL", "CIRCLE", &[1.0, 1.0, 2.0]),
                        ],
                    ),
                    annotation(
                        "MEASURE",
                        Some("1.2.3"),
                        vec![graphic(
                            "DISPLAY",
                            "ELLIPSE",
                            &[0.0, 0.5, 0.2, 0.5, 0.1, 0.4, 0.1, 0.6],
                        )],
                    ),
                    // Belongs to another image.
                    annotation(
                        "LESION",
                        Some("9.9"),
                        vec![graphic("PIXEL", "CIRCLE", &[5.0, 5.0, 5.0, 6.0])],
                    ),
                ]),
            ),
        ]);
        let all = annotation_graphics(&obj, &[]);
        assert_eq!(all.len(), 4);
        let boxes = annotation_keep(&all, 100, 100);
        let rect = |x, y, width, height| {
            KeepRegion::Box(PixelRect {
                x,
                y,
                width,
                height,
            })
        };
        assert_eq!(
            boxes,
            vec![
                rect(8, 8, 14, 24),
                rect(38, 38, 24, 24),
                rect(0, 38, 22, 24)
            ]
        );
        let lesions = annotation_graphics(&obj, &["LESION".to_string()]);
        assert_eq!(annotation_keep(&lesions, 100, 100).len(), 2);
        assert!(annotation_graphics(&InMemDicomObject::new_empty(), &[]).is_empty());
    }
}
