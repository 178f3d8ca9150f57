//! A batch of large images reuses the memory of its first file: the pixel
//! models' buffers (about 1 GB for the text detector on a 1955x1841
//! radiograph) are kept by the process, not returned to the kernel and
//! faulted in again for every file. Counted in page faults, not seconds.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `deidgate anonymize IN OUT` on one worker (files in parallel each
/// need their own buffers) and returns the child's minor page
/// faults (its own rusage, not the test process's other children).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, for its rusage
fn anonymize_faults(input: &Path, out: &Path, data: &Path, keep: &str) -> i64 {
    let child = Command::new(env!("CARGO_BIN_EXE_deidgate"))
        .arg("--data-dir")
        .arg(data)
        .arg("anonymize")
        .args(["--jobs", "1"])
        .arg(input)
        .arg(out)
        .env_remove("DEIDGATE_CONFIG")
        .env("DEIDGATE_KEEP_FREED_MEMORY", keep)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run deidgate");
    let mut status = 0;
    // SAFETY: plain libc call on our own child; rusage is written by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "anonymize failed: {status}"
    );
    usage.ru_minflt
}

/// `n` copies of the chest radiograph, each with its own SOP Instance UID
/// (DCMTK's dcmodify), in `dir`.
fn radiographs(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let f = dir.join(format!("{i}.dcm"));
        std::fs::copy(data_dir().join("dicom/cr_dx/RG1_UNCR.dcm"), &f).unwrap();
        let o = Command::new(tool("dcmodify"))
            .args(["-nb", "-gin"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(o.status.success(), "dcmodify: {o:?}");
    }
}

#[test]
fn a_batch_of_radiographs_reuses_the_memory_of_its_first_file() {
    let tmp = tempfile::tempdir().unwrap();
    radiographs(&tmp.path().join("one"), 1);
    radiographs(&tmp.path().join("four"), 4);
    let run = |what: &str, keep: &str| {
        anonymize_faults(
            &tmp.path().join(what),
            &tmp.path().join(format!("out-{what}-{keep}")),
            &tmp.path().join(format!("data-{keep}")),
            keep,
        )
    };
    // Each file after the first, as a share of the first file's faults.
    let per_extra_file = |keep: &str| {
        let (one, four) = (run("one", keep), run("four", keep));
        eprintln!("DEIDGATE_KEEP_FREED_MEMORY={keep}: 1 file {one} faults, 4 files {four}");
        (four - one) as f64 / 3.0 / one as f64
    };
    let kept = per_extra_file("1");
    assert!(
        kept < 0.25,
        "every further radiograph faulted in {:.0} % of the first one's pages",
        kept * 100.0
    );
    // The measure can fail: glibc's defaults give the memory back. (With
    // transparent huge pages always on, the kernel maps those buffers in
    // 2 MB faults, too few to tell apart from the binary's own start-up.)
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.contains("[always]") {
        eprintln!(
            "transparent huge pages always on: the comparison with glibc's defaults is skipped"
        );
        return;
    }
    let returned = per_extra_file("0");
    assert!(
        returned > 0.5,
        "with glibc's defaults a further radiograph faulted in only {:.0} % of the first one's pages",
        returned * 100.0
    );
}
