//! The Arrow array builders of one batch: one per column, typed by the column's [`Kind`].

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};

use crate::schema::{
    Kind, Shape, parse_bool, parse_date, parse_decimal_shaped, parse_float_shaped, parse_int, parse_timestamp_str,
};

/// One column being built.
pub(crate) enum Column {
    /// Only nulls so far: a value means the sample could not tell the type, so it widens.
    Null(StringBuilder),
    Bool(BooleanBuilder),
    /// Integers, and the join of their shapes.
    Int(Int64Builder, Shape),
    /// Floats, and the join of their shapes.
    Float(Float64Builder, Shape),
    /// Decimals of a precision and scale, and the join of their shapes.
    Decimal(Decimal128Builder, u8, u8, Shape),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, bool),
    Text(StringBuilder),
}

impl Column {
    /// A column of `kind`; a decimal kind must have a valid precision and scale (1 to 38 digits,
    /// scale at most the precision), as every decimal kind this crate makes has.
    pub(crate) fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Int | Kind::BigInt => Self::Int(Int64Builder::with_capacity(capacity), Shape::default()),
            Kind::Float => Self::Float(Float64Builder::with_capacity(capacity), Shape::default()),
            Kind::Decimal { precision, scale } => {
                let builder = Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale as i8)
                    .expect("a decimal kind has a precision of 1 to 38 and a scale of at most the precision");
                Self::Decimal(builder, precision, scale, Shape::default())
            }
            Kind::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            Kind::Timestamp => Self::Ts(TimestampMicrosecondBuilder::with_capacity(capacity), false),
            Kind::TimestampUtc => {
                Self::Ts(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"), true)
            }
            Kind::Null => Self::Null(StringBuilder::new()),
            Kind::Utf8 => Self::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int(b, _) => b.append_null(),
            Self::Float(b, _) => b.append_null(),
            Self::Decimal(b, ..) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Ts(b, _) => b.append_null(),
            Self::Null(b) | Self::Text(b) => b.append_null(),
        }
    }

    /// Appends a non-null value; `Ok(false)` when the type rejects it.
    #[inline]
    pub(crate) fn append(&mut self, v: &[u8]) -> std::result::Result<bool, std::str::Utf8Error> {
        Ok(match self {
            Self::Null(_) => false,
            Self::Bool(b) => parse_bool(v).map(|x| b.append_value(x)).is_some(),
            Self::Int(b, shape) => match parse_int(v) {
                Some(x) => {
                    b.append_value(x);
                    // The digits without a sign (an int64 has no leading zeros); zero has none,
                    // as `number_shape` says.
                    let digits = if x == 0 { 0 } else { v.len() - usize::from(matches!(v[0], b'-' | b'+')) };
                    shape.int_digits = shape.int_digits.max(digits as u32);
                    true
                }
                None => false,
            },
            Self::Float(b, shape) => match parse_float_shaped(v) {
                Some((x, s)) => {
                    b.append_value(x);
                    *shape = shape.join(s);
                    true
                }
                None => false,
            },
            Self::Decimal(b, precision, scale, shape) => match parse_decimal_shaped(v, *precision, *scale) {
                Some((x, s)) => {
                    b.append_value(x);
                    *shape = shape.join(s);
                    true
                }
                None => false,
            },
            Self::Date(b) => parse_date(v).map(|x| b.append_value(x)).is_some(),
            Self::Ts(b, utc) => {
                let s = std::str::from_utf8(v)?;
                match parse_timestamp_str(s) {
                    Some((micros, offset)) if offset == *utc => {
                        b.append_value(micros);
                        true
                    }
                    _ => false,
                }
            }
            Self::Text(b) => {
                b.append_value(std::str::from_utf8(v)?);
                true
            }
        })
    }

    /// The join of the shapes of every number this column accepted, over all its batches:
    /// the empty shape for a column that is not numeric or accepted none.
    #[allow(dead_code, reason = "the decoder's widening is its caller")]
    pub(crate) fn shape(&self) -> Shape {
        match self {
            Self::Int(_, s) | Self::Float(_, s) | Self::Decimal(.., s) => *s,
            _ => Shape::default(),
        }
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int(b, _) => Arc::new(b.finish()),
            Self::Float(b, _) => Arc::new(b.finish()),
            Self::Decimal(b, ..) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Ts(b, _) => Arc::new(b.finish()),
            Self::Null(b) | Self::Text(b) => Arc::new(b.finish()),
        }
    }
}
