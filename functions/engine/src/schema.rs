//! Column types, the inference lattice, and the value parsers shared by inference and decoding.
//!
//! The type ladder is null → boolean → int64 → float64 → decimal → date32 → timestamp → utf8.
//! A float64 holds only the literals it gives back unchanged; other numbers are decimals of the
//! digits they were written with, and text beyond 38 digits. Inference classifies each sampled
//! value to its narrowest [`Kind`] and joins the kinds of a column; a decimal's digits come from
//! the join of its values' [`Shape`]s. Decoding parses with the same functions, so a value that
//! a column's type rejects always classifies (or, for a decimal, shapes) outside that type: the
//! join then strictly widens the column, and the file is converted again. Nothing is nulled,
//! rounded or truncated to make a value fit.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A column type, as named in an explicit schema and in reports.
///
/// It is written as its name: `"int64"`, `"timestamp_utc"`, `"decimal(12,2)"`. An explicit
/// schema may also use aliases (`int`, `double`, `string`…) and spaces after the decimal's comma.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Only nulls were seen; written as utf8.
    Null,
    /// `true` / `false`, any case.
    Boolean,
    /// 64-bit signed integer without leading zeros.
    Int64,
    /// 64-bit float: only literals that a float64 gives back unchanged, and the special values.
    Float64,
    /// Exact decimal of `precision` digits, `scale` of them after the point (Arrow
    /// `Decimal128`); `1 ≤ precision ≤ 38` and `scale ≤ precision`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `YYYY-MM-DD`.
    Date32,
    /// ISO 8601 date-time without an offset, microsecond precision.
    Timestamp,
    /// ISO 8601 date-time with an offset (`Z`, `+02:00`), stored as UTC microseconds.
    TimestampUtc,
    /// Text.
    Utf8,
}

/// Every name an explicit schema accepts for a type without parameters: the canonical names
/// and their aliases, each with its type.
const NAMED_TYPES: [(&str, ColumnType); 19] = [
    ("null", ColumnType::Null),
    ("boolean", ColumnType::Boolean),
    ("bool", ColumnType::Boolean),
    ("int64", ColumnType::Int64),
    ("int", ColumnType::Int64),
    ("integer", ColumnType::Int64),
    ("long", ColumnType::Int64),
    ("bigint", ColumnType::Int64),
    ("float64", ColumnType::Float64),
    ("float", ColumnType::Float64),
    ("double", ColumnType::Float64),
    ("date32", ColumnType::Date32),
    ("date", ColumnType::Date32),
    ("timestamp", ColumnType::Timestamp),
    ("timestamp_utc", ColumnType::TimestampUtc),
    ("timestamptz", ColumnType::TimestampUtc),
    ("utf8", ColumnType::Utf8),
    ("string", ColumnType::Utf8),
    ("text", ColumnType::Utf8),
];

/// Every name an explicit schema accepts for a type without parameters.
const TYPE_NAMES: [&str; 19] = {
    let mut names = [""; 19];
    let mut i = 0;
    while i < names.len() {
        names[i] = NAMED_TYPES[i].0;
        i += 1;
    }
    names
};

/// The pattern of a decimal type's name: `decimal(p,s)` with `1 ≤ p ≤ 38`, `s ≤ 38` (and
/// `s ≤ p`, which a pattern cannot say), spaces allowed after the comma.
const DECIMAL_PATTERN: &str = r"^decimal\(([1-9]|[12][0-9]|3[0-8]), *([0-9]|[12][0-9]|3[0-8])\)$";

/// Largest precision of a decimal column (Arrow `Decimal128`).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

impl schemars::JsonSchema for ColumnType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ColumnType".into()
    }

    /// One of the type names (serde's aliases are accepted on input, so the schema lists them
    /// too) or a decimal's `decimal(p,s)`.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A column type, as named in an explicit schema: one of the names, or decimal(p,s) with precision p from 1 to 38 and scale s from 0 to p",
            "type": "string",
            "anyOf": [
                { "enum": TYPE_NAMES },
                { "pattern": DECIMAL_PATTERN },
            ],
        })
    }
}

impl ColumnType {
    /// The least type that holds every value of a column of type `self` and of one of type
    /// `other`: the join of the inference lattice, for the schemas of two files of one table.
    /// An int64 column is taken to hold integers that a float64 holds exactly (int64 ⊔ float64
    /// is float64), and any int64 beside a decimal (19 integer digits); a float64 beside a
    /// decimal keeps the decimal's digits. A file whose values need more widens again when it is
    /// read with the join as its floor.
    pub fn join(self, other: ColumnType) -> ColumnType {
        use ColumnType::{Decimal, Int64};
        if let (Int64, d @ Decimal { .. }) | (d @ Decimal { .. }, Int64) = (self, other) {
            return Kind::of_explicit(d).shape().join(Shape { int_digits: 19, scale: 0 }).kind().column_type();
        }
        Kind::of_type(self).join(Kind::of_type(other)).column_type()
    }

    /// The Arrow type this column is written as.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Null | Self::Utf8 => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
            Self::Date32 => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

impl std::fmt::Display for ColumnType {
    /// The canonical name: `int64`, `decimal(12,2)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            named => {
                let name = NAMED_TYPES.iter().find(|(_, t)| t == named).map_or("utf8", |(n, _)| n);
                f.write_str(name)
            }
        }
    }
}

impl std::str::FromStr for ColumnType {
    type Err = String;

    /// A canonical name, an alias, or `decimal(p,s)`.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((_, t)) = NAMED_TYPES.iter().find(|(n, _)| *n == s) {
            return Ok(*t);
        }
        if let Some(args) = s.strip_prefix("decimal(").and_then(|a| a.strip_suffix(')')) {
            // One or two digits without a leading zero, as the schema's pattern says.
            let number = |d: &str| -> Option<u8> {
                let ok = (matches!(d.len(), 1 | 2) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
                    || d == "0";
                ok.then(|| d.parse().ok()).flatten()
            };
            let parsed = args.split_once(',').and_then(|(p, s)| Some((number(p)?, number(s.trim_start_matches(' '))?)));
            return match parsed {
                Some((precision, scale)) if (1..=MAX_DECIMAL_PRECISION).contains(&precision) && scale <= precision => {
                    Ok(Self::Decimal { precision, scale })
                }
                _ => Err(format!(
                    "invalid decimal type {s:?}: expected decimal(p,s) with precision p from 1 to \
                     {MAX_DECIMAL_PRECISION} and scale s from 0 to p"
                )),
            };
        }
        Err(format!("unknown column type {s:?}: expected one of {}, or decimal(p,s)", TYPE_NAMES.join(", ")))
    }
}

impl Serialize for ColumnType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A point of the inference lattice. `BigInt` is an int64 beyond ±2^53, which a float64
/// cannot hold exactly, so it never joins with floats into float64.
///
/// The numeric kinds join into `Decimal` when no narrower one holds every value. The digits a
/// decimal needs depend on the values, not only on their kinds: the kinds give a lower bound
/// ([`Kind::shape`]), and the decoder replaces a column's final decimal kind with the
/// [`Shape::kind`] of the join of its values' [`number_shape`]s.
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
    /// Float: a literal its float64 gives back unchanged, or a special value (`NaN`, `inf`).
    Float,
    /// Exact decimal; `1 ≤ precision ≤ 38` and `scale ≤ precision`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
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
            (Decimal { .. }, Int | BigInt | Float | Decimal { .. })
            | (Int | BigInt | Float, Decimal { .. })
            | (BigInt, Float)
            | (Float, BigInt) => self.shape().join(other.shape()).kind(),
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Utf8,
        }
    }

    /// The least shape that every value of a numeric kind has: a decimal's own, 16 integer
    /// digits for `BigInt` (beyond 2^53), and the empty shape for any other kind.
    pub fn shape(self) -> Shape {
        match self {
            Kind::Decimal { precision, scale } => {
                Shape { int_digits: u32::from(precision.saturating_sub(scale)), scale: u32::from(scale) }
            }
            Kind::BigInt => Shape { int_digits: 16, scale: 0 },
            _ => Shape::default(),
        }
    }

    /// The column type of this kind.
    pub fn column_type(self) -> ColumnType {
        match self {
            Kind::Null => ColumnType::Null,
            Kind::Bool => ColumnType::Boolean,
            Kind::Int | Kind::BigInt => ColumnType::Int64,
            Kind::Float => ColumnType::Float64,
            Kind::Decimal { precision, scale } => ColumnType::Decimal { precision, scale },
            Kind::Date => ColumnType::Date32,
            Kind::Timestamp => ColumnType::Timestamp,
            Kind::TimestampUtc => ColumnType::TimestampUtc,
            Kind::Utf8 => ColumnType::Utf8,
        }
    }

    /// The narrowest kind of a column of type `t`, as a floor: an int64 is taken to hold
    /// integers that a float64 holds exactly, and a null column has no value yet.
    pub fn of_type(t: ColumnType) -> Kind {
        match t {
            ColumnType::Int64 => Kind::Int,
            ColumnType::Null => Kind::Null,
            t => Kind::of_explicit(t),
        }
    }

    /// The widest kind that a column of an explicit type accepts.
    pub fn of_explicit(t: ColumnType) -> Kind {
        match t {
            ColumnType::Null | ColumnType::Utf8 => Kind::Utf8,
            ColumnType::Boolean => Kind::Bool,
            ColumnType::Int64 => Kind::BigInt,
            ColumnType::Float64 => Kind::Float,
            ColumnType::Decimal { precision, scale } => Kind::Decimal { precision, scale },
            ColumnType::Date32 => Kind::Date,
            ColumnType::Timestamp => Kind::Timestamp,
            ColumnType::TimestampUtc => Kind::TimestampUtc,
        }
    }
}

/// The digits a decimal needs to hold a number exactly: integer digits of its value, and
/// digits after the point as written (trailing zeros included, shifted by any exponent).
/// `1.50` is (1, 2), `1.5e3` is (4, 0), `1.5e-3` is (0, 4), `0` is (0, 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Digits before the point, without leading zeros.
    pub int_digits: u32,
    /// Digits after the point.
    pub scale: u32,
}

impl Shape {
    /// The shape of values no decimal holds: the float specials `NaN` and `inf`.
    pub const UNBOUNDED: Shape = Shape { int_digits: u32::MAX, scale: 0 };

    /// The least shape that holds both.
    #[inline]
    pub fn join(self, other: Shape) -> Shape {
        Shape { int_digits: self.int_digits.max(other.int_digits), scale: self.scale.max(other.scale) }
    }

    /// The decimal kind of this shape (precision at least 1), or `Utf8` beyond 38 digits.
    pub fn kind(self) -> Kind {
        let precision = u64::from(self.int_digits) + u64::from(self.scale);
        if precision > u64::from(MAX_DECIMAL_PRECISION) {
            return Kind::Utf8;
        }
        Kind::Decimal { precision: precision.max(1) as u8, scale: self.scale as u8 }
    }

    /// Whether a decimal of this shape holds every number of shape `value`.
    #[inline]
    pub fn holds(self, value: Shape) -> bool {
        value.int_digits <= self.int_digits && value.scale <= self.scale
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
    if let Some(n) = Numeral::scan(v) {
        if n.is_integer() {
            // Leading zeros keep the digits as text (`007` is an identifier, not 7); an integer
            // beyond int64 needs a decimal.
            return Some(if n.has_leading_zero() { Kind::Utf8 } else { n.shape().kind() });
        }
        return Some(if n.float().is_some() { Kind::Float } else { n.shape().kind() });
    }
    if parse_float_special(v).is_some() {
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

/// An int64 written without leading zeros (`007` stays text: it is an identifier, not 7).
#[inline]
pub fn parse_int(v: &[u8]) -> Option<i64> {
    let digits = v.strip_prefix(b"-").or_else(|| v.strip_prefix(b"+")).unwrap_or(v);
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    lexical_core::parse::<i64>(v).ok()
}

/// A float64 that gives back the literal's number (see [`parse_float_shaped`]).
#[inline]
pub fn parse_float(v: &[u8]) -> Option<f64> {
    parse_float_shaped(v).map(|(f, _)| f)
}

/// A float64 and the literal's [`Shape`], from one scan: a literal whose float64's shortest
/// representation has the same number (so `0.1`, `1.50`, `+1E5` and `0.30000000000000004` are
/// floats; `82544000000000707.52`, `1e400` and `1e-400` are not), or a special value (`NaN`,
/// `inf`, `+inf`, `-inf`, `Infinity`, `-Infinity`, any case, of shape [`Shape::UNBOUNDED`]). An
/// integer literal is a float only within ±2^53 and without leading zeros, where int64 holds it
/// too.
#[inline]
pub fn parse_float_shaped(v: &[u8]) -> Option<(f64, Shape)> {
    let Some(n) = Numeral::scan(v) else {
        return parse_float_special(v).map(|f| (f, Shape::UNBOUNDED));
    };
    let f =
        if n.is_integer() { parse_int(v).filter(|i| (-F64_EXACT..=F64_EXACT).contains(i))? as f64 } else { n.float()? };
    Some((f, n.shape()))
}

/// `NaN`, `inf`, `+inf`, `-inf`, `infinity`, `+infinity`, `-infinity`, in any case.
fn parse_float_special(v: &[u8]) -> Option<f64> {
    if v.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    let (negative, rest) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, v),
    };
    if !(rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity")) {
        return None;
    }
    Some(if negative { f64::NEG_INFINITY } else { f64::INFINITY })
}

/// The [`Shape`] of a numeric literal (integers too), [`Shape::UNBOUNDED`] for the float
/// specials, `None` for anything else.
pub fn number_shape(v: &[u8]) -> Option<Shape> {
    match Numeral::scan(v) {
        Some(n) => Some(n.shape()),
        None => parse_float_special(v).map(|_| Shape::UNBOUNDED),
    }
}

/// The exact value of a numeric literal as a decimal of `precision` digits, `scale` of them after
/// the point, unscaled (`1.5` at scale 2 is 150); `None` when the literal has more digits after
/// the point than `scale` or more before it than `precision - scale`, or is not a numeric
/// literal. An integer literal with leading zeros is text, as for int64.
#[inline]
pub fn parse_decimal(v: &[u8], precision: u8, scale: u8) -> Option<i128> {
    parse_decimal_shaped(v, precision, scale).map(|(d, _)| d)
}

/// [`parse_decimal`] and the literal's [`Shape`], from one scan.
pub fn parse_decimal_shaped(v: &[u8], precision: u8, scale: u8) -> Option<(i128, Shape)> {
    let n = Numeral::scan(v)?;
    if n.is_integer() && n.has_leading_zero() {
        return None;
    }
    let shape = n.shape();
    let column = Shape { int_digits: u32::from(precision.saturating_sub(scale)), scale: u32::from(scale) };
    if precision > MAX_DECIMAL_PRECISION || !column.holds(shape) {
        return None;
    }
    let Some(first) = n.first_significant else {
        // Zero, however written (`0e50` too).
        return Some((0, shape));
    };
    // The digits from the first significant one hold at most `precision` digits: the shape
    // check bounds the value, so no step overflows.
    let mut unscaled: i128 = 0;
    for d in n.digits().skip(first) {
        unscaled = unscaled.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    // The literal is `unscaled × 10^-written_scale`; the column's scale is at least that.
    let written_scale = n.frac_len as i64 - n.exp;
    let shift = u32::try_from(i64::from(scale) - written_scale).ok()?;
    unscaled = unscaled.checked_mul(10i128.checked_pow(shift)?)?;
    Some((if n.negative { -unscaled } else { unscaled }, shape))
}

/// One scan of a numeric literal `[+-]digits[.digits][(e|E)[+-]digits]`, with at least one
/// digit before the exponent.
#[derive(Debug)]
struct Numeral<'a> {
    /// The literal.
    text: &'a [u8],
    /// The mantissa: its digits and any point.
    mantissa: &'a [u8],
    negative: bool,
    /// Digits before the point.
    int_len: usize,
    /// Digits after the point.
    frac_len: usize,
    /// Whether an exponent or a point was written.
    decorated: bool,
    /// The exponent, saturated far beyond any float's or decimal's.
    exp: i64,
    /// Index among the mantissa's digits of the first and last that are not zero.
    first_significant: Option<usize>,
    last_significant: usize,
    /// The digits from the first significant one, up to 19 of them, as an integer.
    leading: u64,
    /// How many digits `leading` holds.
    leading_len: u32,
}

/// Exponents are saturated here: beyond it no float or decimal holds the number anyway.
const MAX_EXP: i64 = 1 << 40;

impl<'a> Numeral<'a> {
    #[inline]
    fn scan(text: &'a [u8]) -> Option<Self> {
        let (negative, body) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, text),
        };
        let run = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
        let int_len = run(body);
        let point = body.get(int_len) == Some(&b'.');
        let frac_start = int_len + usize::from(point);
        let frac_len = run(&body[frac_start..]);
        let i = frac_start + frac_len;
        if int_len + frac_len == 0 {
            return None;
        }
        let (int, frac) = (&body[..int_len], &body[frac_start..i]);
        let first_significant = match int.iter().position(|&b| b != b'0') {
            Some(p) => Some(p),
            None => frac.iter().position(|&b| b != b'0').map(|p| int_len + p),
        };
        let last_significant = match frac.iter().rposition(|&b| b != b'0') {
            Some(p) => int_len + p,
            None => int.iter().rposition(|&b| b != b'0').unwrap_or(0),
        };
        let mut leading = 0u64;
        let mut leading_len = 0;
        if let Some(first) = first_significant {
            let (a, b) = if first < int_len { (&int[first..], frac) } else { (&frac[first - int_len..], &[][..]) };
            for &d in a.iter().chain(b).take(19) {
                leading = leading * 10 + u64::from(d - b'0');
                leading_len += 1;
            }
        }
        let mantissa = &body[..i];
        let mut exp = 0i64;
        let mut decorated = point;
        if let Some(b'e' | b'E') = body.get(i) {
            decorated = true;
            let e = &body[i + 1..];
            let (negative_exp, e) = match e.split_first() {
                Some((b'-', rest)) => (true, rest),
                Some((b'+', rest)) => (false, rest),
                _ => (false, e),
            };
            if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
                return None;
            }
            for d in e {
                exp = (exp * 10 + i64::from(d - b'0')).min(MAX_EXP);
            }
            if negative_exp {
                exp = -exp;
            }
        } else if i != body.len() {
            return None;
        }
        Some(Self {
            text,
            mantissa,
            negative,
            int_len,
            frac_len,
            decorated,
            exp,
            first_significant,
            last_significant,
            leading,
            leading_len,
        })
    }

    /// Whether it is written as an integer: no point and no exponent.
    fn is_integer(&self) -> bool {
        !self.decorated
    }

    /// Whether its integer part has a leading zero (`007`, but not `0` or `0.5`).
    fn has_leading_zero(&self) -> bool {
        self.int_len > 1 && self.mantissa[0] == b'0'
    }

    /// The mantissa's digits.
    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        self.mantissa.iter().copied().filter(u8::is_ascii_digit)
    }

    /// Significant digits: from the first to the last that are not zero.
    fn significant(&self) -> usize {
        self.first_significant.map_or(0, |f| self.last_significant - f + 1)
    }

    /// `E` of the value written as `0.d₁d₂… × 10^E` with `d₁` not zero (0 for zero).
    fn magnitude(&self) -> i64 {
        self.first_significant.map_or(0, |f| self.int_len as i64 - f as i64 + self.exp)
    }

    fn shape(&self) -> Shape {
        let scale = (self.frac_len as i64 - self.exp).clamp(0, i64::from(u32::MAX));
        Shape { int_digits: self.magnitude().clamp(0, i64::from(u32::MAX)) as u32, scale: scale as u32 }
    }

    /// The significant digits as an integer (`0.0125` gives 125), when there are at most 17,
    /// as in any float64's shortest representation.
    fn significand(&self) -> Option<u64> {
        let n = self.significant() as u32;
        (n <= 17).then(|| self.leading / POWERS_OF_TEN_U64[(self.leading_len - n) as usize])
    }

    /// The float64 of the literal when its shortest representation is the same number.
    #[inline]
    fn float(&self) -> Option<f64> {
        let sign = if self.negative { -1.0 } else { 1.0 };
        if self.first_significant.is_none() {
            return Some(sign * 0.0);
        }
        // Up to 15 significant digits in the normal range [1e-307, 1e308), distinct literals
        // give distinct floats, so the float's shortest representation is the literal itself.
        if self.significant() <= 15 && (-306..=308).contains(&self.magnitude()) {
            let exp10 = self.magnitude() - self.significant() as i64;
            let digits = self.significand()? as f64;
            // Clinger's fast path: both factors exact, so one correctly rounded operation.
            return Some(match usize::try_from(exp10.unsigned_abs()).ok().and_then(|k| POWERS_OF_TEN.get(k)) {
                Some(p) if exp10 >= 0 => sign * digits * p,
                Some(p) => sign * digits / p,
                None => lexical_core::parse(self.text).ok()?,
            });
        }
        let f: f64 = lexical_core::parse(self.text).ok()?;
        if !f.is_finite() || f == 0.0 {
            return None;
        }
        let digits = self.significand()?;
        let mut buffer = [0u8; lexical_core::BUFFER_SIZE];
        let shortest = Numeral::scan(lexical_core::write(f, &mut buffer))?;
        if shortest.significand() == Some(digits) && shortest.magnitude() == self.magnitude() {
            return Some(f);
        }
        // When two shortest representations are equally near the float (903873711129389.25
        // lies between ...389.2 and ...389.3), formatters break the tie differently (lexical-core
        // to the even digit, Rust upwards): either one is the float's.
        let exp10 = self.magnitude() - self.significant() as i64;
        let same_length = shortest.significant() == self.significant();
        let tie = [digits * 10 - 5, digits * 10 + 5].into_iter().any(|n| exact_float(n, exp10 - 1) == Some(f.abs()));
        (same_length && tie).then_some(f)
    }
}

/// The powers of ten a float64 holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The powers of ten a u64 holds.
const POWERS_OF_TEN_U64: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < p.len() {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// `n × 10^exp` for an odd `n`, when a float64 holds it exactly.
fn exact_float(n: u64, exp: i64) -> Option<f64> {
    // n × 10^exp = odd × 2^exp, where odd = n × 5^exp must fit the 53-bit significand.
    let odd = if exp >= 0 {
        u128::from(n) * 5u128.checked_pow(u32::try_from(exp).ok().filter(|e| *e <= 22)?)?
    } else {
        let fives = 5u64.checked_pow(u32::try_from(-exp).ok().filter(|e| *e <= 27)?)?;
        if !n.is_multiple_of(fives) {
            return None;
        }
        u128::from(n / fives)
    };
    (odd < 1 << 53).then(|| odd as f64 * 2f64.powi(exp as i32))
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
/// Rejects values with sub-microsecond digits other than zeros, which microseconds would
/// truncate.
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
    let tail = &b[11..];
    let has_offset = matches!(b[b.len() - 1], b'Z' | b'z') || tail.iter().any(|c| matches!(c, b'+' | b'-'));
    Some((dt.timestamp_micros(), has_offset))
}

/// A date-time of at least 11 bytes: `YYYY-MM-DD`, `T`, `t` or a space, then `HH:MM:SS` with an
/// optional fraction, `HHMMSS`, or `HH:MM`, and then nothing (UTC), `Z`/`z`, or an offset
/// `±HH:MM`, `±HHMM` or `±HH` after optional whitespace. A second of 60 is a leap second. A
/// fraction may have any number of digits, but those past the sixth must be zeros: a
/// microsecond timestamp would truncate any other.
///
/// These are the forms of arrow-cast's `string_to_datetime` (a test holds the two to the same
/// answers) with two differences: arrow-cast does not read `HH:MM`, and it truncates a fraction
/// to nanoseconds (and ignores its digits past the 32nd byte). arrow-cast itself would bring its
/// casting kernels into the build (a minute of a cold build) for this one function.
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
    let hh_mm = is(13, b':') && [11, 12, 14, 15].into_iter().all(digit);
    let (time, end) = if hh_mm && is(16, b':') && digit(17) && digit(18) {
        let (h, m, sec) = (two(11), two(14), two(17));
        if is(19, b'.') {
            let n = b[20..].iter().take_while(|d| d.is_ascii_digit()).count();
            if n == 0 || b[20 + n.min(6)..20 + n].iter().any(|&d| d != b'0') {
                return None;
            }
            let micro = b[20..20 + n.min(6)].iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
            (time(h, m, sec, micro * 10u32.pow(6 - n.min(6) as u32) * 1000)?, 20 + n)
        } else {
            (time(h, m, sec, 0)?, 19)
        }
    } else if hh_mm && !matches!(b.get(16), Some(b':' | b'.' | b'0'..=b'9')) {
        (time(two(11), two(14), 0, 0)?, 16)
    } else if (11..17).all(digit) && !digit(17) && !digit(18) {
        (time(two(11), two(13), two(15), 0)?, 17)
    } else {
        return None;
    };
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
    use chrono::Timelike;

    use super::*;

    /// What the timestamp parser answers, from arrow-cast's `string_to_datetime`: `HH:MM`, which
    /// arrow-cast does not read, is read as `HH:MM:00`, and a fraction with digits other than
    /// zeros past the sixth, which arrow-cast truncates, is rejected.
    fn with_arrow_cast(s: &str) -> Option<(i64, bool)> {
        let b = s.as_bytes();
        if b.len() < 16 || !matches!(b[10], b'T' | b't' | b' ') {
            return parse_timestamp_str(s);
        }
        let hh_mm = b[13] == b':' && [11, 12, 14, 15].iter().all(|&i| b[i].is_ascii_digit());
        let read = if hh_mm && !matches!(b.get(16), Some(b':' | b'.' | b'0'..=b'9')) {
            format!("{}:00{}", &s[..16], &s[16..])
        } else {
            s.to_owned()
        };
        let dt = arrow_cast::parse::string_to_datetime(&Utc, &read).ok()?;
        if let Some(fraction) = read.get(20..).filter(|_| read.as_bytes()[19] == b'.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit);
            if digits.skip(6).any(|d| d != b'0') {
                return None;
            }
        }
        assert_eq!(dt.nanosecond() % 1000, 0, "{s:?}: arrow-cast read sub-microseconds from zeros");
        let has_offset = matches!(b[b.len() - 1], b'Z' | b'z') || b[11..].iter().any(|c| matches!(c, b'+' | b'-'));
        Some((dt.timestamp_micros(), has_offset))
    }

    #[test]
    fn timestamps_parse_as_arrow_cast_parses_them() {
        let dates = ["2024-02-29", "1999-12-31", "2023-02-29", "0001-01-01", "2024-13-01", "2024-1-01"];
        let seps = ["T", "t", " ", "_"];
        let times = [
            "09:26:56", "23:59:60", "24:00:00", "09:26", "23:59", "24:00", "09:60", "09:2", "092656", "0926561",
            "09:2656", "09-26-56", "9:26:56",
        ];
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
            ".1234560001",
            ".123456000000000000",
            ".1234560000000000000000001",
            ".12345600000000000000000000000",
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
    fn timestamps_without_seconds_and_long_fractions() {
        let t = |s: &str| parse_timestamp_str(s);
        assert_eq!(t("2014-04-12T19:30"), Some((1_397_331_000_000_000, false)));
        assert_eq!(t("2014-04-12 19:30"), Some((1_397_331_000_000_000, false)));
        assert_eq!(t("2014-04-12T19:30Z"), Some((1_397_331_000_000_000, true)));
        assert_eq!(t("2014-04-12T21:30+02:00"), Some((1_397_331_000_000_000, true)));
        assert_eq!(t("2014-04-12T19:30:00"), t("2014-04-12T19:30"));
        assert_eq!(t("2014-04-12T19:3"), None);
        assert_eq!(t("2014-04-12T19:30.5"), None, "a fraction needs seconds");
        assert_eq!(t("2014-04-12T19:30:"), None);
        assert_eq!(t("1970-01-01T00:00:00.123456000000000000000000000000000"), Some((123_456, false)));
        assert_eq!(t("1970-01-01T00:00:00.123456000000000000000000000000001"), None, "never truncated");
        assert_eq!(t("1970-01-01T00:00:00.1234567"), None);
        let k = |s: &str| classify(s.as_bytes()).unwrap();
        assert_eq!(k("2014-04-12T19:30"), Kind::Timestamp);
        assert_eq!(k("2014-04-12 19:30Z"), Kind::TimestampUtc);
        assert_eq!(k("2014-04-12 19:30:00.1234560000001"), Kind::Utf8);
    }

    #[test]
    fn every_type_name_the_schema_lists_parses() {
        for name in TYPE_NAMES {
            let t: ColumnType = serde_json::from_value(serde_json::Value::String(name.into())).unwrap();
            assert_eq!(serde_json::from_str::<ColumnType>(&serde_json::to_string(&t).unwrap()).unwrap(), t);
        }
        assert_eq!(serde_json::to_string(&ColumnType::TimestampUtc).unwrap(), r#""timestamp_utc""#);
        assert!(serde_json::from_str::<ColumnType>("\"varchar\"").is_err());
        assert!(serde_json::from_str::<ColumnType>("3").is_err());
    }

    #[test]
    fn decimal_type_names() {
        let parse = |s: &str| serde_json::from_value::<ColumnType>(serde_json::Value::String(s.into()));
        let d = |precision, scale| ColumnType::Decimal { precision, scale };
        assert_eq!(parse("decimal(12,2)").unwrap(), d(12, 2));
        assert_eq!(parse("decimal(12, 2)").unwrap(), d(12, 2));
        assert_eq!(parse("decimal(38,38)").unwrap(), d(38, 38));
        assert_eq!(parse("decimal(1,0)").unwrap(), d(1, 0));
        assert_eq!(serde_json::to_value(d(12, 2)).unwrap(), "decimal(12,2)");
        assert_eq!(d(12, 2).data_type(), DataType::Decimal128(12, 2));
        for bad in [
            "decimal(0,0)",
            "decimal(39,0)",
            "decimal(5,6)",
            "decimal(05,2)",
            "decimal(5,02)",
            "decimal(5 ,2)",
            "decimal( 5,2)",
            "decimal(5,2",
            "decimal(5)",
            "decimal(5,-1)",
            "decimal(5,2) ",
            "Decimal(5,2)",
            "decimal(123,2)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let schema = serde_json::to_value(schemars::schema_for!(ColumnType)).unwrap();
        assert_eq!(schema["anyOf"][1]["pattern"], DECIMAL_PATTERN);
        assert_eq!(Kind::of_explicit(d(12, 2)), Kind::Decimal { precision: 12, scale: 2 });
        assert_eq!(Kind::of_explicit(d(12, 2)).column_type(), d(12, 2));
    }

    #[test]
    fn classify_follows_the_ladder() {
        let k = |s: &str| classify(s.as_bytes()).unwrap();
        let dec = |precision, scale| Kind::Decimal { precision, scale };
        assert_eq!(k("TRUE"), Kind::Bool);
        assert_eq!(k("false"), Kind::Bool);
        assert_eq!(k("42"), Kind::Int);
        assert_eq!(k("-7"), Kind::Int);
        assert_eq!(k("9223372036854775807"), Kind::BigInt);
        assert_eq!(k("99999999999999999999"), dec(20, 0), "an integer beyond int64 is a decimal");
        assert_eq!(k(&"9".repeat(39)), Kind::Utf8, "beyond 38 digits it stays text");
        assert_eq!(k("007"), Kind::Utf8, "leading zeros are kept");
        assert_eq!(k("-007"), Kind::Utf8);
        assert_eq!(k("0"), Kind::Int);
        assert_eq!(k("1.5"), Kind::Float);
        assert_eq!(k("-0.25e3"), Kind::Float);
        assert_eq!(k("82544000000000707.52"), dec(19, 2));
        assert_eq!(k("1.5e3"), Kind::Float);
        assert_eq!(k("1e400"), Kind::Utf8, "401 digits");
        assert_eq!(k("1e-400"), Kind::Utf8);
        assert_eq!(k("1e-30"), Kind::Float);
        assert_eq!(k("1.00000000000000000001"), dec(21, 20));
        for special in ["NaN", "nan", "inf", "-inf", "+inf", "Infinity", "-Infinity", "INFINITY", "-iNf"] {
            assert_eq!(k(special), Kind::Float, "{special}");
        }
        for text in ["-NaN", "in", "infinit", "nan1", "1.2.3", "1e", "1e+", ".", "-", "+", "e5", "1,5", " 1", "0x1"] {
            assert_eq!(k(text), Kind::Utf8, "{text}");
        }
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
    fn floats_round_trip_or_are_not_floats() {
        let f = |s: &str| parse_float(s.as_bytes());
        assert_eq!(f("0.1"), Some(0.1));
        assert_eq!(f("1.50"), Some(1.5), "trailing zeros");
        assert_eq!(f("+1E5"), Some(1e5), "a plus sign and a capital exponent");
        assert_eq!(f("1e+05"), Some(1e5));
        assert_eq!(f("0.30000000000000004"), Some(0.1 + 0.2), "17 digits that round-trip");
        assert_eq!(f("0.30000000000000005"), None, "the same float, which gives back ...04");
        assert_eq!(f("1.2345678901234567"), Some(1.234_567_890_123_456_7), "17 digits that round-trip");
        assert_eq!(f("1.2345678901234568"), None, "17 digits; the float gives back ...67");
        assert_eq!(f("1.0000000000000001"), None, "17 digits; the float gives back 1");
        assert_eq!(f("12345678901234567"), None, "an integer beyond 2^53");
        assert_eq!(f("12345678901234567.0"), None, "its float gives back ...68");
        assert_eq!(f("903873711129389.2"), Some(903_873_711_129_389.0 + 0.25), "a tie: the float is ...389.25");
        assert_eq!(f("903873711129389.3"), Some(903_873_711_129_389.0 + 0.25), "a tie: the float is ...389.25");
        assert_eq!(f("-903873711129389.2"), Some(-(903_873_711_129_389.0 + 0.25)), "a tie, negative");
        assert_eq!(f("-1717483300691121.8"), Some(-(1_717_483_300_691_121.0 + 0.75)), "a tie that Rust prints so");
        assert_eq!(f("903873711129389.25"), None, "17 digits where 16 give the float back");
        assert_eq!(f("9007199254740993.0"), None, "2^53 + 1");
        assert_eq!(f("82544000000000707.52"), None);
        assert_eq!(f("1e400"), None, "overflow");
        assert_eq!(f("-1e400"), None);
        assert_eq!(f("1e-400"), None, "underflow");
        assert_eq!(f("4.9e-324"), None, "the least subnormal gives back 5e-324");
        assert_eq!(f("5e-324"), Some(5e-324));
        assert_eq!(f("2.2250738585072014e-308"), Some(f64::MIN_POSITIVE));
        assert_eq!(f("1.7976931348623157e308"), Some(f64::MAX));
        assert_eq!(f("1.7976931348623158e308"), None, "the same float, which gives back ...57");
        assert_eq!(f("1.79769313486232e308"), None, "15 digits beyond the largest float");
        assert_eq!(f("1e308"), Some(1e308));
        assert_eq!(f("1e-307"), Some(1e-307));
        assert_eq!(f("1e23"), Some(1e23));
        assert_eq!(f("123456789012345.6"), Some(123_456_789_012_345.6), "16 digits that round-trip");
        assert_eq!(f("0.000000000000000000000000000000000000000000000001"), Some(1e-48));
        assert_eq!(f("100000000000000000000000.0"), Some(1e23));
        assert_eq!(f("0e999999999999999999999"), Some(0.0));
        assert_eq!(f("-0.0").map(f64::is_sign_negative), Some(true));
        assert_eq!(f(".5"), Some(0.5));
        assert_eq!(f("5."), Some(5.0));
        assert_eq!(f("007.5"), Some(7.5));
        assert_eq!(f("9007199254740992"), Some(9_007_199_254_740_992.0));
        assert_eq!(f("9007199254740994"), None, "an integer beyond 2^53 is an int64");
        assert_eq!(f("007"), None);
        assert!(f("NaN").unwrap().is_nan());
        assert_eq!(f("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(f("+inf"), Some(f64::INFINITY));
        assert_eq!(f("x"), None);
    }

    /// A literal's number as (digits without leading or trailing zeros, exponent of the last).
    fn number(s: &str) -> (String, i64) {
        let s = s.trim_start_matches(['+', '-']);
        let (m, e) = s.split_once(['e', 'E']).unwrap_or((s, "0"));
        let (i, f) = m.split_once('.').unwrap_or((m, ""));
        let digits = format!("{i}{f}");
        let digits = digits.trim_start_matches('0');
        let trimmed = digits.trim_end_matches('0');
        let exp = e.parse::<i64>().unwrap() - f.len() as i64 + (digits.len() - trimmed.len()) as i64;
        if trimmed.is_empty() { (String::new(), 0) } else { (trimmed.to_owned(), exp) }
    }

    #[test]
    fn floats_agree_with_the_standard_librarys_shortest_formatting() {
        // Rust formats a float as the shortest representation that reads back as it.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let (mut floats, mut ties) = (0, 0);
        for _ in 0..100_000 {
            let digits: String = (0..1 + next(20)).map(|_| char::from(b'0' + next(10) as u8)).collect();
            let point = next(digits.len() as u64 + 1) as usize;
            let exp = if next(3) == 0 { String::new() } else { format!("e{}", next(700) as i64 - 350) };
            let sign = ["", "-", "+"][next(3) as usize];
            let literal = format!("{sign}{}.{}{exp}", &digits[..point], &digits[point..]);
            let expected =
                literal.parse::<f64>().ok().filter(|f| f.is_finite() && number(&format!("{f:e}")) == number(&literal));
            let got = parse_float(literal.as_bytes());
            if let (None, Some(f)) = (expected, got) {
                // Only a tie: the float lies exactly between the literal and its neighbour,
                // and Rust printed the neighbour.
                let (digits, _) = number(&literal);
                let (exact, _) = number(&format!("{f:.1100e}"));
                assert_eq!(&exact[..digits.len() - 1], &digits[..digits.len() - 1], "{literal}");
                assert_eq!(exact.len(), digits.len() + 1, "{literal}: {exact}");
                assert!(exact.ends_with('5'), "{literal}: {exact}");
                ties += 1;
            } else {
                assert_eq!(got, expected, "{literal}");
            }
            floats += usize::from(got.is_some());
        }
        assert!(floats > 20_000, "{floats} floats");
        assert!(ties < 100, "{ties} ties");
    }

    #[test]
    fn shapes_count_digits_as_written() {
        let s = |v: &str| number_shape(v.as_bytes()).map(|s| (s.int_digits, s.scale));
        assert_eq!(s("1.50"), Some((1, 2)));
        assert_eq!(s("1.5e3"), Some((4, 0)));
        assert_eq!(s("1.5000e3"), Some((4, 1)));
        assert_eq!(s("1.5e-3"), Some((0, 4)));
        assert_eq!(s("0.05e3"), Some((2, 0)));
        assert_eq!(s("100e-2"), Some((1, 2)));
        assert_eq!(s("-123.45"), Some((3, 2)));
        assert_eq!(s("0"), Some((0, 0)));
        assert_eq!(s("0.000"), Some((0, 3)));
        assert_eq!(s("007"), Some((1, 0)));
        assert_eq!(s("82544000000000707.52"), Some((17, 2)));
        assert_eq!(s("1e400"), Some((401, 0)));
        assert_eq!(s("1e99999999999999999999").map(|(i, _)| i > 38), Some(true));
        assert_eq!(number_shape(b"NaN"), Some(Shape::UNBOUNDED));
        assert_eq!(number_shape(b"-inf"), Some(Shape::UNBOUNDED));
        assert_eq!(number_shape(b"2024-01-01"), None);
        assert_eq!(number_shape(b"x"), None);
        assert_eq!(Shape::default().kind(), Kind::Decimal { precision: 1, scale: 0 });
        assert_eq!(Shape { int_digits: 3, scale: 2 }.kind(), Kind::Decimal { precision: 5, scale: 2 });
        assert_eq!(Shape { int_digits: 0, scale: 38 }.kind(), Kind::Decimal { precision: 38, scale: 38 });
        assert_eq!(Shape { int_digits: 1, scale: 38 }.kind(), Kind::Utf8);
        assert_eq!(Shape::UNBOUNDED.join(Shape { int_digits: 1, scale: 38 }).kind(), Kind::Utf8);
        let (_, shape) = parse_float_shaped(b"-12.250").unwrap();
        assert_eq!(shape, Shape { int_digits: 2, scale: 3 });
    }

    #[test]
    fn decimals_parse_exactly() {
        let d = |v: &str, p, s| parse_decimal(v.as_bytes(), p, s);
        assert_eq!(d("82544000000000707.52", 19, 2), Some(8_254_400_000_000_070_752));
        assert_eq!(d("-82544000000000707.52", 19, 2), Some(-8_254_400_000_000_070_752));
        assert_eq!(d("1.5", 5, 2), Some(150));
        assert_eq!(d("+1.5", 5, 2), Some(150));
        assert_eq!(d("1.50", 5, 2), Some(150));
        assert_eq!(d("1.500", 5, 2), None, "three digits after the point, as written");
        assert_eq!(d("123", 5, 2), Some(12300));
        assert_eq!(d("1234", 5, 2), None, "four integer digits");
        assert_eq!(d("999.99", 5, 2), Some(99999));
        assert_eq!(d("1.5e3", 6, 2), Some(150_000));
        assert_eq!(d("1.5e-3", 6, 4), Some(15));
        assert_eq!(d("1.5e-3", 6, 3), None);
        assert_eq!(d("0.0015", 4, 4), Some(15));
        assert_eq!(d(".5", 1, 1), Some(5));
        assert_eq!(d("5.", 1, 0), Some(5));
        assert_eq!(d("0", 1, 0), Some(0));
        assert_eq!(d("-0.00", 3, 2), Some(0));
        assert_eq!(d("0e50", 1, 0), Some(0), "zero, whatever its exponent");
        assert_eq!(d("0.0e-37", 38, 38), Some(0));
        assert_eq!(d("000123.4", 4, 1), Some(1234), "leading zeros of a fraction's integer part");
        assert_eq!(d("007", 3, 0), None, "an integer with leading zeros is text");
        let max = "9".repeat(38);
        assert_eq!(d(&max, 38, 0), Some(max.parse::<i128>().unwrap()));
        assert_eq!(d(&format!("-0.{max}"), 38, 38), Some(-max.parse::<i128>().unwrap()));
        assert_eq!(d(&format!("{max}0"), 38, 0), None);
        assert_eq!(d("1e37", 38, 0), Some(10i128.pow(37)));
        assert_eq!(d("1e38", 38, 0), None);
        assert_eq!(d("1e-38", 38, 38), Some(1));
        assert_eq!(d("1000e-1", 4, 1), Some(1000), "100.0");
        assert_eq!(d("1000000000000000000000000000000000000000000e-40", 38, 3), None, "scale 40 as written");
        assert_eq!(d("1000000000000000000000000000000000000000000e-40", 38, 38), None, "43 digits");
        assert_eq!(d("1e99999999999999999999", 38, 0), None);
        assert_eq!(d("NaN", 38, 2), None);
        assert_eq!(d("inf", 38, 2), None);
        assert_eq!(d("x", 38, 2), None);
        assert_eq!(d("1.5", 39, 2), None, "beyond Decimal128");
    }

    #[test]
    fn column_types_join_as_their_kinds() {
        use ColumnType::*;
        let dec = |precision, scale| Decimal { precision, scale };
        for (a, b, want) in [
            (Int64, Float64, Float64),
            (Int64, Utf8, Utf8),
            (Null, Int64, Int64),
            (Null, Null, Null),
            (Boolean, Int64, Utf8),
            (Date32, Timestamp, Timestamp),
            (Timestamp, TimestampUtc, Utf8),
            (dec(5, 2), dec(10, 4), dec(10, 4)),
            (dec(7, 1), dec(5, 3), dec(9, 3)),
            (dec(5, 2), Int64, dec(21, 2)),
            (dec(38, 20), Int64, Utf8),
            (Float64, dec(5, 2), dec(5, 2)),
            (Int64, Int64, Int64),
        ] {
            assert_eq!(a.join(b), want, "{a} ⊔ {b}");
            assert_eq!(b.join(a), want, "{b} ⊔ {a}");
        }
    }

    #[test]
    fn join_widens_minimally() {
        use Kind::*;
        let dec = |precision, scale| Decimal { precision, scale };
        assert_eq!(Null.join(Int), Int);
        assert_eq!(Int.join(Float), Float);
        assert_eq!(Int.join(BigInt), BigInt);
        assert_eq!(BigInt.join(Float), dec(16, 0), "a lower bound; the values' shapes decide");
        assert_eq!(Float.join(dec(19, 2)), dec(19, 2));
        assert_eq!(Int.join(dec(3, 2)), dec(3, 2));
        assert_eq!(BigInt.join(dec(3, 2)), dec(18, 2));
        assert_eq!(dec(19, 2).join(dec(5, 4)), dec(21, 4), "integer digits and scale separately");
        assert_eq!(dec(38, 0).join(dec(1, 1)), Utf8, "39 digits");
        assert_eq!(dec(3, 1).join(Null), dec(3, 1));
        assert_eq!(dec(3, 1).join(Date), Utf8);
        assert_eq!(dec(3, 1).join(Bool), Utf8);
        assert_eq!(Date.join(Timestamp), Timestamp);
        assert_eq!(Date.join(TimestampUtc), Utf8);
        assert_eq!(Timestamp.join(TimestampUtc), Utf8);
        assert_eq!(Bool.join(Int), Utf8);
        // The join is a join: commutative and associative over every kind here.
        let kinds = [Null, Bool, Int, BigInt, Float, dec(3, 1), dec(20, 0), dec(38, 30), Date, Timestamp, Utf8];
        for a in kinds {
            for b in kinds {
                assert_eq!(a.join(b), b.join(a), "{a:?} {b:?}");
                for c in kinds {
                    assert_eq!(a.join(b).join(c), a.join(b.join(c)), "{a:?} {b:?} {c:?}");
                }
            }
        }
    }

    #[test]
    fn a_value_a_type_rejects_always_widens_it() {
        // The guarantee the re-conversion relies on: if parse under T fails, the widened kind is
        // not T. Widening joins kinds, and a decimal result takes the join of the shapes of
        // the column's values (here at most T's own) and of the value.
        let widened = |t: Kind, v: &str| match t.join(classify(v.as_bytes()).unwrap()) {
            Kind::Decimal { .. } => t.shape().join(number_shape(v.as_bytes()).unwrap()).kind(),
            k => k,
        };
        let values = [
            "true",
            "1",
            "-3",
            "0",
            "1.5",
            "1.50",
            "-123.456",
            "9007199254740993",
            "99999999999999999999",
            "82544000000000707.52",
            "0.30000000000000004",
            "1e400",
            "1e-400",
            "4.9e-324",
            "1.5e-3",
            "0e50",
            "0.000",
            "-0",
            "1e37",
            "5.",
            ".5",
            "007",
            "007.5",
            "2024-01-02",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04",
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.1234567",
            "x",
            "1e5",
            "NaN",
            "-inf",
            "Infinity",
        ];
        let dec = |precision, scale| Kind::Decimal { precision, scale };
        let kinds = [
            Kind::Bool,
            Kind::Int,
            Kind::BigInt,
            Kind::Float,
            dec(1, 0),
            dec(3, 2),
            dec(5, 2),
            dec(19, 2),
            dec(20, 0),
            dec(38, 4),
            Kind::Date,
            Kind::Timestamp,
            Kind::TimestampUtc,
        ];
        for t in kinds {
            for v in values {
                let b = v.as_bytes();
                let accepted = match t {
                    Kind::Bool => parse_bool(b).is_some(),
                    Kind::Int | Kind::BigInt => parse_int(b).is_some(),
                    Kind::Float => parse_float(b).is_some(),
                    Kind::Decimal { precision, scale } => parse_decimal(b, precision, scale).is_some(),
                    Kind::Date => parse_date(b).is_some(),
                    Kind::Timestamp => parse_timestamp_str(v).is_some_and(|(_, o)| !o),
                    Kind::TimestampUtc => parse_timestamp_str(v).is_some_and(|(_, o)| o),
                    _ => unreachable!(),
                };
                let w = widened(t, v);
                if !accepted {
                    assert_ne!(w, t, "{v:?} rejected by {t:?} but widens to it");
                }
                if w == t {
                    assert!(accepted, "{v:?} within {t:?} but rejected");
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
