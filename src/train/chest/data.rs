//! Chest radiograph data sets for training and evaluation, read from their
//! published layouts, and the patient-level split.
//!
//! Supported layouts (detected from the files in the folder):
//! * Hannover COVID (`data.csv` with patient_id,image_id; `png/<image_id>.png`), no labels;
//! * the 64 px NIH subset (`labels.csv` with relpath, patient_id, label 0_normal/1_abnormal);
//! * full ChestX-ray14 (`Data_Entry_2017*.csv`: "Image Index", "Finding Labels",
//!   "Patient ID"; images anywhere below the folder, e.g. `images_001/images/`), 14 findings.
//!
//! Patient IDs are prefixed with the data set name so two sets never share a patient.
//!
//! Training and evaluation only, so it lives in `crate::train`.

use anyhow::{bail, Context, Result};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The 14 ChestX-ray14 findings, in the data set's usual order.
pub const CXR14_FINDINGS: [&str; 14] = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
];

/// One radiograph.
#[derive(Clone, Debug)]
pub struct Sample {
    pub dataset: String,
    /// Data-set-prefixed patient key (never logged).
    pub patient: String,
    pub path: PathBuf,
    /// One 0/1 value per label name of its data set, when it has labels.
    pub labels: Option<Vec<f32>>,
}

/// A folder's samples and its label names (empty without labels).
pub struct Source {
    pub name: String,
    pub samples: Vec<Sample>,
    pub label_names: Vec<String>,
}

/// Split a CSV line, trimming quotes (none of these files quote commas).
fn fields(line: &str) -> Vec<String> {
    line.trim_end_matches(['\r', '\n'])
        .split(',')
        .map(|f| f.trim().trim_matches('"').to_string())
        .collect()
}

fn column(header: &[String], name: &str, file: &Path) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .with_context(|| format!("{}: no column {name:?}", file.display()))
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = fields(
        lines
            .next()
            .with_context(|| format!("{} is empty", path.display()))?,
    );
    Ok((header, lines.map(fields).collect()))
}

/// Detect the layout of `dir` and list its samples.
pub fn discover(dir: &Path) -> Result<Source> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "data".into());
    if dir.join("data.csv").is_file() && dir.join("png").is_dir() {
        return hannover(dir, name);
    }
    if dir.join("labels.csv").is_file() {
        return nih_small(dir, name);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .map(|n| {
                    n.to_string_lossy().starts_with("Data_Entry_2017")
                        && n.to_string_lossy().ends_with(".csv")
                })
                .unwrap_or(false)
        })
        .collect();
    entries.sort();
    if let Some(csv) = entries.first() {
        return cxr14(dir, csv, name);
    }
    bail!(
        "{}: no known chest layout (data.csv+png/, labels.csv, or Data_Entry_2017*.csv)",
        dir.display()
    )
}

fn hannover(dir: &Path, name: String) -> Result<Source> {
    let csv = dir.join("data.csv");
    let (h, rows) = read_csv(&csv)?;
    let (pc, ic) = (
        column(&h, "patient_id", &csv)?,
        column(&h, "image_id", &csv)?,
    );
    let samples = rows
        .iter()
        .filter(|r| r.len() > pc.max(ic))
        .map(|r| Sample {
            dataset: name.clone(),
            patient: format!("{name}:{}", r[pc]),
            path: dir.join("png").join(format!("{}.png", r[ic])),
            labels: None,
        })
        .collect();
    Ok(Source {
        name,
        samples,
        label_names: vec![],
    })
}

fn nih_small(dir: &Path, name: String) -> Result<Source> {
    let csv = dir.join("labels.csv");
    let (h, rows) = read_csv(&csv)?;
    let rc = column(&h, "relpath", &csv)?;
    let pc = column(&h, "patient_id", &csv)?;
    let lc = column(&h, "label", &csv)?;
    let mut samples = vec![];
    for r in rows.iter().filter(|r| r.len() > rc.max(pc).max(lc)) {
        let y = match r[lc].as_str() {
            "0_normal" => 0.0,
            "1_abnormal" => 1.0,
            other => bail!("{}: unknown label {other:?}", csv.display()),
        };
        samples.push(Sample {
            dataset: name.clone(),
            patient: format!("{name}:{}", r[pc]),
            path: dir.join(&r[rc]),
            labels: Some(vec![y]),
        });
    }
    Ok(Source {
        name,
        samples,
        label_names: vec!["abnormal".into()],
    })
}

fn cxr14(dir: &Path, csv: &Path, name: String) -> Result<Source> {
    let (h, rows) = read_csv(csv)?;
    let ic = column(&h, "Image Index", csv)?;
    let fc = column(&h, "Finding Labels", csv)?;
    let pc = column(&h, "Patient ID", csv)?;
    // Images may sit in images_001/images/…: index every PNG below `dir` once.
    let mut where_is: HashMap<String, PathBuf> = HashMap::new();
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "png") {
            where_is.insert(
                e.file_name().to_string_lossy().to_string(),
                e.path().to_path_buf(),
            );
        }
    }
    let mut samples = vec![];
    for r in rows.iter().filter(|r| r.len() > ic.max(fc).max(pc)) {
        let Some(path) = where_is.get(&r[ic]) else {
            continue;
        };
        let found: Vec<&str> = r[fc].split('|').map(str::trim).collect();
        let labels = CXR14_FINDINGS
            .iter()
            .map(|f| if found.contains(f) { 1.0 } else { 0.0 })
            .collect();
        samples.push(Sample {
            dataset: name.clone(),
            patient: format!("{name}:{}", r[pc]),
            path: path.clone(),
            labels: Some(labels),
        });
    }
    anyhow::ensure!(
        !samples.is_empty(),
        "{}: no listed image found below {}",
        csv.display(),
        dir.display()
    );
    Ok(Source {
        name,
        samples,
        label_names: CXR14_FINDINGS.iter().map(|s| s.to_string()).collect(),
    })
}

/// Decode an image to gray and resize to size×size (aspect not kept, as the
/// gateway also squashes the native image to the model's square input).
pub fn load_gray(path: &Path, size: usize) -> Result<Vec<u8>> {
    let img = image::open(path).with_context(|| format!("decoding {}", path.display()))?;
    let g = img.to_luma8();
    let g = if g.width() as usize == size && g.height() as usize == size {
        g
    } else {
        image::imageops::resize(
            &g,
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        )
    };
    Ok(g.into_raw())
}

/// All samples of several folders, decoded at `size` (u8 to keep memory at
/// a quarter of f32), plus the common label names. Labelled folders must
/// agree on their label names.
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub pixels: Vec<Vec<u8>>,
    pub label_names: Vec<String>,
    pub size: usize,
    pub sources: Vec<String>,
}

impl Dataset {
    pub fn load(dirs: &[PathBuf], size: usize, max_per_source: Option<usize>) -> Result<Self> {
        let mut samples = vec![];
        let mut label_names: Vec<String> = vec![];
        let mut sources = vec![];
        for d in dirs {
            let mut s = discover(d)?;
            if !s.label_names.is_empty() {
                if label_names.is_empty() {
                    label_names = s.label_names.clone();
                } else if label_names != s.label_names {
                    bail!(
                        "{}: its labels differ from another labelled data set",
                        d.display()
                    );
                }
            }
            if let Some(m) = max_per_source {
                s.samples.truncate(m);
            }
            sources.push(format!("{} ({} images)", s.name, s.samples.len()));
            samples.extend(s.samples);
        }
        let pixels = samples
            .par_iter()
            .map(|s| load_gray(&s.path, size))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            samples,
            pixels,
            label_names,
            size,
            sources,
        })
    }

    /// Image `i` as f32 in [0, 1].
    pub fn image(&self, i: usize) -> Vec<f32> {
        self.pixels[i].iter().map(|&v| v as f32 / 255.0).collect()
    }
}

/// Image indices of the training and test patients.
#[derive(Clone, Debug)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Deterministic patient-level split: within each data set the sorted
/// patient keys are shuffled with `seed` and the first `test_frac` of them
/// (rounded up) become test patients. No patient is on both sides.
pub fn split_by_patient(samples: &[Sample], test_frac: f64, seed: u64) -> Split {
    let mut by_set: BTreeMap<&str, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        by_set
            .entry(&s.dataset)
            .or_default()
            .entry(&s.patient)
            .or_default()
            .push(i);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut test) = (vec![], vec![]);
    for patients in by_set.values() {
        let mut keys: Vec<&&str> = patients.keys().collect();
        keys.shuffle(&mut rng);
        let n_test = ((keys.len() as f64) * test_frac).ceil() as usize;
        for (k, p) in keys.iter().enumerate() {
            let dst = if k < n_test { &mut test } else { &mut train };
            dst.extend(&patients[**p]);
        }
    }
    train.sort_unstable();
    test.sort_unstable();
    Split { train, test }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn sample(ds: &str, p: &str) -> Sample {
        Sample {
            dataset: ds.into(),
            patient: format!("{ds}:{p}"),
            path: PathBuf::new(),
            labels: None,
        }
    }

    #[test]
    fn split_is_by_patient_and_deterministic() {
        let samples: Vec<Sample> = (0..200)
            .map(|i| sample(if i % 3 == 0 { "a" } else { "b" }, &format!("{}", i % 37)))
            .collect();
        let s1 = split_by_patient(&samples, 0.25, 5);
        let s2 = split_by_patient(&samples, 0.25, 5);
        assert_eq!(s1.train, s2.train);
        assert_eq!(s1.train.len() + s1.test.len(), 200);
        let tp: HashSet<&str> = s1
            .test
            .iter()
            .map(|&i| samples[i].patient.as_str())
            .collect();
        assert!(s1
            .train
            .iter()
            .all(|&i| !tp.contains(samples[i].patient.as_str())));
        assert!(!s1.test.is_empty());
        let s3 = split_by_patient(&samples, 0.25, 6);
        assert_ne!(s1.test, s3.test, "seed changes the split");
    }

    #[test]
    fn reads_the_shared_data_layouts() {
        let root = Path::new("../shared/data/chest");
        if !root.is_dir() {
            eprintln!("skipping: ../shared/data/chest not present");
            return;
        }
        let h = discover(&root.join("hannover_covid")).unwrap();
        assert_eq!(h.samples.len(), 243);
        assert!(h.label_names.is_empty());
        let n = discover(&root.join("nih_cxr14_64px")).unwrap();
        assert_eq!(n.samples.len(), 1000);
        assert_eq!(n.label_names, vec!["abnormal".to_string()]);
        let px = load_gray(&h.samples[0].path, 64).unwrap();
        assert_eq!(px.len(), 64 * 64);
    }

    #[test]
    fn reads_the_full_cxr14_layout() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = dir.path().join("images_001").join("images");
        std::fs::create_dir_all(&imgs).unwrap();
        for f in ["00000001_000.png", "00000001_001.png", "00000002_000.png"] {
            image::GrayImage::from_pixel(8, 8, image::Luma([100]))
                .save(imgs.join(f))
                .unwrap();
        }
        std::fs::write(
            dir.path().join("Data_Entry_2017_v2020.csv"),
            "Image Index,Finding Labels,Follow-up #,Patient ID\n\
             00000001_000.png,Cardiomegaly|Effusion,0,1\n\
             00000001_001.png,No Finding,1,1\n\
             00000002_000.png,Hernia,0,2\n\
             00000003_000.png,Mass,0,3\n",
        )
        .unwrap();
        let s = discover(dir.path()).unwrap();
        assert_eq!(s.samples.len(), 3, "the unlisted-on-disk image is skipped");
        assert_eq!(s.label_names.len(), 14);
        let l = s.samples[0].labels.as_ref().unwrap();
        assert_eq!((l[1], l[2], l[0]), (1.0, 1.0, 0.0));
        assert!(s.samples[1]
            .labels
            .as_ref()
            .unwrap()
            .iter()
            .all(|&v| v == 0.0));
        assert_eq!(s.samples[2].labels.as_ref().unwrap()[13], 1.0);
        assert_eq!(s.samples[0].patient, s.samples[1].patient);
    }
}
