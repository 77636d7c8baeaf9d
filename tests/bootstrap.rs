//! bootstrap.sh, the image's entry point, under every POSIX shell installed here: the volume
//! it prepares, the voices.json it seeds and never overwrites, its log lines, and what it
//! hands to the worker. It runs with a PATH of only the tools it uses, so the host's own
//! nvidia-smi or worker cannot change what it logs; a fake nvidia-smi stands in for a GPU.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chatterbox-worker");
const INFO_JOB: &str = r#"{"input":{"task":"info"}}"#;
/// Every external command bootstrap.sh runs; a new one must be added here, or the tests fail
/// with "not found" instead of depending on whatever the host has.
const TOOLS: &[&str] = &[
    "cat", "chmod", "cp", "dirname", "head", "ln", "mkdir", "mktemp", "rm", "sed", "timeout",
];
/// Prints its arguments one per line: what bootstrap.sh would have started.
const ECHO_ARGS: &str = "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\n' \"$arg\"; done\n";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    root().join("bootstrap.sh")
}

fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// The shells to run it under: sh, and dash, bash in POSIX mode and busybox where present.
fn shells() -> Vec<Vec<String>> {
    let sh = find_program("sh").expect("no sh");
    let mut shells = vec![vec![sh.display().to_string()]];
    for (name, args) in [
        ("dash", &[][..]),
        ("bash", &["--posix"][..]),
        ("busybox", &["sh"][..]),
    ] {
        if let Some(path) = find_program(name) {
            let mut shell = vec![path.display().to_string()];
            shell.extend(args.iter().map(|a| a.to_string()));
            shells.push(shell);
        }
    }
    shells
}

/// A temporary directory with a volume path and a PATH holding only [`TOOLS`] and the fake
/// programs a test adds.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let sandbox = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(sandbox.bin()).unwrap();
        for tool in TOOLS {
            // `timeout` is optional to bootstrap.sh; the others are POSIX utilities.
            if let Some(path) = find_program(tool) {
                symlink(path, sandbox.bin().join(tool)).unwrap();
            }
        }
        sandbox
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bin(&self) -> PathBuf {
        self.path().join("bin")
    }

    fn volume(&self) -> PathBuf {
        self.path().join("volume")
    }

    fn add_program(&self, name: &str, text: &str) -> PathBuf {
        let path = self.bin().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// bootstrap.sh under `shell` with nothing from the test's environment but `vars`.
    fn run(&self, shell: &[String], vars: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(&shell[0])
            .args(&shell[1..])
            .arg(script())
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", self.bin())
            .env("CHATTERBOX_VOLUME", self.volume())
            .env("CHATTERBOX_BIN", BIN)
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// bootstrap.sh's own lines, which must all come before the worker's first.
fn bootstrap_lines(output: &Output) -> Vec<String> {
    let text = stderr(output);
    let lines: Vec<&str> = text.lines().collect();
    let own = lines
        .iter()
        .take_while(|line| line.starts_with("bootstrap: "))
        .count();
    assert!(
        lines[own..].iter().all(|l| !l.starts_with("bootstrap: ")),
        "bootstrap lines after the worker started:\n{text}"
    );
    lines[..own].iter().map(|l| l.to_string()).collect()
}

fn assert_logged(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|line| line == expected),
        "no line {expected:?} in\n{}",
        lines.join("\n")
    );
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

#[test]
fn prepares_the_volume_seeds_voices_once_and_runs_the_job_under_every_shell() {
    let example = std::fs::read(root().join("voices.json.example")).unwrap();
    for shell in shells() {
        let sandbox = Sandbox::new();
        let volume = sandbox.volume();
        let output = sandbox.run(&shell, &[], &["--test-input", INFO_JOB]);
        assert!(output.status.success(), "{shell:?}: {}", stderr(&output));
        for folder in ["audio_prompts", "output", "models"] {
            assert!(volume.join(folder).is_dir(), "{shell:?}: no {folder}/");
        }
        let voices = volume.join("voices.json");
        assert_eq!(std::fs::read(&voices).unwrap(), example, "{shell:?}");
        let info = stdout_json(&output);
        assert_eq!(
            info["output"]["volume"]["root"],
            volume.display().to_string()
        );
        // The worker serves the seeded file, not its built-in names.
        assert_eq!(info["output"]["voices"]["source"], "file", "{shell:?}");

        let lines = bootstrap_lines(&output);
        let v = volume.display();
        // On a RunPod machine its cached models are real and would be reported instead.
        if !Path::new("/runpod-volume").exists() {
            assert_logged(
                &lines,
                &format!(
                    "bootstrap: checkpoints: none cached; the first load downloads them from \
                     https://huggingface.co into {v}/models"
                ),
            );
        }
        for expected in [
            format!("bootstrap: volume {v}: audio_prompts/, output/, models/"),
            format!(
                "bootstrap: voices: seeded {v}/voices.json from {}",
                root().join("voices.json.example").display()
            ),
            "bootstrap: no GPU found; running on the CPU".into(),
            "bootstrap: model turbo, device cpu, dtype f32, preload false, concurrency 1".into(),
            format!("bootstrap: starting {BIN} --test-input (2 arguments)"),
        ] {
            assert_logged(&lines, &expected);
        }
        // No temporary copy is left beside it.
        let names: Vec<_> = std::fs::read_dir(&volume)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");

        let edited = r#"{"narrator": {"audio_file": "narrator.wav"}}"#;
        std::fs::write(&voices, edited).unwrap();
        let again = sandbox.run(&shell, &[], &["--test-input", INFO_JOB]);
        assert!(again.status.success(), "{shell:?}: {}", stderr(&again));
        assert_eq!(std::fs::read_to_string(&voices).unwrap(), edited);
        assert_logged(
            &bootstrap_lines(&again),
            &format!("bootstrap: voices: {v}/voices.json (kept)"),
        );
    }
}

#[test]
fn port_without_arguments_starts_serve_and_arguments_pass_through() {
    let sandbox = Sandbox::new();
    let fake = sandbox.add_program("fake-worker", ECHO_ARGS);
    let fake = fake.to_str().unwrap();
    let started = |vars: &[(&str, &str)], args: &[&str]| {
        let mut vars = vars.to_vec();
        vars.push(("CHATTERBOX_BIN", fake));
        let output = sandbox.run(&shells()[0], &vars, args);
        assert!(output.status.success(), "{}", stderr(&output));
        (
            String::from_utf8(output.stdout.clone()).unwrap(),
            bootstrap_lines(&output),
        )
    };

    let (args, lines) = started(&[("PORT", "8000")], &[]);
    assert_eq!(args, "serve\n");
    assert_logged(
        &lines,
        &format!("bootstrap: starting {fake} serve (PORT=8000)"),
    );

    let (args, _) = started(&[("PORT", "8000")], &["--test-input", "{\"input\": {}}"]);
    assert_eq!(args, "--test-input\n{\"input\": {}}\n");

    let (args, lines) = started(&[("RUNPOD_WEBHOOK_GET_JOB", "http://x/job-take/$ID")], &[]);
    assert_eq!(args, "");
    assert_logged(
        &lines,
        &format!("bootstrap: starting {fake} on the job queue"),
    );

    let missing = sandbox.run(&shells()[0], &[("CHATTERBOX_BIN", "no-such-worker")], &[]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(stderr(&missing).contains("bootstrap: no-such-worker not found (set CHATTERBOX_BIN)"));
}

#[test]
fn logs_the_gpu_and_the_checkpoints_it_finds() {
    let sandbox = Sandbox::new();
    let fake = sandbox.add_program("fake-worker", ECHO_ARGS);
    // nvidia-smi's answers on an H100: the CSV query, and the banner holding the CUDA version.
    sandbox.add_program(
        "nvidia-smi",
        "#!/bin/sh\n\
         if [ \"$#\" -gt 0 ]; then echo 'NVIDIA H100 80GB HBM3, 570.124.06'; exit; fi\n\
         echo '| NVIDIA-SMI 570.124.06     Driver Version: 570.124.06     CUDA Version: 12.8     |'\n",
    );
    let hub = sandbox.path().join("hub");
    std::fs::create_dir_all(hub.join("models--ResembleAI--chatterbox-turbo/snapshots/0123abc"))
        .unwrap();
    let cache = sandbox.volume().join("models/ResembleAI/chatterbox");
    std::fs::create_dir_all(&cache).unwrap();
    let checkpoints = root().join("tests/fixtures/checkpoints/tiny");

    let output = sandbox.run(
        &shells()[0],
        &[
            ("CHATTERBOX_BIN", fake.to_str().unwrap()),
            ("CHATTERBOX_DEVICE", "auto"),
            ("CHATTERBOX_MODEL", "english"),
            ("CHATTERBOX_DTYPE", "bf16"),
            ("HF_HUB_CACHE", hub.to_str().unwrap()),
            ("CHATTERBOX_CHECKPOINT_DIR", checkpoints.to_str().unwrap()),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = bootstrap_lines(&output);
    for expected in [
        "bootstrap: GPU: NVIDIA H100 80GB HBM3, driver 570.124.06, CUDA 12.8".to_string(),
        format!(
            "bootstrap: checkpoints: CHATTERBOX_CHECKPOINT_DIR={} first",
            checkpoints.display()
        ),
        format!(
            "bootstrap: checkpoints: the hub cache {} holds ResembleAI/chatterbox-turbo",
            hub.display()
        ),
        format!(
            "bootstrap: checkpoints: the volume cache {} holds ResembleAI/chatterbox",
            sandbox.volume().join("models").display()
        ),
        "bootstrap: model english, device auto, dtype bf16, preload false, concurrency 1".into(),
    ] {
        assert_logged(&lines, &expected);
    }

    let cuda = [
        ("CHATTERBOX_BIN", fake.to_str().unwrap()),
        ("CHATTERBOX_DEVICE", "cuda"),
    ];
    let with_gpu = sandbox.run(&shells()[0], &cuda, &[]);
    assert!(
        !stderr(&with_gpu).contains("loading the model will fail"),
        "{}",
        stderr(&with_gpu)
    );
    std::fs::remove_file(sandbox.bin().join("nvidia-smi")).unwrap();
    let without_gpu = sandbox.run(&shells()[0], &cuda, &[]);
    assert_logged(
        &bootstrap_lines(&without_gpu),
        "bootstrap: no GPU found, but CHATTERBOX_DEVICE=cuda: loading the model will fail",
    );
}

#[test]
fn the_voices_example_can_be_chosen_or_declined() {
    let sandbox = Sandbox::new();
    let fake = sandbox.add_program("fake-worker", ECHO_ARGS);
    let fake = fake.to_str().unwrap();
    let own = sandbox.path().join("my-voices.json");
    std::fs::write(&own, r#"{"guide": {"audio_file": "guide.wav"}}"#).unwrap();

    let declined = sandbox.run(
        &shells()[0],
        &[
            ("CHATTERBOX_BIN", fake),
            ("CHATTERBOX_VOICES_EXAMPLE", "none"),
        ],
        &[],
    );
    assert!(declined.status.success(), "{}", stderr(&declined));
    assert!(!sandbox.volume().join("voices.json").exists());
    assert_logged(
        &bootstrap_lines(&declined),
        "bootstrap: voices: no voices.json; OpenAI voice names speak in the built-in voice",
    );

    let chosen = sandbox.run(
        &shells()[0],
        &[
            ("CHATTERBOX_BIN", fake),
            ("CHATTERBOX_VOICES_EXAMPLE", own.to_str().unwrap()),
        ],
        &[],
    );
    assert!(chosen.status.success(), "{}", stderr(&chosen));
    assert_eq!(
        std::fs::read(sandbox.volume().join("voices.json")).unwrap(),
        std::fs::read(&own).unwrap()
    );
}

#[test]
fn shellcheck_finds_nothing() {
    let Some(shellcheck) = find_program("shellcheck") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have shellcheck (tools/setup.sh installs it)"
        );
        eprintln!("shellcheck is not installed (bash tools/setup.sh): skipped");
        return;
    };
    let output = Command::new(shellcheck)
        .args(["-s", "sh"])
        .arg(script())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shellcheck:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
}
