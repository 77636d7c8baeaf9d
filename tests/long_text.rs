//! Long texts are spoken in chunks and joined; `stream: true` hands each chunk out through
//! `/stream` as it is done. Over the local API on 127.0.0.1, on the tiny Turbo checkpoint.

mod common;

use base64::Engine as _;
use serde_json::{Value, json};

use chatterbox_worker::audio::{Clip, decode};
use common::LocalApi;

/// Random weights rarely stop by themselves: every chunk runs to the token cap.
const TOKENS: usize = 20;

async fn api(volume: &std::path::Path) -> LocalApi {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    LocalApi::real(&[
        ("CHATTERBOX_VOLUME", volume.display().to_string()),
        (
            "CHATTERBOX_CHECKPOINT_DIR",
            root.join("tests/fixtures/checkpoints/tiny")
                .display()
                .to_string(),
        ),
        ("CHATTERBOX_MAX_NEW_TOKENS", TOKENS.to_string()),
        ("HF_ENDPOINT", "http://127.0.0.1:9".into()),
    ])
    .await
}

fn audio(value: &Value) -> Clip {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value["audio_base64"].as_str().expect("audio_base64"))
        .unwrap();
    decode(&bytes).unwrap()
}

const TEXT: &str = "The first sentence is here. A second one follows it, and then a third! \
                    Is this the fourth?\n\nA new paragraph ends the text.";

#[tokio::test]
async fn a_streamed_long_text_arrives_chunk_by_chunk_and_joins_to_the_result() {
    let volume = tempfile::tempdir().unwrap();
    let api = api(volume.path()).await;
    let (_, queued) = api
        .post(
            "/run",
            json!({"input": {"task": "tts", "text": TEXT, "max_chunk_chars": 50, "seed": 7,
                             "stream": true}}),
        )
        .await;
    let id = queued["id"].as_str().unwrap();
    let status = api.until_final(id).await;
    assert_eq!(status["status"], "COMPLETED", "{status}");
    let output = &status["output"];
    let (_, stream) = api.get(&format!("/stream/{id}")).await;
    let pieces: Vec<&Value> = stream["stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["output"])
        .collect();

    let chunks = output["chunks"].as_array().unwrap();
    let texts: Vec<&str> = pieces.iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "The first sentence is here.",
            "A second one follows it, and then a third!",
            "Is this the fourth?",
            "A new paragraph ends the text."
        ]
    );
    assert_eq!(chunks.len(), 4);
    let ends: Vec<&str> = chunks.iter().map(|c| c["ends"].as_str().unwrap()).collect();
    assert_eq!(ends, ["sentence", "sentence", "paragraph", "sentence"]);
    let seeds: Vec<u64> = chunks.iter().map(|c| c["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [7, 8, 9, 10]);
    let pauses: Vec<f64> = chunks
        .iter()
        .map(|c| c["pause_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(pauses, [300.0, 300.0, 600.0, 0.0]);

    // The streamed chunks, played back to back, are exactly the final audio.
    let whole = audio(output);
    let mut joined = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        assert_eq!(piece["chunk"], index);
        assert_eq!(piece["chunks"], 4);
        assert_eq!(piece["format"], "wav");
        let clip = audio(piece);
        assert_eq!(clip.sample_rate, 24_000);
        assert_eq!(
            piece["duration_sec"].as_f64().unwrap(),
            chunks[index]["duration_sec"].as_f64().unwrap()
        );
        joined.extend(clip.samples);
    }
    assert_eq!(joined, whole.samples);

    // Four chunks at the token cap each speak more than one generation can.
    let one_generation = (TOKENS + 3) as f64 * 0.04;
    assert!(
        whole.duration_seconds() > 2.0 * one_generation,
        "{}",
        whole.duration_seconds()
    );
    let summed: f64 = chunks
        .iter()
        .map(|c| c["duration_sec"].as_f64().unwrap())
        .sum();
    assert!((summed - output["duration_sec"].as_f64().unwrap()).abs() < 0.003);
}

/// Chunk joins at every speed a user may ask for, the bounds included: stretching changes each
/// chunk's length and the pauses shrink with it, and still the streamed chunks add up to the
/// result sample for sample.
#[tokio::test]
async fn chunk_joins_add_up_at_every_speed() {
    let volume = tempfile::tempdir().unwrap();
    let api = api(volume.path()).await;
    for speed in [0.25, 0.7, 1.37, 4.0] {
        let (_, queued) = api
            .post(
                "/run",
                json!({"input": {"task": "tts", "text": TEXT, "max_chunk_chars": 120, "seed": 5,
                                 "speed_factor": speed, "stream": true}}),
            )
            .await;
        let id = queued["id"].as_str().unwrap();
        let status = api.until_final(id).await;
        assert_eq!(status["status"], "COMPLETED", "x{speed}: {status}");
        let output = &status["output"];
        let chunks = output["chunks"].as_array().unwrap();
        let pauses: Vec<f64> = chunks
            .iter()
            .map(|c| c["pause_ms"].as_f64().unwrap())
            .collect();
        // Two chunks; the first ends at the paragraph break.
        assert_eq!(pauses, [600.0 / speed, 0.0], "x{speed}");
        let (_, stream) = api.get(&format!("/stream/{id}")).await;
        let joined: Vec<f32> = stream["stream"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|piece| audio(&piece["output"]).samples)
            .collect();
        let whole = audio(output);
        assert_eq!(joined, whole.samples, "x{speed}");
        let said = output["duration_sec"].as_f64().unwrap();
        assert!((whole.duration_seconds() - said).abs() < 0.001, "x{speed}");
    }
}

#[tokio::test]
async fn one_seed_reproduces_a_chunked_text_and_without_stream_nothing_is_streamed() {
    let volume = tempfile::tempdir().unwrap();
    let api = api(volume.path()).await;
    let input = json!({"task": "tts", "text": TEXT, "max_chunk_chars": 120, "seed": 3});
    let first = api.job(input.clone()).await.unwrap();
    let second = api.job(input).await.unwrap();
    assert_eq!(first["chunks"].as_array().unwrap().len(), 2);
    assert_eq!(audio(&first).samples, audio(&second).samples);

    let (_, queued) = api
        .post(
            "/run",
            json!({"input": {"text": "Short. Text.", "seed": 1}}),
        )
        .await;
    let id = queued["id"].as_str().unwrap();
    assert_eq!(api.until_final(id).await["status"], "COMPLETED");
    let (_, stream) = api.get(&format!("/stream/{id}")).await;
    assert_eq!(stream["stream"], json!([]));
}

#[tokio::test]
async fn chunking_errors_name_their_field() {
    let volume = tempfile::tempdir().unwrap();
    let api = api(volume.path()).await;
    for (input, needle) in [
        (
            json!({"task": "tts", "text": "Hello.", "max_chunk_chars": 10}),
            "max_chunk_chars must be between 50 and 1000",
        ),
        (
            json!({"task": "tts", "text": "Hello.", "stream": "yes"}),
            "stream must be true or false",
        ),
        (
            json!({"task": "tts", "text": "… !? --"}),
            "text has no words to speak",
        ),
    ] {
        let error = api.job(input).await.unwrap_err();
        assert!(error.contains(needle), "{error}");
    }
    let (status, error) = api
        .post(
            "/v1/audio/speech",
            json!({"model": "tts-1", "voice": "alloy", "input": "?!"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "input", "{error}");
}

#[tokio::test]
async fn openai_speech_speaks_a_long_input_whole() {
    let volume = tempfile::tempdir().unwrap();
    let api = api(volume.path()).await;
    let input = "This sentence has some words in it. ".repeat(12);
    let response = api
        .http
        .post(format!("{}/v1/audio/speech", api.base))
        .json(
            &json!({"model": "tts-1", "voice": "alloy", "input": input, "response_format": "wav"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let clip = decode(&response.bytes().await.unwrap()).unwrap();
    // 1080 characters in chunks of at most 300: four generations and three pauses at least.
    let one_generation = (TOKENS + 3) as f64 * 0.04;
    assert!(
        clip.duration_seconds() > one_generation * 2.0,
        "{}",
        clip.duration_seconds()
    );
}

/// `stream: true` beside RunPod's OpenAI proxy fields (what the local `/v1/audio/speech`
/// sets): the pieces on `/stream`, put together, are one file of the asked format as long as
/// the output says; the local route answers the same kind of file.
#[tokio::test]
async fn openai_speech_streams_one_file_in_every_format() {
    let volume = tempfile::tempdir().unwrap();
    let api = api(volume.path()).await;
    // Two chunks of text.
    let input = "This sentence has some words in it. ".repeat(10);
    for format in ["wav", "pcm", "mp3", "opus", "flac"] {
        let request =
            json!({"model": "tts-1", "voice": "alloy", "input": input, "response_format": format});
        let (_, queued) = api
            .post(
                "/run",
                json!({"input": {"openai_route": "/v1/audio/speech", "openai_input": request,
                                 "stream": true}}),
            )
            .await;
        let id = queued["id"].as_str().unwrap();
        let status = api.until_final(id).await;
        let output = &status["output"];
        assert_eq!(output["streamed"], true, "{status}");
        assert!(output.get("audio_base64").is_none());
        let (_, stream) = api.get(&format!("/stream/{id}")).await;
        let pieces = stream["stream"].as_array().unwrap();
        let mut file = Vec::new();
        for piece in pieces {
            assert_eq!(piece["output"]["content_type"], output["content_type"]);
            file.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(piece["output"]["audio_base64"].as_str().unwrap())
                    .unwrap(),
            );
        }
        // Written as it comes, except FLAC, whose header needs the whole audio.
        let expected_pieces = if format == "flac" { 1 } else { 2 };
        assert!(
            pieces.len() >= expected_pieces,
            "{format}: {}",
            pieces.len()
        );
        let seconds = if format == "pcm" {
            file.len() as f64 / 2.0 / 24_000.0
        } else {
            decode(&file).unwrap().duration_seconds()
        };
        let said = output["duration_sec"].as_f64().unwrap();
        // MP3 written as it streams has no LAME tag: LAME's delay and padding stay.
        let slack = if format == "mp3" { 0.1 } else { 0.001 };
        assert!(
            seconds >= said - 0.001 && seconds <= said + slack,
            "{format}: {seconds} vs {said}"
        );

        let response = api
            .http
            .post(format!("{}/v1/audio/speech", api.base))
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            output["content_type"].as_str().unwrap()
        );
        let bytes = response.bytes().await.unwrap();
        if format != "pcm" {
            assert!(decode(&bytes).unwrap().duration_seconds() > 1.0, "{format}");
        }
    }
}
