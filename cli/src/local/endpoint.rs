//! The embedded S3 endpoint: local directories served as buckets by s3s on 127.0.0.1, with
//! SigV4 authentication on. Local runs therefore take exactly the production I/O path
//! (aws-sdk-s3 over HTTP); there is no second "local file" implementation.
//!
//! The storage is [`LocalFs`]: objects are the files under the bucket directories, with one
//! ETag per version everywhere (GET, HEAD, PUT, CompleteMultipartUpload, listings), listings in
//! key order a page at a time, user metadata (`x-amz-meta-*`) in an extended attribute of each
//! file, and conditional requests (`If-Match`, `If-None-Match`, ...) answered as S3 answers
//! them, atomically for concurrent writes of one key. See [`super::fs`] for the details.
//!
//! The served root is a scratch directory holding one symlink per bucket, created beside the
//! last bucket's directory (where outputs go) so that the endpoint's temporary files, renamed
//! into place when complete, stay on that filesystem. Listings follow the symlinks and never
//! show the scratch directory. Dropping [`LocalS3`] stops the server and removes the scratch
//! directory; the served directories are untouched.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;

use csvlake_engine::{Error, Result};
use csvlake_s3::Endpoint;

use super::fs::LocalFs;

/// A running embedded endpoint.
#[derive(Debug)]
pub struct LocalS3 {
    endpoint: Endpoint,
    stop: watch::Sender<bool>,
    _scratch: tempfile::TempDir,
}

/// A directory to serve as a bucket.
#[derive(Clone, Debug)]
pub struct LocalBucket {
    /// Bucket name (3–63 lowercase letters, digits and hyphens).
    pub name: String,
    /// The directory; it is created when missing.
    pub dir: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{what} {}: {e}", path.display()))
}

impl LocalS3 {
    /// Serves `buckets` on an ephemeral loopback port. The scratch root is created beside the
    /// last bucket's directory, which is where outputs go.
    pub async fn start(buckets: &[LocalBucket]) -> Result<Self> {
        Self::start_with(buckets, |fs| fs).await
    }

    /// Like [`LocalS3::start`], with the storage wrapped by `wrap`: tests inject faults there.
    pub async fn start_with<S: s3s::S3>(buckets: &[LocalBucket], wrap: impl FnOnce(LocalFs) -> S) -> Result<Self> {
        let last = buckets.last().ok_or_else(|| Error::Internal("no bucket to serve".into()))?;
        let mut dirs = Vec::new();
        for b in buckets {
            std::fs::create_dir_all(&b.dir).map_err(|e| io("creating", &b.dir, e))?;
            dirs.push(std::fs::canonicalize(&b.dir).map_err(|e| io("resolving", &b.dir, e))?);
        }
        let parent = dirs.last().and_then(|d| d.parent()).map_or_else(|| last.dir.clone(), Path::to_path_buf);
        let scratch = tempfile::Builder::new()
            .prefix(".csvlake-s3-")
            .tempdir_in(&parent)
            .map_err(|e| io("creating a scratch directory in", &parent, e))?;
        for (b, dir) in buckets.iter().zip(&dirs) {
            let link = scratch.path().join(&b.name);
            std::os::unix::fs::symlink(dir, &link).map_err(|e| io("linking", &link, e))?;
        }
        let fs = LocalFs::new(scratch.path()).map_err(|e| Error::Internal(format!("s3s-fs: {e}")))?;

        let access_key = format!("csvlake-{}", std::process::id());
        let secret_key = {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            format!(
                "{:016x}{:016x}",
                h.finish(),
                std::collections::hash_map::RandomState::new().build_hasher().finish()
            )
        };
        let service = {
            let mut b = S3ServiceBuilder::new(wrap(fs));
            b.set_auth(SimpleAuth::from_single(access_key.clone(), secret_key.clone()));
            b.build()
        };
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::Internal(format!("binding 127.0.0.1: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        let _ = socket.set_nodelay(true);
                        let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                        let mut stop_conn = stopped.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = conn => {}
                                _ = stop_conn.changed() => {}
                            }
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        let endpoint = Endpoint { url: format!("http://{addr}"), access_key, secret_key, region: "us-east-1".into() };
        Ok(Self { endpoint, stop, _scratch: scratch })
    }

    /// The endpoint's URL and credentials.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A client for this endpoint.
    pub fn client(&self) -> aws_sdk_s3::Client {
        csvlake_s3::endpoint_client(&self.endpoint)
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
