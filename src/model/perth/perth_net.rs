//! Port of perth/perth_net/perth_net_implicit/model/perth_net.py: `PerthNet`, the encoder and
//! decoder under the checkpoint's `encoder.*` and `decoder.*` keys. The training-time attacks
//! (`_attack`, the only randomness in the file) and `forward`'s training pass are not ported.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::config::PerthConfig;
use super::decoder::Decoder;
use super::encoder::Encoder;

/// Buffers of the reference's `AudioProcessor` (`ap.*`) that checkpoints carry: the Hann windows
/// and the unused TimeStretch phase advance. The port computes the windows itself.
pub const COMPUTED_BUFFERS: &[&str] = &[
    "ap.spectrogram.window",
    "ap.inv_spectrogram.window",
    "ap.stretch.phase_advance",
];

pub struct PerthNet {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

impl PerthNet {
    pub fn load(vb: VarBuilder, hp: &PerthConfig) -> Result<Self> {
        hp.validate()?;
        let subband = hp.subband();
        Ok(Self {
            encoder: Encoder::load(hp.hidden_size, subband, vb.pp("encoder"))?,
            decoder: Decoder::load(hp.hidden_size, subband, vb.pp("decoder"))?,
        })
    }
}
