//! Port of chatterbox/mtl_tts.py: the multilingual model's checkpoint files. Its pipeline is
//! `ChatterboxTTS`'s (tts.rs) with a language code; the 23 languages and their text handling
//! live in tokenizers/tokenizer.rs.

use super::tokenizers::MTLTokenizer;
use super::tts::{BUILTIN_VOICE_FILE, CheckpointLayout, REPO_ID};

/// The 0.1.7 files: T3 as safetensors, the voice encoder and S3Gen as torch pickles.
pub const LAYOUT: CheckpointLayout = CheckpointLayout {
    repo_id: REPO_ID,
    t3: "t3_mtl23ls_v2.safetensors",
    s3gen: "s3gen.pt",
    ve: "ve.pt",
    tokenizer: &["grapheme_mtl_merged_expanded_v1.json"],
    optional: &[BUILTIN_VOICE_FILE, MTLTokenizer::CANGJIE_FILE],
};
