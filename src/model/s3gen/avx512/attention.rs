//! Unmasked multi-head self-attention read from the stacked q|k|v projection (rows of
//! `3·inner` floats, the query pre-scaled) and written straight into the context rows. Keys
//! and values are first packed per head; then each task takes one (batch row, head, block of
//! up to 96 queries) and computes the scores transposed, keys × queries: the softmax over keys
//! runs down columns, 16 queries per vector, its exponentials come out already packed as the
//! left operand of the product with the values, and the division by their sum is applied to
//! that product's rows.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::Avx512;
use super::gemm::{Epilogue, MR, NR, TileOut, tile, with_scratch};
use super::math;

/// Queries per task: three column panels of the transposed scores.
const QUERY_BLOCK: usize = 3 * NR;

/// The output pointer, shared by tasks that write disjoint (rows, head columns) regions.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every task writes its own rows × head-columns block and nothing reads `out` meanwhile.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Through a method, so that closures capture the whole (Sync) wrapper.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// The shape of one call: `batch` rows of `frames` frames, `heads` of `head_dim` (a multiple
/// of 32).
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub batch: usize,
    pub frames: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// softmax(q·kᵀ)·v per head. `qkv` is (batch·frames, 3·inner) with q already scaled, `out`
/// (batch·frames, inner), inner = heads·head_dim; every element of `out` is written.
pub fn attention(_: Avx512, shape: Heads, qkv: &[f32], out: &mut [MaybeUninit<f32>]) {
    let Heads {
        batch,
        frames,
        heads,
        head_dim,
    } = shape;
    let inner = heads * head_dim;
    let stride = 3 * inner;
    debug_assert_eq!(head_dim % NR, 0);
    debug_assert_eq!(qkv.len(), batch * frames * stride);
    debug_assert_eq!(out.len(), batch * frames * inner);

    // Per head: keys as the left operand, blocks of 12 packed k-major (zero-padded), and the
    // values (frames × head_dim) contiguous.
    let key_blocks = frames.div_ceil(MR);
    let keys_len = key_blocks * head_dim * MR;
    let per_head = keys_len + frames * head_dim;
    let mut packed = vec![0f32; batch * heads * per_head];
    packed
        .par_chunks_mut(per_head)
        .enumerate()
        .for_each(|(bh, packed)| {
            let (b, h) = (bh / heads, bh % heads);
            let (keys, values) = packed.split_at_mut(keys_len);
            for t in 0..frames {
                let row = &qkv[(b * frames + t) * stride + h * head_dim..];
                let block = keys[(t / MR) * head_dim * MR..][..head_dim * MR].chunks_exact_mut(MR);
                for (slot, &v) in block.zip(&row[inner..][..head_dim]) {
                    slot[t % MR] = v;
                }
                values[t * head_dim..][..head_dim].copy_from_slice(&row[2 * inner..][..head_dim]);
            }
        });

    let query_blocks = frames.div_ceil(QUERY_BLOCK);
    let shared = SharedOut(out.as_mut_ptr().cast());
    let scratch_len = 3 * head_dim * NR + QUERY_BLOCK + key_blocks * MR * QUERY_BLOCK;
    (0..batch * heads * query_blocks)
        .into_par_iter()
        .for_each(|task| {
            let (bh, query_block) = (task / query_blocks, task % query_blocks);
            let (keys, values) = packed[bh * per_head..][..per_head].split_at(keys_len);
            let block = QueryBlock {
                shape,
                qkv,
                keys,
                values,
                batch_row: bh / heads,
                head: bh % heads,
                q0: query_block * QUERY_BLOCK,
                out: shared,
            };
            // SAFETY: the token vouches for AVX-512F; the block's part of `out` is its own.
            with_scratch(scratch_len, |scratch| unsafe { block.attend(scratch) });
        });
}

/// One task: up to 96 queries of one head of one batch row.
struct QueryBlock<'a> {
    shape: Heads,
    qkv: &'a [f32],
    /// This head's packed keys and values.
    keys: &'a [f32],
    values: &'a [f32],
    batch_row: usize,
    head: usize,
    q0: usize,
    out: SharedOut,
}

impl QueryBlock<'_> {
    /// Compiled for AVX-512F so that [`tile`] and its epilogue are inlined here.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, and no other task may write this block's part of `out`.
    #[target_feature(enable = "avx512f")]
    unsafe fn attend(&self, scratch: &mut [f32]) {
        let Heads {
            frames,
            heads,
            head_dim,
            ..
        } = self.shape;
        let (inner, stride) = (heads * head_dim, 3 * heads * head_dim);
        let (b, h, q0) = (self.batch_row, self.head, self.q0);
        let queries = QUERY_BLOCK.min(frames - q0);
        let panels = queries.div_ceil(NR);
        let panel_len = head_dim * NR;
        let (query_panels, scratch) = scratch.split_at_mut(3 * panel_len);
        let (inverse_sums, scores) = scratch.split_at_mut(QUERY_BLOCK);
        // Queries as the right operand: panels of 32, k-major, zero-padded.
        for j in 0..panels * NR {
            let slots = query_panels[(j / NR) * panel_len..][..panel_len].chunks_exact_mut(NR);
            if j < queries {
                let row = (b * frames + q0 + j) * stride + h * head_dim;
                for (slot, &v) in slots.zip(&self.qkv[row..][..head_dim]) {
                    slot[j % NR] = v;
                }
            } else {
                slots.for_each(|slot| slot[j % NR] = 0.0);
            }
        }
        for kb in 0..frames.div_ceil(MR) {
            for p in 0..panels {
                let out = TileOut {
                    // SAFETY (pointer arithmetic): inside `scores`.
                    c: unsafe { scores.as_mut_ptr().add(kb * MR * QUERY_BLOCK + p * NR) },
                    ldc: QUERY_BLOCK,
                    rows: MR.min(frames - kb * MR),
                    cols: NR.min(queries - p * NR),
                };
                // SAFETY: a 12-key block (head_dim steps of 12) and a query panel (head_dim
                // steps of 32); the tile lies inside `scores`; AVX-512F is enabled here.
                unsafe {
                    tile(
                        self.keys[kb * head_dim * MR..].as_ptr(),
                        MR,
                        query_panels[p * panel_len..].as_ptr(),
                        NR,
                        head_dim,
                        out,
                        Epilogue::NONE,
                        0,
                        0,
                    )
                };
            }
        }
        // SAFETY: AVX-512F is enabled here.
        unsafe { softmax_columns(&mut scores[..frames * QUERY_BLOCK], queries, inverse_sums) };
        for m in 0..queries.div_ceil(MR) {
            let rows = MR.min(queries - m * MR);
            let epilogue = Epilogue {
                row_scale: Some(&inverse_sums[m * MR..][..rows]),
                ..Epilogue::NONE
            };
            for p in 0..head_dim / NR {
                let row = b * frames + q0 + m * MR;
                let out = TileOut {
                    // This task's rows and head columns.
                    c: self.out.at(row * inner + h * head_dim + p * NR),
                    ldc: inner,
                    rows,
                    cols: NR,
                };
                // SAFETY: the exponentials hold `frames` steps of 12 at stride 96, the values
                // `frames` rows of 32 at stride head_dim; the tile is this task's own part of
                // `out`; AVX-512F is enabled here.
                unsafe {
                    tile(
                        scores[m * MR..].as_ptr(),
                        QUERY_BLOCK,
                        self.values[p * NR..].as_ptr(),
                        head_dim,
                        frames,
                        out,
                        epilogue,
                        0,
                        0,
                    )
                };
            }
        }
    }
}

/// The softmax down each of the first `queries` columns of `scores` (keys × 96, row-major),
/// but for the division: leaves exp(s − max) in place and 1/Σ exp in `inverse_sums`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_columns(scores: &mut [f32], queries: usize, inverse_sums: &mut [f32]) {
    for c in (0..queries).step_by(16) {
        let column = |t: usize| t * QUERY_BLOCK + c;
        let keys = scores.len() / QUERY_BLOCK;
        // SAFETY: c + 16 ≤ 96 and t < keys, so every access is inside `scores`.
        unsafe {
            let ptr = scores.as_mut_ptr();
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            for t in 0..keys {
                max = _mm512_max_ps(max, _mm512_loadu_ps(ptr.add(column(t))));
            }
            let mut sum = _mm512_setzero_ps();
            for t in 0..keys {
                let e = math::exp(_mm512_sub_ps(_mm512_loadu_ps(ptr.add(column(t))), max));
                sum = _mm512_add_ps(sum, e);
                _mm512_storeu_ps(ptr.add(column(t)), e);
            }
            let inverse = _mm512_div_ps(_mm512_set1_ps(1.0), sum);
            _mm512_storeu_ps(inverse_sums[c..c + 16].as_mut_ptr(), inverse);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two batch rows of 101 frames: two query blocks, the last partial, and a partial key
    /// block; two heads of 64.
    #[test]
    fn attention_equals_the_plain_computation() {
        let Some(token) = Avx512::detect() else {
            return;
        };
        let shape = Heads {
            batch: 2,
            frames: 101,
            heads: 2,
            head_dim: 64,
        };
        let (inner, rows) = (shape.heads * shape.head_dim, shape.batch * shape.frames);
        let qkv: Vec<f32> = (0..rows * 3 * inner)
            .map(|i| ((i * 7919) % 2003) as f32 / 2003.0 - 0.5)
            .collect();
        let mut out = vec![MaybeUninit::new(f32::NAN); rows * inner];
        attention(token, shape, &qkv, &mut out);

        let at = |r: usize, part: usize, h: usize, d: usize| {
            f64::from(qkv[r * 3 * inner + part * inner + h * shape.head_dim + d])
        };
        for b in 0..shape.batch {
            for h in 0..shape.heads {
                for i in 0..shape.frames {
                    let q = b * shape.frames + i;
                    let scores: Vec<f64> = (0..shape.frames)
                        .map(|j| {
                            let k = b * shape.frames + j;
                            (0..shape.head_dim)
                                .map(|d| at(q, 0, h, d) * at(k, 1, h, d))
                                .sum()
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for d in 0..shape.head_dim {
                        let want: f64 = (0..shape.frames)
                            .map(|j| weights[j] * at(b * shape.frames + j, 2, h, d))
                            .sum::<f64>()
                            / total;
                        // SAFETY: `out` was initialised (NaN) before the call.
                        let got = unsafe { out[q * inner + h * shape.head_dim + d].assume_init() };
                        assert!((f64::from(got) - want).abs() < 1e-5, "{b} {h} {i} {d}");
                    }
                }
            }
        }
    }
}
