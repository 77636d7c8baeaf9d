//! Port of chatterbox/models/voice_encoder.
