//! Port of chatterbox/models/s3gen/transformer/embedding.py: `EspnetRelPositionalEncoding`
//! (`rel_pos_espnet`), the only positional encoding S3Gen's encoder uses. Dropout is inference's
//! identity.

use candle_core::{DType, Device, Result, Tensor};

/// The table the reference builds at construction (`max_len` 5000); it rebuilds a larger one
/// for longer inputs, which [`EspnetRelPositionalEncoding::position_encoding`] mirrors.
pub const MAX_LEN: usize = 5000;

/// Sinusoids of relative positions max_len − 1 down to −(max_len − 1), one row each: channel 2i
/// holds sin(r·wᵢ), channel 2i + 1 cos(r·wᵢ), with wᵢ = exp(2i·(−ln 10⁴ / d_model)).
/// Cloning shares the table (the encoder's two embedding layers use one).
#[derive(Clone)]
pub struct EspnetRelPositionalEncoding {
    pe: Tensor,
    max_len: usize,
    xscale: f64,
}

impl EspnetRelPositionalEncoding {
    pub fn new(d_model: usize, dtype: DType, device: &Device) -> Result<Self> {
        if d_model == 0 || !d_model.is_multiple_of(2) {
            candle_core::bail!("rel_pos_espnet: d_model {d_model} must be even and positive");
        }
        Ok(Self {
            pe: table(d_model, MAX_LEN, dtype, device)?,
            max_len: MAX_LEN,
            xscale: (d_model as f64).sqrt(),
        })
    }

    /// `forward`: (x · √d_model, the (1, 2T − 1, d_model) encodings of relative positions
    /// T − 1 down to −(T − 1)) for x of shape (B, T, d_model).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let pos_emb = self.position_encoding(x.dim(1)?)?;
        Ok(((x * self.xscale)?, pos_emb))
    }

    /// The centred (1, 2·size − 1, d_model) slice; past `max_len` a table of exactly that size,
    /// as the reference's `extend_pe` builds (same values, row for row).
    pub fn position_encoding(&self, size: usize) -> Result<Tensor> {
        if size == 0 {
            candle_core::bail!("rel_pos_espnet: empty input");
        }
        let rows = if size <= self.max_len {
            self.pe.narrow(0, self.max_len - size, 2 * size - 1)?
        } else {
            let (_, d_model) = self.pe.dims2()?;
            table(d_model, size, self.pe.dtype(), self.pe.device())?
        };
        rows.unsqueeze(0)
    }
}

/// `extend_pe` for `positions` positions, as (2·positions − 1, d_model). The reference works in
/// f32: the frequencies, each angle r·wᵢ and the sinusoids are f32 values; the sinusoids are
/// evaluated in f64 and rounded, which is torch's f32 result to within an ulp. −r·wᵢ is exactly
/// the negated angle, so the negative half is the positive one with sin negated.
fn table(d_model: usize, positions: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let step = (-(10_000f64.ln()) / d_model as f64) as f32;
    let frequencies: Vec<f32> = (0..d_model / 2)
        .map(|i| f64::from((2 * i) as f32 * step).exp() as f32)
        .collect();
    let row = |r: isize| {
        let sign = if r < 0 { -1.0 } else { 1.0 };
        let p = r.unsigned_abs() as f32;
        frequencies.iter().flat_map(move |&w| {
            let angle = f64::from(p * w);
            [sign * angle.sin() as f32, angle.cos() as f32]
        })
    };
    let last = positions as isize - 1;
    let values: Vec<f32> = (-last..=last).rev().flat_map(row).collect();
    Tensor::from_vec(values, (2 * positions - 1, d_model), device)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_row_is_relative_position_zero_and_long_inputs_extend() {
        let pe = EspnetRelPositionalEncoding::new(4, DType::F32, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = pe
            .position_encoding(3)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[2], [0.0, 1.0, 0.0, 1.0]);
        // Row 0 is r = 2, row 4 is r = −2: sin flips sign, cos does not.
        assert_eq!(rows[0][0], 2f64.sin() as f32);
        assert_eq!(rows[4][0], -rows[0][0]);
        assert_eq!(rows[4][1], rows[0][1]);

        let long = pe.position_encoding(MAX_LEN + 2).unwrap();
        assert_eq!(long.dims(), [1, 2 * MAX_LEN + 3, 4]);
        let centre = long.squeeze(0).unwrap().narrow(0, MAX_LEN - 1, 5).unwrap();
        let centre: Vec<Vec<f32>> = centre.to_vec2().unwrap();
        assert_eq!(centre, rows);
    }
}
