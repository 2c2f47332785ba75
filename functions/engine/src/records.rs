//! A strict CSV record reader with bounded memory.
//!
//! It reads RFC 4180 records from UTF-8 (or any ASCII-compatible) text, with a configurable
//! delimiter, quote (or none) and escape, and it is strict where lenient readers rewrite values
//! silently: a quote that opens a field must close it right before a delimiter, a line end or the
//! end of the file; a quote inside an unquoted field, text after a closing quote, and a quote
//! left open at the end of the file are [`BadInputKind::MalformedQuote`] errors naming the line
//! where the field began. Nothing is ever buffered beyond the limits: a field, a record and the
//! number of fields are checked while the record is read, byte by byte, so that a 1 GiB line
//! fails after at most the field limit has been buffered.
//!
//! Line numbers are physical: `\n`, `\r\n` and a bare `\r` each end one line, including inside
//! quoted fields. Blank lines between records are skipped, as are lines that start with the
//! comment prefix, if one is set.

use std::io::Read;

use crate::error::{BadInputKind, Error, Result};

/// Largest accepted field, so that one bad quote cannot buffer a whole object in memory.
pub const MAX_FIELD_BYTES: usize = 16 << 20;
/// Largest accepted record (all its fields).
pub const MAX_RECORD_BYTES: usize = 64 << 20;
/// Largest accepted number of columns.
pub const MAX_COLUMNS: usize = 10_000;

/// Bytes read from the source at a time.
const BUFFER_BYTES: usize = 256 << 10;

/// The syntax a record reader follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syntax {
    /// Field delimiter.
    pub delimiter: u8,
    /// Quote byte, or `None` when quotes are ordinary data.
    pub quote: Option<u8>,
    /// Escape byte inside quoted fields; `None` when quotes are escaped by doubling only.
    pub escape: Option<u8>,
    /// Lines that begin with this prefix are skipped.
    pub comment: Option<Vec<u8>>,
}

impl Default for Syntax {
    fn default() -> Self {
        Self { delimiter: b',', quote: Some(b'"'), escape: None, comment: None }
    }
}

/// Limits that bound a record's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one field.
    pub field_bytes: usize,
    /// Bytes of one record.
    pub record_bytes: usize,
    /// Fields of one record.
    pub columns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { field_bytes: MAX_FIELD_BYTES, record_bytes: MAX_RECORD_BYTES, columns: MAX_COLUMNS }
    }
}

/// One record: its fields' bytes, unquoted and unescaped, and the line where it begins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    line: u64,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no field.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.bytes[start..end])
    }

    /// The fields in order.
    pub fn iter(&self) -> Fields<'_> {
        Fields { record: self, start: 0, next: 0 }
    }

    /// The 1-based line where the record begins.
    #[inline]
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The bytes of all fields together.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes of all fields together.
    #[inline]
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// An error of the source.
fn io_error(e: std::io::Error, line: u64) -> Error {
    crate::input::classify_io(e, Some(line))
}

/// The fields of a [`Record`].
#[derive(Debug)]
pub struct Fields<'a> {
    record: &'a Record,
    start: usize,
    next: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let end = *self.record.ends.get(self.next)?;
        let f = &self.record.bytes[self.start..end];
        self.start = end;
        self.next += 1;
        Some(f)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.record.ends.len() - self.next;
        (n, Some(n))
    }
}

/// Byte classes of the unquoted scan.
const PLAIN: u8 = 0;
const DELIMITER: u8 = 1;
const LF: u8 = 2;
const CR: u8 = 3;
const QUOTE: u8 = 4;

/// Reads records from a source of text.
pub struct RecordReader<R> {
    src: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    /// The line of the byte at `pos`.
    line: u64,
    syntax: Syntax,
    limits: Limits,
    class: [u8; 256],
    /// Bytes consumed so far.
    consumed: u64,
    /// Fields that began with the quote.
    quoted: u64,
}

impl<R> std::fmt::Debug for RecordReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader").field("syntax", &self.syntax).field("line", &self.line).finish_non_exhaustive()
    }
}

/// How a field ended.
enum End {
    Delimiter,
    Line,
    Eof,
}

impl<R: Read> RecordReader<R> {
    /// A reader of `src` with `syntax` and `limits`.
    pub fn new(src: R, syntax: Syntax, limits: Limits) -> Self {
        let mut class = [PLAIN; 256];
        class[usize::from(b'\n')] = LF;
        class[usize::from(b'\r')] = CR;
        if let Some(q) = syntax.quote {
            class[usize::from(q)] = QUOTE;
        }
        class[usize::from(syntax.delimiter)] = DELIMITER;
        Self {
            src,
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            syntax,
            limits,
            class,
            consumed: 0,
            quoted: 0,
        }
    }

    /// The syntax read.
    pub fn syntax(&self) -> &Syntax {
        &self.syntax
    }

    /// The line of the next unread byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed + self.pos as u64
    }

    /// Fields read so far that began with the quote.
    pub fn quoted_fields(&self) -> u64 {
        self.quoted
    }

    /// The source, to read on after the records.
    pub fn into_inner(self) -> R {
        self.src
    }

    /// Makes at least one byte available; `false` at the end of the source.
    #[inline]
    fn fill(&mut self) -> Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        self.consumed += self.end as u64;
        self.pos = 0;
        self.end = 0;
        loop {
            match self.src.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, self.line)),
            }
        }
    }

    #[inline]
    fn peek(&mut self) -> Result<Option<u8>> {
        Ok(if self.fill()? { Some(self.buf[self.pos]) } else { None })
    }

    /// Consumes a line end whose first byte is at `pos`.
    fn line_end(&mut self) -> Result<()> {
        let b = self.buf[self.pos];
        self.pos += 1;
        self.line += 1;
        if b == b'\r' && self.peek()? == Some(b'\n') {
            self.pos += 1;
        }
        Ok(())
    }

    /// Skips `n` physical lines, whatever they hold.
    pub fn skip_lines(&mut self, n: u64) -> Result<()> {
        let target = self.line + n;
        while self.line < target && self.fill()? {
            let hay = &self.buf[self.pos..self.end];
            match memchr::memchr2(b'\n', b'\r', hay) {
                Some(i) => {
                    self.pos += i;
                    self.line_end()?;
                }
                None => self.pos = self.end,
            }
        }
        Ok(())
    }

    /// Skips blank lines and comment lines before a record; `false` at the end of the source.
    fn skip_to_record(&mut self) -> Result<bool> {
        loop {
            let Some(b) = self.peek()? else { return Ok(false) };
            if b == b'\n' || b == b'\r' {
                self.line_end()?;
                continue;
            }
            if let Some(prefix) = self.syntax.comment.take() {
                let comment = self.starts_with(&prefix);
                self.syntax.comment = Some(prefix);
                if comment? {
                    self.skip_lines(1)?;
                    continue;
                }
            }
            return Ok(true);
        }
    }

    /// Whether the unread bytes begin with `prefix` (which may cross the buffer's end).
    fn starts_with(&mut self, prefix: &[u8]) -> Result<bool> {
        if self.end - self.pos < prefix.len() && !self.eof {
            // Move the tail to the front and read more behind it.
            self.buf.copy_within(self.pos..self.end, 0);
            self.consumed += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
            while self.end < prefix.len() {
                match self.src.read(&mut self.buf[self.end..]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_error(e, self.line)),
                }
            }
        }
        Ok(self.buf[self.pos..self.end].starts_with(prefix))
    }

    /// Reads the next record into `record`; `false` at the end of the source.
    pub fn read(&mut self, record: &mut Record) -> Result<bool> {
        record.clear();
        if !self.skip_to_record()? {
            return Ok(false);
        }
        record.line = self.line;
        loop {
            let start = record.bytes.len();
            let field_line = self.line;
            let end = if self.syntax.quote.is_some_and(|q| self.buf[self.pos] == q) {
                self.pos += 1;
                self.quoted += 1;
                self.quoted(record, field_line)?
            } else {
                self.unquoted(record, field_line)?
            };
            if record.bytes.len() - start > self.limits.field_bytes {
                return Err(self.field_too_long(record));
            }
            record.ends.push(record.bytes.len());
            if record.ends.len() > self.limits.columns {
                let message =
                    format!("more than {} fields: the limit is {} columns", self.limits.columns, self.limits.columns);
                return Err(Error::bad_line(BadInputKind::LimitExceeded, record.line, message));
            }
            match end {
                End::Delimiter => {
                    if !self.fill()? {
                        // A delimiter right before the end of the file: one last empty field.
                        record.ends.push(record.bytes.len());
                        return Ok(true);
                    }
                }
                End::Line | End::Eof => return Ok(true),
            }
        }
    }

    fn field_too_long(&self, record: &Record) -> Error {
        let message = format!(
            "a field is longer than the limit of {} bytes (a quote left open, or a file that is not CSV?)",
            self.limits.field_bytes
        );
        Error::bad_line(BadInputKind::LimitExceeded, record.line, message)
    }

    /// Appends `pos..i` to the record, within the limits.
    #[inline]
    fn take(&mut self, record: &mut Record, i: usize, field_start: usize) -> Result<()> {
        record.bytes.extend_from_slice(&self.buf[self.pos..i]);
        self.pos = i;
        let field = record.bytes.len() - field_start;
        if field > self.limits.field_bytes {
            return Err(self.field_too_long(record));
        }
        if record.bytes.len() > self.limits.record_bytes {
            let message = format!("a record is longer than the limit of {} bytes", self.limits.record_bytes);
            return Err(Error::bad_line(BadInputKind::LimitExceeded, record.line, message));
        }
        Ok(())
    }

    /// An unquoted field, up to and including its delimiter or line end.
    fn unquoted(&mut self, record: &mut Record, field_line: u64) -> Result<End> {
        let field_start = record.bytes.len();
        loop {
            if !self.fill()? {
                return Ok(End::Eof);
            }
            let mut i = self.pos;
            let end = self.end;
            while i < end && self.class[usize::from(self.buf[i])] == PLAIN {
                i += 1;
            }
            self.take(record, i, field_start)?;
            if i == end {
                continue;
            }
            return match self.class[usize::from(self.buf[i])] {
                DELIMITER => {
                    self.pos += 1;
                    Ok(End::Delimiter)
                }
                LF | CR => {
                    self.line_end()?;
                    Ok(End::Line)
                }
                _ => Err(self.stray_quote(field_line)),
            };
        }
    }

    fn stray_quote(&self, line: u64) -> Error {
        let q = char::from(self.syntax.quote.unwrap_or(b'"'));
        let message = format!(
            "a {q} inside an unquoted field: quote the whole field and double the {q} inside it, \
             or set csv.quote to null if {q} is data"
        );
        Error::bad_line(BadInputKind::MalformedQuote, line, message)
    }

    /// The rest of a quoted field after its opening quote, up to and including the delimiter or
    /// line end that must follow its closing quote.
    fn quoted(&mut self, record: &mut Record, field_line: u64) -> Result<End> {
        let quote = self.syntax.quote.unwrap_or(b'"');
        let escape = self.syntax.escape.filter(|e| *e != quote);
        let field_start = record.bytes.len();
        loop {
            if !self.fill()? {
                let q = char::from(quote);
                let message = format!(
                    "the {q} that opens a field on line {field_line} is never closed: close it, or set csv.quote \
                     to null if {q} is data"
                );
                return Err(Error::bad_line(BadInputKind::MalformedQuote, field_line, message));
            }
            let hay = &self.buf[self.pos..self.end];
            let found = match escape {
                Some(e) => memchr::memchr3(quote, e, b'\r', hay),
                None => memchr::memchr2(quote, b'\r', hay),
            };
            let Some(off) = found else {
                self.count_lf(self.end);
                self.take(record, self.end, field_start)?;
                continue;
            };
            let i = self.pos + off;
            self.count_lf(i);
            self.take(record, i, field_start)?;
            let b = self.buf[i];
            self.pos += 1;
            if b == b'\r' {
                // A bare CR or a CRLF inside the field: one line either way.
                record.bytes.push(b'\r');
                self.line += 1;
                if self.peek()? == Some(b'\n') {
                    record.bytes.push(b'\n');
                    self.pos += 1;
                }
                continue;
            }
            if Some(b) == escape {
                // An escape keeps the quote or escape it precedes; before anything else both bytes stay.
                match self.peek()? {
                    Some(n) if n == quote || Some(n) == escape => {
                        record.bytes.push(n);
                        self.pos += 1;
                    }
                    _ => record.bytes.push(b),
                }
                continue;
            }
            // A quote: doubled, or the closing one.
            match self.peek()? {
                Some(n) if n == quote => {
                    record.bytes.push(quote);
                    self.pos += 1;
                }
                None => return Ok(End::Eof),
                Some(n) if n == self.syntax.delimiter => {
                    self.pos += 1;
                    return Ok(End::Delimiter);
                }
                Some(b'\n' | b'\r') => {
                    self.line_end()?;
                    return Ok(End::Line);
                }
                Some(_) => {
                    let q = char::from(quote);
                    let message = format!(
                        "text after the closing {q} of a field that begins on line {field_line}: double a {q} \
                         inside a quoted field, or set csv.quote to null if {q} is data"
                    );
                    return Err(Error::bad_line(BadInputKind::MalformedQuote, field_line, message));
                }
            }
        }
    }

    /// Counts the LFs of `pos..i` (inside a quoted field, where CRs are handled one by one).
    #[inline]
    fn count_lf(&mut self, i: usize) {
        self.line += memchr::memchr_iter(b'\n', &self.buf[self.pos..i]).count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8], syntax: Syntax) -> Result<Vec<(u64, Vec<String>)>> {
        let mut r = RecordReader::new(text, syntax, Limits::default());
        let mut rec = Record::new();
        let mut out = Vec::new();
        while r.read(&mut rec)? {
            out.push((rec.line(), rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()));
        }
        Ok(out)
    }

    fn rows(text: &str) -> Vec<Vec<String>> {
        read_all(text.as_bytes(), Syntax::default()).unwrap().into_iter().map(|(_, r)| r).collect()
    }

    fn bad(text: &str, syntax: Syntax) -> (BadInputKind, Option<u64>) {
        match read_all(text.as_bytes(), syntax) {
            Err(Error::BadInput { kind, line, .. }) => (kind, line),
            other => panic!("{text:?}: expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn reads_quoted_doubled_and_empty_fields() {
        assert_eq!(rows("a,b,c\n1,\"x, \"\"y\"\"\",\n"), [vec!["a", "b", "c"], vec!["1", "x, \"y\"", ""]]);
        assert_eq!(rows("a,\n"), [vec!["a", ""]]);
        assert_eq!(rows("a,"), [vec!["a", ""]]);
        assert_eq!(rows("\"\",x"), [vec!["", "x"]]);
        assert_eq!(rows("a\n\n\nb"), [vec!["a"], vec!["b"]]);
    }

    #[test]
    fn line_ends_lf_crlf_and_bare_cr() {
        for (text, lines) in [
            ("a\nb\nc", vec![1, 2, 3]),
            ("a\r\nb\r\nc\r\n", vec![1, 2, 3]),
            ("a\rb\rc\r", vec![1, 2, 3]),
            ("a\r\rb\n\nc", vec![1, 3, 5]),
            ("\"x\ry\",1\rb", vec![1, 3]),
            ("\"x\r\ny\ni\",1\nb", vec![1, 4]),
        ] {
            let got: Vec<u64> = read_all(text.as_bytes(), Syntax::default()).unwrap().iter().map(|r| r.0).collect();
            assert_eq!(got, lines, "{text:?}");
        }
        assert_eq!(rows("\"x\ry\",1\rb"), [vec!["x\ry", "1"], vec!["b"]], "line ends inside quotes are kept");
    }

    #[test]
    fn malformed_quotes_name_the_line_where_the_field_began() {
        let q = Syntax::default();
        let tab = Syntax { delimiter: b'\t', ..Syntax::default() };
        assert_eq!(bad("a\tb\n\"Swing it\" magistern\tx\n", tab.clone()), (BadInputKind::MalformedQuote, Some(2)));
        assert_eq!(bad("a\n\"XXX \"XXX\" XXX\"\n", q.clone()), (BadInputKind::MalformedQuote, Some(2)));
        assert_eq!(bad("a\n\"abc\"def\n", q.clone()), (BadInputKind::MalformedQuote, Some(2)));
        assert_eq!(bad("a\nab\"c\n", q.clone()), (BadInputKind::MalformedQuote, Some(2)));
        assert_eq!(bad("a\tb\n1\t2\n\"open\t3\n4\t5\n6\t7\n", tab), (BadInputKind::MalformedQuote, Some(3)));
        assert_eq!(bad("a\n1\n\"x\ny\"z\n", q), (BadInputKind::MalformedQuote, Some(3)));
    }

    #[test]
    fn quoting_off_keeps_quotes_as_data() {
        let none = Syntax { quote: None, ..Syntax::default() };
        let got = read_all(b"a,b\n\"x,y\"\n", none).unwrap();
        assert_eq!(got[1].1, ["\"x", "y\""]);
    }

    #[test]
    fn an_escape_keeps_what_it_does_not_escape() {
        let esc = Syntax { escape: Some(b'\\'), ..Syntax::default() };
        let got = read_all(br#""a \"b\" \\ \n",2"#, esc).unwrap();
        assert_eq!(got[0].1, [r#"a "b" \ \n"#, "2"]);
    }

    #[test]
    fn comments_and_skipped_lines() {
        let hash = Syntax { comment: Some(b"#".to_vec()), ..Syntax::default() };
        let got = read_all(b"# made by x, y\na,b\n#c\n1,2\n", hash).unwrap();
        assert_eq!(got, [(2, vec!["a".into(), "b".into()]), (4, vec!["1".into(), "2".into()])]);
        let mut r =
            RecordReader::new(&b"title\r\n\"un\"balanced\"\ra,b\n1,2\n"[..], Syntax::default(), Limits::default());
        r.skip_lines(2).unwrap();
        let mut rec = Record::new();
        assert!(r.read(&mut rec).unwrap());
        assert_eq!((rec.line(), rec.len()), (3, 2));
    }

    #[test]
    fn limits_hold_while_a_record_is_read() {
        let limits = Limits { field_bytes: 10, record_bytes: 25, columns: 3 };
        let check = |text: &str| {
            let mut r = RecordReader::new(text.as_bytes(), Syntax::default(), limits);
            let mut rec = Record::new();
            loop {
                match r.read(&mut rec) {
                    Ok(true) => assert!(rec.byte_len() <= 25),
                    Ok(false) => return None,
                    Err(Error::BadInput { kind, line, .. }) => {
                        assert!(rec.bytes.capacity() < 1 << 20, "nothing was buffered beyond the limit");
                        return Some((kind, line));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        };
        assert_eq!(check("a\n12345678901\n"), Some((BadInputKind::LimitExceeded, Some(2))));
        assert_eq!(check("a\n\"1234567\n8901\"\n"), Some((BadInputKind::LimitExceeded, Some(2))));
        assert_eq!(check("1,2,3,4\n"), Some((BadInputKind::LimitExceeded, Some(1))));
        assert_eq!(check("123456789,123456789,123456789\n"), Some((BadInputKind::LimitExceeded, Some(1))));
        assert_eq!(check("1234567890,x\n"), None);
        let huge = "x".repeat(5 << 20);
        assert_eq!(check(&huge), Some((BadInputKind::LimitExceeded, Some(1))));
    }

    #[test]
    fn records_across_buffer_boundaries() {
        let mut text = String::new();
        for i in 0..60_000 {
            text.push_str(&format!("{i},\"q{i}\r\n\"\"x\"\"\",{}\r", "y".repeat(i % 13)));
        }
        let got = read_all(text.as_bytes(), Syntax::default()).unwrap();
        assert_eq!(got.len(), 60_000);
        for (i, (line, r)) in got.iter().enumerate() {
            assert_eq!(*line, 2 * i as u64 + 1);
            assert_eq!(r, &[i.to_string(), format!("q{i}\r\n\"x\""), "y".repeat(i % 13)]);
        }
    }
}
