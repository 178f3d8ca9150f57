//! The photo route: photographs of patients lose their faces before they
//! leave, and the replaced pixels are kept sealed in the key store.
//!
//! Which objects: the VL/ophthalmic photographic SOP classes, XC/OP/ES
//! modalities, and secondary captures (SC/OT) with colour content. What can
//! happen to them: faces found -> replaced (code 113102 added, pixels written
//! back uncompressed RGB); no face -> passed unchanged with a note in the log;
//! anything that stops the route (no weights, undecodable or unsupported
//! pixels, a detector error) -> `Err(reason)`, which sends the object to
//! quarantine. A photograph never passes untouched because something failed.
//!
//! `[photo] mode = "generate"` paints faces with the learned MedSem decoder
//! instead of the synthetic fill; without its trained weights the route
//! refuses (quarantine, with the reason) rather than fall back silently.

use crate::config::{PhotoConfig, PhotoMode};
use crate::models::photo::medsem::{generate_faces, MedSem};
use crate::models::photo::{
    annotation_keep, replace_faces, restore, DetectConfig, Graphic, GraphicType, GraphicUnits,
    Mtcnn, PixelRect, ReplaceConfig, ReplacedRegion, RgbImage,
};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use sha2::{Digest, Sha256};

/// SOP classes that are photographs whatever their content.
const PHOTO_CLASSES: &[&str] = &[
    uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::OPHTHALMIC_PHOTOGRAPHY8_BIT_IMAGE_STORAGE,
    uids::OPHTHALMIC_PHOTOGRAPHY16_BIT_IMAGE_STORAGE,
    uids::VL_ENDOSCOPIC_IMAGE_STORAGE,
    "1.2.840.10008.5.1.4.1.1.77.1.4.1", // VL Photographic Image (external camera)
];
/// Secondary capture classes: photographs when their pixels are in colour.
const SC_CLASSES: &[&str] = &[
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
];
const PHOTO_MODALITIES: &[&str] = &["XC", "OP", "ES", "VL"];

/// What the route did to one photograph.
pub struct Applied {
    pub faces: usize,
    /// Keep boxes taken from the instance's graphic annotations.
    pub annotation_boxes: usize,
    /// Original pixels of the replaced rectangles (empty when no face).
    pub regions: Vec<ReplacedRegion>,
}

/// The loaded route, or why it cannot run.
pub struct PhotoRoute {
    model: Result<Mtcnn, String>,
    /// Generate mode's decoder, or why generate mode refuses; `None` in
    /// replace mode.
    generator: Option<Result<MedSem, String>>,
    cfg: PhotoConfig,
}

impl PhotoRoute {
    /// Loads the detector on the CPU. A missing model is not an error here:
    /// the route then quarantines every photograph with the reason.
    pub fn load(cfg: &PhotoConfig) -> PhotoRoute {
        let model = if !cfg.enabled {
            Err("the photo route is disabled ([photo] enabled = false)".to_string())
        } else {
            Mtcnn::load(&cfg.weights, &candle_core::Device::Cpu).map_err(|e| format!("{e:#}"))
        };
        match &model {
            Ok(_) => tracing::info!(weights = %cfg.weights.display(), "photo route: MTCNN loaded"),
            Err(e) => {
                tracing::warn!(reason = %e, "photo route unavailable: photographs go to quarantine")
            }
        }
        let generator = (cfg.enabled && cfg.mode == PhotoMode::Generate).then(|| {
            let dir = &cfg.generator;
            let loaded = MedSem::load(dir, &candle_core::Device::Cpu).map_err(|e| {
                format!(
                    "photo generate mode has no trained weights ({}): {e:#}",
                    dir.display()
                )
            });
            match &loaded {
                Ok(g) => tracing::info!(
                    generator = %dir.display(),
                    size = g.cfg.size,
                    "photo route: generate mode, MedSem decoder loaded"
                ),
                Err(e) => tracing::error!(
                    reason = %e,
                    "photo route: generate mode refuses to run; photographs go to quarantine \
                     (train with `deidgate train photo`, or set [photo] mode = \"replace\")"
                ),
            }
            loaded
        });
        PhotoRoute {
            model,
            generator,
            cfg: cfg.clone(),
        }
    }

    /// Whether the route can de-identify: detector loaded and, in generate
    /// mode, the decoder too.
    pub fn loaded(&self) -> bool {
        self.model.is_ok() && self.generate_refusal().is_none()
    }

    /// Why generate mode refuses to run; `None` in replace mode or when its
    /// weights are loaded.
    pub fn generate_refusal(&self) -> Option<&str> {
        match &self.generator {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether faces are painted by the learned generator.
    pub fn generates(&self) -> bool {
        self.cfg.mode == PhotoMode::Generate
    }

    /// Whether `obj` is a photograph for this route.
    pub fn applies(obj: &DefaultDicomObject) -> bool {
        let class = obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0');
        let text = |t| crate::deid::engine::text(obj, t);
        if PHOTO_CLASSES.contains(&class)
            || PHOTO_MODALITIES.contains(&text(tags::MODALITY).as_str())
        {
            return true;
        }
        // Palette colour counts: a face stored as a palette image is still a
        // face (the route quarantines it, having no palette path yet).
        let colour = text(tags::SAMPLES_PER_PIXEL) == "3"
            || text(tags::PHOTOMETRIC_INTERPRETATION) == "PALETTE COLOR";
        colour
            && (SC_CLASSES.contains(&class)
                || ["SC", "OT"].contains(&text(tags::MODALITY).as_str()))
    }

    /// Replaces the faces of `obj` in place. `Err` is a quarantine reason.
    pub fn apply(&self, obj: &mut DefaultDicomObject) -> Result<Applied, String> {
        if let Some(reason) = self.generate_refusal() {
            return Err(reason.to_string());
        }
        let model = self
            .model
            .as_ref()
            .map_err(|e| format!("photo route: {e}"))?;
        let mut img = decode_rgb(obj)?;
        // Read from the object as received: the metadata de-identification
        // that runs after this route removes the Graphic Annotation Sequence.
        let annotated = if self.cfg.keep_annotations {
            annotation_keep(
                &annotation_graphics(obj, &self.cfg.keep_annotation_layers),
                img.width,
                img.height,
            )
        } else {
            Vec::new()
        };
        let detect = DetectConfig {
            min_face_size: self.cfg.min_face_size,
            ..DetectConfig::default()
        };
        let faces = model
            .detect_with(&img, &detect)
            .map_err(|e| format!("photo route: face detector failed: {e:#}"))?;
        if faces.is_empty() {
            return Ok(Applied {
                faces: 0,
                annotation_boxes: annotated.len(),
                regions: Vec::new(),
            });
        }
        let annotation_boxes = annotated.len();
        let mut keep = self.cfg.keep.clone();
        keep.extend(annotated);
        let rcfg = ReplaceConfig {
            keep,
            seed: seed_of(obj),
            ..ReplaceConfig::default()
        };
        let rep = match &self.generator {
            Some(Ok(g)) => generate_faces(&mut img, &faces, &rcfg, g)
                .map_err(|e| format!("photo route: the face generator failed: {e:#}"))?,
            _ => replace_faces(&mut img, &faces, &rcfg),
        };
        write_rgb(obj, img);
        Ok(Applied {
            faces: faces.len(),
            annotation_boxes,
            regions: rep.regions,
        })
    }
}

/// The graphics of `obj`'s own Graphic Annotation Sequence (PS3.3 C.10.5):
/// annotation items whose Referenced Image Sequence, when present, names
/// this instance, on one of `layers` (all layers when empty). Graphics with
/// units, types or data this cannot read are skipped.
pub fn annotation_graphics(obj: &InMemDicomObject, layers: &[String]) -> Vec<Graphic> {
    use crate::deid::engine::text;
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

/// The replacement noise is seeded from the instance so a replay gives the
/// same bytes (the output is then identical, as elsewhere in the pipeline).
fn seed_of(obj: &DefaultDicomObject) -> u64 {
    let uid = crate::deid::engine::text(obj, tags::SOP_INSTANCE_UID);
    let d = Sha256::digest(uid.as_bytes());
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

/// The single frame of an 8-bit colour photograph as interleaved RGB.
fn decode_rgb(obj: &DefaultDicomObject) -> Result<RgbImage, String> {
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
fn write_rgb(obj: &mut DefaultDicomObject, img: RgbImage) {
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

    fn generate_cfg(generator: &std::path::Path) -> PhotoConfig {
        let mut cfg = crate::config::Config::load(None).unwrap().photo;
        cfg.mode = PhotoMode::Generate;
        cfg.generator = generator.to_path_buf();
        cfg
    }

    #[test]
    fn generate_mode_without_weights_refuses_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let route = PhotoRoute::load(&generate_cfg(&dir.path().join("medsem")));
        assert!(!route.loaded());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/derived/vl_photo_face_rgb.dcm");
        let mut obj = dicom_object::open_file(path).unwrap();
        assert!(PhotoRoute::applies(&obj));
        let before = obj
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .to_vec();
        let err = route
            .apply(&mut obj)
            .err()
            .expect("generate mode must refuse");
        assert!(
            err.starts_with("photo generate mode has no trained weights ("),
            "{err}"
        );
        assert!(err.contains("medsem"), "{err}");
        assert_eq!(route.generate_refusal(), Some(err.as_str()));
        let after = obj
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .to_vec();
        assert_eq!(before, after, "refusing must not touch the pixels");
    }

    #[test]
    fn generate_mode_loads_trained_weights() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::models::photo::medsem::MedSemConfig {
            size: 32,
            id_dim: 8,
            sem_channels: 4,
            width: 32,
            ..Default::default()
        };
        MedSem::new(cfg, &candle_core::Device::Cpu)
            .unwrap()
            .save(dir.path())
            .unwrap();
        let route = PhotoRoute::load(&generate_cfg(dir.path()));
        assert_eq!(route.generate_refusal(), None);
        assert!(route.generates());
    }

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

    #[test]
    fn ybr_grey_stays_grey() {
        let mut px = [100u8, 128, 128];
        ybr_to_rgb(&mut px);
        assert_eq!(px, [100, 100, 100]);
    }
}
