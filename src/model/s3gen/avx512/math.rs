//! Element-wise functions on 16 lanes: exp, torch's GELU and Mish. Each is accurate to a few f32
//! ulps, as torch's own vectorised versions are (they differ from the correctly rounded results
//! by similar amounts).

use std::arch::x86_64::*;

/// ln 2 split so that n·LN2_HI is exact for the n an f32 exponent can take (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// eˣ: x = n·ln 2 + r with |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial (truncation below
/// 6e-9 relative), scaled by 2ⁿ. Inputs are clamped to where f32 results are finite and normal
/// enough to matter.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn exp(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-104.0)),
        _mm512_set1_ps(88.7),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// torch's exact GELU, x/2·(1 + erf(x/√2)), with erf from Abramowitz & Stegun 7.1.26
/// (|error| ≤ 1.5e-7), the formula ATen's vectorised erf uses.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn gelu(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let a = _mm512_abs_ps(z);
    let t = _mm512_div_ps(
        _mm512_set1_ps(1.0),
        _mm512_fmadd_ps(_mm512_set1_ps(0.327_591_1), a, _mm512_set1_ps(1.0)),
    );
    let mut poly = _mm512_set1_ps(1.061_405_4);
    for c in [-1.453_152_1, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
    }
    let tail = _mm512_mul_ps(
        _mm512_mul_ps(poly, t),
        exp(_mm512_mul_ps(a, _mm512_sub_ps(_mm512_setzero_ps(), a))),
    );
    let erf_abs = _mm512_sub_ps(_mm512_set1_ps(1.0), tail);
    let sign = _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(i32::MIN));
    let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs), sign));
    _mm512_mul_ps(
        _mm512_mul_ps(x, _mm512_set1_ps(0.5)),
        _mm512_add_ps(_mm512_set1_ps(1.0), erf),
    )
}

/// Mish, x·tanh(softplus(x)) = x·n/(n + 2) with n = eˣ(eˣ + 2); beyond x = 20 the ratio is 1 in
/// f32 (and n would overflow), so x itself.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn mish(x: __m512) -> __m512 {
    let e = exp(_mm512_min_ps(x, _mm512_set1_ps(20.0)));
    let n = _mm512_mul_ps(e, _mm512_add_ps(e, _mm512_set1_ps(2.0)));
    let y = _mm512_div_ps(_mm512_mul_ps(x, n), _mm512_add_ps(n, _mm512_set1_ps(2.0)));
    let large = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(20.0));
    _mm512_mask_blend_ps(large, y, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `f` to `xs` 16 at a time (the length must be a multiple of 16).
    fn map(xs: &[f32], f: unsafe fn(__m512) -> __m512) -> Vec<f32> {
        let mut out = vec![0f32; xs.len()];
        for (o, x) in out.chunks_exact_mut(16).zip(xs.chunks_exact(16)) {
            // SAFETY: the tests run only where AVX-512F is present; the chunks hold 16 values.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), f(_mm512_loadu_ps(x.as_ptr()))) };
        }
        out
    }

    fn grid(low: f32, high: f32) -> Vec<f32> {
        let n = 16 * 4096;
        (0..n)
            .map(|i| low + (high - low) * i as f32 / (n - 1) as f32)
            .collect()
    }

    fn check(
        name: &str,
        f: unsafe fn(__m512) -> __m512,
        exact: fn(f64) -> f64,
        xs: &[f32],
        rel: f64,
        abs: f64,
    ) {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        for (x, y) in xs.iter().zip(map(xs, f)) {
            let want = exact(f64::from(*x));
            let err = (f64::from(y) - want).abs();
            assert!(
                err <= rel * want.abs() + abs,
                "{name}({x}) = {y}, want {want}"
            );
        }
    }

    #[test]
    fn exp_is_accurate_to_a_few_ulps() {
        check("exp", exp, f64::exp, &grid(-87.0, 88.0), 3e-7, 0.0);
        check("exp", exp, f64::exp, &grid(-1.0, 1.0), 2e-7, 0.0);
    }

    /// The erf approximation's absolute error (1.5e-7) times x/2 dominates.
    #[test]
    fn gelu_matches_the_erf_form() {
        let gelu_exact =
            |x: f64| 0.5 * x * (1.0 + candle_core::cpu::erf::erf_f64(x / std::f64::consts::SQRT_2));
        check("gelu", gelu, gelu_exact, &grid(-10.0, 10.0), 2e-7, 8e-7);
    }

    #[test]
    fn mish_matches_its_definition() {
        let mish_exact = |x: f64| x * x.exp().ln_1p().tanh();
        check("mish", mish, mish_exact, &grid(-30.0, 30.0), 3e-7, 1e-12);
    }
}
