//! Port of chatterbox/models/voice_encoder/config.py (the fields inference reads).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceEncConfig {
    pub num_mels: usize,
    pub sample_rate: u32,
    pub speaker_embed_size: usize,
    pub ve_hidden_size: usize,
    pub n_fft: usize,
    pub hop_size: usize,
    pub win_size: usize,
    pub fmin: f64,
    pub fmax: f64,
    pub ve_partial_frames: usize,
    pub ve_final_relu: bool,
}

impl VoiceEncConfig {
    /// The configuration of `ve.safetensors` in ResembleAI/chatterbox and chatterbox-turbo.
    pub fn chatterbox() -> Self {
        Self {
            num_mels: 40,
            sample_rate: 16000,
            speaker_embed_size: 256,
            ve_hidden_size: 256,
            n_fft: 400,
            hop_size: 160,
            win_size: 400,
            fmin: 0.0,
            fmax: 8000.0,
            ve_partial_frames: 160,
            ve_final_relu: true,
        }
    }
}

impl Default for VoiceEncConfig {
    fn default() -> Self {
        Self::chatterbox()
    }
}
