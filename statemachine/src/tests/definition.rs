//! Parsing: the real definition parses, and everything outside the subset is named.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::definition::{State, StateMachine, Task};
use crate::retry::{Jitter, Retrier};
use crate::{AslError, DEFINITION, Definition, local_function_arn, local_substitutions};

/// The definition's substitution variables.
const PLANNER: &str = "PlannerFunctionArn";
const CONVERTER: &str = "ConverterFunctionArn";
const REDUCER: &str = "ReducerFunctionArn";
const VARIABLES: [&str; 3] = [PLANNER, CONVERTER, REDUCER];

/// The real definition, substituted, as JSON to edit.
fn pipeline() -> Value {
    let text = DEFINITION
        .replace("${PlannerFunctionArn}", "planner")
        .replace("${ConverterFunctionArn}", "converter")
        .replace("${ReducerFunctionArn}", "reducer");
    serde_json::from_str(&text).unwrap()
}

fn error(definition: &Value) -> AslError {
    Definition::parse(&definition.to_string(), &BTreeMap::new()).expect_err("the definition must be rejected")
}

fn unsupported(definition: &Value) -> String {
    match error(definition) {
        AslError::Unsupported(message) => message,
        other => panic!("expected an unsupported construct, got {other:?}"),
    }
}

fn invalid(definition: &Value) -> String {
    match error(definition) {
        AslError::Invalid(message) => message,
        other => panic!("expected an invalid definition, got {other:?}"),
    }
}

/// A one-state definition around `state`.
fn single(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

#[test]
fn the_pipeline_parses_with_the_three_substitutions() {
    let definition = Definition::parse(DEFINITION, &local_substitutions(&VARIABLES)).unwrap();
    assert_eq!(definition.start_at(), "Plan");
    assert_eq!(
        definition.state_names().collect::<Vec<_>>(),
        [
            "AnythingToConform",
            "AnythingToConvert",
            "Conform",
            "Convert",
            "Done",
            "Join",
            "MapCompleted",
            "MapFailed",
            "Plan",
            "Reduce",
            "ReduceFailed",
            "ReleaseLeases",
            "ToJoin",
            "ToReduce",
            "ToleranceExceeded",
            "WithinTolerance"
        ]
    );
    assert!(definition.comment().unwrap().starts_with("csvlake:"));
    assert_eq!(local_function_arn(PLANNER), "arn:aws:lambda:local:000000000000:function:csvlake-planner");
    assert_eq!(local_function_arn(CONVERTER), "arn:aws:lambda:local:000000000000:function:csvlake-converter");
    assert_eq!(local_function_arn(REDUCER), "arn:aws:lambda:local:000000000000:function:csvlake-reducer");
    assert_eq!(
        local_function_arn("FileWatcherFunctionArn"),
        "arn:aws:lambda:local:000000000000:function:csvlake-file-watcher"
    );
}

#[test]
fn a_placeholder_without_substitution_is_named() {
    let mut two = local_substitutions(&VARIABLES);
    two.remove(REDUCER);
    match Definition::parse(DEFINITION, &two).unwrap_err() {
        AslError::Unresolved(placeholder) => assert_eq!(placeholder, "${ReducerFunctionArn}"),
        other => panic!("{other:?}"),
    }
    let text = r#"{"Comment": "${Stage} run", "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}"#;
    let e = Definition::parse(text, &BTreeMap::new()).unwrap_err();
    assert!(e.to_string().contains("\"${Stage}\""), "{e}");
    let subs = BTreeMap::from([("Stage".to_owned(), "prod".to_owned())]);
    assert_eq!(Definition::parse(text, &subs).unwrap().comment(), Some("prod run"));
    let e = Definition::parse(r#"{"Comment": "${open"#, &BTreeMap::new()).unwrap_err();
    assert!(matches!(e, AslError::Unresolved(_)), "{e}");
}

#[test]
fn state_types_outside_the_subset_are_named() {
    let mut d = pipeline();
    d["States"]["Fanout"] = json!({"Type": "Parallel", "Branches": [], "End": true});
    d["States"]["Plan"]["Next"] = json!("Fanout");
    assert_eq!(unsupported(&d), "unsupported state type \"Parallel\" in state \"Fanout\"");
    let e = unsupported(&single(json!({"Type": "Wait", "Seconds": 1, "End": true})));
    assert_eq!(e, "unsupported state type \"Wait\" in state \"S\"");
    let e = invalid(&single(json!({"Type": "Tsak", "End": true})));
    assert_eq!(e, "unknown state type \"Tsak\" in state \"S\"");
}

#[test]
fn map_fields_outside_the_subset_are_named() {
    for (field, value) in [
        ("ItemBatcher", json!({"MaxItemsPerBatch": 10})),
        ("ItemsPath", json!("$.items")),
        ("Parameters", json!({"a": 1})),
        ("Iterator", json!({})),
        ("Label", json!("convert")),
    ] {
        let mut d = pipeline();
        d["States"]["Convert"][field] = value;
        assert_eq!(unsupported(&d), format!("unsupported field \"{field}\" in Map state \"Convert\""));
    }
    let mut d = pipeline();
    d["States"]["Convert"]["ItemProcessor"]["ProcessorConfig"]["Mode"] = json!("INLINE");
    assert!(unsupported(&d).starts_with("unsupported Map mode \"INLINE\" in Map state \"Convert\""));
    let mut d = pipeline();
    d["States"]["Convert"]["ItemReader"]["ReaderConfig"]["InputType"] = json!("CSV");
    assert!(unsupported(&d).starts_with("unsupported InputType \"CSV\" in ReaderConfig of ItemReader of Map state"));
    let mut d = pipeline();
    d["States"]["Convert"]["ItemReader"]["ReaderConfig"]["MaxItems"] = json!(5);
    assert!(unsupported(&d).starts_with("unsupported field \"MaxItems\" in ReaderConfig"));
    let mut d = pipeline();
    d["States"]["Convert"]["ResultWriter"]["WriterConfig"] = json!({"OutputType": "JSONL"});
    assert_eq!(unsupported(&d), "unsupported field \"WriterConfig\" in ResultWriter of Map state \"Convert\"");
    let mut d = pipeline();
    d["States"]["Convert"].as_object_mut().unwrap().remove("ResultWriter");
    assert!(unsupported(&d).contains("has no ResultWriter"));
    let mut d = pipeline();
    d["States"]["Convert"]["MaxConcurrency"] = json!(5);
    assert!(invalid(&d).contains("both MaxConcurrency and MaxConcurrencyPath"));
    let mut d = pipeline();
    d["States"]["Convert"]["ItemProcessor"]["States"]["ConvertBatch"]["Type"] = json!("Parallel");
    assert_eq!(unsupported(&d), "unsupported state type \"Parallel\" in state \"ConvertBatch\"");
}

#[test]
fn task_constructs_outside_the_subset_are_named() {
    let mut d = pipeline();
    d["States"]["Plan"]["Parameters"]["Payload"]["run_id.$"] = json!("States.Format('run-{}', $$.Execution.Name)");
    assert!(
        unsupported(&d)
            .starts_with("intrinsic functions are not supported: \"States.Format('run-{}', $$.Execution.Name)\""),
        "{}",
        unsupported(&d)
    );
    let mut d = pipeline();
    d["States"]["Plan"]["Resource"] = json!("arn:aws:states:::lambda:invoke.waitForTaskToken");
    assert!(unsupported(&d).starts_with(
        "unsupported resource \"arn:aws:states:::lambda:invoke.waitForTaskToken\" in Task state \"Plan\""
    ));
    let mut d = pipeline();
    d["States"]["Plan"]["HeartbeatSeconds"] = json!(60);
    assert_eq!(unsupported(&d), "unsupported field \"HeartbeatSeconds\" in Task state \"Plan\"");
    let mut d = pipeline();
    d["States"]["Plan"]["Parameters"]["InvocationType"] = json!("Event");
    assert!(unsupported(&d).starts_with("unsupported parameter \"InvocationType\""));
    let mut d = pipeline();
    d["States"]["Plan"]["OutputPath"] = json!("$..Payload");
    assert!(unsupported(&d).starts_with("unsupported path \"$..Payload\" in OutputPath of Task state \"Plan\""));
    let mut d = pipeline();
    d["States"]["Plan"]["Arguments"] = json!({});
    assert_eq!(unsupported(&d), "unsupported field \"Arguments\" in Task state \"Plan\"");
    let mut d = pipeline();
    d["States"]["Plan"]["QueryLanguage"] = json!("JSONata");
    assert!(unsupported(&d).starts_with("unsupported QueryLanguage \"JSONata\" in Task state \"Plan\""));
    let mut d = pipeline();
    d["QueryLanguage"] = json!("JSONata");
    assert!(unsupported(&d).starts_with("unsupported QueryLanguage \"JSONata\" in the definition"));
}

#[test]
fn unknown_fields_and_broken_structure_are_named() {
    let mut d = pipeline();
    d["States"]["Plan"]["Retries"] = json!([]);
    assert_eq!(invalid(&d), "unknown field \"Retries\" in Task state \"Plan\"");
    let mut d = pipeline();
    d["Statez"] = json!({});
    assert_eq!(invalid(&d), "unknown field \"Statez\" in the definition");
    let mut d = pipeline();
    d["States"]["Plan"]["Next"] = json!("Nowhere");
    assert_eq!(invalid(&d), "Next \"Nowhere\" of state \"Plan\" in the definition names no state");
    let mut d = pipeline();
    d["States"]["Convert"]["Catch"][0]["Next"] = json!("Report");
    assert!(invalid(&d).starts_with("Catch[0].Next \"Report\" of state \"Convert\""));
    let mut d = pipeline();
    d["States"]["AnythingToConvert"]["Default"] = json!("Reduce");
    assert!(invalid(&d).contains("state \"Convert\" of the definition cannot be reached"), "{}", invalid(&d));
    let mut d = pipeline();
    d["StartAt"] = json!("Begin");
    assert_eq!(invalid(&d), "StartAt \"Begin\" of the definition names no state");
    let mut d = pipeline();
    d["States"]["Reduce"].as_object_mut().unwrap().remove("Next");
    assert_eq!(invalid(&d), "Task state \"Reduce\" needs Next or \"End\": true");
    let mut d = pipeline();
    d["States"]["Reduce"]["End"] = json!(true);
    assert_eq!(invalid(&d), "Task state \"Reduce\" has both Next and End");
    let mut d = pipeline();
    d["States"]["Plan"]["Parameters"].as_object_mut().unwrap().remove("FunctionName");
    assert!(invalid(&d).contains("no \"FunctionName\""));
    let mut d = pipeline();
    d["States"]["Convert"]["ItemProcessor"]["StartAt"] = json!("Elsewhere");
    assert_eq!(invalid(&d), "StartAt \"Elsewhere\" of ItemProcessor of Map state \"Convert\" names no state");
    let mut d = pipeline();
    d["States"]["Plan"]["Retry"][1]["JitterStrategy"] = json!("PARTIAL");
    assert!(invalid(&d).contains("Retry[1] of Task state \"Plan\""));
    let mut d = pipeline();
    d["States"]["Plan"]["ResultPath"] = json!("$$.Execution");
    assert!(invalid(&d).contains("cannot write into the context object"));
    let mut d = pipeline();
    d["States"]["Done"]["Type"] = json!(3);
    assert_eq!(invalid(&d), "field \"Type\" of state \"Done\" must be a string, not a number");
    assert!(matches!(error(&json!({"StartAt": "S"})), AslError::Invalid(_)));
    match Definition::parse("{\"StartAt\": ", &BTreeMap::new()).unwrap_err() {
        AslError::Json(_) => {}
        other => panic!("{other:?}"),
    }
}

/// The Task states of `machine` and of its Maps' processors, by name.
fn tasks<'m>(machine: &'m StateMachine, out: &mut Vec<(&'m str, &'m Task)>) {
    for (name, state) in &machine.states {
        match state {
            State::Task(task) => out.push((name, task)),
            State::Map(map) => tasks(&map.processor, out),
            _ => {}
        }
    }
}

/// The waits of every retry a retrier allows, in seconds, before jitter.
fn waits(retrier: &Retrier) -> Vec<f64> {
    (1..=retrier.max_attempts)
        .map(|n| {
            let wait = retrier.interval_seconds * retrier.backoff_rate.powi(n as i32 - 1);
            retrier.max_delay_seconds.map_or(wait, |max| wait.min(max))
        })
        .collect()
}

/// The retrier whose ErrorEquals names `error` (the first, as Step Functions picks it).
fn retrier<'t>(task: &'t Task, error: &str) -> Option<&'t Retrier> {
    task.handlers.retry.iter().find(|r| r.error_equals.iter().any(|e| e == error))
}

#[test]
fn every_task_retries_lambda_throttling_on_its_own_for_about_ten_minutes() {
    let definition = Definition::parse(DEFINITION, &local_substitutions(&VARIABLES)).unwrap();
    let mut all = Vec::new();
    tasks(&definition.machine, &mut all);
    let mut names: Vec<&str> = all.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    assert_eq!(names, ["ConformBatch", "ConvertBatch", "Join", "Plan", "Reduce", "ReleaseLeases"]);
    for (name, task) in all {
        let throttling = retrier(task, "Lambda.TooManyRequestsException").unwrap_or_else(|| panic!("{name}"));
        assert_eq!(throttling.error_equals, ["Lambda.TooManyRequestsException"], "{name}: a retrier of its own");
        assert_eq!(throttling.jitter, Jitter::Full, "{name}");
        let delays = waits(throttling);
        let total: f64 = delays.iter().sum();
        // 2 + 4 + 8 + 16 + 32 + 9 × 60 = 602 seconds before jitter.
        assert!((600.0..=720.0).contains(&total), "{name}: {total} s in {delays:?}");
        assert!(delays.iter().all(|w| *w <= 60.0), "{name}: {delays:?}");
        // The other Lambda service errors keep a short retry.
        for error in ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"] {
            let short = retrier(task, error).unwrap_or_else(|| panic!("{name} retries {error}"));
            assert!(!short.error_equals.iter().any(|e| e == "Lambda.TooManyRequestsException"), "{name}");
            assert!(waits(short).iter().sum::<f64>() <= 60.0, "{name}: {error}");
        }
        assert!(retrier(task, "csvlake.Transient").is_some(), "{name}");
        let deadline = retrier(task, "csvlake.Deadline");
        if name == "ConvertBatch" || name == "ConformBatch" {
            // A batch that stopped at its deadline goes on at once with the files left.
            let deadline = deadline.unwrap_or_else(|| panic!("{name} retries csvlake.Deadline"));
            assert_eq!(deadline.error_equals, ["csvlake.Deadline"]);
            assert_eq!((deadline.interval_seconds, deadline.backoff_rate, deadline.max_attempts), (1.0, 1.0, 10));
        } else {
            assert!(deadline.is_none(), "{name}: only the converter stops at its deadline");
        }
    }
}
