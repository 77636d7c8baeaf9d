//! Port of chatterbox/models/voice_encoder/voice_encoder.py: a 3-layer LSTM speaker encoder run
//! over overlapping 160-frame partials of the trimmed reference, giving the 256-d speaker
//! embedding T3 conditions on.

use candle_core::{D, Device, Module, Result, Tensor};
use candle_nn::rnn::{LSTM, LSTMConfig, RNN};
use candle_nn::{Linear, VarBuilder};

use super::config::VoiceEncConfig;
use super::melspec::melspectrogram;
use crate::model::dsp::trim::trim_range;

/// `embeds_from_wavs` defaults: Resemble's partial rate, librosa's trim level, min coverage.
const PARTIAL_RATE: f64 = 1.3;
const TRIM_TOP_DB: f64 = 20.0;
const MIN_COVERAGE: f64 = 0.8;
const LAYERS: usize = 3;

/// Checkpoint keys used only by training (the GE2E similarity scale).
pub const TRAINING_ONLY_KEYS: &[&str] = &["similarity_weight", "similarity_bias"];

pub struct VoiceEncoder {
    hp: VoiceEncConfig,
    lstm: Vec<LSTM>,
    proj: Linear,
    device: Device,
}

/// Frames between two partials for a given partial rate (`get_frame_step` with a rate).
fn frame_step(hp: &VoiceEncConfig) -> usize {
    (f64::from(hp.sample_rate) / PARTIAL_RATE / hp.ve_partial_frames as f64).round() as usize
}

/// `get_num_wins`: how many partials cover `n_frames`, and the length the mel is padded or cut
/// to so that they fit exactly.
fn num_wins(n_frames: usize, step: usize, win: usize) -> (usize, usize) {
    let span = (n_frames + step).saturating_sub(win);
    let (mut n_wins, remainder) = (span / step, span % step);
    if n_wins == 0 || (remainder + (win - step)) as f64 / win as f64 >= MIN_COVERAGE {
        n_wins += 1;
    }
    (n_wins, win + step * (n_wins - 1))
}

impl VoiceEncoder {
    pub fn load(vb: VarBuilder, hp: &VoiceEncConfig) -> Result<Self> {
        let lstm = (0..LAYERS)
            .map(|layer_idx| {
                let input = if layer_idx == 0 {
                    hp.num_mels
                } else {
                    hp.ve_hidden_size
                };
                let config = LSTMConfig {
                    layer_idx,
                    ..Default::default()
                };
                candle_nn::lstm(input, hp.ve_hidden_size, config, vb.pp("lstm"))
            })
            .collect::<Result<_>>()?;
        let proj = candle_nn::linear(hp.ve_hidden_size, hp.speaker_embed_size, vb.pp("proj"))?;
        Ok(Self {
            hp: hp.clone(),
            lstm,
            proj,
            device: vb.device().clone(),
        })
    }

    /// L2-normalised embeddings of a batch of partials (B, frames, mels) → (B, E).
    pub fn forward(&self, mels: &Tensor) -> Result<Tensor> {
        let mut input = mels.clone();
        let mut last_hidden = None;
        for layer in &self.lstm {
            let states = layer.seq(&input)?;
            last_hidden = states.last().map(|s| s.h().clone());
            input = layer.states_to_tensor(&states)?;
        }
        let hidden = last_hidden.ok_or_else(|| candle_core::Error::Msg("empty partial".into()))?;
        let mut raw = self.proj.forward(&hidden)?;
        if self.hp.ve_final_relu {
            raw = raw.relu()?;
        }
        l2_normalize(&raw)
    }

    /// The (T, mels) mel of the trimmed 16 kHz reference, as `embeds_from_wavs` computes it.
    pub fn mel(&self, wav_16k: &[f32]) -> Result<Tensor> {
        let kept = trim_range(wav_16k, TRIM_TOP_DB);
        melspectrogram(&wav_16k[kept], &self.hp, &self.device)?.t()
    }

    /// Per-partial embeddings (n, E) of a (T, mels) mel, as `inference` splits it.
    pub fn partial_embeds(&self, mel: &Tensor) -> Result<Tensor> {
        let (frames, mels) = mel.dims2()?;
        let step = frame_step(&self.hp);
        let win = self.hp.ve_partial_frames;
        let (n_partials, target) = num_wins(frames, step, win);
        let mel = if target > frames {
            let pad = Tensor::zeros((target - frames, mels), mel.dtype(), mel.device())?;
            Tensor::cat(&[mel, &pad], 0)?
        } else {
            mel.narrow(0, 0, target)?
        };
        let partials = (0..n_partials)
            .map(|i| mel.narrow(0, i * step, win))
            .collect::<Result<Vec<_>>>()?;
        self.forward(&Tensor::stack(&partials, 0)?)
    }

    /// The (1, E) speaker embedding of a 16 kHz reference: partial embeddings averaged and
    /// normalised again (`embeds_from_wavs` with one wav, then the mean `prepare_conditionals`
    /// takes).
    pub fn embeds_from_wav(&self, wav_16k: &[f32]) -> Result<Tensor> {
        let partials = self.partial_embeds(&self.mel(wav_16k)?)?;
        l2_normalize(&partials.mean_keepdim(0)?)
    }
}

fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_geometry_matches_the_reference() {
        let hp = VoiceEncConfig::chatterbox();
        assert_eq!(frame_step(&hp), 77);
        // 6 s, 10 s and 15 s of 16 kHz audio give 7, 12 and 18 partials.
        assert_eq!(num_wins(601, 77, 160).0, 7);
        assert_eq!(num_wins(1001, 77, 160).0, 12);
        assert_eq!(num_wins(1501, 77, 160).0, 18);
        assert_eq!(num_wins(10, 77, 160), (1, 160));
    }
}
