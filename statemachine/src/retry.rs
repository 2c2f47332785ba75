//! Retry and Catch: which error names a retrier or catcher matches, and how long a retry waits.

use std::time::Duration;

use crate::error::{AslError, AslResult, names};
use crate::fields::Fields;
use crate::path::Path;

/// How a retry delay is randomized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Jitter {
    /// The computed delay as is.
    None,
    /// A uniform share of it, in (0, 1].
    Full,
}

/// One element of a Retry array.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Retrier {
    pub(crate) error_equals: Vec<String>,
    pub(crate) interval_seconds: f64,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_rate: f64,
    pub(crate) max_delay_seconds: Option<f64>,
    pub(crate) jitter: Jitter,
}

impl Retrier {
    /// The wait before retry number `attempt` (from 1), scaled by `scale`.
    pub(crate) fn delay(&self, attempt: u32, scale: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let mut seconds = self.interval_seconds * self.backoff_rate.powi(exponent);
        if let Some(max) = self.max_delay_seconds {
            seconds = seconds.min(max);
        }
        if self.jitter == Jitter::Full {
            seconds *= 1.0 - fastrand::f64();
        }
        seconds *= scale;
        if seconds.is_nan() || seconds <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

/// One element of a Catch array.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Catcher {
    pub(crate) error_equals: Vec<String>,
    /// Where the error object goes in the state's input; `None` discards it.
    pub(crate) result_path: Option<Path>,
    pub(crate) next: String,
}

/// Whether `error` can be retried or caught at all: `States.Runtime` never is; it always fails
/// the execution, as in Step Functions.
pub(crate) fn is_recoverable(error: &str) -> bool {
    error != names::RUNTIME
}

/// Whether an ErrorEquals list matches `error`: by exact name, `States.ALL` (everything but the
/// terminal `States.DataLimitExceeded`, which only its own name matches), or `States.TaskFailed`
/// (everything but `States.Timeout`).
pub(crate) fn matches(error_equals: &[String], error: &str) -> bool {
    error_equals.iter().any(|name| {
        name == error
            || (name == names::ALL && error != names::DATA_LIMIT_EXCEEDED)
            || (name == names::TASK_FAILED && error != names::TIMEOUT)
    })
}

/// The Retry field of a state (absent: none).
pub(crate) fn parse_retry(state: &Fields<'_>) -> AslResult<Vec<Retrier>> {
    let Some(items) = state.array("Retry")? else { return Ok(Vec::new()) };
    let mut retriers = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let place = format!("Retry[{i}] of {}", state.place());
        let fields = Fields::new(item, &place)?;
        fields.allow(
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
            &[],
        )?;
        let error_equals = error_equals(&fields, i + 1 == items.len())?;
        let interval_seconds = fields.unsigned("IntervalSeconds")?.unwrap_or(1);
        if interval_seconds == 0 {
            return Err(AslError::Invalid(format!("IntervalSeconds of {place} must be at least 1")));
        }
        let max_attempts = fields.unsigned("MaxAttempts")?.unwrap_or(3);
        let max_attempts = u32::try_from(max_attempts)
            .map_err(|_| AslError::Invalid(format!("MaxAttempts of {place} is too large: {max_attempts}")))?;
        let backoff_rate = fields.number("BackoffRate")?.unwrap_or(2.0);
        if backoff_rate < 1.0 {
            return Err(AslError::Invalid(format!("BackoffRate of {place} must be at least 1.0, not {backoff_rate}")));
        }
        let max_delay_seconds = fields.unsigned("MaxDelaySeconds")?;
        if max_delay_seconds == Some(0) {
            return Err(AslError::Invalid(format!("MaxDelaySeconds of {place} must be at least 1")));
        }
        let jitter = match fields.string("JitterStrategy")? {
            None | Some("NONE") => Jitter::None,
            Some("FULL") => Jitter::Full,
            Some(other) => {
                return Err(AslError::Invalid(format!(
                    "JitterStrategy of {place} must be FULL or NONE, not \"{other}\""
                )));
            }
        };
        retriers.push(Retrier {
            error_equals,
            interval_seconds: interval_seconds as f64,
            max_attempts,
            backoff_rate,
            max_delay_seconds: max_delay_seconds.map(|s| s as f64),
            jitter,
        });
    }
    Ok(retriers)
}

/// The Catch field of a state (absent: none).
pub(crate) fn parse_catch(state: &Fields<'_>) -> AslResult<Vec<Catcher>> {
    let Some(items) = state.array("Catch")? else { return Ok(Vec::new()) };
    let mut catchers = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let place = format!("Catch[{i}] of {}", state.place());
        let fields = Fields::new(item, &place)?;
        fields.allow(&["ErrorEquals", "ResultPath", "Next", "Comment"], &["Output", "Assign"])?;
        catchers.push(Catcher {
            error_equals: error_equals(&fields, i + 1 == items.len())?,
            result_path: fields.result_path("ResultPath")?,
            next: fields.require_string("Next")?.to_owned(),
        });
    }
    Ok(catchers)
}

/// ErrorEquals: a non-empty array of names; `States.ALL` only alone and in the last element.
fn error_equals(fields: &Fields<'_>, last: bool) -> AslResult<Vec<String>> {
    let place = fields.place();
    let items = fields
        .array("ErrorEquals")?
        .ok_or_else(|| AslError::Invalid(format!("{place} has no \"ErrorEquals\" field")))?;
    if items.is_empty() {
        return Err(AslError::Invalid(format!("ErrorEquals of {place} is empty")));
    }
    let names = items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| AslError::Invalid(format!("ErrorEquals of {place} must hold strings")))
        })
        .collect::<AslResult<Vec<_>>>()?;
    if names.iter().any(|n| n == names::ALL) && (names.len() > 1 || !last) {
        return Err(AslError::Invalid(format!(
            "States.ALL in {place} must appear alone and in the last element of its array"
        )));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn retriers(value: Value) -> AslResult<Vec<Retrier>> {
        let state = json!({ "Retry": value });
        parse_retry(&Fields::new(&state, "Task state \"T\"")?)
    }

    #[test]
    fn names_match_exactly_or_through_the_wildcards() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches(&names(&["csvlake.Transient"]), "csvlake.Transient"));
        assert!(!matches(&names(&["csvlake.Transient"]), "csvlake.Internal"));
        assert!(matches(&names(&["States.ALL"]), "States.Timeout"));
        assert!(matches(&names(&["States.ALL"]), "Sandbox.Timedout"));
        assert!(!matches(&names(&["States.ALL"]), "States.DataLimitExceeded"));
        assert!(matches(&names(&["States.DataLimitExceeded"]), "States.DataLimitExceeded"));
        assert!(matches(&names(&["csvlake.Transient", "States.DataLimitExceeded"]), "States.DataLimitExceeded"));
        assert!(matches(&names(&["States.TaskFailed"]), "csvlake.Internal"));
        assert!(!matches(&names(&["States.TaskFailed"]), "States.Timeout"));
        assert!(!is_recoverable("States.Runtime"));
        assert!(is_recoverable("States.ExceededToleratedFailureThreshold"));
    }

    #[test]
    fn delays_grow_by_the_rate_up_to_the_cap() {
        let r = &retriers(json!([{"ErrorEquals": ["X"], "IntervalSeconds": 2, "MaxDelaySeconds": 5}])).unwrap()[0];
        assert_eq!((r.max_attempts, r.backoff_rate, r.jitter), (3, 2.0, Jitter::None));
        let secs = |n| r.delay(n, 1.0).as_secs_f64();
        assert_eq!([secs(1), secs(2), secs(3)], [2.0, 4.0, 5.0]);
        assert_eq!(r.delay(3, 0.5), Duration::from_secs_f64(2.5));
        assert_eq!(r.delay(3, 0.0), Duration::ZERO);
        let r = &retriers(json!([{"ErrorEquals": ["X"], "IntervalSeconds": 4, "JitterStrategy": "FULL"}])).unwrap()[0];
        for _ in 0..100 {
            let d = r.delay(1, 1.0).as_secs_f64();
            assert!(d > 0.0 && d <= 4.0, "{d}");
        }
    }

    #[test]
    fn invalid_retriers_are_named() {
        let e = retriers(json!([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])).unwrap_err();
        assert!(e.to_string().contains("Retry[0] of Task state \"T\""), "{e}");
        let e = retriers(json!([{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}])).unwrap_err();
        assert!(e.to_string().contains("HALF"), "{e}");
        let e = retriers(json!([{"ErrorEquals": ["X"], "Backoff": 2}])).unwrap_err();
        assert!(e.to_string().contains("unknown field \"Backoff\" in Retry[0]"), "{e}");
        let e = retriers(json!([{"ErrorEquals": []}])).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
