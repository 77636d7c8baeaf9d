//! Port of chatterbox/models/s3gen/decoder.py: `ConditionalDecoder`, the causal 1-D U-Net that
//! S3Gen's flow matching (flow_matching.rs) uses as its velocity estimator, with
//! `CausalConv1d`, `CausalBlock1D`, `CausalResnetBlock1D` and Turbo's meanflow
//! `time_embed_mixer` (utils/intmeanflow.py). Weight keys are those under
//! `flow.decoder.estimator.` in s3gen.safetensors.
//!
//! **Layout.** The reference keeps (B, C, T) and transposes around every transformer stack;
//! here the whole U-Net runs time-major, (B, T, C): the transformer blocks, the channel
//! LayerNorm and the 1×1 convolutions are then row-wise ops on one layout, and a causal
//! convolution is one matrix product over the three shifted copies of its input. Only the
//! estimator's input and output are transposed.
//!
//! **Masks.** S3Gen runs one utterance per batch row, so every mask the estimator sees is all
//! ones (the CFG batch repeats the same mask): the `* mask` products are identities and the
//! attention bias `mask_to_bias` builds is zero everywhere. Neither exists here.
//!
//! **Shape.** S3Gen's `channels=[256]` gives the U-Net a single level, where the "downsample"
//! and "upsample" are causal convolutions that keep the length; the strided `Downsample1D` and
//! transposed-conv `Upsample1D` of deeper configurations are never built.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::estimator_ops::{Dense, Kernels, Norm, Then, mish};
use super::matcha::decoder::{TimestepEmbedding, sinusoidal_pos_emb};
use super::matcha::transformer::BasicTransformerBlock;

/// Every causal convolution of the estimator has kernel size 3 (left padding 2).
const CAUSAL_KERNEL: usize = 3;
/// The estimator's input channels are [x, mu, spks, cond], each `out_channels` wide.
const INPUT_PARTS: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionalDecoderConfig {
    /// [x, mu, spks, cond] stacked: 4 × `out_channels`.
    pub in_channels: usize,
    /// Mel bands.
    pub out_channels: usize,
    /// The width of the U-Net's single level (the reference's `channels=[256]`).
    pub channels: usize,
    pub attention_head_dim: usize,
    /// Transformer blocks after each residual block.
    pub n_blocks: usize,
    pub num_mid_blocks: usize,
    pub num_heads: usize,
    /// Turbo's estimator embeds the end time r too and mixes both embeddings
    /// (`time_embed_mixer`); its flow solves with `basic_euler`.
    pub meanflow: bool,
}

impl ConditionalDecoderConfig {
    /// The estimator of the original and multilingual S3Gen (`S3Token2Mel(meanflow=False)`).
    pub fn s3gen() -> Self {
        Self {
            in_channels: 320,
            out_channels: 80,
            channels: 256,
            attention_head_dim: 64,
            n_blocks: 4,
            num_mid_blocks: 12,
            num_heads: 8,
            meanflow: false,
        }
    }

    /// Turbo's estimator (`S3Token2Mel(meanflow=True)`), s3gen_meanflow.safetensors.
    pub fn s3gen_meanflow() -> Self {
        Self {
            meanflow: true,
            ..Self::s3gen()
        }
    }

    /// `time_embed_dim = channels[0] * 4`.
    fn time_embed_dim(&self) -> usize {
        4 * self.channels
    }
}

/// `CausalBlock1D`: `CausalConv1d` (kernel 3), LayerNorm over channels, Mish.
struct CausalBlock1D {
    conv: Dense,
    norm: Norm,
}

impl CausalBlock1D {
    fn load(vb: VarBuilder, dim: usize, dim_out: usize, kernels: Kernels) -> Result<Self> {
        Ok(Self {
            conv: Dense::causal_conv(vb.pp("block.0"), dim, dim_out, CAUSAL_KERNEL, kernels)?,
            norm: Norm::load(vb.pp("block.2"), dim_out, kernels)?,
        })
    }

    /// The block's output, plus `add` (one row of channels) if given.
    fn forward(&self, x: &Tensor, add: Option<&Tensor>) -> Result<Tensor> {
        self.norm
            .forward_mish(&self.conv.forward(x, Then::Nothing)?, add)
    }
}

/// `CausalResnetBlock1D`, whose forward is `ResnetBlock1D`'s (matcha/decoder.py):
/// block2(block1(x) + mlp(t)) + res_conv(x).
struct CausalResnetBlock1D {
    /// `mlp` = (Mish, Linear); the Mish of the time embedding is shared by all blocks.
    mlp: Linear,
    block1: CausalBlock1D,
    block2: CausalBlock1D,
    /// A pointwise `Conv1d`.
    res_conv: Dense,
}

impl CausalResnetBlock1D {
    fn load(
        vb: VarBuilder,
        dim: usize,
        dim_out: usize,
        time_emb_dim: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        Ok(Self {
            mlp: candle_nn::linear(time_emb_dim, dim_out, vb.pp("mlp.1"))?,
            block1: CausalBlock1D::load(vb.pp("block1"), dim, dim_out, kernels)?,
            block2: CausalBlock1D::load(vb.pp("block2"), dim_out, dim_out, kernels)?,
            res_conv: Dense::causal_conv(vb.pp("res_conv"), dim, dim_out, 1, kernels)?,
        })
    }

    /// x (B, T, dim) and Mish(time embedding) (1, time_emb_dim) -> (B, T, dim_out).
    fn forward(&self, x: &Tensor, mish_time: &Tensor) -> Result<Tensor> {
        let time = self.mlp.forward(mish_time)?;
        let h = self.block1.forward(x, Some(&time))?;
        let h = self.block2.forward(&h, None)?;
        self.res_conv.forward(x, Then::Add(&h))
    }
}

/// A residual block followed by its transformer stack: one entry of `down_blocks`,
/// `mid_blocks` or `up_blocks` without the length-keeping convolution.
struct Stage {
    resnet: CausalResnetBlock1D,
    transformer_blocks: Vec<BasicTransformerBlock>,
}

impl Stage {
    fn load(
        vb: VarBuilder,
        config: &ConditionalDecoderConfig,
        dim: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        let width = config.channels;
        let time_dim = config.time_embed_dim();
        let blocks = vb.pp("1");
        Ok(Self {
            resnet: CausalResnetBlock1D::load(vb.pp("0"), dim, width, time_dim, kernels)?,
            transformer_blocks: (0..config.n_blocks)
                .map(|i| {
                    BasicTransformerBlock::load(
                        blocks.pp(i),
                        width,
                        config.num_heads,
                        config.attention_head_dim,
                        kernels,
                    )
                })
                .collect::<Result<_>>()?,
        })
    }

    fn forward(&self, x: &Tensor, mish_time: &Tensor) -> Result<Tensor> {
        let mut x = self.resnet.forward(x, mish_time)?;
        for block in &self.transformer_blocks {
            x = block.forward(&x)?;
        }
        Ok(x)
    }
}

/// The estimator: predicts the flow's velocity for a state x given the conditioning and time.
pub struct ConditionalDecoder {
    time_mlp: TimestepEmbedding,
    time_embed_mixer: Option<Linear>,
    down: Stage,
    down_conv: Dense,
    mid: Vec<Stage>,
    up: Stage,
    up_conv: Dense,
    final_block: CausalBlock1D,
    /// A pointwise `Conv1d`.
    final_proj: Dense,
    dtype: DType,
    config: ConditionalDecoderConfig,
}

impl ConditionalDecoder {
    /// `vb` at the estimator (`flow.decoder.estimator` in the checkpoint), on the fastest
    /// kernels for its device and dtype.
    pub fn load(vb: VarBuilder, config: &ConditionalDecoderConfig) -> Result<Self> {
        let kernels = Kernels::select(vb.device(), vb.dtype());
        Self::load_with_kernels(vb, config, kernels)
    }

    /// [`Self::load`] on the given kernels.
    pub fn load_with_kernels(
        vb: VarBuilder,
        config: &ConditionalDecoderConfig,
        kernels: Kernels,
    ) -> Result<Self> {
        let c = config;
        if c.in_channels != INPUT_PARTS * c.out_channels {
            candle_core::bail!(
                "ConditionalDecoder: in_channels {} must be 4 × out_channels {} ([x, mu, spks, cond])",
                c.in_channels,
                c.out_channels
            );
        }
        let time_dim = c.time_embed_dim();
        let width = c.channels;
        let time_embed_mixer = if c.meanflow {
            Some(candle_nn::linear_no_bias(
                2 * time_dim,
                time_dim,
                vb.pp("time_embed_mixer"),
            )?)
        } else {
            None
        };
        let down = vb.pp("down_blocks.0");
        let up = vb.pp("up_blocks.0");
        let conv = |vb: VarBuilder| Dense::causal_conv(vb, width, width, CAUSAL_KERNEL, kernels);
        Ok(Self {
            time_mlp: TimestepEmbedding::load(vb.pp("time_mlp"), c.in_channels, time_dim)?,
            time_embed_mixer,
            down: Stage::load(down.clone(), c, c.in_channels, kernels)?,
            down_conv: conv(down.pp("2"))?,
            mid: (0..c.num_mid_blocks)
                .map(|i| Stage::load(vb.pp("mid_blocks").pp(i), c, width, kernels))
                .collect::<Result<_>>()?,
            up: Stage::load(up.clone(), c, 2 * width, kernels)?,
            up_conv: conv(up.pp("2"))?,
            final_block: CausalBlock1D::load(vb.pp("final_block"), width, width, kernels)?,
            final_proj: Dense::causal_conv(vb.pp("final_proj"), width, c.out_channels, 1, kernels)?,
            dtype: vb.dtype(),
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &ConditionalDecoderConfig {
        &self.config
    }

    /// The time conditioning of estimator calls at times `t`, one row each: `time_mlp` of the
    /// sinusoidal embedding, or for meanflow `time_embed_mixer([emb(t), emb(r)])` with `r` the
    /// end times (required then, refused otherwise). Returns (n, 4·channels), in the weights'
    /// dtype on `device`.
    pub fn time_embeddings(&self, t: &[f32], r: Option<&[f32]>, device: &Device) -> Result<Tensor> {
        let embed = |times: &[f32]| -> Result<Tensor> {
            let rows = sinusoidal_pos_emb(times, self.config.in_channels)?;
            let sinusoid = Tensor::from_vec(rows, (times.len(), self.config.in_channels), device)?;
            self.time_mlp.forward(&sinusoid.to_dtype(self.dtype())?)
        };
        match (&self.time_embed_mixer, r) {
            (None, None) => embed(t),
            (Some(mixer), Some(r)) if r.len() == t.len() => {
                mixer.forward(&Tensor::cat(&[embed(t)?, embed(r)?], D::Minus1)?)
            }
            (Some(_), _) => candle_core::bail!("a meanflow estimator needs one end time r per t"),
            (None, Some(_)) => candle_core::bail!("only a meanflow estimator takes end times r"),
        }
    }

    /// Channels 80..320 of the estimator's input, time-major: [mu, spks repeated over time,
    /// cond] as (B, T, 240), from mu and cond (B, 80, T) and spks (B, 80). Fixed over a solve.
    pub fn conditioning(mu: &Tensor, spks: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (b, channels, t) = mu.dims3()?;
        let spks = spks
            .reshape((b, 1, channels))?
            .broadcast_as((b, t, channels))?;
        Tensor::cat(&[&mu.transpose(1, 2)?, &spks, &cond.transpose(1, 2)?], 2)
    }

    /// One estimator call: the velocity (B, 80, T) at state `x` (B, 80, T), with `conditioning`
    /// from [`Self::conditioning`] and `time` one row (1, 4·channels) of
    /// [`Self::time_embeddings`], shared by all batch rows.
    pub fn forward(&self, x: &Tensor, conditioning: &Tensor, time: &Tensor) -> Result<Tensor> {
        let input = Tensor::cat(&[&x.transpose(1, 2)?, conditioning], 2)?;
        let mish_time = mish(time)?;

        let skip = self.down.forward(&input, &mish_time)?;
        let mut x = self.down_conv.forward(&skip, Then::Nothing)?;
        for stage in &self.mid {
            x = stage.forward(&x, &mish_time)?;
        }
        let x = self
            .up
            .forward(&Tensor::cat(&[&x, &skip], 2)?, &mish_time)?;
        let x = self.up_conv.forward(&x, Then::Nothing)?;
        let x = self.final_block.forward(&x, None)?;
        self.final_proj
            .forward(&x, Then::Nothing)?
            .transpose(1, 2)?
            .contiguous()
    }

    /// The weights' dtype, in which the estimator computes.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}
