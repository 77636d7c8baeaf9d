//! The tile kernel: 8 output channels × one tile of samples accumulated in registers, read
//! from a zero-padded input window in place, for AVX-512, AVX2+FMA, and portable Rust.

/// Output channels per packed weight block; one tile computes all of them.
pub(super) const BLOCK: usize = 8;

/// The vector instructions the kernels use, detected at run time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Samples per tile.
    pub(super) fn tile_width(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::AVX512_TILE,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::AVX2_TILE,
            Isa::Portable => PORTABLE_TILE,
        }
    }
}

/// Where a block's tiles go: 8 rows of `stride` from `out`, starting from the 8 biases plus, if
/// given, the rows at `residual` (same stride; it may be `out` itself).
pub(super) struct Target {
    pub(super) out: *mut f32,
    pub(super) stride: usize,
    pub(super) bias: *const f32,
    pub(super) residual: Option<*const f32>,
}

/// A zero-padded, activated input window: `c_in` rows of `stride` samples.
pub(super) struct Input<'a> {
    pub(super) data: &'a [f32],
    pub(super) stride: usize,
    pub(super) c_in: usize,
    pub(super) taps: usize,
    pub(super) dilation: usize,
}

/// # Safety
/// `target` is valid for 8 rows of `tiles` tile widths, and `input` holds the samples those
/// tiles read from window column `first_column` on.
pub(super) unsafe fn run_block(
    isa: Isa,
    input: &Input,
    weights: &[f32],
    target: &Target,
    first_column: usize,
    tiles: usize,
) {
    // SAFETY (all arms): the caller's guarantee; the ISA was detected on this CPU.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::block_avx512(input, weights, target, first_column, tiles),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::block_avx2(input, weights, target, first_column, tiles),
            Isa::Portable => block::<Portable, 4, 2>(input, weights, target, first_column, tiles),
        }
    }
}

/// A vector of f32 lanes as the tile kernel uses it.
trait Lanes: Copy {
    const WIDTH: usize;
    /// # Safety
    /// `p` must be valid for reading `WIDTH` floats, and the vector ISA must be present.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` must be valid for writing `WIDTH` floats, and the vector ISA must be present.
    unsafe fn store(self, p: *mut f32);
    /// # Safety
    /// The vector ISA must be present.
    unsafe fn splat(value: f32) -> Self;
    /// `a·b + c`.
    /// # Safety
    /// The vector ISA must be present.
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self;
    /// # Safety
    /// The vector ISA must be present.
    unsafe fn add(a: Self, b: Self) -> Self;
}

/// One block of 8 output channels over `tiles` tiles, R rows at a time.
///
/// # Safety
/// As `run_block`.
#[inline(always)]
unsafe fn block<V: Lanes, const R: usize, const NV: usize>(
    input: &Input,
    weights: &[f32],
    target: &Target,
    first_column: usize,
    tiles: usize,
) {
    let width = NV * V::WIDTH;
    for tile_index in 0..tiles {
        let column = tile_index * width;
        for r0 in (0..BLOCK).step_by(R) {
            // SAFETY: the caller's guarantee covers rows r0..r0 + R and these columns.
            unsafe {
                let offset = r0 * target.stride + column;
                tile::<V, R, NV>(
                    input,
                    weights.as_ptr().add(r0),
                    first_column + column,
                    target.bias.add(r0),
                    target.residual.map(|r| r.add(offset)),
                    target.out.add(offset),
                    target.stride,
                )
            };
        }
    }
}

/// out[r][s] = bias[r] + residual[r][s] + Σ_c Σ_t w[c][t][r] · x[c][t0 + s + t·dilation] for R
/// rows and NV vectors of samples, accumulated in registers.
///
/// # Safety
/// `weights` points at row r0 of a packed block (c_in·taps steps of BLOCK floats); `bias`
/// holds R floats; `out` and `residual` are valid for R rows of `stride` holding NV·WIDTH
/// samples; the input holds t0 + NV·WIDTH + (taps − 1)·dilation samples per row.
#[inline(always)]
unsafe fn tile<V: Lanes, const R: usize, const NV: usize>(
    input: &Input,
    weights: *const f32,
    t0: usize,
    bias: *const f32,
    residual: Option<*const f32>,
    out: *mut f32,
    stride: usize,
) {
    // SAFETY (whole body): within the bounds the caller guarantees.
    unsafe {
        let mut acc = [[V::splat(0.0); NV]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            let b = V::splat(*bias.add(r));
            for (v, lane) in row.iter_mut().enumerate() {
                *lane = match residual {
                    Some(res) => V::add(b, V::load(res.add(r * stride + v * V::WIDTH))),
                    None => b,
                };
            }
        }
        let mut w = weights;
        let base = input.data.as_ptr().add(t0);
        for c in 0..input.c_in {
            let channel = base.add(c * input.stride);
            for t in 0..input.taps {
                let x = channel.add(t * input.dilation);
                let mut xs = [V::splat(0.0); NV];
                for (v, lane) in xs.iter_mut().enumerate() {
                    *lane = V::load(x.add(v * V::WIDTH));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let weight = V::splat(*w.add(r));
                    for (lane, xv) in row.iter_mut().zip(&xs) {
                        *lane = V::mul_add(weight, *xv, *lane);
                    }
                }
                w = w.add(BLOCK);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, lane) in row.iter().enumerate() {
                lane.store(out.add(r * stride + v * V::WIDTH));
            }
        }
    }
}

const PORTABLE_TILE: usize = 2 * 8;

/// Eight lanes in plain Rust, for CPUs without AVX2; the compiler vectorises what it can.
#[derive(Clone, Copy)]
struct Portable([f32; 8]);

impl Lanes for Portable {
    const WIDTH: usize = 8;

    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable floats.
        Self(unsafe { std::ptr::read_unaligned(p.cast::<[f32; 8]>()) })
    }

    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable floats.
        unsafe { std::ptr::write_unaligned(p.cast::<[f32; 8]>(), self.0) }
    }

    unsafe fn splat(value: f32) -> Self {
        Self([value; 8])
    }

    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
        let mut out = c.0;
        for ((o, x), y) in out.iter_mut().zip(a.0).zip(b.0) {
            *o += x * y;
        }
        Self(out)
    }

    unsafe fn add(a: Self, b: Self) -> Self {
        let mut out = a.0;
        for (o, y) in out.iter_mut().zip(b.0) {
            *o += y;
        }
        Self(out)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256, __m512, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps,
        _mm256_storeu_ps, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps,
        _mm512_storeu_ps,
    };

    use super::{Input, Lanes, Target, block};

    /// 8 rows × 3 vectors: 24 of the 32 registers accumulate.
    pub(super) const AVX512_TILE: usize = 3 * 16;
    /// 4 rows × 3 vectors: 12 of the 16 registers accumulate.
    pub(super) const AVX2_TILE: usize = 3 * 8;

    #[derive(Clone, Copy)]
    struct Avx512(__m512);

    impl Lanes for Avx512 {
        const WIDTH: usize = 16;

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller guarantees 16 readable floats and AVX-512F.
            Self(unsafe { _mm512_loadu_ps(p) })
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller guarantees 16 writable floats and AVX-512F.
            unsafe { _mm512_storeu_ps(p, self.0) }
        }

        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            // SAFETY: the caller guarantees AVX-512F.
            Self(unsafe { _mm512_set1_ps(value) })
        }

        #[inline(always)]
        unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
            // SAFETY: the caller guarantees AVX-512F.
            Self(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
        }

        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            // SAFETY: the caller guarantees AVX-512F.
            Self(unsafe { _mm512_add_ps(a.0, b.0) })
        }
    }

    #[derive(Clone, Copy)]
    struct Avx2(__m256);

    impl Lanes for Avx2 {
        const WIDTH: usize = 8;

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller guarantees 8 readable floats and AVX.
            Self(unsafe { _mm256_loadu_ps(p) })
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller guarantees 8 writable floats and AVX.
            unsafe { _mm256_storeu_ps(p, self.0) }
        }

        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            // SAFETY: the caller guarantees AVX.
            Self(unsafe { _mm256_set1_ps(value) })
        }

        #[inline(always)]
        unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
            // SAFETY: the caller guarantees FMA.
            Self(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
        }

        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            // SAFETY: the caller guarantees AVX.
            Self(unsafe { _mm256_add_ps(a.0, b.0) })
        }
    }

    /// # Safety
    /// As `super::run_block`, on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_avx512(
        input: &Input,
        weights: &[f32],
        target: &Target,
        first_column: usize,
        tiles: usize,
    ) {
        // SAFETY: the caller's guarantee.
        unsafe { block::<Avx512, 8, 3>(input, weights, target, first_column, tiles) }
    }

    /// # Safety
    /// As `super::run_block`, on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(
        input: &Input,
        weights: &[f32],
        target: &Target,
        first_column: usize,
        tiles: usize,
    ) {
        // SAFETY: the caller's guarantee.
        unsafe { block::<Avx2, 4, 3>(input, weights, target, first_column, tiles) }
    }
}
