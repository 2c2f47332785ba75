//! moto's server (`moto_server`, S3 and Glue among its services), run on a free loopback port
//! by the tests that need a server csvlake did not write. `CSVLAKE_MOTO_SERVER` names its
//! executable (`bash scripts/test` installs it into `.venv-moto` and sets it).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, ResponseChecksumValidation};

/// The variable that names the `moto_server` executable.
pub const MOTO_ENV: &str = "CSVLAKE_MOTO_SERVER";

/// moto's S3 server (`moto_server`), run as a child process on a free loopback port. Dropping
/// the guard kills it, so that a failing test leaves no server behind.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts the server that [`MOTO_ENV`] names, or returns None after saying on stderr that
    /// `test` was skipped, when the variable is not set.
    pub fn from_env(test: &str) -> Option<Self> {
        let Some(bin) = std::env::var_os(MOTO_ENV).filter(|v| !v.is_empty()) else {
            // Past the test harness's capture, so that a plain `cargo test` shows it.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: {MOTO_ENV} is not set (the path of moto_server)");
            return None;
        };
        Some(Self::start(Path::new(&bin)))
    }

    /// Starts `moto_server` (the path of its executable) and waits until it answers.
    pub fn start(bin: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log");
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("moto log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut moto = Self { child, addr, log, _dir: dir };
        moto.wait_until_up(Duration::from_secs(60));
        moto
    }

    fn wait_until_up(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited with {status} before answering:\n{}", self.log_tail());
            }
            if Self::answers(self.addr) {
                return;
            }
            assert!(started.elapsed() < limit, "moto_server did not answer within {limit:?}:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether an HTTP request to `/` gets an answer.
    fn answers(addr: SocketAddr) -> bool {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A client that talks to the server directly (path-style, static credentials, the SDK's
    /// standard retries), to set up and inspect what a run did without any proxy between.
    pub fn client(&self) -> Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .force_path_style(true)
            .http_client(csvlake_s3::http_client())
            .retry_config(RetryConfig::standard())
            // moto's checksum headers of an object completed with a full-object CRC64NVME do
            // not match its bytes; the tests compare the bytes themselves.
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Client::from_conf(conf)
    }
}

impl Moto {
    /// A Glue client of the server, with the endpoint set in code.
    pub fn glue(&self) -> aws_sdk_glue::Client {
        let conf = aws_sdk_glue::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .http_client(csvlake_s3::http_client())
            .build();
        aws_sdk_glue::Client::from_conf(conf)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
