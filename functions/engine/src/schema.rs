//! Column types, the inference lattice, and the value parsers shared by inference and decoding.
//!
//! The type ladder is null → boolean → int64 → float64 → date32 → timestamp → utf8.
//! Inference classifies each sampled value to its narrowest [`Kind`] and joins the kinds of a
//! column. Decoding parses with the same functions, so a value that a column's type rejects
//! always classifies outside that type: the join then strictly widens the column, and the
//! file is converted again. Nothing is nulled, rounded or truncated to make a value fit.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{Datelike, NaiveDate, Timelike, Utc};
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

    /// One string of [`TYPE_NAMES`]: serde's aliases are accepted on input, so the schema lists
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
    let dt = arrow_cast::parse::string_to_datetime(&Utc, s).ok()?;
    if dt.nanosecond() % 1000 != 0 {
        return None;
    }
    let tail = &b[11..];
    let has_offset = matches!(b[b.len() - 1], b'Z' | b'z') || tail.iter().any(|c| matches!(c, b'+' | b'-'));
    Some((dt.timestamp_micros(), has_offset))
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
