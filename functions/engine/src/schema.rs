//! Column types, the inference lattice, and the value parsers shared by inference and decoding.
//!
//! The type ladder is null → boolean → int64 → float64 → date32 → timestamp → utf8.
//! Inference classifies each sampled value to its narrowest [`Kind`] and joins the kinds of a
//! column. Decoding parses with the same functions, so a value that a column's type rejects
//! always classifies outside that type: the join then strictly widens the column, and the
//! file is converted again. Nothing is nulled, rounded or truncated to make a value fit.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// A column type, as named in an explicit schema and in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Only nulls were seen; written as utf8.
    Null,
    /// `true` / `false`, any case.
    #[serde(alias = "bool")]
    Boolean,
    /// 64-bit signed integer without leading zeros.
    #[serde(alias = "int", alias = "integer", alias = "long", alias = "bigint")]
    Int64,
    /// 64-bit float.
    #[serde(alias = "float", alias = "double")]
    Float64,
    /// `YYYY-MM-DD`.
    #[serde(alias = "date")]
    Date32,
    /// ISO 8601 date-time without an offset, microsecond precision.
    Timestamp,
    /// ISO 8601 date-time with an offset (`Z`, `+02:00`), stored as UTC microseconds.
    #[serde(alias = "timestamptz")]
    TimestampUtc,
    /// Text.
    #[serde(alias = "string", alias = "text")]
    Utf8,
}

/// Every name an explicit schema accepts for a type: the canonical names and their aliases.
const TYPE_NAMES: [&str; 19] = [
    "null",
    "boolean",
    "bool",
    "int64",
    "int",
    "integer",
    "long",
    "bigint",
    "float64",
    "float",
    "double",
    "date32",
    "date",
    "timestamp",
    "timestamp_utc",
    "timestamptz",
    "utf8",
    "string",
    "text",
];

impl schemars::JsonSchema for ColumnType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ColumnType".into()
    }

    /// One of the type names: serde's aliases are accepted on input, so the schema lists
    /// them too.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A column type, as named in an explicit schema",
            "type": "string",
            "enum": TYPE_NAMES,
        })
    }
}

impl ColumnType {
    /// The Arrow type this column is written as.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Null | Self::Utf8 => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Date32 => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// A point of the inference lattice. `BigInt` is an int64 beyond ±2^53, which a float64
/// cannot hold exactly, so it never joins with floats into float64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// No value yet.
    Null,
    /// Boolean.
    Bool,
    /// Integer exactly representable as f64.
    Int,
    /// Integer beyond ±2^53.
    BigInt,
    /// Float.
    Float,
    /// Date.
    Date,
    /// Timestamp without offset.
    Timestamp,
    /// Timestamp with offset.
    TimestampUtc,
    /// Text.
    Utf8,
}

impl Kind {
    /// The least kind that holds every value of `self` and of `other`.
    pub fn join(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Int, BigInt) | (BigInt, Int) => BigInt,
            (Int, Float) | (Float, Int) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Utf8,
        }
    }

    /// The column type of this kind.
    pub fn column_type(self) -> ColumnType {
        match self {
            Kind::Null => ColumnType::Null,
            Kind::Bool => ColumnType::Boolean,
            Kind::Int | Kind::BigInt => ColumnType::Int64,
            Kind::Float => ColumnType::Float64,
            Kind::Date => ColumnType::Date32,
            Kind::Timestamp => ColumnType::Timestamp,
            Kind::TimestampUtc => ColumnType::TimestampUtc,
            Kind::Utf8 => ColumnType::Utf8,
        }
    }

    /// The widest kind that a column of an explicit type accepts.
    pub fn of_explicit(t: ColumnType) -> Kind {
        match t {
            ColumnType::Null | ColumnType::Utf8 => Kind::Utf8,
            ColumnType::Boolean => Kind::Bool,
            ColumnType::Int64 => Kind::BigInt,
            ColumnType::Float64 => Kind::Float,
            ColumnType::Date32 => Kind::Date,
            ColumnType::Timestamp => Kind::Timestamp,
            ColumnType::TimestampUtc => Kind::TimestampUtc,
        }
    }
}

/// Largest integer magnitude a float64 holds exactly.
const F64_EXACT: i64 = 1 << 53;

/// The narrowest kind of a non-null value, or `None` when it is not valid UTF-8.
pub fn classify(v: &[u8]) -> Option<Kind> {
    if parse_bool(v).is_some() {
        return Some(Kind::Bool);
    }
    if let Some(i) = parse_int(v) {
        return Some(if (-F64_EXACT..=F64_EXACT).contains(&i) { Kind::Int } else { Kind::BigInt });
    }
    if looks_like_integer(v) {
        // Leading zeros or out of range: keep the digits as text rather than lose them.
        return Some(Kind::Utf8);
    }
    if parse_float(v).is_some() {
        return Some(Kind::Float);
    }
    if parse_date(v).is_some() {
        return Some(Kind::Date);
    }
    let s = std::str::from_utf8(v).ok()?;
    match parse_timestamp_str(s) {
        Some((_, true)) => Some(Kind::TimestampUtc),
        Some((_, false)) => Some(Kind::Timestamp),
        None => Some(Kind::Utf8),
    }
}

/// `true`/`false` in any case.
#[inline]
pub fn parse_bool(v: &[u8]) -> Option<bool> {
    if v.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if v.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

fn looks_like_integer(v: &[u8]) -> bool {
    let digits = v.strip_prefix(b"-").or_else(|| v.strip_prefix(b"+")).unwrap_or(v);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// An int64 written without leading zeros (`007` stays text: it is an identifier, not 7).
#[inline]
pub fn parse_int(v: &[u8]) -> Option<i64> {
    let digits = v.strip_prefix(b"-").or_else(|| v.strip_prefix(b"+")).unwrap_or(v);
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    lexical_core::parse::<i64>(v).ok()
}

/// A float64 that has at least one digit (so `inf` or `NaN` alone never make a column float)
/// and is not an integer too large for a float to hold exactly.
#[inline]
pub fn parse_float(v: &[u8]) -> Option<f64> {
    if !v.iter().any(u8::is_ascii_digit) {
        return None;
    }
    if looks_like_integer(v) {
        return parse_int(v).filter(|i| (-F64_EXACT..=F64_EXACT).contains(i)).map(|i| i as f64);
    }
    lexical_core::parse::<f64>(v).ok()
}

/// `YYYY-MM-DD` as days since the epoch.
#[inline]
pub fn parse_date(v: &[u8]) -> Option<i32> {
    let d = parse_ymd(v)?;
    Some(d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn parse_ymd(v: &[u8]) -> Option<NaiveDate> {
    if v.len() != 10 || v[4] != b'-' || v[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        v[r].iter().try_fold(0u32, |acc, b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// A timestamp as UTC microseconds and whether the text carried an offset.
/// Rejects values with sub-microsecond digits, which microseconds would truncate.
pub fn parse_timestamp_str(s: &str) -> Option<(i64, bool)> {
    if s.len() < 10 {
        return None;
    }
    let b = s.as_bytes();
    if b.len() == 10 {
        return parse_ymd(b).map(|d| (d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_micros(), false));
    }
    // A date-time needs a separator and a time; anything else (e.g. "2024-01-01 extra") is text.
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 {
        return None;
    }
    let dt = date_time(b)?;
    if dt.nanosecond() % 1000 != 0 {
        return None;
    }
    let tail = &b[11..];
    let has_offset = matches!(b[b.len() - 1], b'Z' | b'z') || tail.iter().any(|c| matches!(c, b'+' | b'-'));
    Some((dt.timestamp_micros(), has_offset))
}

/// A date-time of at least 11 bytes, in the forms arrow-cast's `string_to_datetime` reads (and a
/// test holds the two to the same answers): `YYYY-MM-DD`, `T`, `t` or a space, then `HH:MM:SS`
/// with an optional fraction of any length (nanoseconds from its first 9 digits) or `HHMMSS`, and
/// then nothing (UTC), `Z`/`z`, or an offset `±HH:MM`, `±HHMM` or `±HH` after optional
/// whitespace. A second of 60 is a leap second. arrow-cast itself would bring its casting
/// kernels into the build (a minute of a cold build) for this one function.
fn date_time(b: &[u8]) -> Option<DateTime<Utc>> {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let date = parse_ymd(b.get(..10)?)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let time = |h: u32, m: u32, sec: u32, nano: u32| match sec {
        60 => NaiveTime::from_hms_nano_opt(h, m, 59, 1_000_000_000 + nano),
        _ => NaiveTime::from_hms_nano_opt(h, m, sec, nano),
    };
    let colons = is(13, b':') && is(16, b':');
    let (time, mut end) = if colons && [11, 12, 14, 15, 17, 18].into_iter().all(digit) {
        let (h, m, sec) = (two(11), two(14), two(17));
        if is(19, b'.') {
            // Digits of the fraction, counted within the first 32 bytes as arrow-cast counts them.
            let n = (20..32).take_while(|&i| digit(i)).count();
            if n == 0 {
                return None;
            }
            let nano = b[20..20 + n.min(9)].iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
            (time(h, m, sec, nano * 10u32.pow(9 - n.min(9) as u32))?, 20 + n)
        } else {
            (time(h, m, sec, 0)?, 19)
        }
    } else if (11..17).all(digit) && !digit(17) && !digit(18) {
        (time(two(11), two(13), two(15), 0)?, 17)
    } else {
        return None;
    };
    if end == 32 {
        // A fraction past the 32nd byte: its remaining digits are skipped.
        while digit(end) {
            end += 1;
        }
    }
    let local = date.and_time(time);
    let Some(rest) = b.get(end..).filter(|r| !r.is_empty()) else {
        return Some(local.and_utc());
    };
    if matches!(rest, [b'Z' | b'z']) {
        return Some(local.and_utc());
    }
    let offset = fixed_offset(std::str::from_utf8(rest).ok()?.trim_start().as_bytes())?;
    Some(offset.from_local_datetime(&local).single()?.with_timezone(&Utc))
}

/// `±HH:MM`, `±HHMM` or `±HH`.
fn fixed_offset(b: &[u8]) -> Option<FixedOffset> {
    let hm = match b.len() {
        6 if b[3] == b':' => [b[1], b[2], b[4], b[5]],
        5 => [b[1], b[2], b[3], b[4]],
        3 => [b[1], b[2], b'0', b'0'],
        _ => return None,
    };
    if !hm.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let d = |i: usize| i32::from(hm[i] - b'0');
    let secs = (d(0) * 10 + d(1)) * 3600 + (d(2) * 10 + d(3)) * 60;
    match b[0] {
        b'+' => FixedOffset::east_opt(secs),
        b'-' => FixedOffset::west_opt(secs),
        _ => None,
    }
}

/// Column names from a header: empty names become `column_N`, duplicates get `_2`, `_3`….
pub fn unique_names(raw: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, name) in raw.into_iter().enumerate() {
        let base = if name.is_empty() { format!("column_{}", i + 1) } else { name };
        let mut candidate = base.clone();
        let mut n = 2;
        while !seen.insert(candidate.clone()) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        out.push(candidate);
    }
    out
}

/// The Arrow schema of a file: every column nullable, since nulls may appear anywhere.
pub fn arrow_schema(names: &[String], types: &[ColumnType]) -> SchemaRef {
    Arc::new(Schema::new(names.iter().zip(types).map(|(n, t)| Field::new(n, t.data_type(), true)).collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the timestamp parser answered when it called arrow-cast's `string_to_datetime`.
    fn with_arrow_cast(s: &str) -> Option<(i64, bool)> {
        let b = s.as_bytes();
        if b.len() < 16 || !matches!(b[10], b'T' | b't' | b' ') {
            return parse_timestamp_str(s);
        }
        let dt = arrow_cast::parse::string_to_datetime(&Utc, s).ok()?;
        if dt.nanosecond() % 1000 != 0 {
            return None;
        }
        let has_offset = matches!(b[b.len() - 1], b'Z' | b'z') || b[11..].iter().any(|c| matches!(c, b'+' | b'-'));
        Some((dt.timestamp_micros(), has_offset))
    }

    #[test]
    fn timestamps_parse_as_arrow_cast_parses_them() {
        let dates = ["2024-02-29", "1999-12-31", "2023-02-29", "0001-01-01", "2024-13-01", "2024-1-01"];
        let seps = ["T", "t", " ", "_"];
        let times =
            ["09:26:56", "23:59:60", "24:00:00", "09:26", "092656", "0926561", "09:2656", "09-26-56", "9:26:56"];
        let fractions = [
            "",
            ".",
            ".1",
            ".123",
            ".123456",
            ".1234567",
            ".123456000",
            ".123456789",
            ".1234560000000",
            ".123456000000000000",
            ".12x",
        ];
        let zones = [
            "", "Z", "z", "+02:00", "-08:00", "+0530", "-08", " +02:00", "  -0800", "+2", "+02:0", "+99:00", "+23:59",
            "UTC", "Zx", "x", "+02:00x", " ", "é",
        ];
        let mut checked = 0;
        for d in dates {
            for sep in seps {
                for t in times {
                    for f in fractions {
                        for z in zones {
                            let s = format!("{d}{sep}{t}{f}{z}");
                            assert_eq!(parse_timestamp_str(&s), with_arrow_cast(&s), "{s:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000);
        assert_eq!(parse_timestamp_str("2016-12-31T23:59:60Z"), Some((1_483_228_800_000_000, true)), "a leap second");
        assert_eq!(parse_timestamp_str("2024-01-31 092656"), Some((1_706_693_216_000_000, false)));
    }

    #[test]
    fn every_type_name_the_schema_lists_parses() {
        for name in TYPE_NAMES {
            let t: ColumnType = serde_json::from_value(serde_json::Value::String(name.into())).unwrap();
            assert_eq!(serde_json::from_str::<ColumnType>(&serde_json::to_string(&t).unwrap()).unwrap(), t);
        }
        assert!(serde_json::from_str::<ColumnType>("\"varchar\"").is_err());
    }

    #[test]
    fn classify_follows_the_ladder() {
        let k = |s: &str| classify(s.as_bytes()).unwrap();
        assert_eq!(k("TRUE"), Kind::Bool);
        assert_eq!(k("false"), Kind::Bool);
        assert_eq!(k("42"), Kind::Int);
        assert_eq!(k("-7"), Kind::Int);
        assert_eq!(k("9223372036854775807"), Kind::BigInt);
        assert_eq!(k("99999999999999999999"), Kind::Utf8, "overflowing ints stay text");
        assert_eq!(k("007"), Kind::Utf8, "leading zeros are kept");
        assert_eq!(k("0"), Kind::Int);
        assert_eq!(k("1.5"), Kind::Float);
        assert_eq!(k("-0.25e3"), Kind::Float);
        assert_eq!(k("NaN"), Kind::Utf8);
        assert_eq!(k("2026-03-04"), Kind::Date);
        assert_eq!(k("2026-02-30"), Kind::Utf8);
        assert_eq!(k("2026-03-04T12:34:56"), Kind::Timestamp);
        assert_eq!(k("2026-03-04 12:34:56.123456"), Kind::Timestamp);
        assert_eq!(k("2026-03-04T12:34:56.789Z"), Kind::TimestampUtc);
        assert_eq!(k("2026-03-04T12:34:56+02:00"), Kind::TimestampUtc);
        assert_eq!(k("2026-03-04T12:34:56.123456789"), Kind::Utf8, "nanoseconds would be truncated");
        assert_eq!(k("hello"), Kind::Utf8);
        assert_eq!(classify(b"\xff\xfe"), None);
    }

    #[test]
    fn join_widens_minimally() {
        use Kind::*;
        assert_eq!(Null.join(Int), Int);
        assert_eq!(Int.join(Float), Float);
        assert_eq!(Int.join(BigInt), BigInt);
        assert_eq!(BigInt.join(Float), Utf8);
        assert_eq!(Date.join(Timestamp), Timestamp);
        assert_eq!(Date.join(TimestampUtc), Utf8);
        assert_eq!(Timestamp.join(TimestampUtc), Utf8);
        assert_eq!(Bool.join(Int), Utf8);
    }

    #[test]
    fn a_value_a_type_rejects_always_widens_it() {
        // The guarantee the re-conversion relies on: if parse under T fails, join(T, classify(v)) != T.
        let values = [
            "true",
            "1",
            "-3",
            "1.5",
            "9007199254740993",
            "007",
            "2024-01-02",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05Z",
            "x",
            "1e5",
            "NaN",
        ];
        let kinds = [Kind::Bool, Kind::Int, Kind::BigInt, Kind::Float, Kind::Date, Kind::Timestamp, Kind::TimestampUtc];
        for t in kinds {
            for v in values {
                let accepted = match t {
                    Kind::Bool => parse_bool(v.as_bytes()).is_some(),
                    Kind::Int | Kind::BigInt => parse_int(v.as_bytes()).is_some(),
                    Kind::Float => parse_float(v.as_bytes()).is_some(),
                    Kind::Date => parse_date(v.as_bytes()).is_some(),
                    Kind::Timestamp => parse_timestamp_str(v).is_some_and(|(_, o)| !o),
                    Kind::TimestampUtc => parse_timestamp_str(v).is_some_and(|(_, o)| o),
                    _ => unreachable!(),
                };
                let c = classify(v.as_bytes()).unwrap();
                if !accepted {
                    assert_ne!(t.join(c), t, "{v:?} rejected by {t:?} but classified {c:?}");
                }
                if t.join(c) == t {
                    assert!(accepted, "{v:?} classified {c:?} within {t:?} but rejected");
                }
            }
        }
    }

    #[test]
    fn dates_and_timestamps_convert_exactly() {
        assert_eq!(parse_date(b"1970-01-01"), Some(0));
        assert_eq!(parse_date(b"2000-03-01"), Some(11017));
        assert_eq!(parse_timestamp_str("1970-01-01T00:00:01.5Z"), Some((1_500_000, true)));
        assert_eq!(parse_timestamp_str("1970-01-01T02:00:00+02:00"), Some((0, true)));
        assert_eq!(parse_timestamp_str("1970-01-02"), Some((86_400_000_000, false)));
    }

    #[test]
    fn names_are_unique_and_non_empty() {
        let n = unique_names(["a", "", "a", "a_2", "b"].map(String::from));
        assert_eq!(n, ["a", "column_2", "a_2", "a_2_2", "b"]);
    }
}
