//! Typed access to the members of one JSON object of a definition, with errors that say which
//! field of which construct is missing, mistyped, unknown or outside the subset.

use serde_json::{Map, Value};

use crate::error::{AslError, AslResult};
use crate::path::{Path, Template, kind};

/// Every field the States Language defines on a state (JSONPath and JSONata), so that a known
/// field outside the subset is reported as unsupported and anything else as unknown.
const ASL_STATE_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "QueryLanguage",
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "Resource",
    "Retry",
    "Catch",
    "Next",
    "End",
    "TimeoutSeconds",
    "TimeoutSecondsPath",
    "HeartbeatSeconds",
    "HeartbeatSecondsPath",
    "Credentials",
    "Arguments",
    "Output",
    "Assign",
    "Choices",
    "Default",
    "Result",
    "Error",
    "ErrorPath",
    "Cause",
    "CausePath",
    "Seconds",
    "SecondsPath",
    "Timestamp",
    "TimestampPath",
    "Branches",
    "Iterator",
    "ItemProcessor",
    "ItemReader",
    "ItemSelector",
    "ItemBatcher",
    "ItemsPath",
    "Items",
    "MaxConcurrency",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "ResultWriter",
    "Label",
];

/// The members of one JSON object and a description of where it stands in the definition,
/// such as `Task state "Plan"` or `ItemReader of Map state "Convert"`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<'a> {
    object: &'a Map<String, Value>,
    place: &'a str,
}

impl<'a> Fields<'a> {
    /// `value`, which must be an object.
    pub(crate) fn new(value: &'a Value, place: &'a str) -> AslResult<Self> {
        match value {
            Value::Object(object) => Ok(Self { object, place }),
            other => Err(AslError::Invalid(format!("{place} must be a JSON object, not a {}", kind(other)))),
        }
    }

    /// Where the object stands.
    pub(crate) fn place(&self) -> &'a str {
        self.place
    }

    /// The member names.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.object.keys().map(String::as_str)
    }

    /// Rejects members outside `supported`: a known States Language state field (or one listed
    /// in `known`) is "unsupported", anything else "unknown".
    pub(crate) fn allow(&self, supported: &[&str], known: &[&str]) -> AslResult<()> {
        for key in self.object.keys() {
            if supported.contains(&key.as_str()) {
                continue;
            }
            let place = self.place;
            return Err(if ASL_STATE_FIELDS.contains(&key.as_str()) || known.contains(&key.as_str()) {
                AslError::Unsupported(format!("unsupported field \"{key}\" in {place}"))
            } else {
                AslError::Invalid(format!("unknown field \"{key}\" in {place}"))
            });
        }
        Ok(())
    }

    /// The member `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key)
    }

    /// Whether `key` is present.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    fn mistyped(&self, key: &str, expected: &str, found: &Value) -> AslError {
        AslError::Invalid(format!("field \"{key}\" of {} must be {expected}, not a {}", self.place, kind(found)))
    }

    /// A required member.
    pub(crate) fn require(&self, key: &str) -> AslResult<&'a Value> {
        self.get(key).ok_or_else(|| AslError::Invalid(format!("{} has no \"{key}\" field", self.place)))
    }

    /// An optional string member.
    pub(crate) fn string(&self, key: &str) -> AslResult<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.mistyped(key, "a string", other)),
        }
    }

    /// A required string member.
    pub(crate) fn require_string(&self, key: &str) -> AslResult<&'a str> {
        self.string(key)?.ok_or_else(|| AslError::Invalid(format!("{} has no \"{key}\" field", self.place)))
    }

    /// An optional boolean member.
    pub(crate) fn boolean(&self, key: &str) -> AslResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.mistyped(key, "a boolean", other)),
        }
    }

    /// An optional non-negative integer member.
    pub(crate) fn unsigned(&self, key: &str) -> AslResult<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| self.mistyped(key, "a non-negative integer", value)),
        }
    }

    /// An optional number member.
    pub(crate) fn number(&self, key: &str) -> AslResult<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_f64().map(Some).ok_or_else(|| self.mistyped(key, "a number", value)),
        }
    }

    /// An optional array member.
    pub(crate) fn array(&self, key: &str) -> AslResult<Option<&'a Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.mistyped(key, "an array", other)),
        }
    }

    /// An optional path member (`MaxConcurrencyPath`, `Variable`…).
    pub(crate) fn path(&self, key: &str) -> AslResult<Option<Path>> {
        self.string(key)?.map(|text| Path::parse(text, &format!("{key} of {}", self.place))).transpose()
    }

    /// InputPath or OutputPath: absent means `$`, `null` means `None` (the state sees `{}`).
    pub(crate) fn io_path(&self, key: &str) -> AslResult<Option<Path>> {
        match self.get(key) {
            None => Ok(Some(Path::root())),
            Some(Value::Null) => Ok(None),
            Some(_) => self.path(key),
        }
    }

    /// ResultPath: absent means `$`, `null` means `None` (the result is discarded). A ResultPath
    /// writes into the input, so a context path is invalid.
    pub(crate) fn result_path(&self, key: &str) -> AslResult<Option<Path>> {
        let path = self.io_path(key)?;
        if let Some(p) = &path
            && p.is_context()
        {
            return Err(AslError::Invalid(format!(
                "{key} \"{p}\" of {} cannot write into the context object",
                self.place
            )));
        }
        Ok(path)
    }

    /// An optional payload template member (Parameters, ResultSelector, ItemSelector). These
    /// must be objects.
    pub(crate) fn template(&self, key: &str) -> AslResult<Option<Template>> {
        match self.get(key) {
            None => Ok(None),
            Some(value @ Value::Object(_)) => Ok(Some(Template::parse(value, &format!("{key} of {}", self.place))?)),
            Some(other) => Err(self.mistyped(key, "an object", other)),
        }
    }

    /// A state-level or top-level QueryLanguage: only JSONPath.
    pub(crate) fn check_query_language(&self) -> AslResult<()> {
        match self.string("QueryLanguage")? {
            None | Some("JSONPath") => Ok(()),
            Some(other) => Err(AslError::Unsupported(format!(
                "unsupported QueryLanguage \"{other}\" in {}: only JSONPath is supported",
                self.place
            ))),
        }
    }
}
