//! Port of chatterbox/models/voice_encoder.

pub mod config;
pub mod melspec;
// Named after the reference file it ports.
#[allow(clippy::module_inception)]
pub mod voice_encoder;

pub use config::VoiceEncConfig;
pub use voice_encoder::VoiceEncoder;
