//! The seam every pixel route implements: which objects it claims, what it
//! did to one of them, and how it stands (for the page and `/metrics`).
//! The per-instance stage only talks to routes through this trait.

use super::status::RouteStatus;
use crate::deid::markers::MethodCode;
use dicom_object::DefaultDicomObject;
use std::time::Duration;

/// What a route did to the pixels of one object.
#[derive(Debug)]
pub enum Outcome {
    /// New pixels are in the object.
    Cleaned(Cleaned),
    /// Pixels left as they were, for the logged reason (no face found, an
    /// explicit opt-out, no Pixel Data).
    Untouched(String),
    /// The route cannot vouch for the pixels: the object goes to quarantine
    /// with this reason. Never "through untouched" by accident.
    Quarantine(String),
}

/// A cleaned object's record for the marker codes and the key store.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// CID 7050 codes the output must carry (e.g. 113102).
    pub codes: Vec<MethodCode>,
    /// The original pixels of what was replaced, sealed in the key store
    /// under the new SOP Instance UID before the output exists (for an
    /// audited restore); `None` when the change cannot be undone this way.
    pub sealed: Option<Vec<u8>>,
    /// One line for the log; no PHI.
    pub note: String,
    /// Appended to DeidentificationMethod (0012,0063), when the method
    /// needs more words than its code (e.g. the MR face mode).
    pub method_note: Option<String>,
    /// The kinds of the object's own identifiers the route found burned
    /// into its pixels (words, never values): the pipeline records them in
    /// the audit chain under the new instance UID, a sign the source leaks.
    pub leaks: Vec<&'static str>,
}

/// A pixel route. Implementations hold their loaded model, or why it cannot
/// run, and never panic the worker on bad input (the stage also catches
/// panics and quarantines).
pub trait PixelRoute: Send + Sync {
    /// Short name: the config section and the key on the page.
    fn name(&self) -> &'static str;
    /// Whether this route is responsible for `obj`'s pixels. The first route
    /// of the registry that claims an object gets it.
    fn claims(&self, obj: &DefaultDicomObject) -> bool;
    /// Clean `obj`'s pixels in place.
    fn process(&self, obj: &mut DefaultDicomObject) -> Outcome;
    /// Weights, whether loaded, and what happens to claimed objects now.
    fn status(&self) -> RouteStatus;
    /// Routes that need a whole series (head MR) hold instances first.
    fn series(&self) -> Option<&dyn SeriesHook> {
        None
    }
    /// Whether this route also runs on `obj` after `route` (the one that
    /// claimed it) has cleaned or passed it: text is burned into chest
    /// radiographs and photographs too.
    fn follows(&self, _route: &str, _obj: &DefaultDicomObject) -> bool {
        false
    }
}

/// The hook of a route that cleans whole series: the transport holds the
/// claimed instances durably and hands the complete series over.
pub trait SeriesHook: Send + Sync {
    /// Whether `obj` (read up to Pixel Data) is held for its series.
    fn holds(&self, obj: &DefaultDicomObject) -> bool;
    /// A series without its expected count is processed after this long
    /// without a new instance.
    fn quiet(&self) -> Duration;
    /// Clean a series (ordered by SOP Instance UID) in place; `Err` is the
    /// quarantine reason for every instance of it.
    fn process_series(
        &self,
        objs: Vec<DefaultDicomObject>,
    ) -> Result<(Vec<DefaultDicomObject>, Cleaned), String>;
}
