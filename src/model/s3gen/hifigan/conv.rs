//! The vocoder's weight-normed convolutions and Snake. torch's `weight_norm` parametrization
//! stores `parametrizations.weight.original0` (g, one magnitude per slice of dim 0) and
//! `original1` (v); the weight is folded once at load as w = g·v/‖v‖, the norm taken over all
//! dims but 0, as `torch._weight_norm` computes it.
//!
//! On the CPU in f32 the layers run the kernels of `cpu_conv` (weights packed at load, the
//! pre-activation and residual fused into the convolution); elsewhere they run candle's ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;

use super::cpu_conv::{
    HostConvolution, PackedConv, PackedStridedConv, PackedTransposedConv, PreActivation,
};

/// What a layer applies to its input before convolving it.
#[derive(Clone, Copy)]
pub(crate) enum Activation<'a> {
    Identity,
    LeakyRelu(f32),
    Snake(&'a Snake),
}

impl Activation<'_> {
    fn host(&self) -> PreActivation<'_> {
        match self {
            Activation::Identity => PreActivation::Identity,
            Activation::LeakyRelu(slope) => PreActivation::LeakyRelu(*slope),
            Activation::Snake(snake) => PreActivation::Snake {
                alpha: &snake.host_alpha,
                inv_alpha: &snake.host_inv_alpha,
            },
        }
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x.clone()),
            Activation::LeakyRelu(slope) => candle_nn::ops::leaky_relu(x, f64::from(*slope)),
            Activation::Snake(snake) => snake.forward(x),
        }
    }
}

/// hifigan.py's `Snake` with linear (not log-scale) α: x + sin²(αx)/(α + 1e-9), per channel.
pub(crate) struct Snake {
    alpha: Tensor,
    inv_alpha: Tensor,
    host_alpha: Vec<f32>,
    host_inv_alpha: Vec<f32>,
}

impl Snake {
    const NO_DIV_BY_ZERO: f32 = 1e-9;

    pub(crate) fn load(channels: usize, vb: VarBuilder) -> Result<Self> {
        let alpha = vb.get_with_hints_dtype(channels, "alpha", Default::default(), DType::F32)?;
        let host_alpha: Vec<f32> = alpha.to_vec1()?;
        // torch divides in the parameter's dtype; f32 here, as the checkpoint stores it.
        let host_inv_alpha: Vec<f32> = host_alpha
            .iter()
            .map(|a| 1.0 / (a + Self::NO_DIV_BY_ZERO))
            .collect();
        let column = |values: &[f32]| {
            Tensor::from_slice(values, (1, channels, 1), vb.device())?.to_dtype(vb.dtype())
        };
        Ok(Self {
            alpha: column(&host_alpha)?,
            inv_alpha: column(&host_inv_alpha)?,
            host_alpha,
            host_inv_alpha,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let sin = x.broadcast_mul(&self.alpha)?.sin()?;
        x + sin.sqr()?.broadcast_mul(&self.inv_alpha)?
    }
}

/// w = g·v/‖v‖ over all dims but 0, computed in f32 (the norm in f64) and returned in the
/// builder's dtype.
fn weight_norm(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    let vb = vb.pp("parametrizations.weight");
    let g =
        vb.get_with_hints_dtype((shape.0, 1, 1), "original0", Default::default(), DType::F32)?;
    let v = vb.get_with_hints_dtype(shape, "original1", Default::default(), DType::F32)?;
    let norm = v
        .to_dtype(DType::F64)?
        .sqr()?
        .sum_keepdim((1, 2))?
        .sqrt()?
        .to_dtype(DType::F32)?;
    v.broadcast_mul(&(g / norm)?)?.to_dtype(vb.dtype())
}

fn runs_on_host(vb: &VarBuilder) -> bool {
    vb.device().is_cpu() && vb.dtype() == DType::F32
}

fn host_values(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

enum ConvWeights<P> {
    Host(P),
    Device { weight: Tensor, bias: Tensor },
}

/// `weight_norm(Conv1d(c_in, c_out, kernel, stride 1, dilation, padding))` with a bias.
pub(crate) struct WeightNormConv1d {
    weights: ConvWeights<PackedConv>,
    dilation: usize,
    padding: usize,
}

impl WeightNormConv1d {
    pub(crate) fn load(
        (c_in, c_out, kernel): (usize, usize, usize),
        dilation: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = weight_norm(&vb, (c_out, c_in, kernel))?;
        let bias = vb.get(c_out, "bias")?;
        let weights = if runs_on_host(&vb) {
            ConvWeights::Host(PackedConv::new(
                &host_values(&weight)?,
                host_values(&bias)?,
                (c_out, c_in, kernel),
                dilation,
                (padding, padding),
            ))
        } else {
            ConvWeights::Device {
                weight,
                bias: bias.reshape((1, c_out, 1))?,
            }
        };
        Ok(Self {
            weights,
            dilation,
            padding,
        })
    }

    /// conv(activation(x)) (+ residual): x (B, c_in, L) → (B, c_out, L′); the residual, when
    /// given, has the output's shape.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        activation: Activation,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        match &self.weights {
            ConvWeights::Host(conv) => {
                let op = HostConv {
                    conv,
                    activation: activation.host(),
                };
                match residual {
                    Some(r) => x.contiguous()?.apply_op2_no_bwd(&r.contiguous()?, &op),
                    None => x.contiguous()?.apply_op1_no_bwd(&op),
                }
            }
            ConvWeights::Device { weight, bias } => {
                let y = activation
                    .apply(x)?
                    .conv1d(weight, self.padding, 1, self.dilation, 1)?
                    .broadcast_add(bias)?;
                match residual {
                    Some(r) => y + r,
                    None => Ok(y),
                }
            }
        }
    }
}

/// `weight_norm(ConvTranspose1d(c_in, c_out, kernel, stride, padding))` with a bias; g is
/// [c_in, 1, 1] since dim 0 of a transposed conv's weight is its input.
pub(crate) struct WeightNormConvTranspose1d {
    weights: ConvWeights<PackedTransposedConv>,
    stride: usize,
    padding: usize,
}

impl WeightNormConvTranspose1d {
    pub(crate) fn load(
        (c_in, c_out, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = weight_norm(&vb, (c_in, c_out, kernel))?;
        let bias = vb.get(c_out, "bias")?;
        let weights = if runs_on_host(&vb) {
            ConvWeights::Host(PackedTransposedConv::new(
                &host_values(&weight)?,
                &host_values(&bias)?,
                (c_in, c_out, kernel),
                stride,
                padding,
            ))
        } else {
            ConvWeights::Device {
                weight,
                bias: bias.reshape((1, c_out, 1))?,
            }
        };
        Ok(Self {
            weights,
            stride,
            padding,
        })
    }

    /// convT(activation(x)): x (B, c_in, L) → (B, c_out, (L − 1)·stride + kernel − 2·padding).
    pub(crate) fn forward(&self, x: &Tensor, activation: Activation) -> Result<Tensor> {
        match &self.weights {
            ConvWeights::Host(conv) => x.contiguous()?.apply_op1_no_bwd(&HostConv {
                conv,
                activation: activation.host(),
            }),
            ConvWeights::Device { weight, bias } => {
                // Candle 0.11.1's CPU transposed convolution mixes up batch items beyond the
                // first (its GEMM folds the batch into rows of a transposed operand), so the
                // items go one at a time. Candle pads transposed convolutions on some backends
                // only; cropping the unpadded result is the same everywhere.
                let x = activation.apply(x)?;
                let items = (0..x.dim(0)?)
                    .map(|b| {
                        let full =
                            x.narrow(0, b, 1)?
                                .conv_transpose1d(weight, 0, 0, self.stride, 1, 1)?;
                        let len = full.dim(2)?.saturating_sub(2 * self.padding);
                        full.narrow(2, self.padding, len)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&items, 0)?.broadcast_add(bias)
            }
        }
    }
}

/// A plain `Conv1d(c_in, c_out, kernel, stride, padding)` with a bias (the source
/// downsamplers): candle's CPU im2col made these small convolutions cost ~10 % of the vocoder.
pub(crate) struct StridedConv1d {
    weights: ConvWeights<PackedStridedConv>,
    stride: usize,
    padding: usize,
}

impl StridedConv1d {
    pub(crate) fn load(
        (c_in, c_out, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get((c_out, c_in, kernel), "weight")?;
        let bias = vb.get(c_out, "bias")?;
        let weights = if runs_on_host(&vb) {
            ConvWeights::Host(PackedStridedConv::new(
                &host_values(&weight)?,
                host_values(&bias)?,
                (c_out, c_in, kernel),
                stride,
                padding,
            ))
        } else {
            ConvWeights::Device {
                weight,
                bias: bias.reshape((1, c_out, 1))?,
            }
        };
        Ok(Self {
            weights,
            stride,
            padding,
        })
    }

    /// x (B, c_in, L) → (B, c_out, (L + 2·padding − kernel)/stride + 1).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weights {
            ConvWeights::Host(conv) => x.contiguous()?.apply_op1_no_bwd(&HostConv {
                conv,
                activation: PreActivation::Identity,
            }),
            ConvWeights::Device { weight, bias } => x
                .conv1d(weight, self.padding, self.stride, 1, 1)?
                .broadcast_add(bias),
        }
    }
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous tensor");
    };
    Ok(&data[start..end])
}

/// Runs `item` on each (c_in, len) batch item of x and stacks the (c_out, out_len) results.
fn per_item(
    op: &str,
    storage: &CpuStorage,
    layout: &Layout,
    (c_in, c_out): (usize, usize),
    out_len: impl Fn(usize) -> Option<usize>,
    item: impl Fn(usize, &[f32], usize) -> Vec<f32>,
) -> Result<(CpuStorage, Shape)> {
    let (batch, channels, len) = layout.shape().dims3()?;
    if channels != c_in {
        candle_core::bail!("{op}: input has {channels} channels, the layer takes {c_in}");
    }
    let Some(out_len) = out_len(len) else {
        candle_core::bail!("{op}: {len} samples are too few for the kernel");
    };
    let x = contiguous_f32(storage, layout, op)?;
    let mut out = Vec::new();
    for (b, chunk) in x.chunks_exact(c_in * len).enumerate() {
        let y = item(b, chunk, len);
        if batch == 1 {
            out = y;
        } else {
            out.extend_from_slice(&y);
        }
    }
    Ok((CpuStorage::F32(out), Shape::from((batch, c_out, out_len))))
}

/// A host convolution as a candle op: with one input, conv(activation(x)); with a second,
/// that plus the residual (stride-1 convolutions only).
struct HostConv<'a, C> {
    conv: &'a C,
    activation: PreActivation<'a>,
}

impl<C: HostConvolution> CustomOp1 for HostConv<'_, C> {
    fn name(&self) -> &'static str {
        "hift-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let conv = self.conv;
        per_item(
            CustomOp1::name(self),
            storage,
            layout,
            (conv.c_in(), conv.c_out()),
            |len| conv.out_len(len),
            |_, x, len| conv.forward(x, len, self.activation),
        )
    }
}

impl CustomOp2 for HostConv<'_, PackedConv> {
    fn name(&self) -> &'static str {
        "hift-conv-residual"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let conv = self.conv;
        let (batch, _, len) = layout.shape().dims3()?;
        let expected = Shape::from((batch, conv.c_out(), conv.out_len(len).unwrap_or(0)));
        if residual_layout.shape() != &expected {
            candle_core::bail!(
                "{}: residual {:?}, output {:?}",
                CustomOp2::name(self),
                residual_layout.shape(),
                expected
            );
        }
        let residual = contiguous_f32(residual, residual_layout, CustomOp2::name(self))?;
        let item_len = expected.elem_count() / batch.max(1);
        per_item(
            CustomOp2::name(self),
            storage,
            layout,
            (conv.c_in(), conv.c_out()),
            |len| conv.out_len(len),
            |b, x, len| {
                let r = &residual[b * item_len..][..item_len];
                conv.forward_with_residual(x, len, self.activation, Some(r))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{D, Device};

    use super::*;
    use crate::model::weights::Weights;

    fn seeded(name: &str, shape: &[usize], scale: f64) -> Tensor {
        let count = shape.iter().product();
        let values = crate::model::random_weights::uniform(5, name, count, -scale, scale);
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// The same layer built for the host kernels (f32) and for candle's ops (f64 on the CPU,
    /// the path other devices take) must agree.
    #[test]
    fn host_kernels_match_candle_ops() {
        let (c_in, c_out, kernel) = (12, 10, 5);
        let tensors: HashMap<String, Tensor> = [
            ("conv.parametrizations.weight.original0", vec![c_out, 1, 1]),
            (
                "conv.parametrizations.weight.original1",
                vec![c_out, c_in, kernel],
            ),
            ("conv.bias", vec![c_out]),
            ("up.parametrizations.weight.original0", vec![c_in, 1, 1]),
            (
                "up.parametrizations.weight.original1",
                vec![c_in, c_out, 11],
            ),
            ("up.bias", vec![c_out]),
            ("snake.alpha", vec![c_in]),
            ("down.weight", vec![c_out, c_in, 6]),
            ("down.bias", vec![c_out]),
        ]
        .into_iter()
        .map(|(name, shape)| (name.to_string(), seeded(name, &shape, 1.0)))
        .collect();
        let weights = Weights::new("test", tensors);
        let build = |dtype| {
            weights
                .build(dtype, &Device::Cpu, &[], |vb| {
                    Ok((
                        WeightNormConv1d::load((c_in, c_out, kernel), 3, 6, vb.pp("conv"))?,
                        WeightNormConvTranspose1d::load((c_in, c_out, 11), 5, 3, vb.pp("up"))?,
                        Snake::load(c_in, vb.pp("snake"))?,
                        StridedConv1d::load((c_in, c_out, 6), 3, 1, vb.pp("down"))?,
                    ))
                })
                .unwrap()
        };
        let (host_conv, host_up, host_snake, host_down) = build(DType::F32);
        let (conv, up, snake, down) = build(DType::F64);
        assert!(matches!(host_conv.weights, ConvWeights::Host(_)));
        assert!(matches!(conv.weights, ConvWeights::Device { .. }));

        let x = seeded("x", &[2, c_in, 37], 2.0);
        let residual = seeded("residual", &[2, c_out, 37], 1.0);
        let x64 = x.to_dtype(DType::F64).unwrap();
        let r64 = residual.to_dtype(DType::F64).unwrap();
        let ours = host_conv
            .forward(&x, Activation::Snake(&host_snake), Some(&residual))
            .unwrap();
        let want = conv
            .forward(&x64, Activation::Snake(&snake), Some(&r64))
            .unwrap();
        assert_eq!(ours.dims(), want.dims());
        assert!(max_diff(&ours.to_dtype(DType::F64).unwrap(), &want) < 1e-5);

        let ours = host_up.forward(&x, Activation::LeakyRelu(0.1)).unwrap();
        let want = up.forward(&x64, Activation::LeakyRelu(0.1)).unwrap();
        assert_eq!(ours.dims(), &[2, c_out, 36 * 5 + 11 - 6]);
        assert_eq!(ours.dims(), want.dims());
        assert!(max_diff(&ours.to_dtype(DType::F64).unwrap(), &want) < 1e-5);

        let ours = host_down.forward(&x).unwrap();
        let want = down.forward(&x64).unwrap();
        assert_eq!(ours.dims(), &[2, c_out, (37 + 2 - 6) / 3 + 1]);
        assert_eq!(ours.dims(), want.dims());
        assert!(max_diff(&ours.to_dtype(DType::F64).unwrap(), &want) < 1e-5);
    }
}
