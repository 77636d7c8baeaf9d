//! The pre-activations a convolution applies while copying its input window: LeakyReLU, and
//! Snake with a vectorised sine (libm's sine costs more than the convolution it feeds).

use super::kernel::Isa;

/// Snake arguments beyond this go to libm: the fast sine's range reduction is exact only for
/// quotients by π/2 below 2^13 or so.
const FAST_SIN_LIMIT: f32 = 8192.0;

/// What a convolution applies to its input first.
#[derive(Clone, Copy)]
pub(crate) enum PreActivation<'a> {
    Identity,
    LeakyRelu(f32),
    /// `x + sin²(αx)/(α + 1e-9)` per channel; the reciprocals are precomputed as torch does.
    Snake {
        alpha: &'a [f32],
        inv_alpha: &'a [f32],
    },
}

pub(super) fn activate(
    activation: PreActivation,
    channel: usize,
    src: &[f32],
    dst: &mut [f32],
    isa: Isa,
) {
    match activation {
        PreActivation::Identity => dst.copy_from_slice(src),
        PreActivation::LeakyRelu(slope) => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = if *s > 0.0 { *s } else { *s * slope };
            }
        }
        PreActivation::Snake { alpha, inv_alpha } => {
            snake(src, dst, alpha[channel], inv_alpha[channel], isa)
        }
    }
}

/// Snake with the vectorised sine where the CPU has FMA, libm's otherwise or for huge arguments.
fn snake(src: &[f32], dst: &mut [f32], alpha: f32, inv_alpha: f32, isa: Isa) {
    let fast_ok = match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` found AVX-512F on this CPU.
        Isa::Avx512 => unsafe { x86::snake_avx512(src, dst, alpha, inv_alpha) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` found AVX2 and FMA on this CPU.
        Isa::Avx2 => unsafe { x86::snake_avx2(src, dst, alpha, inv_alpha) },
        Isa::Portable => false,
    };
    if !fast_ok {
        for (d, s) in dst.iter_mut().zip(src) {
            let sin = (s * alpha).sin();
            *d = s + inv_alpha * (sin * sin);
        }
    }
}

/// Snake through [`sin_fma`]; false when an argument is too large for it (then `dst` is
/// incomplete and the caller recomputes it).
#[inline(always)]
fn snake_fma(src: &[f32], dst: &mut [f32], alpha: f32, inv_alpha: f32) -> bool {
    let mut too_large = 0u32;
    for (d, s) in dst.iter_mut().zip(src) {
        let arg = s * alpha;
        too_large |= u32::from(arg.abs() > FAST_SIN_LIMIT);
        let sin = sin_fma(arg);
        *d = s + inv_alpha * (sin * sin);
    }
    too_large == 0
}

/// sin(x) for |x| ≤ [`FAST_SIN_LIMIT`] within about 1 ulp, branch-free so that it vectorises:
/// x = j·π/2 + r with a two-part π/2 and fused multiply-adds (exact for such j), then the
/// Cephes minimax polynomials for sin and cos on |r| ≤ π/4, chosen and signed by j mod 4.
/// Only fast where `mul_add` is an instruction, i.e. inside FMA-enabled functions.
#[inline(always)]
fn sin_fma(x: f32) -> f32 {
    const TWO_OVER_PI: f32 = std::f32::consts::FRAC_2_PI;
    const PI_2_HI: f32 = std::f32::consts::FRAC_PI_2;
    const PI_2_LO: f32 = -4.371_139e-8;
    // Adding 1.5·2^23 rounds to an integer and leaves it in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let shifted = x.mul_add(TWO_OVER_PI, SHIFTER);
    let quadrant = shifted.to_bits();
    let j = shifted - SHIFTER;
    let r = j.mul_add(-PI_2_LO, j.mul_add(-PI_2_HI, x));
    let r2 = r * r;
    let sin = (r * r2).mul_add(
        r2.mul_add(r2.mul_add(-1.951_529_6e-4, 8.332_161e-3), -1.666_665_5e-1),
        r,
    );
    let cos = (r2 * r2).mul_add(
        r2.mul_add(r2.mul_add(2.443_315_7e-5, -1.388_731_6e-3), 4.166_664_6e-2),
        0.5f32.mul_add(-r2, 1.0),
    );
    let value = if quadrant & 1 == 0 { sin } else { cos };
    f32::from_bits(value.to_bits() ^ ((quadrant & 2) << 30))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::snake_fma;

    #[target_feature(enable = "avx512f")]
    pub(super) fn snake_avx512(src: &[f32], dst: &mut [f32], alpha: f32, inv_alpha: f32) -> bool {
        snake_fma(src, dst, alpha, inv_alpha)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn snake_avx2(src: &[f32], dst: &mut [f32], alpha: f32, inv_alpha: f32) -> bool {
        snake_fma(src, dst, alpha, inv_alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sin_fma` is exact code wherever it runs (`mul_add` is always fused), so the test calls it
    /// directly; only its speed needs FMA. Errors count in ulps of max(|sin x|, 2⁻¹⁰): near the
    /// zeros of sin at large x, the two-part π/2 leaves ~1e-11 absolute, far below Snake's x term.
    #[test]
    fn fast_sine_is_within_two_ulp_of_libm() {
        let ulps = |x: f32| {
            let want = f64::from(x).sin();
            let magnitude = (want.abs() as f32).max(1.0 / 1024.0);
            (f64::from(sin_fma(x)) - want).abs() / f64::from(magnitude.next_up() - magnitude)
        };
        let grid = (-300_000..300_000).map(|i| i as f32 * 0.0273);
        let edges = [FAST_SIN_LIMIT, -FAST_SIN_LIMIT, 0.785, 2.356];
        let worst = grid.chain(edges).map(ulps).fold(0.0, f64::max);
        assert!(worst <= 2.0, "worst error {worst} ulp");
        for tiny in [1e-30f32, -1e-5, 3e-4] {
            assert_eq!(sin_fma(tiny), tiny);
        }
    }

    #[test]
    fn snake_falls_back_to_libm_for_huge_arguments() {
        let x = [1.0f32, FAST_SIN_LIMIT * 3.0, -2.0];
        let mut out = [0f32; 3];
        snake(&x, &mut out, 1.0, 1.0, Isa::detect());
        for (v, got) in x.iter().zip(out) {
            assert_eq!(got, v + v.sin() * v.sin());
        }
    }
}
