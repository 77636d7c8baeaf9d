//! The CFM estimator's layers (decoder.rs, matcha/transformer.rs) on two back ends: candle's
//! ops, for any device and dtype, and on a CPU with AVX-512 in f32 the fused kernels of
//! avx512/. The back end is fixed when a layer's weights load ([`Kernels::select`]); both
//! compute the same functions. Activations are time-major, (B, T, C).

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

#[cfg(target_arch = "x86_64")]
use super::avx512::{self, Avx512};

/// nn.LayerNorm's default eps, the estimator's only one.
const LAYER_NORM_EPS: f64 = 1e-5;

/// Which implementation the estimator's layers use.
#[derive(Clone, Copy, Debug)]
pub enum Kernels {
    Candle,
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
}

impl Kernels {
    /// The AVX-512 kernels for f32 on a CPU that has them, candle's ops otherwise.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub fn select(device: &Device, dtype: DType) -> Self {
        #[cfg(target_arch = "x86_64")]
        if device.is_cpu()
            && dtype == DType::F32
            && let Some(token) = Avx512::detect()
        {
            return Self::Avx512(token);
        }
        Self::Candle
    }
}

/// What a [`Dense`] layer applies to its output before returning it.
#[derive(Clone, Copy)]
pub(crate) enum Then<'a> {
    Nothing,
    /// torch's exact GELU.
    Gelu,
    /// A residual of the output's shape, added last.
    Add(&'a Tensor),
}

enum DenseKernel {
    Candle(Linear),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::gemm::PackedLinear, Avx512),
}

/// x·Wᵀ + b on time-major rows; with `taps` > 1, over the frames t − taps + 1 ..= t side by side
/// (zeros before the first frame), which is a causal convolution.
pub(crate) struct Dense {
    kernel: DenseKernel,
    taps: usize,
}

impl Dense {
    /// `nn.Linear(in_dim, out_dim, bias)`.
    pub fn linear(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        kernels: Kernels,
    ) -> Result<Self> {
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Self::new(vb.get((out_dim, in_dim), "weight")?, bias, 1, kernels)
    }

    /// `nn.Conv1d(in_dim, out_dim, taps)` with bias, padded `taps − 1` frames on the left only:
    /// `CausalConv1d`, or a pointwise convolution for `taps` = 1.
    pub fn causal_conv(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        taps: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        // torch's (out, in, tap) as (out, tap·in): taps side by side, as the rows are built.
        let weight = vb
            .get((out_dim, in_dim, taps), "weight")?
            .transpose(1, 2)?
            .reshape((out_dim, taps * in_dim))?;
        Self::new(weight, Some(vb.get(out_dim, "bias")?), taps, kernels)
    }

    /// A layer from its (out, taps·in) weight and optional bias.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        taps: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        let kernel = match kernels {
            Kernels::Candle => DenseKernel::Candle(Linear::new(weight, bias)),
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx512(token) => {
                let (n, k) = weight.dims2()?;
                let weight = weight.flatten_all()?.to_vec1::<f32>()?;
                let bias = bias.map(|b| b.to_vec1::<f32>()).transpose()?;
                let packed = avx512::gemm::PackedLinear::new(&weight, bias.as_deref(), n, k);
                DenseKernel::Avx512(packed, token)
            }
        };
        Ok(Self { kernel, taps })
    }

    /// (B, T, in) -> (B, T, out).
    pub fn forward(&self, x: &Tensor, then: Then) -> Result<Tensor> {
        self.forward_impl(x, None, then)
    }

    /// The layer applied to `norm(x)`; on the AVX-512 path the norm is taken while the rows
    /// are packed, so the normalised activations are never stored.
    pub fn forward_normed(&self, norm: &Norm, x: &Tensor, then: Then) -> Result<Tensor> {
        self.forward_impl(x, Some(norm), then)
    }

    fn forward_impl(&self, x: &Tensor, norm: Option<&Norm>, then: Then) -> Result<Tensor> {
        match &self.kernel {
            DenseKernel::Candle(linear) => {
                let x = match norm {
                    Some(norm) => &norm.layer_norm.forward(x)?,
                    None => x,
                };
                let y = linear_rows(linear, &self.frames_side_by_side(x)?)?;
                match then {
                    Then::Nothing => Ok(y),
                    Then::Gelu => y.gelu_erf(),
                    Then::Add(residual) => y + residual,
                }
            }
            #[cfg(target_arch = "x86_64")]
            DenseKernel::Avx512(packed, token) => {
                let (b, t, width) = x.dims3()?;
                let n = packed.out_features();
                let norm_params = norm.map(|n| (&n.weight[..], &n.bias[..], LAYER_NORM_EPS as f32));
                let out = fully_written(b * t * n, |out| {
                    with_f32(&x.contiguous()?, |x| {
                        let source = avx512::gemm::RowSource {
                            x,
                            width,
                            frames: t,
                            taps: self.taps,
                            norm: norm_params,
                        };
                        let mut run = |residual: Option<&[f32]>| {
                            let epilogue = avx512::gemm::Epilogue {
                                row_scale: None,
                                bias: packed.bias(),
                                gelu: matches!(then, Then::Gelu),
                                residual,
                            };
                            avx512::gemm::linear(*token, source, b * t, packed, epilogue, out)
                        };
                        match then {
                            Then::Add(residual) => {
                                with_f32(&residual.contiguous()?, |r| run(Some(r)))
                            }
                            _ => {
                                run(None);
                                Ok(())
                            }
                        }
                    })?
                })?;
                Tensor::from_vec(out, (b, t, n), x.device())
            }
        }
    }

    /// The candle path's rows: [x(t − taps + 1), …, x(t)] concatenated over channels.
    fn frames_side_by_side(&self, x: &Tensor) -> Result<Tensor> {
        if self.taps == 1 {
            return Ok(x.clone());
        }
        let t = x.dim(1)?;
        let padded = x.pad_with_zeros(1, self.taps - 1, 0)?;
        let frames = (0..self.taps)
            .map(|k| padded.narrow(1, k, t))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&frames, D::Minus1)
    }
}

/// A linear layer on (B, T, C) as one (B·T, C) product: candle would run a batched product,
/// one per batch row, against a broadcast weight.
fn linear_rows(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let (b, t, c) = x.dims3()?;
    layer.forward(&x.reshape((b * t, c))?)?.reshape((b, t, ()))
}

/// `nn.LayerNorm(width)` over the channels of time-major activations.
pub(crate) struct Norm {
    layer_norm: LayerNorm,
    /// The AVX-512 path's copies of the weight and bias, when it is used.
    weight: Vec<f32>,
    bias: Vec<f32>,
    kernels: Kernels,
}

impl Norm {
    pub fn load(vb: VarBuilder, width: usize, kernels: Kernels) -> Result<Self> {
        let layer_norm = candle_nn::layer_norm(width, LAYER_NORM_EPS, vb)?;
        let (weight, bias) = match kernels {
            Kernels::Candle => (Vec::new(), Vec::new()),
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx512(_) => {
                if !width.is_multiple_of(16) {
                    candle_core::bail!("the AVX-512 LayerNorm needs a multiple of 16 channels");
                }
                let bias = layer_norm.bias().map(|b| b.to_vec1()).transpose()?;
                (layer_norm.weight().to_vec1()?, bias.unwrap_or_default())
            }
        };
        Ok(Self {
            layer_norm,
            weight,
            bias,
            kernels,
        })
    }

    /// mish(LayerNorm(x)), plus `add` (one row of C values, shared by all frames) if given.
    pub fn forward_mish(&self, x: &Tensor, add: Option<&Tensor>) -> Result<Tensor> {
        match self.kernels {
            Kernels::Candle => {
                let y = mish(&self.layer_norm.forward(x)?)?;
                match add {
                    Some(add) => y.broadcast_add(add),
                    None => Ok(y),
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx512(token) => {
                let add = add.map(|a| a.flatten_all()?.to_vec1::<f32>()).transpose()?;
                let params = avx512::rows::NormMish {
                    weight: &self.weight,
                    bias: &self.bias,
                    eps: LAYER_NORM_EPS as f32,
                    add: add.as_deref(),
                };
                let out = fully_written(x.elem_count(), |out| {
                    with_f32(&x.contiguous()?, |x| {
                        avx512::rows::norm_mish(token, params, x, out)
                    })
                })?;
                Tensor::from_vec(out, x.shape(), x.device())
            }
        }
    }
}

/// torch's Mish, x·tanh(softplus(x)), from candle ops.
pub(crate) fn mish(x: &Tensor) -> Result<Tensor> {
    x * (x.exp()? + 1.0)?.log()?.tanh()?
}

/// Unmasked multi-head self-attention over the stacked projection `qkv` (B, T, 3·heads·head_dim)
/// = [q | k | v], q already scaled: the context (B, T, heads·head_dim).
pub(crate) fn attention(
    qkv: &Tensor,
    heads: usize,
    head_dim: usize,
    kernels: Kernels,
) -> Result<Tensor> {
    let (b, t, _) = qkv.dims3()?;
    let inner = heads * head_dim;
    match kernels {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512(token) if head_dim.is_multiple_of(avx512::gemm::NR) => {
            let shape = avx512::attention::Heads {
                batch: b,
                frames: t,
                heads,
                head_dim,
            };
            let out = fully_written(b * t * inner, |out| {
                with_f32(&qkv.contiguous()?, |qkv| {
                    avx512::attention::attention(token, shape, qkv, out)
                })
            })?;
            Tensor::from_vec(out, (b, t, inner), qkv.device())
        }
        _ => {
            // (B, T, 3, H, D) -> (3, B, H, T, D): each head's rows contiguous for the products.
            let qkv = qkv
                .reshape((b, t, 3, heads, head_dim))?
                .permute((2, 0, 3, 1, 4))?
                .contiguous()?;
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
            let probs = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
            probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, inner))
        }
    }
}

/// Runs `f` on the values of a contiguous f32 CPU tensor.
#[cfg(target_arch = "x86_64")]
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)) = &*storage else {
        candle_core::bail!(
            "the AVX-512 kernels take f32 CPU tensors, got {:?}",
            t.dtype()
        );
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the AVX-512 kernels take contiguous tensors");
    };
    Ok(f(&data[start..end]))
}

/// A vector of `len` floats filled by `write`, which must write every element when it returns
/// Ok (the AVX-512 kernels do): the output is not zeroed first.
#[cfg(target_arch = "x86_64")]
fn fully_written(
    len: usize,
    write: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]) -> Result<()>,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(len);
    write(&mut out.spare_capacity_mut()[..len])?;
    // SAFETY: `write` returned Ok, so all `len` elements are initialised.
    unsafe { out.set_len(len) };
    Ok(out)
}
