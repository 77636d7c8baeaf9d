//! Ports of chatterbox/models/t3.

pub mod inference;
