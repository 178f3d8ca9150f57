//! `[text] keep`: the burned-in lines the text route may leave in place,
//! compiled once. A pattern must match the whole line as read (anchored,
//! case-insensitive, surrounding spaces ignored), so that "cm" keeps a
//! scale label and not a line that merely contains "cm".

use regex::{Regex, RegexBuilder};

#[derive(Clone, Debug, Default)]
pub struct KeepList {
    patterns: Vec<Regex>,
}

impl KeepList {
    /// `Err` names the pattern that does not compile.
    pub fn new(patterns: &[String]) -> Result<KeepList, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                RegexBuilder::new(&format!("^(?:{p})$"))
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("{p:?} is not a regular expression: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(KeepList { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `line` (as read) is one to keep.
    pub fn keeps(&self, line: &str) -> bool {
        let line = line.trim();
        !line.is_empty() && self.patterns.iter().any(|p| p.is_match(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_only_case_insensitive() {
        let k = KeepList::new(&[r"\d+(\.\d+)? ?cm".into(), "2D".into()]).unwrap();
        assert!(k.keeps("16cm"));
        assert!(k.keeps(" 3.5 CM "));
        assert!(k.keeps("2d"));
        assert!(!k.keeps("16cm DOE"));
        assert!(!k.keeps("Doe 2D"));
        assert!(!k.keeps(""));
        assert!(KeepList::new(&["(".into()]).is_err());
    }
}
