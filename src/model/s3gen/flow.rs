//! Port of chatterbox/models/s3gen/flow.py (`CausalMaskedDiffWithXvec.inference`): prompt and
//! generated speech tokens through the upsampling conformer, then the flow-matching decoder
//! conditioned on the prompt's mel and the speaker's x-vector.

use candle_core::{D, Module, Result, Shape, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::decoder::ConditionalDecoderConfig;
use super::flow_matching::CausalConditionalCFM;
use super::transformer::upsample_encoder::{
    UpsampleConformerEncoder, UpsampleConformerEncoderConfig,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowConfig {
    pub input_size: usize,
    pub output_size: usize,
    pub spk_embed_dim: usize,
    pub vocab_size: usize,
    pub token_mel_ratio: usize,
    pub encoder: UpsampleConformerEncoderConfig,
    pub decoder: ConditionalDecoderConfig,
}

impl FlowConfig {
    /// The flow of `s3gen.safetensors` (English, multilingual, voice conversion).
    pub fn s3gen() -> Self {
        Self::with_decoder(ConditionalDecoderConfig::s3gen())
    }

    /// The flow of `s3gen_meanflow.safetensors` (Turbo).
    pub fn s3gen_meanflow() -> Self {
        Self::with_decoder(ConditionalDecoderConfig::s3gen_meanflow())
    }

    fn with_decoder(decoder: ConditionalDecoderConfig) -> Self {
        Self {
            input_size: 512,
            output_size: 80,
            spk_embed_dim: 192,
            vocab_size: 6561,
            token_mel_ratio: 2,
            encoder: UpsampleConformerEncoderConfig::s3gen(),
            decoder,
        }
    }
}

/// What S3Gen conditions on, from `embed_ref` or a built-in voice (`conds.pt`'s `gen`).
#[derive(Debug, Clone)]
pub struct FlowPrompt {
    /// The reference's speech tokens.
    pub prompt_token: Vec<u32>,
    /// (1, 2·prompt tokens, 80) mel of the reference at 24 kHz.
    pub prompt_feat: Tensor,
    /// (1, 192) CAMPPlus x-vector of the reference.
    pub embedding: Tensor,
}

pub struct CausalMaskedDiffWithXvec {
    input_embedding: Embedding,
    spk_embed_affine_layer: Linear,
    encoder: UpsampleConformerEncoder,
    encoder_proj: Linear,
    decoder: CausalConditionalCFM,
    config: FlowConfig,
}

impl CausalMaskedDiffWithXvec {
    /// `vb` at `flow`.
    pub fn load(vb: VarBuilder, config: &FlowConfig) -> Result<Self> {
        let encoder = UpsampleConformerEncoder::load(vb.pp("encoder"), &config.encoder)?;
        Ok(Self {
            input_embedding: candle_nn::embedding(
                config.vocab_size,
                config.input_size,
                vb.pp("input_embedding"),
            )?,
            spk_embed_affine_layer: candle_nn::linear(
                config.spk_embed_dim,
                config.output_size,
                vb.pp("spk_embed_affine_layer"),
            )?,
            encoder_proj: candle_nn::linear(
                encoder.output_size(),
                config.output_size,
                vb.pp("encoder_proj"),
            )?,
            encoder,
            decoder: CausalConditionalCFM::load(vb.pp("decoder"), &config.decoder)?,
            config: config.clone(),
        })
    }

    /// `inference(..., finalize=True)` for one utterance: the mel of the generated part,
    /// (1, 80, 2·(prompt + generated tokens) − prompt mel frames), which is 2·tokens when the
    /// prompt has two mel frames a token. `draw_noise` gives the solver's starting point
    /// z ~ N(0, 1) for the shape asked, (1, 80, all frames), prompt frames included, as the
    /// reference draws it over the whole sequence.
    pub fn inference(
        &self,
        tokens: &[u32],
        prompt: &FlowPrompt,
        draw_noise: impl FnOnce(Shape) -> Result<Tensor>,
        n_timesteps: usize,
    ) -> Result<Tensor> {
        let vocab = self.config.vocab_size;
        if let Some(bad) = prompt
            .prompt_token
            .iter()
            .chain(tokens)
            .find(|&&t| t as usize >= vocab)
        {
            candle_core::bail!("speech token {bad} is outside the flow's {vocab}-token vocabulary");
        }
        let device = prompt.prompt_feat.device();
        let all: Vec<u32> = prompt.prompt_token.iter().chain(tokens).copied().collect();
        let ids = Tensor::from_vec(all, (1, prompt.prompt_token.len() + tokens.len()), device)?;

        let embedding = prompt.embedding.to_dtype(candle_core::DType::F32)?;
        let norm = embedding
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .maximum(1e-12)?;
        // Prompts and noise arrive in f32 (conds.pt, embed_ref, the noise streams); the flow
        // computes in its weights' dtype.
        let dtype = self.input_embedding.embeddings().dtype();
        let spks = self
            .spk_embed_affine_layer
            .forward(&embedding.broadcast_div(&norm)?.to_dtype(dtype)?)?;

        let hidden = self.encoder.forward(&self.input_embedding.forward(&ids)?)?;
        let mu = self
            .encoder_proj
            .forward(&hidden)?
            .transpose(1, 2)?
            .contiguous()?;
        let total = mu.dim(2)?;
        let prompt_frames = prompt.prompt_feat.dim(1)?;
        if prompt_frames >= total {
            candle_core::bail!(
                "the voice's prompt has {prompt_frames} mel frames, which leave none of the {total} for speech"
            );
        }
        let shape = Shape::from((1, self.config.output_size, total));
        let noise = draw_noise(shape.clone())?;
        if noise.shape() != &shape {
            candle_core::bail!(
                "flow noise has shape {:?}, {total} frames need {:?}",
                noise.dims(),
                shape.dims()
            );
        }
        let cond = Tensor::cat(
            &[
                prompt.prompt_feat.to_dtype(dtype)?.transpose(1, 2)?,
                Tensor::zeros(
                    (1, self.config.output_size, total - prompt_frames),
                    mu.dtype(),
                    device,
                )?,
            ],
            2,
        )?
        .contiguous()?;
        let feat = self
            .decoder
            .forward(&mu, &spks, &cond, &noise.to_dtype(dtype)?, n_timesteps)?;
        feat.narrow(2, prompt_frames, total - prompt_frames)
    }
}
