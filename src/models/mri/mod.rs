//! Brain MRI face remodeling (issue 6): register an average head template to
//! the subject, carry its face mask over, keep the (dilated) brain out of the
//! changed region by construction, and replace the face.
//!
//! Modes: [`Mode::Reface`] (template face, intensity-matched and feathered),
//! [`Mode::Deface`] (removal, the pydeface-style comparison anchor) and
//! [`Mode::Generate`] (2.5-D conditional generator; refuses without trained
//! weights). Everything outside [`Remodeled::face`] is returned unchanged.

pub mod deface;
pub mod generator;
pub mod guard;
pub mod mask;
pub mod nifti;
pub mod reface;
pub mod register;
pub mod register_cpu;
pub mod resample;
pub mod shape;
pub mod surface;
pub mod template;
pub mod volume;
pub mod warp;

use anyhow::{bail, Result};
use candle_core::Device;
use std::path::Path;

/// A scalar volume in patient space.
#[derive(Clone, Debug)]
pub struct Volume {
    /// (i, j, k), i fastest in `data`.
    pub dims: [usize; 3],
    pub data: Vec<f32>,
    /// voxel (i, j, k, 1) -> DICOM patient coordinates (LPS, mm).
    pub affine: [[f64; 4]; 4],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Replace the face with the registered template face (default).
    #[default]
    Reface,
    /// Remove the face (set to background), as pydeface does.
    Deface,
    /// Generate a face with the trained conditional generator.
    Generate,
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Reface => "reface",
            Mode::Deface => "deface",
            Mode::Generate => "generate",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "reface" => Mode::Reface,
            "deface" => Mode::Deface,
            "generate" => Mode::Generate,
            _ => bail!("unknown MRI face mode {s:?} (reface, deface, generate)"),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Remodeled {
    pub data: Vec<f32>,
    /// Voxels that may change; all others equal the input bit for bit.
    pub face: Vec<bool>,
    /// For DeidentificationMethod; carries no PHI.
    pub note: String,
}

/// Internals of one remodel, for evaluation.
pub struct Details {
    /// Warped template brain mask (undilated) in subject voxels.
    pub brain: Vec<bool>,
    pub ncc: f64,
    pub subject_to_template: volume::Mat4,
    /// Reface: the chosen template face shape (scales), else `None`.
    pub shape: Option<shape::Shape>,
}

/// Smallest accepted number of voxels along any axis.
pub const MIN_SLICES: usize = 16;
/// Smallest accepted extent along any axis (mm): a head is ~150 mm wide.
pub const MIN_EXTENT_MM: f64 = 100.0;
/// Safety margin around the brain that is never changed (mm).
pub const BRAIN_MARGIN_MM: f64 = 10.0;
/// Lowest registration NCC accepted.
pub const MIN_NCC: f64 = 0.5;
/// Fraction of the template face volume that must lie inside the subject.
pub const MIN_FACE_COVERAGE: f64 = 0.15;

pub struct FaceRemodeler {
    template: template::Template,
    generator: std::result::Result<generator::Generator, String>,
    device: Device,
}

impl FaceRemodeler {
    /// Load the template (and generator weights, if any) from `dir`
    /// (normally `models/mri/`). Runs on CUDA when built with the `cuda`
    /// feature and a GPU is present, else on the CPU.
    pub fn load(dir: &Path) -> Result<Self> {
        let device = Device::cuda_if_available(0).unwrap_or(Device::Cpu);
        Self::load_on(dir, device)
    }

    pub fn load_on(dir: &Path, device: Device) -> Result<Self> {
        let template = template::Template::load(dir)?;
        let generator = generator::Generator::load(&dir.join("generator"), &device)
            .map_err(|e| format!("{e:#}"));
        Ok(Self {
            template,
            generator,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn template(&self) -> &template::Template {
        &self.template
    }

    /// Err(reason) when the volume cannot be processed (no face coverage, too
    /// few slices, registration failed...).
    pub fn remodel(&self, vol: &Volume, mode: Mode) -> Result<Remodeled> {
        self.remodel_detailed(vol, mode).map(|(r, _)| r)
    }

    /// [`Self::remodel`] plus what the evaluation and tests check against.
    pub fn remodel_detailed(&self, vol: &Volume, mode: Mode) -> Result<(Remodeled, Details)> {
        if mode == Mode::Generate {
            if let Err(e) = &self.generator {
                bail!("generate mode has no trained weights: {e}");
            }
        }
        check_geometry(vol)?;
        let reg = register::register(vol, &self.template.intensity, &self.device)?;
        if reg.ncc.is_nan() || reg.ncc < MIN_NCC {
            bail!(
                "registration failed: template/subject NCC {:.2} < {MIN_NCC}",
                reg.ncc
            );
        }
        let w = warp::FaceRegion::compute(vol, &self.template, &reg.subject_to_template)?;
        let mut chosen = None;
        let (data, how) = match mode {
            Mode::Reface => {
                let (d, s, _) = reface::reface_best(vol, &w, &self.template, &shape::CANDIDATES);
                chosen = Some(s);
                (d, "template face")
            }
            Mode::Deface => (deface::deface(vol, &w), "face removed"),
            Mode::Generate => {
                let g = self
                    .generator
                    .as_ref()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                (g.generate(vol, &w.face)?, "generated face")
            }
        };
        let note = format!(
            "deidgate MR face {} ({how}; template registration NCC {:.2}; brain + {BRAIN_MARGIN_MM} mm kept)",
            mode.name(),
            reg.ncc
        );
        let details = Details {
            brain: w.brain,
            ncc: reg.ncc,
            subject_to_template: reg.subject_to_template,
            shape: chosen,
        };
        Ok((
            Remodeled {
                data,
                face: w.face,
                note,
            },
            details,
        ))
    }
}

#[allow(clippy::needless_range_loop)]
fn check_geometry(vol: &Volume) -> Result<()> {
    if vol.data.len() != vol.len() {
        bail!(
            "volume data length {} does not match dims {:?}",
            vol.data.len(),
            vol.dims
        );
    }
    let sp = volume::spacing(&vol.affine);
    for a in 0..3 {
        if vol.dims[a] < MIN_SLICES {
            bail!(
                "too few slices: {} along axis {a} (need {MIN_SLICES})",
                vol.dims[a]
            );
        }
        let ext = vol.dims[a] as f64 * sp[a];
        if ext.is_nan() || ext < MIN_EXTENT_MM {
            bail!("field of view too small for a head: {ext:.0} mm along axis {a}");
        }
    }
    if !vol.data.iter().all(|v| v.is_finite()) {
        bail!("volume has non-finite intensities");
    }
    Ok(())
}
