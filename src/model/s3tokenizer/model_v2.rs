//! Port of s3tokenizer 0.3.0's `model_v2.py` (`S3TokenizerV2`, `AudioEncoderV2`,
//! `FSMNMultiHeadAttention`, `ResidualAttentionBlock`, the FSQ codebook, `precompute_freqs_cis`,
//! `apply_rotary_emb`), with the `model.py` layers it builds on and `utils.py`'s
//! `merge_tokenized_segments`. Inference on one utterance at a time: log-mel in, speech tokens
//! out (the log-mel front-end lives elsewhere). Weight keys are the reference's state_dict keys
//! (`encoder.*`, `quantizer._codebook.project_down.*`).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// `precompute_freqs_cis(64, 1024 * 2)`: the table is fixed at head_dim 64 whatever the width,
/// so only configs with `n_audio_state / n_audio_head == 64` run in the reference.
const HEAD_DIM: usize = 64;
const ROPE_POSITIONS: usize = 2048;
const ROPE_THETA: f32 = 10_000.0;
const FSMN_KERNEL: usize = 31;
/// `_quantize_mixed_batch`: 30 s windows, 4 s overlap at 100 frames/s; half of the overlap
/// (2 s at 25 tokens/s) is dropped on each side of a seam by `merge_tokenized_segments`.
const WINDOW_FRAMES: usize = 3000;
const STRIDE_FRAMES: usize = 2600;
const SEAM_TOKENS: usize = 50;
/// FSQ digits per token and levels per digit (3**8 = 6561 codes).
const FSQ_DIGITS: usize = 8;
const FSQ_LEVELS: u32 = 3;
/// The reference's 0.9990000128746033 is 0.999 rounded to f32.
const FSQ_SCALE: f32 = 0.999;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub n_mels: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
}

impl ModelConfig {
    /// The checkpoint chatterbox ships under `tokenizer.` in s3gen.safetensors.
    pub fn speech_tokenizer_v2_25hz() -> Self {
        Self {
            n_mels: 128,
            n_audio_state: 1280,
            n_audio_head: 20,
            n_audio_layer: 6,
        }
    }
}

struct FsmnAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    /// The depthwise kernel as (FSMN_KERNEL, n_state): row k weighs the frame k - 15 steps away.
    fsmn_taps: Tensor,
    n_head: usize,
}

impl FsmnAttention {
    fn load(vb: VarBuilder, n_state: usize, n_head: usize) -> Result<Self> {
        let fsmn = vb.get((n_state, 1, FSMN_KERNEL), "fsmn_block.weight")?;
        Ok(Self {
            query: candle_nn::linear(n_state, n_state, vb.pp("query"))?,
            key: candle_nn::linear_no_bias(n_state, n_state, vb.pp("key"))?,
            value: candle_nn::linear(n_state, n_state, vb.pp("value"))?,
            out: candle_nn::linear(n_state, n_state, vb.pp("out"))?,
            fsmn_taps: fsmn.squeeze(1)?.t()?.contiguous()?,
            n_head,
        })
    }

    /// (1, T, n_state) -> (1, n_head, T, HEAD_DIM), rotated and scaled by HEAD_DIM^-1/4 as the
    /// reference scales both q and k.
    fn heads(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let x = x
            .reshape((b, t, self.n_head, HEAD_DIM))?
            .transpose(1, 2)?
            .contiguous()?;
        let scale = (HEAD_DIM as f64).powf(-0.25);
        candle_nn::rotary_emb::rope(&x, &rope.cos.narrow(0, 0, t)?, &rope.sin.narrow(0, 0, t)?)?
            .affine(scale, 0.0)
    }

    /// `forward_fsmn` on an unpadded window, where its mask is all ones: depthwise conv over
    /// time (k31, zero pad 15/15, no bias) on v, then plus v. Written as a sum of shifted rows
    /// because candle runs a grouped conv1d as one convolution per channel.
    fn fsmn(&self, v: &Tensor) -> Result<Tensor> {
        let t = v.dim(1)?;
        let half = (FSMN_KERNEL - 1) / 2;
        let padded = v.pad_with_zeros(1, half, FSMN_KERNEL - 1 - half)?;
        let tap = |k: usize| {
            padded
                .narrow(1, k, t)?
                .broadcast_mul(&self.fsmn_taps.get(k)?)
        };
        let mut conv = tap(0)?;
        for k in 1..FSMN_KERNEL {
            conv = (conv + tap(k)?)?;
        }
        conv + v
    }

    fn forward(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let (b, t, n_state) = x.dims3()?;
        let q = self.heads(&self.query.forward(x)?, rope)?;
        let k = self.heads(&self.key.forward(x)?, rope)?;
        let v = self.value.forward(x)?;
        let v_heads = v
            .reshape((b, t, self.n_head, HEAD_DIM))?
            .transpose(1, 2)?
            .contiguous()?;
        // The reference takes the softmax in f32 whatever the model dtype.
        let scores = q.matmul(&k.t()?)?.to_dtype(DType::F32)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
        let attended = weights
            .matmul(&v_heads)?
            .transpose(1, 2)?
            .reshape((b, t, n_state))?;
        self.out.forward(&attended)? + self.fsmn(&v)?
    }
}

struct ResidualAttentionBlock {
    attn: FsmnAttention,
    attn_ln: LayerNorm,
    mlp_up: Linear,
    mlp_down: Linear,
    mlp_ln: LayerNorm,
}

impl ResidualAttentionBlock {
    fn load(vb: VarBuilder, n_state: usize, n_head: usize) -> Result<Self> {
        let n_mlp = 4 * n_state;
        Ok(Self {
            attn: FsmnAttention::load(vb.pp("attn"), n_state, n_head)?,
            attn_ln: candle_nn::layer_norm(n_state, 1e-5, vb.pp("attn_ln"))?,
            mlp_up: candle_nn::linear(n_state, n_mlp, vb.pp("mlp.0"))?,
            mlp_down: candle_nn::linear(n_mlp, n_state, vb.pp("mlp.2"))?,
            mlp_ln: candle_nn::layer_norm(n_state, 1e-5, vb.pp("mlp_ln"))?,
        })
    }

    fn forward(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.attn_ln.forward(x)?, rope)?)?;
        let hidden = self.mlp_up.forward(&self.mlp_ln.forward(&x)?)?.gelu_erf()?;
        x + self.mlp_down.forward(&hidden)?
    }
}

/// The half-split RoPE table of `precompute_freqs_cis(64, 2048)` as (positions, HEAD_DIM / 2).
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(vb: &VarBuilder) -> Result<Self> {
        let half = HEAD_DIM / 2;
        // f32 throughout, as torch computes the frequencies and their outer product.
        let freqs: Vec<f32> = (0..half)
            .map(|i| 1.0 / ROPE_THETA.powf((2 * i) as f32 / HEAD_DIM as f32))
            .collect();
        let angles: Vec<f32> = (0..ROPE_POSITIONS)
            .flat_map(|t| freqs.iter().map(move |f| t as f32 * f))
            .collect();
        let table = |f: fn(f32) -> f32| {
            let values: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
            Tensor::from_vec(values, (ROPE_POSITIONS, half), vb.device())?.to_dtype(vb.dtype())
        };
        Ok(Self {
            cos: table(f32::cos)?,
            sin: table(f32::sin)?,
        })
    }
}

/// `AudioEncoderV2` followed by the FSQ `project_down` layer.
pub struct S3TokenizerV2 {
    conv1: Conv1d,
    conv2: Conv1d,
    blocks: Vec<ResidualAttentionBlock>,
    project_down: Linear,
    rope: Rope,
    n_mels: usize,
}

impl S3TokenizerV2 {
    pub fn load(vb: VarBuilder, config: &ModelConfig) -> Result<Self> {
        let n_state = config.n_audio_state;
        if config.n_audio_head == 0 || n_state != config.n_audio_head * HEAD_DIM {
            candle_core::bail!(
                "s3tokenizer: n_audio_state {n_state} / n_audio_head {} must be {HEAD_DIM}, \
                 the width of the reference's RoPE table",
                config.n_audio_head
            );
        }
        let enc = vb.pp("encoder");
        let stem = Conv1dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let blocks = (0..config.n_audio_layer)
            .map(|i| {
                ResidualAttentionBlock::load(
                    enc.pp(format!("blocks.{i}")),
                    n_state,
                    config.n_audio_head,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            conv1: candle_nn::conv1d(config.n_mels, n_state, 3, stem, enc.pp("conv1"))?,
            conv2: candle_nn::conv1d(n_state, n_state, 3, stem, enc.pp("conv2"))?,
            blocks,
            project_down: candle_nn::linear(
                n_state,
                FSQ_DIGITS,
                vb.pp("quantizer._codebook.project_down"),
            )?,
            rope: Rope::new(&vb)?,
            n_mels: config.n_mels,
        })
    }

    /// The `project_down` output behind each token, (tokens, 8), before tanh and rounding. A mel
    /// (n_mels, T) longer than 3000 frames is cut into 3000-frame windows every 2600 frames and
    /// the rows are merged as `merge_tokenized_segments` merges tokens.
    pub fn project(&self, mel: &Tensor) -> Result<Tensor> {
        let (n_mels, frames) = mel.dims2()?;
        if n_mels != self.n_mels {
            candle_core::bail!(
                "s3tokenizer: mel has {n_mels} bands, the model {}",
                self.n_mels
            );
        }
        if frames == 0 {
            candle_core::bail!("s3tokenizer: the mel has no frames");
        }
        if frames <= WINDOW_FRAMES {
            return self.project_window(mel);
        }
        let starts: Vec<usize> = (0..frames).step_by(STRIDE_FRAMES).collect();
        let mut kept = Vec::with_capacity(starts.len());
        for (i, &start) in starts.iter().enumerate() {
            let len = WINDOW_FRAMES.min(frames - start);
            let rows = self.project_window(&mel.narrow(1, start, len)?)?;
            let n = rows.dim(0)?;
            // Python slices tokens[50:-50]; a last window of at most 50 tokens keeps nothing, so
            // the reference loses those tokens too.
            let first = if i == 0 { 0 } else { SEAM_TOKENS.min(n) };
            let end = if i + 1 == starts.len() {
                n
            } else {
                n.saturating_sub(SEAM_TOKENS)
            };
            if end > first {
                kept.push(rows.narrow(0, first, end - first)?);
            }
        }
        Tensor::cat(&kept, 0)
    }

    /// Speech tokens (0..6561) of one utterance's log-mel (n_mels, T): 25 per second of audio.
    pub fn quantize(&self, mel: &Tensor) -> Result<Vec<u32>> {
        fsq_encode(&self.project(mel)?)
    }

    /// One window of at most 3000 frames. The reference pads a short last window to 3000 frames
    /// and masks; masking the convolution inputs, the attention keys and the FSMN inputs makes
    /// that equal to running the window unpadded (tools/parity/cases/s3tokenizer.py checks it).
    fn project_window(&self, mel: &Tensor) -> Result<Tensor> {
        let x = mel.to_dtype(self.rope.cos.dtype())?.unsqueeze(0)?;
        let x = self.conv1.forward(&x)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?;
        // At most 750 positions per window, well inside the 2048-row RoPE table.
        let mut x = x.transpose(1, 2)?.contiguous()?;
        for block in &self.blocks {
            x = block.forward(&x, &self.rope)?;
        }
        self.project_down.forward(&x)?.squeeze(0)
    }
}

/// `FSQCodebook.encode` on [`S3TokenizerV2::project`]'s rows, (tokens, 8) -> tokens.
pub fn fsq_encode(projection: &Tensor) -> Result<Vec<u32>> {
    let (_, width) = projection.dims2()?;
    if width != FSQ_DIGITS {
        candle_core::bail!("s3tokenizer: FSQ needs {FSQ_DIGITS} values per token, got {width}");
    }
    let rows: Vec<Vec<f32>> = projection.to_dtype(DType::F32)?.to_vec2()?;
    rows.iter().map(|row| fsq_token(row)).collect()
}

/// `FSQCodebook.encode` for one row: tanh, scale, round, shift to {0, 1, 2}; digit i weighs 3^i.
fn fsq_token(row: &[f32]) -> Result<u32> {
    let mut token = 0;
    let mut weight = 1;
    for &value in row {
        if !value.is_finite() {
            candle_core::bail!("s3tokenizer: non-finite projection {value}");
        }
        token += fsq_digit(value.tanh() * FSQ_SCALE) * weight;
        weight *= FSQ_LEVELS;
    }
    Ok(token)
}

/// torch.round rounds half to even; candle's round goes half away from zero.
fn fsq_digit(squashed: f32) -> u32 {
    (squashed.round_ties_even() + 1.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsq_rounds_half_to_even() {
        assert_eq!(fsq_digit(0.5), 1);
        assert_eq!(fsq_digit(-0.5), 1);
        assert_eq!(fsq_digit(0.5001), 2);
        assert_eq!(fsq_digit(-0.5001), 0);
    }

    #[test]
    fn fsq_weighs_digits_by_powers_of_three() {
        // Digit 0 saturates high (2), digit 1 low (0), the rest sit at zero (1).
        let mut row = [0.0f32; FSQ_DIGITS];
        row[0] = 5.0;
        row[1] = -5.0;
        assert_eq!(fsq_token(&row).unwrap(), 2 + 9 + 27 + 81 + 243 + 729 + 2187);
        assert!(fsq_token(&[f32::NAN; FSQ_DIGITS]).is_err());
    }

    fn zero_model() -> S3TokenizerV2 {
        let config = ModelConfig {
            n_mels: 4,
            n_audio_state: 64,
            n_audio_head: 1,
            n_audio_layer: 1,
        };
        let vb = VarBuilder::zeros(DType::F32, &candle_core::Device::Cpu);
        S3TokenizerV2::load(vb, &config).unwrap()
    }

    fn zero_mel(frames: usize) -> Tensor {
        Tensor::zeros((4, frames), DType::F32, &candle_core::Device::Cpu).unwrap()
    }

    #[test]
    fn refuses_an_empty_mel_and_a_wrong_band_count() {
        let model = zero_model();
        assert!(model.quantize(&zero_mel(0)).is_err());
        let wrong = Tensor::zeros((5, 8), DType::F32, &candle_core::Device::Cpu).unwrap();
        assert!(model.quantize(&wrong).is_err());
        assert_eq!(model.quantize(&zero_mel(1)).unwrap(), vec![3280]);
    }

    #[test]
    fn merges_windows_as_the_reference_slices_them() {
        let model = zero_model();
        // One window: ceil(ceil(T / 2) / 2) tokens.
        assert_eq!(model.quantize(&zero_mel(3000)).unwrap().len(), 750);
        // Windows of 3000 and 401 frames: 750 - 50 + 101 - 50.
        assert_eq!(model.quantize(&zero_mel(3001)).unwrap().len(), 751);
        // 3000, 2601 and 1 frames: 700 + (651 - 100) + 0, the 1-token tail is lost.
        assert_eq!(model.quantize(&zero_mel(5201)).unwrap().len(), 1251);
    }
}
