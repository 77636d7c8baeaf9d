//! Port of chatterbox/models/t3/modules/t3_config.py, with the per-checkpoint settings that
//! tts.py, mtl_tts.py and tts_turbo.py apply as named constructors.

use serde::{Deserialize, Serialize};

use super::perceiver::PerceiverConfig;
use crate::model::t3::llama_configs::{BackboneConfig, Gpt2Config, LlamaConfig};
use crate::model::tokenizers::{START_TEXT_TOKEN, STOP_TEXT_TOKEN};

/// The multilingual text vocabulary size; the reference recognises the multilingual model by it.
const MULTILINGUAL_TEXT_VOCAB: usize = 2454;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct T3Config {
    pub start_text_token: u32,
    pub stop_text_token: u32,
    pub text_tokens_dict_size: usize,
    pub max_text_tokens: usize,
    pub start_speech_token: u32,
    pub stop_speech_token: u32,
    pub speech_tokens_dict_size: usize,
    pub max_speech_tokens: usize,
    pub backbone: BackboneConfig,
    /// `input_pos_emb == "learned"`: text and speech position tables (Llama variants only).
    pub learned_pos_emb: bool,
    pub speech_cond_prompt_len: usize,
    pub speaker_embed_size: usize,
    /// `use_perceiver_resampler`, with the Perceiver's sizes.
    pub perceiver: Option<PerceiverConfig>,
    pub emotion_adv: bool,
}

impl T3Config {
    fn llama(text_tokens_dict_size: usize) -> Self {
        Self {
            start_text_token: START_TEXT_TOKEN,
            stop_text_token: STOP_TEXT_TOKEN,
            text_tokens_dict_size,
            max_text_tokens: 2048,
            start_speech_token: 6561,
            stop_speech_token: 6562,
            speech_tokens_dict_size: 8194,
            max_speech_tokens: 4096,
            backbone: BackboneConfig::Llama(LlamaConfig::llama_520m()),
            learned_pos_emb: true,
            speech_cond_prompt_len: 150,
            speaker_embed_size: 256,
            perceiver: Some(PerceiverConfig::chatterbox()),
            emotion_adv: true,
        }
    }

    /// `T3Config.english_only()`: t3_cfg.safetensors of ResembleAI/chatterbox.
    pub fn english_only() -> Self {
        Self::llama(704)
    }

    /// `T3Config.multilingual()`: t3_mtl23ls_v2.safetensors.
    pub fn multilingual() -> Self {
        Self::llama(MULTILINGUAL_TEXT_VOCAB)
    }

    /// The hyper-parameters `ChatterboxTurboTTS.from_local` sets: t3_turbo_v1.safetensors.
    pub fn turbo() -> Self {
        Self {
            text_tokens_dict_size: 50276,
            speech_tokens_dict_size: 6563,
            backbone: BackboneConfig::Gpt2(Gpt2Config::gpt2_medium()),
            learned_pos_emb: false,
            speech_cond_prompt_len: 375,
            perceiver: None,
            emotion_adv: false,
            ..Self::llama(50276)
        }
    }

    pub fn n_channels(&self) -> usize {
        self.backbone.hidden_size()
    }

    /// The reference switches on the alignment guard by this test, so the port does too.
    pub fn is_multilingual(&self) -> bool {
        self.text_tokens_dict_size == MULTILINGUAL_TEXT_VOCAB
    }

    pub fn is_gpt(&self) -> bool {
        matches!(self.backbone, BackboneConfig::Gpt2(_))
    }
}
