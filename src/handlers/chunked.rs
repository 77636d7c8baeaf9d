//! Speech for any text the handlers accept: cut into chunks the model speaks well
//! (text_chunks), each spoken with the job's voice and settings (the engine keeps the voice's
//! conditioning, so only the first chunk pays for it), brought to the job's speed, and joined
//! with a pause that fits how the chunk ended. Each chunk is handed out as soon as it is done,
//! as exactly the samples it adds to the whole, so streamed chunks played back to back are the
//! final audio.

use serde::Serialize;

use super::error::JobError;
use super::speech::engine_error;
use super::text_chunks::{self, Boundary, TextChunk};
use crate::audio::stretch::change_speed;
use crate::audio::{Clip, reported_seconds, samples_for_ms, trim};
use crate::engine::{Engine, SpeechRequest, TokenUsage};

/// One chunk's part of the result, in `generation_info`.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkInfo {
    pub index: usize,
    pub characters: usize,
    pub ends: Boundary,
    pub seed: u64,
    pub duration_sec: f64,
    /// Silence after this chunk (none after the last).
    pub pause_ms: f64,
}

/// A finished chunk, as handed to the caller while the rest are still being spoken.
pub struct ChunkAudio {
    pub index: usize,
    pub count: usize,
    pub text: String,
    /// This chunk's samples in the final audio, the pause after it included.
    pub clip: Clip,
}

pub struct ChunkedSpeech {
    pub clip: Clip,
    pub watermarked: bool,
    pub chunks: Vec<ChunkInfo>,
    pub tokens: TokenUsage,
}

/// Chunks join where the model left at least this much silence, cut to the trim guard; the
/// text's own pause is then added.
const JOIN_SILENCE_MS: u64 = trim::THRESHOLD_RANGE_MS.0;

/// The text's chunks, or an error naming `field` when nothing in it can be spoken.
pub fn plan_text(
    text: &str,
    max_chars: usize,
    field: &'static str,
) -> Result<Vec<TextChunk>, JobError> {
    let chunks = text_chunks::split(text, max_chars);
    if chunks.is_empty() {
        return Err(JobError::invalid(
            format!("{field} has no words to speak"),
            field,
        ));
    }
    Ok(chunks)
}

/// Speaks `chunks` one after another with `request`'s voice and settings (its text is replaced
/// by each chunk's): chunk i with seed `request.seed + i`, so one seed reproduces the whole
/// text and a one-chunk text is exactly one generation.
pub async fn speak<Handed>(
    engine: &Engine,
    request: SpeechRequest,
    chunks: &[TextChunk],
    speed: f64,
    mut on_chunk: impl FnMut(ChunkAudio) -> Handed,
) -> Result<ChunkedSpeech, JobError>
where
    Handed: Future<Output = Result<(), JobError>>,
{
    let count = chunks.len();
    let mut samples = Vec::new();
    let mut sample_rate = 0;
    let mut watermarked = true;
    let mut tokens = TokenUsage::default();
    let mut infos = Vec::with_capacity(count);
    for (index, chunk) in chunks.iter().enumerate() {
        let seed = request.seed.wrapping_add(index as u64);
        let speech = engine
            .speak(SpeechRequest {
                text: chunk.text.clone(),
                seed,
                ..request.clone()
            })
            .await
            .map_err(engine_error)?;
        sample_rate = speech.clip.sample_rate;
        watermarked &= speech.watermarked;
        tokens += speech.tokens;
        let spoken = change_speed(&speech.clip.samples, sample_rate, speed)
            .map_err(|e| JobError::Internal(e.into()))?;
        let last = index + 1 == count;
        let kept = join_bounds(&spoken, sample_rate, index == 0, last);
        let start = samples.len();
        samples.extend_from_slice(&spoken[kept]);
        let pause_ms = if last {
            0.0
        } else {
            chunk.ends.pause_ms() / speed
        };
        samples.resize(samples.len() + samples_for_ms(pause_ms, sample_rate), 0.0);
        infos.push(ChunkInfo {
            index,
            characters: chunk.text.chars().count(),
            ends: chunk.ends,
            seed,
            duration_sec: reported_seconds(samples.len() - start, sample_rate),
            pause_ms,
        });
        on_chunk(ChunkAudio {
            index,
            count,
            text: chunk.text.clone(),
            clip: Clip {
                samples: samples[start..].to_vec(),
                sample_rate,
            },
        })
        .await?;
    }
    Ok(ChunkedSpeech {
        clip: Clip {
            samples,
            sample_rate,
        },
        watermarked,
        chunks: infos,
        tokens,
    })
}

/// The part of a chunk that joins its neighbours: silence the model left where it meets
/// another chunk is shortened to the trim guard; the text's own start and end are untouched.
fn join_bounds(
    samples: &[f32],
    sample_rate: u32,
    first: bool,
    last: bool,
) -> std::ops::Range<usize> {
    let sound = trim::bounds(samples, sample_rate, JOIN_SILENCE_MS);
    let start = if first { 0 } else { sound.start };
    let end = if last { samples.len() } else { sound.end };
    start..end
}
