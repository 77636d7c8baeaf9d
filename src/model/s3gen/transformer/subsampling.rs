//! Port of chatterbox/models/s3gen/transformer/subsampling.py: `LinearNoSubsampling` (input
//! layer `linear`), the encoder's `embed` and `up_embed`. Dropout is inference's identity.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::embedding::EspnetRelPositionalEncoding;

/// Linear → LayerNorm (eps 1e-5) → positional encoding; keys `out.0.*` and `out.1.*`.
pub struct LinearNoSubsampling {
    linear: Linear,
    norm: LayerNorm,
    pos_enc: EspnetRelPositionalEncoding,
}

impl LinearNoSubsampling {
    pub fn load(
        vb: VarBuilder,
        idim: usize,
        odim: usize,
        pos_enc: EspnetRelPositionalEncoding,
    ) -> Result<Self> {
        Ok(Self {
            linear: candle_nn::linear(idim, odim, vb.pp("out.0"))?,
            norm: candle_nn::layer_norm(odim, 1e-5, vb.pp("out.1"))?,
            pos_enc,
        })
    }

    /// (B, T, idim) -> ((B, T, odim) scaled by √odim, (1, 2T − 1, odim) relative encodings).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.norm.forward(&self.linear.forward(x)?)?;
        self.pos_enc.forward(&x)
    }
}
