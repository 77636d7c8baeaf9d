//! Port of chatterbox/vc.py (`ChatterboxVC`): the speech tokens of a source recording,
//! re-synthesised by S3Gen in a target voice. No T3 and no voice encoder. The watermark is the
//! engine's last stage, as for text-to-speech.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};

use super::dsp::resample::Resampler;
use super::s3gen::S3GEN_SR;
use super::s3gen::flow::FlowPrompt;
use super::s3gen::s3gen::{S3Gen, S3GenConfig};
use super::s3tokenizer::s3tokenizer::S3_SR;
use super::tts::{
    BUILTIN_VOICE_FILE, ChatterboxTTS, Conditionals, ConfigOverrides, GenerateError, LoadError,
    REPO_ID, Variant, load_s3gen,
};

/// The repository and file `from_local` reads; the built-in voice (`conds.pt`) is optional.
pub const REPO: &str = REPO_ID;
pub const S3GEN_FILE: &str = "s3gen.safetensors";
/// The target voice: the first 10 s at 24 kHz (`DEC_COND_LEN`).
const DEC_COND_SECONDS: usize = 10;

pub struct ChatterboxVC {
    s3gen: Arc<S3Gen>,
    builtin_voice: Option<FlowPrompt>,
}

impl ChatterboxVC {
    pub fn from_local(dir: &Path, device: &Device, dtype: DType) -> Result<Self, LoadError> {
        let config = ConfigOverrides::read(dir)?
            .s3gen
            .unwrap_or_else(S3GenConfig::s3gen);
        let s3gen = Arc::new(load_s3gen(&dir.join(S3GEN_FILE), &config, device, dtype)?);
        let builtin = dir.join(BUILTIN_VOICE_FILE);
        let builtin_voice = if builtin.is_file() {
            Some(Conditionals::load(&builtin, device)?.s3gen_prompt)
        } else {
            None
        };
        Ok(Self {
            s3gen,
            builtin_voice,
        })
    }

    /// Voice conversion on the English model's S3Gen and built-in voice: the same
    /// `s3gen.safetensors` and `conds.pt` of ResembleAI/chatterbox, held once.
    pub fn sharing(tts: &ChatterboxTTS) -> Option<Self> {
        (tts.variant() == Variant::English).then(|| Self {
            s3gen: Arc::clone(tts.s3gen()),
            builtin_voice: tts.builtin_voice().map(|voice| voice.s3gen_prompt.clone()),
        })
    }

    /// `conds.pt`'s `gen` part, when the checkpoint has one.
    pub fn builtin_voice(&self) -> Option<&FlowPrompt> {
        self.builtin_voice.as_ref()
    }

    /// `set_target_voice` on a clip given at `sample_rate`.
    pub fn target_voice(&self, wav: &[f32], sample_rate: u32) -> Result<FlowPrompt, GenerateError> {
        // librosa.load(sr=24000)'s resampling.
        let mut wav_24k = Resampler::soxr_like(sample_rate, S3GEN_SR).process(wav);
        wav_24k.truncate(DEC_COND_SECONDS * S3GEN_SR as usize);
        Ok(self.s3gen.embed_ref(&wav_24k)?)
    }

    /// `generate` before the watermark: `source` (at `sample_rate`) spoken in `target`'s voice,
    /// 24 kHz. Sources of any length: the tokenizer handles audio beyond its 30 s window.
    pub fn generate(
        &self,
        source: &[f32],
        sample_rate: u32,
        target: &FlowPrompt,
        seed: u64,
    ) -> Result<Vec<f32>, GenerateError> {
        let source_16k = Resampler::soxr_like(sample_rate, S3_SR).process(source);
        let tokens = self.s3gen.tokenizer().forward(&source_16k, None)?;
        if tokens.is_empty() {
            return Err(GenerateError::NoSpeech);
        }
        Ok(self.s3gen.inference(&tokens, target, seed)?)
    }
}
