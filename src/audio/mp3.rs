//! MP3 through LAME (mp3lame-encoder): mono, constant bit rate, the engine's 24 kHz kept (an
//! MPEG-2 layer III stream), a LAME tag for gapless decoding, no ID3 tag.

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushGap, MonoPcm, Quality};

/// 64 kbit/s mono: transparent for 24 kHz speech, as the OpenAI-compatible servers serve it.
const BITRATE: Bitrate = Bitrate::Kbps64;
/// LAME's own default (`-q 3`), as the lame command uses it; `-q 0` measured 10×
/// slower for the same bit rate (docs/benchmarks.md, "Audio").
const QUALITY: Quality = Quality::VeryNice;

#[derive(Debug, thiserror::Error)]
#[error("MP3 encoding failed: {0}")]
pub struct Mp3Error(String);

fn error(e: impl std::fmt::Debug) -> Mp3Error {
    Mp3Error(format!("{e:?}"))
}

/// LAME set up for mono at `sample_rate`; `tag` reserves the first frame for the LAME tag.
fn encoder(sample_rate: u32, tag: bool) -> Result<Encoder, Mp3Error> {
    let mut builder = Builder::new().ok_or_else(|| Mp3Error("LAME did not initialise".into()))?;
    builder.set_num_channels(1).map_err(error)?;
    builder.set_sample_rate(sample_rate).map_err(error)?;
    builder.set_brate(BITRATE).map_err(error)?;
    builder.set_quality(QUALITY).map_err(error)?;
    builder.set_to_write_vbr_tag(tag).map_err(error)?;
    builder.build().map_err(error)
}

/// Encodes `samples` onto `out`; LAME's float input is not clamped, and out-of-range samples
/// would wrap.
fn encode_onto(encoder: &mut Encoder, samples: &[f32], out: &mut Vec<u8>) -> Result<(), Mp3Error> {
    let clamped: Vec<f32> = samples.iter().map(|s| s.clamp(-1.0, 1.0)).collect();
    out.reserve(mp3lame_encoder::max_required_buffer_size(clamped.len()));
    encoder
        .encode_to_vec(MonoPcm(clamped.as_slice()), out)
        .map_err(error)?;
    Ok(())
}

/// The padding flush: the no-gap one leaves the last partial frame unwritten.
fn flush_onto(encoder: &mut Encoder, out: &mut Vec<u8>) -> Result<(), Mp3Error> {
    out.reserve(7200);
    encoder.flush_to_vec::<FlushGap>(out).map_err(error)?;
    Ok(())
}

/// `samples` in [-1, 1] at `sample_rate` (LAME accepts 8–48 kHz).
pub fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, Mp3Error> {
    // The LAME tag (an Info frame first in the stream) records the encoder delay and padding,
    // so decoders trim them and the file decodes to exactly the input's length.
    let mut encoder = encoder(sample_rate, true)?;
    let mut out = Vec::new();
    encode_onto(&mut encoder, samples, &mut out)?;
    flush_onto(&mut encoder, &mut out)?;
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

/// One MP3 stream written as its audio arrives. Without a LAME tag (the first frame cannot
/// be rewritten once sent), so decoders keep LAME's delay: about 50 ms of silence up front.
pub struct Mp3Stream(Encoder);

impl Mp3Stream {
    pub fn new(sample_rate: u32) -> Result<Self, Mp3Error> {
        Ok(Self(encoder(sample_rate, false)?))
    }

    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, Mp3Error> {
        let mut out = Vec::new();
        encode_onto(&mut self.0, samples, &mut out)?;
        Ok(out)
    }

    pub fn finish(mut self) -> Result<Vec<u8>, Mp3Error> {
        let mut out = Vec::new();
        flush_onto(&mut self.0, &mut out)?;
        Ok(out)
    }
}
