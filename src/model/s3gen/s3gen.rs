//! Port of chatterbox/models/s3gen/s3gen.py: `S3Token2Wav` (S3Gen), speech tokens to a 24 kHz
//! waveform through the flow and the HiFT vocoder, and `embed_ref`, which turns a reference
//! clip into what the flow conditions on.

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::S3GEN_SR;
use super::flow::{CausalMaskedDiffWithXvec, FlowConfig, FlowPrompt};
use super::hifigan::{HiFTConfig, HiFTGenerator, SourceExcitation};
use super::utils::mel::mel_spectrogram;
use super::xvector::{CampPlus, CampPlusConfig};
use crate::model::dsp::resample::Resampler;
use crate::model::noise;
use crate::model::s3tokenizer::model_v2::ModelConfig;
use crate::model::s3tokenizer::s3tokenizer::{S3_SR, S3Tokenizer};

/// Output samples silenced, then faded in, at the start (20 ms each), against spill-over from
/// the reference clip.
const N_TRIM: usize = S3GEN_SR as usize / 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3GenConfig {
    pub tokenizer: ModelConfig,
    pub speaker_encoder: CampPlusConfig,
    pub flow: FlowConfig,
    pub hift: HiFTConfig,
    /// Flow-matching steps `inference` takes (`flow_inference`'s default).
    pub n_cfm_timesteps: usize,
}

impl S3GenConfig {
    /// `S3Gen()`: `s3gen.safetensors` / `s3gen.pt`, 10 guided steps.
    pub fn s3gen() -> Self {
        Self {
            tokenizer: ModelConfig::speech_tokenizer_v2_25hz(),
            speaker_encoder: CampPlusConfig::s3gen(),
            flow: FlowConfig::s3gen(),
            hift: HiFTConfig::s3gen(),
            n_cfm_timesteps: 10,
        }
    }

    /// `S3Gen(meanflow=True)`: `s3gen_meanflow.safetensors` (Turbo), 2 mean-flow steps.
    pub fn s3gen_meanflow() -> Self {
        Self {
            flow: FlowConfig::s3gen_meanflow(),
            n_cfm_timesteps: 2,
            ..Self::s3gen()
        }
    }
}

pub struct S3Gen {
    tokenizer: S3Tokenizer,
    speaker_encoder: CampPlus,
    flow: CausalMaskedDiffWithXvec,
    mel2wav: HiFTGenerator,
    n_cfm_timesteps: usize,
    to_16k: Resampler,
    trim_fade: Vec<f32>,
    device: Device,
}

impl S3Gen {
    /// Checkpoint keys S3Gen recomputes instead of reading (the speech tokenizer's mel filters
    /// and window, which `s3gen.safetensors` may or may not carry).
    pub const RECOMPUTED_BUFFERS: &[&str] =
        crate::model::s3tokenizer::s3tokenizer::RECOMPUTED_BUFFERS;

    pub fn load(vb: VarBuilder, config: &S3GenConfig) -> Result<Self> {
        let trim_fade = (0..2 * N_TRIM)
            .map(|i| match i.checked_sub(N_TRIM) {
                None => 0.0,
                Some(k) => {
                    let angle = std::f64::consts::PI * (1.0 - k as f64 / (N_TRIM - 1) as f64);
                    ((angle.cos() + 1.0) / 2.0) as f32
                }
            })
            .collect();
        Ok(Self {
            tokenizer: S3Tokenizer::load(vb.pp("tokenizer"), &config.tokenizer)?,
            speaker_encoder: CampPlus::load(vb.pp("speaker_encoder"), &config.speaker_encoder)?,
            flow: CausalMaskedDiffWithXvec::load(vb.pp("flow"), &config.flow)?,
            mel2wav: HiFTGenerator::load(vb.pp("mel2wav"), &config.hift)?,
            n_cfm_timesteps: config.n_cfm_timesteps,
            to_16k: Resampler::new(S3GEN_SR, S3_SR),
            trim_fade,
            device: vb.device().clone(),
        })
    }

    /// The speech tokenizer, which the pipelines also use for T3's prompt and for voice
    /// conversion's source.
    pub fn tokenizer(&self) -> &S3Tokenizer {
        &self.tokenizer
    }

    /// `embed_ref` on a 24 kHz reference (the pipelines cut it to 10 s first): its mel, its
    /// speech tokens and its x-vector, the latter two from a torchaudio-resampled 16 kHz copy.
    pub fn embed_ref(&self, wav_24k: &[f32]) -> Result<FlowPrompt> {
        let mel = mel_spectrogram(wav_24k, &self.device)?;
        let wav_16k = self.to_16k.process(wav_24k);
        let embedding = self.speaker_encoder.inference(&wav_16k, &self.device)?;
        let mut prompt_token = self.tokenizer.forward(&wav_16k, None)?;
        let frames = mel.dim(1)?;
        // The reference keeps mel frames = 2 × tokens by cutting tokens when the clip is not a
        // multiple of 40 ms.
        if frames != 2 * prompt_token.len() {
            prompt_token.truncate(frames / 2);
        }
        Ok(FlowPrompt {
            prompt_token,
            prompt_feat: mel.t()?.unsqueeze(0)?.contiguous()?,
            embedding,
        })
    }

    /// `inference`: the trimmed and faded 24 kHz waveform of `tokens` in the prompt's voice, with
    /// the flow's noise and the vocoder's excitation drawn from `seed`.
    pub fn inference(&self, tokens: &[u32], prompt: &FlowPrompt, seed: u64) -> Result<Vec<f32>> {
        self.inference_with(
            tokens,
            prompt,
            &SeededNoise {
                seed,
                device: &self.device,
            },
        )
    }

    /// [`Self::inference`] with the randomness drawn from `noise`.
    pub fn inference_with(
        &self,
        tokens: &[u32],
        prompt: &FlowPrompt,
        noise: &dyn S3GenNoise,
    ) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            candle_core::bail!("no speech tokens to vocode");
        }
        let mel = self.flow.inference(
            tokens,
            prompt,
            |shape| noise.flow(shape),
            self.n_cfm_timesteps,
        )?;
        // The flow returns fewer than 2·tokens frames when the prompt's mel outnumbers twice its
        // tokens (a clip whose length is not a whole number of tokens), so the excitation is
        // sized from the mel that came out.
        let (phases, sine) = SourceExcitation::shapes(self.mel2wav.config(), 1, mel.dim(2)?);
        let wav = self
            .mel2wav
            .inference(&mel, &noise.excitation(phases, sine)?)?;
        let mut wav = wav.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        for (sample, gain) in wav.iter_mut().zip(&self.trim_fade) {
            *sample *= gain;
        }
        Ok(wav)
    }
}

/// Where S3Gen's random draws come from. Each is asked for once the tensor it joins exists,
/// with the shape that tensor has, so no stage predicts another's length.
pub trait S3GenNoise {
    /// The solver's starting point z ~ N(0, 1): (1, 80, prompt + generated mel frames).
    fn flow(&self, shape: Shape) -> Result<Tensor>;
    /// SineGen's phases and noise, of [`SourceExcitation::shapes`].
    fn excitation(&self, phases: Shape, noise: Shape) -> Result<SourceExcitation>;
}

/// The draws of one request seed, each stage from its own named stream.
pub struct SeededNoise<'a> {
    pub seed: u64,
    pub device: &'a Device,
}

impl S3GenNoise for SeededNoise<'_> {
    fn flow(&self, shape: Shape) -> Result<Tensor> {
        noise::normal(self.seed, "s3gen.flow", shape, self.device)
    }

    fn excitation(&self, phases: Shape, sine: Shape) -> Result<SourceExcitation> {
        let pi = std::f64::consts::PI;
        Ok(SourceExcitation {
            phases: noise::uniform_tensor(
                self.seed,
                "s3gen.hift.phases",
                phases,
                (-pi, pi),
                self.device,
            )?,
            noise: noise::normal(self.seed, "s3gen.hift.noise", sine, self.device)?,
        })
    }
}
