//! The `chatterbox-worker` binary itself: local replay, exit codes, and SIGTERM in production.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use common::{FakeRunPod, Take, sigterm_and_wait};

const BIN: &str = env!("CARGO_BIN_EXE_chatterbox-worker");

/// Runs the binary in `dir` with a clean RunPod environment.
fn run_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUNPOD_WEBHOOK_GET_JOB")
        .env_remove("RUNPOD_ENDPOINT_ID")
        .env("CHATTERBOX_VOLUME", dir.join("volume"))
        .output()
        .unwrap()
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn inline_test_input_prints_the_output_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_in(
        dir.path(),
        &["--test-input", r#"{"input": {"task": "info"}}"#],
    );
    assert!(output.status.success());
    let body = stdout_json(&output);
    assert_eq!(body["output"]["engine"]["state"], "not_loaded");
    assert_eq!(body["output"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_sdk_spelling_and_a_file_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.json");
    std::fs::write(&file, r#"{"input": {"openai_route": "/v1/models"}}"#).unwrap();
    let output = run_in(dir.path(), &["--test_input", file.to_str().unwrap()]);
    assert!(output.status.success());
    assert_eq!(stdout_json(&output)["output"]["object"], "list");
}

#[test]
fn test_input_json_in_the_working_directory_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run_in(dir.path(), &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stdout_json(&missing)["error"]
            .as_str()
            .unwrap()
            .contains("test_input.json")
    );

    std::fs::write(
        dir.path().join("test_input.json"),
        r#"{"input": {"task": "info"}}"#,
    )
    .unwrap();
    let found = run_in(dir.path(), &[]);
    assert!(found.status.success());
    assert_eq!(stdout_json(&found)["output"]["model"], "turbo");
}

#[test]
fn a_failing_job_exits_1_with_the_error_in_its_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let custom = run_in(
        dir.path(),
        &["--test-input", r#"{"input": {"task": "sing"}}"#],
    );
    assert_eq!(custom.status.code(), Some(1));
    assert!(
        stdout_json(&custom)["error"]
            .as_str()
            .unwrap()
            .contains("unknown task")
    );

    let openai = run_in(
        dir.path(),
        &[
            "--test-input",
            r#"{"input": {"model": "tts-1", "voice": "alloy"}}"#,
        ],
    );
    assert_eq!(openai.status.code(), Some(1));
    assert_eq!(
        stdout_json(&openai)["error"],
        json!({"error": {
            "message": "Missing required parameter: input",
            "type": "invalid_request_error",
            "param": "input",
            "code": null
        }})
    );

    let not_json = run_in(dir.path(), &["--test-input", "{oops"]);
    assert_eq!(not_json.status.code(), Some(1));
}

#[test]
fn bad_configuration_fails_at_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["--test-input", r#"{"input": {"task": "info"}}"#])
        .current_dir(dir.path())
        .env("CHATTERBOX_MODEL", "tts-9")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("CHATTERBOX_MODEL"));
}

fn spawn_production(fake: &FakeRunPod, dir: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .current_dir(dir)
        .envs(fake.env())
        .env("RUNPOD_ENDPOINT_ID", "ep-test")
        .env("CHATTERBOX_VOLUME", dir.join("volume"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_take_still_runs_and_posts_the_job_taken() {
    let fake = FakeRunPod::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.take(Take::After(
        Duration::from_millis(800),
        Box::new(Take::Jobs(json!({"id": "late", "input": {"task": "info"}}))),
    ));
    let child = spawn_production(&fake, dir.path());
    fake.wait_until("the first take", |f| !f.seen_at("/job-take/").is_empty())
        .await;
    let output = sigterm_and_wait(child).await;
    let results = fake.results_for("late");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].json()["output"]["model"], "turbo");
    assert_eq!(fake.seen_at("/job-take/").len(), 1, "no take after SIGTERM");

    // RUNPOD_ENDPOINT_ID switches the logs to the SDK's JSON lines, tagged with the job id.
    let logs = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["message"].is_string())
    );
    assert!(lines.iter().any(|l| l["requestId"] == "late"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_result_is_being_posted_waits_for_the_post() {
    let fake = FakeRunPod::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.delay_done(Duration::from_millis(800));
    fake.job(json!({"id": "posting", "input": {"task": "info"}}));
    let child = spawn_production(&fake, dir.path());
    fake.wait_until("the post to start", |f| {
        !f.results_for("posting").is_empty()
    })
    .await;
    let output = sigterm_and_wait(child).await;
    assert_eq!(fake.results_for("posting").len(), 1);
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("job finished and posted"), "{logs}");
}

/// The README's first command: the main job on the tiny checkpoints, without downloads.
fn run_job_on_tiny_checkpoints(job: &str) -> Value {
    run_job_on(job, "", "turbo")
}

/// A test input on `model` with the tiny checkpoints under `folder` of the tiny directory.
fn run_job_on(job: &str, folder: &str, model: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(BIN)
        .args([
            "--test-input",
            root.join("test_inputs").join(job).to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env_remove("RUNPOD_WEBHOOK_GET_JOB")
        .env_remove("RUNPOD_ENDPOINT_ID")
        .env("CHATTERBOX_VOLUME", dir.path().join("volume"))
        .env(
            "CHATTERBOX_CHECKPOINT_DIR",
            root.join("tests/fixtures/checkpoints/tiny").join(folder),
        )
        .env("CHATTERBOX_MODEL", model)
        // Random weights rarely stop by themselves: keep requests without a limit short.
        .env("CHATTERBOX_MAX_NEW_TOKENS", "60")
        // No network: a missing file must fail, not hang on a download.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_json(&output)["output"].clone()
}

fn decoded_wav(output: &Value) -> chatterbox_worker::audio::Clip {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(output["audio_base64"].as_str().unwrap())
        .unwrap();
    // The header an independent reader relies on: 16-bit mono PCM at 24 kHz.
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 1);
    assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 24000);
    assert_eq!(u16::from_le_bytes([bytes[34], bytes[35]]), 16);
    chatterbox_worker::audio::decode(&bytes).unwrap()
}

#[test]
fn the_tts_and_vc_test_inputs_return_wav_audio() {
    let tts = run_job_on_tiny_checkpoints("tts.json");
    let clip = decoded_wav(&tts);
    let seconds = clip.duration_seconds();
    assert!((tts["duration_sec"].as_f64().unwrap() - seconds).abs() < 1e-3);
    // At most 50 tokens + 3 silence tokens at 40 ms.
    assert!((0.12..=2.12).contains(&seconds), "{seconds}");
    assert_eq!(tts["seed"], 42);
    assert_eq!(tts["model"], "turbo");

    let vc = run_job_on_tiny_checkpoints("vc.json");
    let seconds = decoded_wav(&vc).duration_seconds();
    // 1.5 s of source speech is re-synthesised at the same length (40 ms per token).
    assert!((1.4..=1.52).contains(&seconds), "{seconds}");

    let spanish = run_job_on(
        "tts_multilingual.json",
        "chatterbox-multilingual",
        "multilingual",
    );
    let seconds = decoded_wav(&spanish).duration_seconds();
    assert!((0.04..=2.0).contains(&seconds), "{seconds}");
    assert_eq!(spanish["model"], "multilingual");
}

/// A job on the tiny Turbo checkpoint against a volume folder the test fills.
fn run_on_volume(volume: &std::path::Path, job: Value) -> Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(BIN)
        .args(["--test-input", &job.to_string()])
        .current_dir(volume)
        .env_remove("RUNPOD_WEBHOOK_GET_JOB")
        .env_remove("RUNPOD_ENDPOINT_ID")
        .env("CHATTERBOX_VOLUME", volume)
        .env(
            "CHATTERBOX_CHECKPOINT_DIR",
            root.join("tests/fixtures/checkpoints/tiny"),
        )
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

#[test]
fn voices_json_names_a_reference_clip_and_is_reread_without_a_restart() {
    use chatterbox_worker::audio::wav::{SampleFormat, encode};
    let volume = tempfile::tempdir().unwrap();
    let prompts = volume.path().join("audio_prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    // Six seconds of a 140 Hz buzz: Turbo wants more than five.
    let clip: Vec<f32> = (0..6 * 24000)
        .map(|i| {
            0.3 * (i as f32 * 140.0 * std::f32::consts::TAU / 24000.0)
                .sin()
                .signum()
        })
        .collect();
    std::fs::write(
        prompts.join("narrator.wav"),
        encode(&clip, 24000, SampleFormat::Pcm16),
    )
    .unwrap();
    std::fs::write(
        volume.path().join("voices.json"),
        r#"{"narrator": {"audio_file": "narrator.wav", "aliases": ["alloy"]}}"#,
    )
    .unwrap();

    let job = |voice: &str| json!({"input": {"task": "tts", "text": "Hi.", "voice": voice, "max_new_tokens": 8, "seed": 1}});
    let output = run_on_volume(volume.path(), job("alloy"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(stdout_json(&output)["output"]["status"], "success");

    let output = run_on_volume(volume.path(), job("nobody"));
    assert!(!output.status.success());
    let error = stdout_json(&output)["error"].to_string();
    assert!(
        error.contains("unknown voice") && error.contains("narrator"),
        "{error}"
    );

    // A broken voices.json is reported by info (a running worker keeps its last good mapping).
    std::fs::write(volume.path().join("voices.json"), "{").unwrap();
    let output = run_on_volume(volume.path(), json!({"input": {"task": "info"}}));
    let info = stdout_json(&output)["output"]["voices"].clone();
    assert!(
        info["error"].as_str().unwrap().contains("not valid"),
        "{info}"
    );

    // The escape hatch a voices.json must not open.
    std::fs::write(
        volume.path().join("voices.json"),
        r#"{"sneaky": {"audio_file": "../voices.json"}}"#,
    )
    .unwrap();
    let output = run_on_volume(volume.path(), job("sneaky"));
    assert!(!output.status.success());
    let error = stdout_json(&output)["error"].to_string();
    assert!(error.contains("voice"), "{error}");
}

/// Issue 16 as a user met it: a reference clip made by espeak-ng (22.05 kHz, 6.2322 s), whose
/// 24 kHz mel has one frame more than twice its tokens, as the voice of both handlers; with
/// a clip at the residue's edge (exactly 480) and one below it.
#[test]
fn voice_clips_of_any_length_speak_through_both_handlers() {
    use chatterbox_worker::audio::wav::{SampleFormat, encode};
    let volume = tempfile::tempdir().unwrap();
    let prompts = volume.path().join("audio_prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    for samples in [137_430, 117_747, 137_000] {
        let clip: Vec<f32> = (0..samples)
            .map(|i| 0.3 * (i as f32 * 130.0 * std::f32::consts::TAU / 22_050.0).sin())
            .collect();
        std::fs::write(
            prompts.join("voice_alloy.wav"),
            encode(&clip, 22_050, SampleFormat::Pcm16),
        )
        .unwrap();
        let openai = json!({"input": {"model": "tts-1", "voice": "alloy", "input": "Hi.",
                                      "response_format": "wav"}});
        let custom = json!({"input": {"task": "tts", "text": "Hi.", "audio_prompt": "voice_alloy.wav",
                                      "max_new_tokens": 12}});
        for job in [openai, custom] {
            let output = run_on_volume(volume.path(), job);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{samples} samples: {stdout}");
            let clip = decoded_wav(&stdout_json(&output)["output"]);
            assert!(clip.duration_seconds() > 0.1, "{samples} samples");
        }
    }
}

#[test]
fn openai_speech_test_inputs_return_mp3_in_the_builtin_voice() {
    for job in ["openai_bare.json", "openai_proxy_speech.json"] {
        let output = run_job_on_tiny_checkpoints(job);
        assert_eq!(output["content_type"], "audio/mpeg", "{job}");
        assert_eq!(output["format"], "mp3");
        let mp3 = base64::engine::general_purpose::STANDARD
            .decode(output["audio_base64"].as_str().unwrap())
            .unwrap();
        // An MPEG-2 layer III frame header (24 kHz), then 64 kbit/s for the stated duration.
        assert_eq!((mp3[0], mp3[1] & 0xFE), (0xFF, 0xF2), "{job}");
        let seconds = output["duration_sec"].as_f64().unwrap();
        let expected = seconds * 8000.0;
        assert!(
            (mp3.len() as f64 - expected).abs() < 0.05 * expected + 2000.0,
            "{job}: {} bytes for {seconds} s",
            mp3.len()
        );
    }
}

/// bootstrap.sh seeds voices.json from the example, whose clips are uploaded later: OpenAI's
/// names still speak (the built-in voice) and the example's own voices say what is missing.
#[test]
fn the_seeded_example_voices_json_keeps_openai_names_speaking() {
    let volume = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("voices.json.example"),
        volume.path().join("voices.json"),
    )
    .unwrap();
    for voice in ["alloy", "Nova", "cedar"] {
        let output = run_on_volume(
            volume.path(),
            json!({"input": {"model": "tts-1", "input": "Hi.", "voice": voice,
                             "response_format": "wav"}}),
        );
        assert!(output.status.success(), "{voice}: {}", stdout_json(&output));
        assert!(
            stdout_json(&output)["output"]["duration_sec"]
                .as_f64()
                .unwrap()
                > 0.0
        );
    }
    let narrator = run_on_volume(
        volume.path(),
        json!({"input": {"model": "tts-1", "input": "Hi.", "voice": "narrator"}}),
    );
    assert!(!narrator.status.success());
    let error = stdout_json(&narrator)["error"].to_string();
    assert!(error.contains("not found"), "{error}");
}

#[test]
fn a_project_saves_the_audio_and_its_metadata_under_output() {
    let volume = tempfile::tempdir().unwrap();
    let job = json!({"input": {"task": "tts", "text": "Saved.", "max_new_tokens": 8, "seed": 3,
                               "project": "book", "audio_prompt_base64": null,
                               "export_formats": ["wav", "flac"], "trim": true}});
    let output = run_on_volume(volume.path(), job);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let saved = stdout_json(&output)["output"]["saved_path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        saved.starts_with("book/tts_") && saved.ends_with("_seed3.wav"),
        "{saved}"
    );
    let result = stdout_json(&output)["output"].clone();
    assert_eq!(result["saved_paths"][1], saved.replace(".wav", ".flac"));
    // Trimming ran after generation and says what it did.
    let trimmed_ms = result["trim_info"]["trimmed_duration_ms"].as_f64().unwrap();
    assert!((trimmed_ms / 1000.0 - result["duration_sec"].as_f64().unwrap()).abs() < 0.001);
    let wav = volume.path().join("output").join(&saved);
    let clip = chatterbox_worker::audio::decode(&std::fs::read(&wav).unwrap()).unwrap();
    assert_eq!(clip.sample_rate, 24000);
    let flac = std::fs::read(wav.with_extension("flac")).unwrap();
    assert_eq!(
        chatterbox_worker::audio::decode(&flac).unwrap().samples,
        clip.samples
    );
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(wav.with_extension("json")).unwrap()).unwrap();
    assert_eq!(metadata["parameters"]["text"], "Saved.");
    assert_eq!(metadata["seed"], 3);

    let listed = run_on_volume(
        volume.path(),
        json!({"input": {"task": "outputs", "project": "book"}}),
    );
    let files = stdout_json(&listed)["output"]["files"].clone();
    assert!(
        files
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == saved.as_str()),
        "{files}"
    );

    let bad = run_on_volume(
        volume.path(),
        json!({"input": {"task": "tts", "text": "x", "project": "../up"}}),
    );
    assert!(!bad.status.success());
    assert!(stdout_json(&bad)["error"].to_string().contains("project"));
}

#[test]
fn the_concat_test_inputs_join_the_committed_volume_without_writing_to_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let volume = root.join("test_inputs/volume");
    let before: Vec<_> = std::fs::read_dir(volume.join("output")).unwrap().collect();
    for (job, seconds) in [("concat.json", 7.607), ("concat_segments.json", 9.378)] {
        let output = Command::new(BIN)
            .args([
                "--test-input",
                root.join("test_inputs").join(job).to_str().unwrap(),
            ])
            .env_remove("RUNPOD_WEBHOOK_GET_JOB")
            .env("CHATTERBOX_VOLUME", &volume)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{job}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let body = stdout_json(&output);
        let result = &body["output"];
        // The durations test_inputs/README.md states (trim, pauses and fades are seeded).
        assert_eq!(result["duration_sec"].as_f64(), Some(seconds), "{job}");
        for entry in result["outputs"].as_array().unwrap() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(entry["audio_base64"].as_str().unwrap())
                .unwrap();
            let clip = chatterbox_worker::audio::decode(&bytes).unwrap();
            assert!(
                (clip.duration_seconds() - seconds).abs() < 0.1,
                "{job} {entry}"
            );
        }
    }
    let after: Vec<_> = std::fs::read_dir(volume.join("output")).unwrap().collect();
    assert_eq!(
        before.len(),
        after.len(),
        "a test input wrote to the committed volume"
    );
}

#[test]
fn the_voice_library_test_inputs_upload_list_and_delete() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_inputs");
    let volume = tempfile::tempdir().unwrap();
    let job = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(root.join(name)).unwrap()).unwrap()
    };
    let uploaded = run_on_volume(volume.path(), job("voice_upload.json"));
    assert!(
        uploaded.status.success(),
        "{}",
        String::from_utf8_lossy(&uploaded.stdout)
    );
    let uploaded = stdout_json(&uploaded)["output"].clone();
    // An Ogg Opus upload, stored as WAV at Opus's decoding rate.
    assert_eq!(uploaded["audio_file"], "narrator_demo.wav");
    assert_eq!(uploaded["sample_rate"], 48_000);
    let listed =
        stdout_json(&run_on_volume(volume.path(), job("voices_list.json")))["output"].clone();
    let demo = listed["voices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "narrator_demo")
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(
        (demo["file_exists"].as_bool(), demo["exaggeration"].as_f64()),
        (Some(true), Some(0.6))
    );
    let deleted = run_on_volume(volume.path(), job("voice_delete.json"));
    assert_eq!(stdout_json(&deleted)["output"]["file_deleted"], true);
    assert!(
        !volume
            .path()
            .join("audio_prompts/narrator_demo.wav")
            .exists()
    );
}

/// Seed 003's OpenAI example through the real job queue: the result keeps the old deployment's
/// `audio` and `_content_type` beside today's fields, so its clients keep working unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_answers_seed_003s_openai_example_with_its_keys() {
    let fake = FakeRunPod::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    fake.job(json!({"id": "seed-003", "input": {
        "model": "tts-1",
        "voice": "alloy",
        "input": "Hello, this is a test of the OpenAI TTS API.",
        "response_format": "mp3",
    }}));
    let child = Command::new(BIN)
        .current_dir(dir.path())
        .envs(fake.env())
        .env("RUNPOD_ENDPOINT_ID", "ep-test")
        .env("CHATTERBOX_VOLUME", dir.path().join("volume"))
        .env(
            "CHATTERBOX_CHECKPOINT_DIR",
            root.join("tests/fixtures/checkpoints/tiny"),
        )
        .env("CHATTERBOX_MAX_NEW_TOKENS", "20")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fake.wait_until("the result", |f| !f.results_for("seed-003").is_empty())
        .await;
    sigterm_and_wait(child).await;
    let results = fake.results_for("seed-003");
    assert_eq!(results.len(), 1);
    let output = &results[0].json()["output"];
    assert_eq!(output["_content_type"], "audio/mpeg", "{output}");
    assert_eq!(output["audio"], output["audio_base64"]);
    let mp3 = base64::engine::general_purpose::STANDARD
        .decode(output["audio"].as_str().unwrap())
        .unwrap();
    let clip = chatterbox_worker::audio::decode(&mp3).unwrap();
    assert_eq!(clip.sample_rate, 24_000);
    assert!(clip.duration_seconds() > 0.1);
}
