//! Port of chatterbox/tts.py (`ChatterboxTTS`) and of what tts_turbo.py and mtl_tts.py share
//! with it: loading a checkpoint directory, `prepare_conditionals` and `generate`. The
//! variants' own rules (files, reference lengths, token post-processing) live in
//! tts_turbo.rs and mtl_tts.rs. The watermark is not applied here (the engine's last stage).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::dsp::resample::Resampler;
#[cfg(test)]
use super::s3gen::S3GEN_SIL;
use super::s3gen::S3GEN_SR;
use super::s3gen::flow::FlowPrompt;
use super::s3gen::s3gen::{S3Gen, S3GenConfig};
use super::s3tokenizer::s3tokenizer::{S3_SR, SPEECH_VOCAB_SIZE};
use super::t3::inference::sampling::Uniforms;
use super::t3::modules::cond_enc::T3Cond;
use super::t3::modules::t3_config::T3Config;
use super::t3::t3::{ConditioningPrefix, GenerateOptions, T3};
use super::tokenizers::{EnTokenizer, MTLTokenizer, TextTokenizer, TokenizerError, TurboTokenizer};
use super::voice_encoder::voice_encoder::TRAINING_ONLY_KEYS;
use super::voice_encoder::{VoiceEncConfig, VoiceEncoder};
use super::weights::{Weights, WeightsError};
use super::{mtl_tts, tts_turbo};
use crate::audio::loudness;

pub const REPO_ID: &str = "ResembleAI/chatterbox";
/// T3's reference: the first 6 s at 16 kHz (`ENC_COND_LEN`).
const ENC_COND_SECONDS: usize = 6;
/// S3Gen's reference: the first 10 s at 24 kHz (`DEC_COND_LEN`, every variant).
const DEC_COND_SECONDS: usize = 10;
/// The built-in voice every checkpoint directory carries.
pub const BUILTIN_VOICE_FILE: &str = "conds.pt";
/// Optional architecture overrides next to the weights (the worker's own file, not part of the
/// Hugging Face repositories): reduced test checkpoints and fine-tunes with other sizes.
pub const CONFIG_OVERRIDE_FILE: &str = "chatterbox-worker.json";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// Shown without the backtrace candle attaches under RUST_BACKTRACE.
    #[error("{}", without_backtrace(.0))]
    Model(#[from] candle_core::Error),
}

fn without_backtrace(error: &candle_core::Error) -> &candle_core::Error {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => inner,
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    Reference(String),
    #[error("the model stopped before producing any speech; try another seed or a longer text")]
    NoSpeech,
    /// The options' stop signal was raised: nobody waits for the speech.
    #[error("the generation was stopped: its caller has gone")]
    Stopped,
    #[error(transparent)]
    Model(#[from] candle_core::Error),
}

/// The three text-to-speech models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// ResembleAI/chatterbox-turbo: GPT-2 backbone, 2-step flow; the worker's default.
    Turbo,
    /// ResembleAI/chatterbox: the English Llama backbone.
    English,
    /// The 23-language checkpoint in ResembleAI/chatterbox.
    Multilingual,
}

impl Variant {
    pub const NAMES: &'static str = "turbo, english (or standard), multilingual";
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "turbo" | "chatterbox-turbo" => Ok(Self::Turbo),
            "english" | "standard" | "chatterbox" => Ok(Self::English),
            "multilingual" | "mtl" | "chatterbox-multilingual" => Ok(Self::Multilingual),
            other => Err(format!(
                "unknown Chatterbox model {other:?}; expected one of: {}",
                Self::NAMES
            )),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Turbo => "turbo",
            Self::English => "english",
            Self::Multilingual => "multilingual",
        })
    }
}

/// A generation's waveform and its cost in tokens (the `usage` OpenAI's streams report).
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub samples: Vec<f32>,
    /// Text tokens T3 read, start and end markers included.
    pub text_tokens: usize,
    /// Speech tokens S3Gen turned into audio.
    pub speech_tokens: usize,
}

/// Which files of a Hugging Face repository a variant loads.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointLayout {
    pub repo_id: &'static str,
    pub t3: &'static str,
    pub s3gen: &'static str,
    pub ve: &'static str,
    pub tokenizer: &'static [&'static str],
    /// Files used when present: the built-in voice, tables a tokenizer can do without.
    pub optional: &'static [&'static str],
}

impl CheckpointLayout {
    /// The files `from_local` cannot do without.
    pub fn required(&self) -> Vec<&'static str> {
        let mut files = vec![self.t3, self.s3gen, self.ve];
        files.extend_from_slice(self.tokenizer);
        files
    }
}

impl Variant {
    pub fn layout(self) -> CheckpointLayout {
        match self {
            Self::Turbo => tts_turbo::LAYOUT,
            Self::English => CheckpointLayout {
                repo_id: REPO_ID,
                t3: "t3_cfg.safetensors",
                s3gen: "s3gen.safetensors",
                ve: "ve.safetensors",
                tokenizer: &["tokenizer.json"],
                optional: &[BUILTIN_VOICE_FILE],
            },
            Self::Multilingual => mtl_tts::LAYOUT,
        }
    }

    fn t3_config(self) -> T3Config {
        match self {
            Self::Turbo => T3Config::turbo(),
            Self::English => T3Config::english_only(),
            Self::Multilingual => T3Config::multilingual(),
        }
    }

    fn s3gen_config(self) -> S3GenConfig {
        match self {
            Self::Turbo => S3GenConfig::s3gen_meanflow(),
            Self::English | Self::Multilingual => S3GenConfig::s3gen(),
        }
    }

    /// The `generate` defaults of the variant's reference class.
    pub fn default_options(self) -> GenerateOptions {
        match self {
            Self::Turbo => GenerateOptions::turbo(),
            Self::English => GenerateOptions::english(),
            Self::Multilingual => GenerateOptions::multilingual(),
        }
    }

    /// The reference's `exaggeration` default (Turbo has no emotion input).
    pub fn default_exaggeration(self) -> f32 {
        match self {
            Self::Turbo => 0.0,
            Self::English | Self::Multilingual => 0.5,
        }
    }

    fn enc_cond_seconds(self) -> usize {
        match self {
            Self::Turbo => tts_turbo::ENC_COND_SECONDS,
            Self::English | Self::Multilingual => ENC_COND_SECONDS,
        }
    }

    fn load_tokenizer(self, dir: &Path) -> Result<TextTokenizer, TokenizerError> {
        let file = dir.join(self.layout().tokenizer[0]);
        Ok(match self {
            Self::Turbo => TextTokenizer::Turbo(TurboTokenizer::from_dir(dir)?),
            Self::English => TextTokenizer::English(EnTokenizer::from_file(&file)?),
            Self::Multilingual => TextTokenizer::Multilingual(MTLTokenizer::from_file(&file)?),
        })
    }
}

/// [`CONFIG_OVERRIDE_FILE`]: each present part replaces the variant's default configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    pub t3: Option<T3Config>,
    pub s3gen: Option<S3GenConfig>,
    pub ve: Option<VoiceEncConfig>,
}

impl ConfigOverrides {
    pub fn read(dir: &Path) -> Result<Self, LoadError> {
        let path = dir.join(CONFIG_OVERRIDE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LoadError::File {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(LoadError::File {
                path,
                reason: e.to_string(),
            }),
        }
    }
}

/// One voice, ready for generation: T3's conditioning and S3Gen's prompt (`Conditionals`),
/// plus the T3 prefix computed from them, kept for the last exaggeration used.
pub struct Conditionals {
    pub t3: T3Cond,
    pub s3gen_prompt: FlowPrompt,
    prefix: Mutex<Option<(u32, Arc<ConditioningPrefix>)>>,
}

impl Conditionals {
    pub fn new(t3: T3Cond, s3gen_prompt: FlowPrompt) -> Self {
        Self {
            t3,
            s3gen_prompt,
            prefix: Mutex::new(None),
        }
    }

    /// `Conditionals.load`: a `conds.pt` torch pickle with a `t3` dict (speaker_emb,
    /// cond_prompt_speech_tokens, emotion_adv) and a `gen` dict (prompt_token, prompt_feat,
    /// embedding); `None` values (clap_emb, prompt_feat_len) are skipped.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LoadError> {
        let read = || -> candle_core::Result<Self> {
            let t3 = candle_core::pickle::PthTensors::new(path, Some("t3"))?;
            let prompt = candle_core::pickle::PthTensors::new(path, Some("gen"))?;
            let tensor = |tensors: &candle_core::pickle::PthTensors, name: &str| {
                tensors
                    .get(name)?
                    .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))
            };
            let on_device = |t: Tensor, dtype| t.to_dtype(dtype)?.to_device(device);
            let emotion: Vec<f32> = tensor(&t3, "emotion_adv")?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            let cond_prompt_speech_tokens = match t3.get("cond_prompt_speech_tokens")? {
                Some(t) => Some(on_device(t, DType::U32)?),
                None => None,
            };
            Ok(Self::new(
                T3Cond {
                    speaker_emb: on_device(tensor(&t3, "speaker_emb")?, DType::F32)?,
                    cond_prompt_speech_tokens,
                    emotion_adv: emotion.first().copied().unwrap_or(0.5),
                },
                FlowPrompt {
                    prompt_token: tensor(&prompt, "prompt_token")?
                        .to_dtype(DType::U32)?
                        .flatten_all()?
                        .to_vec1()?,
                    prompt_feat: on_device(tensor(&prompt, "prompt_feat")?, DType::F32)?,
                    embedding: on_device(tensor(&prompt, "embedding")?, DType::F32)?,
                },
            ))
        };
        read().map_err(|e| LoadError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// What a request may change in `generate`.
#[derive(Debug, Clone)]
pub struct SpeechOptions {
    pub t3: GenerateOptions,
    pub exaggeration: f32,
    /// Multilingual only: the language code.
    pub language: Option<String>,
    /// Seeds T3's sampling and S3Gen's noise: equal seeds give equal audio.
    pub seed: u64,
}

pub struct ChatterboxTTS {
    variant: Variant,
    t3: T3,
    /// Shared with voice conversion when both use the same checkpoint file.
    s3gen: Arc<S3Gen>,
    ve: VoiceEncoder,
    tokenizer: TextTokenizer,
    builtin_voice: Option<Conditionals>,
    to_16k: Resampler,
    device: Device,
}

impl ChatterboxTTS {
    /// `from_local`: the variant's files from `dir` (layout: [`Variant::layout`]) with the
    /// overrides of [`CONFIG_OVERRIDE_FILE`] when present. `dtype` is T3's and S3Gen's; the
    /// voice encoder always runs in f32.
    pub fn from_local(
        variant: Variant,
        dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let layout = variant.layout();
        let overrides = ConfigOverrides::read(dir)?;
        let t3_config = overrides.t3.unwrap_or_else(|| variant.t3_config());
        let s3gen_config = overrides.s3gen.unwrap_or_else(|| variant.s3gen_config());
        let ve_config = overrides.ve.unwrap_or_else(VoiceEncConfig::chatterbox);
        let t3 = Weights::from_file(&dir.join(layout.t3))?.build(
            dtype,
            device,
            super::t3::t3::UNUSED_KEYS,
            |vb| T3::load(vb, &t3_config),
        )?;
        let s3gen = Arc::new(load_s3gen(
            &dir.join(layout.s3gen),
            &s3gen_config,
            device,
            dtype,
        )?);
        let ve = Weights::from_file(&dir.join(layout.ve))?.build(
            DType::F32,
            device,
            TRAINING_ONLY_KEYS,
            |vb| VoiceEncoder::load(vb, &ve_config),
        )?;
        let builtin = dir.join(BUILTIN_VOICE_FILE);
        let builtin_voice = if builtin.is_file() {
            Some(Conditionals::load(&builtin, device)?)
        } else {
            None
        };
        Ok(Self {
            variant,
            t3,
            s3gen,
            ve,
            tokenizer: variant.load_tokenizer(dir)?,
            builtin_voice,
            to_16k: Resampler::soxr_like(S3GEN_SR, S3_SR),
            device: device.clone(),
        })
    }

    /// See [`T3::store_decode_weights_as`].
    pub fn store_t3_decode_weights_as(&mut self, dtype: DType) -> candle_core::Result<()> {
        self.t3.store_decode_weights_as(dtype)
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The checkpoint's `conds.pt` voice, when it has one.
    pub fn builtin_voice(&self) -> Option<&Conditionals> {
        self.builtin_voice.as_ref()
    }

    /// `prepare_conditionals` on a reference clip given at `sample_rate` (resampled to 24 kHz
    /// as `librosa.load(sr=24000)` does, with the soxr-like kernel). Turbo requires more than
    /// 5 s and, with `norm_loudness`, brings the clip to −27 LUFS first.
    pub fn prepare_conditionals(
        &self,
        wav: &[f32],
        sample_rate: u32,
        exaggeration: f32,
        norm_loudness: bool,
    ) -> Result<Conditionals, GenerateError> {
        let mut wav_24k = Resampler::soxr_like(sample_rate, S3GEN_SR).process(wav);
        if self.variant == Variant::Turbo {
            let seconds = wav_24k.len() as f64 / f64::from(S3GEN_SR);
            if seconds <= tts_turbo::MIN_REFERENCE_SECONDS {
                return Err(GenerateError::Reference(format!(
                    "the reference audio must be longer than {} seconds for Turbo (got {seconds:.2} s)",
                    tts_turbo::MIN_REFERENCE_SECONDS
                )));
            }
            if norm_loudness {
                wav_24k = loudness::normalize(&wav_24k, S3GEN_SR, tts_turbo::REFERENCE_LUFS);
            }
        }
        let wav_16k = self.to_16k.process(&wav_24k);
        let dec_len = wav_24k.len().min(DEC_COND_SECONDS * S3GEN_SR as usize);
        let s3gen_prompt = self.s3gen.embed_ref(&wav_24k[..dec_len])?;
        let plen = self.t3.hp.speech_cond_prompt_len;
        let cond_prompt_speech_tokens = if plen > 0 {
            let enc_len = wav_16k
                .len()
                .min(self.variant.enc_cond_seconds() * S3_SR as usize);
            let tokens = self
                .s3gen
                .tokenizer()
                .forward(&wav_16k[..enc_len], Some(plen))?;
            let count = tokens.len();
            Some(Tensor::from_vec(tokens, (1, count), &self.device)?)
        } else {
            None
        };
        let speaker_emb = self.ve.embeds_from_wav(&wav_16k)?;
        Ok(Conditionals::new(
            T3Cond {
                speaker_emb,
                cond_prompt_speech_tokens,
                emotion_adv: exaggeration,
            },
            s3gen_prompt,
        ))
    }

    /// `generate` before the watermark: the 24 kHz waveform of `text` in `voice`'s voice.
    pub fn generate(
        &self,
        text: &str,
        voice: &Conditionals,
        options: &SpeechOptions,
    ) -> Result<Generated, GenerateError> {
        let text_tokens = self.tokenizer.encode(text, options.language.as_deref())?;
        let tokens = self.speech_tokens_of(&text_tokens, voice, options)?;
        let samples = self
            .s3gen
            .inference(&tokens, &voice.s3gen_prompt, options.seed)?;
        Ok(Generated {
            samples,
            text_tokens: text_tokens.len(),
            speech_tokens: tokens.len(),
        })
    }

    /// `generate`'s first stage: T3's speech tokens for `text`, filtered (and, for Turbo,
    /// padded with silence) as the variant hands them to S3Gen.
    pub fn speech_tokens(
        &self,
        text: &str,
        voice: &Conditionals,
        options: &SpeechOptions,
    ) -> Result<Vec<u32>, GenerateError> {
        let text_tokens = self.tokenizer.encode(text, options.language.as_deref())?;
        self.speech_tokens_of(&text_tokens, voice, options)
    }

    fn speech_tokens_of(
        &self,
        text_tokens: &[u32],
        voice: &Conditionals,
        options: &SpeechOptions,
    ) -> Result<Vec<u32>, GenerateError> {
        let prefix = self.prefix(voice, options.exaggeration)?;
        let uniforms = Uniforms::from_seed(options.seed, options.t3.max_new_tokens, &self.device)?;
        let tokens = match self.variant {
            Variant::Turbo => {
                let generated =
                    self.t3
                        .inference_turbo(&prefix, text_tokens, &options.t3, &uniforms)?;
                tts_turbo::speech_tokens_for_s3gen(generated)
            }
            Variant::English | Variant::Multilingual => {
                let generated = self
                    .t3
                    .inference(&prefix, text_tokens, &options.t3, &uniforms)?;
                drop_invalid_tokens(&generated)
            }
        };
        if options.t3.stop.requested() {
            return Err(GenerateError::Stopped);
        }
        if tokens.is_empty() {
            return Err(GenerateError::NoSpeech);
        }
        Ok(tokens)
    }

    /// `generate`'s second stage, for callers that drive or time the stages apart, or share it.
    pub fn s3gen(&self) -> &Arc<S3Gen> {
        &self.s3gen
    }

    /// T3's conditioning prefix for the voice at this exaggeration, computed once and kept
    /// with the voice until another exaggeration is asked for.
    fn prefix(
        &self,
        voice: &Conditionals,
        exaggeration: f32,
    ) -> candle_core::Result<Arc<ConditioningPrefix>> {
        // Models without the emotion input ignore it, so every value shares one prefix.
        let exaggeration = if self.t3.hp.emotion_adv {
            exaggeration
        } else {
            voice.t3.emotion_adv
        };
        let key = exaggeration.to_bits();
        let mut cached = voice.prefix.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((k, prefix)) = cached.as_ref()
            && *k == key
        {
            return Ok(Arc::clone(prefix));
        }
        let cond = T3Cond {
            emotion_adv: exaggeration,
            ..voice.t3.clone()
        };
        let prefix = Arc::new(self.t3.prefill_conditioning(&cond)?);
        *cached = Some((key, Arc::clone(&prefix)));
        Ok(prefix)
    }
}

/// Loads an S3Gen checkpoint (`s3gen.safetensors`, `s3gen_meanflow.safetensors`, `s3gen.pt`).
pub fn load_s3gen(
    path: &Path,
    config: &S3GenConfig,
    device: &Device,
    dtype: DType,
) -> Result<S3Gen, LoadError> {
    Ok(
        Weights::from_file(path)?.build(dtype, device, S3Gen::RECOMPUTED_BUFFERS, |vb| {
            S3Gen::load(vb, config)
        })?,
    )
}

/// `drop_invalid_tokens` (models/s3tokenizer) and the `< 6561` filter of tts.py: the tokens
/// after a start-of-speech token, before an end-of-speech token, within the codebook. The
/// multilingual reference skips the filter and fails on such tokens; here it applies to both.
pub fn drop_invalid_tokens(tokens: &[u32]) -> Vec<u32> {
    let (sos, eos) = (SPEECH_VOCAB_SIZE, SPEECH_VOCAB_SIZE + 1);
    let start = tokens.iter().position(|&t| t == sos).map_or(0, |i| i + 1);
    let end = tokens
        .iter()
        .position(|&t| t == eos)
        .unwrap_or(tokens.len());
    tokens
        .get(start..end.max(start))
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|&t| t < SPEECH_VOCAB_SIZE)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_and_aliases_parse() {
        assert_eq!("Turbo".parse::<Variant>(), Ok(Variant::Turbo));
        assert_eq!("standard".parse::<Variant>(), Ok(Variant::English));
        assert_eq!("mtl".parse::<Variant>(), Ok(Variant::Multilingual));
        let error = "tts-1".parse::<Variant>().unwrap_err();
        assert!(
            error.contains("turbo") && error.contains("tts-1"),
            "{error}"
        );
    }

    #[test]
    fn drop_invalid_tokens_keeps_the_span_between_start_and_stop_in_the_codebook() {
        assert_eq!(drop_invalid_tokens(&[1, 2, 3]), vec![1, 2, 3]);
        assert_eq!(
            drop_invalid_tokens(&[5, 6561, 7, 8000, 9, 6562, 10]),
            vec![7, 9]
        );
        assert_eq!(drop_invalid_tokens(&[6562, 6561, 4]), Vec::<u32>::new());
        assert!(drop_invalid_tokens(&[]).is_empty());
    }

    #[test]
    fn turbo_appends_three_silence_tokens_after_the_codebook_filter() {
        assert_eq!(
            tts_turbo::speech_tokens_for_s3gen(vec![3, 6562, 4]),
            vec![3, 4, S3GEN_SIL, S3GEN_SIL, S3GEN_SIL]
        );
    }
}
