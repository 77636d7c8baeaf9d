//! x·Wᵀ for the few rows a decode step has (one, or the CFG pair). That product is memory-bound:
//! its time is reading W. On the CPU one pass over W serves every row, split over the cores;
//! candle's general matmul streams W at roughly half that speed here (docs/benchmarks.md).
//! Other devices, and inputs with many rows (the prefill), use candle's matmul. On the CPU the
//! weights may be stored in bf16 ([`RowsLinear::store_as`]): half the bytes per step, widened
//! to f32 as they stream, with f32 products and sums.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use half::bf16;
use rayon::prelude::*;

use super::cpu_ops::contiguous_f32;

/// Up to this many rows the one-pass kernel runs; beyond, the product is compute-bound and
/// candle's blocked matmul is the better tool.
const MAX_ROWS: usize = 8;

/// Output rows of W per parallel task: enough work to amortise scheduling, enough tasks to
/// balance the cores.
const ROWS_PER_TASK: usize = 64;

/// A linear layer whose weight is kept as (out, in), applied to inputs of any rank by
/// flattening the leading dimensions into rows.
pub struct RowsLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl RowsLinear {
    /// torch's `nn.Linear` layout: `weight` [out, in], optional `bias`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: vb.get((out_dim, in_dim), "weight")?,
            bias: if bias {
                Some(vb.get(out_dim, "bias")?)
            } else {
                None
            },
        })
    }

    /// transformers' GPT-2 `Conv1D`: `weight` [in, out] (transposed once here) and `bias`.
    pub fn load_conv1d(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get((in_dim, out_dim), "weight")?.t()?.contiguous()?,
            bias: Some(vb.get(out_dim, "bias")?),
        })
    }

    /// Bias-free layers reading the same input, stacked into one whose output is theirs side by
    /// side: a decode step then makes one pass over the weights instead of several.
    pub fn stacked(parts: Vec<RowsLinear>) -> Result<Self> {
        if parts.iter().any(|p| p.bias.is_some()) {
            candle_core::bail!("only bias-free layers are stacked");
        }
        let weights: Vec<Tensor> = parts.into_iter().map(|p| p.weight).collect();
        Ok(Self {
            weight: Tensor::cat(&weights, 0)?,
            bias: None,
        })
    }

    /// Keeps the weight in `dtype` from now on. bf16 on the CPU halves what each decode step
    /// reads; products and sums stay f32.
    pub fn store_as(&mut self, dtype: DType) -> Result<()> {
        self.weight = self.weight.to_dtype(dtype)?;
        Ok(())
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let Some((&in_dim, leading)) = dims.split_last() else {
            candle_core::bail!("a linear layer needs at least one dimension");
        };
        let rows: usize = leading.iter().product();
        let y = linear_rows(&x.reshape((rows, in_dim))?, &self.weight)?;
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        let mut out_dims = leading.to_vec();
        out_dims.push(self.weight.dim(0)?);
        y.reshape(out_dims)
    }
}

/// (m, in) × (out, in)ᵀ → (m, out).
pub fn linear_rows(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let rows = x.dim(0)?;
    let kernel_weight = matches!(weight.dtype(), DType::F32 | DType::BF16);
    if x.device().is_cpu() && rows <= MAX_ROWS && x.dtype() == DType::F32 && kernel_weight {
        x.contiguous()?
            .apply_op2_no_bwd(&weight.contiguous()?, &RowsTimesWeight)
    } else if weight.dtype() != x.dtype() {
        // A compact weight meets a prefill: widened for this product only.
        x.matmul(&weight.to_dtype(x.dtype())?.t()?)
    } else {
        x.matmul(&weight.t()?)
    }
}

struct RowsTimesWeight;

impl CustomOp2 for RowsTimesWeight {
    fn name(&self) -> &'static str {
        "linear-rows"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        w_storage: &CpuStorage,
        w_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = x_layout.shape().dims2()?;
        let (n, k_w) = w_layout.shape().dims2()?;
        if k != k_w {
            candle_core::bail!("linear_rows: {m}x{k} input against a {n}x{k_w} weight");
        }
        let x = contiguous_f32(x_storage, x_layout, "linear_rows input")?;
        let Some((start, end)) = w_layout.contiguous_offsets() else {
            candle_core::bail!("linear_rows: expected a contiguous weight");
        };
        let transposed = match w_storage {
            CpuStorage::F32(w) => products(&w[start..end], x, n, k),
            CpuStorage::BF16(w) => products(&w[start..end], x, n, k),
            _ => candle_core::bail!("linear_rows: weights must be f32 or bf16"),
        };
        let mut y = vec![0f32; m * n];
        for (j, outputs) in transposed.chunks_exact(m).enumerate() {
            for (r, value) in outputs.iter().enumerate() {
                y[r * n + j] = *value;
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

/// W·xᵀ as (out, m), so that each parallel task owns a contiguous block of the output.
fn products<W: WeightElement>(w: &[W], x: &[f32], n: usize, k: usize) -> Vec<f32> {
    let m = x.len() / k;
    let mut transposed = vec![0f32; n * m];
    transposed
        .par_chunks_mut(ROWS_PER_TASK * m)
        .zip(w.par_chunks(ROWS_PER_TASK * k))
        .for_each(|(out, w_block)| dot_block(w_block, x, k, out));
    transposed
}

/// A stored weight value, widened to f32 as the kernels stream it.
trait WeightElement: Copy + Send + Sync {
    fn widen(self) -> f32;

    /// Eight consecutive values widened into one AVX register.
    ///
    /// # Safety
    /// `ptr` must be valid for eight reads and the CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(ptr: *const Self) -> std::arch::x86_64::__m256;
}

impl WeightElement for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(ptr: *const Self) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller guarantees eight readable floats and AVX.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(ptr) }
    }
}

impl WeightElement for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(ptr: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::{
            __m128i, _mm_loadu_si128, _mm256_castsi256_ps, _mm256_cvtepu16_epi32, _mm256_slli_epi32,
        };
        // bf16 is the top half of an f32: zero-extend each value and shift it up.
        // SAFETY: the caller guarantees eight readable values (16 bytes) and AVX2.
        unsafe {
            let raw = _mm_loadu_si128(ptr.cast::<__m128i>());
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16))
        }
    }
}

/// Lanes of independent partial sums per row: enough for the compiler to fill vector registers.
const LANES: usize = 16;

/// Calls `kernel::<M>(args)` for the input's row count M (1 to `MAX_ROWS`): one monomorphised
/// kernel per row count, so each weight chunk is loaded once and used for every row while it
/// sits in registers.
macro_rules! for_row_count {
    ($rows:expr, $($kernel:ident)::+ ($($arg:expr),*)) => {
        match $rows {
            1 => $($kernel)::+::<_, 1>($($arg),*),
            2 => $($kernel)::+::<_, 2>($($arg),*),
            3 => $($kernel)::+::<_, 3>($($arg),*),
            4 => $($kernel)::+::<_, 4>($($arg),*),
            5 => $($kernel)::+::<_, 5>($($arg),*),
            6 => $($kernel)::+::<_, 6>($($arg),*),
            7 => $($kernel)::+::<_, 7>($($arg),*),
            _ => $($kernel)::+::<_, MAX_ROWS>($($arg),*),
        }
    };
}

/// `out[j·m + r] = w_block[j] · x[r]` for every weight row j of the block and input row r.
fn dot_block<W: WeightElement>(w_block: &[W], x: &[f32], k: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has just been checked for the two features the function enables.
        unsafe { dot_block_avx2_fma(w_block, x, k, out) };
        return;
    }
    for_row_count!(x.len() / k, rows_kernel(w_block, x, k, out));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_block_avx2_fma<W: WeightElement>(
    w_block: &[W],
    x: &[f32],
    k: usize,
    out: &mut [f32],
) {
    // SAFETY: this function's caller checked AVX2 and FMA, all the kernels need.
    unsafe { for_row_count!(x.len() / k, avx2::rows_kernel(w_block, x, k, out)) }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::WeightElement;
    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_cvtss_f32, _mm_hadd_ps, _mm256_add_ps, _mm256_castps256_ps128,
        _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    };

    const WIDTH: usize = 8;

    /// Two 8-lane accumulators per row; each 16-float chunk of the weight row is loaded once
    /// and multiplied into every input row.
    #[inline(always)]
    pub(super) unsafe fn rows_kernel<W: WeightElement, const M: usize>(
        w_block: &[W],
        x: &[f32],
        k: usize,
        out: &mut [f32],
    ) {
        let main = k - k % (2 * WIDTH);
        for (w_row, outputs) in w_block.chunks_exact(k).zip(out.chunks_exact_mut(M)) {
            // SAFETY (whole block): every load reads 8 floats at offsets below `main` ≤ k of a
            // row of length k, in `w_row` (k floats) or in row r < M of `x` (M·k floats).
            unsafe {
                let mut acc: [[__m256; 2]; M] = [[_mm256_setzero_ps(); 2]; M];
                let mut c = 0;
                while c < main {
                    let w0 = W::load8(w_row.as_ptr().add(c));
                    let w1 = W::load8(w_row.as_ptr().add(c + WIDTH));
                    for (r, row_acc) in acc.iter_mut().enumerate() {
                        let xp = x.as_ptr().add(r * k + c);
                        row_acc[0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xp), row_acc[0]);
                        row_acc[1] =
                            _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp.add(WIDTH)), row_acc[1]);
                    }
                    c += 2 * WIDTH;
                }
                for (r, (row_acc, output)) in acc.iter().zip(outputs.iter_mut()).enumerate() {
                    let v = _mm256_add_ps(row_acc[0], row_acc[1]);
                    let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                    let pairs = _mm_hadd_ps(halves, halves);
                    let total = _mm_cvtss_f32(_mm_hadd_ps(pairs, pairs));
                    let tail: f32 = w_row[main..]
                        .iter()
                        .zip(&x[r * k + main..(r + 1) * k])
                        .map(|(p, q)| p.widen() * q)
                        .sum();
                    *output = total + tail;
                }
            }
        }
    }
}

/// The kernel for machines without AVX2 and FMA, written for the compiler to vectorise.
#[inline(always)]
fn rows_kernel<W: WeightElement, const M: usize>(
    w_block: &[W],
    x: &[f32],
    k: usize,
    out: &mut [f32],
) {
    let main = k - k % LANES;
    for (w_row, outputs) in w_block.chunks_exact(k).zip(out.chunks_exact_mut(M)) {
        let mut acc = [[0f32; LANES]; M];
        for (c, w_chunk) in w_row[..main].chunks_exact(LANES).enumerate() {
            for (r, row_acc) in acc.iter_mut().enumerate() {
                let x_chunk = &x[r * k + c * LANES..][..LANES];
                for i in 0..LANES {
                    row_acc[i] += w_chunk[i].widen() * x_chunk[i];
                }
            }
        }
        for (r, (row_acc, output)) in acc.iter_mut().zip(outputs.iter_mut()).enumerate() {
            let tail: f32 = w_row[main..]
                .iter()
                .zip(&x[r * k + main..(r + 1) * k])
                .map(|(p, q)| p.widen() * q)
                .sum();
            let mut width = LANES;
            while width > 1 {
                width /= 2;
                for i in 0..width {
                    row_acc[i] += row_acc[i + width];
                }
            }
            *output = row_acc[0] + tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::{LANES, linear_rows, rows_kernel};

    #[test]
    fn matches_candle_matmul_for_few_and_many_rows() {
        let device = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (37, 70), &device).unwrap();
        for rows in [1, 2, 8, 9] {
            let x = Tensor::randn(0f32, 1.0, (rows, 70), &device).unwrap();
            let ours = linear_rows(&x, &w).unwrap();
            let reference = x.matmul(&w.t().unwrap()).unwrap();
            let diff = (ours - reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "{rows} rows: max difference {diff}");
        }
    }

    #[test]
    fn bf16_weights_give_the_f32_product_of_the_rounded_weights() {
        let device = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (70, 83), &device).unwrap();
        let compact = w.to_dtype(candle_core::DType::BF16).unwrap();
        let rounded = compact.to_dtype(candle_core::DType::F32).unwrap();
        for rows in [1, 2, 9] {
            let x = Tensor::randn(0f32, 1.0, (rows, 83), &device).unwrap();
            let ours = linear_rows(&x, &compact).unwrap();
            let reference = x.matmul(&rounded.t().unwrap()).unwrap();
            let diff = (ours - reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "{rows} rows: max difference {diff}");
        }
        let k = 2 * LANES + 3;
        let w: Vec<half::bf16> = (0..3 * k)
            .map(|i| half::bf16::from_f32(((i * 7 % 11) as f32 - 5.0) / 4.0))
            .collect();
        let x: Vec<f32> = (0..k).map(|i| ((i * 5 % 13) as f32 - 6.0) / 8.0).collect();
        let mut out = vec![0f32; 3];
        rows_kernel::<half::bf16, 1>(&w, &x, k, &mut out);
        for j in 0..3 {
            let want: f32 = (0..k).map(|c| w[j * k + c].to_f32() * x[c]).sum();
            assert!((out[j] - want).abs() < 1e-4, "row {j}");
        }
    }

    /// The fallback kernel, which a machine with AVX2 never reaches through `linear_rows`.
    #[test]
    fn portable_kernel_matches_plain_dot_products() {
        let k = 3 * LANES + 5;
        let w: Vec<f32> = (0..4 * k)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let x: Vec<f32> = (0..2 * k)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) / 8.0)
            .collect();
        let mut out = vec![0f32; 4 * 2];
        rows_kernel::<f32, 2>(&w, &x, k, &mut out);
        for j in 0..4 {
            for r in 0..2 {
                let want: f32 = (0..k).map(|c| w[j * k + c] * x[r * k + c]).sum();
                assert!((out[j * 2 + r] - want).abs() < 1e-4, "row {j}, input {r}");
            }
        }
    }
}
