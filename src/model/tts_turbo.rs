//! Port of chatterbox/tts_turbo.py: what sets `ChatterboxTurboTTS` apart from
//! `ChatterboxTTS` (tts.rs holds the shared pipeline).

use super::s3gen::S3GEN_SIL;
use super::s3tokenizer::s3tokenizer::SPEECH_VOCAB_SIZE;
use super::tts::{BUILTIN_VOICE_FILE, CheckpointLayout};

pub const REPO_ID: &str = "ResembleAI/chatterbox-turbo";

pub const LAYOUT: CheckpointLayout = CheckpointLayout {
    repo_id: REPO_ID,
    t3: "t3_turbo_v1.safetensors",
    s3gen: "s3gen_meanflow.safetensors",
    ve: "ve.safetensors",
    tokenizer: &[
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
        "tokenizer_config.json",
    ],
    optional: &[BUILTIN_VOICE_FILE],
};

/// T3's reference: the first 15 s at 16 kHz (`ENC_COND_LEN`).
pub const ENC_COND_SECONDS: usize = 15;
/// `prepare_conditionals` asserts the reference is longer than this.
pub const MIN_REFERENCE_SECONDS: f64 = 5.0;
/// `norm_loudness`'s target for the reference clip.
pub const REFERENCE_LUFS: f64 = -27.0;
/// Silence tokens appended after generation.
const TRAILING_SILENCE_TOKENS: usize = 3;

/// `generate`'s token post-processing: codebook tokens only, then three silence tokens.
pub fn speech_tokens_for_s3gen(mut tokens: Vec<u32>) -> Vec<u32> {
    tokens.retain(|&t| t < SPEECH_VOCAB_SIZE);
    tokens.extend(std::iter::repeat_n(S3GEN_SIL, TRAILING_SILENCE_TOKENS));
    tokens
}
