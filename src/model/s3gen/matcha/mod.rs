//! Ports of chatterbox/models/s3gen/matcha (from Matcha-TTS): the parts the flow's estimator uses.

pub mod decoder;
pub mod transformer;
