//! Ports of chatterbox/models/s3gen.

#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod decoder;
pub mod estimator_ops;
pub mod flow_matching;
pub mod matcha;
pub mod utils;
pub mod xvector;
