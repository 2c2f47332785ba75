//! The storage behind the embedded endpoint: s3s-fs, with reads and multipart uploads done
//! here for throughput.
//!
//! s3s-fs hashes every object with MD5 before serving it, streams it in 4 KiB chunks, and on
//! completing a multipart upload reads and hashes every part again. On a 2-core machine that
//! doubled the time of a large conversion. This layer serves GETs in 1 MiB chunks with an ETag
//! derived from size and mtime, writes objects and parts straight to files (no MD5, no sidecar
//! metadata files: a small-file run spent most of its time creating inodes), and completes an
//! upload by concatenating the parts (copy_file_range) into a temporary file renamed into
//! place. Listing, HEAD and DELETE are s3s-fs's own.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// Bytes per chunk of a GET response.
const GET_CHUNK: usize = 1 << 20;

/// An in-progress multipart upload.
#[derive(Debug)]
struct Upload {
    bucket: String,
    key: String,
    parts: HashMap<i32, PathBuf>,
}

/// s3s-fs plus fast reads and multipart uploads.
#[derive(Debug)]
pub struct LocalFs {
    inner: s3s_fs::FileSystem,
    root: PathBuf,
    uploads: Mutex<HashMap<String, Upload>>,
    counter: AtomicU64,
}

impl LocalFs {
    /// Serves the sub-directories of `root` as buckets.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let inner = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(Self { inner, root: root.canonicalize()?, uploads: Mutex::default(), counter: AtomicU64::new(0) })
    }

    fn object_path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        let rel = Path::new(key);
        let clean =
            !key.is_empty() && !bucket.contains('/') && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !clean {
            return Err(s3_error!(InvalidArgument, "key {key:?} is not a plain relative path"));
        }
        Ok(self.root.join(bucket).join(rel))
    }

    fn scratch_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root.join(format!(".csvlake.{}.{n}.{what}", std::process::id()))
    }
}

fn io_err(e: std::io::Error) -> s3s::S3Error {
    if e.kind() == std::io::ErrorKind::NotFound { s3_error!(NoSuchKey) } else { s3_error!(InternalError, "{e}") }
}

fn etag_of(meta: &std::fs::Metadata) -> ETag {
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).unwrap_or_default();
    ETag::Strong(format!("{:x}-{:x}", meta.len(), mtime.as_nanos()))
}

/// Writes a request body to a new file and returns its size.
async fn write_body(path: &Path, body: Option<StreamingBlob>) -> S3Result<u64> {
    let mut file = tokio::fs::File::create(path).await.map_err(io_err)?;
    let mut size = 0u64;
    if let Some(body) = body {
        let mut body = body.map_err(|e| std::io::Error::other(e.to_string()));
        while let Some(chunk) = body.try_next().await.map_err(|e| s3_error!(IncompleteBody, "{e}"))? {
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io_err)?;
        }
    }
    file.flush().await.map_err(io_err)?;
    Ok(size)
}

#[async_trait::async_trait]
impl S3 for LocalFs {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        if req.input.range.is_some() || req.input.part_number.is_some() {
            return self.inner.get_object(req).await;
        }
        let path = self.object_path(&req.input.bucket, &req.input.key)?;
        let file = tokio::fs::File::open(&path).await.map_err(io_err)?;
        let meta = file.metadata().await.map_err(io_err)?;
        if meta.is_dir() {
            return Err(s3_error!(NoSuchKey));
        }
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(ReaderStream::with_capacity(file, GET_CHUNK))),
            content_length: Some(i64::try_from(meta.len()).unwrap_or(i64::MAX)),
            last_modified: meta.modified().ok().map(Timestamp::from),
            e_tag: Some(etag_of(&meta)),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.object_path(&input.bucket, &input.key)?;
        let id = format!("{}-{}", std::process::id(), self.counter.fetch_add(1, Ordering::Relaxed));
        let upload = Upload { bucket: input.bucket.clone(), key: input.key.clone(), parts: HashMap::new() };
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
        if upload.bucket != input.bucket || upload.key != input.key {
            return Err(s3_error!(InvalidRequest, "the upload belongs to another key"));
        }
        let requested: Vec<i32> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .iter()
            .map(|p| p.part_number.unwrap_or(0))
            .collect();
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
        let dest = self.object_path(&input.bucket, &input.key)?;
        let tmp = self.scratch_path("object");
        let all_parts: Vec<PathBuf> = upload.parts.values().cloned().collect();
        let joined = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::Metadata> {
            let result = (|| {
                let mut out = std::fs::File::create(&tmp)?;
                for f in &files {
                    std::io::copy(&mut std::fs::File::open(f)?, &mut out)?;
                }
                drop(out);
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::rename(&tmp, &dest)?;
                std::fs::metadata(&dest)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            for p in all_parts {
                let _ = std::fs::remove_file(p);
            }
            result
        })
        .await
        .map_err(|e| s3_error!(InternalError, "{e}"))?
        .map_err(io_err)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(etag_of(&joined)),
            ..Default::default()
        }))
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
        self.inner.list_objects_v2(req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let dest = self.object_path(&input.bucket, &input.key)?;
        let tmp = self.scratch_path("object");
        let written = async {
            write_body(&tmp, input.body).await?;
            if let Some(dir) = dest.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(io_err)?;
            }
            tokio::fs::rename(&tmp, &dest).await.map_err(io_err)?;
            tokio::fs::metadata(&dest).await.map_err(io_err)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        Ok(S3Response::new(PutObjectOutput { e_tag: Some(etag_of(&written?)), ..Default::default() }))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
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
