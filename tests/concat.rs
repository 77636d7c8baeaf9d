//! The `concat` task through the local API on 127.0.0.1, on a volume folder the test owns:
//! seed 004's examples, durations to the sample, reproducible pauses, every export format
//! decoded back, and every kind of bad request refused with nothing outside read.

mod common;

use base64::Engine as _;
use serde_json::{Value, json};

use chatterbox_worker::audio::format::OutputFormat;
use chatterbox_worker::audio::{self, Clip, wav};
use common::LocalApi;

const RATE: usize = 24_000;

struct Volume {
    dir: tempfile::TempDir,
}

impl Volume {
    /// output/ holds intro.wav (1.0 s at 16 kHz), main.flac (2.0 s at 24 kHz), outro.wav
    /// (0.5 s at 44.1 kHz, stereo-free mono) and padded.wav (speech with 600 ms of silence
    /// either side); one folder up sits a secret the jobs must never read.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("volume/output");
        std::fs::create_dir_all(&output).unwrap();
        let write = |name: &str, bytes: Vec<u8>| std::fs::write(output.join(name), bytes).unwrap();
        write("intro.wav", tone_wav(220.0, 16_000, 1.0));
        let main = tone(330.0, 24_000, 2.0);
        write(
            "main.flac",
            OutputFormat::Flac.encode(&main, 24_000).unwrap(),
        );
        write("outro.wav", tone_wav(440.0, 44_100, 0.5));
        let speech = speech();
        let pad = vec![0.0; 24_000 * 6 / 10];
        let padded = [pad.clone(), speech.samples, pad].concat();
        write(
            "padded.wav",
            wav::encode(&padded, 24_000, wav::SampleFormat::Pcm16),
        );
        write("notes.txt", b"not audio at all".to_vec());
        std::fs::write(dir.path().join("secret.wav"), tone_wav(100.0, 16_000, 1.0)).unwrap();
        Self { dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("volume")
    }

    async fn api(&self, extra: &[(&str, String)]) -> LocalApi {
        let mut vars = vec![("CHATTERBOX_VOLUME", self.path().display().to_string())];
        vars.extend(extra.iter().cloned());
        LocalApi::real(&vars).await
    }
}

fn tone(hz: f32, rate: u32, seconds: f32) -> Vec<f32> {
    (0..(rate as f32 * seconds) as usize)
        .map(|i| 0.3 * (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin())
        .collect()
}

fn tone_wav(hz: f32, rate: u32, seconds: f32) -> Vec<u8> {
    wav::encode(&tone(hz, rate, seconds), rate, wav::SampleFormat::Pcm16)
}

fn speech() -> Clip {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/audio/speech.flac"
    );
    audio::decode(&std::fs::read(path).unwrap()).unwrap()
}

/// Lengths at 24 kHz of the committed files after resampling.
const INTRO: usize = RATE;
const MAIN: usize = 2 * RATE;
const OUTRO: usize = RATE / 2;

fn decoded(output: &Value, index: usize) -> Clip {
    let text = output["outputs"][index]["audio_base64"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    audio::decode(&bytes).unwrap()
}

/// Within 1 ms at the output rate.
fn assert_samples(clip: &Clip, expected: usize) {
    let slack = clip.sample_rate as usize / 1000;
    assert!(
        clip.samples.len().abs_diff(expected) <= slack,
        "{} samples, expected {expected}",
        clip.samples.len()
    );
}

fn ms(samples: f64) -> usize {
    (samples * RATE as f64 / 1000.0).round() as usize
}

#[tokio::test]
async fn files_and_manual_silences_add_up() {
    let volume = Volume::new();
    let api = volume.api(&[]).await;
    let output = api
        .job(json!({"task": "concat", "files": ["intro.wav", "main.flac", "outro.wav"]}))
        .await
        .unwrap();
    assert_eq!(output["status"], "success");
    assert_eq!(
        (output["format"].as_str(), output["sample_rate"].as_u64()),
        (Some("wav"), Some(24_000))
    );
    assert_samples(&decoded(&output, 0), INTRO + MAIN + OUTRO);
    assert_eq!(output["generation_info"]["file_count"], 3);
    assert_eq!(output["audio_base64"], output["outputs"][0]["audio_base64"]);

    // Seed 004's manual-silence example.
    let files = json!([
        "(1s)",
        "intro.wav",
        "(500ms)",
        "main.flac",
        "(2.5s)",
        "outro.wav",
        "(1s)"
    ]);
    let output = api
        .job(json!({"task": "concat", "files": files}))
        .await
        .unwrap();
    assert_samples(&decoded(&output, 0), INTRO + MAIN + OUTRO + ms(5000.0));
    let info = &output["generation_info"];
    assert_eq!(
        (
            info["silence_segments"].as_u64(),
            info["natural_pauses"].as_u64()
        ),
        (Some(4), Some(0))
    );
    assert_eq!(info["processing_details"][0]["type"], "manual_silence");
    assert_eq!(info["processing_details"][0]["notation"], "(1s)");
    assert_eq!(info["processing_details"][1]["type"], "file");
    assert_eq!(
        info["processing_details"][1]["original_sample_rate"],
        16_000
    );
    // A manual silence opens the file, so it starts silent.
    assert!(
        decoded(&output, 0).samples[..RATE]
            .iter()
            .all(|s| *s == 0.0)
    );
}

#[tokio::test]
async fn mixed_mode_pauses_follow_the_gap_rules_and_the_seed() {
    let volume = Volume::new();
    let api = volume.api(&[]).await;
    // Seed 004's mixed-mode example, on our files.
    let job = json!({
        "task": "concat",
        "files": ["intro.wav", "(1s)", "main.flac", "outro.wav", "(500ms)", "intro.wav", "main.flac"],
        "pause_duration_ms": 600,
        "pause_variation_ms": 200,
        "seed": 7,
    });
    let output = api.job(job.clone()).await.unwrap();
    let info = &output["generation_info"];
    let details = info["processing_details"].as_array().unwrap();
    let kinds: Vec<&str> = details
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "file",
            "manual_silence",
            "file",
            "natural_pause",
            "file",
            "manual_silence",
            "file",
            "natural_pause",
            "file"
        ]
    );
    let pauses: Vec<i64> = details
        .iter()
        .filter(|d| d["type"] == "natural_pause")
        .map(|d| {
            let applied = d["variation_applied_ms"].as_i64().unwrap();
            assert!((-200..=200).contains(&applied));
            assert_eq!(d["duration_ms"].as_i64().unwrap(), 600 + applied);
            d["duration_ms"].as_i64().unwrap()
        })
        .collect();
    let expected = 2 * INTRO
        + 2 * MAIN
        + OUTRO
        + ms(1500.0)
        + pauses.iter().map(|&p| ms(p as f64)).sum::<usize>();
    assert_samples(&decoded(&output, 0), expected);

    // The same seed gives the same audio; another seed other pauses.
    let again = api.job(job.clone()).await.unwrap();
    assert_eq!(again["audio_base64"], output["audio_base64"]);
    let mut other = job.clone();
    other["seed"] = json!(8);
    let other = api.job(other).await.unwrap();
    assert_ne!(
        other["generation_info"]["processing_details"][3],
        details[3]
    );

    // pause_duration_ms 0 (the default): direct joins, no natural pauses.
    let direct = api
        .job(json!({"task": "concat", "files": ["intro.wav", "main.flac"], "pause_variation_ms": 500}))
        .await
        .unwrap();
    assert_eq!(direct["generation_info"]["natural_pauses"], 0);
    assert_samples(&decoded(&direct, 0), INTRO + MAIN);
}

#[tokio::test]
async fn crossfades_overlap_direct_joins_only() {
    let volume = Volume::new();
    let api = volume.api(&[]).await;
    let output = api
        .job(json!({
            "task": "concat",
            "files": ["intro.wav", "main.flac", "(200ms)", "outro.wav", "intro.wav"],
            "crossfade_ms": 300,
        }))
        .await
        .unwrap();
    // Two direct joins (intro→main, outro→intro) fade for 300 ms each; the silence does not.
    let info = &output["generation_info"];
    assert_eq!(info["crossfades_applied_ms"], json!([300.0, 300.0]));
    assert_samples(
        &decoded(&output, 0),
        INTRO + MAIN + ms(200.0) + OUTRO + INTRO - 2 * ms(300.0),
    );
    // A crossfade longer than a clip is cut to the clip.
    let short = api
        .job(json!({"task": "concat", "files": ["outro.wav", "main.flac"], "crossfade_ms": 5000}))
        .await
        .unwrap();
    assert_eq!(
        short["generation_info"]["crossfades_applied_ms"],
        json!([500.0])
    );
    assert_samples(&decoded(&short, 0), MAIN);
}

#[tokio::test]
async fn trimming_removes_padding_and_is_reported_per_file() {
    let volume = Volume::new();
    let api = volume.api(&[]).await;
    let output = api
        .job(json!({
            "task": "concat",
            "files": ["padded.wav", "(300ms)", "main.flac"],
            "trim": true,
            "normalize_levels": false,
        }))
        .await
        .unwrap();
    let info = &output["generation_info"];
    assert_eq!(
        (
            info["files_trimmed"].as_u64(),
            info["files_not_trimmed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let trim = &info["processing_details"][0]["trim_info"];
    assert_eq!(trim["trimmed"], true);
    assert!(
        trim["leading_silence_removed_ms"].as_f64().unwrap() >= 500.0,
        "{trim}"
    );
    assert!(
        trim["trailing_silence_removed_ms"].as_f64().unwrap() >= 500.0,
        "{trim}"
    );
    let kept = ms(trim["trimmed_duration_ms"].as_f64().unwrap());
    assert_samples(&decoded(&output, 0), kept + ms(300.0) + MAIN);
    assert_eq!(info["processing_details"][2]["trim_info"]["trimmed"], false);
}

#[tokio::test]
async fn every_export_format_and_rate_is_what_it_says() {
    let volume = Volume::new();
    let api = volume.api(&[]).await;
    let output = api
        .job(json!({
            "task": "concat",
            "files": ["intro.wav", "outro.wav"],
            "export_formats": ["flac", "wav", "mp3", "opus", "aac"],
            "sample_rate": 16000,
        }))
        .await
        .unwrap();
    assert_eq!(output["format"], "flac");
    let expected_16k = 16_000 + 8_000;
    let outputs = output["outputs"].as_array().unwrap();
    let types: Vec<&str> = outputs
        .iter()
        .map(|o| o["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "audio/flac",
            "audio/wav",
            "audio/mpeg",
            "audio/ogg",
            "audio/aac"
        ]
    );
    for (index, entry) in outputs.iter().enumerate() {
        let clip = decoded(&output, index);
        let format = entry["format"].as_str().unwrap();
        // Exact lengths (MP3's LAME tag, Opus's granules), but for ADTS, which cannot say
        // how much priming and padding to drop; Opus at 48 kHz.
        let rate = if format == "opus" { 48_000 } else { 16_000 };
        assert_eq!(clip.sample_rate, rate, "{format}");
        let expected = expected_16k * rate as usize / 16_000;
        if format == "aac" {
            let extra = clip.samples.len() - expected;
            assert!(extra <= 3 * 1024, "aac: {extra} samples more");
        } else {
            assert_eq!(clip.samples.len(), expected, "{format}");
        }
        assert_eq!(entry["bytes"].as_u64().unwrap() as usize, {
            let text = entry["audio_base64"].as_str().unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap()
                .len()
        });
    }
    // The lossless ones agree sample for sample (16-bit), and float WAV keeps more.
    let flac = decoded(&output, 0);
    assert_eq!(flac.samples, decoded(&output, 1).samples);
    let float = api
        .job(json!({
            "task": "concat",
            "files": ["intro.wav", "outro.wav"],
            "export_formats": ["wav_float"],
            "sample_rate": 16000,
        }))
        .await
        .unwrap();
    assert_eq!(float["format"], "wav_float");
    let float = decoded(&float, 0);
    assert!(
        float
            .samples
            .iter()
            .zip(&flac.samples)
            .all(|(f, i)| (f - i).abs() <= 1.0 / 32768.0)
    );
    assert!(
        float
            .samples
            .iter()
            .any(|f| (f * 32768.0).fract().abs() > 1e-3)
    );
}

#[tokio::test]
async fn segments_mix_files_silence_inline_audio_and_urls() {
    let volume = Volume::new();
    // A local server for the url segment (private addresses allowed for the test).
    let app = axum::Router::new().route(
        "/clip.wav",
        axum::routing::get(|| async { tone_wav(500.0, 24_000, 0.25) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/clip.wav", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let api = volume
        .api(&[("CHATTERBOX_ALLOW_PRIVATE_URLS", "true".into())])
        .await;
    let inline = base64::engine::general_purpose::STANDARD.encode(tone_wav(600.0, 8_000, 0.75));
    let output = api
        .job(json!({
            "task": "concat",
            "segments": [
                {"type": "silence", "source": "(500ms)"},
                {"type": "server_file", "source": "intro.wav"},
                {"type": "audio_base64", "data": format!("data:audio/wav;base64,{inline}")},
                {"type": "url", "url": url},
                {"type": "file", "source": "outro.wav"},
            ],
            "export_formats": ["wav"],
        }))
        .await
        .unwrap();
    assert_samples(
        &decoded(&output, 0),
        ms(500.0) + INTRO + ms(750.0) + ms(250.0) + OUTRO,
    );
    let kinds: Vec<&str> = output["generation_info"]["processing_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["manual_silence", "file", "audio_base64", "url", "file"]
    );
}

#[tokio::test]
async fn output_filename_and_projects_save_on_the_volume() {
    let volume = Volume::new();
    let api = volume.api(&[]).await;
    let output = api
        .job(json!({
            "task": "concat",
            "files": ["intro.wav", "outro.wav"],
            "export_formats": ["wav", "mp3"],
            "output_filename": "episode_1",
            "project": "podcast",
        }))
        .await
        .unwrap();
    assert_eq!(
        output["saved_paths"],
        json!(["podcast/episode_1.wav", "podcast/episode_1.mp3"])
    );
    let folder = volume.path().join("output/podcast");
    let saved = audio::decode(&std::fs::read(folder.join("episode_1.wav")).unwrap()).unwrap();
    assert_samples(&saved, INTRO + OUTRO);
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(folder.join("episode_1.json")).unwrap()).unwrap();
    assert_eq!(metadata["task"], "concat");
    assert_eq!(metadata["parameters"]["output_filename"], "episode_1");
    assert!(metadata.get("audio_base64").is_none());

    // Without a name, the seeds' enhanced name says what was done.
    let output = api
        .job(json!({
            "task": "concat",
            "files": ["intro.wav", "(1s)", "main.flac", "outro.wav"],
            "pause_duration_ms": 600, "crossfade_ms": 100, "trim": true, "save_to_volume": true,
        }))
        .await
        .unwrap();
    let path = output["saved_path"].as_str().unwrap();
    assert!(path.starts_with("concat_"), "{path}");
    assert!(
        path.ends_with("_3files_sil1_pause600v200_fade100_leveled_trim200.wav"),
        "{path}"
    );
    // The concat result lists in `outputs` like any other saved file, its JSON companion
    // named on it rather than listed on its own.
    let listed = api.job(json!({"task": "outputs"})).await.unwrap();
    let files = listed["files"].as_array().unwrap();
    let entry = files
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{listed}"));
    let companion = path.replace(".wav", ".json");
    assert_eq!(entry["metadata_path"], companion.as_str());
    assert!(
        files.iter().all(|f| f["path"] != companion.as_str()),
        "{listed}"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_clearly_and_nothing_outside_is_read() {
    let volume = Volume::new();
    std::os::unix::fs::symlink(
        volume.dir.path().join("secret.wav"),
        volume.path().join("output/link.wav"),
    )
    .unwrap();
    let api = volume.api(&[]).await;
    let secret = volume.dir.path().join("secret.wav").display().to_string();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "files"),
        (json!({"files": []}), "1 to 200"),
        (json!({"files": ["(1s)"]}), "only silences"),
        (json!({"files": ["intro.wav", "(abc)"]}), "(500ms)"),
        (json!({"files": ["intro.wav", "(20s)"]}), "50 ms to 10 s"),
        (json!({"files": ["intro.wav", "(10ms)"]}), "50 ms to 10 s"),
        (json!({"files": ["intro.wav", 5]}), "files[1]"),
        (
            json!({"files": ["missing.wav"]}),
            "file not found: missing.wav",
        ),
        (json!({"files": ["notes.txt"]}), "notes.txt"),
        (
            json!({"files": ["../secret.wav"]}),
            "not a plain relative file name",
        ),
        (json!({"files": [secret]}), "not a plain relative file name"),
        (
            json!({"files": ["link.wav"]}),
            "not a plain relative file name",
        ),
        (
            json!({"files": ["https://example.com/a.wav"]}),
            "segment of type",
        ),
        (json!({"files": ["intro.wav"], "segments": []}), "not both"),
        (
            json!({"segments": [{"type": "upload", "index": 0}]}),
            "audio_base64",
        ),
        (
            json!({"segments": [{"type": "file"}]}),
            "segments[0]: needs source",
        ),
        (
            json!({"segments": [{"type": "tape"}]}),
            "type must be one of",
        ),
        (
            json!({"segments": [{"type": "url", "url": "ftp://x/a.wav"}]}),
            "http(s)",
        ),
        (
            json!({"segments": [{"type": "audio_base64", "data": "%%%"}]}),
            "base64",
        ),
        (
            json!({"files": ["intro.wav"], "crossfade_ms": 6000}),
            "crossfade_ms",
        ),
        (
            json!({"files": ["intro.wav"], "pause_duration_ms": -1}),
            "pause_duration_ms",
        ),
        (
            json!({"files": ["intro.wav"], "pause_variation_ms": 501}),
            "pause_variation_ms",
        ),
        (
            json!({"files": ["intro.wav"], "trim": true, "trim_threshold_ms": 10}),
            "trim_threshold_ms",
        ),
        (
            json!({"files": ["intro.wav"], "sample_rate": 4000}),
            "sample_rate",
        ),
        (
            json!({"files": ["intro.wav"], "export_formats": ["ogg"]}),
            "unknown audio format",
        ),
        (
            json!({"files": ["intro.wav"], "export_formats": ["wav", "wav_float"]}),
            "twice",
        ),
        (
            json!({"files": ["intro.wav"], "output_filename": "../x"}),
            "output_filename",
        ),
        (json!({"files": ["intro.wav"], "project": "a/b"}), "project"),
        (
            json!({"files": std::iter::once("intro.wav").chain(["(10s)"; 100]).collect::<Vec<_>>()}),
            "more than 15 minutes",
        ),
    ];
    for (mut input, expected) in cases {
        input["task"] = json!("concat");
        let error = api.job(input.clone()).await.unwrap_err();
        assert!(error.contains(expected), "{input}: {error}");
    }
    // The worker still serves, and nothing was written anywhere.
    assert!(
        api.job(json!({"task": "concat", "files": ["intro.wav"]}))
            .await
            .is_ok()
    );
    let mut entries: Vec<String> = std::fs::read_dir(volume.path().join("output"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "intro.wav",
            "link.wav",
            "main.flac",
            "notes.txt",
            "outro.wav",
            "padded.wav"
        ]
    );
}
