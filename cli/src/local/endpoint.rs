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

/// The scratch directory's name: this prefix, the process id, `-` and a random suffix.
const SCRATCH_PREFIX: &str = ".csvlake-s3-";

/// Removes the scratch directories beside `parent`'s buckets that a killed process left behind
/// (their multipart uploads in progress with them): those whose process is gone. Where processes
/// cannot be checked (no `/proc`), nothing is removed. The bucket symlinks inside are removed,
/// never followed.
fn remove_abandoned_scratch(parent: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !proc.join(pid.to_string()).exists() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(dir = %entry.path().display(), pid, "removed a killed run's scratch directory")
                }
                Err(e) => {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove a killed run's scratch directory")
                }
            }
        }
    }
}

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
        remove_abandoned_scratch(&parent);
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_killed_runs_scratch_directory_is_removed_and_its_buckets_kept() {
        let root = tempfile::tempdir().unwrap();
        let lake = root.path().join("lake");
        std::fs::create_dir_all(lake.join("out")).unwrap();
        std::fs::write(lake.join("out/a.parquet"), b"kept").unwrap();
        // A process id above Linux's largest (4,194,304) is no running process.
        let dead = root.path().join(format!("{SCRATCH_PREFIX}999999999-abc"));
        std::fs::create_dir(&dead).unwrap();
        std::os::unix::fs::symlink(&lake, dead.join("lake")).unwrap();
        std::fs::write(dead.join(".csvlake.999999999.0.part"), b"an upload's part").unwrap();
        // A live process's directory stays.
        let live = root.path().join(format!("{SCRATCH_PREFIX}1-abc"));
        std::fs::create_dir(&live).unwrap();

        let server = LocalS3::start(&[LocalBucket { name: "lake".into(), dir: lake.clone() }]).await.unwrap();
        assert!(!dead.exists(), "the dead process's scratch directory is removed");
        assert!(live.exists() || !Path::new("/proc/1").exists(), "a live process's is kept");
        assert_eq!(
            std::fs::read(lake.join("out/a.parquet")).unwrap(),
            b"kept",
            "the bucket behind the link is untouched"
        );
        let own: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
            })
            .collect();
        assert_eq!(own.len(), 1, "this endpoint's own scratch directory, named by its process");
        drop(server);
    }
}
