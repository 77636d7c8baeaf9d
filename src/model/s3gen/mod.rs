//! Ports of chatterbox/models/s3gen.

pub mod f0_predictor;
pub mod hifigan;
pub mod utils;
pub mod xvector;
