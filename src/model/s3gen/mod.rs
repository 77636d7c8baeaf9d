//! Ports of chatterbox/models/s3gen.

pub mod utils;
pub mod xvector;
