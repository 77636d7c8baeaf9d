//! Ports of chatterbox/models/s3gen.

pub mod r#const;
pub mod transformer;
pub mod utils;
pub mod xvector;

pub use r#const::{S3GEN_SIL, S3GEN_SR};
