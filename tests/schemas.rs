//! The event schemas in `schemas/` against the fixture corpus and the engine's decoder.
//!
//! `schemas/*.json` are the source of truth for producers (contract §2); the engine enforces
//! the same rules in `goatview::events::decode`. These tests keep the two in step:
//!
//! * `tests/fixtures/events_valid.ndjson`: one event per line; the schema and the decoder
//!   both accept every line.
//! * `tests/fixtures/events_invalid.ndjson`: `{"why": …, "event": …}` per line, invalid for a
//!   reason JSON Schema can express; the schema and the decoder both reject every event.
//!   `why` comes first and `event` last, so that the decoder gets the event's exact text.
//! * `tests/fixtures/events_invalid_decoder_only.ndjson`: `{"why": …, "raw": "…"}`, invalid
//!   for a reason JSON Schema cannot express (`1.0` as a count, an unknown IANA zone,
//!   `ends_on < starts_on`, impossible dates, text that is not JSON); the decoder rejects
//!   every one, and the schema accepts those that are JSON (else they belong in the other file).
//!
//! The validator loads every `schemas/*.json` from disk and never retrieves anything over the
//! network: `$ref`s resolve against the registered files by their `$id`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use goatview::events::decode;
use serde_json::Value;

/// Every event type of contract §2.2.
const CONTRACT_TYPES: [&str; 14] = [
    "video.scraped",
    "video.removed",
    "creator.snapshot",
    "creator.removed",
    "creator.goal_set",
    "creator.goal_removed",
    "campaign.upserted",
    "campaign.deleted",
    "campaign.item_added",
    "campaign.item_removed",
    "project.upserted",
    "project.deleted",
    "api_key.issued",
    "api_key.revoked",
];

const ID_BASE: &str = "https://goatview.dev/schemas/";
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
const UMBRELLA: &str = "event.v1.json";
const COMMON: &str = "common.v1.json";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every `schemas/*.json`, by file name.
fn schema_files() -> BTreeMap<String, Value> {
    let dir = repo_path("schemas");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        files.insert(name, doc);
    }
    files
}

/// A draft 2020-12 validator for `root`, with every schema file registered by its `$id`.
fn validator_for(root: &Value, files: &BTreeMap<String, Value>) -> jsonschema::Validator {
    let resources = files.iter().filter(|(_, doc)| doc["$id"] != root["$id"]).map(|(name, doc)| {
        let id = doc["$id"].as_str().unwrap_or_else(|| panic!("{name}: no string $id")).to_owned();
        let resource = jsonschema::Resource::from_contents(doc.clone())
            .unwrap_or_else(|e| panic!("{name}: not a schema resource: {e}"));
        (id, resource)
    });
    jsonschema::draft202012::options()
        .with_resources(resources)
        .build(root)
        .unwrap_or_else(|e| panic!("schema {} does not compile: {e}", root["$id"]))
}

fn event_validator() -> jsonschema::Validator {
    let files = schema_files();
    validator_for(&files[UMBRELLA], &files)
}

/// The schema's complaints about `instance`, one per line; empty when it is valid.
fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> String {
    validator.iter_errors(instance).fold(String::new(), |mut out, e| {
        let _ = writeln!(out, "    at `{}`: {e}", e.instance_path);
        out
    })
}

/// Non-blank lines of a fixture, with their 1-based line numbers.
fn fixture_lines(name: &str) -> Vec<(usize, String)> {
    let path = repo_path(&format!("tests/fixtures/{name}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, line.to_owned()))
        .collect()
}

/// A `{"why": …, <key>: …}` corpus line, parsed.
fn case(name: &str, number: usize, line: &str, key: &str) -> (String, Value) {
    let mut value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{number}: not JSON: {e}"));
    let why = value["why"].as_str().unwrap_or_default().to_owned();
    assert!(!why.trim().is_empty(), "{name}:{number}: needs a non-empty \"why\"");
    let payload = value.get_mut(key).map(Value::take);
    (why, payload.unwrap_or_else(|| panic!("{name}:{number}: needs an {key:?} member")))
}

/// The exact text of the `event` member of an `events_invalid` line (its last member), so that
/// the decoder sees numbers such as `18446744073709551616` as written.
fn raw_event_text<'a>(line: &'a str, event: &Value) -> Option<&'a str> {
    // Inside a JSON string every `"` is escaped, so `"event":` can only be the key itself.
    let start = line.find("\"event\":")? + "\"event\":".len();
    let text = line[start..].trim_end().strip_suffix('}')?.trim();
    let reparsed: Value = serde_json::from_str(text).ok()?;
    (reparsed == *event).then_some(text)
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema() {
    let files = schema_files();
    let mut expected: Vec<String> = CONTRACT_TYPES.iter().map(|t| format!("{t}.v1.json")).collect();
    expected.extend([COMMON.to_owned(), UMBRELLA.to_owned()]);
    expected.sort();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), expected, "schemas/ holds exactly these files");

    for (name, doc) in &files {
        if let Err(e) = jsonschema::draft202012::meta::validate(doc) {
            panic!("{name}: not a valid draft 2020-12 schema: {e}");
        }
        assert_eq!(doc["$schema"], DRAFT_2020_12, "{name}: $schema");
        assert_eq!(doc["$id"], format!("{ID_BASE}{name}"), "{name}: $id");
        for key in ["title", "description"] {
            assert!(doc[key].as_str().is_some_and(|s| !s.is_empty()), "{name}: needs a {key}");
        }
        // Compiling resolves every `$ref`, so a dangling reference fails here.
        validator_for(doc, &files);
    }

    for (name, def) in files[COMMON]["$defs"].as_object().expect("common.v1.json has $defs") {
        assert!(def["description"].is_string(), "common.v1.json: $defs/{name} needs a description");
    }
}

#[test]
fn every_contract_event_type_has_a_schema() {
    let files = schema_files();
    assert_eq!(
        goatview::events::KNOWN_TYPES.iter().collect::<std::collections::BTreeSet<_>>(),
        CONTRACT_TYPES.iter().collect(),
        "the decoder knows exactly the contract's event types"
    );
    let umbrella = &files[UMBRELLA];
    assert_eq!(umbrella["properties"]["type"]["enum"], serde_json::json!(CONTRACT_TYPES), "event.v1.json: type enum");

    for ty in CONTRACT_TYPES {
        let name = format!("{ty}.v1.json");
        let doc = files.get(&name).unwrap_or_else(|| panic!("no schema {name} for event type {ty}"));
        assert_eq!(doc["type"], "object", "{name}");
        assert_eq!(doc["additionalProperties"], true, "{name}: unknown fields are ignored");
        let props = doc["properties"].as_object().unwrap_or_else(|| panic!("{name}: no properties"));
        assert_eq!(props["type"]["const"], ty, "{name}: type const");
        for (prop, schema) in props {
            assert!(
                schema["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: property {prop} needs a description"
            );
        }
        let required: Vec<&str> =
            doc["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
        for field in ["type", "event_id", "occurred_at"] {
            assert!(required.contains(&field), "{name}: {field} must be required");
        }
        let has_project = !ty.starts_with("api_key.");
        assert_eq!(required.contains(&"project_id"), has_project, "{name}: project_id required iff not api_key.*");
        assert_eq!(props.contains_key("project_id"), has_project, "{name}: project_id property");
        for field in &required {
            assert!(props.contains_key(*field), "{name}: required {field} is not described");
        }

        let dispatches = umbrella["allOf"]
            .as_array()
            .expect("event.v1.json: allOf")
            .iter()
            .any(|branch| branch["if"]["properties"]["type"]["const"] == ty && branch["then"]["$ref"] == name);
        assert!(dispatches, "event.v1.json does not dispatch {ty} to {name}");
    }
}

#[test]
fn valid_corpus_is_accepted_by_schema_and_decoder() {
    let validator = event_validator();
    let lines = fixture_lines("events_valid.ndjson");
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = String::new();
    for (number, line) in &lines {
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("events_valid.ndjson:{number}: not JSON: {e}"));
        *per_type.entry(event["type"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        let errors = schema_errors(&validator, &event);
        if !errors.is_empty() {
            let _ = write!(failures, "line {number}: rejected by the schema:\n{errors}");
        }
        if let Err(e) = decode(line.as_bytes()) {
            let _ = writeln!(failures, "line {number}: rejected by the decoder: {e}");
        }
    }
    assert!(failures.is_empty(), "events_valid.ndjson:\n{failures}");
    for ty in CONTRACT_TYPES {
        let n = per_type.get(ty).copied().unwrap_or(0);
        assert!(n >= 2, "events_valid.ndjson has {n} {ty} events; want at least 2");
    }
}

#[test]
fn invalid_corpus_is_rejected_by_schema_and_decoder() {
    let validator = event_validator();
    let lines = fixture_lines("events_invalid.ndjson");
    assert!(lines.len() >= 40, "events_invalid.ndjson has only {} cases", lines.len());
    let mut failures = String::new();
    for (number, line) in &lines {
        let (why, event) = case("events_invalid.ndjson", *number, line, "event");
        if validator.is_valid(&event) {
            let _ = writeln!(failures, "line {number} ({why}): accepted by the schema");
        }
        let text = raw_event_text(line, &event)
            .unwrap_or_else(|| panic!("events_invalid.ndjson:{number}: \"event\" must be the line's last member"));
        match decode(text.as_bytes()) {
            Ok(_) => {
                let _ = writeln!(failures, "line {number} ({why}): accepted by the decoder");
            }
            Err(e) if e.to_string().trim().is_empty() => {
                let _ = writeln!(failures, "line {number} ({why}): the decoder gave no reason");
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "events_invalid.ndjson:\n{failures}");
}

#[test]
fn decoder_only_corpus_is_rejected_by_decoder() {
    let validator = event_validator();
    let lines = fixture_lines("events_invalid_decoder_only.ndjson");
    let mut failures = String::new();
    for (number, line) in &lines {
        let (why, raw) = case("events_invalid_decoder_only.ndjson", *number, line, "raw");
        let raw = raw.as_str().unwrap_or_else(|| panic!("line {number}: \"raw\" must be a string"));
        match decode(raw.as_bytes()) {
            Ok(_) => {
                let _ = writeln!(failures, "line {number} ({why}): accepted by the decoder");
            }
            Err(e) if e.to_string().trim().is_empty() => {
                let _ = writeln!(failures, "line {number} ({why}): the decoder gave no reason");
            }
            Err(_) => {}
        }
        // A case the schema can reject belongs in events_invalid.ndjson.
        if let Ok(event) = serde_json::from_str::<Value>(raw) {
            let errors = schema_errors(&validator, &event);
            if !errors.is_empty() {
                let _ = write!(failures, "line {number} ({why}): the schema rejects it, move it:\n{errors}");
            }
        }
    }
    assert!(failures.is_empty(), "events_invalid_decoder_only.ndjson:\n{failures}");
}
