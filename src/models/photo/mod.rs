//! Face detection and face replacement for photographs (VL, XC, OP, and
//! secondary captures of photos): MTCNN finds faces and landmarks, `replace`
//! swaps the identity-bearing area for a synthetic fill while configured
//! medical keep regions stay bit-identical, and the replaced pixels come back
//! to the caller for encrypted storage so an authorised lookup can restore them.

pub mod annotation;
pub mod boxes;
pub mod detect;
pub mod image;
pub mod keep;
pub mod medsem;
pub mod mtcnn;
pub mod nms;
pub mod pyramid;
pub mod replace;

pub use annotation::{annotation_keep, Graphic, GraphicType, GraphicUnits};
pub use detect::{DetectConfig, Face};
pub use image::RgbImage;
pub use keep::{KeepRegion, PixelRect};
pub use mtcnn::{Mtcnn, DEFAULT_WEIGHTS};
pub use replace::{replace_faces, restore, ReplaceConfig, ReplacedRegion};
