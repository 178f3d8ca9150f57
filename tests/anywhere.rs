//! The gateway runs from anywhere: started from `/` (or any other folder),
//! `anonymize` and `serve` find every route's model and route chest
//! radiographs, head MR series and photographs exactly as from the
//! repository root; the installed layout (scripts/install.sh) is what an
//! installed binary uses; `deidgate check` says which folder each route
//! uses, or names every path it searched.

mod common;

use common::gateway::*;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ROUTES: [&str; 4] = ["mri", "photo", "chest", "text"];

/// Modality -> (outputs, the distinct sorted method code lists seen).
type ByModality = BTreeMap<String, (usize, Vec<Vec<String>>)>;

/// `deidgate ARGS` in `cwd`, without the environment variables that would
/// choose a config or a models folder for it.
fn deidgate(bin: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .current_dir(cwd)
        .args(args)
        .env_remove("DEIDGATE_CONFIG")
        .env_remove("DEIDGATE_MODELS")
        .env("DEIDGATE_LOG", "info")
        .output()
        .expect("run deidgate")
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_deidgate"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A chest radiograph, a photograph and a head MR series, in one folder.
fn inputs(dir: &Path) -> usize {
    let d = data_dir();
    std::fs::create_dir_all(dir.join("mr")).unwrap();
    std::fs::copy(d.join("dicom/cr_dx/RG1_UNCR.dcm"), dir.join("chest.dcm")).unwrap();
    std::fs::copy(
        d.join("derived/vl_photo_face_rgb.dcm"),
        dir.join("photo.dcm"),
    )
    .unwrap();
    let series = files_under(&d.join("derived/head_mr_t1_sag_lowres"));
    for f in &series {
        std::fs::copy(f, dir.join("mr").join(f.file_name().unwrap())).unwrap();
    }
    2 + series.len()
}

fn by_modality(out: &Path) -> ByModality {
    let mut m = ByModality::new();
    for f in files_under(out) {
        let o = dicom_object::open_file(&f).unwrap();
        let modality = deidgate::dicom::text(&o, dicom_dictionary_std::tags::MODALITY);
        let mut codes = method_codes(&o);
        codes.sort();
        let e = m.entry(modality).or_default();
        e.0 += 1;
        if !e.1.contains(&codes) {
            e.1.push(codes);
        }
    }
    m
}

/// `deidgate anonymize` on the embedded default from `cwd`: the summary
/// line, the outputs by modality, and stderr.
fn anonymize_from(cwd: &Path, input: &Path, tmp: &Path, tag: &str) -> (String, ByModality, String) {
    let (data, out) = (
        tmp.join(format!("data-{tag}")),
        tmp.join(format!("out-{tag}")),
    );
    let o = deidgate(
        &exe(),
        cwd,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "anonymize",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let err = strip_ansi(&String::from_utf8_lossy(&o.stderr));
    assert!(
        o.status.success(),
        "anonymize from {}: {err}",
        cwd.display()
    );
    let summary = err
        .lines()
        .find(|l| l.contains(" files: "))
        .unwrap_or_default()
        .split(" in ")
        .next()
        .unwrap()
        .to_string();
    (summary, by_modality(&out), err)
}

#[test]
fn anonymize_from_the_root_routes_chest_mri_and_photos_as_from_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let n = inputs(&input);
    let (root_summary, root_out, root_log) =
        anonymize_from(Path::new("/"), &input, tmp.path(), "root");
    assert_eq!(
        root_summary,
        format!("{n} files: {n} written, 0 quarantined"),
        "{root_log}"
    );
    for r in ROUTES {
        assert!(
            root_log.contains(&format!("{r} route ready: ")),
            "{r}: {root_log}"
        );
    }
    assert!(!root_log.contains("route has no model"), "{root_log}");
    // Each route marked its output: the chest radiograph, the head MR
    // series and the photograph all carry 113102 (clean recognizable
    // visual features).
    for (modality, count) in [("CR", 1), ("MR", n - 2), ("XC", 1)] {
        let (seen, codes) = root_out
            .get(modality)
            .unwrap_or_else(|| panic!("no {modality} output: {root_out:?}"));
        assert_eq!(*seen, count, "{modality}");
        assert!(
            codes.iter().all(|c| c.contains(&"113102".to_string())),
            "{modality}: {codes:?}"
        );
    }
    let (repo_summary, repo_out, repo_log) = anonymize_from(&repo(), &input, tmp.path(), "repo");
    assert_eq!(root_summary, repo_summary, "{repo_log}");
    assert_eq!(root_out, repo_out);
}

#[test]
fn serve_from_the_root_logs_every_route_ready_and_routes_what_it_receives() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "[mri]\nquiet_secs = 3\n");
    let log = tmp.path().join("gateway.log");
    let child = Command::new(exe())
        .current_dir("/")
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("DEIDGATE_MODELS")
        .env("DEIDGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start deidgate");
    let text_of = std::fs::read_to_string(&config).unwrap();
    let port = text_of
        .lines()
        .find_map(|l| l.strip_prefix("port = ")?.trim().parse().ok())
        .unwrap();
    let mut g = Gateway {
        child,
        port,
        data: tmp.path().join("data"),
        config: config.clone(),
        log,
    };
    g.wait_ready();
    let log = g.log();
    for r in ROUTES {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{r} route ready: ")))
            .unwrap_or_else(|| panic!("no '{r} route ready' line:\n{log}"));
        assert!(line.contains(" INFO "), "{line}");
    }
    assert!(!log.contains("route has no model"), "{log}");

    let input = tmp.path().join("in");
    let n = inputs(&input);
    send_all(&g, tmp.path(), "MODALITY", &files_under(&input));
    poll("every instance written", &g, || outputs(&g).len() == n);
    let out = by_modality(&g.out());
    for m in ["CR", "MR", "XC"] {
        assert!(
            out[m].1.iter().all(|c| c.contains(&"113102".to_string())),
            "{m}: {out:?}"
        );
    }
    assert!(files_under(&g.data.join("quarantine")).is_empty());

    // `deidgate check` C-ECHOes a DICOM destination: this gateway answers,
    // a closed port does not (and the check fails).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let dest = |name: &str, port: u16| {
        format!(
            "[node]\ndata_dir = {:?}\n[[destination]]\nname = \"{name}\"\ntype = \"dicom\"\n\
             ae_title = \"DEIDGATE\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_secs = 5\n",
            tmp.path().join("check-data").display().to_string()
        )
    };
    let up = tmp.path().join("up.toml");
    std::fs::write(&up, dest("peer", g.port)).unwrap();
    let o = deidgate(
        &exe(),
        Path::new("/"),
        &["--config", up.to_str().unwrap(), "check"],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.lines()
            .any(|l| l.starts_with("destination peer: ready: C-ECHO to DEIDGATE@127.0.0.1")),
        "{out}"
    );
    let down = tmp.path().join("down.toml");
    std::fs::write(&down, dest("gone", closed_port)).unwrap();
    let o = deidgate(
        &exe(),
        Path::new("/"),
        &["--config", down.to_str().unwrap(), "check"],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        out.lines()
            .any(|l| l.starts_with("destination gone: NOT READY: C-ECHO to DEIDGATE@127.0.0.1")),
        "{out}"
    );
}

/// The "route NAME: ..." lines of a `deidgate check` output.
fn route_lines(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("route ")?;
            let (name, _) = rest.split_once(':')?;
            Some((name.to_string(), l.to_string()))
        })
        .collect()
}

#[test]
fn the_installed_layout_is_what_an_installed_binary_uses_from_another_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    let o = Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .arg("--bin")
        .arg(exe())
        .arg(&prefix)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "install.sh: {}", text(&o));
    let models = prefix.join("share/deidgate/models");
    for f in [
        "chest/generator.safetensors",
        "chest/config.json",
        "mri/template_2mm.nii.gz",
        "photo/mtcnn.safetensors",
        "text/ppocr_det.safetensors",
    ] {
        assert!(models.join(f).is_file(), "{f} not installed");
    }
    assert!(
        files_under(&models)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".log")),
        "training logs are not installed"
    );
    let unit = std::fs::read_to_string(prefix.join("share/deidgate/deidgate.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart={}/bin/deidgate --config /etc/deidgate/gateway.toml serve",
            prefix.display()
        )),
        "{unit}"
    );

    // The installed binary, started elsewhere without DEIDGATE_MODELS: every
    // route ready, from the install layout (not the source tree the binary
    // was built from, which it would also find).
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let data = tmp.path().join("data");
    let o = deidgate(
        &prefix.join("bin/deidgate"),
        &elsewhere,
        &["--data-dir", data.to_str().unwrap(), "check"],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    let lines = route_lines(&out);
    for r in ROUTES {
        let l = &lines[r];
        assert!(l.starts_with(&format!("route {r}: ready: ")), "{l}");
        assert!(
            l.contains(&models.display().to_string()) && l.contains("install layout"),
            "{l}"
        );
    }
    assert!(out.contains("destination out: ready: folder"), "{out}");
    assert!(out.ends_with("all ready\n"), "{out}");
    // The log says the same at start.
    let log = strip_ansi(&String::from_utf8_lossy(&o.stderr));
    assert!(
        log.contains(&format!(
            "chest route ready: [chest] weights {}",
            models.join("chest").display()
        )),
        "{log}"
    );

    // DEIDGATE_MODELS comes first, for any binary.
    let o = Command::new(exe())
        .current_dir(&elsewhere)
        .args(["--data-dir", data.to_str().unwrap(), "check"])
        .env_remove("DEIDGATE_CONFIG")
        .env("DEIDGATE_MODELS", &models)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    for (r, l) in route_lines(&out) {
        assert!(
            l.contains(&models.display().to_string()) && l.contains("$DEIDGATE_MODELS"),
            "{r}: {l}"
        );
    }
}

#[test]
fn check_fails_and_names_the_paths_searched_when_a_routes_weights_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = {:?}\n[photo]\nweights = \"nowhere/mtcnn.safetensors\"\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let o = deidgate(
        &exe(),
        Path::new("/"),
        &["--config", config.to_str().unwrap(), "check"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let searched = tmp.path().join("nowhere/mtcnn.safetensors");
    let lines = route_lines(&out);
    let photo = &lines["photo"];
    assert!(
        photo.starts_with("route photo: NOT READY: [photo] weights not found; searched ")
            && photo.contains(&searched.display().to_string())
            && photo.contains("photographs quarantined"),
        "{photo}"
    );
    for r in ["mri", "chest", "text"] {
        assert!(
            lines[r].starts_with(&format!("route {r}: ready: ")),
            "{out}"
        );
    }
    // The start-up log says it as an ERROR, with the path.
    let log = strip_ansi(&String::from_utf8_lossy(&o.stderr));
    let line = log
        .lines()
        .find(|l| l.contains("photo route has no model"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("ERROR") && line.contains(&searched.display().to_string()),
        "{line}"
    );
    assert!(text(&o).contains("1 item(s) not ready"), "{}", text(&o));
}

#[test]
fn a_relative_model_path_in_a_config_file_resolves_against_the_files_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("m")).unwrap();
    std::os::unix::fs::symlink(repo().join("models/chest"), site.join("m/chest")).unwrap();
    let config = site.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = {:?}\n[chest]\nweights = \"m/chest\"\nmissing_weights = \"stop\"\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    // Started from `/`, and from another folder with a relative --config.
    for (cwd, arg) in [
        (PathBuf::from("/"), config.display().to_string()),
        (tmp.path().to_path_buf(), "site/gateway.toml".to_string()),
    ] {
        let o = deidgate(&exe(), &cwd, &["--config", &arg, "check"]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let chest = &route_lines(&out)["chest"];
        assert!(
            chest.contains(&format!(
                "[chest] weights {} (relative to the config file)",
                site.join("m/chest").display()
            )),
            "{chest}"
        );
    }
}
