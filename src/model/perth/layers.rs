//! Port of perth/perth_net/perth_net_implicit/model/__init__.py: the `Conv` block, the stack of
//! them both networks use, and `magmask`, the energy mask that picks the frames a watermark may
//! occupy.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};

/// `nn.LeakyReLU()`'s default slope.
const LEAKY_SLOPE: f64 = 0.01;
/// `magmask`'s `p`: a frame counts when its summed magnitude exceeds this share of the loudest.
const MASK_ENERGY_SHARE: f64 = 0.05;
/// Width of the stack's inner convolutions.
const INNER_KERNEL: usize = 7;
const INNER_LAYERS: usize = 5;

/// `Conv`: a same-padded `Conv1d` (weights under `conv`), then LeakyReLU unless `act` is false.
struct Conv {
    conv: Conv1d,
    act: bool,
}

impl Conv {
    fn load(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        act: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let config = Conv1dConfig {
            padding: (kernel - 1) / 2,
            ..Default::default()
        };
        let conv = candle_nn::conv1d(in_channels, out_channels, kernel, config, vb.pp("conv"))?;
        Ok(Self { conv, act })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        if self.act {
            candle_nn::ops::leaky_relu(&y, LEAKY_SLOPE)
        } else {
            Ok(y)
        }
    }
}

/// The `nn.Sequential` of the encoder's `layers` and the decoder's `_layers`:
/// Conv(in→hidden, k 1), 5 × Conv(hidden→hidden, k 7), Conv(hidden→out, k 1, no activation).
/// It runs in the weights' dtype and takes and returns that dtype.
pub struct ConvStack {
    layers: Vec<Conv>,
    dtype: DType,
}

impl ConvStack {
    pub fn load(
        in_channels: usize,
        hidden: usize,
        out_channels: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(INNER_LAYERS + 2);
        layers.push(Conv::load(in_channels, hidden, 1, true, vb.pp(0))?);
        for i in 1..=INNER_LAYERS {
            layers.push(Conv::load(hidden, hidden, INNER_KERNEL, true, vb.pp(i))?);
        }
        layers.push(Conv::load(
            hidden,
            out_channels,
            1,
            false,
            vb.pp(INNER_LAYERS + 1),
        )?);
        Ok(Self {
            layers,
            dtype: vb.dtype(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

impl Module for ConvStack {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layers
            .iter()
            .try_fold(x.clone(), |x, layer| layer.forward(&x))
    }
}

/// `magmask`: (B, nfreq, T) normalised magnitudes → (B, T), 1.0 where a frame's summed
/// magnitude exceeds 5 % of the batch item's largest frame sum, else 0.0.
pub fn magmask(magspec: &Tensor) -> Result<Tensor> {
    let sums = magspec.sum(1)?;
    let threshold = (sums.max_keepdim(1)? * MASK_ENERGY_SHARE)?;
    sums.broadcast_gt(&threshold)?.to_dtype(magspec.dtype())
}
