//! The vocoder's convolutions on the CPU in f32. Candle's conv1d (a single-threaded im2col
//! copy of every sample per tap, an AVX2 GEMM, then a transpose) reached 20-50 GFLOP/s per core
//! at S3Gen's sizes on the AVX-512 development machine, and its transposed conv with padding is
//! a direct loop; these kernels run at 90-120.
//!
//! A stride-1 convolution (any dilation and zero padding) is split into tasks over ranges of
//! output samples. A task builds the input window its samples read (every input channel, about
//! 256 kB so that it stays in L2), applying the pre-activation (LeakyReLU or Snake) on the way,
//! then runs each block of 8 output channels over it in register tiles of 8 channels × 48
//! (AVX-512) or 24 (AVX2) samples that read the shifted window rows in place (no im2col). The
//! accumulators start from the bias and any residual, and the tiles store straight into the
//! output. A transposed convolution of stride u runs as one such convolution with u·C_out output
//! channels (one per output phase, the polyphase form), whose rows are then interleaved; a
//! strided one, on its input folded into u phases (u·C_in input channels).

use std::ops::Range;

use rayon::prelude::*;

mod activation;
mod kernel;

pub(crate) use self::activation::PreActivation;
use self::activation::activate;
use self::kernel::{BLOCK, Input, Isa, Target, run_block};

/// A packed convolution as the candle ops see it: (c_in, len) in, (c_out, out_len) out, the
/// pre-activation applied to the input.
pub(crate) trait HostConvolution: Sync {
    fn c_in(&self) -> usize;
    fn c_out(&self) -> usize;
    /// Output samples for `len` input samples, or None where there are too few.
    fn out_len(&self, len: usize) -> Option<usize>;
    fn forward(&self, x: &[f32], len: usize, activation: PreActivation) -> Vec<f32>;
}

/// A stride-1 Conv1d's weights in the tile kernel's order: for each block of 8 output channels,
/// for each input channel and tap, the 8 weights (zero rows pad the last block).
pub(crate) struct PackedConv {
    c_in: usize,
    c_out: usize,
    taps: usize,
    dilation: usize,
    pad_left: usize,
    pad_right: usize,
    weights: Vec<f32>,
    /// Zero-padded to whole blocks.
    bias: Vec<f32>,
}

impl PackedConv {
    /// `weight` is torch's Conv1d weight [c_out, c_in, taps], row-major.
    pub(crate) fn new(
        weight: &[f32],
        mut bias: Vec<f32>,
        (c_out, c_in, taps): (usize, usize, usize),
        dilation: usize,
        (pad_left, pad_right): (usize, usize),
    ) -> Self {
        let blocks = c_out.div_ceil(BLOCK);
        bias.resize(blocks * BLOCK, 0.0);
        let mut weights = vec![0f32; blocks * c_in * taps * BLOCK];
        for o in 0..c_out {
            let (block, row) = (o / BLOCK, o % BLOCK);
            for c in 0..c_in {
                for t in 0..taps {
                    weights[((block * c_in + c) * taps + t) * BLOCK + row] =
                        weight[(o * c_in + c) * taps + t];
                }
            }
        }
        Self {
            c_in,
            c_out,
            taps,
            dilation,
            pad_left,
            pad_right,
            weights,
            bias,
        }
    }

    /// `x` is (c_in, len) row-major; returns (c_out, out_len) row-major, or nothing when
    /// `len` is too short (see `out_len`). `residual`, when given, is (c_out, out_len) and added
    /// to the output.
    pub(crate) fn forward_with_residual(
        &self,
        x: &[f32],
        len: usize,
        activation: PreActivation,
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        self.forward_on(Isa::detect(), x, len, activation, residual)
    }

    fn forward_on(
        &self,
        isa: Isa,
        x: &[f32],
        len: usize,
        activation: PreActivation,
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        let Some(out_len) = self.out_len(len) else {
            return Vec::new();
        };
        let width = isa.tile_width();
        let tiles = out_len.div_ceil(width);
        // Enough tasks to fill the cores evenly, each small enough for its input window.
        let threads = rayon::current_num_threads();
        let by_window = tiles.div_ceil((WINDOW_FLOATS / (self.c_in * width)).max(1));
        let chunks = by_window.div_ceil(threads) * threads;
        let chunks = chunks.clamp(1, tiles.max(1));
        let mut out = Vec::with_capacity(self.c_out * out_len);
        let shared = SharedOut {
            data: out.as_mut_ptr(),
            row_len: out_len,
        };
        let chunk = Chunk {
            conv: self,
            isa,
            x,
            len,
            activation,
            residual,
        };
        (0..chunks).into_par_iter().for_each(|index| {
            let start = index * tiles / chunks * width;
            let end = ((index + 1) * tiles / chunks * width).min(out_len);
            chunk.run(start, end - start, &shared);
        });
        // SAFETY: the chunks partition the columns and each writes its columns of every row.
        unsafe { out.set_len(self.c_out * out_len) };
        out
    }
}

impl HostConvolution for PackedConv {
    fn c_in(&self) -> usize {
        self.c_in
    }

    fn c_out(&self) -> usize {
        self.c_out
    }

    fn out_len(&self, len: usize) -> Option<usize> {
        (len + self.pad_left + self.pad_right).checked_sub(self.dilation * (self.taps - 1))
    }

    fn forward(&self, x: &[f32], len: usize, activation: PreActivation) -> Vec<f32> {
        self.forward_with_residual(x, len, activation, None)
    }
}

/// Samples of input (all channels) one task keeps: ~256 kB, which stays in L2 while every
/// block of output channels passes over it.
const WINDOW_FLOATS: usize = 64 * 1024;

/// The output, written by tasks that own disjoint column ranges of every row.
struct SharedOut {
    data: *mut f32,
    row_len: usize,
}

// SAFETY: tasks write disjoint ranges (see `Chunk::run`), and the vector outlives them.
unsafe impl Sync for SharedOut {}

/// One task of a convolution: a range of output samples for every output channel.
struct Chunk<'a> {
    conv: &'a PackedConv,
    isa: Isa,
    x: &'a [f32],
    len: usize,
    activation: PreActivation<'a>,
    residual: Option<&'a [f32]>,
}

impl Chunk<'_> {
    /// Output samples start..start + samples of every channel: the activated input window they
    /// read (zero outside the signal), then each block of 8 channels, whole tiles straight into
    /// the output and the rest through a scratch copy.
    fn run(&self, start: usize, samples: usize, out: &SharedOut) {
        let conv = self.conv;
        let width = self.isa.tile_width();
        let stride = samples.div_ceil(width) * width + conv.dilation * (conv.taps - 1);
        // Window position j is padded input start + j, i.e. signal sample start + j − pad_left.
        let skip = conv.pad_left.saturating_sub(start);
        let first = (start + skip) - conv.pad_left;
        let last = (start + stride).saturating_sub(conv.pad_left).min(self.len);
        let mut window = vec![0f32; conv.c_in * stride];
        if last > first {
            for (c, row) in window.chunks_exact_mut(stride).enumerate() {
                let src = &self.x[c * self.len..][first..last];
                activate(
                    self.activation,
                    c,
                    src,
                    &mut row[skip..][..last - first],
                    self.isa,
                );
            }
        }
        let input = Input {
            data: &window,
            stride,
            c_in: conv.c_in,
            taps: conv.taps,
            dilation: conv.dilation,
        };
        let whole_tiles = samples / width;
        let block_weights = conv.c_in * conv.taps * BLOCK;
        for (block, weights) in conv.weights.chunks_exact(block_weights).enumerate() {
            let rows = BlockRows {
                first: block * BLOCK,
                live: BLOCK.min(conv.c_out - block * BLOCK),
            };
            let mut done = 0;
            if rows.live == BLOCK {
                let offset = rows.first * out.row_len + start;
                let target = Target {
                    // SAFETY: rows first..first + 8 exist, and this task owns their columns
                    // start..start + samples (see `forward_on`).
                    out: unsafe { out.data.add(offset) },
                    stride: out.row_len,
                    bias: conv.bias[rows.first..].as_ptr(),
                    residual: self.residual.map(|r| r[offset..].as_ptr()),
                };
                // SAFETY: whole tiles end within the task's columns and the window.
                unsafe { run_block(self.isa, &input, weights, &target, 0, whole_tiles) };
                done = whole_tiles * width;
            }
            if done < samples {
                self.through_scratch(&input, weights, rows, start, done..samples, out);
            }
        }
    }

    /// Columns `columns` (relative to `start`) of a block's live rows, computed on an 8-row copy:
    /// for the tile that overhangs the output's end, and for a block with fewer than 8 channels.
    fn through_scratch(
        &self,
        input: &Input,
        weights: &[f32],
        rows: BlockRows,
        start: usize,
        columns: Range<usize>,
        out: &SharedOut,
    ) {
        let width = self.isa.tile_width();
        let count = columns.len();
        let padded = count.div_ceil(width) * width;
        let mut scratch = vec![0f32; BLOCK * padded];
        if let Some(residual) = self.residual {
            for (r, row) in scratch.chunks_exact_mut(padded).take(rows.live).enumerate() {
                let from = (rows.first + r) * out.row_len + start + columns.start;
                row[..count].copy_from_slice(&residual[from..][..count]);
            }
        }
        let mut bias = [0f32; BLOCK];
        bias[..rows.live].copy_from_slice(&self.conv.bias[rows.first..][..rows.live]);
        let target = Target {
            out: scratch.as_mut_ptr(),
            stride: padded,
            bias: bias.as_ptr(),
            residual: Some(scratch.as_ptr()),
        };
        // SAFETY: `scratch` holds 8 rows of `padded` columns; the window extends to the end of
        // the task's last tile.
        unsafe {
            run_block(
                self.isa,
                input,
                weights,
                &target,
                columns.start,
                padded / width,
            )
        };
        for (r, row) in scratch.chunks_exact(padded).take(rows.live).enumerate() {
            let offset = (rows.first + r) * out.row_len + start + columns.start;
            // SAFETY: this task alone writes these columns of the row.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.data.add(offset), count) };
            dst.copy_from_slice(&row[..count]);
        }
    }
}

/// The output channels of one weight block: `live` of the 8 exist.
#[derive(Clone, Copy)]
struct BlockRows {
    first: usize,
    live: usize,
}

/// torch's ConvTranspose1d (stride u, padding p, kernel k, no output padding) as a stride-1
/// convolution with one output channel per (channel, phase): output sample q·u + r of channel o
/// is row o·u + r of that convolution at position q.
pub(crate) struct PackedTransposedConv {
    phases: PackedConv,
    c_out: usize,
    stride: usize,
    kernel: usize,
    padding: usize,
}

impl PackedTransposedConv {
    /// `weight` is torch's ConvTranspose1d weight [c_in, c_out, k], row-major.
    pub(crate) fn new(
        weight: &[f32],
        bias: &[f32],
        (c_in, c_out, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Self {
        // Input sample i feeds output n through tap j = n + p − i·u. With n = q·u + r and
        // i = q + t − left, the tap is j = r + p + (left − t)·u: `left` is the smallest shift
        // that keeps t ≥ 0 for every phase, and `taps` covers the largest t any phase uses.
        let left = (kernel - 1).saturating_sub(padding) / stride;
        let taps = padding.div_ceil(stride) + left + 1;
        let mut expanded = vec![0f32; c_out * stride * c_in * taps];
        for o in 0..c_out {
            for r in 0..stride {
                for t in 0..taps {
                    let Some(j) = (r + padding + left * stride).checked_sub(t * stride) else {
                        continue;
                    };
                    if j >= kernel {
                        continue;
                    }
                    for c in 0..c_in {
                        expanded[((o * stride + r) * c_in + c) * taps + t] =
                            weight[(c * c_out + o) * kernel + j];
                    }
                }
            }
        }
        let bias = bias
            .iter()
            .flat_map(|b| std::iter::repeat_n(*b, stride))
            .collect();
        // The output spans ⌈(k − 2p)/u⌉ − 1 positions beyond the input's (none in S3Gen, where
        // k − 2p = u); the right padding gives the phase convolution those positions.
        let extra = (kernel.saturating_sub(2 * padding))
            .div_ceil(stride)
            .saturating_sub(1);
        let phases = PackedConv::new(
            &expanded,
            bias,
            (c_out * stride, c_in, taps),
            1,
            (left, taps - 1 - left + extra),
        );
        Self {
            phases,
            c_out,
            stride,
            kernel,
            padding,
        }
    }
}

impl HostConvolution for PackedTransposedConv {
    fn c_in(&self) -> usize {
        self.phases.c_in
    }

    fn c_out(&self) -> usize {
        self.c_out
    }

    /// torch's output length, or None where the padding swallows it.
    fn out_len(&self, len: usize) -> Option<usize> {
        let full = len.checked_sub(1)? * self.stride + self.kernel;
        full.checked_sub(2 * self.padding)
    }

    fn forward(&self, x: &[f32], len: usize, activation: PreActivation) -> Vec<f32> {
        let out_len = self.out_len(len).unwrap_or(0);
        let positions = self.phases.out_len(len).unwrap_or(0);
        let phases = self.phases.forward(x, len, activation);
        let u = self.stride;
        let mut out = vec![0f32; self.c_out * out_len];
        if positions == 0 {
            return out;
        }
        out.par_chunks_mut(out_len.max(1))
            .zip(phases.par_chunks(u * positions))
            .for_each(|(row, phase_rows)| {
                for (r, phase) in phase_rows.chunks_exact(positions).enumerate() {
                    for (q, value) in phase.iter().enumerate() {
                        if let Some(slot) = row.get_mut(q * u + r) {
                            *slot = *value;
                        }
                    }
                }
            });
        out
    }
}

/// torch's Conv1d with a stride u (kernel k, zero padding p) as a stride-1 convolution on the
/// input folded into u phases: input channel c's samples m·u + r − p become row c·u + r at
/// position m, and tap q·u + r of the kernel becomes tap q of that row.
pub(crate) struct PackedStridedConv {
    folded: PackedConv,
    c_in: usize,
    stride: usize,
    kernel: usize,
    padding: usize,
}

impl PackedStridedConv {
    /// `weight` is torch's Conv1d weight [c_out, c_in, k], row-major.
    pub(crate) fn new(
        weight: &[f32],
        bias: Vec<f32>,
        (c_out, c_in, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Self {
        let taps = kernel.div_ceil(stride);
        let mut folded = vec![0f32; c_out * c_in * stride * taps];
        for o in 0..c_out {
            for c in 0..c_in {
                for j in 0..kernel {
                    let (q, r) = (j / stride, j % stride);
                    folded[((o * c_in + c) * stride + r) * taps + q] =
                        weight[(o * c_in + c) * kernel + j];
                }
            }
        }
        Self {
            folded: PackedConv::new(&folded, bias, (c_out, c_in * stride, taps), 1, (0, 0)),
            c_in,
            stride,
            kernel,
            padding,
        }
    }
}

impl HostConvolution for PackedStridedConv {
    fn c_in(&self) -> usize {
        self.c_in
    }

    fn c_out(&self) -> usize {
        self.folded.c_out
    }

    fn out_len(&self, len: usize) -> Option<usize> {
        Some((len + 2 * self.padding).checked_sub(self.kernel)? / self.stride + 1)
    }

    fn forward(&self, x: &[f32], len: usize, activation: PreActivation) -> Vec<f32> {
        let Some(out_len) = self.out_len(len) else {
            return Vec::new();
        };
        let (u, positions) = (self.stride, out_len + self.folded.taps - 1);
        let isa = Isa::detect();
        let mut activated = vec![0f32; len];
        let mut folded = vec![0f32; self.c_in * u * positions];
        for (c, rows) in folded.chunks_exact_mut(u * positions).enumerate() {
            activate(activation, c, &x[c * len..][..len], &mut activated, isa);
            for (r, row) in rows.chunks_exact_mut(positions).enumerate() {
                for (m, slot) in row.iter_mut().enumerate() {
                    let i = (m * u + r).checked_sub(self.padding);
                    if let Some(value) = i.and_then(|i| activated.get(i)) {
                        *slot = *value;
                    }
                }
            }
        }
        self.folded
            .forward(&folded, positions, PreActivation::Identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, salt: usize) -> Vec<f32> {
        (0..count)
            .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5) - 1.0)
            .collect()
    }

    /// Direct evaluation of torch's Conv1d (zero padding) in f64.
    fn conv_reference(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        (c_out, c_in, taps): (usize, usize, usize),
        len: usize,
        dilation: usize,
        (pad_left, pad_right): (usize, usize),
    ) -> Vec<f32> {
        let out_len = len + pad_left + pad_right - dilation * (taps - 1);
        let mut out = vec![0f32; c_out * out_len];
        for o in 0..c_out {
            for n in 0..out_len {
                let mut sum = f64::from(b[o]);
                for c in 0..c_in {
                    for t in 0..taps {
                        let Some(i) = (n + t * dilation).checked_sub(pad_left) else {
                            continue;
                        };
                        if i < len {
                            sum +=
                                f64::from(w[(o * c_in + c) * taps + t]) * f64::from(x[c * len + i]);
                        }
                    }
                }
                out[o * out_len + n] = sum as f32;
            }
        }
        out
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Every kernel this CPU can run, the portable one included.
    fn isas() -> Vec<Isa> {
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                isas.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
        }
        isas
    }

    #[test]
    fn convolution_matches_direct_evaluation_on_every_isa() {
        for (c_out, c_in, taps, dilation, pads, len) in [
            (16, 5, 7, 3, (9, 9), 100),
            (18, 8, 3, 1, (1, 1), 47),
            (8, 3, 1, 1, (0, 0), 5),
            (5, 4, 11, 5, (25, 25), 3),
            (9, 2000, 3, 1, (1, 1), 300),
            (3, 2, 3, 2, (0, 4), 9),
        ] {
            let x = values(c_in * len, 1);
            let w = values(c_out * c_in * taps, 2);
            let b = values(c_out, 3);
            let conv = PackedConv::new(&w, b.clone(), (c_out, c_in, taps), dilation, pads);
            let want = conv_reference(&x, &w, &b, (c_out, c_in, taps), len, dilation, pads);
            // f32 sums of up to 6000 terms against f64 ones.
            let tolerance = 1e-5 * want.iter().fold(1f32, |m, v| m.max(v.abs()));
            for isa in isas() {
                let got = conv.forward_on(isa, &x, len, PreActivation::Identity, None);
                let diff = max_diff(&got, &want);
                assert!(diff < tolerance, "{isa:?} {c_out}x{c_in}x{taps}: {diff}");
            }
        }
    }

    #[test]
    fn activations_and_residual_apply_before_and_after() {
        let (c_out, c_in, taps, len) = (9, 3, 3, 30);
        let x = values(c_in * len, 4);
        let w = values(c_out * c_in * taps, 5);
        let b = values(c_out, 6);
        let residual = values(c_out * len, 7);
        let alpha = [0.8f32, 1.0, 1.2];
        let inv_alpha: Vec<f32> = alpha.iter().map(|a| 1.0 / (a + 1e-9)).collect();
        let conv = PackedConv::new(&w, b.clone(), (c_out, c_in, taps), 1, (1, 1));
        let snake = PreActivation::Snake {
            alpha: &alpha,
            inv_alpha: &inv_alpha,
        };
        let snaked: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let a = alpha[i / len];
                v + (1.0 / (a + 1e-9)) * (v * a).sin().powi(2)
            })
            .collect();
        let mut want = conv_reference(&snaked, &w, &b, (c_out, c_in, taps), len, 1, (1, 1));
        for (y, r) in want.iter_mut().zip(&residual) {
            *y += r;
        }
        let got = conv.forward_with_residual(&x, len, snake, Some(&residual));
        assert!(max_diff(&got, &want) < 1e-5);

        let leaky: Vec<f32> = x
            .iter()
            .map(|v| if *v > 0.0 { *v } else { 0.1 * v })
            .collect();
        let want = conv_reference(&leaky, &w, &b, (c_out, c_in, taps), len, 1, (1, 1));
        let got = conv.forward(&x, len, PreActivation::LeakyRelu(0.1));
        assert!(max_diff(&got, &want) < 1e-5);
    }

    /// Direct evaluation of torch's ConvTranspose1d in f64.
    fn transposed_reference(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        (c_in, c_out, kernel): (usize, usize, usize),
        len: usize,
        stride: usize,
        padding: usize,
    ) -> Vec<f32> {
        let out_len = (len - 1) * stride + kernel - 2 * padding;
        let mut out: Vec<f64> = (0..c_out * out_len)
            .map(|i| f64::from(b[i / out_len]))
            .collect();
        for c in 0..c_in {
            for o in 0..c_out {
                for i in 0..len {
                    for j in 0..kernel {
                        let Some(n) = (i * stride + j).checked_sub(padding) else {
                            continue;
                        };
                        if n < out_len {
                            out[o * out_len + n] += f64::from(w[(c * c_out + o) * kernel + j])
                                * f64::from(x[c * len + i]);
                        }
                    }
                }
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn transposed_convolution_matches_direct_evaluation() {
        for (c_in, c_out, kernel, stride, padding, len) in [
            (6, 4, 16, 8, 4, 9),
            (5, 3, 11, 5, 3, 7),
            (4, 8, 7, 3, 2, 13),
            (3, 2, 5, 2, 0, 4),
            (3, 2, 4, 2, 3, 6),
        ] {
            let x = values(c_in * len, 8);
            let w = values(c_in * c_out * kernel, 9);
            let b = values(c_out, 10);
            let conv = PackedTransposedConv::new(&w, &b, (c_in, c_out, kernel), stride, padding);
            let want =
                transposed_reference(&x, &w, &b, (c_in, c_out, kernel), len, stride, padding);
            let got = conv.forward(&x, len, PreActivation::Identity);
            assert!(
                max_diff(&got, &want) < 1e-5,
                "k{kernel} s{stride} p{padding}: {}",
                max_diff(&got, &want)
            );
        }
    }

    #[test]
    fn strided_convolution_matches_direct_evaluation() {
        for (c_out, c_in, kernel, stride, padding, len) in [
            (16, 18, 30, 15, 7, 241),
            (9, 18, 6, 3, 1, 40),
            (8, 3, 1, 1, 0, 17),
            (4, 2, 5, 2, 0, 11),
        ] {
            let x = values(c_in * len, 11);
            let w = values(c_out * c_in * kernel, 12);
            let b = values(c_out, 13);
            let conv =
                PackedStridedConv::new(&w, b.clone(), (c_out, c_in, kernel), stride, padding);
            let out_len = (len + 2 * padding - kernel) / stride + 1;
            assert_eq!(conv.out_len(len), Some(out_len));
            let dense = conv_reference(
                &x,
                &w,
                &b,
                (c_out, c_in, kernel),
                len,
                1,
                (padding, padding),
            );
            let dense_len = dense.len() / c_out;
            let want: Vec<f32> = (0..c_out * out_len)
                .map(|i| dense[(i / out_len) * dense_len + (i % out_len) * stride])
                .collect();
            let got = conv.forward(&x, len, PreActivation::Identity);
            let tolerance = 1e-5 * want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let diff = max_diff(&got, &want);
            assert!(diff < tolerance, "k{kernel} s{stride} p{padding}: {diff}");
        }
    }
}
