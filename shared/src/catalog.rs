//! The built-in trigger catalog: SailPoint's published triggers, one data file each in
//! `shared/catalog/`, compiled into the binary. Schemas are compiled into validators on first use,
//! so a Lambda that never validates never pays for them.

use std::sync::{LazyLock, OnceLock};

use jsonschema::Validator;
use serde_json::Value;

use crate::Error;
use crate::model::{Trigger, TriggerType};

macro_rules! catalog_files {
    ($($name:literal),* $(,)?) => {
        /// `(file name, contents)` of every catalog data file.
        pub const FILES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../catalog/", $name, ".json")))),*
        ];
    };
}

catalog_files![
    "access-request-dynamic-approver",
    "access-request-post-approval",
    "access-request-pre-approval",
    "account-aggregation-completed",
    "account-attributes-changed",
    "account-correlated",
    "account-uncorrelated",
    "aggregation-accounts-collected",
    "campaign-activated",
    "campaign-ended",
    "campaign-generated",
    "certification-signed-off",
    "identity-attributes-changed",
    "identity-created",
    "identity-deleted",
    "post-provisioning",
    "saved-search-complete",
    "source-account-created",
    "source-account-deleted",
    "source-account-updated",
    "source-created",
    "source-deleted",
    "source-updated",
    "va-cluster-status-change",
];

/// One trigger with its schemas as wire strings and its validators.
#[derive(Debug)]
pub struct CatalogEntry {
    pub trigger: Trigger,
    /// `inputSchema` as SailPoint sends it: a JSON Schema document serialized to a string.
    pub input_schema_text: String,
    pub output_schema_text: Option<String>,
    input_validator: OnceLock<Validator>,
    output_validator: OnceLock<Option<Validator>>,
}

impl CatalogEntry {
    fn new(trigger: Trigger) -> Self {
        CatalogEntry {
            input_schema_text: trigger.input_schema.to_string(),
            output_schema_text: trigger.output_schema.as_ref().map(Value::to_string),
            trigger,
            input_validator: OnceLock::new(),
            output_validator: OnceLock::new(),
        }
    }

    fn compile(schema: &Value) -> Validator {
        // The catalog is data compiled into the binary and a test compiles every schema, so a
        // failure here is a build defect, not a request error.
        jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .unwrap_or_else(|e| panic!("built-in catalog schema does not compile: {e}"))
    }

    /// Checks an event payload against the trigger's `inputSchema`; the error names `field`
    /// followed by the path of the first violation.
    pub fn check_input(&self, field: &str, input: &Value) -> Result<(), Error> {
        let validator = self
            .input_validator
            .get_or_init(|| Self::compile(&self.trigger.input_schema));
        first_violation(validator, field, input)
    }

    /// Checks a subscriber's answer against the trigger's `outputSchema` (a trigger without one
    /// accepts anything).
    pub fn check_output(&self, field: &str, output: &Value) -> Result<(), Error> {
        let validator = self
            .output_validator
            .get_or_init(|| self.trigger.output_schema.as_ref().map(Self::compile));
        match validator {
            Some(v) => first_violation(v, field, output),
            None => Ok(()),
        }
    }
}

fn first_violation(validator: &Validator, field: &str, value: &Value) -> Result<(), Error> {
    match validator.iter_errors(value).next() {
        None => Ok(()),
        Some(violation) => {
            let pointer = violation.instance_path().to_string();
            let path = pointer.trim_start_matches('/').replace('/', ".");
            let at = if path.is_empty() {
                field.to_owned()
            } else {
                format!("{field}.{path}")
            };
            Err(Error::invalid(at, violation.to_string()))
        }
    }
}

/// All triggers, sorted by id.
#[derive(Debug)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

static BUILTIN: LazyLock<Catalog> = LazyLock::new(|| {
    let mut entries: Vec<CatalogEntry> = FILES
        .iter()
        .map(|(name, text)| {
            let trigger: Trigger = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("catalog/{name}.json is not a trigger: {e}"));
            CatalogEntry::new(trigger)
        })
        .collect();
    entries.sort_by(|a, b| a.trigger.id.cmp(&b.trigger.id));
    Catalog { entries }
});

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn builtin() -> &'static Catalog {
        &BUILTIN
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries
            .binary_search_by(|e| e.trigger.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Like [`Catalog::get`], but a missing trigger is a 400 on `field`.
    pub fn require(&self, field: &str, id: &str) -> Result<&CatalogEntry, Error> {
        self.get(id).ok_or_else(|| {
            Error::invalid(
                field,
                format!("`{id}` is not a known trigger id (see GET /triggers/v1)"),
            )
        })
    }
}

impl TriggerType {
    /// The `_metadata.triggerType` a subscriber receives.
    pub fn metadata_name(self) -> &'static str {
        match self {
            TriggerType::RequestResponse => "requestResponse",
            TriggerType::FireAndForget => "fireAndForget",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_data_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/catalog");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .map(|n| n.trim_end_matches(".json").to_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn file_names_match_ids_and_ids_are_unique() {
        for (name, text) in FILES {
            let t: Trigger = serde_json::from_str(text).unwrap();
            assert_eq!(t.id, format!("idn:{name}"));
        }
        let ids: std::collections::BTreeSet<_> = Catalog::builtin()
            .entries()
            .iter()
            .map(|e| &e.trigger.id)
            .collect();
        assert_eq!(ids.len(), FILES.len());
    }

    #[test]
    fn every_example_validates_against_its_own_schema() {
        for e in Catalog::builtin().entries() {
            let t = &e.trigger;
            e.check_input("exampleInput", &t.example_input)
                .unwrap_or_else(|err| panic!("{}: {err}", t.id));
            match t.trigger_type {
                TriggerType::RequestResponse => {
                    let out = t
                        .example_output
                        .as_ref()
                        .expect("REQUEST_RESPONSE has an example");
                    assert!(t.output_schema.is_some(), "{} has no outputSchema", t.id);
                    e.check_output("exampleOutput", out)
                        .unwrap_or_else(|err| panic!("{}: {err}", t.id));
                }
                TriggerType::FireAndForget => {
                    assert!(
                        t.output_schema.is_none() && t.example_output.is_none(),
                        "{}",
                        t.id
                    );
                }
            }
        }
    }

    #[test]
    fn schemas_reject_payloads_missing_a_required_field() {
        let catalog = Catalog::builtin();
        for e in catalog.entries() {
            let Value::Object(example) = &e.trigger.example_input else {
                panic!("{}: example is not an object", e.trigger.id)
            };
            let required = e.trigger.input_schema.pointer("/required").or_else(|| {
                let target = e.trigger.input_schema.get("$ref")?.as_str()?;
                let pointer = target.trim_start_matches('#');
                e.trigger
                    .input_schema
                    .pointer(&format!("{pointer}/required"))
            });
            let Some(Value::Array(required)) = required else {
                continue;
            };
            let Some(Value::String(first)) = required.first() else {
                continue;
            };
            let mut broken = example.clone();
            broken.remove(first);
            assert!(
                e.check_input("input", &Value::Object(broken)).is_err(),
                "{} accepts a payload without `{first}`",
                e.trigger.id
            );
        }
    }

    #[test]
    fn catalog_has_sailpoints_request_response_triggers() {
        let c = Catalog::builtin();
        let pre = &c.get("idn:access-request-pre-approval").unwrap().trigger;
        assert_eq!(pre.name, "Access Request Submitted");
        assert_eq!(pre.trigger_type, TriggerType::RequestResponse);
        let dynamic = &c
            .get("idn:access-request-dynamic-approver")
            .unwrap()
            .trigger;
        assert_eq!(dynamic.trigger_type, TriggerType::RequestResponse);
        let rr: Vec<_> = c
            .entries()
            .iter()
            .filter(|e| e.trigger.trigger_type == TriggerType::RequestResponse)
            .map(|e| e.trigger.id.as_str())
            .collect();
        assert_eq!(
            rr,
            [
                "idn:access-request-dynamic-approver",
                "idn:access-request-pre-approval"
            ]
        );
        let violation = c
            .get("idn:access-request-pre-approval")
            .unwrap()
            .check_output(
                "output",
                &serde_json::json!({"approved": "yes", "comment": "", "approver": "x"}),
            )
            .unwrap_err();
        assert!(
            violation.to_string().starts_with("output.approved:"),
            "{violation}"
        );
    }
}
