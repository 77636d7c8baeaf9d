//! Port of chatterbox/models/t3/llama_configs.py: the two backbone configurations T3 is built
//! with. Only the fields inference reads are kept; dropout and initialiser fields are training-only.

use serde::{Deserialize, Serialize};

/// `rope_scaling` of type "llama3" (Llama 3.1's frequency-dependent stretch of RoPE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    pub rope_scaling: Option<Llama3RopeScaling>,
}

impl LlamaConfig {
    /// `LLAMA_520M_CONFIG_DICT`: the backbone of the English and multilingual checkpoints.
    pub fn llama_520m() -> Self {
        Self {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 30,
            num_attention_heads: 16,
            num_key_value_heads: 16,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            rope_scaling: Some(Llama3RopeScaling {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_positions: usize,
    pub layer_norm_epsilon: f64,
}

impl Gpt2Config {
    /// `GPT2_MEDIUM_CONFIG`: the backbone of Chatterbox-Turbo.
    pub fn gpt2_medium() -> Self {
        Self {
            n_embd: 1024,
            n_layer: 24,
            n_head: 16,
            n_positions: 8196,
            layer_norm_epsilon: 1e-5,
        }
    }
}

/// Which transformer T3 runs (`LLAMA_CONFIGS[hp.llama_config_name]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model_type", rename_all = "lowercase")]
pub enum BackboneConfig {
    Llama(LlamaConfig),
    Gpt2(Gpt2Config),
}

impl BackboneConfig {
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Llama(c) => c.hidden_size,
            Self::Gpt2(c) => c.n_embd,
        }
    }

    pub fn num_layers(&self) -> usize {
        match self {
            Self::Llama(c) => c.num_hidden_layers,
            Self::Gpt2(c) => c.n_layer,
        }
    }

    pub fn num_heads(&self) -> usize {
        match self {
            Self::Llama(c) => c.num_attention_heads,
            Self::Gpt2(c) => c.n_head,
        }
    }
}
