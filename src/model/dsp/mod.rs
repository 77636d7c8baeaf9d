//! Ports of the signal-processing library calls the reference makes.

pub mod istft;
pub mod kaldi;
pub mod mel;
pub mod resample;
pub mod resample_poly;
pub mod stft;
pub mod trim;
