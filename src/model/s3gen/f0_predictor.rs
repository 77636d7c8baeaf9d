//! Port of chatterbox/models/s3gen/f0_predictor.py: ConvRNNF0Predictor, which (despite its
//! name, no RNN) maps the vocoder's mel to an f0 in Hz per frame: five weight-normed k3 convs
//! with ELU, a linear head, and |·|.

use candle_core::{Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use super::hifigan::{Activation, WeightNormConv1d};

/// `cond_channels` as S3Gen builds the predictor (the reference's default).
const LAYERS: usize = 5;
const KERNEL: usize = 3;

pub struct ConvRNNF0Predictor {
    condnet: Vec<WeightNormConv1d>,
    classifier: Linear,
}

impl ConvRNNF0Predictor {
    pub fn load(in_channels: usize, cond_channels: usize, vb: VarBuilder) -> Result<Self> {
        // `condnet` is an nn.Sequential with the ELUs at the odd indices.
        let condnet = (0..LAYERS)
            .map(|i| {
                let c_in = if i == 0 { in_channels } else { cond_channels };
                WeightNormConv1d::load(
                    (c_in, cond_channels, KERNEL),
                    1,
                    KERNEL / 2,
                    vb.pp(format!("condnet.{}", 2 * i)),
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            condnet,
            classifier: candle_nn::linear(cond_channels, 1, vb.pp("classifier"))?,
        })
    }

    /// (B, in_channels, T) → f0 (B, T).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for conv in &self.condnet {
            x = conv.forward(&x, Activation::Identity, None)?.elu(1.0)?;
        }
        self.classifier
            .forward(&x.transpose(1, 2)?)?
            .squeeze(2)?
            .abs()
    }
}
