//! Port of chatterbox/models/s3gen/const.py.

/// S3Gen's mel and output sample rate.
pub const S3GEN_SR: u32 = 24000;
/// The speech token Turbo appends three times after generation (about 120 ms of silence).
pub const S3GEN_SIL: u32 = 4299;
