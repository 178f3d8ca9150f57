//! [`TextReader`]: reads the line inside a detected box, as PP-OCR's
//! `TextRecognizer` does: the crop resized to 48 px high keeping its aspect
//! (bilinear, BGR, `(v/255 − 0.5)/0.5`), padded with zeros to at least 320
//! px wide, run through [`SvtrRec`], decoded by [`Charset`]. Many lines
//! are read together, packed into strips ([`TextReader::read_many`]).

use std::path::Path;

use anyhow::{ensure, Result};
use rayon::prelude::*;

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
/// Several lines share one network input up to this width, each followed
/// by [`GAP`] blank columns (4 token columns: CTC emits blanks there).
const STRIP_WIDTH: usize = 1600;
const GAP: usize = 32;
/// One token column of the network covers this many input columns.
const STEP: usize = 8;

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
        let crop = crop_rgb(rgb, width, (x0, y0, x1, y1));
        self.read_line(&crop, x1 - x0, y1 - y0)
    }

    /// The text of an RGB image that is one line.
    pub fn read_line(&self, rgb: &[u8], width: usize, height: usize) -> Result<Reading> {
        let input = pad_to(line_input(rgb, width, height, 1), MIN_WIDTH);
        Ok(self.charset.decode(&self.net.forward(&input)?))
    }

    /// The text of several line images (RGB, width, height) at once:
    /// short lines are packed side by side into strips, so that none is
    /// padded to [`MIN_WIDTH`] on its own, and the strips run in parallel.
    pub fn read_many(&self, lines: &[(&[u8], usize, usize)]) -> Result<Vec<Reading>> {
        let inputs: Vec<Fmap> = lines
            .iter()
            .map(|&(rgb, w, h)| line_input(rgb, w, h, STEP))
            .collect();
        // Strips of consecutive lines: (first line, past last line).
        let mut strips = Vec::new();
        let (mut start, mut width) = (0, 0);
        for (i, x) in inputs.iter().enumerate() {
            if i > start && width + x.w > STRIP_WIDTH {
                strips.push((start, i));
                (start, width) = (i, 0);
            }
            width += x.w + GAP;
        }
        if start < inputs.len() {
            strips.push((start, inputs.len()));
        }
        let read: Vec<Vec<Reading>> = strips
            .par_iter()
            .map(|&(a, b)| self.read_strip(&inputs[a..b]))
            .collect::<Result<_>>()?;
        Ok(read.into_iter().flatten().collect())
    }

    /// Lines (network inputs of widths that are multiples of [`STEP`])
    /// side by side with [`GAP`] blank columns after each.
    fn read_strip(&self, lines: &[Fmap]) -> Result<Vec<Reading>> {
        let used: usize = lines.iter().map(|x| x.w + GAP).sum();
        let total = used.max(MIN_WIDTH).next_multiple_of(STEP);
        let mut data = vec![0f32; 3 * LINE_HEIGHT * total];
        let mut spans = Vec::with_capacity(lines.len());
        let mut x0 = 0;
        for x in lines {
            for (src, dst) in x.data.chunks_exact(x.w).zip(data.chunks_exact_mut(total)) {
                dst[x0..x0 + x.w].copy_from_slice(src);
            }
            spans.push((x0 / STEP, (x0 + x.w) / STEP));
            x0 += x.w + GAP;
        }
        let logits = self.net.forward(&Fmap::new(3, LINE_HEIGHT, total, data))?;
        Ok(self.charset.decode_spans(&logits, &spans))
    }

    pub fn net(&self) -> &SvtrRec {
        &self.net
    }
}

/// The RGB bytes of `[x0, x1) × [y0, y1)` in an image `width` pixels wide.
pub fn crop_rgb(
    rgb: &[u8],
    width: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
) -> Vec<u8> {
    let mut out = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
    for y in y0..y1 {
        out.extend_from_slice(&rgb[(y * width + x0) * 3..(y * width + x1) * 3]);
    }
    out
}

/// The network input for a line image: 48 px high, the line's own width
/// at that height, zero-padded on the right to a multiple of `multiple`.
pub fn line_input(rgb: &[u8], width: usize, height: usize, multiple: usize) -> Fmap {
    let scaled = (LINE_HEIGHT as f64 * width as f64 / height as f64).ceil() as usize;
    let resized_w = scaled.clamp(1, MAX_WIDTH);
    let line = preprocess(rgb, width, height, resized_w, LINE_HEIGHT);
    pad_to(line, resized_w.next_multiple_of(multiple))
}

/// `x` zero-padded on the right to at least `width` columns (PP-OCR pads
/// a single line to 320).
fn pad_to(x: Fmap, width: usize) -> Fmap {
    if x.w >= width {
        return x;
    }
    let mut data = vec![0f32; x.c * x.h * width];
    for (src, dst) in x.data.chunks_exact(x.w).zip(data.chunks_exact_mut(width)) {
        dst[..x.w].copy_from_slice(src);
    }
    Fmap::new(x.c, x.h, width, data)
}
