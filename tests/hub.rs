//! The RunPod Hub files, .runpod/hub.json and .runpod/tests.json: the shape RunPod's Hub
//! publishing guide asks for, every variable they set one the worker reads and documents,
//! every value they offer one its configuration accepts, and every test job one the worker
//! answers (local replay on the tiny checkpoint).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use chatterbox_worker::config::Settings;

const BIN: &str = env!("CARGO_BIN_EXE_chatterbox-worker");
/// RunPod's GPU pools (docs.runpod.io, references/gpu-types), which `gpuIds` names.
const GPU_POOLS: &[&str] = &[
    "AMPERE_16",
    "AMPERE_24",
    "ADA_24",
    "AMPERE_48",
    "ADA_48_PRO",
    "AMPERE_80",
    "ADA_80_PRO",
    "HOPPER_141",
];
const CATEGORIES: &[&str] = &["audio", "embedding", "language", "video", "image"];

type Env = BTreeMap<String, String>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hub() -> Value {
    read_json(".runpod/hub.json")
}

fn hub_tests() -> Value {
    read_json(".runpod/tests.json")
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| panic!("{key} must be a non-empty string in {value}"))
}

fn env_entries(hub: &Value) -> &Vec<Value> {
    hub["config"]["env"].as_array().expect("config.env")
}

/// A value as RunPod writes it into the environment; a boolean input's own spelling.
fn env_value(input: Option<&Value>, value: &Value) -> String {
    match (value, input) {
        (Value::Bool(b), Some(input)) => {
            text(input, if *b { "trueValue" } else { "falseValue" }).to_string()
        }
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    }
}

/// What a deployment from hub.json runs with when nobody changes anything: each static
/// value and each input's default.
fn defaults(hub: &Value) -> Env {
    env_entries(hub)
        .iter()
        .filter_map(|entry| {
            let value = match entry.get("input") {
                Some(input) => env_value(Some(input), input.get("default")?),
                None => env_value(None, &entry["value"]),
            };
            Some((text(entry, "key").to_string(), value))
        })
        .collect()
}

fn input_of<'a>(hub: &'a Value, key: &str) -> Option<&'a Value> {
    env_entries(hub)
        .iter()
        .find(|entry| entry["key"] == key)
        .and_then(|entry| entry.get("input"))
}

fn check_settings(env: &Env, what: &str) {
    if let Err(error) = Settings::from_lookup(|name| env.get(name).cloned()) {
        panic!("{what}: the worker refuses {env:?}: {error}");
    }
}

/// The variables the worker's configuration asks for. Every optional string is filled in
/// first: S3's variables are only asked for while the ones before them are set.
fn variables_read(hub: &Value) -> BTreeSet<String> {
    let mut env = defaults(hub);
    for value in env.values_mut().filter(|v| v.is_empty()) {
        *value = "https://example.com".into();
    }
    let asked = RefCell::new(BTreeSet::new());
    let settings = Settings::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_string());
        env.get(name).cloned()
    });
    settings.unwrap_or_else(|e| panic!("{env:?}: {e}"));
    asked.into_inner()
}

fn configuration_doc() -> String {
    std::fs::read_to_string(root().join("docs/configuration.md")).unwrap()
}

fn assert_read_and_documented(keys: &[&str], read: &BTreeSet<String>, file: &str) {
    let docs = configuration_doc();
    for key in keys {
        assert!(read.contains(*key), "{file}: the worker never reads {key}");
        assert!(
            docs.contains(&format!("`{key}`")),
            "{file}: {key} is not in docs/configuration.md"
        );
    }
}

#[test]
fn hub_json_has_what_the_hub_requires() {
    let hub = hub();
    text(&hub, "title");
    text(&hub, "description");
    assert_eq!(hub["type"], "serverless");
    assert!(CATEGORIES.contains(&text(&hub, "category")));
    let config = &hub["config"];
    assert_eq!(config["runsOn"], "GPU");
    assert!(config["containerDiskInGb"].as_u64().unwrap() > 0);
    assert!(config["gpuCount"].as_u64().unwrap() >= 1);
    for pool in text(config, "gpuIds").split(',') {
        // A leading '-' excludes one GPU model by its ID; the rest must be pools.
        if !pool.starts_with('-') {
            assert!(GPU_POOLS.contains(&pool), "unknown GPU pool {pool:?}");
        }
    }

    let mut keys = BTreeSet::new();
    for entry in env_entries(&hub) {
        let key = text(entry, "key");
        assert!(keys.insert(key), "{key} is listed twice");
        let Some(input) = entry.get("input") else {
            assert!(
                entry["value"].is_string(),
                "{key}: a static entry needs a value"
            );
            continue;
        };
        text(input, "name");
        text(input, "description");
        match text(input, "type") {
            "string" => {
                assert!(input["default"].is_string(), "{key}: default");
                if let Some(options) = input.get("options") {
                    let values: Vec<&str> = options
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|option| {
                            text(option, "label");
                            text(option, "value")
                        })
                        .collect();
                    assert!(values.contains(&text(input, "default")), "{key}: default");
                }
            }
            "boolean" => {
                assert!(input["default"].is_boolean(), "{key}: default");
                text(input, "trueValue");
                text(input, "falseValue");
            }
            "number" => {
                let number = |field: &str| input[field].as_f64().expect(field);
                assert!(number("min") <= number("default"), "{key}: min");
                assert!(number("default") <= number("max"), "{key}: max");
            }
            other => panic!("{key}: input type {other:?}"),
        }
    }

    for preset in hub["config"]["presets"].as_array().expect("presets") {
        text(preset, "name");
        for (key, value) in preset["defaults"].as_object().unwrap() {
            assert!(keys.contains(key.as_str()), "preset sets {key}, not in env");
            if let Some(options) = input_of(&hub, key).and_then(|i| i["options"].as_array()) {
                assert!(
                    options.iter().any(|o| &o["value"] == value),
                    "preset {key}={value} is not an option"
                );
            }
        }
    }
}

#[test]
fn every_hub_variable_is_read_by_the_worker_and_documented() {
    let hub = hub();
    let read = variables_read(&hub);
    let keys: Vec<&str> = env_entries(&hub).iter().map(|e| text(e, "key")).collect();
    assert_read_and_documented(&keys, &read, "hub.json");

    let tests = hub_tests();
    let test_keys: Vec<&str> = tests["config"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| text(e, "key"))
        .collect();
    assert_read_and_documented(&test_keys, &read, "tests.json");
}

/// Every value an input offers: its options, both booleans, a number's bounds.
fn offered(input: &Value) -> Vec<String> {
    match text(input, "type") {
        "boolean" => vec![
            text(input, "trueValue").into(),
            text(input, "falseValue").into(),
        ],
        "number" => ["min", "max"]
            .iter()
            .map(|bound| env_value(None, &input[*bound]))
            .collect(),
        _ => input["options"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|option| text(option, "value").to_string())
            .collect(),
    }
}

#[test]
fn every_combination_of_offered_values_is_accepted() {
    let hub = hub();
    // All combinations, not one value at a time: some settings only clash with each other
    // (bf16 needs a CUDA device).
    let mut combinations = vec![defaults(&hub)];
    for entry in env_entries(&hub) {
        let Some(values) = entry.get("input").map(offered).filter(|v| !v.is_empty()) else {
            continue;
        };
        let key = text(entry, "key");
        combinations = combinations
            .iter()
            .flat_map(|env| {
                values.iter().map(move |value| {
                    let mut env = env.clone();
                    env.insert(key.into(), value.clone());
                    env
                })
            })
            .collect();
    }
    for env in &combinations {
        check_settings(env, "a combination of offered values");
    }
    for preset in hub["config"]["presets"].as_array().unwrap() {
        let mut env = defaults(&hub);
        for (key, value) in preset["defaults"].as_object().unwrap() {
            env.insert(key.clone(), env_value(input_of(&hub, key), value));
        }
        check_settings(&env, text(preset, "name"));
    }
}

#[test]
fn tests_json_has_the_hub_shape_and_runs_the_documented_samples() {
    let tests = hub_tests();
    let samples: Vec<Value> = std::fs::read_dir(root().join("test_inputs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap()))
        .map(|job| job.unwrap()["input"].clone())
        .collect();
    let mut names = BTreeSet::new();
    let cases = tests["tests"].as_array().expect("tests");
    assert!(!cases.is_empty());
    for case in cases {
        let name = text(case, "name");
        assert!(names.insert(name), "test {name} is listed twice");
        assert!(case["timeout"].as_u64().unwrap() > 0, "{name}: timeout");
        // One source of truth: what the Hub runs is what test_inputs/ documents.
        assert!(
            samples.contains(&case["input"]),
            "{name}: its input is not one of test_inputs/"
        );
    }
    let config = &tests["config"];
    text(config, "gpuTypeId");
    assert!(config["gpuCount"].as_u64().unwrap() >= 1);
    for entry in config["env"].as_array().unwrap() {
        text(entry, "key");
        assert!(entry["value"].is_string(), "{entry}: value");
    }
    assert_eq!(
        config["allowedCudaVersions"],
        hub()["config"]["allowedCudaVersions"],
        "the tests run on the CUDA versions the listing allows"
    );
}

#[test]
fn every_hub_test_job_is_answered_by_local_replay() {
    let hub = hub();
    let tests = hub_tests();
    let volume = tempfile::tempdir().unwrap();
    // A deployment's environment: hub.json's defaults, then the test config's own values,
    // then the tiny checkpoint and no network (50 tokens: what the tts sample asks for).
    let mut env = defaults(&hub);
    for entry in tests["config"]["env"].as_array().unwrap() {
        env.insert(text(entry, "key").into(), text(entry, "value").into());
    }
    for (key, value) in common::tiny_checkpoint_vars(volume.path(), 50) {
        env.insert(key.into(), value);
    }
    for case in tests["tests"].as_array().unwrap() {
        let name = text(case, "name");
        let job = json!({"input": case["input"]}).to_string();
        let output = Command::new(BIN)
            .args(["--test-input", &job])
            .current_dir(volume.path())
            .env_clear()
            .envs(&env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        let answer: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e}); {stderr}"));
        assert!(
            answer["output"].is_object(),
            "{name}: no output in {answer}"
        );
    }
}
