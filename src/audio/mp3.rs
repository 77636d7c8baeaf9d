//! MP3 through LAME (mp3lame-encoder): mono, constant bit rate, the engine's 24 kHz kept (an
//! MPEG-2 layer III stream), a LAME tag for gapless decoding, no ID3 tag.

use mp3lame_encoder::{Bitrate, Builder, FlushGap, MonoPcm, Quality};

/// 64 kbit/s mono: transparent for 24 kHz speech, as the OpenAI-compatible servers serve it.
const BITRATE: Bitrate = Bitrate::Kbps64;
/// LAME's own default (`-q 3`), as the lame command uses it; `-q 0` measured 10×
/// slower for the same bit rate (docs/benchmarks.md, "Audio").
const QUALITY: Quality = Quality::VeryNice;

#[derive(Debug, thiserror::Error)]
#[error("MP3 encoding failed: {0}")]
pub struct Mp3Error(String);

/// `samples` in [-1, 1] at `sample_rate` (LAME accepts 8–48 kHz).
pub fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, Mp3Error> {
    let error = |e: &dyn std::fmt::Debug| Mp3Error(format!("{e:?}"));
    let mut builder = Builder::new().ok_or_else(|| Mp3Error("LAME did not initialise".into()))?;
    builder.set_num_channels(1).map_err(|e| error(&e))?;
    builder
        .set_sample_rate(sample_rate)
        .map_err(|e| error(&e))?;
    builder.set_brate(BITRATE).map_err(|e| error(&e))?;
    builder.set_quality(QUALITY).map_err(|e| error(&e))?;
    // The LAME tag (an Info frame first in the stream) records the encoder delay and padding,
    // so decoders trim them and the file decodes to exactly the input's length.
    builder.set_to_write_vbr_tag(true).map_err(|e| error(&e))?;
    let mut encoder = builder.build().map_err(|e| error(&e))?;
    // LAME's float input is not clamped; out-of-range samples would wrap.
    let clamped: Vec<f32> = samples.iter().map(|s| s.clamp(-1.0, 1.0)).collect();
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(clamped.len()));
    encoder
        .encode_to_vec(MonoPcm(clamped.as_slice()), &mut out)
        .map_err(|e| error(&e))?;
    out.reserve(7200);
    // The padding flush: the no-gap one leaves the last partial frame unwritten.
    encoder
        .flush_to_vec::<FlushGap>(&mut out)
        .map_err(|e| error(&e))?;
    // LAME reserved the first frame for the tag; it can only be filled in now.
    let mut tag = Vec::with_capacity(encoder.lame_tag_size());
    encoder
        .lame_tag_encode_to_vec(&mut tag)
        .ok_or_else(|| Mp3Error("LAME wrote no tag frame".into()))?;
    out.get_mut(..tag.len())
        .ok_or_else(|| Mp3Error("the stream is shorter than its tag frame".into()))?
        .copy_from_slice(&tag);
    Ok(out)
}
