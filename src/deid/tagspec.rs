//! Parsing tags as people write them in configuration files.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;

/// `(gggg,eeee)`, `gggg,eeee`, `ggggeeee` or a dictionary keyword.
pub fn parse_tag(s: &str) -> Result<Tag, String> {
    let t = s.trim().trim_start_matches('(').trim_end_matches(')');
    let hex: String = t.chars().filter(|c| *c != ',').collect();
    if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let g = u16::from_str_radix(&hex[..4], 16).map_err(|e| e.to_string())?;
        let e = u16::from_str_radix(&hex[4..], 16).map_err(|e| e.to_string())?;
        return Ok(Tag(g, e));
    }
    StandardDataDictionary
        .by_name(t)
        .map(|e| e.tag())
        .ok_or_else(|| {
            "expected \"(gggg,eeee)\" or a DICOM keyword such as StudyDescription".into()
        })
}

/// `(gggg,xxEE)`: an odd group and the element's low byte within its block.
pub fn parse_private_tag(s: &str) -> Result<(u16, u8), String> {
    let t = s.trim().trim_start_matches('(').trim_end_matches(')');
    let (g, e) = t
        .split_once(',')
        .ok_or("expected \"(gggg,xxee)\" with an odd group")?;
    let group = u16::from_str_radix(g.trim(), 16).map_err(|_| "group is not hexadecimal")?;
    if group % 2 == 0 {
        return Err("the group of a private tag must be odd".into());
    }
    let e = e.trim().to_ascii_lowercase();
    let low = e.strip_prefix("xx").unwrap_or(&e);
    let low = if low.len() == 4 { &low[2..] } else { low };
    let el = u8::from_str_radix(low, 16).map_err(|_| "element is not \"xxee\" hexadecimal")?;
    Ok((group, el))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_every_spelling() {
        assert_eq!(parse_tag("(0010,0020)").unwrap(), Tag(0x0010, 0x0020));
        assert_eq!(parse_tag("0010,0020").unwrap(), Tag(0x0010, 0x0020));
        assert_eq!(parse_tag("00100020").unwrap(), Tag(0x0010, 0x0020));
        assert_eq!(parse_tag("PatientID").unwrap(), Tag(0x0010, 0x0020));
        assert!(parse_tag("NotAKeyword").is_err());
        assert_eq!(parse_private_tag("(0019,xx0C)").unwrap(), (0x0019, 0x0C));
        assert_eq!(parse_private_tag("(0029,1010)").unwrap(), (0x0029, 0x10));
        assert!(parse_private_tag("(0018,xx10)").is_err());
    }
}
