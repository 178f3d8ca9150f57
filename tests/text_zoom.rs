//! The text route's closer look (`[text] zoom`): a faint grey line over a
//! radiograph's anatomy that the detector merges with the texture around it
//! (a box too big to be a line) or boxes only in part is found once the
//! place is cropped, its shading taken out and enlarged, and the box is then
//! widened over the strokes that continue it.

mod common;

use common::*;

#[test]
fn a_faint_line_over_anatomy_is_found_by_the_closer_look() {
    let tmp = tempfile::tempdir().unwrap();
    // Where the corpus's 0081 had its missed line: over the abdomen, in a
    // box the detector drew round the line and the texture (524 x 334 px).
    let (input, ink) = ink::radiograph_stamped(
        tmp.path(),
        "dicom/cr_dx/cat.dcm",
        3,
        "DOE^JOHN  ID 4471920",
        (471, 583),
        1,
        ink::Paint::Level(0.70),
    );
    // Measured 1.000 without on 7 Dec; the closer look alone found
    // "JOHN ID 4471920" and left 12.8 % of the ink, "DO" under a rib: the
    // strokes walk widens it to the line's start.
    ink::assert_the_look_removes_it("closer look", tmp.path(), &input, &ink, |on| {
        format!(
            "[chest]\nenabled = false\n{}",
            ink::text_toml(&format!("zoom = {on}\n"))
        )
    });
}
