//! Parsing and validation of a definition: substitution of `${Name}` placeholders, then the
//! JSON walked into typed states. Whatever can be checked before running is checked here:
//! unknown and unsupported fields per state type, field types, paths, templates, transitions
//! to missing states, unreachable states, and the query language.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::choice::{Branch, parse_choices};
use crate::error::{AslError, AslResult};
use crate::fields::Fields;
use crate::path::{Path, Template};
use crate::retry::{Catcher, Retrier, parse_catch, parse_retry};

/// The only Task resource in the subset.
pub(crate) const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// The only ItemReader resource in the subset.
pub(crate) const S3_GET_OBJECT: &str = "arn:aws:states:::s3:getObject";
/// The only ResultWriter resource in the subset.
pub(crate) const S3_PUT_OBJECT: &str = "arn:aws:states:::s3:putObject";

/// A parsed, validated state machine definition, ready for an [`crate::Executor`].
#[derive(Clone, Debug)]
pub struct Definition {
    comment: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) machine: Arc<StateMachine>,
}

impl Definition {
    /// Replaces each `${Name}` in `text` with `substitutions[Name]` (as Step Functions'
    /// definition substitutions do, textually), then parses and validates the result. A
    /// placeholder without a substitution is an error naming it.
    pub fn parse(text: &str, substitutions: &BTreeMap<String, String>) -> Result<Definition, AslError> {
        let text = substitute(text, substitutions)?;
        let value: Value = serde_json::from_str(&text).map_err(AslError::Json)?;
        let top = Fields::new(&value, "the definition")?;
        top.allow(&["Comment", "StartAt", "States", "QueryLanguage", "TimeoutSeconds", "Version"], &[])?;
        top.check_query_language()?;
        if let Some(version) = top.string("Version")?
            && version != "1.0"
        {
            return Err(AslError::Unsupported(format!("unsupported Version \"{version}\": only 1.0 exists")));
        }
        Ok(Definition {
            comment: top.string("Comment")?.map(str::to_owned),
            timeout: positive_seconds(&top, "TimeoutSeconds")?,
            machine: Arc::new(parse_machine(&top)?),
        })
    }

    /// The definition's Comment.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The name of the first state.
    pub fn start_at(&self) -> &str {
        &self.machine.start_at
    }

    /// The names of the top-level states, in name order.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.machine.states.keys().map(String::as_str)
    }
}

/// `${Name}` → its substitution, in one pass (a substituted value is not scanned again).
fn substitute(text: &str, substitutions: &BTreeMap<String, String>) -> AslResult<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            let shown: String = rest[start..].chars().take(40).collect();
            return Err(AslError::Unresolved(shown));
        };
        let name = &after[..end];
        let value = substitutions.get(name).ok_or_else(|| AslError::Unresolved(format!("${{{name}}}")))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// StartAt and States, of the definition or of a Map's ItemProcessor.
#[derive(Clone, Debug)]
pub(crate) struct StateMachine {
    pub(crate) start_at: String,
    pub(crate) states: BTreeMap<String, State>,
}

/// Where a state goes when it succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    Next(String),
    End,
}

/// InputPath, ResultSelector, ResultPath and OutputPath of a Task or Map state.
#[derive(Clone, Debug)]
pub(crate) struct Io {
    /// `None`: `InputPath: null`, the state sees `{}`.
    pub(crate) input_path: Option<Path>,
    pub(crate) result_selector: Option<Template>,
    /// `None`: `ResultPath: null`, the result is discarded.
    pub(crate) result_path: Option<Path>,
    /// `None`: `OutputPath: null`, the output is `{}`.
    pub(crate) output_path: Option<Path>,
}

/// Retry and Catch of a Task or Map state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Handlers {
    pub(crate) retry: Vec<Retrier>,
    pub(crate) catch: Vec<Catcher>,
}

/// A state of the subset.
#[derive(Clone, Debug)]
pub(crate) enum State {
    Task(Task),
    Choice(Choice),
    Pass(Pass),
    Succeed(Succeed),
    Fail(Fail),
    Map(Box<Map>),
}

/// A Task state on `arn:aws:states:::lambda:invoke`.
#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub(crate) io: Io,
    /// `FunctionName` and `Payload`.
    pub(crate) parameters: Template,
    pub(crate) timeout: Option<Duration>,
    pub(crate) handlers: Handlers,
    pub(crate) transition: Transition,
}

/// A Choice state.
#[derive(Clone, Debug)]
pub(crate) struct Choice {
    pub(crate) input_path: Option<Path>,
    pub(crate) output_path: Option<Path>,
    pub(crate) choices: Vec<Branch>,
    pub(crate) default: Option<String>,
}

/// A Pass state.
#[derive(Clone, Debug)]
pub(crate) struct Pass {
    pub(crate) input_path: Option<Path>,
    pub(crate) parameters: Option<Template>,
    pub(crate) result: Option<Value>,
    pub(crate) result_path: Option<Path>,
    pub(crate) output_path: Option<Path>,
    pub(crate) transition: Transition,
}

/// A Succeed state.
#[derive(Clone, Debug)]
pub(crate) struct Succeed {
    pub(crate) input_path: Option<Path>,
    pub(crate) output_path: Option<Path>,
}

/// A Fail state.
#[derive(Clone, Debug)]
pub(crate) struct Fail {
    pub(crate) error: Option<String>,
    pub(crate) cause: Option<String>,
    /// Where the error name is read from the state's input (`ErrorPath`), instead of `Error`.
    pub(crate) error_path: Option<Path>,
    /// Where the cause is read from the state's input (`CausePath`), instead of `Cause`.
    pub(crate) cause_path: Option<Path>,
}

/// A number given in the definition or read from the input.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Setting<T> {
    Fixed(T),
    Path(Path),
}

/// The child executions' type; it only shows in their ARNs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExecutionType {
    Standard,
    Express,
}

/// A Distributed Map state.
#[derive(Clone, Debug)]
pub(crate) struct Map {
    pub(crate) io: Io,
    /// `Bucket` and `Key` of the JSON array of items.
    pub(crate) reader: Template,
    pub(crate) item_selector: Option<Template>,
    pub(crate) processor: Arc<StateMachine>,
    pub(crate) execution_type: ExecutionType,
    /// 0: unbounded.
    pub(crate) max_concurrency: Setting<u64>,
    pub(crate) tolerated_failure_percentage: Option<Setting<f64>>,
    pub(crate) tolerated_failure_count: Option<Setting<u64>>,
    /// `Bucket` and `Prefix` of the results.
    pub(crate) writer: Template,
    pub(crate) handlers: Handlers,
    pub(crate) transition: Transition,
}

fn parse_machine(fields: &Fields<'_>) -> AslResult<StateMachine> {
    let place = fields.place();
    let start_at = fields.require_string("StartAt")?.to_owned();
    let states_value = fields.require("States")?;
    let states_place = format!("States of {place}");
    let states_fields = Fields::new(states_value, &states_place)?;
    let mut states = BTreeMap::new();
    for name in states_fields.keys() {
        let value = states_fields.require(name)?;
        states.insert(name.to_owned(), parse_state(name, value)?);
    }
    if states.is_empty() {
        return Err(AslError::Invalid(format!("{states_place} is empty")));
    }
    if !states.contains_key(&start_at) {
        return Err(AslError::Invalid(format!("StartAt \"{start_at}\" of {place} names no state")));
    }
    let machine = StateMachine { start_at, states };
    check_transitions(&machine, place)?;
    Ok(machine)
}

/// Every transition names a state of the same machine, and every state is reachable.
fn check_transitions(machine: &StateMachine, place: &str) -> AslResult<()> {
    for (name, state) in &machine.states {
        for (field, target) in state.targets() {
            if !machine.states.contains_key(target) {
                return Err(AslError::Invalid(format!(
                    "{field} \"{target}\" of state \"{name}\" in {place} names no state"
                )));
            }
        }
    }
    let mut reached = BTreeSet::from([machine.start_at.as_str()]);
    let mut todo = vec![machine.start_at.as_str()];
    while let Some(name) = todo.pop() {
        if let Some(state) = machine.states.get(name) {
            for (_, target) in state.targets() {
                if reached.insert(target) {
                    todo.push(target);
                }
            }
        }
    }
    if let Some(lost) = machine.states.keys().find(|n| !reached.contains(n.as_str())) {
        return Err(AslError::Invalid(format!("state \"{lost}\" of {place} cannot be reached from StartAt")));
    }
    Ok(())
}

impl State {
    /// The states this one may go to, with the field that names each.
    fn targets(&self) -> Vec<(String, &str)> {
        fn next(t: &Transition) -> Vec<(String, &str)> {
            match t {
                Transition::Next(n) => vec![("Next".to_owned(), n.as_str())],
                Transition::End => Vec::new(),
            }
        }
        fn catches(h: &Handlers) -> Vec<(String, &str)> {
            h.catch.iter().enumerate().map(|(i, c)| (format!("Catch[{i}].Next"), c.next.as_str())).collect()
        }
        match self {
            Self::Task(t) => [next(&t.transition), catches(&t.handlers)].concat(),
            Self::Map(m) => [next(&m.transition), catches(&m.handlers)].concat(),
            Self::Pass(p) => next(&p.transition),
            Self::Choice(c) => c
                .choices
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("Choices[{i}].Next"), b.next.as_str()))
                .chain(c.default.iter().map(|d| ("Default".to_owned(), d.as_str())))
                .collect(),
            Self::Succeed(_) | Self::Fail(_) => Vec::new(),
        }
    }
}

fn parse_state(name: &str, value: &Value) -> AslResult<State> {
    let any_place = format!("state \"{name}\"");
    let ty = Fields::new(value, &any_place)?.require_string("Type")?;
    let place = format!("{ty} state \"{name}\"");
    let fields = Fields::new(value, &place)?;
    fields.check_query_language()?;
    match ty {
        "Task" => parse_task(&fields).map(State::Task),
        "Choice" => parse_choice(&fields).map(State::Choice),
        "Pass" => parse_pass(&fields).map(State::Pass),
        "Succeed" => parse_succeed(&fields).map(State::Succeed),
        "Fail" => parse_fail(&fields).map(State::Fail),
        "Map" => parse_map(&fields).map(|m| State::Map(Box::new(m))),
        "Wait" | "Parallel" => {
            Err(AslError::Unsupported(format!("unsupported state type \"{ty}\" in state \"{name}\"")))
        }
        other => Err(AslError::Invalid(format!("unknown state type \"{other}\" in state \"{name}\""))),
    }
}

/// Next or `End: true`, exactly one.
fn transition(fields: &Fields<'_>) -> AslResult<Transition> {
    let next = fields.string("Next")?;
    let end = fields.boolean("End")?.unwrap_or(false);
    match (next, end) {
        (Some(_), true) => Err(AslError::Invalid(format!("{} has both Next and End", fields.place()))),
        (Some(next), false) => Ok(Transition::Next(next.to_owned())),
        (None, true) => Ok(Transition::End),
        (None, false) => Err(AslError::Invalid(format!("{} needs Next or \"End\": true", fields.place()))),
    }
}

fn positive_seconds(fields: &Fields<'_>, key: &str) -> AslResult<Option<Duration>> {
    match fields.unsigned(key)? {
        Some(0) => Err(AslError::Invalid(format!("{key} of {} must be positive", fields.place()))),
        seconds => Ok(seconds.map(Duration::from_secs)),
    }
}

fn io(fields: &Fields<'_>) -> AslResult<Io> {
    Ok(Io {
        input_path: fields.io_path("InputPath")?,
        result_selector: fields.template("ResultSelector")?,
        result_path: fields.result_path("ResultPath")?,
        output_path: fields.io_path("OutputPath")?,
    })
}

fn handlers(fields: &Fields<'_>) -> AslResult<Handlers> {
    Ok(Handlers { retry: parse_retry(fields)?, catch: parse_catch(fields)? })
}

fn parse_task(fields: &Fields<'_>) -> AslResult<Task> {
    let place = fields.place();
    fields.allow(
        &[
            "Type",
            "Comment",
            "QueryLanguage",
            "Resource",
            "Parameters",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "Next",
            "End",
            "TimeoutSeconds",
        ],
        &[],
    )?;
    let resource = fields.require_string("Resource")?;
    if resource != LAMBDA_INVOKE {
        return Err(AslError::Unsupported(format!(
            "unsupported resource \"{resource}\" in {place}: only {LAMBDA_INVOKE} is supported"
        )));
    }
    let parameters = fields.template("Parameters")?.ok_or_else(|| {
        AslError::Invalid(format!(
            "{place} has no \"Parameters\" field: {LAMBDA_INVOKE} needs FunctionName and Payload"
        ))
    })?;
    for name in parameters.member_names().into_iter().flatten() {
        match name {
            "FunctionName" | "Payload" => {}
            "Qualifier" | "InvocationType" | "ClientContext" | "LogType" => {
                return Err(AslError::Unsupported(format!(
                    "unsupported parameter \"{name}\" of {LAMBDA_INVOKE} in {place}"
                )));
            }
            other => {
                return Err(AslError::Invalid(format!("unknown parameter \"{other}\" of {LAMBDA_INVOKE} in {place}")));
            }
        }
    }
    for required in ["FunctionName", "Payload"] {
        if parameters.member(required).is_none() {
            return Err(AslError::Invalid(format!(
                "Parameters of {place} has no \"{required}\" (or \"{required}.$\")"
            )));
        }
    }
    if let Some(Template::Literal(name)) = parameters.member("FunctionName")
        && !name.is_string()
    {
        return Err(AslError::Invalid(format!("FunctionName in Parameters of {place} must be a string")));
    }
    Ok(Task {
        io: io(fields)?,
        parameters,
        timeout: positive_seconds(fields, "TimeoutSeconds")?,
        handlers: handlers(fields)?,
        transition: transition(fields)?,
    })
}

fn parse_choice(fields: &Fields<'_>) -> AslResult<Choice> {
    fields.allow(&["Type", "Comment", "QueryLanguage", "InputPath", "OutputPath", "Choices", "Default"], &[])?;
    Ok(Choice {
        input_path: fields.io_path("InputPath")?,
        output_path: fields.io_path("OutputPath")?,
        choices: parse_choices(fields)?,
        default: fields.string("Default")?.map(str::to_owned),
    })
}

fn parse_pass(fields: &Fields<'_>) -> AslResult<Pass> {
    fields.allow(
        &[
            "Type",
            "Comment",
            "QueryLanguage",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "Result",
            "Next",
            "End",
        ],
        &[],
    )?;
    Ok(Pass {
        input_path: fields.io_path("InputPath")?,
        parameters: fields.template("Parameters")?,
        result: fields.get("Result").cloned(),
        result_path: fields.result_path("ResultPath")?,
        output_path: fields.io_path("OutputPath")?,
        transition: transition(fields)?,
    })
}

fn parse_succeed(fields: &Fields<'_>) -> AslResult<Succeed> {
    fields.allow(&["Type", "Comment", "QueryLanguage", "InputPath", "OutputPath"], &[])?;
    Ok(Succeed { input_path: fields.io_path("InputPath")?, output_path: fields.io_path("OutputPath")? })
}

fn parse_fail(fields: &Fields<'_>) -> AslResult<Fail> {
    fields.allow(&["Type", "Comment", "QueryLanguage", "Error", "Cause", "ErrorPath", "CausePath"], &[])?;
    let fail = Fail {
        error: fields.string("Error")?.map(str::to_owned),
        cause: fields.string("Cause")?.map(str::to_owned),
        error_path: fields.path("ErrorPath")?,
        cause_path: fields.path("CausePath")?,
    };
    if (fail.error.is_some() && fail.error_path.is_some()) || (fail.cause.is_some() && fail.cause_path.is_some()) {
        return Err(AslError::Invalid("a Fail state takes Error or ErrorPath, Cause or CausePath, not both".into()));
    }
    Ok(fail)
}

/// A number, or the path it is read from; not both.
fn setting<'a, T>(
    fields: &Fields<'a>,
    key: &str,
    read: impl Fn(&Fields<'a>, &str) -> AslResult<Option<T>>,
) -> AslResult<Option<Setting<T>>> {
    let path_key = format!("{key}Path");
    match (read(fields, key)?, fields.path(&path_key)?) {
        (Some(_), Some(_)) => {
            Err(AslError::Invalid(format!("{} has both {key} and {path_key}: give one", fields.place())))
        }
        (Some(value), None) => Ok(Some(Setting::Fixed(value))),
        (None, Some(path)) => Ok(Some(Setting::Path(path))),
        (None, None) => Ok(None),
    }
}

fn parse_map(fields: &Fields<'_>) -> AslResult<Map> {
    let place = fields.place();
    fields.allow(
        &[
            "Type",
            "Comment",
            "QueryLanguage",
            "ItemReader",
            "ItemSelector",
            "ItemProcessor",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ResultWriter",
            "InputPath",
            "ResultPath",
            "ResultSelector",
            "OutputPath",
            "Retry",
            "Catch",
            "Next",
            "End",
        ],
        &[],
    )?;

    let processor_place = format!("ItemProcessor of {place}");
    let processor = Fields::new(fields.require("ItemProcessor")?, &processor_place)?;
    processor.allow(&["ProcessorConfig", "StartAt", "States", "Comment"], &[])?;
    let config_place = format!("ProcessorConfig of {processor_place}");
    let config = match processor.get("ProcessorConfig") {
        Some(value) => Some(Fields::new(value, &config_place)?),
        None => None,
    };
    if let Some(config) = &config {
        config.allow(&["Mode", "ExecutionType"], &[])?;
    }
    let mode = config.as_ref().map(|c| c.string("Mode")).transpose()?.flatten().unwrap_or("INLINE");
    if mode != "DISTRIBUTED" {
        return Err(AslError::Unsupported(format!(
            "unsupported Map mode \"{mode}\" in {place}: only ProcessorConfig.Mode DISTRIBUTED is supported"
        )));
    }
    let execution_type = match config.as_ref().map(|c| c.string("ExecutionType")).transpose()?.flatten() {
        Some("STANDARD") => ExecutionType::Standard,
        Some("EXPRESS") => ExecutionType::Express,
        Some(other) => {
            return Err(AslError::Invalid(format!(
                "ExecutionType of {config_place} must be STANDARD or EXPRESS, not \"{other}\""
            )));
        }
        None => return Err(AslError::Invalid(format!("{config_place} has no \"ExecutionType\" field"))),
    };

    let reader_place = format!("ItemReader of {place}");
    let reader = Fields::new(
        fields.get("ItemReader").ok_or_else(|| {
            AslError::Unsupported(format!(
                "{place} has no ItemReader: items from the state input (ItemsPath) are outside the supported subset"
            ))
        })?,
        &reader_place,
    )?;
    reader.allow(&["Resource", "ReaderConfig", "Parameters"], &["Arguments"])?;
    let resource = reader.require_string("Resource")?;
    if resource != S3_GET_OBJECT {
        return Err(AslError::Unsupported(format!(
            "unsupported resource \"{resource}\" in {reader_place}: only {S3_GET_OBJECT} is supported"
        )));
    }
    let reader_config_place = format!("ReaderConfig of {reader_place}");
    let reader_config = Fields::new(reader.require("ReaderConfig")?, &reader_config_place)?;
    reader_config.allow(
        &["InputType"],
        &["CSVHeaderLocation", "CSVHeaders", "CSVDelimiter", "MaxItems", "MaxItemsPath", "ManifestType"],
    )?;
    match reader_config.require_string("InputType")? {
        "JSON" => {}
        other => {
            return Err(AslError::Unsupported(format!(
                "unsupported InputType \"{other}\" in {reader_config_place}: only JSON is supported"
            )));
        }
    }
    let reader_parameters = s3_parameters(&reader, &["Bucket", "Key"], &["VersionId"])?;

    let writer_place = format!("ResultWriter of {place}");
    let writer = Fields::new(
        fields.get("ResultWriter").ok_or_else(|| {
            AslError::Unsupported(format!(
                "{place} has no ResultWriter: returning the children's outputs inline is outside the supported subset"
            ))
        })?,
        &writer_place,
    )?;
    writer.allow(&["Resource", "Parameters"], &["WriterConfig", "Arguments"])?;
    let resource = writer.require_string("Resource")?;
    if resource != S3_PUT_OBJECT {
        return Err(AslError::Unsupported(format!(
            "unsupported resource \"{resource}\" in {writer_place}: only {S3_PUT_OBJECT} is supported"
        )));
    }
    let writer_parameters = s3_parameters(&writer, &["Bucket", "Prefix"], &[])?;

    let max_concurrency = setting(fields, "MaxConcurrency", Fields::unsigned)?.unwrap_or(Setting::Fixed(0));
    let tolerated_failure_percentage = setting(fields, "ToleratedFailurePercentage", Fields::number)?;
    if let Some(Setting::Fixed(p)) = tolerated_failure_percentage
        && !(0.0..=100.0).contains(&p)
    {
        return Err(AslError::Invalid(format!("ToleratedFailurePercentage of {place} must lie in 0..=100, not {p}")));
    }

    Ok(Map {
        io: io(fields)?,
        reader: reader_parameters,
        item_selector: fields.template("ItemSelector")?,
        processor: Arc::new(parse_machine(&processor)?),
        execution_type,
        max_concurrency,
        tolerated_failure_percentage,
        tolerated_failure_count: setting(fields, "ToleratedFailureCount", Fields::unsigned)?,
        writer: writer_parameters,
        handlers: handlers(fields)?,
        transition: transition(fields)?,
    })
}

/// The Parameters of an ItemReader or ResultWriter: exactly the `required` members (literal or
/// `.$`); the `known` S3 parameters are outside the subset.
fn s3_parameters(fields: &Fields<'_>, required: &[&str], known: &[&str]) -> AslResult<Template> {
    let place = fields.place();
    let parameters = fields
        .template("Parameters")?
        .ok_or_else(|| AslError::Invalid(format!("{place} has no \"Parameters\" field")))?;
    for name in parameters.member_names().into_iter().flatten() {
        if known.contains(&name) {
            return Err(AslError::Unsupported(format!("unsupported parameter \"{name}\" in Parameters of {place}")));
        }
        if !required.contains(&name) {
            return Err(AslError::Invalid(format!("unknown parameter \"{name}\" in Parameters of {place}")));
        }
    }
    for name in required {
        if parameters.member(name).is_none() {
            return Err(AslError::Invalid(format!("Parameters of {place} has no \"{name}\" (or \"{name}.$\")")));
        }
    }
    Ok(parameters)
}
