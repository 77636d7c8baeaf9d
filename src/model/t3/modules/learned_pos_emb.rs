//! Port of chatterbox/models/t3/modules/learned_pos_emb.py: absolute position tables that the
//! Llama variants add to text and speech embeddings, each segment counting from 0.

use candle_core::{Result, Tensor};
use candle_nn::{Embedding, VarBuilder};

pub struct LearnedPositionEmbeddings {
    emb: Embedding,
}

impl LearnedPositionEmbeddings {
    pub fn load(vb: VarBuilder, seq_len: usize, model_dim: usize) -> Result<Self> {
        Ok(Self {
            emb: candle_nn::embedding(seq_len, model_dim, vb.pp("emb"))?,
        })
    }

    /// How many positions the table has.
    pub fn positions(&self) -> usize {
        self.emb.embeddings().dim(0).unwrap_or(0)
    }

    /// Rows `start..start + len`, shape (len, dim): `forward` for a segment of `len` tokens when
    /// `start` is 0, `get_fixed_embedding` for one generated token otherwise.
    pub fn range(&self, start: usize, len: usize) -> Result<Tensor> {
        let table = self.emb.embeddings();
        let rows = table.dim(0)?;
        if start + len > rows {
            candle_core::bail!(
                "position {} is beyond the {rows} learned positions",
                start + len - 1
            );
        }
        table.narrow(0, start, len)
    }
}
