//! State semantics on small definitions: input and output processing, the context object,
//! Choice, Retry, Catch, timeouts and failures.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{function, parse, unused_s3};
use crate::{ExecutionStatus, Executor, HistoryEvent, TaskError};

fn task(function: &str, rest: Value) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload.$": "$"},
    });
    for (k, v) in rest.as_object().unwrap() {
        state[k] = v.clone();
    }
    state
}

fn echo() -> Arc<dyn crate::Function> {
    function(|payload| async move { Ok(payload) })
}

fn executor(definition: Value) -> Executor {
    Executor::new(parse(definition), unused_s3()).with_delay_scale(0.0)
}

fn failed(status: &ExecutionStatus) -> &TaskError {
    match status {
        ExecutionStatus::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn retries(history: &[HistoryEvent], of: &str) -> Vec<u32> {
    history
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::RetryScheduled { state, attempt, .. } if state == of => Some(*attempt),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn parameters_result_selector_result_path_output_path_and_the_context_object() {
    let definition = json!({
        "StartAt": "Narrow",
        "States": {
            "Narrow": {
                "Type": "Pass",
                "InputPath": "$.outer",
                "Parameters": {"a.$": "$.a", "fixed": [1, {"b.$": "$.b"}]},
                "ResultPath": "$.narrowed",
                "Next": "Call"
            },
            "Call": task("echo", json!({
                "Parameters": {
                    "FunctionName": "echo",
                    "Payload": {
                        "a.$": "$.narrowed.a",
                        "name.$": "$$.Execution.Name",
                        "id.$": "$$.Execution.Id",
                        "input.$": "$$.Execution.Input",
                        "start.$": "$$.Execution.StartTime",
                        "state.$": "$$.State.Name",
                        "entered.$": "$$.State.EnteredTime",
                        "retries.$": "$$.State.RetryCount",
                        "machine.$": "$$.StateMachine.Name",
                        "machine_id.$": "$$.StateMachine.Id"
                    }
                },
                "ResultSelector": {"echoed.$": "$.Payload", "code.$": "$.StatusCode", "version.$": "$.ExecutedVersion"},
                "ResultPath": "$.call.result",
                "OutputPath": "$.call",
                "End": true
            }))
        }
    });
    let input = json!({"outer": {"a": 1, "b": "two"}});
    let execution = executor(definition).with_function("echo", echo()).execute("run-7", input.clone()).await;
    let output = execution.output().unwrap_or_else(|| panic!("{:?}", execution.status)).clone();
    let result = &output["result"];
    assert_eq!(result["code"], json!(200));
    assert_eq!(result["version"], json!("$LATEST"));
    let echoed = &result["echoed"];
    assert_eq!(echoed["a"], json!(1));
    assert_eq!(echoed["name"], json!("run-7"));
    assert_eq!(echoed["id"], json!("arn:aws:states:local:000000000000:execution:csvlake-pipeline:run-7"));
    assert_eq!(echoed["input"], input);
    assert_eq!(echoed["state"], json!("Call"));
    assert_eq!(echoed["retries"], json!(0));
    assert_eq!(echoed["machine"], json!("csvlake-pipeline"));
    assert_eq!(echoed["machine_id"], json!("arn:aws:states:local:000000000000:stateMachine:csvlake-pipeline"));
    for time in ["start", "entered"] {
        let t = echoed[time].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'), "{t}");
    }
    assert_eq!(output.as_object().unwrap().len(), 1, "OutputPath $.call keeps only the call: {output}");
    assert_eq!(execution.history.iter().filter(|e| matches!(e, HistoryEvent::StateEntered { .. })).count(), 2);
}

#[tokio::test]
async fn pass_result_and_null_paths() {
    let definition = json!({
        "StartAt": "Fixed",
        "States": {
            "Fixed": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.fixed", "Next": "Discard"},
            "Discard": {"Type": "Pass", "Result": "ignored", "ResultPath": null, "Next": "Whole"},
            "Whole": {"Type": "Pass", "Parameters": {"all.$": "$"}, "Next": "Nothing"},
            "Nothing": {"Type": "Pass", "InputPath": null, "ResultPath": "$.seen", "Next": "Done"},
            "Done": {"Type": "Succeed", "OutputPath": "$.seen"}
        }
    });
    let execution = executor(definition).execute("p", json!({"keep": true})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!({})));

    let definition = json!({
        "StartAt": "Fixed",
        "States": {
            "Fixed": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.fixed", "Next": "Discard"},
            "Discard": {"Type": "Pass", "Result": "ignored", "ResultPath": null, "Next": "Whole"},
            "Whole": {
                "Type": "Pass",
                "Parameters": {"all.$": "$"},
                "ResultPath": "$.copy",
                "OutputPath": "$.copy",
                "End": true
            }
        }
    });
    let execution = executor(definition).execute("p", json!({"keep": true})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!({"all": {"keep": true, "fixed": {"x": 1}}})));

    let definition = json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "OutputPath": null, "End": true}}});
    assert_eq!(executor(definition).execute("p", json!([1])).await.status, ExecutionStatus::Succeeded(json!({})));
}

#[tokio::test]
async fn a_bad_path_is_a_runtime_error_that_no_catch_handles() {
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": task("echo", json!({
                "InputPath": "$.missing",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}],
                "End": true
            })),
            "Handled": {"Type": "Succeed"}
        }
    });
    let execution = executor(definition).with_function("echo", echo()).execute("r", json!({"a": 1})).await;
    let e = failed(&execution.status);
    assert_eq!(e.error, "States.Runtime");
    assert!(
        e.cause.contains("\"Call\"") && e.cause.contains("\"$.missing\"") && e.cause.contains("InputPath"),
        "{}",
        e.cause
    );

    let definition = json!({
        "StartAt": "Call",
        "States": {"Call": task("echo", json!({"ResultPath": "$.a.b", "End": true}))}
    });
    let e = executor(definition).with_function("echo", echo()).execute("r", json!({"a": 1})).await;
    let e = failed(&e.status);
    assert_eq!(e.error, "States.Runtime");
    assert!(e.cause.contains("ResultPath \"$.a.b\""), "{}", e.cause);
}

#[tokio::test]
async fn choice_takes_the_first_matching_rule_or_the_default() {
    let definition = |default: bool| {
        let mut choice = json!({
            "Type": "Choice",
            "InputPath": "$.plan",
            "OutputPath": "$.batches",
            "Choices": [
                {"Variable": "$.batches", "NumericEquals": 0, "Next": "Empty"},
                {
                    "And": [
                        {"Variable": "$.batches", "NumericGreaterThan": 100},
                        {"Variable": "$.big", "IsPresent": false}
                    ],
                    "Next": "Large"
                }
            ]
        });
        let mut definition = json!({
            "StartAt": "Decide",
            "States": {
                "Decide": {},
                "Empty": {"Type": "Pass", "Result": "empty", "End": true},
                "Large": {"Type": "Pass", "Result": "large", "ResultPath": "$", "End": true}
            }
        });
        if default {
            choice["Default"] = json!("Other");
            definition["States"]["Other"] = json!({"Type": "Succeed"});
        }
        definition["States"]["Decide"] = choice;
        definition
    };
    let run = |default, input| async move { executor(definition(default)).execute("c", input).await.status };
    assert_eq!(run(true, json!({"plan": {"batches": 0}})).await, ExecutionStatus::Succeeded(json!("empty")));
    assert_eq!(run(true, json!({"plan": {"batches": 101}})).await, ExecutionStatus::Succeeded(json!("large")));
    assert_eq!(run(true, json!({"plan": {"batches": 5}})).await, ExecutionStatus::Succeeded(json!(5)));
    let status = run(false, json!({"plan": {"batches": 5}})).await;
    assert_eq!(failed(&status).error, "States.NoChoiceMatched");
    let status = run(true, json!({"plan": {"count": 5}})).await;
    let e = failed(&status);
    assert_eq!(e.error, "States.Runtime");
    assert!(e.cause.contains("$.batches"), "{}", e.cause);
}

/// A function that fails with `error` the first `failures` times, and what it saw.
struct Flaky {
    function: Arc<dyn crate::Function>,
    calls: Arc<AtomicU32>,
    payloads: Arc<Mutex<Vec<Value>>>,
}

fn flaky(failures: u32, error: &'static str) -> Flaky {
    let calls = Arc::new(AtomicU32::new(0));
    let payloads = Arc::new(Mutex::new(Vec::new()));
    let (c, p) = (Arc::clone(&calls), Arc::clone(&payloads));
    let function = function(move |payload| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        p.lock().unwrap().push(payload.clone());
        async move {
            if n < failures {
                Err(TaskError::new(error, format!("{{\"errorType\":\"{error}\",\"errorMessage\":\"attempt {n}\"}}")))
            } else {
                Ok(json!({"ok": n}))
            }
        }
    });
    Flaky { function, calls, payloads }
}

fn retrying(max_attempts: u32, catch: bool) -> Value {
    let mut call = task(
        "flaky",
        json!({
            "Parameters": {"FunctionName": "flaky", "Payload": {"retry.$": "$$.State.RetryCount", "x.$": "$.x"}},
            "Retry": [
                {"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 5},
                {
                    "ErrorEquals": ["csvlake.Transient"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": max_attempts,
                    "BackoffRate": 2,
                    "JitterStrategy": "FULL"
                }
            ],
            "ResultSelector": {"ok.$": "$.Payload.ok"},
            "ResultPath": "$.result",
            "Next": "Done"
        }),
    );
    let mut definition = json!({"StartAt": "Call", "States": {"Done": {"Type": "Succeed"}}});
    if catch {
        call["Catch"] = json!([
            {"ErrorEquals": ["csvlake.Internal"], "Next": "Wrong"},
            {"ErrorEquals": ["csvlake.Transient"], "ResultPath": "$.error", "Next": "Handled"}
        ]);
        definition["States"]["Wrong"] = json!({"Type": "Fail", "Error": "Wrong"});
        definition["States"]["Handled"] = json!({"Type": "Pass", "End": true});
    }
    definition["States"]["Call"] = call;
    definition
}

#[tokio::test]
async fn retry_reinvokes_until_the_function_succeeds() {
    let Flaky { function: f, calls, payloads } = flaky(2, "csvlake.Transient");
    let execution = executor(retrying(4, false)).with_function("flaky", f).execute("r", json!({"x": 9})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!({"x": 9, "result": {"ok": 2}})));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(retries(&execution.history, "Call"), [1, 2]);
    let failures = execution
        .history
        .iter()
        .filter(|e| matches!(e, HistoryEvent::TaskFailed { error, .. } if error == "csvlake.Transient"));
    assert_eq!(failures.count(), 2);
    // Parameters are evaluated again for each attempt, with the retry count.
    let counts: Vec<Value> = payloads.lock().unwrap().iter().map(|p| p["retry"].clone()).collect();
    assert_eq!(counts, [json!(0), json!(1), json!(2)]);
}

#[tokio::test]
async fn exhausted_retries_go_to_the_catch_with_the_error_at_its_result_path() {
    let Flaky { function: f, calls, .. } = flaky(u32::MAX, "csvlake.Transient");
    let execution = executor(retrying(2, true)).with_function("flaky", f).execute("r", json!({"x": 9})).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(retries(&execution.history, "Call"), [1, 2]);
    assert!(execution.history.contains(&HistoryEvent::Caught {
        state: "Call".into(),
        error: "csvlake.Transient".into(),
        next: "Handled".into()
    }));
    let output = execution.output().unwrap();
    assert_eq!(output["x"], json!(9), "the catch keeps the state's input");
    assert_eq!(output["error"]["Error"], json!("csvlake.Transient"));
    let cause: Value = serde_json::from_str(output["error"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause["errorMessage"], json!("attempt 2"));

    // Without a Catch the execution fails with the last error.
    let Flaky { function: f, calls, .. } = flaky(u32::MAX, "csvlake.Transient");
    let execution = executor(retrying(1, false)).with_function("flaky", f).execute("r", json!({"x": 9})).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let e = failed(&execution.status);
    assert_eq!(e.error, "csvlake.Transient");
    assert!(e.cause.contains("attempt 1"), "{}", e.cause);
}

#[tokio::test]
async fn the_first_matching_retrier_decides_and_zero_attempts_never_retry() {
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": task("flaky", json!({
                "Retry": [
                    {"ErrorEquals": ["csvlake.Internal"], "MaxAttempts": 0},
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}
                ],
                "End": true
            }))
        }
    });
    let Flaky { function: f, calls, .. } = flaky(u32::MAX, "csvlake.Internal");
    let execution = executor(definition.clone()).with_function("flaky", f).execute("r", json!({})).await;
    assert_eq!(failed(&execution.status).error, "csvlake.Internal");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(retries(&execution.history, "Call").is_empty());

    let Flaky { function: f, calls, .. } = flaky(u32::MAX, "Other.Error");
    let execution = executor(definition).with_function("flaky", f).execute("r", json!({})).await;
    assert_eq!(failed(&execution.status).error, "Other.Error");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn retry_delays_follow_the_backoff_scaled() {
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": task("flaky", json!({
                "Retry": [{
                    "ErrorEquals": ["csvlake.Transient"],
                    "IntervalSeconds": 1,
                    "BackoffRate": 3,
                    "MaxDelaySeconds": 5,
                    "MaxAttempts": 3
                }],
                "End": true
            }))
        }
    });
    let Flaky { function: f, .. } = flaky(3, "csvlake.Transient");
    let execution = Executor::new(parse(definition), unused_s3())
        .with_delay_scale(0.01)
        .with_function("flaky", f)
        .execute("r", json!({}))
        .await;
    assert!(execution.output().is_some());
    let delays: Vec<f64> = execution
        .history
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::RetryScheduled { delay, .. } => Some(delay.as_secs_f64() * 1000.0),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 3);
    for (delay, expected) in delays.iter().zip([10.0, 30.0, 50.0]) {
        assert!((delay - expected).abs() < 0.001, "{delays:?}");
    }
}

#[tokio::test]
async fn task_failed_does_not_match_a_timeout() {
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": task("slow", json!({
                "TimeoutSeconds": 1,
                "Catch": [
                    {"ErrorEquals": ["States.TaskFailed"], "Next": "Failed"},
                    {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timeout", "Next": "TimedOut"}
                ],
                "End": true
            })),
            "Failed": {"Type": "Fail", "Error": "wrong"},
            "TimedOut": {"Type": "Succeed", "OutputPath": "$.timeout.Error"}
        }
    });
    let slow = function(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(json!(null))
    });
    let execution = executor(definition).with_function("slow", slow).execute("t", json!({})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!("States.Timeout")));
}

#[tokio::test]
async fn unknown_and_panicking_functions_fail_their_task() {
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": task("arn:aws:lambda:local:000000000000:function:nobody", json!({
                "Catch": [{"ErrorEquals": ["Lambda.ResourceNotFoundException"], "ResultPath": "$.e", "Next": "Panics"}],
                "Next": "Panics"
            })),
            "Panics": task("panics", json!({"End": true}))
        }
    });
    let panics = function(|_| async { panic!("boom") });
    let execution = executor(definition).with_function("panics", panics).execute("t", json!({})).await;
    assert!(execution.history.contains(&HistoryEvent::Caught {
        state: "Call".into(),
        error: "Lambda.ResourceNotFoundException".into(),
        next: "Panics".into()
    }));
    let e = failed(&execution.status);
    assert_eq!(e.error, "States.TaskFailed");
    assert!(e.cause.contains("Lambda panicked: boom"), "{}", e.cause);

    // A function registered under its bare name answers to its ARN.
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": task("arn:aws:lambda:eu-west-1:123:function:echo", json!({"OutputPath": "$.Payload", "End": true}))
        }
    });
    let execution = executor(definition).with_function("echo", echo()).execute("t", json!({"a": 1})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!({"a": 1})));
}

#[tokio::test]
async fn fail_states_and_execution_timeouts_end_the_execution() {
    let definition =
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "my.Error", "Cause": "because"}}});
    let execution = executor(definition).execute("f", json!({})).await;
    assert_eq!(execution.status, ExecutionStatus::Failed(TaskError::new("my.Error", "because")));

    // ErrorPath and CausePath read the error from the state's input, as a Catch recorded it.
    let definition = json!({"StartAt": "F", "States": {"F": {
        "Type": "Fail", "ErrorPath": "$.caught.Error", "CausePath": "$.caught.Cause"
    }}});
    let input = json!({"caught": {"Error": "csvlake.Transient", "Cause": "slow down"}});
    let execution = executor(definition).execute("f", input).await;
    assert_eq!(execution.status, ExecutionStatus::Failed(TaskError::new("csvlake.Transient", "slow down")));
    let both = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "e", "ErrorPath": "$.e"}}});
    assert!(crate::Definition::parse(&both.to_string(), &std::collections::BTreeMap::new()).is_err());

    let definition = json!({
        "StartAt": "Call",
        "TimeoutSeconds": 1,
        "States": {"Call": task("slow", json!({"End": true}))}
    });
    let slow = function(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(json!(null))
    });
    let execution = executor(definition).with_function("slow", slow).execute("t", json!({})).await;
    assert_eq!(failed(&execution.status).error, "States.Timeout");
}

#[tokio::test]
async fn a_result_over_256_kib_fails_like_step_functions() {
    let definition = json!({"StartAt": "Big", "States": {"Big": task("big", json!({"End": true}))}});
    let big = function(|payload: Value| async move {
        Ok(json!({"text": "x".repeat(payload["n"].as_u64().unwrap_or(0) as usize)}))
    });
    let exec = executor(definition).with_function("big", big);
    let ok = exec.execute("fits", json!({"n": 200_000})).await;
    assert!(matches!(ok.status, ExecutionStatus::Succeeded(_)), "{:?}", ok.status);
    let over = exec.execute("over", json!({"n": 300_000})).await;
    let e = failed(&over.status);
    assert_eq!(e.error, "States.DataLimitExceeded", "{e:?}");
    assert!(e.cause.contains("Big"), "{}", e.cause);
}

#[tokio::test]
async fn states_all_neither_retries_nor_catches_a_data_limit_exceeded() {
    let big = || {
        let calls = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&calls);
        let f = function(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok(json!({"text": "x".repeat(300_000)})) }
        });
        (f, calls)
    };
    let definition = |error_equals: Value| {
        json!({
            "StartAt": "Big",
            "States": {
                "Big": task("big", json!({
                    "Retry": [{"ErrorEquals": error_equals.clone(), "MaxAttempts": 2}],
                    "Catch": [{"ErrorEquals": error_equals, "ResultPath": "$.error", "Next": "Caught"}],
                    "End": true
                })),
                "Caught": {"Type": "Succeed", "OutputPath": "$.error.Error"}
            }
        })
    };
    // States.ALL: the error is terminal, tried once, and fails the execution.
    let (f, calls) = big();
    let execution = executor(definition(json!(["States.ALL"]))).with_function("big", f).execute("all", json!({})).await;
    assert_eq!(failed(&execution.status).error, "States.DataLimitExceeded");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(retries(&execution.history, "Big").is_empty());
    assert!(!execution.history.iter().any(|e| matches!(e, HistoryEvent::Caught { .. })));

    // Its own name in ErrorEquals retries and catches it.
    let (f, calls) = big();
    let named = definition(json!(["States.DataLimitExceeded"]));
    let execution = executor(named).with_function("big", f).execute("named", json!({})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!("States.DataLimitExceeded")));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(retries(&execution.history, "Big"), [1, 2]);
}

/// Milliseconds since the epoch, as a Lambda context's deadline.
fn epoch_millis(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn a_function_timeout_sets_the_handler_deadline_and_drops_a_handler_that_runs_past_it() {
    use lambda_runtime::{Diagnostic, LambdaEvent};

    // Records each context's deadline and request id; sleeps `sleep_ms` of the payload, and
    // counts the calls whose future was dropped before they finished.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let dropped = Arc::new(AtomicU32::new(0));
    struct Guard(Arc<AtomicU32>, bool);
    impl Drop for Guard {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let handler = {
        let (seen, dropped) = (Arc::clone(&seen), Arc::clone(&dropped));
        crate::lambda(move |event: LambdaEvent<Value>| {
            let (seen, dropped) = (Arc::clone(&seen), Arc::clone(&dropped));
            async move {
                seen.lock().unwrap().push((event.context.deadline, event.context.request_id.clone()));
                let mut guard = Guard(dropped, false);
                let ms = event.payload["sleep_ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                guard.1 = true;
                Ok::<_, Diagnostic>(json!({"slept": ms}))
            }
        })
    };
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": task("arn:aws:lambda:local:000000000000:function:sleeper", json!({
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}],
                "OutputPath": "$.Payload",
                "End": true
            }))
        }
    });
    let timeout = Duration::from_millis(1500);
    let exec = executor(definition).with_function("sleeper", handler).with_function_timeout("sleeper", timeout);

    // Within the timeout: the handler's deadline is the invocation's start plus the timeout.
    let before = epoch_millis(std::time::SystemTime::now());
    let fast = exec.execute("fast", json!({"sleep_ms": 10})).await;
    assert_eq!(fast.status, ExecutionStatus::Succeeded(json!({"slept": 10})));
    let (deadline, _) = seen.lock().unwrap()[0].clone();
    let after = epoch_millis(std::time::SystemTime::now());
    assert!(deadline >= before + 1500 && deadline <= after + 1500, "{before} {deadline} {after}");

    // Past it: the call is dropped at the deadline and the Task fails as Lambda reports it.
    let started = std::time::Instant::now();
    let slow = exec.execute("slow", json!({"sleep_ms": 30_000})).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout && elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the handler's future was dropped");
    let e = failed(&slow.status);
    assert_eq!(e.error, "Sandbox.Timedout");
    let (_, request_id) = seen.lock().unwrap()[1].clone();
    let cause: Value = serde_json::from_str(&e.cause).unwrap();
    assert_eq!(
        cause,
        json!({
            "errorType": "Sandbox.Timedout",
            "errorMessage": format!("RequestId: {request_id} Error: Task timed out after 1.50 seconds")
        })
    );
    assert!(
        slow.history.contains(&HistoryEvent::TaskFailed { state: "Call".into(), error: "Sandbox.Timedout".into() })
    );

    // Without a timeout, the handler is told the Lambda maximum and is not cut off.
    let definition = json!({"StartAt": "Call", "States": {"Call": task("sleeper", json!({"End": true}))}});
    let handler = {
        let seen = Arc::clone(&seen);
        crate::lambda(move |event: LambdaEvent<Value>| {
            seen.lock().unwrap().push((event.context.deadline, event.context.request_id.clone()));
            async { Ok::<_, Diagnostic>(json!(null)) }
        })
    };
    let before = epoch_millis(std::time::SystemTime::now());
    let execution = executor(definition).with_function("sleeper", handler).execute("default", json!({})).await;
    assert!(execution.output().is_some(), "{:?}", execution.status);
    let (deadline, _) = seen.lock().unwrap()[2].clone();
    assert!(deadline >= before + crate::LAMBDA_TIMEOUT.as_millis() as u64, "{deadline}");
    assert_eq!(crate::LAMBDA_TIMEOUT, Duration::from_secs(15 * 60));
}

#[tokio::test]
async fn a_task_timeout_shorter_than_the_function_timeout_still_wins() {
    let definition = json!({
        "StartAt": "Call",
        "States": {"Call": task("slow", json!({"TimeoutSeconds": 1, "End": true}))}
    });
    let slow = function(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(json!(null))
    });
    let execution = executor(definition)
        .with_function("slow", slow)
        .with_function_timeout("arn:aws:lambda:local:000000000000:function:slow", Duration::from_secs(5))
        .execute("t", json!({}))
        .await;
    assert_eq!(failed(&execution.status).error, "States.Timeout");
}

#[tokio::test]
async fn the_pipeline_ends_in_map_failed_when_the_run_summary_holds_the_maps_error() {
    let variables = ["PlannerFunctionArn", "ConverterFunctionArn", "ReducerFunctionArn"];
    let definition = crate::Definition::parse(crate::DEFINITION, &crate::local_substitutions(&variables)).unwrap();
    // No batch: the Map does not run, and the summary is whatever the reducer answers.
    let planner = function(|_| async { Ok(json!({"batches": 0})) });
    let run = |summary: Value| {
        // The join phase plans no conform; the reduce phase answers `summary`.
        let reducer = function(move |input: Value| {
            let summary = summary.clone();
            async move {
                if input["phase"] == json!("join") {
                    return Ok(json!({"batches": 0, "files": 0, "earlier": 0, "manifest": null, "results": null,
                                     "drift": null, "limited": null}));
                }
                Ok(summary)
            }
        });
        Executor::new(definition.clone(), unused_s3())
            .with_delay_scale(0.0)
            .with_function(crate::local_function_arn(variables[0]), Arc::clone(&planner))
            .with_function(crate::local_function_arn(variables[2]), reducer)
    };
    let map_error = json!({"Error": "States.ItemReaderFailed", "Cause": "s3://lake/m.json is not JSON"});
    let execution = run(json!({"exceeded_tolerance": true, "map_error": map_error})).execute("failed", json!({})).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed(TaskError::new("csvlake.MapFailed", "s3://lake/m.json is not JSON"))
    );
    let entered: Vec<&str> = execution
        .history
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::StateEntered { state } => Some(state.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        entered,
        [
            "Plan",
            "AnythingToConvert",
            "ToJoin",
            "Join",
            "AnythingToConform",
            "ToReduce",
            "Reduce",
            "MapCompleted",
            "MapFailed"
        ]
    );

    // Without a Map error, the reducer's verdict on the tolerance decides, as before.
    let execution = run(json!({"exceeded_tolerance": true})).execute("exceeded", json!({})).await;
    assert_eq!(failed(&execution.status).error, "csvlake.ToleranceExceeded");
    let summary = json!({"exceeded_tolerance": false});
    let execution = run(summary.clone()).execute("ok", json!({})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(summary));
}
