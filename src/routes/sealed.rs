//! Sealed originals of any route, put back: the record says which route
//! wrote it (the text route's start with its magic; the photo route's are
//! the older, unmarked format). When two routes changed one object (a face
//! replaced, then text filled), their records are kept in order in one
//! chain and undone last first, which gives back the original exactly.

use dicom_object::DefaultDicomObject;

/// Marks a chain of records from several routes, in the order they ran.
const CHAIN: &[u8; 4] = b"DGCH";

/// One record for `first` then `then` (either may itself be a chain).
pub fn chain(first: Vec<u8>, then: Vec<u8>) -> Vec<u8> {
    let mut records = split(&first);
    records.extend(split(&then));
    let mut out = CHAIN.to_vec();
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        out.extend_from_slice(&(r.len() as u64).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// The records of a chain, or the one record.
fn split(record: &[u8]) -> Vec<&[u8]> {
    let Some(body) = record.strip_prefix(CHAIN.as_slice()) else {
        return vec![record];
    };
    let mut out = Vec::new();
    let n = body
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
    let mut at = 4;
    for _ in 0..n {
        let Some(len) = body.get(at..at + 8) else {
            break;
        };
        let len = u64::from_le_bytes(len.try_into().unwrap()) as usize;
        at += 8;
        let Some(r) = body.get(at..at.saturating_add(len)) else {
            break;
        };
        out.push(r);
        at += len;
    }
    out
}

/// Restores the pixels the routes replaced, from their sealed record.
pub fn restore(obj: &mut DefaultDicomObject, record: &[u8]) -> Result<(), String> {
    if record.starts_with(CHAIN) {
        let records = split(record);
        if records.is_empty() {
            return Err("an empty or damaged chain of sealed records".into());
        }
        return records.into_iter().rev().try_for_each(|r| restore(obj, r));
    }
    if record.starts_with(super::text::sealed::MAGIC) {
        super::text::sealed::restore_object(obj, record)
    } else {
        super::photo::restore_photo(obj, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_keep_order_and_flatten() {
        let c = chain(b"photo".to_vec(), b"DGTXtext".to_vec());
        assert_eq!(split(&c), vec![b"photo".as_slice(), b"DGTXtext".as_slice()]);
        let c2 = chain(c.clone(), b"third".to_vec());
        assert_eq!(split(&c2).len(), 3);
        assert_eq!(split(b"plain"), vec![b"plain".as_slice()]);
    }
}
