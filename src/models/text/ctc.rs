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
        self.decode_spans(logits, &[(0, logits.steps)]).remove(0)
    }

    /// Greedy decoding of a strip of several lines: `spans[i]` is the range
    /// of steps (columns of tokens) line `i` covers; each character goes to
    /// the line whose span holds its step. Steps between spans (the blank
    /// gaps) are decoded too, and a character there is dropped.
    pub fn decode_spans(&self, logits: &Logits, spans: &[(usize, usize)]) -> Vec<Reading> {
        let mut out: Vec<(String, f32, usize)> = vec![(String::new(), 0.0, 0); spans.len()];
        let mut prev = 0usize;
        for (t, row) in logits.data.chunks_exact(logits.classes).enumerate() {
            let (best, max) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                );
            if best != 0 && best != prev {
                if let Some(o) = spans.iter().position(|&(a, b)| (a..b).contains(&t)) {
                    // The winner's softmax probability.
                    let z: f32 = row.iter().map(|v| (v - max).exp()).sum();
                    let o = &mut out[o];
                    o.0.push_str(&self.chars[best - 1]);
                    o.1 += 1.0 / z;
                    o.2 += 1;
                }
            }
            prev = best;
        }
        out.into_iter()
            .map(|(text, sum, kept)| Reading {
                text,
                confidence: if kept == 0 { 0.0 } else { sum / kept as f32 },
            })
            .collect()
    }
}
