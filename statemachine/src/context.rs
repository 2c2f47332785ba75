//! The context object (`$$`) of an execution, the local ARNs it holds, and timestamps.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Region in local ARNs.
pub(crate) const REGION: &str = "local";
/// Account in local ARNs.
pub(crate) const ACCOUNT: &str = "000000000000";
/// Name of the state machine in local ARNs.
pub(crate) const STATE_MACHINE_NAME: &str = "csvlake-pipeline";

/// `arn:aws:states:local:000000000000:<rest>`.
pub(crate) fn states_arn(rest: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:{rest}")
}

/// Now, as Step Functions writes times: ISO 8601, UTC, milliseconds.
pub(crate) fn now() -> String {
    DateTime::<Utc>::from(SystemTime::now()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What `$$.Execution` and `$$.StateMachine` hold for one (parent or child) execution.
#[derive(Clone, Debug)]
pub(crate) struct ExecutionContext {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) input: Value,
    pub(crate) start_time: String,
    pub(crate) state_machine_id: String,
    pub(crate) state_machine_name: String,
}

impl ExecutionContext {
    /// A top-level execution of the local state machine.
    pub(crate) fn top(name: &str, input: Value) -> Self {
        Self {
            name: name.to_owned(),
            id: states_arn(&format!("execution:{STATE_MACHINE_NAME}:{name}")),
            input,
            start_time: now(),
            state_machine_id: states_arn(&format!("stateMachine:{STATE_MACHINE_NAME}")),
            state_machine_name: STATE_MACHINE_NAME.to_owned(),
        }
    }

    /// The context object as a state sees it.
    pub(crate) fn object(&self, state: &str, entered_time: &str, retry_count: u32) -> Value {
        json!({
            "Execution": {
                "Id": self.id,
                "Input": self.input,
                "Name": self.name,
                "StartTime": self.start_time,
                "RedriveCount": 0,
            },
            "State": {"EnteredTime": entered_time, "Name": state, "RetryCount": retry_count},
            "StateMachine": {"Id": self.state_machine_id, "Name": self.state_machine_name},
        })
    }
}

/// The context object with `$$.Map.Item` set, as an ItemSelector sees it.
pub(crate) fn with_map_item(context: &Value, index: usize, value: &Value) -> Value {
    let mut context = context.clone();
    if let Value::Object(map) = &mut context {
        map.insert("Map".into(), json!({"Item": {"Index": index, "Value": value}}));
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_iso_8601_utc_with_milliseconds() {
        let t = now();
        assert_eq!(t.len(), "2026-01-01T00:00:00.000Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(DateTime::parse_from_rfc3339(&t).is_ok());
    }
}
