//! Port of resemble-perth 1.0.1's implicit watermarker (perth/perth_net/perth_net_implicit),
//! which chatterbox applies to every output. Files mirror the reference's: config.py,
//! audio_processor.py (with the utils.py spectrum helpers), model/__init__.py (`layers`),
//! model/encoder.py, model/decoder.py, model/perth_net.py and perth_watermarker.py.

pub mod audio_processor;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod layers;
pub mod perth_net;
pub mod perth_watermarker;

pub use config::PerthConfig;
pub use perth_watermarker::PerthWatermarker;
