//! The part of chatterbox/models/s3gen/matcha/transformer.py that S3Gen's estimator uses:
//! `BasicTransformerBlock` as `ConditionalDecoder` builds it (self-attention only, LayerNorm,
//! exact-erf GELU feed-forward, no ada-norm, dropout 0), with diffusers 0.29's `Attention`
//! (`AttnProcessor2_0`: q/k/v without bias, `to_out.0` with bias, scale 1/√head_dim),
//! `FeedForward` and `GELU`. Inputs are time-major, (B, T, dim).
//!
//! The estimator hands every block `mask_to_bias` of an all-ones mask, a bias of zeros, so the
//! attention adds none (../decoder.rs explains why the masks are all ones).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::model::s3gen::estimator_ops::{Dense, Kernels, Norm, Then, attention};

/// `FeedForward(mult=4)`.
const FF_MULT: usize = 4;

/// Self-attention. The three projections run as one product over the stacked weights, with the
/// query rows pre-scaled by 1/√head_dim (a power of two for S3Gen's 64, so the scores are
/// exactly those of scaling after the product).
struct Attention {
    qkv: Dense,
    to_out: Dense,
    heads: usize,
    head_dim: usize,
    kernels: Kernels,
}

impl Attention {
    fn load(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        head_dim: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        let scale = (head_dim as f64).powf(-0.5);
        let q = (vb.get((inner, dim), "to_q.weight")? * scale)?;
        let k = vb.get((inner, dim), "to_k.weight")?;
        let v = vb.get((inner, dim), "to_v.weight")?;
        Ok(Self {
            qkv: Dense::new(Tensor::cat(&[q, k, v], 0)?, None, 1, kernels)?,
            to_out: Dense::linear(vb.pp("to_out.0"), inner, dim, true, kernels)?,
            heads,
            head_dim,
            kernels,
        })
    }

    /// x + attn(norm(x)).
    fn forward_residual(&self, norm: &Norm, x: &Tensor) -> Result<Tensor> {
        let qkv = self.qkv.forward_normed(norm, x, Then::Nothing)?;
        let context = attention(&qkv, self.heads, self.head_dim, self.kernels)?;
        self.to_out.forward(&context, Then::Add(x))
    }
}

/// `FeedForward(dim, activation_fn="gelu")`: `GELU.proj` (dim → 4·dim), exact GELU, `net.2`.
struct FeedForward {
    proj: Dense,
    out: Dense,
}

impl FeedForward {
    fn load(vb: VarBuilder, dim: usize, kernels: Kernels) -> Result<Self> {
        let inner = FF_MULT * dim;
        Ok(Self {
            proj: Dense::linear(vb.pp("net.0.proj"), dim, inner, true, kernels)?,
            out: Dense::linear(vb.pp("net.2"), inner, dim, true, kernels)?,
        })
    }

    /// x + ff(norm(x)).
    fn forward_residual(&self, norm: &Norm, x: &Tensor) -> Result<Tensor> {
        let hidden = self.proj.forward_normed(norm, x, Then::Gelu)?;
        self.out.forward(&hidden, Then::Add(x))
    }
}

pub struct BasicTransformerBlock {
    norm1: Norm,
    attn1: Attention,
    norm3: Norm,
    ff: FeedForward,
}

impl BasicTransformerBlock {
    pub fn load(
        vb: VarBuilder,
        dim: usize,
        num_attention_heads: usize,
        attention_head_dim: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        Ok(Self {
            norm1: Norm::load(vb.pp("norm1"), dim, kernels)?,
            attn1: Attention::load(
                vb.pp("attn1"),
                dim,
                num_attention_heads,
                attention_head_dim,
                kernels,
            )?,
            norm3: Norm::load(vb.pp("norm3"), dim, kernels)?,
            ff: FeedForward::load(vb.pp("ff"), dim, kernels)?,
        })
    }

    /// (B, T, dim) -> (B, T, dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.attn1.forward_residual(&self.norm1, x)?;
        self.ff.forward_residual(&self.norm3, &x)
    }
}
