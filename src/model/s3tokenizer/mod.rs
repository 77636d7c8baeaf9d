//! Ports of chatterbox/models/s3tokenizer and of the s3tokenizer 0.3.0 package it builds on.

pub mod model_v2;
// Named after the reference file it ports.
#[allow(clippy::module_inception)]
pub mod s3tokenizer;
