//! Unmasked multi-head self-attention read straight from the stacked q|k|v projection (rows of
//! `3·inner` floats, the query pre-scaled) and written straight into the context rows: no
//! head transposes. Each task takes one (batch row, head, block of up to 96 queries) and
//! computes the scores transposed, keys × queries: the softmax over keys then runs down
//! columns, 16 queries per vector, and the probabilities come out already packed as the
//! left operand of the product with the values.

use std::arch::x86_64::*;

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
/// (batch·frames, inner), inner = heads·head_dim.
pub fn attention(_: Avx512, shape: Heads, qkv: &[f32], out: &mut [f32]) {
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

    // Keys as the left operand: per head, blocks of 12 keys packed k-major (zero-padded).
    let key_blocks = frames.div_ceil(MR);
    let per_head = key_blocks * head_dim * MR;
    let mut keys = vec![0f32; batch * heads * per_head];
    keys.par_chunks_mut(per_head)
        .enumerate()
        .for_each(|(bh, packed)| {
            let (b, h) = (bh / heads, bh % heads);
            for t in 0..frames {
                let key = &qkv[(b * frames + t) * stride + inner + h * head_dim..][..head_dim];
                let block = &mut packed[(t / MR) * head_dim * MR..];
                for (d, &v) in key.iter().enumerate() {
                    block[d * MR + t % MR] = v;
                }
            }
        });

    let query_blocks = frames.div_ceil(QUERY_BLOCK);
    let shared = SharedOut(out.as_mut_ptr());
    (0..batch * heads * query_blocks)
        .into_par_iter()
        .for_each(|task| {
            let shared = shared;
            let (bh, qblock) = (task / query_blocks, task % query_blocks);
            let (b, h) = (bh / heads, bh % heads);
            let q0 = qblock * QUERY_BLOCK;
            let queries = QUERY_BLOCK.min(frames - q0);
            let panels = queries.div_ceil(NR);
            let panel_len = head_dim * NR;
            let scores_len = key_blocks * MR * QUERY_BLOCK;
            with_scratch(3 * panel_len + scores_len, |scratch| {
                let (query_panels, scores) = scratch.split_at_mut(3 * panel_len);
                // Queries as the right operand: panels of 32, k-major.
                query_panels.fill(0.0);
                for j in 0..queries {
                    let query = &qkv[(b * frames + q0 + j) * stride + h * head_dim..][..head_dim];
                    let panel = &mut query_panels[(j / NR) * panel_len..];
                    for (d, &v) in query.iter().enumerate() {
                        panel[d * NR + j % NR] = v;
                    }
                }
                let key_head = &keys[bh * per_head..][..per_head];
                for kb in 0..key_blocks {
                    for p in 0..panels {
                        let out = TileOut {
                            // SAFETY (pointer arithmetic): inside `scores`.
                            c: unsafe { scores.as_mut_ptr().add(kb * MR * QUERY_BLOCK + p * NR) },
                            ldc: QUERY_BLOCK,
                            rows: MR.min(frames - kb * MR),
                            cols: NR.min(queries - p * NR),
                        };
                        // SAFETY: a 12-key block (head_dim steps of 12) and a query panel
                        // (head_dim steps of 32); the tile lies inside `scores`; AVX-512F is
                        // vouched for by the token.
                        unsafe {
                            tile(
                                key_head[kb * head_dim * MR..].as_ptr(),
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
                // SAFETY: AVX-512F is vouched for by the token.
                unsafe { softmax_columns(&mut scores[..frames * QUERY_BLOCK], queries) };
                let values = (b * frames) * stride + 2 * inner + h * head_dim;
                for m in 0..queries.div_ceil(MR) {
                    for p in 0..head_dim / NR {
                        let row = b * frames + q0 + m * MR;
                        let out = TileOut {
                            // SAFETY (pointer arithmetic): this task's rows and head columns.
                            c: unsafe { shared.0.add(row * inner + h * head_dim + p * NR) },
                            ldc: inner,
                            rows: MR.min(queries - m * MR),
                            cols: NR,
                        };
                        // SAFETY: the probabilities hold `frames` steps of 12 at stride 96,
                        // the values `frames` rows of 32 at stride 3·inner; the tile is this
                        // task's own part of `out`.
                        unsafe {
                            tile(
                                scores[m * MR..].as_ptr(),
                                QUERY_BLOCK,
                                qkv[values + p * NR..].as_ptr(),
                                stride,
                                frames,
                                out,
                                Epilogue::NONE,
                                0,
                                0,
                            )
                        };
                    }
                }
            });
        });
}

/// Softmax down each of the first `queries` columns of `scores` (keys × 96, row-major).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_columns(scores: &mut [f32], queries: usize) {
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
            let scale = _mm512_div_ps(_mm512_set1_ps(1.0), sum);
            for t in 0..keys {
                let p = ptr.add(column(t));
                _mm512_storeu_ps(p, _mm512_mul_ps(_mm512_loadu_ps(p), scale));
            }
        }
    }
}
