//! csvlake-s3: S3 access for the pipeline's functions.
//!
//! Client construction, the classification of SDK errors into transient (retry the batch) and
//! internal failures, staged multipart uploads ([`upload`]), small JSON objects read whole
//! ([`get_json`]), and a table's state: leases, `current.json` and index generations ([`tables`]). Errors are the engine's [`Error`] classes, so that one file's failure is
//! classified the same way whether it came from its bytes or from S3.

pub mod tables;
pub mod upload;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::SharedHttpClient;
use aws_sdk_s3::config::http::HttpResponse;
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
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

/// A client from the environment (Lambda role, profile…), optionally at another endpoint URL.
pub async fn env_client(endpoint_url: Option<&str>) -> Client {
    let conf = sdk_config(endpoint_url).await;
    let s3 = aws_sdk_s3::config::Builder::from(&conf).force_path_style(endpoint_url.is_some()).build();
    Client::from_conf(s3)
}

/// Whether an SDK error is worth retrying at the batch level.
pub fn is_transient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
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
                            | "InternalError"
                            | "ServiceUnavailable"
                    )
                )
        }
        _ => false,
    }
}

/// The service error code of an SDK error, if it has one.
pub fn error_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    match e {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// The HTTP status of a service error, if the error is one.
pub fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    match e {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    }
}

/// Converts an SDK error into a library error, naming the operation and the object.
pub fn sdk_error<E>(op: &str, bucket: &str, key: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = format!("{op} s3://{bucket}/{key}: {}", DisplayErrorContext(&e));
    if is_transient(&e) { Error::Transient(message) } else { Error::Internal(message) }
}

/// Reads the object `s3://bucket/key` whole.
pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Result<bytes::Bytes> {
    let resp =
        client.get_object().bucket(bucket).key(key).send().await.map_err(|e| sdk_error("GetObject", bucket, key, e))?;
    collect(resp.body, bucket, key).await
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
