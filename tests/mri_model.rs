//! Face remodeling on a real head (the volunteer's NIfTI): outside the face
//! region nothing changes, the brain is untouched, the face does change, and
//! generate mode refuses without trained weights.

use deidgate::models::mri::{nifti::read_nifti, FaceRemodeler, Mode, Volume};
use std::path::Path;

const HEAD: &str = "../shared/data/mri/decubitus_dicom/HFS_t1_fl2d_sag_derived.nii.gz";

fn remodeler() -> FaceRemodeler {
    FaceRemodeler::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/mri")
            .as_path(),
    )
    .unwrap()
}

#[test]
fn reface_changes_only_the_face_and_never_the_brain() {
    let vol = read_nifti(Path::new(HEAD)).unwrap();
    let r = remodeler();
    let (out, det) = r.remodel_detailed(&vol, Mode::Reface).unwrap();
    assert_eq!(out.data.len(), vol.data.len());
    let mut changed = 0;
    for g in 0..vol.len() {
        if !out.face[g] {
            assert_eq!(
                out.data[g].to_bits(),
                vol.data[g].to_bits(),
                "voxel {g} outside the face changed"
            );
        } else if out.data[g] != vol.data[g] {
            changed += 1;
        }
        assert!(
            !(det.brain[g] && out.face[g]),
            "brain voxel {g} inside the face region"
        );
    }
    assert!(
        changed > 10_000,
        "face region barely changed: {changed} voxels"
    );
    assert!(out.note.contains("reface"));
}

#[test]
fn generate_refuses_without_weights() {
    let vol = read_nifti(Path::new(HEAD)).unwrap();
    let err = remodeler().remodel(&vol, Mode::Generate).unwrap_err();
    assert!(
        format!("{err}").contains("generate mode has no trained weights"),
        "{err}"
    );
}

#[test]
fn too_few_slices_is_refused() {
    let vol = Volume {
        dims: [64, 64, 4],
        data: vec![0.0; 64 * 64 * 4],
        affine: [
            [3.0, 0.0, 0.0, 0.0],
            [0.0, 3.0, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
    };
    let err = remodeler().remodel(&vol, Mode::Reface).unwrap_err();
    assert!(format!("{err}").contains("too few slices"), "{err}");
}
