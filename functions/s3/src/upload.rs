//! Streaming uploads that are staged, then committed or discarded as one decision.
//!
//! A [`PartSink`] is the `std::io::Write` a format writer writes into. It cuts the stream into
//! parts of at least 5 MiB and hands them to [`stage`], which starts a multipart upload once a
//! second part exists and uploads parts while the writer goes on. An object that fits in one
//! part is held and sent by a single PUT. Nothing is visible under the key until
//! [`Staged::commit`]; [`Staged::discard`] aborts, so a failed file leaves no object behind.
//!
//! Bodies are sent with an unsigned payload: SigV4 then signs the headers only, which spares a
//! SHA-256 pass over every byte. Integrity still holds: against AWS the SDK adds a CRC32
//! checksum that S3 verifies, and TLS protects the transfer.

use std::io::{self, Write};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Error, Result, sdk_error};

/// The S3 minimum for every part but the last.
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Default part size.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once per object.
pub const PARTS_IN_FLIGHT: usize = 2;
const MAX_PARTS: u64 = 10_000;
/// Attempts of a CompleteMultipartUpload, beyond the SDK's own retries of each.
const COMPLETE_ATTEMPTS: u32 = 3;

/// Whether the object under `key` is the one an upload would have made: its size, and every
/// user metadata entry it was given (the provenance names the conversion).
async fn is_in_place(client: &Client, bucket: &str, key: &str, size: u64, metadata: &Metadata) -> Result<bool> {
    let head = match client.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => h,
        Err(e) if crate::status(&e) == Some(404) => return Ok(false),
        Err(e) => return Err(sdk_error("HeadObject", bucket, key, e)),
    };
    let found = head.metadata().cloned().unwrap_or_default();
    let same_size = head.content_length().and_then(|l| u64::try_from(l).ok()) == Some(size);
    Ok(same_size && !metadata.is_empty() && metadata.iter().all(|(k, v)| found.get(k) == Some(v)))
}

/// User metadata of an object (`x-amz-meta-*`).
pub type Metadata = std::collections::BTreeMap<String, String>;

/// A piece of the object: its bytes and whether it is the last one. The first part carries the
/// object's user metadata.
#[derive(Debug)]
pub struct Part {
    bytes: Bytes,
    last: bool,
    metadata: Option<Metadata>,
    /// The CRC64NVME of the whole object, on the last part.
    crc64: Option<u64>,
}

/// The CRC64NVME of some bytes.
fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, bytes)
}

/// A checksum as S3 headers carry it: base64 of its big-endian bytes.
fn checksum_header(crc: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// The largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 << 30;
/// The largest object S3 accepts.
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;
/// Parts cut at one size before the size doubles.
const PARTS_PER_SIZE: u64 = 1_000;

/// The size of part `number` (from 1) of an upload that starts with parts of `base` bytes: it
/// doubles every 1,000 parts, up to 5 GiB, so that 10,000 parts hold any object S3 accepts
/// (5 TiB) whatever the first estimate was.
pub fn part_size_at(base: usize, number: u64) -> usize {
    let doublings = u32::try_from((number.saturating_sub(1) / PARTS_PER_SIZE).min(20)).unwrap_or(20);
    base.saturating_mul(1 << doublings).min(MAX_PART_SIZE)
}

/// Part size for an object expected to reach `estimate` bytes, staying under 10,000 parts.
pub fn part_size_for(estimate: u64) -> usize {
    let needed = estimate.div_ceil(MAX_PARTS - 1_000);
    usize::try_from(needed).unwrap_or(usize::MAX).max(DEFAULT_PART_SIZE)
}

/// The writing end: buffers bytes into parts and sends them to the uploader.
#[derive(Debug)]
pub struct PartSink {
    tx: mpsc::Sender<Part>,
    buf: Vec<u8>,
    /// The first parts' size.
    base: usize,
    /// The size of the part being filled.
    part_size: usize,
    /// Parts sent.
    parts: u64,
    written: u64,
    metadata: Option<Metadata>,
    /// The CRC64NVME of every byte written.
    crc: crc_fast::Digest,
}

impl PartSink {
    /// A sink and the receiving end that [`stage`] consumes.
    pub fn new(part_size: usize) -> (Self, mpsc::Receiver<Part>) {
        let part_size = part_size.max(MIN_PART_SIZE);
        let (tx, rx) = mpsc::channel(1);
        let sink = Self {
            tx,
            buf: Vec::new(),
            base: part_size,
            part_size,
            parts: 0,
            written: 0,
            metadata: Some(Metadata::new()),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
        };
        (sink, rx)
    }

    /// Sets the object's user metadata. It travels with the first part, so it can be set until
    /// the first part is sent: before more than a part size has been written.
    pub fn set_metadata(&mut self, metadata: Metadata) -> io::Result<()> {
        match &mut self.metadata {
            Some(m) => {
                *m = metadata;
                Ok(())
            }
            None => Err(io::Error::other("the object's metadata is set before its first part is sent")),
        }
    }

    /// Counts a part about to be sent, and sizes the next one.
    fn next_part(&mut self) {
        self.parts += 1;
        self.part_size = part_size_at(self.base, self.parts + 1);
    }

    /// Refuses bytes beyond what one S3 object may hold, before they are uploaded.
    fn check_size(&self) -> io::Result<()> {
        if self.written > MAX_OBJECT_SIZE {
            return Err(io::Error::other(format!(
                "the output would exceed {MAX_OBJECT_SIZE} bytes, the largest object S3 accepts"
            )));
        }
        Ok(())
    }

    fn send(&mut self, last: bool) -> io::Result<()> {
        self.next_part();
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        let metadata = self.metadata.take();
        let crc64 = last.then(|| self.crc.finalize());
        self.tx
            .blocking_send(Part { bytes, last, metadata, crc64 })
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends the last part and returns the object's size. Dropping a sink without calling this
    /// makes the uploader abort.
    pub fn finish(mut self) -> io::Result<u64> {
        self.send(true)?;
        Ok(self.written)
    }

    /// [`Write::write_all`] for async callers, which must not block their thread.
    pub async fn write_async(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        self.check_size()?;
        if self.buf.len() >= self.part_size {
            self.send_async(false).await?;
        }
        Ok(())
    }

    /// [`PartSink::finish`] for async callers.
    pub async fn finish_async(mut self) -> io::Result<u64> {
        self.send_async(true).await?;
        Ok(self.written)
    }

    async fn send_async(&mut self, last: bool) -> io::Result<()> {
        self.next_part();
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        let metadata = self.metadata.take();
        let crc64 = last.then(|| self.crc.finalize());
        self.tx
            .send(Part { bytes, last, metadata, crc64 })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

/// An object written from async code as a stream of bytes: [`PartSink`] and [`stage`] together,
/// committed at [`ObjectWriter::commit`]. Dropped uncommitted, it leaves no object behind.
#[derive(Debug)]
pub struct ObjectWriter {
    client: Client,
    sink: PartSink,
    staging: tokio::task::JoinHandle<Result<Option<Staged>>>,
}

impl ObjectWriter {
    /// Starts an object at `bucket`/`key`.
    pub fn new(client: &Client, bucket: &str, key: &str) -> Self {
        let (sink, rx) = PartSink::new(DEFAULT_PART_SIZE);
        let staging = tokio::spawn(stage(client.clone(), bucket.to_owned(), key.to_owned(), rx));
        Self { client: client.clone(), sink, staging }
    }

    /// Appends bytes.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.sink.write_async(data).await.is_err() {
            // The uploader stopped: its own error says why.
            return Err(self.stopped().await);
        }
        Ok(())
    }

    /// Sends the rest and makes the object visible; returns its size.
    pub async fn commit(self) -> Result<u64> {
        let Self { client, sink, staging } = self;
        let size = sink.finish_async().await;
        let staged = staging.await.map_err(|e| Error::Internal(format!("upload task: {e}")))??;
        let staged = staged.ok_or_else(|| Error::Internal("the upload ended without its last part".into()))?;
        let size = size.map_err(|e| Error::Internal(format!("upload: {e}")))?;
        staged.commit(&client).await?;
        Ok(size)
    }

    async fn stopped(&mut self) -> Error {
        match (&mut self.staging).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => Error::Internal("the upload stopped early".into()),
            Err(e) => Error::Internal(format!("upload task: {e}")),
        }
    }
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.part_size + (self.part_size >> 3));
        }
        self.crc.update(data);
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        self.check_size()?;
        if self.buf.len() >= self.part_size {
            self.send(false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts are cut by size only; the last one goes in `finish`.
        Ok(())
    }
}

/// An uploaded but not yet visible object.
#[derive(Debug)]
pub enum Staged {
    /// Small enough for one PUT, held until commit.
    Single {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The whole object.
        body: Bytes,
        /// Its user metadata.
        metadata: Metadata,
    },
    // (The CRC64NVME of a single object is computed at commit, from its body.)
    /// A multipart upload with every part uploaded.
    Multipart {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// Parts in order.
        parts: Vec<CompletedPart>,
        /// Total size.
        size: u64,
        /// The user metadata it was created with.
        metadata: Metadata,
        /// The CRC64NVME of the whole object.
        crc64: u64,
    },
}

/// Receives parts from a [`PartSink`] and uploads them, returning the staged object, or
/// `None` when the sink was dropped without `finish` (the writer gave up). Either way, and when
/// a part fails, a started multipart upload is aborted.
pub async fn stage(
    client: Client,
    bucket: String,
    key: String,
    mut rx: mpsc::Receiver<Part>,
) -> Result<Option<Staged>> {
    let Some(mut first) = rx.recv().await else { return Ok(None) };
    let metadata = first.metadata.take().unwrap_or_default();
    if first.last {
        return Ok(Some(Staged::Single { bucket, key, body: first.bytes, metadata }));
    }
    let created = client
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .set_metadata(
            Some(metadata.clone().into_iter().collect()).filter(|m: &std::collections::HashMap<_, _>| !m.is_empty()),
        )
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .map_err(|e| sdk_error("CreateMultipartUpload", &bucket, &key, e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let result = upload_parts(&client, &bucket, &key, &upload_id, first, &mut rx).await;
    match result {
        Ok(Some((parts, size, crc64))) => {
            Ok(Some(Staged::Multipart { bucket, key, upload_id, parts, size, metadata, crc64 }))
        }
        Ok(None) => {
            abort(&client, &bucket, &key, &upload_id).await;
            Ok(None)
        }
        Err(e) => {
            abort(&client, &bucket, &key, &upload_id).await;
            Err(e)
        }
    }
}

async fn upload_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    first: Part,
    rx: &mut mpsc::Receiver<Part>,
) -> Result<Option<(Vec<CompletedPart>, u64, u64)>> {
    // Spawned, so that parts progress while this task waits for the writer's next part.
    let mut in_flight = tokio::task::JoinSet::new();
    let mut done = Vec::new();
    let mut size = 0u64;
    let mut number = 0i32;
    let mut next = Some(first);
    let mut full = None;
    while let Some(part) = next.take() {
        full = part.crc64.or(full);
        let part_crc = checksum_header(crc64(&part.bytes));
        while in_flight.len() >= PARTS_IN_FLIGHT {
            done.push(joined(in_flight.join_next().await)?);
        }
        number += 1;
        size += part.bytes.len() as u64;
        let req = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_crc64_nvme(&part_crc)
            .body(ByteStream::from(part.bytes))
            .customize()
            .disable_payload_signing();
        let (n, b, k) = (number, bucket.to_owned(), key.to_owned());
        in_flight.spawn(async move {
            let out = req.send().await.map_err(|e| sdk_error("UploadPart", &b, &k, e))?;
            Ok::<_, Error>(
                CompletedPart::builder().part_number(n).set_e_tag(out.e_tag).checksum_crc64_nvme(part_crc).build(),
            )
        });
        if !part.last {
            match rx.recv().await {
                Some(p) => next = Some(p),
                None => return Ok(None),
            }
        }
    }
    while !in_flight.is_empty() {
        done.push(joined(in_flight.join_next().await)?);
    }
    done.sort_by_key(|p| p.part_number());
    let full = full.ok_or_else(|| Error::Internal("the last part carried no checksum".into()))?;
    Ok(Some((done, size, full)))
}

fn joined(r: Option<std::result::Result<Result<CompletedPart>, tokio::task::JoinError>>) -> Result<CompletedPart> {
    match r {
        Some(Ok(part)) => part,
        Some(Err(e)) => Err(Error::Internal(format!("part upload task: {e}"))),
        None => Err(Error::Internal("no part upload in flight".into())),
    }
}

async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    if let Err(e) = client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id).send().await {
        tracing::warn!(bucket, key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "abort of multipart upload failed; the bucket lifecycle rule removes it");
    }
}

impl Staged {
    /// Bucket and key.
    pub fn location(&self) -> (&str, &str) {
        match self {
            Self::Single { bucket, key, .. } | Self::Multipart { bucket, key, .. } => (bucket, key),
        }
    }

    /// Makes the object visible under its key.
    pub async fn commit(self, client: &Client) -> Result<()> {
        match self {
            Self::Single { bucket, key, body, metadata } => {
                client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .set_metadata(
                        Some(metadata.into_iter().collect())
                            .filter(|m: &std::collections::HashMap<_, _>| !m.is_empty()),
                    )
                    .checksum_crc64_nvme(checksum_header(crc64(&body)))
                    .body(ByteStream::from(body))
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutObject", &bucket, &key, e))?;
            }
            Self::Multipart { bucket, key, upload_id, parts, size, metadata, crc64 } => {
                let upload = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
                let mut last = None;
                // The upload id stays valid until the upload is completed or aborted, so a
                // completion that failed (or whose answer was lost) is tried again.
                for attempt in 0..COMPLETE_ATTEMPTS {
                    if attempt > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                    }
                    let r = client
                        .complete_multipart_upload()
                        .bucket(&bucket)
                        .key(&key)
                        .upload_id(&upload_id)
                        .multipart_upload(upload.clone())
                        .checksum_crc64_nvme(checksum_header(crc64))
                        .checksum_type(ChecksumType::FullObject)
                        .send()
                        .await;
                    match r {
                        Ok(_) => return Ok(()),
                        // A completion that took effect, answered again: the object tells.
                        Err(e) if crate::error_code(&e) == Some("NoSuchUpload") => {
                            if is_in_place(client, &bucket, &key, size, &metadata).await? {
                                return Ok(());
                            }
                            return Err(sdk_error("CompleteMultipartUpload", &bucket, &key, e));
                        }
                        Err(e) => {
                            let e = sdk_error("CompleteMultipartUpload", &bucket, &key, e);
                            if !matches!(e, Error::Transient(_)) {
                                last = Some(e);
                                break;
                            }
                            last = Some(e);
                        }
                    }
                }
                abort(client, &bucket, &key, &upload_id).await;
                return Err(last.unwrap_or_else(|| Error::Internal("CompleteMultipartUpload was not tried".into())));
            }
        }
        Ok(())
    }

    /// Drops the object: aborts a multipart upload, forgets a held body.
    pub async fn discard(self, client: &Client) {
        if let Self::Multipart { bucket, key, upload_id, .. } = self {
            abort(client, &bucket, &key, &upload_id).await;
        }
    }
}

/// How far ahead of this machine's clock S3 may date an upload: S3 refuses requests signed
/// more than 15 minutes away from its own clock.
pub const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Aborts every multipart upload in progress under `prefix` (see [`abort_stale`]), whenever it
/// was started: for a caller that knows no one else writes there. Returns how many.
pub async fn abort_in_progress(client: &Client, bucket: &str, prefix: &str, delimiter: Option<&str>) -> Result<u64> {
    abort_stale(client, bucket, prefix, delimiter, std::time::SystemTime::now() + CLOCK_SKEW).await
}

/// Aborts the multipart uploads under `prefix` (with `delimiter`, only those directly under it)
/// that were started before `before`: uploads of runs that died, which nothing else would ever
/// complete or abort. Returns how many. An endpoint that cannot list uploads aborts none.
pub async fn abort_stale(
    client: &Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    before: std::time::SystemTime,
) -> Result<u64> {
    let mut aborted = 0;
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if matches!(crate::error_code(&e), Some("NotImplemented")) || crate::status(&e) == Some(501) => {
                tracing::debug!(bucket, prefix, "the endpoint does not list multipart uploads");
                return Ok(0);
            }
            Err(e) => return Err(sdk_error("ListMultipartUploads", bucket, prefix, e)),
        };
        for u in page.uploads() {
            let (Some(key), Some(id)) = (u.key(), u.upload_id()) else { continue };
            let started = u.initiated().and_then(|t| std::time::SystemTime::try_from(*t).ok());
            if started.is_some_and(|t| t < before) {
                abort(client, bucket, key, id).await;
                tracing::info!(bucket, key, "aborted a stale multipart upload");
                aborted += 1;
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(aborted);
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
        if key_marker.is_none() {
            return Ok(aborted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_that_ten_thousand_hold_the_largest_object() {
        assert_eq!(part_size_at(DEFAULT_PART_SIZE, 1), DEFAULT_PART_SIZE);
        assert_eq!(part_size_at(DEFAULT_PART_SIZE, 1_000), DEFAULT_PART_SIZE);
        assert_eq!(part_size_at(DEFAULT_PART_SIZE, 1_001), 2 * DEFAULT_PART_SIZE);
        let total: u64 = (1..=MAX_PARTS).map(|n| part_size_at(DEFAULT_PART_SIZE, n) as u64).sum();
        assert!(total >= MAX_OBJECT_SIZE, "{total}");
        assert!((1..=MAX_PARTS).all(|n| part_size_at(MIN_PART_SIZE, n) <= MAX_PART_SIZE));
    }

    #[tokio::test]
    async fn the_last_part_carries_the_crc64nvme_of_the_whole_object() {
        // The check value of CRC-64/NVME.
        assert_eq!(crc64(b"123456789"), 0xae8b_1486_0a79_9888);
        assert_eq!(checksum_header(0xae8b_1486_0a79_9888), "rosUhgp5mIg=");
        let (mut sink, mut rx) = PartSink::new(MIN_PART_SIZE);
        let data: Vec<u8> = (0..(MIN_PART_SIZE + 1000)).map(|i| (i % 251) as u8).collect();
        let expected = crc64(&data);
        let writer = tokio::task::spawn_blocking(move || {
            sink.write_all(&data).unwrap();
            sink.finish().unwrap()
        });
        let first = rx.recv().await.unwrap();
        let last = rx.recv().await.unwrap();
        assert_eq!((first.crc64, last.last, last.crc64), (None, true, Some(expected)));
        assert_eq!(writer.await.unwrap(), (MIN_PART_SIZE + 1000) as u64);
    }

    #[tokio::test]
    async fn a_sink_cuts_growing_parts_and_refuses_an_object_s3_cannot_hold() {
        let (mut sink, mut rx) = PartSink::new(MIN_PART_SIZE);
        sink.parts = 999;
        sink.part_size = part_size_at(sink.base, 1_000);
        let chunk = vec![0u8; 1 << 20];
        let writer = tokio::task::spawn_blocking(move || {
            for _ in 0..(5 + 10) {
                sink.write_all(&chunk).unwrap();
            }
            sink.written = MAX_OBJECT_SIZE;
            sink.write(&[0]).unwrap_err()
        });
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!((first.bytes.len(), second.bytes.len()), (MIN_PART_SIZE, 2 * MIN_PART_SIZE));
        let e = writer.await.unwrap();
        assert!(e.to_string().contains("largest object S3 accepts"), "{e}");
    }
}
