//! [`TextReader`]: reads the line inside a detected box, as PP-OCR's
//! `TextRecognizer` does: the crop resized to 48 px high keeping its aspect
//! (bilinear, BGR, `(v/255 − 0.5)/0.5`), padded with zeros to at least 320
//! px wide, run through [`SvtrRec`], decoded by [`Charset`].

use std::path::Path;

use anyhow::{ensure, Result};

use super::ctc::{Charset, Reading};
use super::fmap::Fmap;
use super::preprocess;
use super::rec::{SvtrRec, LINE_HEIGHT};

/// File names of the converted recogniser inside the model folder.
pub const REC_WEIGHTS: &str = "ppocr_rec.safetensors";
pub const REC_KEYS: &str = "ppocr_rec_keys.txt";
/// Narrowest network input (PP-OCR's 320 for a 48-px line).
const MIN_WIDTH: usize = 320;
/// Widest network input: a line longer than 50:1 is squeezed to this.
const MAX_WIDTH: usize = 2400;

pub struct TextReader {
    net: SvtrRec,
    charset: Charset,
}

impl TextReader {
    pub fn load(dir: &Path) -> Result<Self> {
        let net = SvtrRec::load(&dir.join(REC_WEIGHTS))?;
        let charset = Charset::load(&dir.join(REC_KEYS))?;
        ensure!(
            net.classes() == charset.classes(),
            "recogniser has {} classes, its character list {}",
            net.classes(),
            charset.classes()
        );
        Ok(Self { net, charset })
    }

    /// The text inside `[x0, x1) × [y0, y1)` of an interleaved RGB image.
    pub fn read(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        (x0, y0, x1, y1): (usize, usize, usize, usize),
    ) -> Result<Reading> {
        let (x1, y1) = (x1.min(width), y1.min(height));
        ensure!(x0 < x1 && y0 < y1, "empty text box");
        ensure!(rgb.len() == width * height * 3, "RGB buffer size");
        let (cw, ch) = (x1 - x0, y1 - y0);
        let mut crop = Vec::with_capacity(cw * ch * 3);
        for y in y0..y1 {
            crop.extend_from_slice(&rgb[(y * width + x0) * 3..(y * width + x1) * 3]);
        }
        self.read_line(&crop, cw, ch)
    }

    /// The text of an RGB image that is one line.
    pub fn read_line(&self, rgb: &[u8], width: usize, height: usize) -> Result<Reading> {
        let input = line_input(rgb, width, height);
        Ok(self.charset.decode(&self.net.forward(&input)?))
    }

    pub fn net(&self) -> &SvtrRec {
        &self.net
    }
}

/// The network input for a line image: 48 px high, the line's own width at
/// that height, zero-padded on the right to at least [`MIN_WIDTH`].
pub fn line_input(rgb: &[u8], width: usize, height: usize) -> Fmap {
    let scaled = (LINE_HEIGHT as f64 * width as f64 / height as f64).ceil() as usize;
    let resized_w = scaled.clamp(1, MAX_WIDTH);
    let total = resized_w.max(MIN_WIDTH);
    let line = preprocess(rgb, width, height, resized_w, LINE_HEIGHT);
    let mut data = vec![0f32; 3 * LINE_HEIGHT * total];
    for (src, dst) in line
        .data
        .chunks_exact(resized_w)
        .zip(data.chunks_exact_mut(total))
    {
        dst[..resized_w].copy_from_slice(src);
    }
    Fmap::new(3, LINE_HEIGHT, total, data)
}
