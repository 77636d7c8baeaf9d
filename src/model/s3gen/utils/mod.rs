//! Ports of chatterbox/models/s3gen/utils.

pub mod mel;
