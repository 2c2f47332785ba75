//! csvlake-s3: S3 access for the pipeline's functions.
//!
//! Client construction, the classification of SDK errors into transient (retry the batch) and
//! internal failures, staged multipart uploads ([`upload`]), small JSON objects read whole
//! ([`get_json`]), and a table's state: leases, `current.json` and index generations ([`tables`]). Errors are the engine's [`Error`] classes, so that one file's failure is
//! classified the same way whether it came from its bytes or from S3.

pub mod tables;
pub mod upload;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::SharedHttpClient;
use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;

pub use csvlake_engine::{Error, Result};

/// Static settings of an S3-compatible endpoint that is not AWS (the embedded one, MinIO…).
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Base URL, such as `http://127.0.0.1:9000`.
    pub url: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Region to sign for.
    pub region: String,
}

/// The HTTP(S) client of every AWS client csvlake makes: the SDK's own hyper client, with
/// rustls over ring for TLS.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The AWS configuration of the environment (credentials, region, profile…) with
/// [`http_client`], optionally at another endpoint URL.
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// How long to wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the first byte of a response (an UploadPart sends its part first).
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// The environment variable that sets another first-byte timeout, in whole seconds, instead of
/// [`READ_TIMEOUT`]: a test that holds a response back need not wait two minutes per attempt.
/// A value that is not a positive integer is ignored.
pub const READ_TIMEOUT_ENV: &str = "CSVLAKE_S3_READ_TIMEOUT_SECS";
/// How long one attempt of a call may take until its response (a body is then streamed).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a body may stall (no byte sent or received) before the request fails.
pub const STALL_GRACE: Duration = Duration::from_secs(20);
/// Attempts of one call, the first included, under the SDK's adaptive retry mode.
pub const MAX_ATTEMPTS: u32 = 5;

/// The first-byte timeout: [`READ_TIMEOUT`], or the seconds of [`READ_TIMEOUT_ENV`].
pub fn read_timeout() -> Duration {
    read_timeout_from(std::env::var(READ_TIMEOUT_ENV).ok().as_deref())
}

fn read_timeout_from(value: Option<&str>) -> Duration {
    value.and_then(|v| v.trim().parse::<u64>().ok()).filter(|s| *s > 0).map_or(READ_TIMEOUT, Duration::from_secs)
}

/// The retry, timeout and stall settings of every S3 client: adaptive retries (client-side rate
/// limiting when S3 throttles), and no call that can hang.
fn resilient(conf: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    conf.retry_config(RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(read_timeout())
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .stalled_stream_protection(StalledStreamProtectionConfig::enabled().grace_period(STALL_GRACE).build())
}

/// A client for an explicit endpoint with static credentials, using path-style addressing.
/// Checksums are computed only where the API requires them: the endpoint is on loopback,
/// and SigV4 already covers every payload.
pub fn endpoint_client(ep: &Endpoint) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(ep.region.clone()))
        .endpoint_url(&ep.url)
        .credentials_provider(Credentials::new(&ep.access_key, &ep.secret_key, None, None, "csvlake"))
        .force_path_style(true)
        .http_client(http_client())
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    Client::from_conf(resilient(conf).build())
}

/// A client from the environment (Lambda role, profile…), optionally at another endpoint URL.
pub async fn env_client(endpoint_url: Option<&str>) -> Client {
    let conf = sdk_config(endpoint_url).await;
    // Responses are validated where a checksum covers what was read; a multipart object's
    // part-level checksums cannot be, and checking them only logs a warning per GET.
    let s3 = aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(endpoint_url.is_some())
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    Client::from_conf(resilient(s3).build())
}

/// Whether an SDK error is worth retrying: throttling, 5xx, timeouts, a dropped connection.
/// A configuration error (no region, no credentials) is not, though the SDK reports it as a
/// dispatch failure too.
pub fn is_transient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout() || (d.is_other() && configuration(e).is_none()),
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(
                    ctx.err().code(),
                    Some(
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestTimeout"
                            | "RequestTimeTooSkewed"
                            | "InternalError"
                            | "ServiceUnavailable"
                    )
                )
        }
        _ => false,
    }
}

/// What to fix when an SDK error comes from the configuration rather than the request: one line.
pub fn configuration<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&'static str> {
    if let Some(code) = error_code(e) {
        return match code {
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired" => Some(
                "the credentials were refused: check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and the region",
            ),
            "NoSuchBucket" => Some("the bucket does not exist: check the bucket name and the region"),
            "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => {
                Some("the bucket is in another region: set AWS_REGION to the bucket's region")
            }
            _ => None,
        };
    }
    let SdkError::DispatchFailure(d) = e else { return None };
    let mut source: Option<&(dyn std::error::Error + 'static)> =
        d.as_connector_error().map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("region must be set") {
            return Some("no AWS region: set AWS_REGION (or a region in the AWS profile)");
        }
        if text.contains("failed to load credentials") || format!("{s:?}").starts_with("CredentialsNotLoaded") {
            return Some("no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        source = s.source();
    }
    None
}

/// The error code of an SDK error, if it has one.
pub fn error_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    match e {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// Whether an S3 error code refuses access to the object itself (a policy, a KMS key, an
/// archived object): that object fails, not the run.
fn is_denied(code: &str) -> bool {
    matches!(code, "AccessDenied" | "AllAccessDisabled" | "InvalidObjectState" | "AccountProblem")
        || code.starts_with("KMS.")
}

/// The HTTP status of a service error, if the error is one.
pub fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    match e {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    }
}

/// Converts an SDK error into a library error whose message is one line naming the operation,
/// the object, and what S3 said (or what to fix); the SDK's full report goes to the debug log.
pub fn sdk_error<E>(op: &str, bucket: &str, key: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    tracing::debug!(op, bucket, key, error = %DisplayErrorContext(&e), "S3 request failed");
    let at = format!("{op} s3://{bucket}/{key}");
    let message = format!("{at}: {}", what_was_said(&e));
    if configuration(&e).is_some() {
        return Error::Internal(message);
    }
    match error_code(&e) {
        Some(code) if is_denied(code) => Error::Denied(message),
        _ if is_transient(&e) => Error::Transient(message),
        _ => Error::Internal(message),
    }
}

/// What an AWS service said of a failed request, in one line: what to fix when the configuration
/// is at fault ([`configuration`]), else its error code, message and HTTP status, a timeout, or
/// the innermost cause of a failure to send it. Any AWS client's errors (S3, Glue) read so.
pub fn what_was_said<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> String {
    if let Some(fix) = configuration(e) {
        return fix.to_owned();
    }
    let said = match e {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            match (ctx.err().code(), ctx.err().message()) {
                (Some(code), Some(m)) => format!("{code}: {m} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => format!("HTTP {status}"),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => innermost(c),
            None => "the request could not be sent".to_owned(),
        },
        _ => "the request could not be built".to_owned(),
    };
    said.lines().collect::<Vec<_>>().join(" ")
}

/// The innermost cause of an error, which says what happened (a reset, a refused connection).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// Reads of a small object whole, the first included, when its body breaks off.
pub const BODY_ATTEMPTS: u32 = 3;

/// Reads the object `s3://bucket/key` whole. The SDK retries a request that fails, but not a
/// body that breaks off after a successful answer: such a read is made again, up to
/// [`BODY_ATTEMPTS`] times in all, so that one cut connection does not fail the caller's work.
pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Result<bytes::Bytes> {
    let mut attempt = 1;
    loop {
        let resp = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("GetObject", bucket, key, e))?;
        let read = collect(resp.body, bucket, key).await;
        if !read_again(attempt, &read) {
            return read;
        }
        attempt += 1;
    }
}

/// Whether a body read whole in attempt `attempt` (from 1) is to be read again: it broke off
/// (a transient error), and [`BODY_ATTEMPTS`] are not used up.
pub fn read_again<T>(attempt: u32, read: &Result<T>) -> bool {
    match read {
        Err(Error::Transient(message)) if attempt < BODY_ATTEMPTS => {
            tracing::debug!(attempt, error = %message, "a body broke off; reading it again");
            true
        }
        _ => false,
    }
}

/// Reads a response body whole; a failure mid-body is the network's (transient).
pub async fn collect(body: aws_sdk_s3::primitives::ByteStream, bucket: &str, key: &str) -> Result<bytes::Bytes> {
    Ok(body.collect().await.map_err(|e| Error::Transient(format!("reading s3://{bucket}/{key}: {e}")))?.into_bytes())
}

/// Reads the small JSON object `s3://bucket/key` whole and parses it; `what` names it in the
/// error of a body that does not parse.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    bucket: &str,
    key: &str,
    what: &str,
) -> Result<T> {
    let body = get_bytes(client, bucket, key).await?;
    serde_json::from_slice(&body).map_err(|e| Error::Internal(format!("s3://{bucket}/{key} is not {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::Config::builder().behavior_version(BehaviorVersion::latest()).endpoint_url("http://127.0.0.1:9")
    }

    #[test]
    fn a_body_that_breaks_off_is_read_again_a_few_times() {
        let cut: Result<()> = Err(Error::Transient("cut".into()));
        assert!((1..BODY_ATTEMPTS).all(|attempt| read_again(attempt, &cut)));
        assert!(!read_again(BODY_ATTEMPTS, &cut));
        assert!(!read_again(1, &Ok(())));
        assert!(!read_again::<()>(1, &Err(Error::Internal("not JSON".into()))));
    }

    #[test]
    fn the_read_timeout_can_be_shortened_by_the_environment() {
        assert_eq!(read_timeout_from(None), READ_TIMEOUT);
        assert_eq!(read_timeout_from(Some("7")), Duration::from_secs(7));
        assert_eq!(read_timeout_from(Some(" 7 ")), Duration::from_secs(7));
        for ignored in ["0", "-1", "soon", ""] {
            assert_eq!(read_timeout_from(Some(ignored)), READ_TIMEOUT, "{ignored:?}");
        }
    }

    #[tokio::test]
    async fn configuration_errors_are_one_line_that_names_the_fix_and_are_not_retried() {
        let creds = Credentials::new("a", "b", None, None, "test");
        let no_region = Client::from_conf(resilient(base().credentials_provider(creds.clone())).build());
        let e = no_region.list_objects_v2().bucket("b").send().await.unwrap_err();
        assert!(!is_transient(&e));
        let e = sdk_error("ListObjectsV2", "b", "p/", e);
        assert!(
            matches!(&e, Error::Internal(m) if m == "ListObjectsV2 s3://b/p/: no AWS region: set AWS_REGION (or a region in the AWS profile)"),
            "{e}"
        );
        assert!(!e.to_string().contains("internal: internal"));

        let refused =
            Client::from_conf(resilient(base().region(Region::new("us-east-1")).credentials_provider(creds)).build());
        let e = refused.list_objects_v2().bucket("b").send().await.unwrap_err();
        assert!(is_transient(&e), "a refused connection is worth retrying");
        let e = sdk_error("ListObjectsV2", "b", "", e);
        assert!(
            matches!(&e, Error::Transient(m) if m.starts_with("ListObjectsV2 s3://b/: ") && !m.contains('\n') && m.len() < 200),
            "{e}"
        );
    }
}
