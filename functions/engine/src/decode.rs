//! Streaming CSV → Arrow decoding: dialect detection, bounded-sample inference and widening.
//!
//! [`CsvDecoder::new`] reads the first bytes of the text and detects what the options leave
//! open of the dialect ([`crate::sniff`]), then reads the header and a bounded sample, infers
//! each column's [`Kind`] (or takes it from the explicit schema), and then yields `RecordBatch`es
//! of at most `batch_rows` rows. When a later value contradicts an inferred type, the decoder
//! classifies the rest of the file (without building arrays) and stops with
//! [`Interrupt::Widen`]: the caller discards its outputs and converts the file again with the
//! widened kinds as a floor, and with the dialect of the first pass ([`Dialect::given`]).

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::column::Column;
use encoding_rs::Encoding;

use crate::error::{BadInputKind, Error, Result};
use crate::input::{self, Compression, Evidence};
use crate::options::{CsvOptions, Detect};
use crate::records::{Limits, Record, RecordReader};
use crate::schema::{ColumnType, Kind, Shape, arrow_schema, classify, number_shape, unique_names};
use crate::sniff::{Given, SNIFF_BYTES, sniff};

pub use crate::records::{MAX_COLUMNS, MAX_FIELD_BYTES, MAX_RECORD_BYTES};

/// Rows read for inference before the first batch is decoded.
pub const DEFAULT_SAMPLE_ROWS: usize = 16_384;
/// Bytes of rows held for inference at most, so that wide rows keep memory bounded.
pub const MAX_SAMPLE_BYTES: usize = 8 << 20;
/// Rows per `RecordBatch`.
pub const DEFAULT_BATCH_ROWS: usize = 8_192;
/// Input bytes of one batch at most, whatever its rows: a wide file's batches stay small, and
/// the Parquet writer can cut row groups by bytes between them.
pub const BATCH_BYTES: usize = 4 << 20;

/// Which field values mean null.
#[derive(Clone, Debug)]
pub enum NullTokens {
    /// Only the empty field (the default).
    Empty,
    /// Nothing is null.
    Nothing,
    /// These exact byte strings.
    List(Vec<Vec<u8>>),
}

impl NullTokens {
    /// Builds the fastest matcher for a list of tokens.
    pub fn new(values: &[String]) -> Self {
        match values {
            [] => Self::Nothing,
            [only] if only.is_empty() => Self::Empty,
            many => Self::List(many.iter().map(|s| s.as_bytes().to_vec()).collect()),
        }
    }

    #[inline]
    fn is_null(&self, v: &[u8]) -> bool {
        match self {
            Self::Empty => v.is_empty(),
            Self::Nothing => false,
            Self::List(list) => list.iter().any(|t| t.as_slice() == v),
        }
    }
}

/// The dialect a file was read with: what the job gave and what was detected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Dialect {
    /// Field delimiter.
    pub delimiter: char,
    /// Quote character; `null` when quoting is off.
    pub quote: Option<char>,
    /// Escape character inside quoted fields; `null` when quotes are escaped by doubling.
    pub escape: Option<char>,
    /// Whether the first row after the skipped lines named the columns.
    pub header: bool,
    /// Lines skipped before the header (a preamble or leading comments).
    pub skip_lines: u64,
    /// Encoding of the text (`utf-8`, `utf-16le`, `windows-1252`, …).
    pub encoding: String,
    /// Compression of the object, from its content.
    pub compression: Compression,
}

impl Dialect {
    /// The options that read the file again with this dialect, detecting nothing.
    pub fn given(&self, comment: Option<Vec<u8>>) -> Given {
        Given {
            delimiter: Some(self.delimiter as u8),
            quote: Some(self.quote.map(|c| c as u8)),
            escape: Some(self.escape.map(|c| c as u8)),
            header: Some(self.header),
            skip_lines: Some(self.skip_lines),
            comment,
        }
    }
}

/// Decoder settings.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// The dialect as far as it is given; the rest is detected.
    pub dialect: Given,
    /// Prefer a tab among equally good delimiters (`.tsv` keys).
    pub tab_first: bool,
    /// Null tokens.
    pub nulls: NullTokens,
    /// Explicit column types, by column name.
    pub explicit: Option<BTreeMap<String, ColumnType>>,
    /// Kinds learnt by an earlier, interrupted pass over the same file.
    pub floor: Option<Vec<Kind>>,
    /// The table's column types, by name: a column of the file starts at its table type (a
    /// floor, not a bound: values that need more widen it).
    pub table: Option<BTreeMap<String, ColumnType>>,
    /// Rows sampled for inference.
    pub sample_rows: usize,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Limits of one record.
    pub limits: Limits,
    /// The compression the key announces (its suffix); the content decides, see [`input::open`].
    pub compression: Option<Compression>,
    /// The encoding, when given; detected otherwise.
    pub encoding: Option<&'static Encoding>,
    /// Decompressed bytes read at most.
    pub max_bytes: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            dialect: Given::default(),
            tab_first: false,
            nulls: NullTokens::Empty,
            explicit: None,
            floor: None,
            table: None,
            sample_rows: DEFAULT_SAMPLE_ROWS,
            batch_rows: DEFAULT_BATCH_ROWS,
            limits: Limits::default(),
            compression: None,
            encoding: None,
            max_bytes: input::DEFAULT_MAX_BYTES,
        }
    }
}

impl DecodeOptions {
    /// The options that read the object `key` under the job's CSV options: the dialect as far
    /// as they give it, a tab preferred for `.tsv` keys, the compression the key's suffix
    /// announces. An unknown encoding label is an error.
    pub fn for_file(csv: &CsvOptions, key: &str) -> Result<Self> {
        let lower = key.to_ascii_lowercase();
        let encoding = match &csv.encoding {
            Detect::Auto => None,
            Detect::Given(label) => Some(input::encoding_for_label(label)?),
        };
        Ok(Self {
            dialect: csv.given(),
            tab_first: lower.ends_with(".tsv") || lower.contains(".tsv."),
            nulls: NullTokens::new(&csv.null_values),
            explicit: csv.schema.clone(),
            compression: input::compression_hint(key),
            encoding,
            max_bytes: csv.max_bytes,
            ..Self::default()
        })
    }
}

/// Why decoding stopped before the end.
#[derive(Debug)]
pub enum Interrupt {
    /// A value contradicted an inferred type; these kinds hold every value of the file.
    Widen(Vec<Kind>),
    /// Bytes that are not UTF-8 came after a sample that was: the file is read again from the
    /// start in this encoding, which the detector guesses from the record that held them.
    Reencode(&'static Encoding),
    /// The file is bad, or reading it failed.
    Error(Error),
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Widen(kinds) => write!(f, "the columns widen to {kinds:?}"),
            Self::Reencode(e) => write!(f, "the text is not UTF-8; it is read again as {}", input::encoding_name(e)),
            Self::Error(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Interrupt {}

impl From<Error> for Interrupt {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

/// The text a decoder reads: the detection sample again, then the rest of the source.
type Text<'a> = std::io::Chain<std::io::Cursor<Vec<u8>>, Box<dyn Read + Send + 'a>>;

/// Invalid UTF-8 in field `i` of `r`: a new pass in a guessed encoding when the encoding was
/// detected as UTF-8 from a sample, bad input otherwise.
fn not_utf8(reencode: bool, r: &Record, i: usize, names: &[String]) -> Interrupt {
    if reencode {
        return Interrupt::Reencode(input::guess_legacy(r.as_bytes()));
    }
    let name = names.get(i).map_or_else(|| format!("field {}", i + 1), |n| format!("column {n:?}"));
    let message = format!("{name} is not valid UTF-8; set csv.encoding to the encoding the file was written in");
    Interrupt::Error(Error::bad_line(BadInputKind::InvalidUtf8, r.line(), message))
}

/// Streams a CSV source as Arrow record batches.
pub struct CsvDecoder<'a> {
    reader: RecordReader<Text<'a>>,
    dialect: Dialect,
    reencode: bool,
    names: Vec<String>,
    kinds: Vec<Kind>,
    fixed: Vec<bool>,
    schema: SchemaRef,
    distinct: Vec<bool>,
    sample: VecDeque<Record>,
    record: Record,
    columns: Vec<Column>,
    nulls: NullTokens,
    batch_rows: usize,
    rows: u64,
    finished: bool,
}

impl std::fmt::Debug for CsvDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvDecoder").field("dialect", &self.dialect).field("kinds", &self.kinds).finish_non_exhaustive()
    }
}

/// Reads up to `n` bytes; the flag is whether the source ended within them.
fn read_prefix(source: &mut dyn Read, n: usize) -> Result<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(n.min(64 << 10));
    let read = source.take(n as u64).read_to_end(&mut out);
    read.map_err(|e| input::classify_io(e, None))?;
    let complete = out.len() < n;
    Ok((out, complete))
}

impl<'a> CsvDecoder<'a> {
    /// Opens the object's bytes (see [`input::open`]), detects the dialect, reads the header
    /// and the inference sample.
    pub fn new(source: impl Read + Send + 'a, opts: &DecodeOptions) -> std::result::Result<Self, Interrupt> {
        let opened = input::open(source, opts.compression, opts.encoding, opts.max_bytes)?;
        let reencode = opts.encoding.is_none() && opened.evidence == Evidence::ValidUtf8;
        let mut source = opened.reader;
        let (head, complete) = read_prefix(&mut source, SNIFF_BYTES)?;
        if head.iter().all(|b| matches!(b, b'\n' | b'\r')) && complete {
            return Err(Error::bad(BadInputKind::Empty, "the file is empty: no header and no rows").into());
        }
        let sniffed = sniff(&head, complete, &opts.dialect, opts.tab_first)?;
        let dialect = Dialect {
            delimiter: char::from(sniffed.syntax.delimiter),
            quote: sniffed.syntax.quote.map(char::from),
            escape: sniffed.syntax.escape.map(char::from),
            header: sniffed.header,
            skip_lines: sniffed.skip_lines,
            encoding: input::encoding_name(opened.encoding),
            compression: opened.compression,
        };
        let text = std::io::Cursor::new(head).chain(source);
        let mut reader = RecordReader::new(text, sniffed.syntax, opts.limits);
        reader.skip_lines(sniffed.skip_lines)?;
        let mut record = Record::new();
        let mut sample = VecDeque::new();
        let mut bytes = 0usize;
        if !reader.read(&mut record)? {
            return Err(Error::bad(BadInputKind::Empty, "the file is empty: no header and no rows").into());
        }
        let names = if sniffed.header {
            let mut raw = Vec::with_capacity(record.len());
            for (i, f) in record.iter().enumerate() {
                match std::str::from_utf8(f) {
                    Ok(name) => raw.push(name.to_owned()),
                    Err(_) => return Err(not_utf8(reencode, &record, i, &[])),
                }
            }
            unique_names(raw)
        } else {
            sample.push_back(record.clone());
            (1..=record.len()).map(|i| format!("column_{i}")).collect()
        };
        let ncols = names.len();
        while sample.len() < opts.sample_rows && bytes < MAX_SAMPLE_BYTES {
            if !reader.read(&mut record)? {
                break;
            }
            // A field costs its offset as well as its bytes.
            bytes += record.byte_len() + record.len() * std::mem::size_of::<usize>();
            sample.push_back(record.clone());
        }
        // Kinds: explicit schema first, then the floor from an earlier pass, joined with the sample.
        let mut fixed = vec![false; ncols];
        let mut kinds = opts.floor.clone().unwrap_or_else(|| vec![Kind::Null; ncols]);
        if kinds.len() != ncols {
            return Err(Error::Internal("column count changed between passes".into()).into());
        }
        if let Some(table) = &opts.table {
            for (kind, name) in kinds.iter_mut().zip(&names) {
                if let Some(t) = table.get(name) {
                    *kind = kind.join(Kind::of_type(*t));
                }
            }
        }
        // The floor of each column before the sample: its decimal digits are a lower bound.
        let base = kinds.clone();
        if let Some(explicit) = &opts.explicit {
            for (name, t) in explicit {
                let Some(i) = names.iter().position(|n| n == name) else {
                    return Err(Error::bad(
                        BadInputKind::InvalidSchema,
                        format!(
                            "the schema names column {name:?}, which the file does not have (columns: {})",
                            names.join(", ")
                        ),
                    )
                    .into());
                };
                kinds[i] = Kind::of_explicit(*t);
                fixed[i] = true;
            }
        }
        for r in &sample {
            if r.len() != ncols {
                // Ragged: decoding reports it at its line, once the dialect is known to the caller.
                continue;
            }
            for (i, v) in r.iter().enumerate() {
                if fixed[i] || kinds[i] == Kind::Utf8 || opts.nulls.is_null(v) {
                    continue;
                }
                match classify(v) {
                    Some(k) => kinds[i] = kinds[i].join(k),
                    None => return Err(not_utf8(reencode, r, i, &names)),
                }
            }
        }
        // A decimal column's precision and scale hold every number it was given.
        for (i, kind) in kinds.iter_mut().enumerate() {
            if fixed[i] || !matches!(kind, Kind::Decimal { .. }) {
                continue;
            }
            let floor = base[i].shape();
            let values = sample.iter().filter_map(|r| r.get(i)).filter(|v| !opts.nulls.is_null(v));
            *kind = values.filter_map(number_shape).fold(floor, Shape::join).kind();
        }
        let types: Vec<ColumnType> = kinds.iter().map(|k| k.column_type()).collect();
        let schema = arrow_schema(&names, &types);
        let distinct = (0..ncols).map(|i| mostly_distinct(&sample, i, &opts.nulls)).collect();
        let columns = kinds.iter().map(|k| Column::new(*k, opts.batch_rows)).collect();
        Ok(Self {
            reader,
            dialect,
            reencode,
            names,
            kinds,
            fixed,
            schema,
            distinct,
            sample,
            record,
            columns,
            nulls: opts.nulls.clone(),
            batch_rows: opts.batch_rows,
            rows: 0,
            finished: false,
        })
    }

    /// The dialect the file is read with.
    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Per column, whether most sampled values are distinct (ids, amounts, timestamps): a
    /// dictionary encoding would only cost time for such a column.
    pub fn mostly_distinct(&self) -> &[bool] {
        &self.distinct
    }

    /// The kinds the batches are decoded with.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// Data rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn next_record(&mut self) -> Result<bool> {
        if let Some(r) = self.sample.pop_front() {
            self.record = r;
            return Ok(true);
        }
        self.reader.read(&mut self.record)
    }

    /// The next batch, `Ok(None)` at the end of the file.
    pub fn next_batch(&mut self) -> std::result::Result<Option<RecordBatch>, Interrupt> {
        if self.finished {
            return Ok(None);
        }
        let ncols = self.names.len();
        let (mut n, mut bytes) = (0, 0);
        while n < self.batch_rows && bytes < BATCH_BYTES {
            if !self.next_record()? {
                self.finished = true;
                break;
            }
            check_width(&self.record, ncols)?;
            bytes += self.record.byte_len();
            for (i, v) in self.record.iter().enumerate() {
                let col = &mut self.columns[i];
                if self.nulls.is_null(v) {
                    col.append_null();
                    continue;
                }
                match col.append(v) {
                    Ok(true) => {}
                    Ok(false) if self.fixed[i] => return Err(Interrupt::Error(self.mismatch(i, v))),
                    Ok(false) => return Err(self.widen_from_here()),
                    Err(_) => return Err(not_utf8(self.reencode, &self.record, i, &self.names)),
                }
            }
            n += 1;
        }
        self.rows += n as u64;
        if n == 0 {
            return Ok(None);
        }
        let arrays = self.columns.iter_mut().map(Column::finish).collect();
        Ok(Some(RecordBatch::try_new(self.schema.clone(), arrays).map_err(Error::from)?))
    }

    /// A value of the current record that its column's explicit type rejects.
    fn mismatch(&self, i: usize, v: &[u8]) -> Error {
        let kind = self.kinds[i];
        let type_name = serde_json::to_value(kind.column_type())
            .ok()
            .and_then(|t| t.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut message =
            format!("column {:?}: {:?} is not a valid {type_name}", self.names[i], String::from_utf8_lossy(v));
        // A number the type would change: say which type holds it.
        if let Some(shape) = number_shape(v).filter(|_| matches!(kind, Kind::Float | Kind::Decimal { .. })) {
            match shape.kind() {
                Kind::Decimal { precision, scale } if kind == Kind::Float => {
                    message.push_str(&format!(" without rounding it; decimal({precision},{scale}) holds it exactly"))
                }
                Kind::Decimal { precision, scale } => {
                    message.push_str(&format!("; it needs decimal({precision},{scale}) at least"))
                }
                _ => message.push_str("; it has more than 38 digits, so only utf8 holds it exactly"),
            }
        }
        Error::bad_line(BadInputKind::SchemaMismatch, self.record.line(), message)
    }

    /// Classifies every remaining value, starting with the current record, into new kinds.
    fn widen_from_here(&mut self) -> Interrupt {
        let mut kinds = self.kinds.clone();
        let ncols = self.names.len();
        // The numbers seen so far, so that a column that becomes decimal holds them all.
        let mut shapes: Vec<Shape> = self.columns.iter().zip(&kinds).map(|(c, k)| c.shape().join(k.shape())).collect();
        loop {
            if let Err(e) = check_width(&self.record, ncols) {
                return Interrupt::Error(e);
            }
            for (i, v) in self.record.iter().enumerate() {
                if self.fixed[i] || kinds[i] == Kind::Utf8 || self.nulls.is_null(v) {
                    continue;
                }
                match classify(v) {
                    Some(k) => kinds[i] = kinds[i].join(k),
                    None => return not_utf8(self.reencode, &self.record, i, &self.names),
                }
                if let Some(shape) = number_shape(v) {
                    shapes[i] = shapes[i].join(shape);
                }
            }
            match self.next_record() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Interrupt::Error(e),
            }
        }
        for (kind, shape) in kinds.iter_mut().zip(&shapes) {
            if matches!(kind, Kind::Decimal { .. }) {
                *kind = shape.kind();
            }
        }
        tracing::debug!(before = ?self.kinds, after = ?kinds, "widening columns");
        Interrupt::Widen(kinds)
    }
}

/// Whether more than half of the sampled non-null values of column `i` are distinct.
fn mostly_distinct(sample: &VecDeque<Record>, i: usize, nulls: &NullTokens) -> bool {
    let values: Vec<&[u8]> = sample.iter().filter_map(|r| r.get(i)).filter(|v| !nulls.is_null(v)).collect();
    if values.len() < 64 {
        return false;
    }
    let mut seen = std::collections::HashSet::with_capacity(values.len() / 2 + 1);
    let limit = values.len() / 2;
    values.iter().any(|v| seen.insert(*v) && seen.len() > limit)
}

fn check_width(r: &Record, ncols: usize) -> Result<()> {
    if r.len() == ncols {
        return Ok(());
    }
    Err(Error::bad_line(BadInputKind::RaggedRow, r.line(), format!("expected {ncols} fields, found {}", r.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::DataType;

    fn decode_all(
        csv: impl AsRef<[u8]>,
        opts: &DecodeOptions,
    ) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), Interrupt> {
        let mut d = CsvDecoder::new(csv.as_ref(), opts)?;
        let mut out = Vec::new();
        while let Some(b) = d.next_batch()? {
            out.push(b);
        }
        Ok((d.schema(), out))
    }

    fn bad_kind(r: std::result::Result<(SchemaRef, Vec<RecordBatch>), Interrupt>) -> (BadInputKind, Option<u64>) {
        match r {
            Err(Interrupt::Error(Error::BadInput { kind, line, .. })) => (kind, line),
            Err(other) => panic!("expected bad input, got {other:?}"),
            Ok(_) => panic!("expected bad input, got success"),
        }
    }

    #[test]
    fn infers_types_from_the_sample() {
        let csv = "a,b,c,d,e,f,g\n1,1.5,true,2024-01-01,2024-01-01T00:00:00Z,x,\n2,,false,2024-01-02,2024-01-02T00:00:00Z,y,\n";
        let (schema, batches) = decode_all(csv, &DecodeOptions::default()).unwrap();
        let types: Vec<_> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(types[0], DataType::Int64);
        assert_eq!(types[1], DataType::Float64);
        assert_eq!(types[2], DataType::Boolean);
        assert_eq!(types[3], DataType::Date32);
        assert_eq!(types[4], ColumnType::TimestampUtc.data_type());
        assert_eq!(types[5], DataType::Utf8);
        assert_eq!(types[6], DataType::Utf8, "an all-null column is written as utf8");
        assert_eq!(batches[0].num_rows(), 2);
        assert!(batches[0].column(1).is_null(1));
    }

    #[test]
    fn a_late_contradiction_widens_after_scanning_the_rest() {
        let mut csv = String::from("n,m\n");
        for i in 0..100 {
            csv.push_str(&format!("{i},{i}\n"));
        }
        csv.push_str("1.5,7\n8,x\n");
        let opts = DecodeOptions { sample_rows: 10, batch_rows: 16, ..Default::default() };
        match decode_all(&csv, &opts) {
            Err(Interrupt::Widen(k)) => assert_eq!(k, vec![Kind::Float, Kind::Utf8]),
            other => panic!("expected widening, got {:?}", other.map(|_| ())),
        }
        let opts = DecodeOptions { floor: Some(vec![Kind::Float, Kind::Utf8]), ..opts };
        let (schema, batches) = decode_all(&csv, &opts).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Float64);
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(total, 102);
        let last = batches.last().unwrap();
        assert_eq!(last.column(0).as_primitive::<Float64Type>().value(last.num_rows() - 2), 1.5);
        assert_eq!(last.column(1).as_string::<i32>().value(last.num_rows() - 1), "x");
    }

    /// Decodes to the end, starting again with wider kinds as often as the decoder asks.
    fn decode_settled(csv: &str, opts: &DecodeOptions) -> (SchemaRef, Vec<RecordBatch>) {
        let mut opts = opts.clone();
        for _ in 0..4 {
            match decode_all(csv, &opts) {
                Ok(done) => return done,
                Err(Interrupt::Widen(kinds)) => opts.floor = Some(kinds),
                Err(other) => panic!("{other}"),
            }
        }
        panic!("the kinds did not settle")
    }

    #[test]
    fn numbers_that_a_float_would_round_widen_to_a_decimal_that_holds_every_value() {
        use arrow_array::types::Decimal128Type;
        let mut csv = String::from("n,x\n");
        for i in 0..100 {
            csv.push_str(&format!("{i},0.{i:03}\n"));
        }
        csv.push_str("82544000000000707.52,82544000000000707.52\n-1,1e-400\n");
        let opts = DecodeOptions { sample_rows: 10, batch_rows: 16, ..Default::default() };
        let (schema, batches) = decode_settled(&csv, &opts);
        assert_eq!(schema.field(0).data_type(), &DataType::Decimal128(19, 2), "17 integer digits, scale 2");
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8, "1e-400 needs 400 digits of scale");
        let last = batches.last().unwrap();
        let n = last.column(0).as_primitive::<Decimal128Type>();
        assert_eq!(n.value(n.len() - 2), 8_254_400_000_000_070_752);
        assert_eq!(n.value(n.len() - 1), -100);
        assert_eq!(last.column(1).as_string::<i32>().value(n.len() - 1), "1e-400");
        let first = batches[0].column(0).as_primitive::<Decimal128Type>();
        assert_eq!(first.value(7), 700, "the integers of the first batches are held exactly");
    }

    #[test]
    fn special_floats_and_exact_floats_stay_float() {
        let (schema, batches) =
            decode_settled("x\n1.5\nNaN\n-inf\nInfinity\n0.30000000000000004\n", &DecodeOptions::default());
        assert_eq!(schema.field(0).data_type(), &DataType::Float64);
        let x = batches[0].column(0).as_primitive::<Float64Type>();
        assert!(x.value(1).is_nan() && x.value(2) == f64::NEG_INFINITY && x.value(3) == f64::INFINITY);
        assert_eq!(x.value(4), 0.30000000000000004);
    }

    #[test]
    fn a_column_null_throughout_the_sample_is_typed_by_its_first_values() {
        let mut csv = String::from("a,b\n");
        for i in 0..50 {
            csv.push_str(&format!("{i},\n"));
        }
        csv.push_str("50,7\n51,\n");
        let opts = DecodeOptions { sample_rows: 10, ..Default::default() };
        match decode_all(&csv, &opts) {
            Err(Interrupt::Widen(k)) => assert_eq!(k, vec![Kind::Int, Kind::Int]),
            other => panic!("expected widening, got {:?}", other.map(|_| ())),
        }
        let (schema, _) = decode_all(&csv, &DecodeOptions { floor: Some(vec![Kind::Int, Kind::Int]), ..opts }).unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Int64);
    }

    #[test]
    fn a_table_schema_is_a_floor_by_column_name_and_values_still_widen_it() {
        let table: BTreeMap<String, ColumnType> = [
            ("amount".to_owned(), ColumnType::Float64),
            ("code".to_owned(), ColumnType::Utf8),
            ("price".to_owned(), ColumnType::Decimal { precision: 6, scale: 3 }),
            ("n".to_owned(), ColumnType::Int64),
        ]
        .into();
        let opts = DecodeOptions { table: Some(table), ..Default::default() };
        let (schema, batches) = decode_all(
            "code,amount,price,n,extra
5,10,1.5,7,x
6,20,12345.25,x,y
",
            &opts,
        )
        .unwrap();
        let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [&DataType::Utf8, &DataType::Float64, &DataType::Decimal128(8, 3), &DataType::Utf8, &DataType::Utf8],
            "code keeps its digits as text, amount is float64, price holds the table's scale and the file's \
             integer digits, and n widens beyond the table's int64"
        );
        assert_eq!(batches[0].column(0).as_string::<i32>().value(0), "5");
        assert_eq!(batches[0].column(1).as_primitive::<Float64Type>().value(1), 20.0);
    }

    #[test]
    fn explicit_schema_overrides_and_rejects_with_a_line() {
        let mut explicit = BTreeMap::new();
        explicit.insert("a".to_owned(), ColumnType::Utf8);
        explicit.insert("b".to_owned(), ColumnType::Int64);
        let opts = DecodeOptions { explicit: Some(explicit), ..Default::default() };
        let (schema, batches) = decode_all("a,b\n1,2\n", &opts).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(batches[0].column(1).as_primitive::<Int64Type>().value(0), 2);
        assert_eq!(bad_kind(decode_all("a,b\n1,2\n3,x\n", &opts)), (BadInputKind::SchemaMismatch, Some(3)));
        let mut missing = BTreeMap::new();
        missing.insert("zz".to_owned(), ColumnType::Utf8);
        let opts = DecodeOptions { explicit: Some(missing), ..Default::default() };
        assert_eq!(bad_kind(decode_all("a,b\n1,2\n", &opts)).0, BadInputKind::InvalidSchema);
        let mut float = BTreeMap::new();
        float.insert("x".to_owned(), ColumnType::Float64);
        let opts = DecodeOptions { explicit: Some(float), ..Default::default() };
        match decode_all("x\n1.5\n82544000000000707.52\n", &opts) {
            Err(Interrupt::Error(Error::BadInput { kind, line, message })) => {
                assert_eq!((kind, line), (BadInputKind::SchemaMismatch, Some(3)));
                assert!(message.contains("decimal(19,2) holds it exactly"), "{message}");
            }
            other => panic!("expected a mismatch, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn quoting_bom_crlf_and_nulls() {
        let csv = "\u{feff}id,text\r\n1,\"a, \"\"quoted\"\"\r\nline\"\r\n2,NA\r\n";
        let opts = DecodeOptions { nulls: NullTokens::new(&["NA".into(), String::new()]), ..Default::default() };
        let (schema, batches) = decode_all(csv, &opts).unwrap();
        assert_eq!(schema.field(0).name(), "id", "the BOM is stripped");
        let text = batches[0].column(1).as_string::<i32>();
        assert_eq!(text.value(0), "a, \"quoted\"\r\nline");
        assert!(text.is_null(1));
    }

    #[test]
    fn ragged_rows_and_invalid_utf8_name_their_line() {
        assert_eq!(
            bad_kind(decode_all("a,b\n1,2\n3\n", &DecodeOptions::default())),
            (BadInputKind::RaggedRow, Some(3))
        );
        let utf8 = DecodeOptions { encoding: Some(encoding_rs::UTF_8), ..DecodeOptions::default() };
        assert_eq!(bad_kind(decode_all(b"a,b\n1,2\n3,\xff\n", &utf8)), (BadInputKind::InvalidUtf8, Some(3)));
    }

    #[test]
    fn bytes_that_are_not_utf8_after_a_utf8_sample_start_the_file_again_in_their_encoding() {
        let mut text = b"name,city\n".to_vec();
        for i in 0..10_000 {
            text.extend_from_slice(format!("n{i},Paris\n").as_bytes());
        }
        text.extend_from_slice(b"Fran\xe7ois,K\xf6ln\n");
        let encoding = match decode_all(&text, &DecodeOptions::default()) {
            Err(Interrupt::Reencode(e)) => e,
            other => panic!("expected a new pass, got {:?}", other.map(|_| ())),
        };
        assert_eq!(encoding, encoding_rs::WINDOWS_1252);
        let (_, batches) =
            decode_all(&text, &DecodeOptions { encoding: Some(encoding), ..Default::default() }).unwrap();
        let last = batches.last().unwrap();
        let city = last.column(1).as_string::<i32>();
        assert_eq!(city.value(city.len() - 1), "Köln");
    }

    #[test]
    fn distinctness_is_measured_on_the_sample() {
        let mut csv = String::from("id,flag\n");
        for i in 0..200 {
            csv.push_str(&format!("{i},{}\n", i % 2 == 0));
        }
        let d = CsvDecoder::new(csv.as_bytes(), &DecodeOptions::default()).unwrap();
        assert_eq!(d.mostly_distinct(), &[true, false]);
    }

    #[test]
    fn lines_are_physical_for_crlf_blank_lines_and_quoted_newlines() {
        let cases: [(&str, u64); 4] = [
            ("a,b\r\n1,2\r\n3\r\n", 3),
            ("a,b\r\n1,\"x\r\ny\"\r\n2\r\n", 4),
            ("a,b\n1,2\n\n3\n", 4),
            ("\u{feff}a,b\n1,\"x\ny\nz\"\n\n\n3\n", 7),
        ];
        for (csv, line) in cases {
            assert_eq!(
                bad_kind(decode_all(csv, &DecodeOptions::default())),
                (BadInputKind::RaggedRow, Some(line)),
                "{csv:?}"
            );
        }
    }

    #[test]
    fn limits_apply_to_every_record_with_its_line() {
        let wide = format!("a\n{}\n", ",".repeat(MAX_COLUMNS));
        assert_eq!(bad_kind(decode_all(&wide, &DecodeOptions::default())), (BadInputKind::LimitExceeded, Some(2)));
        let mut long = String::from("a\n1\n");
        long.push_str(&"x".repeat(MAX_FIELD_BYTES + 1));
        long.push('\n');
        let opts = DecodeOptions { sample_rows: 1, ..Default::default() };
        assert_eq!(bad_kind(decode_all(&long, &opts)), (BadInputKind::LimitExceeded, Some(3)), "after the sample too");
    }

    #[test]
    fn empty_and_header_only_files() {
        assert_eq!(bad_kind(decode_all("", &DecodeOptions::default())).0, BadInputKind::Empty);
        let (schema, batches) = decode_all("a,b\n", &DecodeOptions::default()).unwrap();
        assert_eq!(schema.fields().len(), 2);
        assert!(batches.is_empty());
    }

    #[test]
    fn no_header_names_columns_and_keeps_the_first_row() {
        let opts = DecodeOptions { dialect: Given { header: Some(false), ..Given::default() }, ..Default::default() };
        let (schema, batches) = decode_all("1;x\n2;y\n", &opts).unwrap();
        assert_eq!(schema.field(1).name(), "column_2");
        assert_eq!(batches[0].num_rows(), 2);
    }
}
