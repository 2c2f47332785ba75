//! Reference paths and payload templates.
//!
//! A reference path names one node: `$`, `$.a.b`, `$['a']`, `$.a[0]`, or, from the context
//! object, `$$.Execution.Name`. JSONPath beyond that (`..`, wildcards, filters, slices, unions)
//! selects several nodes and is outside the subset: parsing names it. A payload template
//! (Parameters, ResultSelector, ItemSelector) is JSON whose keys ending in `.$` take their value
//! from a path; intrinsic functions (`States.Format(...)`) are outside the subset.

use serde_json::{Map, Value};

use crate::error::{AslError, AslResult, TaskError};

/// One step of a reference path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A parsed reference path, into the state's input or (`$$`) into the context object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    text: String,
    context: bool,
    segments: Vec<Segment>,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// `$`: the whole input.
    pub(crate) fn root() -> Self {
        Self { text: "$".into(), context: false, segments: Vec::new() }
    }

    /// Parses `text`; `place` says where it stands, for the error message.
    pub(crate) fn parse(text: &str, place: &str) -> AslResult<Self> {
        let unsupported = || {
            AslError::Unsupported(format!(
                "unsupported path \"{text}\" in {place}: only reference paths such as $.a.b, $['a'], $.a[0] and \
                 $$.Execution.Name are supported"
            ))
        };
        let (context, rest) = match text.strip_prefix("$$") {
            Some(rest) => (true, rest),
            None => match text.strip_prefix('$') {
                Some(rest) => (false, rest),
                None => {
                    return Err(AslError::Invalid(format!("invalid path \"{text}\" in {place}: a path starts with $")));
                }
            },
        };
        if rest.contains("..") {
            return Err(unsupported());
        }
        let mut segments = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() || name.contains(['*', '?', '@', '(', ')', ',', ']', '\'', '"', ':']) {
                    return Err(unsupported());
                }
                segments.push(Segment::Key(name.to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"');
                if let Some(quote) = quote {
                    let inner = &after[1..];
                    let close = inner.find(quote).ok_or_else(unsupported)?;
                    let name = &inner[..close];
                    rest = inner[close + 1..].strip_prefix(']').ok_or_else(unsupported)?;
                    segments.push(Segment::Key(name.to_owned()));
                } else {
                    let close = after.find(']').ok_or_else(unsupported)?;
                    let index = &after[..close];
                    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(unsupported());
                    }
                    segments.push(Segment::Index(index.parse().map_err(|_| unsupported())?));
                    rest = &after[close + 1..];
                }
            } else {
                return Err(unsupported());
            }
        }
        Ok(Self { text: text.to_owned(), context, segments })
    }

    /// Whether the path reads the context object (`$$`).
    pub(crate) fn is_context(&self) -> bool {
        self.context
    }

    /// The node the path names, if there is one.
    pub(crate) fn get<'v>(&self, input: &'v Value, context: &'v Value) -> Option<&'v Value> {
        let mut node = if self.context { context } else { input };
        for segment in &self.segments {
            node = match segment {
                Segment::Key(key) => node.as_object()?.get(key)?,
                Segment::Index(index) => node.as_array()?.get(*index)?,
            };
        }
        Some(node)
    }

    /// Places `value` at the path in `target` (a ResultPath), creating the objects on the way.
    /// `$` replaces the target. Fails when a node on the way is not an object (or, for an index,
    /// not an array long enough).
    pub(crate) fn set(&self, target: &mut Value, value: Value) -> Result<(), String> {
        let Some((last, init)) = self.segments.split_last() else {
            *target = value;
            return Ok(());
        };
        let mut node = target;
        for segment in init {
            node = match segment {
                Segment::Key(key) => match node {
                    Value::Object(map) => map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new())),
                    other => return Err(format!("cannot set \"{key}\" in a {}", kind(other))),
                },
                Segment::Index(index) => node
                    .as_array_mut()
                    .and_then(|a| a.get_mut(*index))
                    .ok_or_else(|| format!("there is no array element [{index}] to set"))?,
            };
        }
        match last {
            Segment::Key(key) => match node {
                Value::Object(map) => {
                    map.insert(key.clone(), value);
                }
                other => return Err(format!("cannot set \"{key}\" in a {}", kind(other))),
            },
            Segment::Index(index) => {
                let slot = node
                    .as_array_mut()
                    .and_then(|a| a.get_mut(*index))
                    .ok_or_else(|| format!("there is no array element [{index}] to set"))?;
                *slot = value;
            }
        }
        Ok(())
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A payload template: literal JSON, with `.$` fields filled from paths when evaluated.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Template {
    /// JSON taken as is.
    Literal(Value),
    /// The value at a path (`"key.$": "$.path"`); `field` is the key as written, for messages.
    Path {
        /// The key with its `.$`.
        field: String,
        /// Where the value comes from.
        path: Path,
    },
    /// An object whose members are templates (keys without their `.$`).
    Object(Vec<(String, Template)>),
    /// An array whose elements are templates.
    Array(Vec<Template>),
}

impl Template {
    /// Compiles `value`; `place` says where it stands (e.g. `Parameters of Task state "Plan"`).
    pub(crate) fn parse(value: &Value, place: &str) -> AslResult<Self> {
        Ok(match value {
            Value::Object(map) => {
                let mut members: Vec<(String, Template)> = Vec::with_capacity(map.len());
                for (key, value) in map {
                    let (name, template) = match key.strip_suffix(".$") {
                        Some(name) => (name, Self::parse_path_field(key, value, place)?),
                        None => (key.as_str(), Self::parse(value, place)?),
                    };
                    if members.iter().any(|(n, _)| n == name) {
                        return Err(AslError::Invalid(format!(
                            "field \"{name}\" appears twice in {place} (with and without .$)"
                        )));
                    }
                    members.push((name.to_owned(), template));
                }
                Self::Object(members)
            }
            Value::Array(items) => Self::Array(items.iter().map(|v| Self::parse(v, place)).collect::<AslResult<_>>()?),
            other => Self::Literal(other.clone()),
        })
    }

    fn parse_path_field(key: &str, value: &Value, place: &str) -> AslResult<Self> {
        let Some(text) = value.as_str() else {
            return Err(AslError::Invalid(format!(
                "field \"{key}\" of {place} must be a path string, not a {}",
                kind(value)
            )));
        };
        if text.starts_with("States.") {
            return Err(AslError::Unsupported(format!(
                "intrinsic functions are not supported: \"{text}\" (field \"{key}\" of {place})"
            )));
        }
        if !text.starts_with('$') {
            return Err(AslError::Invalid(format!(
                "field \"{key}\" of {place} must be a path starting with $, not \"{text}\""
            )));
        }
        Ok(Self::Path { field: key.to_owned(), path: Path::parse(text, &format!("field \"{key}\" of {place}"))? })
    }

    /// The names of the top-level members, when the template is an object.
    pub(crate) fn member_names(&self) -> Option<impl Iterator<Item = &str>> {
        match self {
            Self::Object(members) => Some(members.iter().map(|(n, _)| n.as_str())),
            _ => None,
        }
    }

    /// The member `name` of an object template.
    pub(crate) fn member(&self, name: &str) -> Option<&Template> {
        match self {
            Self::Object(members) => members.iter().find(|(n, _)| n == name).map(|(_, t)| t),
            _ => None,
        }
    }

    /// Fills the template from `input` and `context`. A path that names nothing is a
    /// `States.Runtime` error of `state`; `what` names the field (e.g. `Parameters`).
    pub(crate) fn eval(&self, input: &Value, context: &Value, state: &str, what: &str) -> Result<Value, TaskError> {
        Ok(match self {
            Self::Literal(value) => value.clone(),
            Self::Path { field, path } => path.get(input, context).cloned().ok_or_else(|| {
                let source = if path.is_context() { "the context object" } else { "the input" };
                TaskError::runtime(
                    state,
                    format!(
                        "the JSONPath \"{path}\" specified for the field \"{field}\" of {what} could not be found \
                         in {source}"
                    ),
                )
            })?,
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(name, t)| Ok((name.clone(), t.eval(input, context, state, what)?)))
                    .collect::<Result<Map<_, _>, TaskError>>()?,
            ),
            Self::Array(items) => {
                Value::Array(items.iter().map(|t| t.eval(input, context, state, what)).collect::<Result<_, _>>()?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> Path {
        Path::parse(text, "a test").unwrap()
    }

    #[test]
    fn reference_paths_read_their_node() {
        let input = json!({"a": {"b": [10, {"c": "x"}]}, "odd key": 1});
        let context = json!({"Execution": {"Name": "run-1"}});
        assert_eq!(path("$").get(&input, &context), Some(&input));
        assert_eq!(path("$.a.b[0]").get(&input, &context), Some(&json!(10)));
        assert_eq!(path("$.a.b[1].c").get(&input, &context), Some(&json!("x")));
        assert_eq!(path("$['a'][\"b\"][1]['c']").get(&input, &context), Some(&json!("x")));
        assert_eq!(path("$['odd key']").get(&input, &context), Some(&json!(1)));
        assert_eq!(path("$$.Execution.Name").get(&input, &context), Some(&json!("run-1")));
        assert_eq!(path("$$").get(&input, &context), Some(&context));
        assert_eq!(path("$.a.missing").get(&input, &context), None);
        assert_eq!(path("$.a.b[7]").get(&input, &context), None);
        assert_eq!(path("$.a[0]").get(&input, &context), None);
    }

    #[test]
    fn paths_outside_the_subset_are_named() {
        for text in ["$..a", "$.a.*", "$.a[*]", "$.a[?(@.b)]", "$.a[1:2]", "$.a[-1]", "$.a[0,1]", "$.", "$a"] {
            let e = Path::parse(text, "InputPath of Task state \"X\"").unwrap_err();
            assert!(matches!(e, AslError::Unsupported(_)), "{text}: {e}");
            let message = e.to_string();
            assert!(message.contains(&format!("\"{text}\"")) && message.contains("InputPath"), "{message}");
        }
        let e = Path::parse("a.b", "OutputPath of Pass state \"P\"").unwrap_err();
        assert!(matches!(e, AslError::Invalid(_)), "{e}");
    }

    #[test]
    fn result_paths_create_objects_and_refuse_scalars() {
        let mut target = json!({"keep": 1});
        path("$.a.b").set(&mut target, json!(2)).unwrap();
        assert_eq!(target, json!({"keep": 1, "a": {"b": 2}}));
        path("$").set(&mut target, json!("all")).unwrap();
        assert_eq!(target, json!("all"));
        let mut target = json!({"a": 5});
        assert!(path("$.a.b").set(&mut target, json!(1)).unwrap_err().contains("number"));
        let mut target = json!({"a": [1, 2]});
        path("$.a[1]").set(&mut target, json!(3)).unwrap();
        assert_eq!(target, json!({"a": [1, 3]}));
        assert!(path("$.a[5]").set(&mut target, json!(3)).is_err());
    }

    #[test]
    fn templates_fill_paths_recursively() {
        let t = Template::parse(
            &json!({
                "literal": "States.NotAFunction",
                "from.$": "$.x",
                "nested": {"ctx.$": "$$.State.Name", "list": [{"y.$": "$.y"}, 3]}
            }),
            "Parameters of Pass state \"P\"",
        )
        .unwrap();
        let out = t.eval(&json!({"x": [1], "y": true}), &json!({"State": {"Name": "P"}}), "P", "Parameters").unwrap();
        assert_eq!(
            out,
            json!({"literal": "States.NotAFunction", "from": [1], "nested": {"ctx": "P", "list": [{"y": true}, 3]}})
        );
        let e = t.eval(&json!({"x": 1}), &json!({}), "P", "Parameters").unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains("\"$$.State.Name\"") && e.cause.contains("\"ctx.$\""), "{}", e.cause);
    }

    #[test]
    fn intrinsics_and_bad_template_fields_are_named() {
        let e =
            Template::parse(&json!({"a.$": "States.Format('{}', $.x)"}), "Parameters of Task state \"T\"").unwrap_err();
        assert!(matches!(e, AslError::Unsupported(_)));
        assert!(
            e.to_string().starts_with("intrinsic functions are not supported: \"States.Format('{}', $.x)\""),
            "{e}"
        );
        let e = Template::parse(&json!({"a.$": 3}), "Parameters").unwrap_err();
        assert!(e.to_string().contains("\"a.$\""), "{e}");
        let e = Template::parse(&json!({"a.$": "$..x"}), "Parameters").unwrap_err();
        assert!(e.to_string().contains("unsupported path \"$..x\""), "{e}");
        let e = Template::parse(&json!({"a.$": "$.x", "a": 1}), "Parameters").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
