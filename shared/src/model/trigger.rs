use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether the subscriber only hears of the event, or must answer it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerType {
    RequestResponse,
    FireAndForget,
}

impl TriggerType {
    /// How many subscriptions one trigger of this type takes (SailPoint's limits: one answer
    /// per REQUEST_RESPONSE event, 50 listeners per FIRE_AND_FORGET trigger).
    pub fn max_subscriptions(self) -> usize {
        match self {
            TriggerType::RequestResponse => 1,
            TriggerType::FireAndForget => 50,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::RequestResponse => "REQUEST_RESPONSE",
            TriggerType::FireAndForget => "FIRE_AND_FORGET",
        }
    }
}

impl std::fmt::Display for TriggerType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the trigger catalog, as kept in `shared/catalog/*.json`: the schemas are JSON
/// objects here and become strings only on the wire.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub trigger_type: TriggerType,
    pub description: String,
    pub input_schema: Value,
    pub example_input: Value,
    #[serde(default)]
    pub output_schema: Option<Value>,
    #[serde(default)]
    pub example_output: Option<Value>,
}
