//! `[photo] mode = "generate"` without trained weights: the gateway keeps
//! running, says why at startup, and quarantines photographs with the reason
//! instead of passing them or falling back to another mode silently.

mod common;

use common::gateway::*;
use common::*;

#[test]
fn generate_mode_without_weights_quarantines_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-medsem");
    let mut g = Gateway::start(
        tmp.path(),
        &format!(
            "[photo]\nmode = \"generate\"\ngenerator = {:?}\n",
            missing.display().to_string()
        ),
    );
    let inputs = vec![data_dir().join("derived/vl_photo_face_rgb.dcm")];
    let profile = scu_profile(tmp.path(), &inputs);
    let out = storescu_cmd(&g, &profile, "CAMERA", &inputs)
        .output()
        .unwrap();
    assert_eq!(stored_files(&text(&out)).len(), 1, "{}", text(&out));
    poll("the spool to drain", &g, || g.spool_drained());
    assert!(
        outputs(&g).is_empty(),
        "a photograph passed without its generator"
    );
    assert!(g.alive(), "the gateway must keep running");
    let o = cli(&g.config, &["quarantine", "list"]);
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        list.contains("photo generate mode has no trained weights"),
        "{list}"
    );
    assert!(
        g.log().contains("generate mode refuses to run"),
        "{}",
        g.log()
    );
}
