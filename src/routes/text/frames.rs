//! Every frame of an image as native samples, whatever it arrived as: the
//! decoder's output (any transfer syntax it knows) made interleaved, with
//! what the text route needs on top: an 8-bit RGB rendering for the
//! detector, a fill value that displays dark, and the native write-back.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PhotometricInterpretation as Pi, PixelDecoder, PlanarConfiguration};

/// How stored samples become colours.
#[derive(Debug, Clone, PartialEq)]
pub enum Colour {
    /// One sample; MONOCHROME1 when `inverted`.
    Grey { inverted: bool },
    /// Three samples, RGB.
    Rgb,
    /// Three samples, YBR_FULL (native only: the decoder turns encoded
    /// colour into RGB).
    YbrFull,
    /// One sample indexing a palette: RGB (8-bit) per entry from
    /// `first_mapped`.
    Palette {
        first_mapped: i64,
        rgb: Vec<[u8; 3]>,
    },
}

/// All frames, native little-endian samples, interleaved.
pub struct Frames {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    /// Samples per pixel: 1 or 3.
    pub samples: usize,
    /// Bytes per sample: 1 or 2.
    pub bytes: usize,
    pub bits_stored: u16,
    pub signed: bool,
    pub colour: Colour,
    pub data: Vec<u8>,
}

impl Frames {
    /// Bytes of one pixel.
    pub fn pixel_len(&self) -> usize {
        self.samples * self.bytes
    }

    pub fn frame_len(&self) -> usize {
        self.width * self.height * self.pixel_len()
    }

    pub fn frame(&self, f: usize) -> &[u8] {
        let n = self.frame_len();
        &self.data[f * n..(f + 1) * n]
    }

    /// One sample's stored value (sign-extended, bits above BitsStored off).
    pub(super) fn value(&self, b: &[u8]) -> i64 {
        let raw = if self.bytes == 1 {
            b[0] as u32
        } else {
            u16::from_le_bytes([b[0], b[1]]) as u32
        };
        let bits = self.bits_stored as u32;
        let v = raw & ((1u32 << bits) - 1);
        if self.signed && (v >> (bits - 1)) & 1 == 1 {
            v as i64 - (1i64 << bits)
        } else {
            v as i64
        }
    }

    /// The stored range of grey values over all frames (for rendering).
    pub fn grey_range(&self) -> (i64, i64) {
        self.data
            .chunks_exact(self.bytes)
            .map(|b| self.value(b))
            .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }

    /// 8-bit interleaved RGB of `frame`, as a viewer would show it: grey
    /// stretched over `range` (the object's own, computed once by the
    /// caller), palette looked up.
    pub fn render(&self, frame: &[u8], range: Option<(i64, i64)>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width * self.height * 3);
        let px = self.pixel_len();
        match &self.colour {
            Colour::Grey { inverted } => {
                let (lo, hi) = range.unwrap_or_else(|| self.grey_range());
                let span = (hi - lo).max(1) as f32;
                for p in frame.chunks_exact(px) {
                    let mut g = ((self.value(p) - lo) as f32 / span * 255.0).round() as u8;
                    if *inverted {
                        g = 255 - g;
                    }
                    out.extend_from_slice(&[g, g, g]);
                }
            }
            Colour::Rgb => {
                for p in frame.chunks_exact(px) {
                    let s = |i: usize| self.eight_bit(&p[i * self.bytes..(i + 1) * self.bytes]);
                    out.extend_from_slice(&[s(0), s(1), s(2)]);
                }
            }
            Colour::YbrFull => {
                for p in frame.chunks_exact(px) {
                    let s = |i: usize| self.eight_bit(&p[i * self.bytes..(i + 1) * self.bytes]);
                    out.extend_from_slice(&ybr_to_rgb(s(0), s(1), s(2)));
                }
            }
            Colour::Palette { first_mapped, rgb } => {
                for p in frame.chunks_exact(px) {
                    let i = (self.value(p) - first_mapped).clamp(0, rgb.len() as i64 - 1);
                    out.extend_from_slice(&rgb[i as usize]);
                }
            }
        }
        out
    }

    /// A colour sample as 8 bits (16-bit colour keeps its high byte).
    fn eight_bit(&self, b: &[u8]) -> u8 {
        if self.bytes == 1 {
            b[0]
        } else {
            (self.value(b) >> (self.bits_stored.saturating_sub(8))).clamp(0, 255) as u8
        }
    }

    /// The pixel bytes that display darkest: the lowest grey value seen
    /// (the highest for MONOCHROME1), black, or the darkest palette entry.
    pub fn dark_pixel(&self) -> Vec<u8> {
        let word = |v: i64| -> Vec<u8> {
            let w = (v as u32).to_le_bytes();
            w[..self.bytes].to_vec()
        };
        match &self.colour {
            Colour::Grey { inverted } => {
                let (lo, hi) = self.grey_range();
                word(if *inverted { hi } else { lo })
            }
            Colour::Rgb => vec![0; self.pixel_len()],
            Colour::YbrFull => {
                let mid = 1i64 << (self.bits_stored - 1);
                [word(0), word(mid), word(mid)].concat()
            }
            Colour::Palette { first_mapped, rgb } => {
                let darkest = (0..rgb.len())
                    .min_by_key(|&i| rgb[i].iter().map(|&c| c as u32).sum::<u32>())
                    .unwrap_or(0);
                word(first_mapped + darkest as i64)
            }
        }
    }

    /// Fills `r` (clipped to the image) with `pixel` in frame `f`.
    pub fn fill(&mut self, f: usize, r: Rect, pixel: &[u8]) {
        let (w, px, n) = (self.width, self.pixel_len(), self.frame_len());
        let r = r.clip(self.width, self.height);
        let frame = &mut self.data[f * n..(f + 1) * n];
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let at = (y * w + x) * px;
                frame[at..at + px].copy_from_slice(pixel);
            }
        }
    }

    /// The bytes of `r` (clipped) in frame `f`, row by row.
    pub fn cut(&self, f: usize, r: Rect) -> Vec<u8> {
        let (w, px) = (self.width, self.pixel_len());
        let r = r.clip(self.width, self.height);
        let frame = self.frame(f);
        let mut out = Vec::with_capacity(r.area() * px);
        for y in r.y0..r.y1 {
            out.extend_from_slice(&frame[(y * w + r.x0) * px..(y * w + r.x1) * px]);
        }
        out
    }

    /// Puts bytes from [`Frames::cut`] back.
    pub fn paste(&mut self, f: usize, r: Rect, bytes: &[u8]) -> Result<(), String> {
        let (w, px, n) = (self.width, self.pixel_len(), self.frame_len());
        let r = r.clip(self.width, self.height);
        if bytes.len() != r.area() * px {
            return Err("the sealed region does not match the image".into());
        }
        let frame = &mut self.data[f * n..(f + 1) * n];
        let row = (r.x1 - r.x0) * px;
        for (i, y) in (r.y0..r.y1).enumerate() {
            frame[(y * w + r.x0) * px..(y * w + r.x1) * px]
                .copy_from_slice(&bytes[i * row..(i + 1) * row]);
        }
        Ok(())
    }
}

/// A pixel rectangle, columns `x0..x1`, rows `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Rect {
    pub fn clip(self, w: usize, h: usize) -> Rect {
        let (x1, y1) = (self.x1.min(w), self.y1.min(h));
        Rect {
            x0: self.x0.min(x1),
            y0: self.y0.min(y1),
            x1,
            y1,
        }
    }

    pub fn area(&self) -> usize {
        (self.x1 - self.x0) * (self.y1 - self.y0)
    }

    /// Grown by `m` on every side (clip afterwards).
    pub fn grow(self, m: usize) -> Rect {
        Rect {
            x0: self.x0.saturating_sub(m),
            y0: self.y0.saturating_sub(m),
            x1: self.x1 + m,
            y1: self.y1 + m,
        }
    }

    /// Moved right by `dx` and down by `dy` (a crop's box into the image).
    pub fn shifted(self, dx: usize, dy: usize) -> Rect {
        Rect {
            x0: self.x0 + dx,
            y0: self.y0 + dy,
            x1: self.x1 + dx,
            y1: self.y1 + dy,
        }
    }

    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    /// Whether `o` lies wholly inside.
    pub fn contains(&self, o: &Rect) -> bool {
        self.x0 <= o.x0 && self.y0 <= o.y0 && o.x1 <= self.x1 && o.y1 <= self.y1
    }

    /// The common part, if any.
    pub fn intersection(&self, o: &Rect) -> Option<Rect> {
        let r = Rect {
            x0: self.x0.max(o.x0),
            y0: self.y0.max(o.y0),
            x1: self.x1.min(o.x1),
            y1: self.y1.min(o.y1),
        };
        (r.x0 < r.x1 && r.y0 < r.y1).then_some(r)
    }

    /// A rectangle from its corners (tests write many).
    #[cfg(test)]
    pub const fn at(x0: usize, y0: usize, x1: usize, y1: usize) -> Rect {
        Rect { x0, y0, x1, y1 }
    }

    pub fn union(&self, o: &Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
}

/// YBR_FULL (PS3.3 C.7.6.3.1.2) to RGB.
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (y as f32, cb as f32 - 128.0, cr as f32 - 128.0);
    let c = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [
        c(y + 1.402 * cr),
        c(y - 0.344136 * cb - 0.714136 * cr),
        c(y + 1.772 * cb),
    ]
}

/// The most decoded pixel data one object may take (all frames at once).
const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Decodes every frame of `obj`. `Err` is a quarantine reason.
pub fn decode(obj: &DefaultDicomObject, max_frames: usize) -> Result<Frames, String> {
    let declared_frames = crate::dicom::text(obj, tags::NUMBER_OF_FRAMES)
        .parse::<usize>()
        .unwrap_or(1);
    if declared_frames > max_frames {
        return Err(format!(
            "text route: {declared_frames} frames, more than [text] max_frames = {max_frames}"
        ));
    }
    // Decoding holds every frame in memory: refuse what would not fit
    // comfortably beside the other workers.
    let header = |t| crate::dicom::text(obj, t).parse::<u64>().unwrap_or(0);
    let declared_bytes = [
        header(tags::COLUMNS),
        header(tags::SAMPLES_PER_PIXEL).max(1),
        header(tags::BITS_ALLOCATED).div_ceil(8).max(1),
        declared_frames as u64,
    ]
    .into_iter()
    .fold(header(tags::ROWS), u64::saturating_mul);
    if declared_bytes > MAX_DECODED_BYTES {
        return Err(format!(
            "text route: {} MiB of decoded pixels, more than the {} MiB the route decodes at once",
            declared_bytes >> 20,
            MAX_DECODED_BYTES >> 20
        ));
    }
    let d = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
        .map_err(|_| "text route: the pixel decoder panicked".to_string())?
        .map_err(|e| format!("text route: cannot decode the pixel data: {e}"))?;
    from_decoded(obj, &d, max_frames)
}

/// Decodes frame `index` (from 0) of `obj` only, as one-frame [`Frames`]:
/// what a preview of one frame needs, without the others in memory.
pub fn decode_frame(obj: &DefaultDicomObject, index: u32) -> Result<Frames, String> {
    let header = |t| crate::dicom::text(obj, t).parse::<u64>().unwrap_or(0);
    let frames = header(tags::NUMBER_OF_FRAMES).max(1);
    if u64::from(index) >= frames {
        return Err(format!("frame {} of {frames}: no such frame", index + 1));
    }
    let frame_bytes = [
        header(tags::COLUMNS),
        header(tags::SAMPLES_PER_PIXEL).max(1),
        header(tags::BITS_ALLOCATED).div_ceil(8).max(1),
    ]
    .into_iter()
    .fold(header(tags::ROWS), u64::saturating_mul);
    if frame_bytes > MAX_DECODED_BYTES {
        return Err(format!("{} MiB in one frame", frame_bytes >> 20));
    }
    let d = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        obj.decode_pixel_data_frame(index)
    }))
    .map_err(|_| "the pixel decoder panicked".to_string())?
    .map_err(|e| format!("cannot decode the pixel data: {e}"))?;
    from_decoded(obj, &d, 1)
}

/// [`Frames`] from the decoder's output, checked and interleaved.
fn from_decoded(
    obj: &DefaultDicomObject,
    d: &dicom_pixeldata::DecodedPixelData<'_>,
    max_frames: usize,
) -> Result<Frames, String> {
    let (width, height, frames) = (
        d.columns() as usize,
        d.rows() as usize,
        d.number_of_frames() as usize,
    );
    let samples = d.samples_per_pixel() as usize;
    let alloc = d.bits_allocated();
    let stored = d.bits_stored();
    if frames > max_frames {
        return Err(format!(
            "text route: {frames} frames, more than [text] max_frames = {max_frames}"
        ));
    }
    if !(alloc == 8 || alloc == 16) || stored == 0 || stored > alloc || ![1, 3].contains(&samples) {
        return Err(format!(
            "text route: {samples} samples of {stored}/{alloc} bits are not handled (1 or 3 \
             samples, 8 or 16 bits allocated)"
        ));
    }
    let colour = match (d.photometric_interpretation(), samples) {
        (Pi::Monochrome1, 1) => Colour::Grey { inverted: true },
        (Pi::Monochrome2, 1) => Colour::Grey { inverted: false },
        (Pi::PaletteColor, 1) => palette(obj)?,
        (Pi::Rgb, 3) => Colour::Rgb,
        (Pi::YbrFull, 3) => Colour::YbrFull,
        (other, _) => {
            return Err(format!(
                "text route: photometric interpretation {other} with {samples} samples is not \
                 handled"
            ))
        }
    };
    let bytes = alloc as usize / 8;
    let frame_len = width * height * samples * bytes;
    let raw = d.data();
    if width == 0 || height == 0 || frames == 0 || raw.len() < frame_len * frames {
        return Err("text route: the pixel data is shorter than Rows × Columns × frames".into());
    }
    let mut data = raw[..frame_len * frames].to_vec();
    if samples == 3 && d.planar_configuration() == PlanarConfiguration::PixelFirst {
        data = interleave(&data, width * height, bytes, frames);
    }
    Ok(Frames {
        width,
        height,
        frames,
        samples,
        bytes,
        bits_stored: stored,
        signed: d.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed,
        colour,
        data,
    })
}

/// Colour-by-plane frames to colour-by-pixel.
fn interleave(planar: &[u8], n: usize, bytes: usize, frames: usize) -> Vec<u8> {
    let mut out = vec![0u8; planar.len()];
    let frame_len = n * 3 * bytes;
    for f in 0..frames {
        let (src, dst) = (
            &planar[f * frame_len..(f + 1) * frame_len],
            &mut out[f * frame_len..(f + 1) * frame_len],
        );
        for p in 0..n {
            for c in 0..3 {
                let s = (c * n + p) * bytes;
                let d = (p * 3 + c) * bytes;
                dst[d..d + bytes].copy_from_slice(&src[s..s + bytes]);
            }
        }
    }
    out
}

/// The RGB palette of a PALETTE COLOR image (PS3.3 C.7.6.3.1.5), plain or
/// segmented (C.7.9.2).
fn palette(obj: &DefaultDicomObject) -> Result<Colour, String> {
    let segmented = obj
        .get(tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)
        .is_some();
    let channel = |desc, data, seg| -> Result<(i64, Vec<u8>), String> {
        let d: Vec<i64> = obj
            .get(desc)
            .and_then(|e| e.value().to_multi_int::<i64>().ok())
            .filter(|v| v.len() == 3)
            .ok_or("text route: a palette lookup table descriptor is missing")?;
        let entries = if d[0] == 0 { 65536 } else { d[0] as usize };
        // The first mapped value is US or SS: take it as the object stores it.
        let first = d[1];
        let bits = d[2];
        let raw = obj
            .get(if segmented { seg } else { data })
            .and_then(|e| e.value().to_bytes().ok())
            .ok_or("text route: palette lookup table data is missing")?;
        let raw: Vec<u8> = if segmented {
            let words: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            expand_segments(&words, entries)?
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect()
        } else {
            raw.into_owned()
        };
        let vals: Vec<u8> = if bits > 8 || raw.len() >= entries * 2 {
            raw.chunks_exact(2)
                .take(entries)
                .map(|c| (u16::from_le_bytes([c[0], c[1]]) >> (bits.clamp(8, 16) - 8)) as u8)
                .collect()
        } else {
            raw.iter().take(entries).copied().collect()
        };
        if vals.len() < entries {
            return Err(
                "text route: palette lookup table data is shorter than its descriptor".into(),
            );
        }
        Ok((first, vals))
    };
    let (first, r) = channel(
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    )?;
    let (_, g) = channel(
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    )?;
    let (_, b) = channel(
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    )?;
    let n = r.len().min(g.len()).min(b.len());
    Ok(Colour::Palette {
        first_mapped: first,
        rgb: (0..n).map(|i| [r[i], g[i], b[i]]).collect(),
    })
}

/// A segmented lookup table (PS3.3 C.7.9.2) as its `entries` values:
/// discrete segments copy, linear ones ramp from the previous value.
/// Indirect segments (rare) are refused.
fn expand_segments(words: &[u16], entries: usize) -> Result<Vec<u16>, String> {
    let truncated = || "text route: a segmented palette is truncated".to_string();
    let mut out: Vec<u16> = Vec::with_capacity(entries);
    let mut i = 0;
    while i + 1 < words.len() && out.len() < entries {
        let (op, len) = (words[i], words[i + 1] as usize);
        i += 2;
        match op {
            0 => {
                out.extend_from_slice(words.get(i..i + len).ok_or_else(truncated)?);
                i += len;
            }
            1 => {
                let y1 = *words.get(i).ok_or_else(truncated)? as f64;
                let y0 = *out
                    .last()
                    .ok_or("text route: a segmented palette starts with a ramp")?
                    as f64;
                out.extend(
                    (1..=len).map(|k| (y0 + (y1 - y0) * k as f64 / len as f64).round() as u16),
                );
                i += 1;
            }
            _ => {
                return Err(
                    "text route: indirect segments of a segmented palette are not handled".into(),
                )
            }
        }
    }
    if out.len() < entries {
        return Err("text route: a segmented palette is shorter than its descriptor".into());
    }
    out.truncate(entries);
    Ok(out)
}

/// Writes `f` back as native pixel data in Explicit VR Little Endian. The
/// decoder's colour model is kept (encoded colour comes out as RGB);
/// a lossy past stays declared (see [`crate::routes::native`]).
pub fn write_back(obj: &mut DefaultDicomObject, f: Frames) {
    if f.samples == 3 {
        let us = PrimitiveValue::from(0u16);
        obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us));
        let pi = match f.colour {
            Colour::YbrFull => "YBR_FULL",
            _ => "RGB",
        };
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(pi),
        ));
    }
    let vr = if f.bytes == 1 { VR::OB } else { VR::OW };
    crate::routes::native::put_pixel_data(obj, f.data, vr);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_palettes_expand_discrete_and_linear_segments() {
        let words = [0, 3, 10, 20, 30, 1, 2, 50];
        assert_eq!(
            expand_segments(&words, 5).unwrap(),
            vec![10, 20, 30, 40, 50]
        );
        assert!(
            expand_segments(&words, 6).is_err(),
            "shorter than the descriptor"
        );
        assert!(expand_segments(&[2, 1, 0, 0], 1).is_err(), "indirect");
        assert!(
            expand_segments(&[1, 2, 50], 2).is_err(),
            "a ramp from nothing"
        );
    }

    #[test]
    fn more_decoded_pixels_than_a_gibibyte_are_refused_before_decoding() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/dicom/us/US1_UNCR.dcm");
        let mut obj = dicom_object::open_file(path).unwrap();
        for t in [tags::ROWS, tags::COLUMNS] {
            obj.put(DataElement::new(t, VR::US, PrimitiveValue::from(60000u16)));
        }
        let e = decode(&obj, 1000).err().expect("refused");
        assert!(e.contains("MiB of decoded pixels"), "{e}");
    }

    #[test]
    fn rectangles_clip_grow_and_join() {
        let r = Rect {
            x0: 2,
            y0: 2,
            x1: 8,
            y1: 8,
        };
        assert_eq!(
            r.grow(3).clip(10, 9),
            Rect {
                x0: 0,
                y0: 0,
                x1: 10,
                y1: 9
            }
        );
        let o = Rect {
            x0: 7,
            y0: 7,
            x1: 12,
            y1: 12,
        };
        assert!(r.overlaps(&o));
        assert_eq!(
            r.union(&o),
            Rect {
                x0: 2,
                y0: 2,
                x1: 12,
                y1: 12
            }
        );
        assert!(!r.overlaps(&Rect {
            x0: 8,
            y0: 0,
            x1: 9,
            y1: 1
        }));
    }
}
