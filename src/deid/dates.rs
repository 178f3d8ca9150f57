//! Date shifting and age handling for de-identification.
//!
//! Dates are shifted by a per-patient number of days (derived from a keyed MAC of the
//! patient identity, see [`day_shift_from_bytes`]) instead of being removed. Because
//! every date of one patient moves by the same offset, intervals between studies,
//! ages at exam time and the order of events survive, while the absolute calendar
//! dates (which are identifying under HIPAA Safe Harbor) do not.
//!
//! Every function here is pure and returns `Option`: `None` means "could not be
//! parsed or cannot be represented". The caller must then remove or empty the element;
//! an unparsable date is never passed through unchanged, because we cannot know
//! whether it still carries the original (identifying) date.
//!
//! Calendar arithmetic uses the proleptic Gregorian calendar via `chrono`, so leap
//! days are exact (2000-02-29 exists, 1900-02-29 does not). Years are limited to the
//! four digits DICOM can express (0000..=9999); a shift leaving that range yields
//! `None`.

use chrono::{Datelike, Days, NaiveDate};

/// Largest year a four-digit DICOM date can carry.
const MAX_YEAR: i32 = 9999;

/// Adds a signed number of days without panicking (chrono's `Duration::days`
/// panics for huge values; `Days` with checked add/sub never does).
fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    let magnitude = Days::new(days.unsigned_abs());
    let shifted = if days >= 0 {
        date.checked_add_days(magnitude)?
    } else {
        date.checked_sub_days(magnitude)?
    };
    (0..=MAX_YEAR).contains(&shifted.year()).then_some(shifted)
}

/// Parses exactly `s` (ASCII digits only) as an unsigned number.
fn digits_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn format_da(date: NaiveDate) -> String {
    format!("{:04}{:02}{:02}", date.year(), date.month(), date.day())
}

/// Parses one DA value (no range): `YYYYMMDD` or the legacy ACR-NEMA `YYYY.MM.DD`.
///
/// The legacy form is still found in old archives (PS3.5 keeps it for backwards
/// compatibility); it is accepted on input so such dates are shifted rather than
/// dropped, but it is always written back in the modern form.
fn parse_da_single(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if !s.is_ascii() {
        return None;
    }
    let compact = match s.len() {
        8 if all_digits(s) => s.to_string(),
        10 if s.as_bytes()[4] == b'.' && s.as_bytes()[7] == b'.' => {
            let joined = format!("{}{}{}", &s[0..4], &s[5..7], &s[8..10]);
            if !all_digits(&joined) {
                return None;
            }
            joined
        }
        _ => return None,
    };
    let y = digits_u32(&compact[0..4])? as i32;
    let m = digits_u32(&compact[4..6])?;
    let d = digits_u32(&compact[6..8])?;
    NaiveDate::from_ymd_opt(y, m, d)
}

/// Shifts one VR DA value by `days`.
///
/// Accepted forms (after trimming the space padding DICOM uses for even length):
/// * `YYYYMMDD`
/// * legacy ACR-NEMA `YYYY.MM.DD` (output is always `YYYYMMDD`)
/// * ranges `A-B`, `-B`, `A-` as used in query keys; they also turn up in stored
///   data, and each bound is shifted by the same amount so the range keeps its width;
///   a descending range (`A` after `B`) is malformed and yields `None`
/// * the empty string, which stays empty (an empty date carries no information)
///
/// Multi-valued strings (`\`-separated) must go through [`shift_multi`].
#[must_use]
pub fn shift_da(value: &str, days: i64) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return Some(String::new());
    }
    if let Some((a, b)) = v.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        if a.is_empty() && b.is_empty() {
            return None;
        }
        let bound = |s: &str| -> Option<Option<NaiveDate>> {
            if s.is_empty() {
                Some(None)
            } else {
                Some(Some(add_days(parse_da_single(s)?, days)?))
            }
        };
        let (a, b) = (bound(a)?, bound(b)?);
        if matches!((a, b), (Some(x), Some(y)) if x > y) {
            return None;
        }
        let text = |d: Option<NaiveDate>| d.map(format_da).unwrap_or_default();
        return Some(format!("{}-{}", text(a), text(b)));
    }
    Some(format_da(add_days(parse_da_single(v)?, days)?))
}

/// Applies `f` to every value of a multi-valued (`\`-separated) element and rejoins
/// them. If any single value cannot be shifted the whole element is `None`, since
/// the caller removes elements it cannot fully de-identify.
#[must_use]
pub fn shift_multi(value: &str, days: i64, f: fn(&str, i64) -> Option<String>) -> Option<String> {
    let parts: Option<Vec<String>> = value.split('\\').map(|v| f(v, days)).collect();
    Some(parts?.join("\\"))
}

/// One parsed DT value.
struct DtParts<'a> {
    /// First day of the period named by the date digits.
    date: NaiveDate,
    /// Number of date digits present: 4 (`YYYY`), 6 (`YYYYMM`) or 8 (`YYYYMMDD`).
    date_digits: usize,
    /// Everything after the date digits (time, fraction, offset), kept verbatim.
    rest: &'a str,
    /// Start of the value as (UTC seconds, fraction in microseconds); used to check
    /// that range bounds are ascending. A missing offset is treated as UTC.
    key: (i64, u32),
}

/// Validates a `&ZZXX` UTC offset. PS3.5 limits offsets to -1200..=+1400.
fn valid_offset(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 5 || !(b[0] == b'+' || b[0] == b'-') || !all_digits(&s[1..]) {
        return false;
    }
    let (Some(hh), Some(mm)) = (digits_u32(&s[1..3]), digits_u32(&s[3..5])) else {
        return false;
    };
    let limit = if b[0] == b'+' { 1400 } else { 1200 };
    mm < 60 && hh * 100 + mm <= limit
}

/// Parses one DT value (no range):
/// `YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]`.
fn parse_dt_single(s: &str) -> Option<DtParts<'_>> {
    let s = s.trim();
    if !s.is_ascii() {
        return None;
    }
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if !matches!(n, 4 | 6 | 8 | 10 | 12 | 14) {
        return None;
    }
    let mut pos = n;
    let mut fraction = "";
    if s[pos..].starts_with('.') {
        if n != 14 {
            return None;
        }
        let f = s[pos + 1..].bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&f) {
            return None;
        }
        fraction = &s[pos + 1..pos + 1 + f];
        pos += 1 + f;
    }
    let tail = &s[pos..];
    if !tail.is_empty() && !valid_offset(tail) {
        return None;
    }

    let y = digits_u32(&s[0..4])? as i32;
    let m = if n >= 6 { digits_u32(&s[4..6])? } else { 1 };
    let d = if n >= 8 { digits_u32(&s[6..8])? } else { 1 };
    let date = NaiveDate::from_ymd_opt(y, m, d)?;
    if n >= 10 && digits_u32(&s[8..10])? > 23 {
        return None;
    }
    if n >= 12 && digits_u32(&s[10..12])? > 59 {
        return None;
    }
    // 60 is allowed for a leap second, as in VR TM.
    if n >= 14 && digits_u32(&s[12..14])? > 60 {
        return None;
    }

    let field = |from: usize| -> i64 {
        if n > from {
            s[from..from + 2].parse().unwrap_or(0)
        } else {
            0
        }
    };
    let offset_secs = if tail.is_empty() {
        0
    } else {
        let sign = if tail.starts_with('-') { -1 } else { 1 };
        sign * (tail[1..3].parse::<i64>().ok()? * 3600 + tail[3..5].parse::<i64>().ok()? * 60)
    };
    let secs =
        i64::from(date.num_days_from_ce()) * 86_400 + field(8) * 3600 + field(10) * 60 + field(12)
            - offset_secs;
    let micros = format!("{fraction:0<6}").parse().unwrap_or(0);
    Some(DtParts {
        date,
        date_digits: n.min(8),
        rest: &s[n.min(8)..],
        key: (secs, micros),
    })
}

/// Shifts a parsed DT, keeping the precision of its date part and its rest verbatim.
fn shift_dt_parts(p: &DtParts<'_>, days: i64) -> Option<String> {
    let d = add_days(p.date, days)?;
    let date = match p.date_digits {
        4 => format!("{:04}", d.year()),
        6 => format!("{:04}{:02}", d.year(), d.month()),
        _ => format_da(d),
    };
    Some(format!("{date}{}", p.rest))
}

/// Shifts one VR DT value by `days`.
///
/// Only the calendar date moves; the time of day, the fraction and the `&ZZXX` UTC
/// offset are kept byte for byte. Shifting whole days keeps the time-of-day (which
/// matters clinically, e.g. for dose timing) and needs no time zone arithmetic.
///
/// Partial precision: for `YYYY` and `YYYYMM` the first day of the year/month is
/// shifted and the result is written at the same precision. So `2020` shifted by
/// -10 days becomes `2019`, by +10 stays `2020`: the period containing the shifted
/// first day is reported, which is the best a coarse value can carry.
///
/// Ranges (`A-B`, `-B`, `A-`) are supported as in [`shift_da`], and like there a
/// range whose lower bound is later than its upper bound is rejected. Because a
/// negative UTC offset also uses `-`, the split is ambiguous in principle
/// (`20200101-0500` is one value with offset -0500, or a range ending in the year
/// 500). Every `-` is tried as separator: the value is used if exactly one reading
/// (single value, or one ascending range) is valid; otherwise it is `None` and the
/// caller removes it. In the example the range reading is descending, so the single
/// value wins.
#[must_use]
pub fn shift_dt(value: &str, days: i64) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return Some(String::new());
    }
    let single = parse_dt_single(v);
    let mut ranges: Vec<DtRange<'_>> = Vec::new();
    for (i, _) in v.match_indices('-') {
        let (sa, sb) = (v[..i].trim(), v[i + 1..].trim());
        if let Some(r) = dt_range_reading(sa, sb) {
            ranges.push(r);
        }
    }

    match (single, ranges.len()) {
        (Some(p), 0) => shift_dt_parts(&p, days),
        (None, 1) => {
            let (a, b) = &ranges[0];
            let bound = |p: &Option<DtParts<'_>>| match p {
                Some(p) => shift_dt_parts(p, days),
                None => Some(String::new()),
            };
            Some(format!("{}-{}", bound(a)?, bound(b)?))
        }
        _ => None,
    }
}

/// A DT range reading: lower and upper bound, `None` for an open end.
type DtRange<'a> = (Option<DtParts<'a>>, Option<DtParts<'a>>);

/// Reads `sa-sb` as a DT range; `None` unless both bounds are valid (or empty, but not
/// both) and ascending.
fn dt_range_reading<'a>(sa: &'a str, sb: &'a str) -> Option<DtRange<'a>> {
    if sa.is_empty() && sb.is_empty() {
        return None;
    }
    let bound = |s: &'a str| -> Option<Option<DtParts<'a>>> {
        if s.is_empty() {
            Some(None)
        } else {
            parse_dt_single(s).map(Some)
        }
    };
    let (a, b) = (bound(sa)?, bound(sb)?);
    if matches!((&a, &b), (Some(x), Some(y)) if x.key > y.key) {
        return None;
    }
    Some((a, b))
}

/// Maps MAC output onto a day shift in the inclusive range `[min_days, max_days]`.
///
/// The first 8 bytes are read as a big-endian `u64` and reduced modulo the range
/// size. The modulo bias is at most `range / 2^64`, i.e. below 1e-15 for any
/// realistic range of a few thousand days, which is negligible. Swapped bounds are
/// accepted; the arithmetic is done in 128 bits so this never panics or overflows.
/// The result always lies in the range, so it is never 0 unless 0 is in the range.
#[must_use]
pub fn day_shift_from_bytes(mac: &[u8; 32], min_days: i64, max_days: i64) -> i64 {
    let (lo, hi) = if min_days <= max_days {
        (min_days, max_days)
    } else {
        (max_days, min_days)
    };
    let mut first = [0u8; 8];
    first.copy_from_slice(&mac[..8]);
    let r = u128::from(u64::from_be_bytes(first));
    // hi >= lo, so this is 1 ..= 2^64 and the casts below are lossless.
    let size = (i128::from(hi) - i128::from(lo) + 1).unsigned_abs();
    let offset = i128::try_from(r % size).unwrap_or(0);
    i64::try_from(i128::from(lo) + offset).unwrap_or(lo)
}

/// Parses a VR AS age `nnnD|W|M|Y` into (number, unit).
///
/// Leniency: 1 to 9 digits are accepted (e.g. `45Y`, `1200M`) because such
/// non-conformant values exist in real data and must still be aggregated rather than
/// silently passed on; surrounding spaces are ignored. The unit must be upper case.
#[must_use]
pub fn parse_age(s: &str) -> Option<(u32, char)> {
    let s = s.trim();
    let unit = s.chars().last()?;
    if !matches!(unit, 'D' | 'W' | 'M' | 'Y') {
        return None;
    }
    let num = &s[..s.len() - 1];
    if num.len() > 9 {
        return None;
    }
    Some((digits_u32(num)?, unit))
}

/// Age in (fractional) years; days and weeks use the mean Gregorian year of
/// 365.2425 days.
#[must_use]
pub fn age_in_years(s: &str) -> Option<f64> {
    let (n, unit) = parse_age(s)?;
    let n = f64::from(n);
    Some(match unit {
        'D' => n / 365.2425,
        'W' => n * 7.0 / 365.2425,
        'M' => n / 12.0,
        _ => n,
    })
}

/// HIPAA Safe Harbor aggregation: ages over `max_years` (89) are collapsed into one
/// bucket written as `max_years + 1` years (`090Y`), because very old ages are rare
/// enough to identify people.
///
/// "Over" is judged on completed years (the floor), as ages are normally stated:
/// `1079M` (89 years 11 months) stays, `1080M` becomes `090Y`. Ages not over the
/// limit are returned unchanged (trimmed).
#[must_use]
pub fn aggregate_age(s: &str, max_years: u32) -> Option<String> {
    let years = age_in_years(s)?.floor();
    if years <= f64::from(max_years) {
        Some(s.trim().to_string())
    } else {
        Some(format!("{:03}Y", max_years.saturating_add(1)))
    }
}

/// Months since year 0 (January of year 0 is 0).
fn month_index(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

/// The date `n` months after `birth` on the same day of month. If that day does not
/// exist in the target month (Feb 29 in a non-leap year, the 31st in a 30-day
/// month), the anniversary falls on the first day of the following month, so a Feb
/// 29 birthday counts on Mar 1 in non-leap years.
fn add_months_anniversary(birth: NaiveDate, n: i64) -> Option<NaiveDate> {
    let total = month_index(birth) + n;
    let (y, m0) = (total.div_euclid(12), total.rem_euclid(12));
    let y = i32::try_from(y).ok()?;
    let m = u32::try_from(m0).ok()? + 1;
    NaiveDate::from_ymd_opt(y, m, birth.day()).or_else(|| {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        NaiveDate::from_ymd_opt(ny, nm, 1)
    })
}

/// Completed whole months from `birth` to `at` (`birth <= at` required).
fn completed_months(birth: NaiveDate, at: NaiveDate) -> Option<i64> {
    let mut months = month_index(at) - month_index(birth);
    if add_months_anniversary(birth, months)? > at {
        months -= 1;
    }
    Some(months)
}

fn parse_pair(birth_da: &str, at_da: &str) -> Option<(NaiveDate, NaiveDate)> {
    let birth = parse_da_single(birth_da)?;
    let at = parse_da_single(at_da)?;
    (birth <= at).then_some((birth, at))
}

/// Age at `at_da` of someone born on `birth_da`, as a VR AS value.
///
/// Used to fill `PatientAge` when the birth date itself is removed. Rule: at least one
/// completed year gives `nnnY`, otherwise at least one completed month gives `nnnM`,
/// otherwise `nnnD`. Calendar arithmetic (not day counts / 365) is used so the age
/// changes exactly on the birthday; a Feb 29 birthday counts on Mar 1 in non-leap
/// years. `None` if either date is unparsable, birth is after `at`, or the age does
/// not fit three digits.
#[must_use]
pub fn age_between(birth_da: &str, at_da: &str) -> Option<String> {
    let (birth, at) = parse_pair(birth_da, at_da)?;
    let months = completed_months(birth, at)?;
    let (n, unit) = if months >= 12 {
        (months / 12, 'Y')
    } else if months >= 1 {
        (months, 'M')
    } else {
        ((at - birth).num_days(), 'D')
    };
    (n <= 999).then(|| format!("{n:03}{unit}"))
}

/// Whether someone born on `birth_da` is over `years` completed years old at
/// `at_da` (e.g. `is_over(b, a, 89)` is true from the 90th birthday on).
/// `None` under the same conditions as [`age_between`].
#[must_use]
pub fn is_over(birth_da: &str, at_da: &str, years: u32) -> Option<bool> {
    let (birth, at) = parse_pair(birth_da, at_da)?;
    Some(completed_months(birth, at)? / 12 > i64::from(years))
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- DA ----

    #[test]
    fn da_basic_shift() {
        assert_eq!(shift_da("20230115", 10).as_deref(), Some("20230125"));
        assert_eq!(shift_da("20230115", -15).as_deref(), Some("20221231"));
        assert_eq!(shift_da("20230115", 0).as_deref(), Some("20230115"));
    }

    #[test]
    fn da_leap_days() {
        assert_eq!(shift_da("20200229", -366).as_deref(), Some("20190228"));
        assert_eq!(shift_da("20240229", 365).as_deref(), Some("20250228"));
        assert_eq!(shift_da("20200228", 1).as_deref(), Some("20200229"));
        assert_eq!(shift_da("20200301", -1).as_deref(), Some("20200229"));
        assert_eq!(shift_da("20190301", -1).as_deref(), Some("20190228"));
        assert_eq!(shift_da("20000229", 0).as_deref(), Some("20000229"));
        assert_eq!(shift_da("20000229", 1).as_deref(), Some("20000301"));
        assert_eq!(shift_da("19000228", 1).as_deref(), Some("19000301"));
        assert_eq!(shift_da("19000229", 0), None);
        assert_eq!(shift_da("21000229", 0), None);
        assert_eq!(shift_da("20230229", 0), None);
    }

    #[test]
    fn da_year_and_century_boundaries() {
        assert_eq!(shift_da("19991231", 1).as_deref(), Some("20000101"));
        assert_eq!(shift_da("20000101", -1).as_deref(), Some("19991231"));
        assert_eq!(shift_da("18991231", 1).as_deref(), Some("19000101"));
        assert_eq!(shift_da("20230101", -3650).as_deref(), Some("20130103"));
        assert_eq!(shift_da("00000101", 0).as_deref(), Some("00000101"));
        assert_eq!(shift_da("00000101", -1), None);
        assert_eq!(shift_da("99991231", 1), None);
        assert_eq!(shift_da("99991231", i64::MAX), None);
        assert_eq!(shift_da("20000101", i64::MIN), None);
    }

    #[test]
    fn da_legacy_dotted_and_padding() {
        assert_eq!(shift_da("2020.02.29", 1).as_deref(), Some("20200301"));
        assert_eq!(shift_da("1995.12.31", 1).as_deref(), Some("19960101"));
        assert_eq!(shift_da("20230115 ", 1).as_deref(), Some("20230116"));
        assert_eq!(shift_da("", 5).as_deref(), Some(""));
        assert_eq!(shift_da("  ", 5).as_deref(), Some(""));
    }

    #[test]
    fn da_ranges() {
        assert_eq!(
            shift_da("20200101-20201231", -1).as_deref(),
            Some("20191231-20201230")
        );
        assert_eq!(shift_da("-20200101", 1).as_deref(), Some("-20200102"));
        assert_eq!(shift_da("20200101-", 1).as_deref(), Some("20200102-"));
        assert_eq!(
            shift_da("2020.01.01-2020.02.29", 1).as_deref(),
            Some("20200102-20200301")
        );
        assert_eq!(shift_da("-", 1), None);
        assert_eq!(shift_da("20200101-2020", 1), None);
        assert_eq!(shift_da("20200102-20200101", 1), None);
        assert_eq!(
            shift_da("20200101-20200101", 1).as_deref(),
            Some("20200102-20200102")
        );
        assert_eq!(shift_da("20200101-20200102-20200103", 1), None);
    }

    #[test]
    fn da_invalid() {
        for bad in [
            "20231301",
            "20230001",
            "20230100",
            "20230132",
            "20230431",
            "2023011",
            "202301155",
            "2023-01-15x",
            "abcdefgh",
            "2023.1.15",
            "2023/01/15",
            "2023.01-15",
            "+2023011",
            "２０２３０１１５",
        ] {
            assert_eq!(shift_da(bad, 1), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn multi_valued() {
        assert_eq!(
            shift_multi("20200101\\20200229", 1, shift_da).as_deref(),
            Some("20200102\\20200301")
        );
        assert_eq!(shift_multi("", 1, shift_da).as_deref(), Some(""));
        assert_eq!(
            shift_multi("20200101\\\\20200102", 1, shift_da).as_deref(),
            Some("20200102\\\\20200103")
        );
        assert_eq!(shift_multi("20200101\\garbage", 1, shift_da), None);
        assert_eq!(
            shift_multi("20200101120000+0100\\2021", 1, shift_dt).as_deref(),
            Some("20200102120000+0100\\2021")
        );
    }

    // ---- DT ----

    #[test]
    fn dt_full_with_offsets_and_fraction() {
        assert_eq!(
            shift_dt("20200229235959.123456+0100", 1).as_deref(),
            Some("20200301235959.123456+0100")
        );
        assert_eq!(
            shift_dt("20200101000000.1-0530", -1).as_deref(),
            Some("20191231000000.1-0530")
        );
        assert_eq!(
            shift_dt("20200101083000-0500", 366).as_deref(),
            Some("20210101083000-0500")
        );
        assert_eq!(
            shift_dt("20240229120000.000001", 365).as_deref(),
            Some("20250228120000.000001")
        );
        assert_eq!(
            shift_dt("20231231235960", 1).as_deref(),
            Some("20240101235960")
        );
        assert_eq!(
            shift_dt("20200101-1200", 0).as_deref(),
            Some("20200101-1200")
        );
        assert_eq!(
            shift_dt("20200101+1400", 0).as_deref(),
            Some("20200101+1400")
        );
        assert_eq!(shift_dt("2020010112 ", 1).as_deref(), Some("2020010212"));
    }

    #[test]
    fn dt_partial_precision() {
        assert_eq!(shift_dt("2020", 10).as_deref(), Some("2020"));
        assert_eq!(shift_dt("2020", -1).as_deref(), Some("2019"));
        assert_eq!(shift_dt("2020", 366).as_deref(), Some("2021"));
        assert_eq!(shift_dt("202003", -1).as_deref(), Some("202002"));
        assert_eq!(shift_dt("202002", 29).as_deref(), Some("202003"));
        assert_eq!(shift_dt("202002", 28).as_deref(), Some("202002"));
        assert_eq!(shift_dt("2020+0100", -1).as_deref(), Some("2019+0100"));
        assert_eq!(shift_dt("20200229", 365).as_deref(), Some("20210228"));
        assert_eq!(shift_dt("202001011230", 1).as_deref(), Some("202001021230"));
    }

    #[test]
    fn dt_ranges() {
        assert_eq!(
            shift_dt("20200101-20201231235959", 1).as_deref(),
            Some("20200102-20210101235959")
        );
        assert_eq!(
            shift_dt("20200101120000-0500-20200102120000-0500", 1).as_deref(),
            Some("20200102120000-0500-20200103120000-0500")
        );
        assert_eq!(
            shift_dt("20200101120000+0100-20200102120000+0100", -1).as_deref(),
            Some("20191231120000+0100-20200101120000+0100")
        );
        assert_eq!(shift_dt("-20200101", 1).as_deref(), Some("-20200102"));
        assert_eq!(
            shift_dt("-20200101-0500", 1).as_deref(),
            Some("-20200102-0500")
        );
        assert_eq!(shift_dt("20200101-", 1).as_deref(), Some("20200102-"));
        assert_eq!(
            shift_dt("20200101-0500-", 1).as_deref(),
            Some("20200102-0500-")
        );
        assert_eq!(shift_dt("2019-2020", 1).as_deref(), Some("2019-2020"));
        assert_eq!(shift_dt("2019-2020", -1).as_deref(), Some("2018-2019"));
        // Ascending in UTC although the local clock times are descending.
        assert_eq!(
            shift_dt("20200101120000+1400-20200101110000-1200", 1).as_deref(),
            Some("20200102120000+1400-20200102110000-1200")
        );
        // Descending ranges are malformed.
        assert_eq!(shift_dt("20200102-20200101", 1), None);
        assert_eq!(shift_dt("20200101120000+0000-20200101120000+0100", 1), None);
    }

    #[test]
    fn dt_offset_vs_range_disambiguation() {
        // Single value with offset; the range reading (to year 0500) is descending.
        assert_eq!(
            shift_dt("20200101-0500", 1).as_deref(),
            Some("20200102-0500")
        );
        assert_eq!(shift_dt("1990-1200", 1).as_deref(), Some("1990-1200"));
        // Truly ambiguous: year 1000 offset -1000, or range 1000..1000.
        assert_eq!(shift_dt("1000-1000", 1), None);
    }

    #[test]
    fn dt_invalid() {
        for bad in [
            "20231301",
            "19000229",
            "202",
            "20200",
            "2020010",
            "20200101240000",
            "20200101126000",
            "20200101120061",
            "202001011200.5",
            "20200101120000.",
            "20200101120000.1234567",
            "20200101+01",
            "20200101+1500",
            "20200101-1300",
            "20200101+0160",
            "20200101 120000",
            "2020-01-01",
            "-",
            "x2020",
        ] {
            assert_eq!(shift_dt(bad, 1), None, "{bad:?} should be rejected");
        }
        assert_eq!(shift_dt("", 1).as_deref(), Some(""));
        assert_eq!(shift_dt("9999", 365), None);
    }

    // ---- day shift ----

    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn random_mac(state: &mut u64) -> [u8; 32] {
        let mut mac = [0u8; 32];
        for chunk in mac.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix64(state).to_le_bytes());
        }
        mac
    }

    #[test]
    fn day_shift_within_bounds() {
        let mut st = 42u64;
        let (mut seen_min, mut seen_max) = (i64::MAX, i64::MIN);
        for _ in 0..10_000 {
            let mac = random_mac(&mut st);
            let d = day_shift_from_bytes(&mac, -3650, -365);
            assert!((-3650..=-365).contains(&d), "{d}");
            assert_ne!(d, 0);
            seen_min = seen_min.min(d);
            seen_max = seen_max.max(d);
            // Swapped bounds give the same result.
            assert_eq!(day_shift_from_bytes(&mac, -365, -3650), d);
        }
        // Roughly uniform: the extremes of the range get close to being hit.
        assert!(seen_min < -3600 && seen_max > -415, "{seen_min} {seen_max}");
    }

    #[test]
    fn day_shift_edge_cases() {
        let zero = [0u8; 32];
        let ones = [0xFFu8; 32];
        assert_eq!(day_shift_from_bytes(&zero, -3650, -365), -3650);
        assert_eq!(day_shift_from_bytes(&zero, 5, 5), 5);
        assert_eq!(day_shift_from_bytes(&ones, 5, 5), 5);
        assert_eq!(day_shift_from_bytes(&ones, i64::MIN, i64::MAX), i64::MAX);
        assert_eq!(day_shift_from_bytes(&zero, i64::MIN, i64::MAX), i64::MIN);
        assert_eq!(day_shift_from_bytes(&ones, i64::MAX, i64::MIN), i64::MAX);
        let mut m = [0u8; 32];
        m[7] = 3;
        assert_eq!(day_shift_from_bytes(&m, 10, 12), 10);
        m[7] = 4;
        assert_eq!(day_shift_from_bytes(&m, 10, 12), 11);
        // Only the first 8 bytes matter.
        let mut tail = [0u8; 32];
        tail[8..].fill(0xAB);
        assert_eq!(day_shift_from_bytes(&tail, -100, 100), -100);
    }

    // ---- ages ----

    #[test]
    fn age_parsing() {
        assert_eq!(parse_age("045Y"), Some((45, 'Y')));
        assert_eq!(parse_age("003D"), Some((3, 'D')));
        assert_eq!(parse_age("012W"), Some((12, 'W')));
        assert_eq!(parse_age("1200M"), Some((1200, 'M')));
        assert_eq!(parse_age("45Y "), Some((45, 'Y')));
        for bad in [
            "",
            "Y",
            "045",
            "045y",
            "045X",
            "-45Y",
            "4 5Y",
            "1234567890Y",
            "045YY",
        ] {
            assert_eq!(parse_age(bad), None, "{bad:?}");
        }
        assert_eq!(age_in_years("018M"), Some(1.5));
        assert_eq!(age_in_years("090Y"), Some(90.0));
        assert!((age_in_years("365D").unwrap() - 0.9993).abs() < 1e-3);
        assert!((age_in_years("052W").unwrap() - 0.9966).abs() < 1e-3);
        assert_eq!(age_in_years("abc"), None);
    }

    #[test]
    fn age_aggregation() {
        assert_eq!(aggregate_age("089Y", 89).as_deref(), Some("089Y"));
        assert_eq!(aggregate_age("090Y", 89).as_deref(), Some("090Y"));
        assert_eq!(aggregate_age("100Y", 89).as_deref(), Some("090Y"));
        assert_eq!(aggregate_age("1200M", 89).as_deref(), Some("090Y"));
        assert_eq!(aggregate_age("1079M", 89).as_deref(), Some("1079M"));
        assert_eq!(aggregate_age("1080M", 89).as_deref(), Some("090Y"));
        assert_eq!(aggregate_age("999W", 89).as_deref(), Some("999W"));
        assert_eq!(aggregate_age("005D", 89).as_deref(), Some("005D"));
        assert_eq!(aggregate_age("000Y", 89).as_deref(), Some("000Y"));
        assert_eq!(aggregate_age("050Y", 49).as_deref(), Some("050Y"));
        assert_eq!(aggregate_age("051Y", 49).as_deref(), Some("050Y"));
        assert_eq!(aggregate_age("999Y", u32::MAX).as_deref(), Some("999Y"));
        assert_eq!(aggregate_age("bad", 89), None);
    }

    #[test]
    fn age_between_units() {
        assert_eq!(age_between("19800615", "20230615").as_deref(), Some("043Y"));
        assert_eq!(age_between("19800615", "20230614").as_deref(), Some("042Y"));
        assert_eq!(age_between("20220615", "20230615").as_deref(), Some("001Y"));
        assert_eq!(age_between("20220615", "20230614").as_deref(), Some("011M"));
        assert_eq!(age_between("20230115", "20230215").as_deref(), Some("001M"));
        assert_eq!(age_between("20230115", "20230214").as_deref(), Some("030D"));
        assert_eq!(age_between("20230115", "20230115").as_deref(), Some("000D"));
        assert_eq!(age_between("20231231", "20240101").as_deref(), Some("001D"));
        // Jan 31 + 1 month: Feb 31 does not exist, so the month completes on Mar 1.
        assert_eq!(age_between("20230131", "20230228").as_deref(), Some("028D"));
        assert_eq!(age_between("20230131", "20230301").as_deref(), Some("001M"));
        assert_eq!(
            age_between("1990.06.15", "2000.06.15").as_deref(),
            Some("010Y")
        );
        assert_eq!(age_between("18990101", "20000101").as_deref(), Some("101Y"));
    }

    #[test]
    fn age_between_feb29_birthday() {
        assert_eq!(age_between("20000229", "20010228").as_deref(), Some("011M"));
        assert_eq!(age_between("20000229", "20010301").as_deref(), Some("001Y"));
        assert_eq!(age_between("20000229", "20040228").as_deref(), Some("003Y"));
        assert_eq!(age_between("20000229", "20040229").as_deref(), Some("004Y"));
        assert_eq!(age_between("20000229", "21000228").as_deref(), Some("099Y"));
        assert_eq!(age_between("20000229", "21000301").as_deref(), Some("100Y"));
        assert_eq!(age_between("20000229", "20000329").as_deref(), Some("001M"));
        assert_eq!(age_between("20000229", "20000328").as_deref(), Some("028D"));
    }

    #[test]
    fn age_between_invalid() {
        assert_eq!(age_between("20230102", "20230101"), None);
        assert_eq!(age_between("19000229", "20230101"), None);
        assert_eq!(age_between("20230101", "2023"), None);
        assert_eq!(age_between("", "20230101"), None);
        assert_eq!(age_between("20230101-20230201", "20230301"), None);
        assert_eq!(age_between("00000101", "99991231"), None);
    }

    #[test]
    fn over_age() {
        assert_eq!(is_over("19330615", "20230614", 89), Some(false));
        assert_eq!(is_over("19330615", "20230615", 89), Some(true));
        assert_eq!(is_over("19320229", "20220228", 89), Some(false));
        assert_eq!(is_over("19320229", "20220301", 89), Some(true));
        assert_eq!(is_over("20000101", "20000101", 0), Some(false));
        assert_eq!(is_over("20230102", "20230101", 89), None);
        assert_eq!(is_over("garbage", "20230101", 89), None);
    }
}
