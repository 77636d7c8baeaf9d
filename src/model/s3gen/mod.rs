//! Ports of chatterbox/models/s3gen.

pub mod xvector;
