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

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Float64Type};

    use super::*;
    use crate::schema::number_shape;

    fn shape(int_digits: u32, scale: u32) -> Shape {
        Shape { int_digits, scale }
    }

    #[test]
    fn numeric_columns_join_the_shapes_they_accept_across_batches() {
        let mut int = Column::new(Kind::Int, 4);
        for v in ["-7", "0", "+123"] {
            assert_eq!(int.append(v.as_bytes()), Ok(true));
        }
        assert_eq!(int.append(b"1.5"), Ok(false));
        assert_eq!(int.shape(), shape(3, 0));
        int.finish();
        assert_eq!(int.shape(), shape(3, 0), "kept across batches");
        assert_eq!(int.append(b"-12345"), Ok(true));
        assert_eq!(int.shape(), shape(5, 0));

        let mut float = Column::new(Kind::Float, 4);
        for v in ["1.50", "-2.5e3", "0.001"] {
            assert_eq!(float.append(v.as_bytes()), Ok(true), "{v}");
        }
        assert_eq!(float.append(b"82544000000000707.52"), Ok(false), "rejected, and not in the shape");
        assert_eq!(float.shape(), shape(4, 3));
        let array = float.finish();
        assert_eq!(array.as_primitive::<Float64Type>().values().to_vec(), [1.5, -2500.0, 0.001]);
        assert_eq!(float.shape(), shape(4, 3));
        assert_eq!(float.append(b"NaN"), Ok(true));
        assert_eq!(float.append(b"-Infinity"), Ok(true));
        assert_eq!(float.shape(), Shape::UNBOUNDED.join(shape(4, 3)));
        assert_eq!(float.shape().kind(), Kind::Utf8, "no decimal holds NaN");
        let array = float.finish();
        assert!(array.as_primitive::<Float64Type>().value(0).is_nan());
        assert_eq!(array.as_primitive::<Float64Type>().value(1), f64::NEG_INFINITY);
    }

    #[test]
    fn a_column_shape_is_the_join_of_its_values_number_shapes() {
        let values = ["12.5", "-0.125", "1e3", "7"];
        let mut float = Column::new(Kind::Float, 4);
        let mut decimal = Column::new(Kind::Decimal { precision: 10, scale: 3 }, 4);
        let mut joined = Shape::default();
        for v in values {
            assert_eq!(float.append(v.as_bytes()), Ok(true));
            assert_eq!(decimal.append(v.as_bytes()), Ok(true));
            joined = joined.join(number_shape(v.as_bytes()).unwrap());
        }
        assert_eq!(float.shape(), joined);
        assert_eq!(decimal.shape(), joined);
        assert_eq!(joined, shape(4, 3));
    }

    #[test]
    fn a_decimal_column_holds_exact_values_of_its_shape() {
        let mut col = Column::new(Kind::Decimal { precision: 5, scale: 2 }, 4);
        for v in ["123.45", "-0.5", "1.5e1", "0"] {
            assert_eq!(col.append(v.as_bytes()), Ok(true), "{v}");
        }
        col.append_null();
        for v in ["1234", "0.125", "1.500", "NaN", "inf", "007", "x", "1e3"] {
            assert_eq!(col.append(v.as_bytes()), Ok(false), "{v}");
        }
        assert_eq!(col.shape(), shape(3, 2));
        let array = col.finish();
        let array = array.as_primitive::<Decimal128Type>();
        assert_eq!(array.data_type(), &arrow_schema::DataType::Decimal128(5, 2));
        assert_eq!(array.iter().collect::<Vec<_>>(), [Some(12345), Some(-50), Some(1500), Some(0), None]);
    }
}
