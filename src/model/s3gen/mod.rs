//! Ports of chatterbox/models/s3gen.

pub mod transformer;
pub mod utils;
pub mod xvector;
