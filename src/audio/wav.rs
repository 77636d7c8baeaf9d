//! RIFF/WAVE writing: mono 16-bit PCM or 32-bit IEEE float. Reading goes through
//! [`super::decode`].

const PCM: u16 = 1;
const IEEE_FLOAT: u16 = 3;

/// Sample encodings [`encode`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    Pcm16,
    Float32,
}

/// A mono WAV file. Samples beyond [-1, 1] are clipped in 16-bit PCM.
pub fn encode(samples: &[f32], sample_rate: u32, format: SampleFormat) -> Vec<u8> {
    let mut out = header(sample_rate, format, Some(samples.len()));
    out.extend(data(samples, format));
    out
}

/// The RIFF header for `samples` samples; `None` when the length is not known yet (a streamed
/// file), which writes the largest sizes, as OpenAI's streamed WAV does, so players read on
/// to the end of the stream.
pub fn header(sample_rate: u32, format: SampleFormat, samples: Option<usize>) -> Vec<u8> {
    let (code, bits) = match format {
        SampleFormat::Pcm16 => (PCM, 16u16),
        SampleFormat::Float32 => (IEEE_FLOAT, 32u16),
    };
    let block_align = bits / 8;
    let (riff_len, data_len) = match samples {
        Some(n) => {
            let data_len = (n * usize::from(block_align)) as u32;
            (36 + data_len, data_len)
        }
        None => (u32::MAX, u32::MAX),
    };
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_len.to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}

/// The data chunk's bytes for `samples`.
pub fn data(samples: &[f32], format: SampleFormat) -> Vec<u8> {
    match format {
        SampleFormat::Pcm16 => pcm16(samples),
        SampleFormat::Float32 => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
    }
}

/// Raw little-endian 16-bit PCM, OpenAI's `pcm` response format.
pub fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| to_i16(s).to_le_bytes())
        .collect()
}

/// One sample as 16-bit PCM, clipped to full scale: the one conversion every 16-bit output uses.
pub fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_describe_the_samples_that_follow() {
        let samples = [0.5, -1.0, 2.0];
        let wav = encode(&samples, 24000, SampleFormat::Pcm16);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 36 + 6);
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24000);
        assert_eq!(wav[44..], pcm16(&samples)[..]);
        assert_eq!(pcm16(&samples), [0x00, 0x40, 0x01, 0x80, 0xFF, 0x7F]);
        let float = encode(&samples, 16000, SampleFormat::Float32);
        assert_eq!((float[20], float[34]), (3, 32));
        assert_eq!(float.len(), 44 + 12);
    }
}
