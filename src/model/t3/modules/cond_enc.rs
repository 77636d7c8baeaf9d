//! Port of chatterbox/models/t3/modules/cond_enc.py: everything but the text that T3 conditions
//! on, turned into a prefix of embeddings [speaker | prompt speech | emotion].

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::perceiver::Perceiver;
use super::t3_config::T3Config;

/// `T3Cond` without the unimplemented CLAP field. The prompt tokens are embedded by T3 itself
/// (`prepare_conditioning`), because the speech embedding table lives there.
#[derive(Debug, Clone)]
pub struct T3Cond {
    /// (1, 256) voice-encoder speaker embedding.
    pub speaker_emb: Tensor,
    /// (1, P) speech tokens of the reference clip, u32.
    pub cond_prompt_speech_tokens: Option<Tensor>,
    /// The emotion/exaggeration scalar (ignored by models without `emotion_adv`).
    pub emotion_adv: f32,
}

pub struct T3CondEnc {
    spkr_enc: Linear,
    emotion_adv_fc: Option<Linear>,
    perceiver: Option<Perceiver>,
    speaker_embed_size: usize,
}

impl T3CondEnc {
    pub fn load(vb: VarBuilder, hp: &T3Config) -> Result<Self> {
        let dim = hp.n_channels();
        let emotion_adv_fc = if hp.emotion_adv {
            Some(candle_nn::linear_no_bias(1, dim, vb.pp("emotion_adv_fc"))?)
        } else {
            None
        };
        let perceiver = match &hp.perceiver {
            Some(cfg) => Some(Perceiver::load(vb.pp("perceiver"), cfg)?),
            None => None,
        };
        Ok(Self {
            spkr_enc: candle_nn::linear(hp.speaker_embed_size, dim, vb.pp("spkr_enc"))?,
            emotion_adv_fc,
            perceiver,
            speaker_embed_size: hp.speaker_embed_size,
        })
    }

    /// `prompt_emb` is the embedded prompt (1, P, dim), or None without a prompt.
    /// Returns (1, len_cond, dim).
    pub fn forward(
        &self,
        speaker_emb: &Tensor,
        prompt_emb: Option<&Tensor>,
        emotion_adv: f32,
    ) -> Result<Tensor> {
        let speaker = speaker_emb.reshape(((), self.speaker_embed_size))?;
        let mut parts = vec![self.spkr_enc.forward(&speaker)?.unsqueeze(1)?];
        if let Some(prompt) = prompt_emb {
            parts.push(match &self.perceiver {
                Some(perceiver) => perceiver.forward(prompt)?,
                None => prompt.clone(),
            });
        }
        if let Some(fc) = &self.emotion_adv_fc {
            let emotion = Tensor::full(emotion_adv, (1, 1, 1), speaker.device())?
                .to_dtype(speaker.dtype())?;
            parts.push(fc.forward(&emotion)?);
        }
        Tensor::cat(&parts, 1)
    }
}
