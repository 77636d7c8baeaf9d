//! FLAC through flacenc (pure Rust): 16-bit mono, fixed 4096-sample blocks, MD5 in STREAMINFO.

use flacenc::bitsink::ByteSink;
use flacenc::component::BitRepr;
use flacenc::error::Verify;

use super::wav::to_i16;

const BITS_PER_SAMPLE: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("FLAC encoding failed: {0}")]
pub struct FlacError(String);

/// Encodes mono `samples` losslessly at 16 bits: it decodes to what the 16-bit WAV holds.
pub fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, FlacError> {
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| FlacError(e.to_string()))?;
    let block_size = config.block_size;
    let pcm: Vec<i32> = samples.iter().map(|&s| i32::from(to_i16(s))).collect();
    let source =
        flacenc::source::MemSource::from_samples(&pcm, 1, BITS_PER_SAMPLE, sample_rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, block_size)
        .map_err(|e| FlacError(format!("{e:?}")))?;
    let mut sink = ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| FlacError(format!("{e:?}")))?;
    let mut bytes = sink.into_inner();
    fix_min_block_size(&mut bytes);
    Ok(bytes)
}

/// flacenc records the short last block as STREAMINFO's minimum block size (flacenc-rs issue
/// 242); the format excludes the last block, and symphonia refuses such files. With fixed
/// blocks the minimum is the maximum.
fn fix_min_block_size(bytes: &mut [u8]) {
    // "fLaC", a 4-byte block header, then STREAMINFO: min (2 bytes), max (2 bytes).
    if bytes.len() >= 12 && bytes.starts_with(b"fLaC") {
        let (min, max) = bytes[8..12].split_at_mut(2);
        min.copy_from_slice(max);
    }
}
