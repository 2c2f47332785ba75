//! The Arrow array builders of one batch: one per column, typed by the column's [`Kind`].

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};

use crate::schema::{Kind, parse_bool, parse_date, parse_float, parse_int, parse_timestamp_str};

/// One column being built.
pub(crate) enum Column {
    /// Only nulls so far: a value means the sample could not tell the type, so it widens.
    Null(StringBuilder),
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, bool),
    Text(StringBuilder),
}

impl Column {
    pub(crate) fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Int | Kind::BigInt => Self::Int(Int64Builder::with_capacity(capacity)),
            Kind::Float => Self::Float(Float64Builder::with_capacity(capacity)),
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
            Self::Int(b) => b.append_null(),
            Self::Float(b) => b.append_null(),
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
            Self::Int(b) => parse_int(v).map(|x| b.append_value(x)).is_some(),
            Self::Float(b) => parse_float(v).map(|x| b.append_value(x)).is_some(),
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

    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::Float(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Ts(b, _) => Arc::new(b.finish()),
            Self::Null(b) | Self::Text(b) => Arc::new(b.finish()),
        }
    }
}
