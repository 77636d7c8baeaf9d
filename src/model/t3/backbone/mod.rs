//! The transformers T3 runs on, fed with input embeddings: Llama for the English and
//! multilingual checkpoints, GPT-2 for Turbo. Each returns the final-norm hidden states, as
//! `hidden_states[-1]` of the Hugging Face models does, and keeps its own KV cache.

pub mod cpu_ops;
pub mod gpt2;
pub mod kv_cache;
pub mod linear_rows;
pub mod llama;

use candle_core::{DType, Device, Result, Tensor};

use self::kv_cache::KvCache;
use crate::model::t3::llama_configs::BackboneConfig;

pub enum Backbone {
    Llama(llama::Llama),
    Gpt2(gpt2::Gpt2),
}

impl Backbone {
    pub fn load(
        vb: candle_nn::VarBuilder,
        cfg: &BackboneConfig,
        max_positions: usize,
    ) -> Result<Self> {
        Ok(match cfg {
            BackboneConfig::Llama(c) => Self::Llama(llama::Llama::load(vb, c, max_positions)?),
            BackboneConfig::Gpt2(c) => Self::Gpt2(gpt2::Gpt2::load(vb, c)?),
        })
    }

    /// Keeps every projection's weight in `dtype` (see [`linear_rows::RowsLinear::store_as`]).
    pub fn store_linears_as(&mut self, dtype: candle_core::DType) -> Result<()> {
        match self {
            Self::Llama(m) => m.linears_mut().try_for_each(|l| l.store_as(dtype)),
            Self::Gpt2(m) => m.linears_mut().try_for_each(|l| l.store_as(dtype)),
        }
    }

    /// Positions a sequence may reach (the RoPE table, or GPT-2's `wpe`).
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Llama(m) => m.max_positions(),
            Self::Gpt2(m) => m.max_positions(),
        }
    }

    /// A cache for `batch` rows and up to `capacity` positions.
    pub fn new_cache(
        &self,
        batch: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<KvCache> {
        let (layers, heads, head_dim) = match self {
            Self::Llama(m) => m.cache_shape(),
            Self::Gpt2(m) => m.cache_shape(),
        };
        KvCache::new(layers, (batch, heads, head_dim), capacity, dtype, device)
    }

    /// Runs (B, T, dim) input embeddings after what `cache` holds. `watch` lists (layer, head)
    /// pairs whose attention probabilities of batch row 0 are returned, each (T, past + T).
    pub fn forward(
        &self,
        embeds: &Tensor,
        cache: &mut KvCache,
        watch: &[(usize, usize)],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        match self {
            Self::Llama(m) => m.forward(embeds, cache, watch),
            Self::Gpt2(m) => {
                if !watch.is_empty() {
                    candle_core::bail!("attention capture is only wired for the Llama backbone");
                }
                Ok((m.forward(embeds, cache)?, Vec::new()))
            }
        }
    }
}

/// (B, T, heads·Dh) to (B, heads, T, Dh), contiguous.
pub(crate) fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, c) = x.dims3()?;
    x.reshape((b, t, heads, c / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// The queries, keys and values of a stacked (B, T, 3·heads·Dh) projection, heads first.
fn split_qkv(qkv: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let inner = qkv.dim(2)? / 3;
    let part = |i: usize| split_heads(&qkv.narrow(2, i * inner, inner)?, heads);
    Ok((part(0)?, part(1)?, part(2)?))
}

/// Scaled (1/√Dh) softmax attention of (B, H, T, Dh) queries over cached keys and values
/// (B, H, L, Dh), with the causal mask a multi-position input needs. Returns
/// (context (B, T, H·Dh), probabilities).
fn attend(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, _, t, head_dim) = q.dims4()?;
    // Scaling the queries rather than the scores touches head_dim values per row, not L.
    let q = (q * (head_dim as f64).powf(-0.5))?;
    let (context, probs) = if t == 1 {
        cpu_ops::decode_attention(&q, k, v)?
    } else {
        let probs = cpu_ops::causal_softmax(&q.matmul(&k.t()?)?)?;
        (probs.matmul(v)?, probs)
    };
    Ok((context.transpose(1, 2)?.reshape((b, t, ()))?, probs))
}

/// The watched heads of batch row 0, in `watch` order, from one layer's probabilities.
fn capture(
    layer: usize,
    probs: &Tensor,
    watch: &[(usize, usize)],
    out: &mut Vec<(usize, Tensor)>,
) -> Result<()> {
    for (slot, &(watched_layer, head)) in watch.iter().enumerate() {
        if watched_layer == layer {
            out.push((slot, probs.get(0)?.get(head)?));
        }
    }
    Ok(())
}

/// Orders captured heads by their place in `watch`.
fn in_watch_order(
    mut captured: Vec<(usize, Tensor)>,
    watch: &[(usize, usize)],
) -> Result<Vec<Tensor>> {
    captured.sort_by_key(|(slot, _)| *slot);
    if captured.len() != watch.len() {
        candle_core::bail!("watched attention heads {watch:?} are outside the model");
    }
    Ok(captured.into_iter().map(|(_, t)| t).collect())
}
