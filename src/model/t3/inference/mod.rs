//! Ports of chatterbox/models/t3/inference.

pub mod sampling;
