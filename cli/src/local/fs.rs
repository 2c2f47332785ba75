//! The storage behind the embedded endpoint: objects are plain files under the bucket
//! directories, served as S3 serves them for everything the pipeline does.
//!
//! - **One ETag per object version.** GET, HEAD, PUT, CompleteMultipartUpload and listings all
//!   report the ETag derived from the file's size and modification time (nanoseconds). Every
//!   write stamps its file with a modification time of its own (the clock, or one nanosecond
//!   past the previous write's), so two versions never share an ETag. Nothing is hashed.
//! - **Listing** (module `list`) walks the bucket directory in key order and reads only what
//!   a page needs: `prefix`, `start-after`, continuation tokens (the last key of the previous
//!   page), `max-keys` (default and most 1,000), and the delimiter `/`; other delimiters are
//!   s3s-fs's. Keys carry their size, modification time and ETag. Directories are not
//!   objects, and the endpoint's scratch and sidecar files (`.csvlake*`) and s3s-fs's metadata
//!   files are not listed (nor can they be written as keys).
//! - **User metadata** (`x-amz-meta-*`) given to PUT or CreateMultipartUpload is returned by
//!   GET and HEAD. It is kept as JSON in the extended attribute `user.csvlake.metadata` of the
//!   object's file, set before the file is renamed into place, so an object and its metadata
//!   appear together and an overwrite without metadata leaves none. Where the filesystem refuses
//!   extended attributes, it goes to a sidecar file `.csvlake.<name>.metadata.json` beside the
//!   object, which names the ETag of the version it belongs to. Content-Type and the other
//!   standard headers are not kept.
//! - **Conditional requests.** PUT and CompleteMultipartUpload take `If-None-Match: *` and
//!   `If-Match` (an ETag, quoted or not, or `*`), and answer 412 PreconditionFailed when the
//!   key exists, or does not exist with that ETag. GET and HEAD take `If-Match` and
//!   `If-Unmodified-Since` (412), `If-None-Match` and `If-Modified-Since` (304 NotModified).
//!   DELETE, and each key of DeleteObjects, takes `If-Match` and `x-amz-if-match-size` (412).
//!   A read or delete with preconditions of a key that is not there answers 404 NoSuchKey, as
//!   S3 does. Writes and deletes check their preconditions and commit under a lock per key, so
//!   of concurrent `If-None-Match: *` writes of one key exactly one succeeds (within this
//!   process: another program writing the directories is not held back).
//!
//! For throughput, GETs (ranged or not) stream 1 MiB chunks; objects and parts are written
//! straight to files (s3s-fs would hash every object with MD5, stream 4 KiB chunks and write a
//! metadata file per object: on a 2-core machine that doubled the time of a large conversion),
//! and an upload completes by concatenating its parts (copy_file_range) into a temporary file
//! renamed into place. Buckets, `partNumber` GETs and HEADs, and listings with a delimiter other
//! than `/` are s3s-fs's.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{S3, S3Error, S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;
use xattr::FileExt;

use super::list;

/// Bytes per chunk of a GET response.
const GET_CHUNK: usize = 1 << 20;

/// The extended attribute holding an object's user metadata as a JSON object.
const METADATA_XATTR: &str = "user.csvlake.metadata";

/// Locks that writes and deletes of keys hashing alike share.
const KEY_LOCKS: usize = 256;

/// The most keys a listing returns, and the default.
const MAX_KEYS: i32 = 1000;

/// An in-progress multipart upload.
#[derive(Debug)]
struct Upload {
    bucket: String,
    key: String,
    metadata: Option<Metadata>,
    parts: HashMap<i32, PathBuf>,
}

/// Locks held while a write or delete checks its preconditions and commits.
#[derive(Clone, Debug)]
struct KeyLocks(Arc<[Mutex<()>]>);

impl KeyLocks {
    fn new() -> Self {
        Self((0..KEY_LOCKS).map(|_| Mutex::new(())).collect())
    }

    fn lock(&self, path: &Path) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        let i = usize::try_from(h.finish() % self.0.len() as u64).unwrap_or(0);
        self.0[i].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Modification times for new objects, each its own.
#[derive(Clone, Debug, Default)]
struct Stamps(Arc<AtomicU64>);

impl Stamps {
    /// Now, or just past the last time given (nanoseconds since the epoch).
    fn next(&self) -> SystemTime {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let next = |last: u64| now.max(last.saturating_add(1));
        let prev = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(next(l)));
        SystemTime::UNIX_EPOCH + Duration::from_nanos(next(prev.unwrap_or_else(|l| l)))
    }
}

/// The endpoint's storage: see the module documentation.
#[derive(Debug)]
pub struct LocalFs {
    inner: s3s_fs::FileSystem,
    root: PathBuf,
    uploads: Mutex<HashMap<String, Upload>>,
    counter: AtomicU64,
    stamps: Stamps,
    locks: KeyLocks,
    listings: Arc<list::DirCache>,
    xattrs: bool,
}

impl LocalFs {
    /// Serves the sub-directories of `root` as buckets.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let inner = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(Self {
            inner,
            root: root.canonicalize()?,
            uploads: Mutex::default(),
            counter: AtomicU64::new(0),
            stamps: Stamps::default(),
            locks: KeyLocks::new(),
            listings: Arc::default(),
            xattrs: true,
        })
    }

    /// Keeps user metadata in sidecar files, as on a filesystem that refuses extended
    /// attributes: for testing that fallback on one that does not.
    pub fn without_xattrs(mut self) -> Self {
        self.xattrs = false;
        self
    }

    /// The file of `key`, when `key` can name one: `/`-separated names, none of them empty,
    /// `.`, `..` or reserved ([`list::is_reserved`]).
    fn object_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        let bucket_ok = list::is_segment(bucket) && !bucket.contains('/');
        (bucket_ok && key.split('/').all(list::is_segment)).then(|| self.root.join(bucket).join(key))
    }

    /// The file to write `key` to.
    fn write_path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        self.object_path(bucket, key).ok_or_else(|| {
            s3_error!(InvalidArgument, "key {key:?} cannot be stored: it has an empty, relative or reserved name in it")
        })
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// The error for a key that is not there: NoSuchBucket when the bucket is not either.
    async fn missing(&self, bucket: &str) -> S3Error {
        match tokio::fs::metadata(self.bucket_dir(bucket)).await {
            Ok(m) if m.is_dir() => s3_error!(NoSuchKey),
            _ => s3_error!(NoSuchBucket),
        }
    }

    fn scratch_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root.join(format!(".csvlake.{}.{n}.{what}", std::process::id()))
    }

    /// A page of keys of `bucket`.
    async fn list_page(
        &self,
        bucket: &str,
        prefix: Option<String>,
        after: Option<String>,
        delimited: bool,
        max_keys: Option<i32>,
    ) -> S3Result<list::Page> {
        let max_keys = max_keys.unwrap_or(MAX_KEYS);
        if max_keys < 0 {
            return Err(s3_error!(InvalidArgument, "max-keys must not be negative"));
        }
        if !list::is_segment(bucket) || bucket.contains('/') {
            return Err(s3_error!(NoSuchBucket));
        }
        let dir = self.bucket_dir(bucket);
        let limit = usize::try_from(max_keys.min(MAX_KEYS)).unwrap_or(0);
        let cache = self.listings.clone();
        blocking(move || {
            if !dir.is_dir() {
                return Err(s3_error!(NoSuchBucket));
            }
            let prefix = prefix.unwrap_or_default();
            let query = list::Query { prefix: &prefix, after: after.as_deref(), delimited, limit };
            let mut page = list::list(&dir, &query, &cache).map_err(internal)?;
            for o in &mut page.objects {
                o.etag = etag_value(&dir.join(&o.key), &o.meta);
            }
            Ok(page)
        })
        .await
    }

    /// Opens `key` with its user metadata; None when it is not there.
    async fn open(&self, bucket: &str, key: &str) -> S3Result<Option<Opened>> {
        let Some(path) = self.object_path(bucket, key) else { return Ok(None) };
        let xattrs = self.xattrs;
        blocking(move || {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(internal(e)),
            };
            let meta = file.metadata().map_err(internal)?;
            if !meta.is_file() {
                return Ok(None);
            }
            let etag = etag_value(&path, &meta);
            let user = read_metadata(&path, &file, &etag, xattrs);
            Ok(Some(Opened { file, meta, etag, user }))
        })
        .await
    }

    async fn complete(
        &self,
        input: &CompleteMultipartUploadInput,
        upload: &Upload,
    ) -> S3Result<CompleteMultipartUploadOutput> {
        if upload.bucket != input.bucket || upload.key != input.key {
            return Err(s3_error!(InvalidRequest, "the upload belongs to another key"));
        }
        let requested: Vec<i32> = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .map(|parts| parts.iter().map(|p| p.part_number.unwrap_or(0)).collect())
            .unwrap_or_default();
        let mut files = Vec::new();
        for n in &requested {
            match upload.parts.get(n) {
                Some(p) => files.push(p.clone()),
                None => return Err(s3_error!(InvalidPart, "part {n} was not uploaded")),
            }
        }
        if files.is_empty() || !requested.windows(2).all(|w| w[0] < w[1]) {
            return Err(s3_error!(InvalidPartOrder));
        }
        let dest = self.write_path(&input.bucket, &input.key)?;
        // Fail before copying when the preconditions already fail; they are checked again
        // when the object is renamed into place.
        if input.if_match.is_some() || input.if_none_match.is_some() {
            let current = match tokio::fs::metadata(&dest).await {
                Ok(m) if m.is_file() => Some(etag_value(&dest, &m)),
                _ => None,
            };
            check_write(input.if_match.as_ref(), input.if_none_match.as_ref(), current.as_deref())?;
        }
        let tmp = self.scratch_path("object");
        let commit = Commit {
            tmp: tmp.clone(),
            dest,
            bucket_dir: self.bucket_dir(&input.bucket),
            stamps: self.stamps.clone(),
            metadata: upload.metadata.clone(),
            if_match: input.if_match.clone(),
            if_none_match: input.if_none_match.clone(),
            locks: self.locks.clone(),
            xattrs: self.xattrs,
        };
        let (_, etag) = blocking(move || {
            let joined = (|| -> io::Result<()> {
                let mut out = std::fs::File::create(&tmp)?;
                for f in &files {
                    std::io::copy(&mut std::fs::File::open(f)?, &mut out)?;
                }
                Ok(())
            })();
            if let Err(e) = joined {
                let _ = std::fs::remove_file(&tmp);
                return Err(internal(e));
            }
            commit.run()
        })
        .await?;
        Ok(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        })
    }
}

/// An object opened for reading.
struct Opened {
    file: std::fs::File,
    meta: std::fs::Metadata,
    etag: String,
    user: Option<Metadata>,
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    s3_error!(InternalError, "{e}")
}

/// Whether an error opening a key's file means that there is no such key.
fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> S3Result<T> + Send + 'static) -> S3Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

/// The extended attribute that caches a file's ETag: `<stamp> <md5 hex>`, where the stamp
/// (size, modification time, inode) names the version it was computed from.
const ETAG_XATTR: &str = "user.csvlake.etag";

/// What identifies a version of a file without reading it.
fn version_stamp(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).unwrap_or_default();
    format!("{:x}-{:x}-{:x}", meta.len(), mtime.as_nanos(), meta.ino())
}

/// The ETag of a file's current version, unquoted: the MD5 of its content, as S3 gives for an
/// object written in one PUT, so that the same bytes written again keep their ETag. It is
/// computed once per version and cached in an extended attribute (setting one changes neither
/// the content nor the modification time); where the filesystem has none, it is computed on each
/// request. A file that cannot be read gets its version stamp instead.
fn etag_value(path: &Path, meta: &std::fs::Metadata) -> String {
    let stamp = version_stamp(meta);
    if let Ok(Some(cached)) = xattr::get(path, ETAG_XATTR)
        && let Some((at, etag)) = std::str::from_utf8(&cached).ok().and_then(|c| c.split_once(' '))
        && at == stamp
    {
        return etag.to_owned();
    }
    match md5_of(path) {
        Ok(etag) => {
            let _ = xattr::set(path, ETAG_XATTR, format!("{stamp} {etag}").as_bytes());
            etag
        }
        Err(_) => stamp,
    }
}

fn md5_of(path: &Path) -> std::io::Result<String> {
    use md5::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether an `If-Match` or `If-None-Match` value names the version whose ETag is `etag`.
fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == etag,
    }
}

/// The preconditions of a write, given the ETag of the version it would replace.
fn check_write(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    current: Option<&str>,
) -> S3Result<()> {
    if let Some(condition) = if_none_match {
        if !condition.is_any() {
            return Err(s3_error!(NotImplemented, "If-None-Match on a write takes only *"));
        }
        if current.is_some() {
            return Err(s3_error!(PreconditionFailed, "the object exists"));
        }
    }
    if let Some(condition) = if_match {
        match current {
            None => return Err(s3_error!(PreconditionFailed, "no object has this key")),
            Some(etag) if !etag_matches(condition, etag) => {
                return Err(s3_error!(PreconditionFailed, "the object's ETag differs"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The preconditions of a read, as RFC 9110 orders them: `If-Match` (or else
/// `If-Unmodified-Since`), then `If-None-Match` (or else `If-Modified-Since`).
fn check_read(
    opened: &Opened,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = opened.meta.mtime();
    if let Some(condition) = if_match {
        if !etag_matches(condition, &opened.etag) {
            return Err(s3_error!(PreconditionFailed, "the object's ETag differs"));
        }
    } else if if_unmodified_since.and_then(epoch_seconds).is_some_and(|since| modified > since) {
        return Err(s3_error!(PreconditionFailed, "the object was modified since"));
    }
    if let Some(condition) = if_none_match {
        if etag_matches(condition, &opened.etag) {
            return Err(s3_error!(NotModified));
        }
    } else if if_modified_since.and_then(epoch_seconds).is_some_and(|since| modified <= since) {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// Whole seconds since the epoch (HTTP dates have no fractions).
fn epoch_seconds(t: &Timestamp) -> Option<i64> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::EpochSeconds, &mut buf).ok()?;
    let secs: f64 = std::str::from_utf8(&buf).ok()?.parse().ok()?;
    Some(secs.floor() as i64)
}

/// The sidecar file holding the user metadata of `object` where extended attributes are
/// refused.
fn sidecar_path(object: &Path) -> PathBuf {
    let name = object.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    object.with_file_name(format!(".csvlake.{name}.metadata.json"))
}

/// The user metadata of the version of `path` with ETag `etag`, opened as `file`.
fn read_metadata(path: &Path, file: &std::fs::File, etag: &str, xattrs: bool) -> Option<Metadata> {
    if xattrs && let Ok(Some(json)) = file.get_xattr(METADATA_XATTR) {
        return serde_json::from_slice(&json).ok();
    }
    let json = std::fs::read(sidecar_path(path)).ok()?;
    let sidecar: serde_json::Value = serde_json::from_slice(&json).ok()?;
    if sidecar.get("etag")?.as_str()? != etag {
        return None;
    }
    serde_json::from_value(sidecar.get("metadata")?.clone()).ok()
}

/// Moving a written file into place as the new version of a key.
struct Commit {
    tmp: PathBuf,
    dest: PathBuf,
    bucket_dir: PathBuf,
    stamps: Stamps,
    metadata: Option<Metadata>,
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    locks: KeyLocks,
    xattrs: bool,
}

impl Commit {
    /// Stamps the file, attaches the metadata, and under the key's lock checks the
    /// preconditions and renames the file into place. Returns the new version's file metadata;
    /// the temporary file is gone either way.
    fn run(self) -> S3Result<(std::fs::Metadata, String)> {
        let result = self.try_run();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }

    fn try_run(&self) -> S3Result<(std::fs::Metadata, String)> {
        if !self.bucket_dir.is_dir() {
            return Err(s3_error!(NoSuchBucket));
        }
        let file = std::fs::OpenOptions::new().write(true).open(&self.tmp).map_err(internal)?;
        file.set_modified(self.stamps.next()).map_err(internal)?;
        let meta = file.metadata().map_err(internal)?;
        // Computed (and cached on the file) before it is renamed into place.
        let etag = etag_value(&self.tmp, &meta);
        let metadata = self.metadata.as_ref().filter(|m| !m.is_empty());
        let mut sidecar = None;
        if let Some(m) = metadata {
            let json = serde_json::to_vec(m).map_err(internal)?;
            if !(self.xattrs && file.set_xattr(METADATA_XATTR, &json).is_ok()) {
                let doc = serde_json::json!({ "etag": etag, "metadata": m });
                sidecar = Some(serde_json::to_vec(&doc).map_err(internal)?);
            }
        }
        drop(file);

        let _guard = self.locks.lock(&self.dest);
        let current = match std::fs::metadata(&self.dest) {
            Ok(m) if m.is_file() => Some(etag_value(&self.dest, &m)),
            Ok(_) => None,
            Err(e) if is_absent(&e) => None,
            Err(e) => return Err(internal(e)),
        };
        check_write(self.if_match.as_ref(), self.if_none_match.as_ref(), current.as_deref())?;
        if let Some(dir) = self.dest.parent() {
            std::fs::create_dir_all(dir).map_err(internal)?;
        }
        let side = sidecar_path(&self.dest);
        match &sidecar {
            Some(json) => std::fs::write(&side, json).map_err(internal)?,
            // An earlier version's sidecar names another ETag; it goes all the same.
            None => match std::fs::remove_file(&side) {
                Ok(()) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(internal(e)),
            },
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(internal)?;
        Ok((meta, etag))
    }
}

/// Deletes the file of a key under the key's lock, if its preconditions hold. A key that is not
/// there is deleted already, unless there are preconditions (NoSuchKey, as S3 answers).
fn delete_file(
    bucket_dir: &Path,
    path: Option<&Path>,
    if_match: Option<&ETagCondition>,
    if_match_size: Option<i64>,
    locks: &KeyLocks,
) -> S3Result<()> {
    if !bucket_dir.is_dir() {
        return Err(s3_error!(NoSuchBucket));
    }
    let conditional = if_match.is_some() || if_match_size.is_some();
    let absent = || if conditional { Err(s3_error!(NoSuchKey)) } else { Ok(()) };
    let Some(path) = path else { return absent() };
    let _guard = locks.lock(path);
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return absent(),
        Err(e) if is_absent(&e) => return absent(),
        Err(e) => return Err(internal(e)),
    };
    if if_match.is_some_and(|c| !etag_matches(c, &etag_value(path, &meta))) {
        return Err(s3_error!(PreconditionFailed, "the object's ETag differs"));
    }
    if if_match_size.is_some_and(|size| u64::try_from(size).ok() != Some(meta.len())) {
        return Err(s3_error!(PreconditionFailed, "the object's size differs"));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => {}
        Err(e) => return Err(internal(e)),
    }
    let _ = std::fs::remove_file(sidecar_path(path));
    Ok(())
}

/// Writes a request body to a new file and returns its size.
async fn write_body(path: &Path, body: Option<StreamingBlob>) -> S3Result<u64> {
    let mut file = tokio::fs::File::create(path).await.map_err(internal)?;
    let mut size = 0u64;
    if let Some(body) = body {
        let mut body = body.map_err(|e| std::io::Error::other(e.to_string()));
        while let Some(chunk) = body.try_next().await.map_err(|e| s3_error!(IncompleteBody, "{e}"))? {
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(internal)?;
        }
    }
    file.flush().await.map_err(internal)?;
    Ok(size)
}

fn listed_object(o: list::Listed) -> Object {
    Object {
        e_tag: Some(ETag::Strong(o.etag)),
        last_modified: o.meta.modified().ok().map(Timestamp::from),
        size: Some(i64::try_from(o.meta.len()).unwrap_or(i64::MAX)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        key: Some(o.key),
        ..Default::default()
    }
}

/// The contents and common prefixes of a page, None when empty.
fn page_parts(page: list::Page) -> (Option<Vec<Object>>, Option<Vec<CommonPrefix>>) {
    let objects: Vec<Object> = page.objects.into_iter().map(listed_object).collect();
    let prefixes: Vec<CommonPrefix> = page.prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect();
    ((!objects.is_empty()).then_some(objects), (!prefixes.is_empty()).then_some(prefixes))
}

#[async_trait::async_trait]
impl S3 for LocalFs {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        if req.input.part_number.is_some() {
            return self.inner.get_object(req).await;
        }
        let input = req.input;
        let Some(opened) = self.open(&input.bucket, &input.key).await? else {
            return Err(self.missing(&input.bucket).await);
        };
        check_read(
            &opened,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let Opened { mut file, meta, etag, user } = opened;
        let size = meta.len();
        let (start, len, content_range) = match &input.range {
            None => (0, size, None),
            Some(range) => {
                let r = range.check(size)?;
                (r.start, r.end - r.start, Some(format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1))))
            }
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).map_err(internal)?;
        }
        let body = tokio::fs::File::from_std(file).take(len);
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(ReaderStream::with_capacity(body, GET_CHUNK))),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            last_modified: meta.modified().ok().map(Timestamp::from),
            e_tag: Some(ETag::Strong(etag)),
            metadata: user,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        if req.input.part_number.is_some() {
            return self.inner.head_object(req).await;
        }
        let input = req.input;
        let Some(opened) = self.open(&input.bucket, &input.key).await? else {
            return Err(self.missing(&input.bucket).await);
        };
        check_read(
            &opened,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let Opened { meta, etag, user, .. } = opened;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(i64::try_from(meta.len()).unwrap_or(i64::MAX)),
            last_modified: meta.modified().ok().map(Timestamp::from),
            e_tag: Some(ETag::Strong(etag)),
            metadata: user,
            ..Default::default()
        }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let dest = self.write_path(&input.bucket, &input.key)?;
        // Refused before the body is read.
        check_write(None, input.if_none_match.as_ref(), None)?;
        let tmp = self.scratch_path("object");
        if let Err(e) = write_body(&tmp, input.body).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let commit = Commit {
            tmp,
            dest,
            bucket_dir: self.bucket_dir(&input.bucket),
            stamps: self.stamps.clone(),
            metadata: input.metadata,
            if_match: input.if_match,
            if_none_match: input.if_none_match,
            locks: self.locks.clone(),
            xattrs: self.xattrs,
        };
        let (_, etag) = blocking(move || commit.run()).await?;
        Ok(S3Response::new(PutObjectOutput { e_tag: Some(ETag::Strong(etag)), ..Default::default() }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.write_path(&input.bucket, &input.key)?;
        let id = format!("{}-{}", std::process::id(), self.counter.fetch_add(1, Ordering::Relaxed));
        let upload = Upload {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            metadata: input.metadata,
            parts: HashMap::new(),
        };
        self.uploads.lock().map_err(|_| s3_error!(InternalError))?.insert(id.clone(), upload);
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(InvalidArgument, "part number must be between 1 and 10000"));
        }
        if !self.uploads.lock().map_err(|_| s3_error!(InternalError))?.contains_key(&input.upload_id) {
            return Err(s3_error!(NoSuchUpload));
        }
        let path = self.scratch_path("part");
        let size = match write_body(&path, input.body).await {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        // Ok(old part) or Err(this part) when the upload was aborted meanwhile.
        let stored = match self.uploads.lock() {
            Ok(mut uploads) => match uploads.get_mut(&input.upload_id) {
                Some(upload) => Ok(upload.parts.insert(input.part_number, path)),
                None => Err(path),
            },
            Err(_) => Err(path),
        };
        match stored {
            Ok(Some(old)) => {
                let _ = tokio::fs::remove_file(old).await;
            }
            Ok(None) => {}
            Err(orphan) => {
                let _ = tokio::fs::remove_file(orphan).await;
                return Err(s3_error!(NoSuchUpload));
            }
        }
        let e_tag = ETag::Strong(format!("{}-{}-{size:x}", input.upload_id, input.part_number));
        Ok(S3Response::new(UploadPartOutput { e_tag: Some(e_tag), ..Default::default() }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let upload = self.uploads.lock().map_err(|_| s3_error!(InternalError))?.remove(&input.upload_id);
        let Some(upload) = upload else { return Err(s3_error!(NoSuchUpload)) };
        match self.complete(&input, &upload).await {
            Ok(output) => {
                for p in upload.parts.into_values() {
                    let _ = tokio::fs::remove_file(p).await;
                }
                Ok(S3Response::new(output))
            }
            Err(e) => {
                // The upload stays, to be completed again or aborted.
                if let Ok(mut uploads) = self.uploads.lock() {
                    uploads.insert(input.upload_id, upload);
                }
                Err(e)
            }
        }
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let upload = self.uploads.lock().map_err(|_| s3_error!(InternalError))?.remove(&req.input.upload_id);
        let Some(upload) = upload else { return Err(s3_error!(NoSuchUpload)) };
        for p in upload.parts.into_values() {
            let _ = tokio::fs::remove_file(p).await;
        }
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        if req.input.delimiter.as_deref().is_some_and(|d| d != "/") {
            return self.inner.list_objects_v2(req).await;
        }
        let input = req.input;
        let after = input.continuation_token.clone().max(input.start_after.clone());
        let delimited = input.delimiter.is_some();
        let page = self.list_page(&input.bucket, input.prefix.clone(), after, delimited, input.max_keys).await?;
        let key_count = page.objects.len() + page.prefixes.len();
        let next = page.last.clone().filter(|_| page.truncated);
        let truncated = page.truncated;
        let (contents, common_prefixes) = page_parts(page);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            start_after: input.start_after,
            continuation_token: input.continuation_token,
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            is_truncated: Some(truncated),
            next_continuation_token: next,
            contents,
            common_prefixes,
            ..Default::default()
        }))
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        if req.input.delimiter.as_deref().is_some_and(|d| d != "/") {
            return self.inner.list_objects(req).await;
        }
        let input = req.input;
        let delimited = input.delimiter.is_some();
        let page = self
            .list_page(&input.bucket, input.prefix.clone(), input.marker.clone(), delimited, input.max_keys)
            .await?;
        let next = page.last.clone().filter(|_| page.truncated);
        let truncated = page.truncated;
        let (contents, common_prefixes) = page_parts(page);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            marker: input.marker,
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS)),
            is_truncated: Some(truncated),
            next_marker: next,
            contents,
            common_prefixes,
            ..Default::default()
        }))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        if req.input.key.ends_with('/') {
            // A folder: s3s-fs removes it when empty.
            return self.inner.delete_object(req).await;
        }
        let input = req.input;
        let bucket_dir = self.bucket_dir(&input.bucket);
        let path = self.object_path(&input.bucket, &input.key);
        let locks = self.locks.clone();
        blocking(move || {
            delete_file(&bucket_dir, path.as_deref(), input.if_match.as_ref(), input.if_match_size, &locks)
        })
        .await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let bucket_dir = self.bucket_dir(&input.bucket);
        if !tokio::fs::metadata(&bucket_dir).await.is_ok_and(|m| m.is_dir()) {
            return Err(s3_error!(NoSuchBucket));
        }
        let objects: Vec<(ObjectIdentifier, Option<PathBuf>)> = input
            .delete
            .objects
            .into_iter()
            .map(|o| {
                let path = self.object_path(&input.bucket, o.key.trim_end_matches('/'));
                (o, path)
            })
            .collect();
        let quiet = input.delete.quiet.unwrap_or(false);
        let locks = self.locks.clone();
        let (deleted, errors) = blocking(move || {
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            for (o, path) in objects {
                let result = if o.key.ends_with('/') {
                    // A folder goes when empty, as s3s-fs does it.
                    if let Some(p) = &path {
                        let _ = std::fs::remove_dir(p);
                    }
                    Ok(())
                } else {
                    let if_match = o.e_tag.clone().map(ETagCondition::ETag);
                    delete_file(&bucket_dir, path.as_deref(), if_match.as_ref(), o.size, &locks)
                };
                match result {
                    Ok(()) if quiet => {}
                    Ok(()) => {
                        deleted.push(DeletedObject { key: Some(o.key), version_id: o.version_id, ..Default::default() })
                    }
                    Err(e) => errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        message: e.message().map(str::to_owned),
                        key: Some(o.key),
                        version_id: o.version_id,
                    }),
                }
            }
            Ok((deleted, errors))
        })
        .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }
}
