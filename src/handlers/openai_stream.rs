//! OpenAI speech handed out while it is made. One encoder writes the whole answer, so the
//! pieces put together are one valid file of the asked format; each text chunk's audio leaves
//! as soon as it is spoken, as job stream chunks in one of two framings: the file's bytes
//! (`{"audio_base64", "content_type"}`, which `serve` writes as the HTTP body) or OpenAI's SSE
//! events (`speech.audio.delta` with `audio`, then `speech.audio.done` with `usage`).

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};

use super::chunked;
use super::error::JobError;
use super::text_chunks::TextChunk;
use crate::audio::format::OutputFormat;
use crate::audio::stream::StreamEncoder;
use crate::engine::{Engine, SpeechRequest, TokenUsage};
use crate::job::JobContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The file's bytes, piece by piece.
    Audio,
    /// `stream_format: "sse"`: OpenAI's speech events.
    Sse,
}

pub struct SpeechStream<'a> {
    format: OutputFormat,
    framing: Framing,
    events: &'a JobContext,
}

impl<'a> SpeechStream<'a> {
    pub fn new(format: OutputFormat, framing: Framing, events: &'a JobContext) -> Self {
        Self {
            format,
            framing,
            events,
        }
    }

    /// Speaks `chunks` as `chunked::speak` does, streaming the file as it grows. The output
    /// then describes the audio without repeating it.
    pub async fn speak(
        self,
        engine: &Engine,
        request: SpeechRequest,
        chunks: &[TextChunk],
        speed: f64,
    ) -> Result<Value, JobError> {
        let format = self.format;
        // Made for the first chunk's sample rate; taken by the finish.
        let encoder = Arc::new(Mutex::new(None::<StreamEncoder>));
        let this = &self;
        let speech = chunked::speak(engine, request, chunks, speed, |chunk| {
            let encoder = encoder.clone();
            async move {
                let bytes = off_thread(move || {
                    let mut encoder = encoder.lock().map_err(|_| "encoder lock poisoned")?;
                    let encoder = match encoder.as_mut() {
                        Some(encoder) => encoder,
                        None => encoder.insert(StreamEncoder::new(format, chunk.clip.sample_rate)?),
                    };
                    Ok(encoder.push(&chunk.clip.samples)?)
                })
                .await?;
                this.send(bytes);
                Ok(())
            }
        })
        .await?;
        let bytes = off_thread(move || {
            let encoder = encoder.lock().map_err(|_| "encoder lock poisoned")?.take();
            Ok(encoder.ok_or("no chunk was spoken")?.finish()?)
        })
        .await?;
        self.send(bytes);
        let usage = usage(speech.tokens);
        if self.framing == Framing::Sse {
            self.events
                .stream(json!({"type": "speech.audio.done", "usage": usage}));
        }
        Ok(json!({
            "streamed": true,
            "stream_format": match self.framing {
                Framing::Audio => "audio",
                Framing::Sse => "sse",
            },
            "content_type": format.content_type(),
            "format": format.name(),
            "sample_rate": speech.clip.sample_rate,
            "duration_sec": speech.clip.reported_seconds(),
            "usage": usage,
        }))
    }

    fn send(&self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.events.stream(match self.framing {
            Framing::Audio => json!({
                "audio_base64": audio,
                "content_type": self.format.content_type(),
            }),
            Framing::Sse => json!({"type": "speech.audio.delta", "audio": audio}),
        });
    }
}

/// OpenAI's `usage`: text tokens in, speech tokens out.
pub fn usage(tokens: TokenUsage) -> Value {
    json!({
        "input_tokens": tokens.text,
        "output_tokens": tokens.speech,
        "total_tokens": tokens.text + tokens.speech,
    })
}

/// Encoding work kept off the async threads.
async fn off_thread(
    work: impl FnOnce() -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
) -> Result<Vec<u8>, JobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| JobError::Internal(e.into()))?
        .map_err(|e| JobError::Internal(anyhow::anyhow!(e)))
}
