//! f32 matrix products on AVX-512 for the estimator's layers, built around one 12 × 32 register
//! tile (24 accumulators; per k: two loads of B, twelve broadcasts of A, 24 FMAs). A is packed
//! k-major in blocks of 12 rows, which is where the causal convolution's shifted frames and the
//! transformer's pre-norm are applied; weights are packed once into 32-column panels. The
//! epilogue (bias, GELU, residual) runs on the accumulators before the one store.

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{Avx512, math};

/// Rows of A (and C) per register tile.
pub const MR: usize = 12;
/// Columns of B (and C) per register tile: two vectors.
pub const NR: usize = 32;
/// Row blocks per parallel task: enough work per task to amortise the packing, enough tasks
/// (15 for 700 frames) to balance two to sixteen cores.
const BLOCKS_PER_TASK: usize = 4;

thread_local! {
    /// Per-thread packing buffer, kept between calls: sized once, no page faults afterwards.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread buffer of at least `len` floats (contents unspecified).
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffer = cell.borrow_mut();
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        f(&mut buffer[..len])
    })
}

/// What happens to a tile of x·Wᵀ before it is stored.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// Multiplies the tile's rows, one factor each (the attention's softmax denominators).
    pub row_scale: Option<&'a [f32]>,
    /// Added per column; padded to a multiple of [`NR`].
    pub bias: Option<&'a [f32]>,
    /// torch's exact GELU after the bias.
    pub gelu: bool,
    /// Added last, element-wise, with C's layout.
    pub residual: Option<&'a [f32]>,
}

impl Epilogue<'_> {
    pub const NONE: Epilogue<'static> = Epilogue {
        row_scale: None,
        bias: None,
        gelu: false,
        residual: None,
    };
}

/// Where a tile goes: C's first element for this tile, C's row stride, and how many of the
/// tile's rows and columns exist.
#[derive(Clone, Copy)]
pub struct TileOut {
    pub c: *mut f32,
    pub ldc: usize,
    pub rows: usize,
    pub cols: usize,
}

/// The lanes of the tile's two column vectors that hold real columns.
fn column_masks(cols: usize) -> (__mmask16, __mmask16) {
    let lanes = |n: usize| -> __mmask16 { if n >= 16 { 0xFFFF } else { (1u16 << n) - 1 } };
    (lanes(cols), lanes(cols.saturating_sub(16)))
}

/// C[tile] = epilogue(Σₖ A[i, k]·B[k, j]) for a 12 × 32 tile.
///
/// # Safety
/// `a` must hold `k` steps of 12 floats at stride `a_step`, `b` `k` steps of 32 floats at
/// stride `b_step`; `out.c` must be writable for `out.rows` rows of `out.cols` floats at stride
/// `out.ldc`, and the epilogue's bias must hold 32 floats from `col0`, its residual the same
/// elements as C relative to `residual_offset`, its row scale `out.rows` factors. The CPU must
/// support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile(
    a: *const f32,
    a_step: usize,
    b: *const f32,
    b_step: usize,
    k: usize,
    out: TileOut,
    epilogue: Epilogue,
    col0: usize,
    residual_offset: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        // SAFETY: within the k steps the caller vouches for.
        unsafe {
            let b0 = _mm512_loadu_ps(b);
            let b1 = _mm512_loadu_ps(b.add(16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            a = a.add(a_step);
            b = b.add(b_step);
        }
    }
    let (m0, m1) = column_masks(out.cols);
    let bias = epilogue.bias.map(|bias| {
        let bias = &bias[col0..col0 + NR];
        // SAFETY: 32 floats, checked by the slice above.
        unsafe {
            [
                _mm512_loadu_ps(bias.as_ptr()),
                _mm512_loadu_ps(bias.as_ptr().add(16)),
            ]
        }
    });
    for (i, row) in acc.iter().enumerate().take(out.rows) {
        let mut v = *row;
        if let Some(scale) = epilogue.row_scale {
            let s = _mm512_set1_ps(scale[i]);
            v = [_mm512_mul_ps(v[0], s), _mm512_mul_ps(v[1], s)];
        }
        if let Some(bias) = bias {
            v = [_mm512_add_ps(v[0], bias[0]), _mm512_add_ps(v[1], bias[1])];
        }
        if epilogue.gelu {
            v = [math::gelu(v[0]), math::gelu(v[1])];
        }
        let offset = i * out.ldc;
        if let Some(residual) = epilogue.residual {
            // SAFETY: the residual has C's layout; only the real columns are read.
            unsafe {
                let r = residual.as_ptr().add(residual_offset + offset);
                v[0] = _mm512_add_ps(v[0], _mm512_maskz_loadu_ps(m0, r));
                v[1] = _mm512_add_ps(v[1], _mm512_maskz_loadu_ps(m1, r.add(16)));
            }
        }
        // SAFETY: the real rows and columns of the tile, as the caller vouches.
        unsafe {
            _mm512_mask_storeu_ps(out.c.add(offset), m0, v[0]);
            _mm512_mask_storeu_ps(out.c.add(offset + 16), m1, v[1]);
        }
    }
}

/// torch's (n, k) row-major weight as k × 32 panels (zero-padded to whole panels), with its
/// bias padded alike. `k` counts all taps of a causal convolution.
pub struct PackedLinear {
    panels: Vec<f32>,
    bias: Option<Vec<f32>>,
    k: usize,
    n: usize,
}

impl PackedLinear {
    pub fn new(weight: &[f32], bias: Option<&[f32]>, n: usize, k: usize) -> Self {
        let panel_count = n.div_ceil(NR);
        let mut panels = vec![0f32; panel_count * k * NR];
        for (p, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
            for j in 0..NR.min(n - p * NR) {
                let row = &weight[(p * NR + j) * k..][..k];
                for (kk, &w) in row.iter().enumerate() {
                    panel[kk * NR + j] = w;
                }
            }
        }
        let bias = bias.map(|bias| {
            let mut padded = vec![0f32; panel_count * NR];
            padded[..n].copy_from_slice(bias);
            padded
        });
        Self { panels, bias, k, n }
    }

    pub fn out_features(&self) -> usize {
        self.n
    }

    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }
}

/// How the rows of A are read from the input, a time-major (batch × frames, width) matrix.
#[derive(Clone, Copy)]
pub struct RowSource<'a> {
    pub x: &'a [f32],
    pub width: usize,
    pub frames: usize,
    /// Row t of A is frames t − taps + 1 ..= t side by side, zeros before the first frame: a
    /// causal convolution's receptive field. 1 for a plain product.
    pub taps: usize,
    /// LayerNorm applied to each input row on the way in: (weight, bias, eps).
    pub norm: Option<(&'a [f32], &'a [f32], f32)>,
}

impl RowSource<'_> {
    /// Packs rows `r0..r0 + 12` of A k-major into `dst` (k·12 floats); rows past `rows` are 0.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (enabled here so that the norm's loops use it).
    #[target_feature(enable = "avx512f")]
    unsafe fn pack(&self, r0: usize, rows: usize, dst: &mut [f32], normed: &mut [f32]) {
        let width = self.width;
        for i in 0..MR {
            let r = r0 + i;
            let (batch, t) = (r / self.frames, r % self.frames);
            for tap in 0..self.taps {
                let slots = dst[tap * width * MR..][..width * MR].chunks_exact_mut(MR);
                let source_t = (t + tap + 1).checked_sub(self.taps);
                let Some(source_t) = source_t.filter(|_| r < rows) else {
                    slots.for_each(|slot| slot[i] = 0.0);
                    continue;
                };
                let start = (batch * self.frames + source_t) * width;
                let mut row = &self.x[start..start + width];
                if let Some((weight, bias, eps)) = self.norm {
                    layer_norm_row(row, weight, bias, eps, normed);
                    row = normed;
                }
                for (slot, &v) in slots.zip(row) {
                    slot[i] = v;
                }
            }
        }
    }
}

/// torch's LayerNorm of one row: two passes, biased variance.
pub fn layer_norm_row(row: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    for (((o, &v), &w), &b) in out.iter_mut().zip(row).zip(weight).zip(bias) {
        *o = (v - mean) * rstd * w + b;
    }
}

/// out (rows × n) = epilogue(A · Wᵀ), A read from `source`; parallel over blocks of rows. Every
/// element of `out` is written.
pub fn linear(
    _: Avx512,
    source: RowSource,
    rows: usize,
    weight: &PackedLinear,
    epilogue: Epilogue,
    out: &mut [MaybeUninit<f32>],
) {
    let (k, n) = (weight.k, weight.n);
    debug_assert_eq!(k, source.taps * source.width);
    debug_assert_eq!(out.len(), rows * n);
    let task_rows = MR * BLOCKS_PER_TASK;
    out.par_chunks_mut(task_rows * n)
        .enumerate()
        .for_each(|(task, out)| {
            let r0 = task * task_rows;
            let blocks = (out.len() / n).div_ceil(MR);
            with_scratch(blocks * k * MR + source.width, |scratch| {
                // SAFETY: the token vouches for AVX-512F; `out` holds this task's rows.
                unsafe { linear_task(source, rows, weight, epilogue, r0, scratch, out) }
            });
        });
}

/// One task of [`linear`]: packs its rows (from `r0`) into `scratch`, then multiplies them by
/// every panel into `out`, this task's rows of C. Compiled for AVX-512F so that [`tile`] and
/// its epilogue are inlined here.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn linear_task(
    source: RowSource,
    rows: usize,
    weight: &PackedLinear,
    epilogue: Epilogue,
    r0: usize,
    scratch: &mut [f32],
    out: &mut [MaybeUninit<f32>],
) {
    let (k, n) = (weight.k, weight.n);
    let task_rows = out.len() / n;
    let (packed, normed) = scratch.split_at_mut(task_rows.div_ceil(MR) * k * MR);
    for (block, dst) in packed.chunks_exact_mut(k * MR).enumerate() {
        // SAFETY: AVX-512F is enabled here.
        unsafe { source.pack(r0 + block * MR, rows, dst, normed) };
    }
    for (p, panel) in weight.panels.chunks_exact(k * NR).enumerate() {
        for (block, a) in packed.chunks_exact(k * MR).enumerate() {
            let offset = block * MR * n + p * NR;
            let tile_out = TileOut {
                // SAFETY (pointer arithmetic): inside this task's rows.
                c: unsafe { out.as_mut_ptr().add(offset).cast() },
                ldc: n,
                rows: MR.min(task_rows - block * MR),
                cols: NR.min(n - p * NR),
            };
            // SAFETY: `a` holds k·12 packed floats, the panel k·32; the tile's rows and columns
            // lie inside `out`, whose layout the residual shares; AVX-512F is enabled here.
            unsafe {
                tile(
                    a.as_ptr(),
                    MR,
                    panel.as_ptr(),
                    NR,
                    k,
                    tile_out,
                    epilogue,
                    p * NR,
                    r0 * n + offset,
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 2003.0 - 0.5) * 2.0)
            .collect()
    }

    /// Odd sizes everywhere: a batch boundary inside a row block, partial row blocks and
    /// panels, a three-tap convolution with the norm, GELU and residual all on.
    #[test]
    fn linear_equals_the_plain_computation() {
        let Some(token) = Avx512::detect() else {
            return;
        };
        let (batch, frames, width, taps, n) = (2, 13, 20, 3, 37);
        let rows = batch * frames;
        let (x, w, bias) = (
            values(rows * width, 1),
            values(n * taps * width, 2),
            values(n, 3),
        );
        let (norm_w, norm_b, residual) = (values(width, 4), values(width, 5), values(rows * n, 6));
        let packed = PackedLinear::new(&w, Some(&bias), n, taps * width);
        let source = RowSource {
            x: &x,
            width,
            frames,
            taps,
            norm: Some((&norm_w, &norm_b, 1e-5)),
        };
        let epilogue = Epilogue {
            row_scale: None,
            bias: packed.bias(),
            gelu: true,
            residual: Some(&residual),
        };
        let mut out = vec![MaybeUninit::new(f32::NAN); rows * n];
        linear(token, source, rows, &packed, epilogue, &mut out);

        let mut normed = vec![0f32; rows * width];
        for (o, row) in normed.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
            layer_norm_row(row, &norm_w, &norm_b, 1e-5, o);
        }
        let gelu = |v: f64| 0.5 * v * (1.0 + candle_core::cpu::erf::erf_f64(v / 2f64.sqrt()));
        for r in 0..rows {
            let (b, t) = (r / frames, r % frames);
            for j in 0..n {
                let mut sum = f64::from(bias[j]);
                for tap in 0..taps {
                    let Some(source_t) = (t + tap + 1).checked_sub(taps) else {
                        continue;
                    };
                    let input = &normed[(b * frames + source_t) * width..][..width];
                    let weight = &w[j * taps * width + tap * width..][..width];
                    sum += input
                        .iter()
                        .zip(weight)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum::<f64>();
                }
                let want = gelu(sum) + f64::from(residual[r * n + j]);
                // SAFETY: `out` was initialised (NaN) before the call.
                let got = f64::from(unsafe { out[r * n + j].assume_init() });
                assert!(
                    (got - want).abs() < 2e-5,
                    "row {r} col {j}: {got} vs {want}"
                );
            }
        }
    }
}
