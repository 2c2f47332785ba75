//! What a Task invokes: a [`Function`] registered under its ARN, and the adapter that makes one
//! of a Lambda handler, reporting its errors the way Lambda and Step Functions do, with the
//! request id and deadline of each [`Invocation`].

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::TaskError;

/// The timeout of a deployed Lambda function (15 minutes, the Lambda maximum), for
/// [`crate::Executor::with_function_timeout`]. A handler invoked without a timeout is still told
/// this much time in the deadline of its context.
pub const LAMBDA_TIMEOUT: Duration = Duration::from_secs(900);

/// The error name Lambda reports for an invocation that ran past the function's timeout, and
/// Step Functions passes on as the Task's Error.
pub const TIMED_OUT_ERROR_TYPE: &str = "Sandbox.Timedout";

/// What the executor tells a function about one invocation, as the Lambda service tells a
/// handler in its [`Context`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invocation {
    /// The request id (a UUID), as in the handler's context and a timeout's message.
    pub request_id: String,
    /// When the invocation is cut off: now plus the function's timeout, when it has one.
    pub deadline: Option<SystemTime>,
}

impl Invocation {
    /// An invocation with a new request id that ends at `deadline`, if given.
    pub fn new(deadline: Option<SystemTime>) -> Self {
        Self { request_id: uuid::Uuid::new_v4().to_string(), deadline }
    }
}

/// A function a Task state can invoke through `arn:aws:states:::lambda:invoke`.
#[async_trait::async_trait]
pub trait Function: Send + Sync {
    /// Runs the function on `payload`. An error's [`TaskError::error`] is what Retry and Catch
    /// match.
    async fn invoke(&self, payload: Value) -> Result<Value, TaskError>;

    /// Runs the function on `payload` as the invocation `invocation`: the executor calls this
    /// one. A function that wants its request id or deadline implements it (as [`lambda`]'s
    /// adapter does, passing them in the handler's [`Context`]); by default it calls
    /// [`Function::invoke`]. When the invocation has a deadline, the executor drops the call's
    /// future at that deadline whatever this does.
    async fn invoke_with(&self, payload: Value, invocation: &Invocation) -> Result<Value, TaskError> {
        let _ = invocation;
        self.invoke(payload).await
    }
}

/// The `error_type` the Lambda runtime reports for a payload that does not deserialize into the
/// handler's event type (the type name of its deserialization error).
pub const DESERIALIZE_ERROR_TYPE: &str = "lambda_runtime::deserializer::DeserializeError";

/// Adapts a Lambda-style handler. Its errors map through [`lambda_runtime::Diagnostic`] as the
/// Lambda runtime maps them: the Error name is the diagnostic's `error_type` (such as
/// `csvlake.Transient`), and the Cause is the JSON Lambda reports,
/// `{"errorType": ..., "errorMessage": ...}`. A payload that does not deserialize into `E`
/// fails with [`DESERIALIZE_ERROR_TYPE`] and the runtime's message, naming the serde error.
///
/// The handler's context carries the invocation's request id and its deadline in milliseconds
/// since the epoch ([`Context::deadline`]): the [`Invocation`]'s deadline, or now plus
/// [`LAMBDA_TIMEOUT`] when the function has no timeout.
pub fn lambda<E, R, Err, F, Fut>(handler: F) -> Arc<dyn Function>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
    Err: Into<Diagnostic> + 'static,
    F: Fn(LambdaEvent<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Err>> + Send + 'static,
{
    Arc::new(Lambda { handler, types: PhantomData })
}

/// The handler's event, response, error and future types.
type Signature<E, R, Err, Fut> = fn(E) -> (R, Err, Fut);

struct Lambda<F, E, R, Err, Fut> {
    handler: F,
    types: PhantomData<Signature<E, R, Err, Fut>>,
}

#[async_trait::async_trait]
impl<E, R, Err, F, Fut> Function for Lambda<F, E, R, Err, Fut>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
    Err: Into<Diagnostic> + 'static,
    F: Fn(LambdaEvent<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Err>> + Send + 'static,
{
    async fn invoke(&self, payload: Value) -> Result<Value, TaskError> {
        self.invoke_with(payload, &Invocation::new(None)).await
    }

    async fn invoke_with(&self, payload: Value, invocation: &Invocation) -> Result<Value, TaskError> {
        let event: E = serde_json::from_value(payload).map_err(|e| {
            lambda_error(Diagnostic {
                error_type: DESERIALIZE_ERROR_TYPE.into(),
                error_message: format!("failed to deserialize the incoming data into the function's payload type: {e}"),
            })
        })?;
        let response = (self.handler)(LambdaEvent::new(event, context(invocation))).await.map_err(lambda_error)?;
        serde_json::to_value(response).map_err(|e| {
            lambda_error(Diagnostic {
                error_type: std::any::type_name::<serde_json::Error>().into(),
                error_message: format!("the response does not serialize: {e}"),
            })
        })
    }
}

/// A context like the one the Lambda runtime passes: the invocation's request id and deadline.
fn context(invocation: &Invocation) -> Context {
    let deadline = invocation.deadline.or_else(|| SystemTime::now().checked_add(LAMBDA_TIMEOUT));
    let mut context = Context::default();
    context.request_id = invocation.request_id.clone();
    context.deadline = deadline
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    context
}

/// The state error Step Functions reports for a Lambda invocation that ran past the function's
/// `timeout`: Error [`TIMED_OUT_ERROR_TYPE`], and as Cause the error object Lambda returns,
/// `{"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: … Error: Task timed out after
/// 900.00 seconds"}`.
pub(crate) fn timed_out(invocation: &Invocation, timeout: Duration) -> TaskError {
    lambda_error(Diagnostic {
        error_type: TIMED_OUT_ERROR_TYPE.into(),
        error_message: format!(
            "RequestId: {} Error: Task timed out after {:.2} seconds",
            invocation.request_id,
            timeout.as_secs_f64()
        ),
    })
}

/// The state error Step Functions reports for a Lambda function error.
fn lambda_error(e: impl Into<Diagnostic>) -> TaskError {
    let diagnostic: Diagnostic = e.into();
    let cause = serde_json::to_string(&diagnostic).unwrap_or_else(|_| diagnostic.error_message.clone());
    TaskError { error: diagnostic.error_type, cause }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn diagnostic(error_type: &str, message: &str) -> Diagnostic {
        Diagnostic { error_type: error_type.into(), error_message: message.into() }
    }

    #[tokio::test]
    async fn handler_errors_keep_their_diagnostic_type_and_message() {
        let f = lambda(|event: LambdaEvent<Value>| async move {
            assert!(!event.context.request_id.is_empty() && event.context.deadline > 0);
            match event.payload["fail"].as_str() {
                Some("transient") => Err(diagnostic("csvlake.Transient", "transient: slow down")),
                Some(_) => Err(diagnostic("csvlake.Internal", "internal: broken")),
                None => Ok(json!({"echo": event.payload})),
            }
        });
        assert_eq!(f.invoke(json!({"a": 1})).await.unwrap(), json!({"echo": {"a": 1}}));
        let e = f.invoke(json!({"fail": "transient"})).await.unwrap_err();
        assert_eq!(e.error, "csvlake.Transient");
        let cause: Value = serde_json::from_str(&e.cause).unwrap();
        assert_eq!(cause, json!({"errorType": "csvlake.Transient", "errorMessage": "transient: slow down"}));
        let e = f.invoke(json!({"fail": "other"})).await.unwrap_err();
        assert_eq!(e.error, "csvlake.Internal");
    }

    #[tokio::test]
    async fn a_payload_of_the_wrong_shape_fails_as_the_runtime_fails_it_naming_serde() {
        #[derive(Deserialize)]
        struct Batch {
            #[allow(dead_code)]
            job: Value,
            files: Vec<Value>,
        }
        let f = lambda(|event: LambdaEvent<Batch>| async move { Ok::<_, Diagnostic>(event.payload.files.len()) });
        let e = f.invoke(json!({"files": []})).await.unwrap_err();
        assert_eq!(e.error, DESERIALIZE_ERROR_TYPE);
        assert!(e.cause.contains("missing field `job`"), "{}", e.cause);
    }
}
