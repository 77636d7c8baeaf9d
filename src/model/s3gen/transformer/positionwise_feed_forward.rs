//! Port of chatterbox/models/s3gen/transformer/positionwise_feed_forward.py:
//! `PositionwiseFeedForward` with the encoder's `swish` (SiLU) activation. Dropout is
//! inference's identity.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// w_2(SiLU(w_1(x))); keys `w_1.*`, `w_2.*`.
pub struct PositionwiseFeedForward {
    w_1: Linear,
    w_2: Linear,
}

impl PositionwiseFeedForward {
    pub fn load(vb: VarBuilder, idim: usize, hidden_units: usize) -> Result<Self> {
        Ok(Self {
            w_1: candle_nn::linear(idim, hidden_units, vb.pp("w_1"))?,
            w_2: candle_nn::linear(hidden_units, idim, vb.pp("w_2"))?,
        })
    }
}

impl Module for PositionwiseFeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.w_2.forward(&self.w_1.forward(xs)?.silu()?)
    }
}
