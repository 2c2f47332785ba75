//! A table's state in S3 (see `csvlake_contract::tables`): leases taken and released with
//! conditional writes, the `current.json` pointer, and index generations read and written as
//! zstd-compressed JSON lines sorted by key.

use std::io::{BufRead, BufReader, Read, Write};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use csvlake_contract::tables::{self, Current, IndexEntry, Lease, names};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, error_code, sdk_error, status};

/// How a write depends on what is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Whatever is there.
    None,
    /// Only if nothing is there (`If-None-Match: *`).
    Absent,
    /// Only if the object has this ETag (`If-Match`).
    Matches(String),
}

/// Whether an S3 error says that a precondition failed (412), or that a concurrent conditional
/// write won (409 ConditionalRequestConflict).
fn is_precondition_failure<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    matches!(status(e), Some(412 | 409))
        || matches!(error_code(e), Some("PreconditionFailed" | "ConditionalRequestConflict"))
}

/// Writes a small JSON object under a precondition: `Ok(Some(etag))` when written, `Ok(None)`
/// when the precondition failed.
pub async fn put_json(
    client: &Client,
    bucket: &str,
    key: &str,
    value: &impl Serialize,
    precondition: &Precondition,
) -> Result<Option<String>> {
    let body = serde_json::to_vec_pretty(value)?;
    let mut req =
        client.put_object().bucket(bucket).key(key).content_type("application/json").body(ByteStream::from(body));
    req = match precondition {
        Precondition::None => req,
        Precondition::Absent => req.if_none_match("*"),
        Precondition::Matches(etag) => req.if_match(quoted(etag)),
    };
    match req.send().await {
        Ok(out) => Ok(Some(out.e_tag().map(|t| tables::bare_etag(t).to_owned()).unwrap_or_default())),
        Err(e) if is_precondition_failure(&e) => Ok(None),
        Err(e) => Err(sdk_error("PutObject", bucket, key, e)),
    }
}

fn quoted(etag: &str) -> String {
    format!("\"{}\"", tables::bare_etag(etag))
}

/// Reads a small JSON object and its ETag; `None` when it does not exist.
pub async fn get_json_tagged<T: DeserializeOwned>(
    client: &Client,
    bucket: &str,
    key: &str,
    what: &str,
) -> Result<Option<(T, String)>> {
    let mut attempt = 1;
    let (body, etag) = loop {
        let resp = match client.get_object().bucket(bucket).key(key).send().await {
            Ok(r) => r,
            Err(e) if error_code(&e) == Some("NoSuchKey") || status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(sdk_error("GetObject", bucket, key, e)),
        };
        let etag = resp.e_tag().map(|t| tables::bare_etag(t).to_owned()).unwrap_or_default();
        let read = crate::collect(resp.body, bucket, key).await;
        if !crate::read_again(attempt, &read) {
            break (read?, etag);
        }
        attempt += 1;
    };
    let value = serde_json::from_slice(&body)
        .map_err(|e| Error::Internal(format!("s3://{bucket}/{key} is not {what}: {e}")))?;
    Ok(Some((value, etag)))
}

/// Whether an object exists, by listing its key as a prefix: a role that may list a prefix
/// but not the whole bucket can tell a missing object from a forbidden one this way.
pub async fn exists(client: &Client, bucket: &str, key: &str) -> Result<bool> {
    let page = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(key)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| sdk_error("ListObjectsV2", bucket, key, e))?;
    Ok(page.contents().iter().any(|o| o.key() == Some(key)))
}

/// The table's `current.json` and its ETag, if the table has an index.
pub async fn read_current(
    client: &Client,
    bucket: &str,
    output_prefix: &str,
    table: &str,
) -> Result<Option<(Current, String)>> {
    let key = tables::state_key(output_prefix, table, names::CURRENT);
    if !exists(client, bucket, &key).await? {
        return Ok(None);
    }
    get_json_tagged(client, bucket, &key, "a table's current.json").await
}

/// Reads an index generation whole (it is compressed: about 30 bytes per entry).
pub async fn read_index(client: &Client, bucket: &str, key: &str) -> Result<IndexReader> {
    let body = crate::get_bytes(client, bucket, key).await?;
    IndexReader::new(std::io::Cursor::new(body), &format!("s3://{bucket}/{key}"))
}

/// The entries of an index generation, in key order, decompressed as they are read.
pub struct IndexReader {
    lines: Box<dyn BufRead + Send>,
    what: String,
    line: String,
    last: Option<String>,
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader").field("what", &self.what).finish_non_exhaustive()
    }
}

impl IndexReader {
    /// Reads a zstd-compressed generation from `raw`.
    pub fn new(raw: impl Read + Send + 'static, what: &str) -> Result<Self> {
        let decoder = zstd::stream::read::Decoder::new(raw).map_err(|e| Error::Internal(format!("{what}: {e}")))?;
        Ok(Self {
            lines: Box::new(BufReader::with_capacity(256 << 10, decoder)),
            what: what.to_owned(),
            line: String::new(),
            last: None,
        })
    }

    /// The next entry; entries must come in strictly increasing key order.
    pub fn next_entry(&mut self) -> Result<Option<IndexEntry>> {
        loop {
            self.line.clear();
            let n = self
                .lines
                .read_line(&mut self.line)
                .map_err(|e| Error::Internal(format!("reading {}: {e}", self.what)))?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.trim().is_empty() {
                continue;
            }
            let entry: IndexEntry = serde_json::from_str(&self.line)
                .map_err(|e| Error::Internal(format!("{} is not an index generation: {e}", self.what)))?;
            if self.last.as_deref().is_some_and(|last| last >= entry.key.as_str()) {
                return Err(Error::Internal(format!("{}: keys out of order at {:?}", self.what, entry.key)));
            }
            self.last = Some(entry.key.clone());
            return Ok(Some(entry));
        }
    }
}

/// Writes an index generation: entries in key order, as zstd-compressed JSON lines.
pub struct IndexWriter<W: Write> {
    encoder: zstd::stream::write::Encoder<'static, W>,
    entries: u64,
    last: Option<String>,
}

impl<W: Write> IndexWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Result<Self> {
        let encoder = zstd::stream::write::Encoder::new(out, 3).map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        Ok(Self { encoder, entries: 0, last: None })
    }

    /// Appends an entry, whose key must follow the last one's.
    pub fn push(&mut self, entry: &IndexEntry) -> Result<()> {
        if self.last.as_deref().is_some_and(|last| last >= entry.key.as_str()) {
            return Err(Error::Internal(format!("index entries out of order at {:?}", entry.key)));
        }
        serde_json::to_writer(&mut self.encoder, entry)?;
        self.encoder.write_all(b"\n").map_err(|e| Error::Internal(format!("writing an index: {e}")))?;
        self.entries += 1;
        self.last = Some(entry.key.clone());
        Ok(())
    }

    /// Entries written.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Ends the compressed stream and returns the output.
    pub fn finish(self) -> Result<W> {
        self.encoder.finish().map_err(|e| Error::Internal(format!("finishing an index: {e}")))
    }
}

/// A lease held by this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The run whose expired lease was taken over, if any.
    pub taken_over_from: Option<String>,
}

/// Why a lease could not be taken.
#[derive(Debug)]
pub enum LeaseRefused {
    /// Another run holds it until `expires`.
    Held {
        /// That run.
        run_id: String,
        /// Until when.
        expires: String,
    },
    /// S3 failed.
    Failed(Error),
}

impl From<Error> for LeaseRefused {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// Takes the lease of a table for `run_id` until `now + seconds`: creates `lease.json` if absent,
/// takes over an expired one, and accepts one this run already holds (a retried plan).
pub async fn acquire_lease(
    client: &Client,
    bucket: &str,
    output_prefix: &str,
    table: &str,
    run_id: &str,
    seconds: u64,
) -> std::result::Result<Held, LeaseRefused> {
    let key = tables::state_key(output_prefix, table, names::LEASE);
    let now = chrono::Utc::now();
    let expires =
        now + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000).min(100 * 365 * 86_400));
    let lease =
        Lease { run_id: run_id.to_owned(), expires: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) };
    // A few rounds: the lease may be released or taken over between our requests.
    for _ in 0..5 {
        if put_json(client, bucket, &key, &lease, &Precondition::Absent).await?.is_some() {
            return Ok(Held { taken_over_from: None });
        }
        let Some((held, etag)) = get_json_tagged::<Lease>(client, bucket, &key, "a table lease").await? else {
            continue;
        };
        if held.run_id == run_id {
            return Ok(Held { taken_over_from: None });
        }
        let live = chrono::DateTime::parse_from_rfc3339(&held.expires).is_ok_and(|t| t > now);
        if live {
            return Err(LeaseRefused::Held { run_id: held.run_id, expires: held.expires });
        }
        if put_json(client, bucket, &key, &lease, &Precondition::Matches(etag)).await?.is_some() {
            tracing::warn!(table, previous = %held.run_id, expired = %held.expires, "took over an expired lease");
            return Ok(Held { taken_over_from: Some(held.run_id) });
        }
    }
    Err(LeaseRefused::Failed(Error::Transient(format!(
        "s3://{bucket}/{key}: the lease changed hands repeatedly; retry"
    ))))
}

/// Releases the lease of a table if `run_id` holds it. Returns whether it did.
pub async fn release_lease(
    client: &Client,
    bucket: &str,
    output_prefix: &str,
    table: &str,
    run_id: &str,
) -> Result<bool> {
    let key = tables::state_key(output_prefix, table, names::LEASE);
    match get_json_tagged::<Lease>(client, bucket, &key, "a table lease").await? {
        Some((held, _)) if held.run_id == run_id => {
            client
                .delete_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteObject", bucket, &key, e))?;
            Ok(true)
        }
        Some((held, _)) => {
            tracing::warn!(table, holder = %held.run_id, "the lease is held by another run; left in place");
            Ok(false)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> IndexEntry {
        IndexEntry {
            key: key.into(),
            etag: "e".into(),
            size: 1,
            fingerprint: "f".into(),
            outputs: Vec::new(),
            schema: None,
        }
    }

    #[test]
    fn an_index_round_trips_in_key_order_and_refuses_disorder() {
        let mut w = IndexWriter::new(Vec::new()).unwrap();
        for k in ["a", "b/c", "b/d"] {
            w.push(&entry(k)).unwrap();
        }
        assert!(w.push(&entry("b/c")).is_err());
        assert_eq!(w.entries(), 3);
        let bytes = w.finish().unwrap();
        let mut r = IndexReader::new(std::io::Cursor::new(bytes), "x").unwrap();
        let mut keys = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            keys.push(e.key);
        }
        assert_eq!(keys, ["a", "b/c", "b/d"]);
    }
}
