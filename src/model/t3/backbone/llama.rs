//! The Llama decoder of transformers' modeling_llama.py (5.2) as T3 drives it: input embeddings
//! in, final RMSNorm out, llama3-scaled RoPE over one position counter shared by all rows, and
//! attention probabilities available for the multilingual alignment guard.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{RmsNorm, VarBuilder};

use super::kv_cache::KvCache;
use super::linear_rows::RowsLinear;
use super::{attend, capture, in_watch_order, split_qkv};
use crate::model::t3::llama_configs::{Llama3RopeScaling, LlamaConfig};

/// `_compute_llama3_parameters`, in f32 like the reference, so positions rotate identically.
fn inverse_frequencies(cfg: &LlamaConfig) -> Vec<f32> {
    let dim = cfg.head_dim;
    let base = cfg.rope_theta;
    let plain = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32));
    let Some(Llama3RopeScaling {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings,
    }) = cfg.rope_scaling.clone()
    else {
        return plain.collect();
    };
    let old_context = original_max_position_embeddings as f32;
    let low_freq_wavelen = old_context / low_freq_factor;
    let high_freq_wavelen = old_context / high_freq_factor;
    plain
        .map(|inv_freq| {
            let wavelen = 2.0 * std::f32::consts::PI / inv_freq;
            let scaled = if wavelen > low_freq_wavelen {
                inv_freq / factor
            } else {
                inv_freq
            };
            if wavelen < high_freq_wavelen || wavelen > low_freq_wavelen {
                return scaled;
            }
            let smooth =
                (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            (1.0 - smooth) * scaled / factor + smooth * scaled
        })
        .collect()
}

/// cos and sin of position × frequency for every position a sequence can reach, computed once
/// so that a decode step only narrows into them.
struct RotaryTable {
    cos: Tensor,
    sin: Tensor,
}

impl RotaryTable {
    fn new(cfg: &LlamaConfig, positions: usize, dtype: DType, device: &Device) -> Result<Self> {
        let inv_freq = inverse_frequencies(cfg);
        let angles: Vec<f32> = (0..positions)
            .flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f))
            .collect();
        let shape = (positions, inv_freq.len());
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        Ok(Self {
            cos: Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
        })
    }

    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let t = x.dim(2)?;
        if offset + t > self.cos.dim(0)? {
            candle_core::bail!(
                "position {} is beyond the {} positions T3 supports",
                offset + t - 1,
                self.cos.dim(0)?
            );
        }
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        candle_nn::rotary_emb::rope(x, &cos, &sin)
    }
}

struct Attention {
    /// q_proj, k_proj and v_proj stacked.
    qkv_proj: RowsLinear,
    o_proj: RowsLinear,
    heads: usize,
}

fn projection(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<RowsLinear> {
    RowsLinear::load(vb, in_dim, out_dim, false)
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        if cfg.num_key_value_heads != cfg.num_attention_heads {
            candle_core::bail!("grouped-query attention is not used by any T3 checkpoint");
        }
        let (d, inner) = (cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim);
        Ok(Self {
            qkv_proj: RowsLinear::stacked(vec![
                projection(vb.pp("q_proj"), d, inner)?,
                projection(vb.pp("k_proj"), d, inner)?,
                projection(vb.pp("v_proj"), d, inner)?,
            ])?,
            o_proj: projection(vb.pp("o_proj"), inner, d)?,
            heads: cfg.num_attention_heads,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &RotaryTable,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<(Tensor, Tensor)> {
        let offset = cache.len();
        let (q, k, v) = split_qkv(&self.qkv_proj.forward(x)?, self.heads)?;
        let (q, k) = (rope.apply(&q, offset)?, rope.apply(&k, offset)?);
        let (k, v) = cache.append(layer, &k, &v)?;
        let (context, probs) = attend(&q, &k, &v)?;
        Ok((self.o_proj.forward(&context)?, probs))
    }
}

struct Mlp {
    /// gate_proj and up_proj stacked.
    gate_up_proj: RowsLinear,
    down_proj: RowsLinear,
    intermediate: usize,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        let (d, ff) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_up_proj: RowsLinear::stacked(vec![
                projection(vb.pp("gate_proj"), d, ff)?,
                projection(vb.pp("up_proj"), d, ff)?,
            ])?,
            down_proj: projection(vb.pp("down_proj"), ff, d)?,
            intermediate: ff,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate_up = self.gate_up_proj.forward(x)?;
        let gate = candle_nn::ops::silu(&gate_up.narrow(2, 0, self.intermediate)?)?;
        let up = gate_up.narrow(2, self.intermediate, self.intermediate)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        let norm = |name| candle_nn::rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp(name));
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Attention::load(vb.pp("self_attn"), cfg)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: Mlp::load(vb.pp("mlp"), cfg)?,
        })
    }
}

pub struct Llama {
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rope: RotaryTable,
    cfg: LlamaConfig,
}

impl Llama {
    /// `vb` at the model's prefix (`tfmr`); `max_positions` bounds the RoPE table.
    pub fn load(vb: VarBuilder, cfg: &LlamaConfig, max_positions: usize) -> Result<Self> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(vb.pp(format!("layers.{i}")), cfg))
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            norm: candle_nn::rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            rope: RotaryTable::new(cfg, max_positions, vb.dtype(), vb.device())?,
            cfg: cfg.clone(),
        })
    }

    /// Every projection, for [`super::Backbone::store_linears_as`].
    pub fn linears_mut(&mut self) -> impl Iterator<Item = &mut RowsLinear> {
        self.layers.iter_mut().flat_map(|layer| {
            [
                &mut layer.self_attn.qkv_proj,
                &mut layer.self_attn.o_proj,
                &mut layer.mlp.gate_up_proj,
                &mut layer.mlp.down_proj,
            ]
        })
    }

    pub fn max_positions(&self) -> usize {
        self.rope.cos.dims()[0]
    }

    pub fn cache_shape(&self) -> (usize, usize, usize) {
        (
            self.cfg.num_hidden_layers,
            self.cfg.num_attention_heads,
            self.cfg.head_dim,
        )
    }

    pub fn forward(
        &self,
        embeds: &Tensor,
        cache: &mut KvCache,
        watch: &[(usize, usize)],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let new = embeds.dim(1)?;
        cache.check_room(new)?;
        let mut hidden = embeds.clone();
        let mut captured = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let normed = layer.input_layernorm.forward(&hidden)?;
            let (attn, probs) = layer.self_attn.forward(&normed, &self.rope, cache, i)?;
            capture(i, &probs, watch, &mut captured)?;
            hidden = (hidden + attn)?;
            let normed = layer.post_attention_layernorm.forward(&hidden)?;
            hidden = (&hidden + layer.mlp.forward(&normed)?)?;
        }
        cache.commit(new);
        Ok((
            self.norm.forward(&hidden)?,
            in_watch_order(captured, watch)?,
        ))
    }
}
