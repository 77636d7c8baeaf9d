//! Ports of chatterbox/models/s3gen.

#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod r#const;
pub mod decoder;
pub mod estimator_ops;
pub mod f0_predictor;
pub mod flow;
pub mod flow_matching;
pub mod hifigan;
pub mod matcha;
// Named after the reference file it ports.
#[allow(clippy::module_inception)]
pub mod s3gen;
pub mod transformer;
pub mod utils;
pub mod xvector;

pub use r#const::{S3GEN_SIL, S3GEN_SR};
