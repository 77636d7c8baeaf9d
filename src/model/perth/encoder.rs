//! Port of perth/perth_net/perth_net_implicit/model/encoder.py: the watermark encoder, a conv
//! stack over the lowest `subband` bins whose output, masked to the energetic frames, is added
//! to those bins as a residual.

use candle_core::{DType, Error, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{ConvStack, magmask};

pub struct Encoder {
    subband: usize,
    layers: ConvStack,
}

impl Encoder {
    pub fn load(hidden: usize, subband: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            subband,
            layers: ConvStack::load(subband, hidden, subband, vb.pp("layers"))?,
        })
    }

    /// `layers(sub_mag) * mask`: the residual (B, subband, T) the encoder adds to the lowest
    /// bins of (B, nfreq, T) f32 normalised magnitudes, and the mask (B, 1, T), both f32. Only
    /// the conv stack runs in the weights' dtype: the magnitudes are dB, and the bins above
    /// the sub-band must come back untouched.
    pub fn residual(&self, magspec: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, bins, _) = magspec.dims3()?;
        if bins < self.subband || magspec.dtype() != DType::F32 {
            return Err(Error::Msg(format!(
                "Perth encoder: expects f32 magnitudes with at least {} bins, got {:?} {:?}",
                self.subband,
                magspec.dtype(),
                magspec.dims()
            )));
        }
        let mask = magmask(magspec)?.unsqueeze(1)?;
        let sub_mag = magspec
            .narrow(1, 0, self.subband)?
            .to_dtype(self.layers.dtype())?;
        let residual = self
            .layers
            .forward(&sub_mag)?
            .to_dtype(DType::F32)?
            .broadcast_mul(&mask)?;
        Ok((residual, mask))
    }

    /// `forward`: (B, nfreq, T) f32 normalised magnitudes → the watermarked magnitudes
    /// (B, nfreq, T) and the mask (B, 1, T).
    pub fn forward(&self, magspec: &Tensor) -> Result<(Tensor, Tensor)> {
        let (residual, mask) = self.residual(magspec)?;
        let bins = magspec.dim(1)?;
        let watermarked = (magspec.narrow(1, 0, self.subband)? + residual)?;
        if bins == self.subband {
            return Ok((watermarked, mask));
        }
        let above = magspec.narrow(1, self.subband, bins - self.subband)?;
        Ok((Tensor::cat(&[watermarked, above], 1)?, mask))
    }
}
