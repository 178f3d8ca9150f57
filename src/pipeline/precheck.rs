//! A structural check of Part 10 bytes before the full parse.
//!
//! The parser allocates whatever length an element header claims before it
//! reads the value, so a few corrupt bytes can make it reserve and zero
//! gigabytes (seen with `malformed/UN_sequence.dcm`: over a minute and 4 GiB
//! for a 674-byte file). This walk only reads headers and refuses any element
//! whose declared length runs past the end of the input, and any UN of
//! undefined length (CP-246), which the parser misreads in exactly that way.
//! A deflated data set is left to the parser.

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &[&str] = &["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"];

/// Ok if no element claims more bytes than remain; Err names the element.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        return Err("no DICM magic: not a DICOM Part 10 file".into());
    };
    // The file meta group is always explicit VR little endian.
    let mut w = Walker {
        b: bytes,
        pos: start,
        implicit: false,
        big: false,
    };
    let mut ts = String::new();
    while w.pos + 8 <= bytes.len() && w.u16_at(w.pos, false) == 0x0002 {
        let (tag, len, _) = w.header()?;
        if tag == (0x0002, 0x0010) {
            let end = (w.pos + len as usize).min(bytes.len());
            ts = String::from_utf8_lossy(&bytes[w.pos..end])
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        w.skip(len, tag)?;
    }
    if DEFLATED.contains(&ts.as_str()) {
        return Ok(());
    }
    w.implicit = ts == IMPLICIT_LE;
    w.big = ts == EXPLICIT_BE;
    // Open containers: whether their items hold fragments (encapsulated
    // pixel data) or data sets, and where a defined-length one ends.
    let mut open: Vec<(bool, Option<usize>)> = Vec::new();
    while w.pos < bytes.len() {
        while open
            .last()
            .is_some_and(|(_, end)| end.is_some_and(|e| w.pos >= e))
        {
            open.pop();
        }
        if bytes.len() - w.pos < 8 {
            return Err(format!(
                "{} stray bytes at the end of the data set",
                bytes.len() - w.pos
            ));
        }
        let (tag, len, vr) = w.header()?;
        let undefined = len == u32::MAX;
        match tag {
            (0xFFFE, 0xE0DD) => {
                open.pop();
                continue;
            }
            (0xFFFE, 0xE000) if open.last().is_some_and(|(frag, _)| *frag) => {
                w.skip(len, tag)?; // a pixel data fragment
                continue;
            }
            (0xFFFE, _) => {
                if !undefined && tag.1 == 0xE000 {
                    w.check_len(len, tag)?; // a data set item: walked into
                }
                continue;
            }
            _ => {}
        }
        if undefined {
            if vr == *b"UN" && !w.implicit {
                // CP-246: a sequence re-encoded as UN holds implicit VR data.
                // The parser misreads it as one huge value, so refuse it.
                return Err(format!(
                    "element ({:04X},{:04X}) is a UN of undefined length (a CP-246 sequence), which the \
                     parser cannot read safely",
                    tag.0, tag.1
                ));
            }
            let fragments = tag == (0x7FE0, 0x0010) || matches!(&vr, b"OB" | b"OW");
            open.push((fragments, None));
            continue;
        }
        if vr == *b"SQ" {
            w.check_len(len, tag)?;
            open.push((false, Some(w.pos + len as usize)));
            continue;
        }
        w.skip(len, tag)?;
    }
    Ok(())
}

/// An element header: tag, declared length, VR bytes (`--`/`??` when implicit).
type Header = ((u16, u16), u32, [u8; 2]);

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
    implicit: bool,
    big: bool,
}

impl Walker<'_> {
    fn u16_at(&self, p: usize, big: bool) -> u16 {
        let a = [self.b[p], self.b[p + 1]];
        if big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    fn u32_at(&self, p: usize, big: bool) -> u32 {
        let a = [self.b[p], self.b[p + 1], self.b[p + 2], self.b[p + 3]];
        if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    /// Read one element header; returns (tag, length, VR bytes).
    fn header(&mut self) -> Result<Header, String> {
        let p = self.pos;
        let big = self.big && self.u16_at(p, false) != 0x0002;
        let tag = (self.u16_at(p, big), self.u16_at(p + 2, big));
        if tag.0 == 0xFFFE || self.implicit {
            self.pos += 8;
            let vr = if tag.0 == 0xFFFE { *b"--" } else { *b"??" };
            return Ok((tag, self.u32_at(p + 4, big), vr));
        }
        let vr = [self.b[p + 4], self.b[p + 5]];
        let long = matches!(
            &vr,
            b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"SQ"
                | b"SV"
                | b"UC"
                | b"UN"
                | b"UR"
                | b"UT"
                | b"UV"
        );
        if long {
            if p + 12 > self.b.len() {
                return Err(format!(
                    "element ({:04X},{:04X}) header is cut off",
                    tag.0, tag.1
                ));
            }
            self.pos += 12;
            Ok((tag, self.u32_at(p + 8, big), vr))
        } else {
            self.pos += 8;
            Ok((tag, u32::from(self.u16_at(p + 6, big)), vr))
        }
    }

    fn skip(&mut self, len: u32, tag: (u16, u16)) -> Result<(), String> {
        self.check_len(len, tag)?;
        self.pos += len as usize;
        Ok(())
    }

    fn check_len(&self, len: u32, tag: (u16, u16)) -> Result<(), String> {
        let remain = self.b.len() - self.pos;
        if len as usize > remain {
            return Err(format!(
                "element ({:04X},{:04X}) claims {len} bytes but only {remain} remain (truncated or corrupt)",
                tag.0, tag.1
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ts: &str, dataset: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 128];
        v.extend_from_slice(b"DICM");
        let mut ts_b = ts.as_bytes().to_vec();
        if ts_b.len() % 2 == 1 {
            ts_b.push(0);
        }
        v.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        v.extend_from_slice(&(ts_b.len() as u16).to_le_bytes());
        v.extend_from_slice(&ts_b);
        v.extend_from_slice(dataset);
        v
    }

    #[test]
    fn accepts_consistent_lengths_and_rejects_huge_claims() {
        let ok = [
            0x10, 0x00, 0x10, 0x00, b'P', b'N', 4, 0, b'A', b'^', b'B', b' ',
        ];
        assert!(check(&file("1.2.840.10008.1.2.1", &ok)).is_ok());
        let huge = [
            0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0x7F, 1, 2,
        ];
        let e = check(&file("1.2.840.10008.1.2.1", &huge)).unwrap_err();
        assert!(e.contains("(0009,0010) claims"), "{e}");
        let implicit = [0x10, 0x00, 0x20, 0x00, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2];
        assert!(check(&file(IMPLICIT_LE, &implicit)).is_err());
        assert!(check(b"not dicom at all").is_err());
    }
}
