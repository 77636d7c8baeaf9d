//! Port of chatterbox/models/t3/modules/perceiver.py as inference uses it: one `AttentionBlock2`
//! applied twice, first as cross-attention from 32 learned queries onto the prompt embeddings,
//! then as self-attention over its own output. Relative position bias and dropout are unused.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::model::t3::backbone::split_heads;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceiverConfig {
    pub pre_attention_query_token: usize,
    pub pre_attention_query_size: usize,
    pub embedding_dim: usize,
    pub num_attn_heads: usize,
}

impl PerceiverConfig {
    /// `Perceiver()` with its defaults, which the checkpoints use.
    pub fn chatterbox() -> Self {
        Self {
            pre_attention_query_token: 32,
            pre_attention_query_size: 1024,
            embedding_dim: 1024,
            num_attn_heads: 4,
        }
    }
}

struct AttentionBlock2 {
    norm: LayerNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    proj_out: Linear,
    num_heads: usize,
}

impl AttentionBlock2 {
    fn load(vb: VarBuilder, channels: usize, num_heads: usize) -> Result<Self> {
        if num_heads == 0 || !channels.is_multiple_of(num_heads) {
            candle_core::bail!(
                "perceiver: {channels} channels do not split into {num_heads} heads"
            );
        }
        Ok(Self {
            // nn.LayerNorm's default eps.
            norm: candle_nn::layer_norm(channels, 1e-5, vb.pp("norm"))?,
            to_q: candle_nn::linear(channels, channels, vb.pp("to_q"))?,
            to_k: candle_nn::linear(channels, channels, vb.pp("to_k"))?,
            to_v: candle_nn::linear(channels, channels, vb.pp("to_v"))?,
            proj_out: candle_nn::linear(channels, channels, vb.pp("proj_out"))?,
            num_heads,
        })
    }

    /// `x1 + proj_out(attention(norm(x1) -> q, norm(x2) -> k, v))`; the one LayerNorm serves
    /// both inputs, as in the reference.
    fn forward(&self, x1: &Tensor, x2: &Tensor) -> Result<Tensor> {
        let x1_norm = self.norm.forward(x1)?;
        let x2_norm = self.norm.forward(x2)?;
        let q = split_heads(&self.to_q.forward(&x1_norm)?, self.num_heads)?;
        let k = split_heads(&self.to_k.forward(&x2_norm)?, self.num_heads)?;
        let v = split_heads(&self.to_v.forward(&x2_norm)?, self.num_heads)?;
        let head_dim = q.dim(D::Minus1)?;
        let scores = (q.matmul(&k.t()?)? * (head_dim as f64).powf(-0.5))?;
        let attn = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
        let (b, _, l, _) = attn.dims4()?;
        let h = attn.transpose(1, 2)?.reshape((b, l, ()))?;
        x1 + self.proj_out.forward(&h)?
    }
}

pub struct Perceiver {
    pre_attention_query: Tensor,
    attn: AttentionBlock2,
}

impl Perceiver {
    pub fn load(vb: VarBuilder, cfg: &PerceiverConfig) -> Result<Self> {
        Ok(Self {
            pre_attention_query: vb.get(
                (
                    1,
                    cfg.pre_attention_query_token,
                    cfg.pre_attention_query_size,
                ),
                "pre_attention_query",
            )?,
            attn: AttentionBlock2::load(vb.pp("attn"), cfg.embedding_dim, cfg.num_attn_heads)?,
        })
    }

    /// (B, P, dim) prompt embeddings to (B, 32, dim).
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let (b, _, _) = h.dims3()?;
        let query = self.pre_attention_query.repeat((b, 1, 1))?;
        let pre_att = self.attn.forward(&query, h)?;
        self.attn.forward(&pre_att, &pre_att)
    }
}
