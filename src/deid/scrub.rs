//! Cleaning free text (the `C` action on descriptors, structured content and
//! graphic text).
//!
//! A keyword-free cleaner cannot recognize every name, so it works from what
//! it knows: every identifying value the profile removes from this object
//! (names, IDs, addresses, institutions...) is erased wherever it appears in
//! the text, and so is anything shaped like an identifier — a token with four
//! or more digits (dates, MRNs, phone numbers) or an e-mail address. Clean
//! Descriptors is therefore off by default: turn it on only for text that the
//! research use needs.

/// What replaces an erased span.
pub const REDACTED: &str = "***";

/// The identifying values of one object, gathered before it is processed.
#[derive(Debug, Default, Clone)]
pub struct Scrubber {
    needles: Vec<String>,
}

impl Scrubber {
    /// Remember `value` (and each `^`-separated or space-separated part of a
    /// name) as text to erase. Very short parts are skipped: erasing every "A"
    /// or "MR" would destroy the text without protecting anyone.
    pub fn learn(&mut self, value: &str) {
        let v = value.trim_matches(|c: char| c == ' ' || c == '\0');
        if v.chars().count() >= 3 {
            self.push(v);
        }
        for part in v.split(['^', '=', ' ', '\\', ',']) {
            let part = part.trim();
            if part.chars().count() >= 3 {
                self.push(part);
            }
        }
    }

    fn push(&mut self, s: &str) {
        let s = s.to_uppercase();
        if !self.needles.contains(&s) {
            self.needles.push(s);
        }
    }

    /// Finish learning: longest needles first so that a full name is erased
    /// before its parts.
    pub fn seal(&mut self) {
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// The cleaned text.
    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            out = replace_case_insensitive(&out, n);
        }
        out.split_inclusive(char::is_whitespace)
            .map(|tok| {
                let word = tok.trim_end();
                let digits = word.chars().filter(char::is_ascii_digit).count();
                if digits >= 4 || (word.contains('@') && word.contains('.')) {
                    format!("{REDACTED}{}", &tok[word.len()..])
                } else {
                    tok.to_string()
                }
            })
            .collect()
    }
}

/// Replace every case-insensitive occurrence of `upper_needle` (already upper
/// case) in `hay`.
fn replace_case_insensitive(hay: &str, upper_needle: &str) -> String {
    let upper = hay.to_uppercase();
    // Upper-casing may change byte lengths outside ASCII; fall back to exact
    // matching there rather than risk slicing in the middle of a character.
    if upper.len() != hay.len() {
        return hay.replace(upper_needle, REDACTED);
    }
    let mut out = String::with_capacity(hay.len());
    let mut last = 0;
    for (i, _) in upper.match_indices(upper_needle) {
        if i < last {
            continue;
        }
        out.push_str(&hay[last..i]);
        out.push_str(REDACTED);
        last = i + upper_needle.len();
    }
    out.push_str(&hay[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erases_known_values_and_identifier_shapes() {
        let mut s = Scrubber::default();
        s.learn("DOE^JOHN^Q");
        s.learn("MRN884422");
        s.learn("St. Elsewhere General Hospital");
        s.seal();
        let t = s.clean("Follow-up for John Doe (mrn884422) at St. Elsewhere General Hospital on 12/03/2019, call 555-0199-22 or j.doe@mail.example");
        for bad in ["John", "Doe", "884422", "Elsewhere", "2019", "555", "j.doe"] {
            assert!(
                !t.to_uppercase().contains(&bad.to_uppercase()),
                "{bad} survived in {t}"
            );
        }
        assert!(t.starts_with("Follow-up for"), "{t}");
    }

    #[test]
    fn keeps_clinical_words() {
        let mut s = Scrubber::default();
        s.learn("SMITH^ANNA");
        s.seal();
        assert_eq!(s.clean("T1 MPRAGE SAG 3D"), "T1 MPRAGE SAG 3D");
        assert_eq!(s.clean("CHEST PA"), "CHEST PA");
    }
}
