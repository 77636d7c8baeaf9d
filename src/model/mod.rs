//! The Candle port of Chatterbox (reference: chatterbox-tts 0.1.7 and s3tokenizer 0.3.0 from
//! PyPI). Files mirror the reference package file for file and weights keep its state_dict key
//! names; `dsp` holds the library routines (librosa, torch.stft, torchaudio) the reference calls.
//! Candle only: no async, HTTP or storage here. Randomness is always an argument.

pub mod dsp;
pub mod mtl_tts;
pub mod noise;
pub mod perth;
pub mod random_weights;
pub mod s3gen;
pub mod s3tokenizer;
pub mod t3;
pub mod tokenizers;
pub mod tts;
pub mod tts_turbo;
pub mod vc;
pub mod voice_encoder;
pub mod weights;
