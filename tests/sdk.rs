//! The official openai SDKs, Python and Node, against `serve` with a key, on the tiny
//! checkpoint: tools/sdk/openai_{python.py,node.mjs} make the calls and check what the SDKs
//! raise and parse; this test then has ffprobe decode every file they received. tools/setup.sh
//! installs both SDKs; without them the test is skipped, except in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::LocalApi;

const KEY: &str = "sk-chatterbox-sdk-test";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/sdk")
}

/// The SDK's runner, or None (skip) when it is not installed here.
fn runner(program: &Path, installed: &Path, what: &str) -> Option<PathBuf> {
    if installed.exists() {
        return Some(program.to_path_buf());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have the {what} (tools/setup.sh installs it)"
    );
    eprintln!("the {what} is not installed (bash tools/setup.sh): skipped");
    None
}

async fn api(volume: &Path) -> LocalApi {
    let mut vars = common::tiny_checkpoint_vars(volume, 12);
    vars.push(("API_KEY", KEY.into()));
    LocalApi::real(&vars).await
}

/// Runs one SDK script against `api`, the audio it received landing in `out`.
async fn run_script(api: &LocalApi, program: &Path, script: &str, out: &Path) {
    let output = tokio::process::Command::new(program)
        .arg(sdk_dir().join(script))
        .current_dir(sdk_dir())
        .env("OPENAI_BASE_URL", format!("{}/v1", api.base))
        .env("OPENAI_API_KEY", KEY)
        .env("SDK_OUT", out)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{script}: {}", stdout.lines().last().unwrap_or_default());
}

/// ffprobe's codec, sample rate and duration of `path`; raw PCM is read as OpenAI's pcm.
fn probe(path: &Path) -> (String, u32, f64) {
    let mut command = Command::new("ffprobe");
    command.args(["-v", "error"]);
    if path.extension().is_some_and(|e| e == "pcm") {
        command.args(["-f", "s16le", "-ar", "24000", "-ac", "1"]);
    }
    let output = command
        .args([
            "-show_entries",
            "stream=codec_name,sample_rate:format=duration",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ffprobe {}: {text}",
        path.display()
    );
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("ffprobe gave no {key} for {}: {text}", path.display()))
            .to_string()
    };
    let duration = field("duration").parse().unwrap_or(0.0);
    (
        field("codec_name"),
        field("sample_rate").parse().unwrap(),
        duration,
    )
}

fn expected_codec(extension: &str) -> (&'static str, u32) {
    match extension {
        "mp3" => ("mp3", 24_000),
        "opus" => ("opus", 48_000),
        "aac" => ("aac", 24_000),
        "flac" => ("flac", 24_000),
        "wav" => ("pcm_s16le", 24_000),
        "pcm" => ("pcm_s16le", 24_000),
        other => panic!("unexpected file kind {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_and_node_sdks_speak_stream_and_fail_as_openai_does() {
    let sdk = sdk_dir();
    let python = runner(
        &sdk.join(".venv/bin/python"),
        &sdk.join(".venv/bin/python"),
        "openai Python SDK",
    );
    let node = runner(
        Path::new("node"),
        &sdk.join("node_modules/openai"),
        "openai Node SDK",
    );
    let volume = tempfile::tempdir().unwrap();
    let api = api(volume.path()).await;
    let out = tempfile::tempdir().unwrap();
    if let Some(python) = &python {
        run_script(&api, python, "openai_python.py", out.path()).await;
    }
    if let Some(node) = &node {
        run_script(&api, node, "openai_node.mjs", out.path()).await;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let per_sdk = 9;
    let expected = per_sdk * (usize::from(python.is_some()) + usize::from(node.is_some()));
    assert_eq!(files.len(), expected, "{files:?}");
    for path in files {
        let extension = path.extension().unwrap().to_str().unwrap().to_string();
        let (codec, rate, seconds) = probe(&path);
        assert_eq!(
            (codec.as_str(), rate),
            expected_codec(&extension),
            "{}",
            path.display()
        );
        // The tiny checkpoint speaks 12 tokens (0.48 s) a chunk at most: something was said.
        assert!(seconds > 0.1, "{}: {seconds} s", path.display());
    }
}
