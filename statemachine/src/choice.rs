//! Choice rules: parsing and evaluation.
//!
//! As in Step Functions, a comparison whose Variable names nothing is a `States.Runtime` error
//! (only `IsPresent` asks the question), and a comparison against a value of another type is
//! simply false.

use serde_json::Value;

use crate::error::{AslError, AslResult, TaskError};
use crate::fields::Fields;
use crate::path::Path;

/// Comparison operators of the States Language that are outside the subset.
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "StringLessThan",
    "StringLessThanPath",
    "StringLessThanEquals",
    "StringLessThanEqualsPath",
    "StringGreaterThan",
    "StringGreaterThanPath",
    "StringGreaterThanEquals",
    "StringGreaterThanEqualsPath",
    "StringMatches",
    "TimestampEquals",
    "TimestampEqualsPath",
    "TimestampLessThan",
    "TimestampLessThanPath",
    "TimestampLessThanEquals",
    "TimestampLessThanEqualsPath",
    "TimestampGreaterThan",
    "TimestampGreaterThanPath",
    "TimestampGreaterThanEquals",
    "TimestampGreaterThanEqualsPath",
    "IsTimestamp",
    "Condition",
];

/// A literal operand or one read from a path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand<T> {
    Literal(T),
    Path(Path),
}

/// A numeric comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumericOp {
    Equals,
    GreaterThan,
    GreaterThanEquals,
    LessThan,
    LessThanEquals,
}

impl NumericOp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Equals => a == b,
            Self::GreaterThan => a > b,
            Self::GreaterThanEquals => a >= b,
            Self::LessThan => a < b,
            Self::LessThanEquals => a <= b,
        }
    }
}

/// What a comparison asks of its Variable.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Test {
    StringEquals(Operand<String>),
    Numeric(NumericOp, Operand<f64>),
    BooleanEquals(Operand<bool>),
    IsPresent(bool),
    IsNull(bool),
    IsBoolean(bool),
    IsNumeric(bool),
    IsString(bool),
}

/// A choice rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare { variable: Path, test: Test },
}

/// A top-level choice rule and where it leads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Branch {
    pub(crate) rule: Rule,
    pub(crate) next: String,
}

/// The Choices of a Choice state.
pub(crate) fn parse_choices(state: &Fields<'_>) -> AslResult<Vec<Branch>> {
    let items = state
        .array("Choices")?
        .ok_or_else(|| AslError::Invalid(format!("{} has no \"Choices\" field", state.place())))?;
    if items.is_empty() {
        return Err(AslError::Invalid(format!("Choices of {} is empty", state.place())));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let place = format!("Choices[{i}] of {}", state.place());
            let fields = Fields::new(item, &place)?;
            let next = fields.require_string("Next")?.to_owned();
            Ok(Branch { rule: parse_rule(&fields, true)?, next })
        })
        .collect()
}

fn parse_rule(fields: &Fields<'_>, top: bool) -> AslResult<Rule> {
    let place = fields.place();
    let mut combinator = None;
    let mut operator = None;
    for key in fields.keys() {
        match key {
            "Variable" | "Comment" => {}
            "Next" if top => {}
            "And" | "Or" | "Not" => {
                if combinator.replace(key).is_some() {
                    return Err(AslError::Invalid(format!("{place} combines two of And, Or and Not")));
                }
            }
            _ if operator_kind(key).is_some() => {
                if let Some(first) = operator.replace(key) {
                    return Err(AslError::Invalid(format!("{place} has two comparison operators: {first} and {key}")));
                }
            }
            _ if UNSUPPORTED_OPERATORS.contains(&key) => {
                return Err(AslError::Unsupported(format!("unsupported comparison operator \"{key}\" in {place}")));
            }
            _ => return Err(AslError::Invalid(format!("unknown field \"{key}\" in {place}"))),
        }
    }
    match (combinator, operator) {
        (Some(c), Some(o)) => Err(AslError::Invalid(format!("{place} has both {c} and the comparison {o}"))),
        (Some(c), None) => {
            if fields.has("Variable") {
                return Err(AslError::Invalid(format!("{place} has both {c} and a Variable")));
            }
            if c == "Not" {
                let inner = format!("Not of {place}");
                return Ok(Rule::Not(Box::new(parse_rule(&Fields::new(fields.require("Not")?, &inner)?, false)?)));
            }
            let items = match fields.array(c)? {
                Some(items) if !items.is_empty() => items,
                _ => return Err(AslError::Invalid(format!("{c} of {place} must be a non-empty array"))),
            };
            let rules = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let inner = format!("{c}[{i}] of {place}");
                    parse_rule(&Fields::new(item, &inner)?, false)
                })
                .collect::<AslResult<Vec<_>>>()?;
            Ok(if c == "And" { Rule::And(rules) } else { Rule::Or(rules) })
        }
        (None, Some(o)) => {
            let variable = fields
                .path("Variable")?
                .ok_or_else(|| AslError::Invalid(format!("{place} compares with {o} but has no Variable")))?;
            Ok(Rule::Compare { variable, test: parse_test(fields, o)? })
        }
        (None, None) => Err(AslError::Invalid(format!("{place} has no comparison operator and no And, Or or Not"))),
    }
}

/// The kind of operand an operator takes, or `None` when it is not a supported operator.
fn operator_kind(key: &str) -> Option<&'static str> {
    let base = key.strip_suffix("Path").unwrap_or(key);
    let path = base.len() != key.len();
    match base {
        "StringEquals" => Some(if path { "path" } else { "string" }),
        "NumericEquals"
        | "NumericGreaterThan"
        | "NumericGreaterThanEquals"
        | "NumericLessThan"
        | "NumericLessThanEquals" => Some(if path { "path" } else { "number" }),
        "BooleanEquals" => Some(if path { "path" } else { "boolean" }),
        "IsPresent" | "IsNull" | "IsBoolean" | "IsNumeric" | "IsString" if !path => Some("boolean"),
        _ => None,
    }
}

fn parse_test(fields: &Fields<'_>, operator: &str) -> AslResult<Test> {
    let base = operator.strip_suffix("Path").unwrap_or(operator);
    let by_path = base.len() != operator.len();
    let flag = || fields.boolean(operator).map(Option::unwrap_or_default);
    let path = || -> AslResult<Path> { fields.path(operator)?.ok_or_else(|| fields_missing(fields, operator)) };
    let numeric = |op| -> AslResult<Test> {
        Ok(Test::Numeric(
            op,
            if by_path {
                Operand::Path(path()?)
            } else {
                Operand::Literal(fields.number(operator)?.ok_or_else(|| fields_missing(fields, operator))?)
            },
        ))
    };
    Ok(match base {
        "StringEquals" => Test::StringEquals(if by_path {
            Operand::Path(path()?)
        } else {
            Operand::Literal(fields.require_string(operator)?.to_owned())
        }),
        "BooleanEquals" => Test::BooleanEquals(if by_path {
            Operand::Path(path()?)
        } else {
            Operand::Literal(fields.boolean(operator)?.ok_or_else(|| fields_missing(fields, operator))?)
        }),
        "NumericEquals" => numeric(NumericOp::Equals)?,
        "NumericGreaterThan" => numeric(NumericOp::GreaterThan)?,
        "NumericGreaterThanEquals" => numeric(NumericOp::GreaterThanEquals)?,
        "NumericLessThan" => numeric(NumericOp::LessThan)?,
        "NumericLessThanEquals" => numeric(NumericOp::LessThanEquals)?,
        "IsPresent" => Test::IsPresent(flag()?),
        "IsNull" => Test::IsNull(flag()?),
        "IsBoolean" => Test::IsBoolean(flag()?),
        "IsNumeric" => Test::IsNumeric(flag()?),
        _ => Test::IsString(flag()?),
    })
}

fn fields_missing(fields: &Fields<'_>, key: &str) -> AslError {
    AslError::Invalid(format!("{} has no \"{key}\" field", fields.place()))
}

impl Rule {
    /// Evaluates the rule on the Choice state's effective input.
    pub(crate) fn eval(&self, input: &Value, context: &Value, state: &str) -> Result<bool, TaskError> {
        match self {
            Self::And(rules) => {
                for rule in rules {
                    if !rule.eval(input, context, state)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Self::Or(rules) => {
                for rule in rules {
                    if rule.eval(input, context, state)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Self::Not(rule) => Ok(!rule.eval(input, context, state)?),
            Self::Compare { variable, test } => {
                let value = variable.get(input, context);
                if let Test::IsPresent(expected) = test {
                    return Ok(value.is_some() == *expected);
                }
                let value = value.ok_or_else(|| {
                    TaskError::runtime(
                        state,
                        format!(
                            "Invalid path \"{variable}\": the choice state's condition path references an invalid value"
                        ),
                    )
                })?;
                let resolve = |path: &Path| {
                    path.get(input, context).ok_or_else(|| {
                        let message = format!(
                            "Invalid path \"{path}\": the choice state's comparison path references an invalid value"
                        );
                        TaskError::runtime(state, message)
                    })
                };
                Ok(match test {
                    Test::StringEquals(Operand::Literal(s)) => value.as_str() == Some(s.as_str()),
                    Test::StringEquals(Operand::Path(p)) => {
                        let other = resolve(p)?;
                        value.is_string() && other.is_string() && value == other
                    }
                    Test::Numeric(op, operand) => {
                        let other = match operand {
                            Operand::Literal(n) => Some(*n),
                            Operand::Path(p) => resolve(p)?.as_f64(),
                        };
                        match (value.as_f64(), other) {
                            (Some(a), Some(b)) => op.holds(a, b),
                            _ => false,
                        }
                    }
                    Test::BooleanEquals(Operand::Literal(b)) => value.as_bool() == Some(*b),
                    Test::BooleanEquals(Operand::Path(p)) => {
                        let other = resolve(p)?;
                        value.is_boolean() && value == other
                    }
                    Test::IsPresent(_) => true,
                    Test::IsNull(expected) => value.is_null() == *expected,
                    Test::IsBoolean(expected) => value.is_boolean() == *expected,
                    Test::IsNumeric(expected) => value.is_number() == *expected,
                    Test::IsString(expected) => value.is_string() == *expected,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(value: Value) -> AslResult<Rule> {
        let with_next = {
            let mut v = value;
            v["Next"] = json!("X");
            v
        };
        let state = json!({ "Choices": [with_next] });
        Ok(parse_choices(&Fields::new(&state, "Choice state \"C\"")?)?.remove(0).rule)
    }

    fn eval(value: Value, input: Value) -> Result<bool, TaskError> {
        rule(value).unwrap().eval(&input, &json!({"Execution": {"Name": "run"}}), "C")
    }

    #[test]
    fn comparisons_follow_step_functions() {
        let input = json!({"n": 0, "f": 2.5, "s": "a", "b": true, "z": null, "other": 2.5, "t": "a"});
        assert!(eval(json!({"Variable": "$.n", "NumericEquals": 0}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.f", "NumericGreaterThan": 2}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.f", "NumericLessThanEquals": 2.5}), input.clone()).unwrap());
        assert!(!eval(json!({"Variable": "$.f", "NumericLessThan": 2.5}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.f", "NumericEqualsPath": "$.other"}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.f", "NumericGreaterThanEquals": 2.5}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.s", "StringEquals": "a"}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.s", "StringEqualsPath": "$.t"}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$$.Execution.Name", "StringEquals": "run"}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.b", "BooleanEquals": true}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.b", "BooleanEqualsPath": "$.b"}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.z", "IsNull": true}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.n", "IsNumeric": true}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.s", "IsString": true}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.b", "IsBoolean": true}), input.clone()).unwrap());
        assert!(!eval(json!({"Variable": "$.s", "IsNumeric": true}), input.clone()).unwrap());
        // A type mismatch is false, not an error.
        assert!(!eval(json!({"Variable": "$.s", "NumericEquals": 0}), input.clone()).unwrap());
        assert!(!eval(json!({"Variable": "$.n", "StringEquals": "0"}), input.clone()).unwrap());
        assert!(!eval(json!({"Variable": "$.n", "BooleanEquals": false}), input.clone()).unwrap());
    }

    #[test]
    fn combinators_nest() {
        let input = json!({"n": 3, "s": "x"});
        let r = json!({"And": [
            {"Variable": "$.n", "NumericGreaterThan": 1},
            {"Or": [{"Variable": "$.s", "StringEquals": "y"}, {"Not": {"Variable": "$.s", "StringEquals": "z"}}]}
        ]});
        assert!(eval(r, input.clone()).unwrap());
        let r = json!({"Not": {"Variable": "$.n", "NumericEquals": 3}});
        assert!(!eval(r, input.clone()).unwrap());
        // Or stops at the first true rule, so a later missing variable is not evaluated.
        let r = json!({"Or": [{"Variable": "$.n", "NumericEquals": 3}, {"Variable": "$.gone", "NumericEquals": 3}]});
        assert!(eval(r, input).unwrap());
    }

    #[test]
    fn a_missing_variable_is_a_runtime_error_except_for_is_present() {
        let input = json!({"a": 1});
        assert!(!eval(json!({"Variable": "$.gone", "IsPresent": true}), input.clone()).unwrap());
        assert!(eval(json!({"Variable": "$.gone", "IsPresent": false}), input.clone()).unwrap());
        for r in [
            json!({"Variable": "$.gone", "NumericEquals": 0}),
            json!({"Variable": "$.gone", "IsNull": true}),
            json!({"Variable": "$.a", "NumericEqualsPath": "$.gone"}),
        ] {
            let e = eval(r, input.clone()).unwrap_err();
            assert_eq!(e.error, "States.Runtime");
            assert!(e.cause.contains("$.gone") && e.cause.contains("\"C\""), "{}", e.cause);
        }
    }

    #[test]
    fn rules_outside_the_subset_or_malformed_are_named() {
        let e = rule(json!({"Variable": "$.s", "StringMatches": "a*"})).unwrap_err();
        assert!(matches!(e, AslError::Unsupported(_)));
        assert!(e.to_string().contains("unsupported comparison operator \"StringMatches\" in Choices[0]"), "{e}");
        let e = rule(json!({"Variable": "$.s", "StringEqual": "a"})).unwrap_err();
        assert!(e.to_string().contains("unknown field \"StringEqual\""), "{e}");
        let e = rule(json!({"Variable": "$.s"})).unwrap_err();
        assert!(e.to_string().contains("no comparison operator"), "{e}");
        let e = rule(json!({"Variable": "$.s", "StringEquals": "a", "IsPresent": true})).unwrap_err();
        assert!(e.to_string().contains("two comparison operators"), "{e}");
        let e = rule(json!({"Variable": "$.n", "NumericEquals": "0"})).unwrap_err();
        assert!(e.to_string().contains("must be a number"), "{e}");
        let e = rule(json!({"And": [{"Variable": "$.n", "NumericEquals": 0, "Next": "Y"}]})).unwrap_err();
        assert!(e.to_string().contains("unknown field \"Next\" in And[0]"), "{e}");
        let e = rule(json!({"Variable": "$.a[*]", "IsPresent": true})).unwrap_err();
        assert!(e.to_string().contains("unsupported path \"$.a[*]\""), "{e}");
    }
}
