//! The recogniser's classes and greedy CTC decoding, as PaddleOCR's
//! `CTCLabelDecode`: class 0 is the blank, then the characters of
//! `ppocr_rec_keys.txt` in order, then a space; per column the best class,
//! repeats merged, blanks dropped.

use std::path::Path;

use anyhow::{ensure, Context, Result};

use super::rec::Logits;

/// What a line says, and how sure the network is: the mean probability of
/// the characters it kept (0 for an empty reading).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub text: String,
    pub confidence: f32,
}

/// Class index → character.
pub struct Charset {
    chars: Vec<String>,
}

impl Charset {
    /// One character per line; the space class is added after them.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut chars: Vec<String> = text
            .strip_suffix('\n')
            .unwrap_or(&text)
            .split('\n')
            .map(str::to_string)
            .collect();
        ensure!(
            chars.iter().all(|c| c.chars().count() == 1),
            "{}: one character per line expected",
            path.display()
        );
        chars.push(" ".into());
        Ok(Self { chars })
    }

    /// Classes the network must have: blank + characters + space.
    pub fn classes(&self) -> usize {
        self.chars.len() + 1
    }

    /// Greedy decoding of `logits`.
    pub fn decode(&self, logits: &Logits) -> Reading {
        let mut text = String::new();
        let (mut sum, mut kept) = (0.0f32, 0usize);
        let mut prev = 0usize;
        for row in logits.data.chunks_exact(logits.classes) {
            let (best, max) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                );
            if best != 0 && best != prev {
                // The winner's softmax probability.
                let z: f32 = row.iter().map(|v| (v - max).exp()).sum();
                sum += 1.0 / z;
                kept += 1;
                text.push_str(&self.chars[best - 1]);
            }
            prev = best;
        }
        Reading {
            text,
            confidence: if kept == 0 { 0.0 } else { sum / kept as f32 },
        }
    }
}
