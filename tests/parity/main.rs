//! Parity of the Candle port with the reference package, on fixtures from tools/parity/.
//! Each file covers one reference module; tolerances are stated where they are checked.

mod campplus;
mod fixture;
mod frontends;
mod hift;
mod loudness;
mod perth;
mod s3gen_encoder;
mod s3gen_flow;
mod s3gen_pipeline;
mod s3tokenizer;
mod t3;
mod t3_case;
mod t3_sampler;
mod text;
mod tts_e2e;
mod voice_encoder;
