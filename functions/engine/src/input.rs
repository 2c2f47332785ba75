//! From the raw bytes of an object to the UTF-8 text the CSV decoder reads.
//!
//! [`open`] builds a chain of readers over the object's bytes:
//!
//! 1. the source, whose io errors are tagged as the source's own, so that a dropped connection
//!    (transient) stays distinguishable from a corrupt stream (bad input) however deep in the
//!    chain it surfaces;
//! 2. decompression, chosen by the content's magic bytes whatever the key says (gzip with
//!    concatenated members, zstd with any number of frames); an error it raises that is not the
//!    source's is the stream's corruption;
//! 3. a bound on the decompressed bytes, so that a small compressed object cannot expand
//!    without end;
//! 4. encoding: a byte-order mark decides, else a sample that is valid UTF-8 is UTF-8, else
//!    chardetng guesses the legacy encoding (unless the caller names one). UTF-8 passes through
//!    untouched, the mark stripped; any other encoding is decoded strictly to UTF-8 by
//!    encoding_rs, and a byte sequence that is not valid in it stops the file with its line
//!    instead of becoming a replacement character.
//!
//! Every reader of the chain returns plain `std::io::Error`s, because the CSV reader only passes
//! those through. [`classify_io`] turns whatever error comes out of the chain back into the
//! engine's [`Error`] with the right class.

use std::io::{BufReader, Cursor, Read};

use encoding_rs::{DecoderResult, Encoding, UTF_8, UTF_16BE, UTF_16LE};
use serde::{Deserialize, Serialize};

use crate::error::{BadInputKind, Error, Result};

/// Decompressed bytes accepted from one object by default (64 GiB): far above any CSV worth
/// converting in one piece, yet a bound on a small object that would expand without end.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;

/// Decompressed bytes sampled to detect the encoding.
pub const SAMPLE_BYTES: usize = 64 << 10;

/// Buffer in front of a decompressor: compressed objects arrive from the network in small
/// pieces, and decompressors read in smaller ones still.
const COMPRESSED_BUFFER: usize = 256 << 10;
/// Largest zstd window accepted, as a power of two (32 MiB): a frame declares its window, which
/// the decoder allocates whatever the frame's size, so it is bounded like every other buffer.
/// `zstd` up to level 19 uses at most 8 MiB; `--long` and `--ultra` use more.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;
/// Bytes in the encoding the transcoder reads at a time.
const TRANSCODE_INPUT: usize = 64 << 10;
/// UTF-8 bytes the transcoder produces at a time: room for a whole input buffer of the
/// encodings that expand most (a single-byte encoding's € becomes three bytes), so that one
/// decode call usually consumes all of it.
const TRANSCODE_OUTPUT: usize = 3 * TRANSCODE_INPUT;

/// How an object's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (RFC 1952), possibly several concatenated members.
    Gzip,
    /// Zstandard, possibly several concatenated frames.
    Zstd,
}

impl Compression {
    /// The name used in results and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// The compression that the first bytes of an object announce.
    fn sniff(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }

    /// The key suffix that announces this compression.
    fn suffix(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => ".gz",
            Self::Zstd => ".zst",
        }
    }

    fn magic(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => "1f 8b",
            Self::Zstd => "28 b5 2f fd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The compression a key's suffix announces (`.gz`, `.zst`, in any case), if any. The content
/// decides in the end; a hint only makes content without the announced magic an error.
pub fn compression_hint(key: &str) -> Option<Compression> {
    let ends_with = |suffix: &str| {
        let (key, suffix) = (key.as_bytes(), suffix.as_bytes());
        key.len() >= suffix.len() && key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    [Compression::Gzip, Compression::Zstd].into_iter().find(|c| ends_with(c.suffix()))
}

/// What decided an encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// A byte-order mark at the start of the bytes.
    Bom,
    /// The caller named the encoding (`csv.encoding`).
    Explicit,
    /// The sample is valid UTF-8 (which includes plain ASCII and no bytes at all).
    ValidUtf8,
    /// A guess from the sample's bytes: chardetng's, or UTF-16 from the pattern of zero bytes.
    Guessed,
}

/// The encoding detected from the first bytes of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    /// The encoding the bytes are decoded with.
    pub encoding: &'static Encoding,
    /// Length of the byte-order mark to strip (0 without one).
    pub bom_len: usize,
    /// What decided the encoding.
    pub evidence: Evidence,
}

/// Detects the encoding of `sample`, the first bytes of a decompressed file; `eof` says that
/// the sample is the whole file. A byte-order mark decides; else a sample that is valid UTF-8
/// (allowing, before the end of the file, a multi-byte sequence cut at the sample's end) is
/// UTF-8; else the zero bytes of UTF-16 text without a mark give it away; else chardetng guesses
/// among the legacy encodings.
pub fn detect(sample: &[u8], eof: bool) -> Detected {
    if let Some((encoding, bom_len)) = Encoding::for_bom(sample) {
        return Detected { encoding, bom_len, evidence: Evidence::Bom };
    }
    let guessed = |encoding| Detected { encoding, bom_len: 0, evidence: Evidence::Guessed };
    if let Some(encoding) = utf16_without_bom(sample) {
        return guessed(encoding);
    }
    match std::str::from_utf8(sample) {
        Ok(_) => Detected { encoding: UTF_8, bom_len: 0, evidence: Evidence::ValidUtf8 },
        Err(e) if e.error_len().is_none() && !eof => {
            Detected { encoding: UTF_8, bom_len: 0, evidence: Evidence::ValidUtf8 }
        }
        Err(_) => {
            let mut detector = chardetng::EncodingDetector::new();
            detector.feed(sample, eof);
            guessed(detector.guess(None, false))
        }
    }
}

/// UTF-16 without a byte-order mark, told by its zero bytes: CSV text in any 8-bit encoding has
/// none, while UTF-16 has one in every ASCII character (delimiters and line ends at least), at
/// odd offsets in little-endian and even ones in big-endian. chardetng leaves UTF-16 out, and
/// without this such a file would pass as UTF-8 with a NUL after every character.
fn utf16_without_bom(sample: &[u8]) -> Option<&'static Encoding> {
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in sample.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    // Ideographs such as U+4E00 put a zero in the other half now and then; a clear majority
    // still tells the byte order.
    if odd > 0 && odd >= 4 * even {
        Some(UTF_16LE)
    } else if even > 0 && even >= 4 * odd {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// The legacy encoding chardetng guesses for bytes that turned out not to be UTF-8 (a file
/// whose sample was valid UTF-8 but whose later bytes are not), to name in the error's fix.
pub fn guess_legacy(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    detector.guess(None, false)
}

/// The encoding an explicit `csv.encoding` option names, by any WHATWG label (`utf-8`,
/// `windows-1252`, `latin1`, `iso-8859-1`, `utf-16le`, `shift_jis`, …). Labels of the WHATWG
/// "replacement" encoding are refused: it decodes every file to a single replacement character.
pub fn encoding_for_label(label: &str) -> Result<&'static Encoding> {
    Encoding::for_label_no_replacement(label.as_bytes()).ok_or_else(|| {
        Error::Internal(format!(
            "csv.encoding: {label:?} is not a known encoding (examples: utf-8, windows-1252, iso-8859-15, \
             utf-16le, shift_jis)"
        ))
    })
}

/// An encoding's name as results and messages spell it: its WHATWG name in lowercase
/// (`utf-8`, `windows-1252`, `utf-16le`, `shift_jis`).
pub fn encoding_name(encoding: &'static Encoding) -> String {
    encoding.name().to_ascii_lowercase()
}

/// An opened object: UTF-8 text, and how it was stored.
pub struct Opened<'a> {
    /// The text, decompressed and in UTF-8, without a byte-order mark. Its io errors go through
    /// [`classify_io`].
    pub reader: Box<dyn Read + Send + 'a>,
    /// The compression found in the content.
    pub compression: Compression,
    /// The encoding the text was decoded from.
    pub encoding: &'static Encoding,
    /// What decided the encoding.
    pub evidence: Evidence,
}

impl std::fmt::Debug for Opened<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("compression", &self.compression)
            .field("encoding", &self.encoding)
            .field("evidence", &self.evidence)
            .finish_non_exhaustive()
    }
}

/// Opens the raw bytes of an object as UTF-8 text.
///
/// The compression is the content's: `hint` (from [`compression_hint`]) only makes content
/// without the announced magic bytes an error; `Some(Compression::None)` is no hint. At most
/// `max_bytes` decompressed bytes are read. `encoding`, when given (see
/// [`encoding_for_label`]), replaces detection, except that a byte-order mark at the start of the
/// file wins over it, as in the WHATWG decode algorithm: a mark is written by the program that
/// wrote the file, an option is set for many files at once. [`Opened::evidence`] says which
/// one decided.
///
/// Errors reading the first bytes come back already classified; later ones come out of the
/// reader as io errors for [`classify_io`].
pub fn open<'a, R: Read + Send + 'a>(
    raw: R,
    hint: Option<Compression>,
    encoding: Option<&'static Encoding>,
    max_bytes: u64,
) -> Result<Opened<'a>> {
    let mut source = Source(raw);
    let mut magic = Vec::with_capacity(4);
    (&mut source).take(4).read_to_end(&mut magic).map_err(|e| classify_io(e, None))?;
    let compression = Compression::sniff(&magic);
    if let Some(hint) = hint.filter(|h| *h != Compression::None && *h != compression) {
        let found = if magic.is_empty() {
            "the object is empty".to_owned()
        } else if compression == Compression::None {
            format!("it does not start with the {} magic bytes {}", hint.as_str(), hint.magic())
        } else {
            format!("its content is {compression}")
        };
        return Err(Error::bad(
            BadInputKind::Compression,
            format!("the key ends in {} but is not {hint}: {found}", hint.suffix()),
        ));
    }
    let raw = Cursor::new(magic).chain(source);
    let decompressed: Box<dyn Read + Send + 'a> = match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(Decompressed {
            inner: flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(COMPRESSED_BUFFER, raw)),
            format: compression,
        }),
        Compression::Zstd => {
            let start = |e: std::io::Error| Error::Internal(format!("starting the zstd decoder: {e}"));
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(COMPRESSED_BUFFER, raw))
                    .map_err(start)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(start)?;
            Box::new(Decompressed { inner: decoder, format: compression })
        }
    };
    let mut limited = Limited { inner: decompressed, read: 0, max_bytes, compression };

    // With an explicit encoding only a byte-order mark is looked for.
    let want = if encoding.is_some() { 4 } else { SAMPLE_BYTES };
    let mut sample = Vec::with_capacity(want);
    (&mut limited).take(want as u64).read_to_end(&mut sample).map_err(|e| classify_io(e, None))?;
    let eof = sample.len() < want;
    let detected = match encoding {
        Some(encoding) => match Encoding::for_bom(&sample) {
            Some((encoding, bom_len)) => Detected { encoding, bom_len, evidence: Evidence::Bom },
            None => Detected { encoding, bom_len: 0, evidence: Evidence::Explicit },
        },
        None => detect(&sample, eof),
    };
    sample.drain(..detected.bom_len);
    let text = Cursor::new(sample).chain(limited);
    let reader: Box<dyn Read + Send + 'a> =
        if detected.encoding == UTF_8 { Box::new(text) } else { Box::new(Transcoder::new(text, detected.encoding)) };
    Ok(Opened { reader, compression, encoding: detected.encoding, evidence: detected.evidence })
}

/// Maps an io error that came out of an [`Opened::reader`] (directly, or through the CSV
/// reader) to the engine's error. `line` is where the reader had got to, if known; an encoding
/// error carries its own line. An io error that the chain did not tag is the source's: the
/// untagged case only arises for readers not built by [`open`].
pub fn classify_io(e: std::io::Error, line: Option<u64>) -> Error {
    if !is_fault(&e) {
        return Error::Transient(format!("reading the input: {e}"));
    }
    let fault = match e.into_inner().map(|inner| inner.downcast::<Fault>()) {
        Some(Ok(fault)) => *fault,
        _ => return Error::Internal("an input error lost its cause".into()),
    };
    let at = |kind, message: String| match line {
        Some(line) => Error::bad_line(kind, line, message),
        None => Error::bad(kind, message),
    };
    match fault {
        Fault::Source(cause) => Error::Transient(format!("reading the input: {cause}")),
        Fault::Corrupt { format: Compression::Zstd, cause } if cause.to_string().contains("memory") => at(
            BadInputKind::Compression,
            format!(
                "the zstd stream needs a window larger than {} MiB ({cause}): it was compressed with --long or \
                 --ultra; recompress it without them",
                (1 << ZSTD_WINDOW_LOG_MAX) >> 20
            ),
        ),
        Fault::Corrupt { format, cause } => {
            at(BadInputKind::Compression, format!("{format} stream is corrupt: {cause}"))
        }
        Fault::Limit { max_bytes, compression } => {
            let what = match compression {
                Compression::None => "the input".to_owned(),
                c => format!("the input, decompressed from {c},"),
            };
            at(
                BadInputKind::LimitExceeded,
                format!("{what} is larger than the limit of {max_bytes} bytes; raise csv.max_bytes to convert it"),
            )
        }
        Fault::Malformed { encoding, line, bytes } => {
            let kind = if encoding == UTF_8 { BadInputKind::InvalidUtf8 } else { BadInputKind::InvalidEncoding };
            let name = encoding_name(encoding);
            let bytes = bytes.map(|b| format!(" (bytes {b})")).unwrap_or_default();
            Error::bad_line(
                kind,
                line,
                format!(
                    "the text is not valid {name}{bytes}; set csv.encoding to the encoding the file was written in"
                ),
            )
        }
    }
}

/// What went wrong in the chain, carried inside an `io::Error` through readers (the CSV
/// reader's among them) that only pass io errors on.
#[derive(Debug)]
enum Fault {
    /// Reading the object failed.
    Source(std::io::Error),
    /// The decompressor rejected the stream.
    Corrupt { format: Compression, cause: std::io::Error },
    /// More bytes than allowed, after decompression if the object is compressed.
    Limit { max_bytes: u64, compression: Compression },
    /// Bytes that are not valid in the encoding, at a 1-based line, shown in hex when the
    /// whole sequence is known.
    Malformed { encoding: &'static Encoding, line: u64, bytes: Option<String> },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Source(e) => write!(f, "{e}"),
            Self::Corrupt { format, cause } => write!(f, "{format} stream is corrupt: {cause}"),
            Self::Limit { max_bytes, .. } => write!(f, "more than {max_bytes} bytes (csv.max_bytes)"),
            Self::Malformed { encoding, line, .. } => write!(f, "line {line}: not valid {}", encoding_name(encoding)),
        }
    }
}

impl std::error::Error for Fault {}

impl Fault {
    fn into_io(self, kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::new(kind, self)
    }
}

fn is_fault(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Fault>())
}

/// The object's bytes, with their errors tagged as the source's. An interruption passes as it
/// is, for `read_to_end` and the like to retry.
struct Source<R>(R);

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::Interrupted => e,
            kind => Fault::Source(e).into_io(kind),
        })
    }
}

/// A decompressor's output: its errors that are not the source's are the stream's corruption.
struct Decompressed<R> {
    inner: R,
    format: Compression,
}

impl<R: Read> Read for Decompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if is_fault(&e) || e.kind() == std::io::ErrorKind::Interrupted {
                e
            } else {
                Fault::Corrupt { format: self.format, cause: e }.into_io(std::io::ErrorKind::InvalidData)
            }
        })
    }
}

/// Fails once more than `max_bytes` bytes have been read.
struct Limited<R> {
    inner: R,
    read: u64,
    max_bytes: u64,
    /// For the message: how the bytes were stored.
    compression: Compression,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max_bytes {
            let fault = Fault::Limit { max_bytes: self.max_bytes, compression: self.compression };
            return Err(fault.into_io(std::io::ErrorKind::InvalidData));
        }
        Ok(n)
    }
}

/// Counts line ends as the CSV reader does: `\n`, `\r\n` and a lone `\r` each end one line,
/// also when the `\r\n` is split between two buffers.
#[derive(Debug, Default)]
struct LineCounter {
    ends: u64,
    after_cr: bool,
}

impl LineCounter {
    fn count(&mut self, bytes: &[u8]) {
        for i in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            // A CR ends its line at once; the LF of a CRLF then ends nothing more.
            let after_cr = if i == 0 { self.after_cr } else { bytes[i - 1] == b'\r' };
            if bytes[i] == b'\r' || !after_cr {
                self.ends += 1;
            }
        }
        if let Some(last) = bytes.last() {
            self.after_cr = *last == b'\r';
        }
    }

    /// The 1-based line of the next byte.
    fn line(&self) -> u64 {
        self.ends + 1
    }
}

/// Decodes text in a non-UTF-8 encoding to UTF-8, strictly: a malformed sequence is an error
/// naming its line, never a replacement character. It holds two fixed buffers and nothing that
/// grows with the input.
struct Transcoder<R> {
    inner: R,
    encoding: &'static Encoding,
    decoder: encoding_rs::Decoder,
    input: Box<[u8]>,
    in_pos: usize,
    in_len: usize,
    in_eof: bool,
    output: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
    lines: LineCounter,
    /// Set by a malformed sequence: returned once the text before it has been read, and on
    /// every read after.
    failed: Option<(u64, Option<String>)>,
    finished: bool,
}

impl<R: Read> Transcoder<R> {
    fn new(inner: R, encoding: &'static Encoding) -> Self {
        Self {
            inner,
            encoding,
            // The caller has stripped the byte-order mark; another one would be data.
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; TRANSCODE_INPUT].into_boxed_slice(),
            in_pos: 0,
            in_len: 0,
            in_eof: false,
            output: vec![0; TRANSCODE_OUTPUT].into_boxed_slice(),
            out_pos: 0,
            out_len: 0,
            lines: LineCounter::default(),
            failed: None,
            finished: false,
        }
    }

    /// Decodes the next piece into the output buffer.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.in_pos == self.in_len && !self.in_eof {
            let n = self.inner.read(&mut self.input)?;
            self.in_pos = 0;
            self.in_len = n;
            self.in_eof = n == 0;
        }
        let input = &self.input[self.in_pos..self.in_len];
        let (result, read, written) =
            self.decoder.decode_to_utf8_without_replacement(input, &mut self.output, self.in_eof);
        self.in_pos += read;
        self.out_pos = 0;
        self.out_len = written;
        self.lines.count(&self.output[..written]);
        match result {
            DecoderResult::InputEmpty => self.finished = self.in_eof,
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(bad, extra) => {
                let (bad, extra) = (usize::from(bad), usize::from(extra));
                // The sequence may have begun in an earlier buffer; then its bytes are not all here.
                let bytes = (read >= bad + extra).then(|| {
                    input[read - extra - bad..read - extra]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                self.failed = Some((self.lines.line(), bytes));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_pos < self.out_len {
                let n = buf.len().min(self.out_len - self.out_pos);
                buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if let Some((line, bytes)) = &self.failed {
                let fault = Fault::Malformed { encoding: self.encoding, line: *line, bytes: bytes.clone() };
                return Err(fault.into_io(std::io::ErrorKind::InvalidData));
            }
            if self.finished {
                return Ok(0);
            }
            self.fill()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use encoding_rs::{SHIFT_JIS, WINDOWS_1252};

    use super::*;

    /// Opens `bytes` and reads the text, classifying errors as a caller would.
    fn read_all(
        raw: impl Read + Send + 'static,
        hint: Option<Compression>,
        encoding: Option<&'static Encoding>,
        max_bytes: u64,
    ) -> Result<(Compression, &'static Encoding, Evidence, Vec<u8>)> {
        let mut opened = open(raw, hint, encoding, max_bytes)?;
        let mut text = Vec::new();
        opened.reader.read_to_end(&mut text).map_err(|e| classify_io(e, None))?;
        Ok((opened.compression, opened.encoding, opened.evidence, text))
    }

    fn read_bytes(
        bytes: &[u8],
        hint: Option<Compression>,
    ) -> Result<(Compression, &'static Encoding, Evidence, Vec<u8>)> {
        read_all(Cursor::new(bytes.to_vec()), hint, None, DEFAULT_MAX_BYTES)
    }

    #[test]
    fn a_zstd_window_beyond_the_bound_is_refused_before_it_is_allocated() {
        // An empty frame that declares a 128 MiB window (zstd --long=27 would write such a header).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x88, 0x01, 0x00, 0x00];
        let e = read_bytes(&frame, None).unwrap_err();
        assert_eq!(kind_of(&e), Some(BadInputKind::Compression), "{e}");
        assert!(e.to_string().contains("window larger than 32 MiB"), "{e}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        zstd::encode_all(bytes, 3).unwrap()
    }

    fn utf16(text: &str, little: bool) -> Vec<u8> {
        text.encode_utf16().flat_map(|u| if little { u.to_le_bytes() } else { u.to_be_bytes() }).collect()
    }

    fn kind_of(e: &Error) -> Option<BadInputKind> {
        match e {
            Error::BadInput { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Some bytes, then a failed read, as when a connection drops.
    struct Dropping(Cursor<Vec<u8>>);

    impl Read for Dropping {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer")),
                n => Ok(n),
            }
        }
    }

    /// `left` bytes that repeat `pattern`, made as they are read.
    struct Repeat {
        pattern: &'static [u8],
        pos: usize,
        left: u64,
    }

    impl Read for Repeat {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
            let mut filled = 0;
            while filled < n {
                let rest = &self.pattern[self.pos..];
                let k = rest.len().min(n - filled);
                buf[filled..filled + k].copy_from_slice(&rest[..k]);
                self.pos = (self.pos + k) % self.pattern.len();
                filled += k;
            }
            self.left -= n as u64;
            Ok(n)
        }
    }

    const CSV: &str = "id,name\n1,Ann\n2,Bob\n";

    #[test]
    fn hints_come_from_suffixes() {
        assert_eq!(compression_hint("in/a.csv.gz"), Some(Compression::Gzip));
        assert_eq!(compression_hint("in/a.CSV.GZ"), Some(Compression::Gzip));
        assert_eq!(compression_hint("in/a.csv.zst"), Some(Compression::Zstd));
        assert_eq!(compression_hint("in/a.csv"), None);
        assert_eq!(compression_hint("in/gz"), None);
        assert_eq!(compression_hint("in/fiancé"), None);
        assert_eq!(serde_json::to_string(&Compression::Zstd).unwrap(), "\"zstd\"");
        assert_eq!(Compression::Gzip.as_str(), "gzip");
    }

    #[test]
    fn gzip_is_found_by_content_under_a_csv_name() {
        let (compression, encoding, _, text) = read_bytes(&gzip(CSV.as_bytes()), compression_hint("a.csv")).unwrap();
        assert_eq!((compression, encoding), (Compression::Gzip, UTF_8));
        assert_eq!(text, CSV.as_bytes());
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let mut bytes = gzip(b"id,name\n1,Ann\n");
        bytes.extend(gzip(b"2,Bob\n"));
        let (_, _, _, text) = read_bytes(&bytes, Some(Compression::Gzip)).unwrap();
        assert_eq!(text, CSV.as_bytes());
    }

    #[test]
    fn zstd_frames_are_all_read() {
        let mut bytes = zstd(b"id,name\n1,Ann\n");
        bytes.extend(zstd(b"2,Bob\n"));
        let (compression, _, _, text) = read_bytes(&bytes, None).unwrap();
        assert_eq!(compression, Compression::Zstd);
        assert_eq!(text, CSV.as_bytes());
        let (_, _, _, text) = read_bytes(&bytes, compression_hint("a.csv.zst")).unwrap();
        assert_eq!(text, CSV.as_bytes());
    }

    #[test]
    fn a_suffix_whose_content_lacks_the_magic_is_bad_compression() {
        let e = read_bytes(CSV.as_bytes(), compression_hint("a.csv.gz")).unwrap_err();
        assert_eq!(kind_of(&e), Some(BadInputKind::Compression));
        assert!(e.to_string().contains("ends in .gz but is not gzip"), "{e}");
        let e = read_bytes(&gzip(CSV.as_bytes()), compression_hint("a.csv.zst")).unwrap_err();
        assert!(e.to_string().contains("ends in .zst but is not zstd: its content is gzip"), "{e}");
        let e = read_bytes(b"", compression_hint("a.csv.gz")).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        // No hint is not a hint of plain bytes.
        assert!(read_bytes(&gzip(CSV.as_bytes()), Some(Compression::None)).is_ok());
    }

    #[test]
    fn truncated_or_corrupt_streams_are_bad_compression() {
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{i},{}\n", i * 7).into_bytes()).collect();
        let gz = gzip(&big);
        let truncated = &gz[..gz.len() / 2];
        let e = read_bytes(truncated, None).unwrap_err();
        assert_eq!(kind_of(&e), Some(BadInputKind::Compression), "{e}");
        assert!(e.to_string().contains("gzip stream is corrupt"), "{e}");

        let mut corrupt = gz.clone();
        for b in &mut corrupt[100..400] {
            *b = !*b;
        }
        let e = read_bytes(&corrupt, None).unwrap_err();
        assert!(e.to_string().contains("gzip stream is corrupt"), "{e}");

        // A cut at the end of the gzip trailer, where only the checksum is missing.
        let e = read_bytes(&gz[..gz.len() - 4], None).unwrap_err();
        assert_eq!(kind_of(&e), Some(BadInputKind::Compression), "{e}");

        let zs = zstd(&big);
        let e = read_bytes(&zs[..zs.len() / 2], None).unwrap_err();
        assert!(e.to_string().contains("zstd stream is corrupt"), "{e}");
    }

    #[test]
    fn a_failed_read_of_the_source_is_transient() {
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{i},{}\n", i * 7).into_bytes()).collect();
        for bytes in [big.clone(), gzip(&big), zstd(&big)] {
            let half = bytes[..bytes.len() / 2].to_vec();
            let e = read_all(Dropping(Cursor::new(half)), None, None, DEFAULT_MAX_BYTES).unwrap_err();
            assert!(matches!(&e, Error::Transient(m) if m.contains("connection reset")), "{e}");
        }
        // Before the first byte, while sniffing the compression.
        let e = open(Dropping(Cursor::new(Vec::new())), None, None, DEFAULT_MAX_BYTES).unwrap_err();
        assert!(matches!(e, Error::Transient(_)), "{e}");
        // An io error that did not come out of the chain is taken for the source's.
        let e = classify_io(std::io::Error::other("elsewhere"), Some(3));
        assert!(matches!(e, Error::Transient(_)), "{e}");
    }

    #[test]
    fn the_decompressed_bytes_are_bounded() {
        let (_, _, _, text) = read_all(Cursor::new(CSV.as_bytes()), None, None, CSV.len() as u64).unwrap();
        assert_eq!(text, CSV.as_bytes());
        let e = read_all(Cursor::new(CSV.as_bytes()), None, None, CSV.len() as u64 - 1).unwrap_err();
        assert_eq!(kind_of(&e), Some(BadInputKind::LimitExceeded));
        assert!(e.to_string().contains(&format!("{} bytes", CSV.len() - 1)), "{e}");
        assert!(e.to_string().contains("csv.max_bytes"), "{e}");

        // A small object that expands far beyond the limit stops at the limit.
        let bomb = gzip(&vec![b'0'; 8 << 20]);
        assert!(bomb.len() < 64 << 10);
        let e = read_all(Cursor::new(bomb), None, None, 1 << 20).unwrap_err();
        assert_eq!(kind_of(&e), Some(BadInputKind::LimitExceeded), "{e}");
        assert!(e.to_string().contains("decompressed from gzip, is larger than the limit of 1048576 bytes"), "{e}");
        // Past the sample, the limit comes out of the reader with the line it was reached at.
        let mut opened = open(Cursor::new(vec![b'x'; 200 << 10]), None, None, 100 << 10).unwrap();
        let e = opened.reader.read_to_end(&mut Vec::new()).unwrap_err();
        let e = classify_io(e, Some(1));
        assert!(matches!(e, Error::BadInput { kind: BadInputKind::LimitExceeded, line: Some(1), .. }), "{e}");
    }

    #[test]
    fn utf8_passes_through_without_its_bom() {
        let (_, encoding, evidence, text) = read_bytes("id,name\n1,Zoë\n".as_bytes(), None).unwrap();
        assert_eq!((encoding, evidence), (UTF_8, Evidence::ValidUtf8));
        assert_eq!(text, "id,name\n1,Zoë\n".as_bytes());
        let (_, encoding, evidence, text) = read_bytes("\u{feff}id,name\n1,Zoë\n".as_bytes(), None).unwrap();
        assert_eq!((encoding, evidence), (UTF_8, Evidence::Bom));
        assert_eq!(text, "id,name\n1,Zoë\n".as_bytes());
    }

    #[test]
    fn utf16_with_a_bom_is_transcoded() {
        let csv = "id,name\n1,Zoë\n2,東京\n";
        for (little, expected) in [(true, UTF_16LE), (false, UTF_16BE)] {
            let bytes = utf16(&format!("\u{feff}{csv}"), little);
            let (_, encoding, evidence, text) = read_bytes(&bytes, None).unwrap();
            assert_eq!((encoding, evidence), (expected, Evidence::Bom));
            assert_eq!(String::from_utf8(text).unwrap(), csv);
            // Compressed, the same.
            let (_, encoding, _, text) = read_bytes(&gzip(&bytes), None).unwrap();
            assert_eq!(encoding, expected);
            assert_eq!(String::from_utf8(text).unwrap(), csv);
        }
    }

    #[test]
    fn utf16_without_a_bom_is_told_by_its_zero_bytes() {
        let csv = "id,name\n1,Zoë\n2,一\n";
        for (little, expected) in [(true, UTF_16LE), (false, UTF_16BE)] {
            let (_, encoding, evidence, text) = read_bytes(&utf16(csv, little), None).unwrap();
            assert_eq!((encoding, evidence), (expected, Evidence::Guessed));
            assert_eq!(String::from_utf8(text).unwrap(), csv);
        }
    }

    #[test]
    fn latin1_is_detected_as_windows_1252_and_transcoded_exactly() {
        let csv = "Name;Stadt\nCafé;Müller\nGrüße;Köln\nÉtienne;Besançon\n";
        let (bytes, _, unmappable) = WINDOWS_1252.encode(csv);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&bytes).is_err());
        let (_, encoding, evidence, text) = read_bytes(&bytes, None).unwrap();
        assert_eq!((encoding_name(encoding).as_str(), evidence), ("windows-1252", Evidence::Guessed));
        assert_eq!(String::from_utf8(text).unwrap(), csv);
        // The short line of the brief alone.
        let (bytes, _, _) = WINDOWS_1252.encode("Café;Müller\n");
        let (_, encoding, _, text) = read_bytes(&bytes, None).unwrap();
        assert_eq!(encoding, WINDOWS_1252);
        assert_eq!(text, "Café;Müller\n".as_bytes());
        assert_eq!(guess_legacy(&bytes), WINDOWS_1252);
    }

    #[test]
    fn shift_jis_is_detected_and_transcoded_exactly() {
        let csv = "名前,都市,メモ\n山田太郎,東京,こんにちは世界\n鈴木花子,大阪,ありがとうございます\n佐藤次郎,京都,よろしくお願いします\n";
        let (bytes, _, unmappable) = SHIFT_JIS.encode(csv);
        assert!(!unmappable);
        let (_, encoding, evidence, text) = read_bytes(&bytes, None).unwrap();
        assert_eq!((encoding_name(encoding).as_str(), evidence), ("shift_jis", Evidence::Guessed));
        assert_eq!(String::from_utf8(text).unwrap(), csv);
    }

    #[test]
    fn an_explicit_encoding_replaces_detection_but_not_a_bom() {
        let csv = "id,name\n1,Zoë\n";
        let label = encoding_for_label("utf-16le").unwrap();
        // Without the zero-byte pattern to go by: text that is nothing but CJK.
        let cjk = "名前\n東京\n";
        let (_, encoding, evidence, text) =
            read_all(Cursor::new(utf16(cjk, true)), None, Some(label), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!((encoding, evidence), (UTF_16LE, Evidence::Explicit));
        assert_eq!(String::from_utf8(text).unwrap(), cjk);

        let latin1 = encoding_for_label("latin1").unwrap();
        let (bytes, _, _) = WINDOWS_1252.encode(csv);
        let (_, encoding, evidence, text) =
            read_all(Cursor::new(bytes), None, Some(latin1), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!((encoding, evidence), (WINDOWS_1252, Evidence::Explicit));
        assert_eq!(String::from_utf8(text).unwrap(), csv);

        // A byte-order mark wins over the option.
        let bytes = format!("\u{feff}{csv}").into_bytes();
        let (_, encoding, evidence, text) =
            read_all(Cursor::new(bytes), None, Some(latin1), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!((encoding, evidence), (UTF_8, Evidence::Bom));
        assert_eq!(String::from_utf8(text).unwrap(), csv);
    }

    #[test]
    fn labels_name_whatwg_encodings() {
        for (label, name) in [
            ("utf-8", "utf-8"),
            ("UTF8", "utf-8"),
            ("windows-1252", "windows-1252"),
            ("latin1", "windows-1252"),
            ("iso-8859-1", "windows-1252"),
            (" utf-16le ", "utf-16le"),
            ("shift_jis", "shift_jis"),
            ("iso-8859-15", "iso-8859-15"),
        ] {
            assert_eq!(encoding_name(encoding_for_label(label).unwrap()), name, "{label}");
        }
        for label in ["klingon", "", "iso-2022-kr"] {
            let e = encoding_for_label(label).unwrap_err();
            assert!(matches!(&e, Error::Internal(m) if m.contains("csv.encoding")), "{e}");
        }
    }

    #[test]
    fn detection_tolerates_a_sequence_cut_by_the_sample() {
        let cut = &"Zoë".as_bytes()[..3];
        assert_eq!(detect(cut, false).encoding, UTF_8);
        assert_ne!(detect(cut, true).encoding, UTF_8);
        assert_eq!(detect(b"", true), Detected { encoding: UTF_8, bom_len: 0, evidence: Evidence::ValidUtf8 });
        assert_eq!(detect(b"\xef\xbb\xbfa", true).bom_len, 3);
        assert_eq!(detect(b"\xff\xfea\0", true).bom_len, 2);
    }

    #[test]
    fn empty_input_is_empty_utf8() {
        let (compression, encoding, _, text) = read_bytes(b"", None).unwrap();
        assert_eq!((compression, encoding), (Compression::None, UTF_8));
        assert!(text.is_empty());
        let (_, encoding, _, text) = read_all(Cursor::new(Vec::new()), None, Some(SHIFT_JIS), 0).unwrap();
        assert_eq!(encoding, SHIFT_JIS);
        assert!(text.is_empty());
        let (_, _, _, text) = read_bytes(&gzip(b""), None).unwrap();
        assert!(text.is_empty());
    }

    /// The error that reading `bytes` as Shift_JIS ends with.
    fn malformed(bytes: &[u8]) -> Error {
        read_all(Cursor::new(bytes.to_vec()), None, Some(SHIFT_JIS), DEFAULT_MAX_BYTES).unwrap_err()
    }

    #[test]
    fn a_malformed_sequence_names_its_line_whatever_the_line_ends() {
        for bytes in [&b"id,name\n1,a\n2,\xff\n3,c\n"[..], b"id,name\r\n1,a\r\n2,\xff\r\n", b"id,name\r1,a\r2,\xff\r"] {
            let e = malformed(bytes);
            assert!(matches!(&e, Error::BadInput { kind: BadInputKind::InvalidEncoding, line: Some(3), .. }), "{e}");
            let message = e.to_string();
            assert!(message.contains("line 3") && message.contains("shift_jis"), "{message}");
            assert!(message.contains("(bytes ff)") && message.contains("set csv.encoding"), "{message}");
        }
        // Blank lines count, and a CR right before the bad byte ends its line.
        let e = malformed(b"a\n\n\r\n\r\r\xff");
        assert!(matches!(e, Error::BadInput { line: Some(6), .. }), "{e}");
        // A lead byte whose trail is missing at the end of the file.
        let e = malformed(b"a\nb\x81");
        assert!(matches!(e, Error::BadInput { line: Some(2), .. }), "{e}");
        // An unpaired surrogate in UTF-16.
        let mut bytes = utf16("a\nb\n", true);
        bytes.extend([0x00, 0xd8, b'c', 0]);
        let e = read_all(Cursor::new(bytes), None, Some(UTF_16LE), DEFAULT_MAX_BYTES).unwrap_err();
        assert!(matches!(e, Error::BadInput { kind: BadInputKind::InvalidEncoding, line: Some(3), .. }), "{e}");
    }

    #[test]
    fn the_text_before_a_malformed_sequence_is_read_first() {
        let mut opened = open(Cursor::new(b"a\nb\xff".to_vec()), None, Some(SHIFT_JIS), DEFAULT_MAX_BYTES).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(opened.reader.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"a\nb");
        for _ in 0..2 {
            let e = classify_io(opened.reader.read(&mut buf).unwrap_err(), None);
            assert!(matches!(e, Error::BadInput { line: Some(2), .. }), "{e}");
        }
    }

    #[test]
    fn a_crlf_split_between_buffers_is_one_line_end() {
        let mut lines = LineCounter::default();
        lines.count(b"a\r");
        assert_eq!(lines.line(), 2);
        lines.count(b"\nb\r\n\n");
        assert_eq!(lines.line(), 4);
        lines.count(b"\r");
        lines.count(b"\r");
        lines.count(b"\n");
        assert_eq!(lines.line(), 6);

        // Through the transcoder, with the CR the last byte of its first input buffer.
        let mut bytes = vec![b'x'; TRANSCODE_INPUT - 1];
        bytes.extend(b"\r\ny\n\xff");
        let mut t = Transcoder::new(Cursor::new(bytes), SHIFT_JIS);
        let e = classify_io(t.read_to_end(&mut Vec::new()).unwrap_err(), None);
        assert!(matches!(e, Error::BadInput { line: Some(3), .. }), "{e}");
    }

    #[test]
    fn the_transcoder_holds_only_its_buffers() {
        const LEN: u64 = 100 << 20;
        let pattern = b"Caf\xe9;M\xfcller;\x80\r\n";
        let source = Repeat { pattern, pos: 0, left: LEN };
        let mut t = Transcoder::new(source, WINDOWS_1252);
        let mut buf = vec![0u8; 1 << 20];
        let mut out = 0u64;
        let mut checked = false;
        loop {
            let n = t.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if !checked {
                assert!(buf[..n].starts_with("Café;Müller;€\r\n".as_bytes()));
                checked = true;
            }
            out += n as u64;
            assert_eq!((t.input.len(), t.output.len()), (TRANSCODE_INPUT, TRANSCODE_OUTPUT));
        }
        let rows = LEN / pattern.len() as u64;
        let tail = &pattern[..(LEN % pattern.len() as u64) as usize];
        let utf8_len = |bytes| WINDOWS_1252.decode_without_bom_handling(bytes).0.len() as u64;
        assert_eq!(out, rows * utf8_len(pattern) + utf8_len(tail));
        assert_eq!(t.lines.line(), rows + 1 + u64::from(tail.contains(&b'\r')));
    }

    #[test]
    fn a_latin1_file_decodes_to_the_same_columns() {
        use crate::decode::{CsvDecoder, DecodeOptions};
        use arrow_array::Array;
        let (bytes, _, _) = WINDOWS_1252.encode("name;city\nCafé;Müller\nGrüße;Köln\n");
        let opened = open(Cursor::new(gzip(&bytes)), None, None, DEFAULT_MAX_BYTES).unwrap();
        let opts = DecodeOptions::default();
        let mut decoder = CsvDecoder::new(opened.reader, &opts).unwrap();
        let batch = decoder.next_batch().unwrap().unwrap();
        let city = batch.column(1).as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        assert_eq!((city.value(0), city.value(1), city.len()), ("Müller", "Köln", 2));
    }
}
