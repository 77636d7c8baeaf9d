//! Port of chatterbox/models/s3gen/transformer/encoder_layer.py: `ConformerEncoderLayer` as the
//! flow encoder builds it: pre-norm (`normalize_before`), no macaron FFN, no convolution module,
//! so the layer is self-attention then feed-forward, each residual. Dropout is inference's
//! identity.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::attention::RelPositionMultiHeadedAttention;
use super::positionwise_feed_forward::PositionwiseFeedForward;

/// The layer norms' eps (the reference's 1e-12, not torch's default).
const NORM_EPS: f64 = 1e-12;

/// Keys `self_attn.*`, `feed_forward.*`, `norm_mha.*`, `norm_ff.*`.
pub struct ConformerEncoderLayer {
    self_attn: RelPositionMultiHeadedAttention,
    feed_forward: PositionwiseFeedForward,
    norm_mha: LayerNorm,
    norm_ff: LayerNorm,
}

impl ConformerEncoderLayer {
    pub fn load(vb: VarBuilder, size: usize, heads: usize, linear_units: usize) -> Result<Self> {
        Ok(Self {
            self_attn: RelPositionMultiHeadedAttention::load(vb.pp("self_attn"), heads, size)?,
            feed_forward: PositionwiseFeedForward::load(vb.pp("feed_forward"), size, linear_units)?,
            norm_mha: candle_nn::layer_norm(size, NORM_EPS, vb.pp("norm_mha"))?,
            norm_ff: candle_nn::layer_norm(size, NORM_EPS, vb.pp("norm_ff"))?,
        })
    }

    /// x (B, T, size), pos_emb (1, 2T − 1, size) -> (B, T, size).
    pub fn forward(&self, x: &Tensor, pos_emb: &Tensor) -> Result<Tensor> {
        let x = (x + self
            .self_attn
            .forward(&self.norm_mha.forward(x)?, pos_emb)?)?;
        &x + self.feed_forward.forward(&self.norm_ff.forward(&x)?)?
    }
}
