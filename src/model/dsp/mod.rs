//! Ports of the signal-processing library calls the reference makes.

pub mod kaldi;
pub mod mel;
pub mod stft;
