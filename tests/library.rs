//! The voice-library tasks (`voices`, `voice_upload`, `voice_delete`) through the local API on
//! 127.0.0.1, against a volume folder the test owns.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use chatterbox_worker::audio::wav::{SampleFormat, encode};
use common::LocalApi;

async fn api_on(volume: &std::path::Path) -> LocalApi {
    LocalApi::real(&[("CHATTERBOX_VOLUME", volume.display().to_string())]).await
}

fn clip_base64(seconds: f64) -> String {
    let samples: Vec<f32> = (0..(seconds * 16000.0) as usize)
        .map(|i| 0.2 * (i as f32 * 0.05).sin())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(encode(&samples, 16000, SampleFormat::Pcm16))
}

#[tokio::test]
async fn upload_list_and_delete_voices() {
    let volume = tempfile::tempdir().unwrap();
    let api = api_on(volume.path()).await;

    let listed = api.job(json!({"task": "voices"})).await.unwrap();
    assert_eq!(listed["library"]["source"], "built-in");
    assert_eq!(listed["voices"][0]["file_exists"], false);

    let uploaded = api
        .job(
            json!({"task": "voice_upload", "name": "narrator", "audio_base64": clip_base64(6.0),
                    "description": "calm", "exaggeration": 0.7}),
        )
        .await
        .unwrap();
    assert_eq!(uploaded["audio_file"], "narrator.wav");
    assert!(volume.path().join("audio_prompts/narrator.wav").is_file());

    let listed = api.job(json!({"task": "voices"})).await.unwrap();
    assert_eq!(listed["library"]["source"], "file");
    let narrator = listed["voices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "narrator")
        .unwrap()
        .clone();
    assert_eq!(narrator["file_exists"], true);
    assert_eq!(narrator["duration_sec"], 6.0);
    assert_eq!(narrator["exaggeration"], 0.7);
    // The built-in names were kept when voices.json was first written.
    assert!(
        listed["voices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "alloy")
    );

    // A second upload under the same name is refused and leaves the clip as it was.
    let before = std::fs::read(volume.path().join("audio_prompts/narrator.wav")).unwrap();
    let error = api
        .job(json!({"task": "voice_upload", "name": "narrator", "audio_base64": clip_base64(7.0)}))
        .await
        .unwrap_err();
    assert!(error.contains("overwrite"), "{error}");
    assert_eq!(
        std::fs::read(volume.path().join("audio_prompts/narrator.wav")).unwrap(),
        before
    );

    let deleted = api
        .job(json!({"task": "voice_delete", "name": "narrator"}))
        .await
        .unwrap();
    assert_eq!(deleted["file_deleted"], false);
    assert!(volume.path().join("audio_prompts/narrator.wav").is_file());
    let error = api
        .job(json!({"task": "voice_delete", "name": "narrator"}))
        .await
        .unwrap_err();
    assert!(error.contains("unknown voice"), "{error}");

    api.job(json!({"task": "voice_upload", "name": "guide", "audio_base64": clip_base64(5.5)}))
        .await
        .unwrap();
    let deleted = api
        .job(json!({"task": "voice_delete", "name": "guide", "delete_file": true}))
        .await
        .unwrap();
    assert_eq!(deleted["file_deleted"], true);
    assert!(!volume.path().join("audio_prompts/guide.wav").exists());
}

#[tokio::test]
async fn uploads_take_any_common_format_inline_or_by_url() {
    use chatterbox_worker::audio::format::OutputFormat;
    let volume = tempfile::tempdir().unwrap();
    let tone: Vec<f32> = (0..6 * 24_000)
        .map(|i| 0.2 * (i as f32 * 0.05).sin())
        .collect();
    let flac = OutputFormat::Flac.encode(&tone, 24_000).unwrap();
    let app = axum::Router::new().route(
        "/voice.flac",
        axum::routing::get(move || {
            let flac = flac.clone();
            async move { flac }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/voice.flac", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let api = LocalApi::real(&[
        ("CHATTERBOX_VOLUME", volume.path().display().to_string()),
        ("CHATTERBOX_ALLOW_PRIVATE_URLS", "true".into()),
    ])
    .await;
    let by_url = api
        .job(json!({"task": "voice_upload", "name": "fetched", "audio_url": url}))
        .await
        .unwrap();
    assert_eq!(
        (
            by_url["duration_sec"].as_f64(),
            by_url["sample_rate"].as_u64()
        ),
        (Some(6.0), Some(24_000))
    );
    let mp3 = OutputFormat::Mp3.encode(&tone, 24_000).unwrap();
    let inline = api
        .job(json!({
            "task": "voice_upload",
            "name": "inline_mp3",
            "audio_base64": base64::engine::general_purpose::STANDARD.encode(mp3),
        }))
        .await
        .unwrap();
    assert_eq!(inline["audio_file"], "inline_mp3.wav");
    // Stored as WAV, whatever came in, so every reader of audio_prompts/ can use it.
    let stored = std::fs::read(volume.path().join("audio_prompts/fetched.wav")).unwrap();
    assert_eq!(&stored[..4], b"RIFF");
    let error = api
        .job(json!({"task": "voice_upload", "name": "x", "audio_url": "file:///etc/passwd"}))
        .await
        .unwrap_err();
    assert!(error.contains("http(s)"), "{error}");
}

#[tokio::test]
async fn bad_uploads_are_refused_with_nothing_written() {
    let volume = tempfile::tempdir().unwrap();
    let api = api_on(volume.path()).await;
    for (input, expected) in [
        (
            json!({"task": "voice_upload", "name": "../evil", "audio_base64": clip_base64(6.0)}),
            "name must be",
        ),
        (
            json!({"task": "voice_upload", "name": "short", "audio_base64": clip_base64(2.0)}),
            "5 s to 300 s",
        ),
        (
            json!({"task": "voice_upload", "name": "noise", "audio_base64": "bm90IGF1ZGlv"}),
            "WAV",
        ),
        (
            json!({"task": "voice_upload", "name": "x"}),
            "send the clip as audio_base64 or audio_url",
        ),
        (
            json!({"task": "voice_upload", "name": "x", "audio_base64": clip_base64(6.0), "cfg_weight": 9}),
            "cfg_weight",
        ),
    ] {
        let error = api.job(input).await.unwrap_err();
        assert!(error.contains(expected), "{error}");
    }
    assert!(!volume.path().join("voices.json").exists());
    let prompts = volume.path().join("audio_prompts");
    let leftovers: Vec<_> = std::fs::read_dir(&prompts)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!volume.path().parent().unwrap().join("evil.wav").exists());
}

#[tokio::test]
async fn concurrent_uploads_all_land_in_one_valid_voices_json() {
    let volume = tempfile::tempdir().unwrap();
    let api = Arc::new(api_on(volume.path()).await);
    let clip = clip_base64(5.5);
    let uploads = (0..8).map(|i| {
        let (api, clip) = (api.clone(), clip.clone());
        tokio::spawn(async move {
            api.job(
                json!({"task": "voice_upload", "name": format!("voice{i}"), "audio_base64": clip}),
            )
            .await
        })
    });
    for upload in uploads {
        upload.await.unwrap().unwrap();
    }
    let voices: Value =
        serde_json::from_slice(&std::fs::read(volume.path().join("voices.json")).unwrap()).unwrap();
    for i in 0..8 {
        assert!(voices.get(format!("voice{i}")).is_some(), "voice{i} lost");
    }
}

#[tokio::test]
async fn outputs_are_listed_filtered_and_paged_without_leaving_the_folder() {
    let volume = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.wav"), b"secret").unwrap();
    let output = volume.path().join("output");
    std::fs::create_dir_all(output.join("book")).unwrap();
    std::fs::write(output.join("intro.wav"), b"RIFF....").unwrap();
    std::fs::write(output.join("broken.wav"), b"").unwrap();
    std::fs::write(output.join("book/chapter1.mp3"), b"ID3.....").unwrap();
    std::fs::write(output.join("book/chapter2.mp3"), b"ID3......").unwrap();
    std::os::unix::fs::symlink(outside.path(), output.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.wav"), output.join("link.wav")).unwrap();
    let api = api_on(volume.path()).await;

    let all = api.job(json!({"task": "outputs"})).await.unwrap();
    let paths: Vec<&str> = all["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["book/chapter1.mp3", "book/chapter2.mp3", "intro.wav"]
    );
    assert_eq!(all["skipped_empty"], json!(["broken.wav"]));

    let book = api
        .job(json!({"task": "outputs", "project": "book", "page_size": 1, "page": 2}))
        .await
        .unwrap();
    assert_eq!(
        (book["total"].as_u64(), book["pages"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(book["files"].as_array().unwrap().len(), 1);
    assert_eq!(book["files"][0]["project"], "book");

    let found = api
        .job(json!({"task": "outputs", "search": "CHAPTER2"}))
        .await
        .unwrap();
    assert_eq!(found["files"][0]["path"], "book/chapter2.mp3");

    for (project, expected) in [
        ("../", "not a plain"),
        ("elsewhere", "not a plain"),
        ("nothing", "no project"),
    ] {
        let error = api
            .job(json!({"task": "outputs", "project": project}))
            .await
            .unwrap_err();
        assert!(error.contains(expected), "{project}: {error}");
    }
}

#[tokio::test]
async fn an_audio_prompt_url_to_a_private_address_is_refused_by_default() {
    let volume = tempfile::tempdir().unwrap();
    let api = api_on(volume.path()).await;
    let error = api
        .job(json!({"task": "tts", "text": "Hi.", "audio_prompt": "http://127.0.0.1:9/clip.wav"}))
        .await
        .unwrap_err();
    assert!(error.contains("private, loopback"), "{error}");
}
