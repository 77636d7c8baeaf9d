//! `CausalBlock1D`'s LayerNorm over channels and Mish, with the residual block's time
//! embedding added after the first: one pass per row, rows in parallel.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::Avx512;
use super::gemm::{layer_norm_row, with_scratch};
use super::math;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 32;

/// The LayerNorm's weight, bias and eps, and what follows it.
#[derive(Clone, Copy)]
pub struct NormMish<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub eps: f32,
    /// Added to every row after the Mish.
    pub add: Option<&'a [f32]>,
}

/// out = mish(LayerNorm(x)) (+ add) for rows of `weight.len()` channels, a multiple of 16;
/// every element of `out` is written.
pub fn norm_mish(_: Avx512, params: NormMish, x: &[f32], out: &mut [MaybeUninit<f32>]) {
    let width = params.weight.len();
    debug_assert_eq!(width % 16, 0);
    out.par_chunks_mut(ROWS_PER_TASK * width)
        .zip(x.par_chunks(ROWS_PER_TASK * width))
        .for_each(|(out, x)| {
            with_scratch(width, |normed| {
                for (out, x) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                    layer_norm_row(x, params.weight, params.bias, params.eps, normed);
                    // SAFETY: the token vouches for AVX-512F; both rows hold `width` floats.
                    unsafe { mish_add(normed, params.add, out) };
                }
            });
        });
}

/// out = mish(row) (+ add), 16 lanes at a time.
///
/// # Safety
/// The CPU must support AVX-512F; `row.len()` is a multiple of 16 and `add` and `out` as long.
#[target_feature(enable = "avx512f")]
unsafe fn mish_add(row: &[f32], add: Option<&[f32]>, out: &mut [MaybeUninit<f32>]) {
    for (i, chunk) in row.chunks_exact(16).enumerate() {
        // SAFETY: 16 floats in `chunk`, and in `add` and `out` at the same offset.
        unsafe {
            let mut v = math::mish(_mm512_loadu_ps(chunk.as_ptr()));
            if let Some(add) = add {
                v = _mm512_add_ps(v, _mm512_loadu_ps(add[16 * i..][..16].as_ptr()));
            }
            _mm512_storeu_ps(out[16 * i..][..16].as_mut_ptr().cast(), v);
        }
    }
}
