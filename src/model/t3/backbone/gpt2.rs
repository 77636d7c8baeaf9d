//! The GPT-2 model of transformers' modeling_gpt2.py (5.2) as Chatterbox-Turbo drives it: input
//! embeddings plus learned absolute positions (`wpe`, counting on from the cache), pre-norm
//! blocks with tanh-GELU MLPs, final LayerNorm. GPT-2's Conv1D weights ([in, out]) are
//! transposed at load, so every linear layer streams its weight the same way.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::cpu_ops::gelu_new;
use super::kv_cache::KvCache;
use super::linear_rows::RowsLinear;
use super::{attend, split_qkv};
use crate::model::t3::llama_configs::Gpt2Config;

struct Block {
    ln_1: LayerNorm,
    c_attn: RowsLinear,
    attn_c_proj: RowsLinear,
    ln_2: LayerNorm,
    c_fc: RowsLinear,
    mlp_c_proj: RowsLinear,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &Gpt2Config) -> Result<Self> {
        let d = cfg.n_embd;
        let eps = cfg.layer_norm_epsilon;
        Ok(Self {
            ln_1: candle_nn::layer_norm(d, eps, vb.pp("ln_1"))?,
            c_attn: RowsLinear::load_conv1d(vb.pp("attn.c_attn"), d, 3 * d)?,
            attn_c_proj: RowsLinear::load_conv1d(vb.pp("attn.c_proj"), d, d)?,
            ln_2: candle_nn::layer_norm(d, eps, vb.pp("ln_2"))?,
            c_fc: RowsLinear::load_conv1d(vb.pp("mlp.c_fc"), d, 4 * d)?,
            mlp_c_proj: RowsLinear::load_conv1d(vb.pp("mlp.c_proj"), 4 * d, d)?,
        })
    }
}

pub struct Gpt2 {
    wpe: Tensor,
    h: Vec<Block>,
    ln_f: LayerNorm,
    cfg: Gpt2Config,
}

impl Gpt2 {
    /// Every projection, for [`super::Backbone::store_linears_as`].
    pub fn linears_mut(&mut self) -> impl Iterator<Item = &mut RowsLinear> {
        self.h.iter_mut().flat_map(|block| {
            [
                &mut block.c_attn,
                &mut block.attn_c_proj,
                &mut block.c_fc,
                &mut block.mlp_c_proj,
            ]
        })
    }

    /// `vb` at the model's prefix (`tfmr`).
    pub fn load(vb: VarBuilder, cfg: &Gpt2Config) -> Result<Self> {
        if cfg.n_head == 0 || !cfg.n_embd.is_multiple_of(cfg.n_head) {
            candle_core::bail!(
                "GPT-2: {} channels do not split into {} heads",
                cfg.n_embd,
                cfg.n_head
            );
        }
        let h = (0..cfg.n_layer)
            .map(|i| Block::load(vb.pp(format!("h.{i}")), cfg))
            .collect::<Result<_>>()?;
        Ok(Self {
            wpe: vb.get((cfg.n_positions, cfg.n_embd), "wpe.weight")?,
            h,
            ln_f: candle_nn::layer_norm(cfg.n_embd, cfg.layer_norm_epsilon, vb.pp("ln_f"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn max_positions(&self) -> usize {
        self.cfg.n_positions
    }

    pub fn cache_shape(&self) -> (usize, usize, usize) {
        (
            self.cfg.n_layer,
            self.cfg.n_head,
            self.cfg.n_embd / self.cfg.n_head,
        )
    }

    fn attention(
        &self,
        block: &Block,
        x: &Tensor,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let (q, k, v) = split_qkv(&block.c_attn.forward(x)?, self.cfg.n_head)?;
        let (k, v) = cache.append(layer, &k, &v)?;
        let (context, _) = attend(&q, &k, &v)?;
        block.attn_c_proj.forward(&context)
    }

    pub fn forward(&self, embeds: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let new = embeds.dim(1)?;
        cache.check_room(new)?;
        let offset = cache.len();
        if offset + new > self.cfg.n_positions {
            candle_core::bail!(
                "position {} is beyond GPT-2's {} positions",
                offset + new - 1,
                self.cfg.n_positions
            );
        }
        let positions = self.wpe.narrow(0, offset, new)?;
        let mut hidden = embeds.broadcast_add(&positions)?;
        for (i, block) in self.h.iter().enumerate() {
            let attn = self.attention(block, &block.ln_1.forward(&hidden)?, cache, i)?;
            hidden = (hidden + attn)?;
            let ff = block.c_fc.forward(&block.ln_2.forward(&hidden)?)?;
            let ff = gelu_new(&ff)?;
            hidden = (&hidden + block.mlp_c_proj.forward(&ff)?)?;
        }
        cache.commit(new);
        self.ln_f.forward(&hidden)
    }
}
