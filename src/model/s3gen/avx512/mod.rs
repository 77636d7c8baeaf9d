//! AVX-512 kernels for the CFM estimator on the CPU in f32 (decoder.rs, matcha/transformer.rs):
//! the matrix products with their bias, GELU and residual fused, the attention without head
//! transposes, and the norm-and-Mish rows. candle's generic CPU path runs these as separate
//! passes, single-threaded where element-wise, on AVX2 matrix kernels; here the estimator's
//! 56 transformer and 14 residual blocks run at the speed of the FMA units.
//! estimator_ops.rs chooses between these and candle's ops.

pub(crate) mod attention;
pub(crate) mod gemm;
mod math;
pub(crate) mod rows;

/// Proof that the CPU runs AVX-512F: the kernels' safe entry points require one.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

impl Avx512 {
    pub fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx512f").then_some(Self(()))
    }
}
