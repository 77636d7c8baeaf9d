//! RIFF/WAVE reading and writing, by hand: PCM 8/16/24/32-bit and IEEE float 32/64 in, mono
//! float samples out (channels averaged); 16-bit PCM or 32-bit float out. Malformed files are
//! errors, never panics, and sizes in headers are checked against the bytes present.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WavError {
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    #[error("the WAV file is malformed: {0}")]
    Malformed(&'static str),
    #[error("unsupported WAV encoding: format {format}, {bits} bits per sample")]
    Unsupported { format: u16, bits: u16 },
}

/// Mono samples in [-1, 1] at their sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Clip {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

const PCM: u16 = 1;
const IEEE_FLOAT: u16 = 3;
const EXTENSIBLE: u16 = 0xFFFE;

struct Format {
    code: u16,
    channels: u16,
    sample_rate: u32,
    bits: u16,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn parse_format(chunk: &[u8]) -> Result<Format, WavError> {
    let short = WavError::Malformed("fmt chunk too short");
    let mut code = u16_at(chunk, 0).ok_or(short)?;
    let channels = u16_at(chunk, 2).ok_or(WavError::Malformed("fmt chunk too short"))?;
    let sample_rate = u32_at(chunk, 4).ok_or(WavError::Malformed("fmt chunk too short"))?;
    let bits = u16_at(chunk, 14).ok_or(WavError::Malformed("fmt chunk too short"))?;
    if code == EXTENSIBLE {
        // The sub-format GUID starts with the plain format code.
        code = u16_at(chunk, 24).ok_or(WavError::Malformed("extensible fmt chunk too short"))?;
    }
    if channels == 0 || sample_rate == 0 {
        return Err(WavError::Malformed("zero channels or sample rate"));
    }
    Ok(Format {
        code,
        channels,
        sample_rate,
        bits,
    })
}

fn decode_sample(format: &Format, raw: &[u8]) -> f32 {
    match (format.code, format.bits) {
        (PCM, 8) => (f32::from(raw[0]) - 128.0) / 128.0,
        (PCM, 16) => f32::from(i16::from_le_bytes([raw[0], raw[1]])) / 32768.0,
        (PCM, 24) => (i32::from_le_bytes([0, raw[0], raw[1], raw[2]]) >> 8) as f32 / 8_388_608.0,
        (PCM, 32) => {
            (f64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])) / 2_147_483_648.0)
                as f32
        }
        (IEEE_FLOAT, 32) => f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
        (_, _) => f64::from_le_bytes(raw[..8].try_into().unwrap_or([0; 8])) as f32,
    }
}

/// Decodes a WAV file to mono.
pub fn decode(bytes: &[u8]) -> Result<Clip, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWav);
    }
    let mut format = None;
    let mut at = 12;
    while let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) {
        let body_start = at + 8;
        // Streaming writers leave the data size at 0 or u32::MAX: take what is there.
        let body_end = body_start.saturating_add(size as usize).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => format = Some(parse_format(body)?),
            b"data" => {
                let format = format.ok_or(WavError::Malformed("data before fmt"))?;
                let supported = matches!(
                    (format.code, format.bits),
                    (PCM, 8 | 16 | 24 | 32) | (IEEE_FLOAT, 32 | 64)
                );
                if !supported {
                    return Err(WavError::Unsupported {
                        format: format.code,
                        bits: format.bits,
                    });
                }
                let width = usize::from(format.bits / 8);
                let frame = width * usize::from(format.channels);
                let samples = body
                    .chunks_exact(frame)
                    .map(|frame| {
                        let sum: f32 = frame
                            .chunks_exact(width)
                            .map(|raw| decode_sample(&format, raw))
                            .sum();
                        sum / f32::from(format.channels)
                    })
                    .collect();
                return Ok(Clip {
                    samples,
                    sample_rate: format.sample_rate,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body_end + (size as usize & 1);
    }
    Err(WavError::Malformed("no data chunk"))
}

/// Sample encodings [`encode`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    Pcm16,
    Float32,
}

/// A mono WAV file. Samples beyond [-1, 1] are clipped in 16-bit PCM.
pub fn encode(samples: &[f32], sample_rate: u32, format: SampleFormat) -> Vec<u8> {
    let (code, bits) = match format {
        SampleFormat::Pcm16 => (PCM, 16u16),
        SampleFormat::Float32 => (IEEE_FLOAT, 32u16),
    };
    let block_align = bits / 8;
    let data_len = samples.len() * usize::from(block_align);
    let mut out = Vec::with_capacity(44 + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for &sample in samples {
        match format {
            SampleFormat::Pcm16 => {
                let value = (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                out.extend_from_slice(&value.to_le_bytes());
            }
            SampleFormat::Float32 => out.extend_from_slice(&sample.to_le_bytes()),
        }
    }
    out
}

/// Raw little-endian 16-bit PCM, OpenAI's `pcm` response format.
pub fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_formats() {
        let samples: Vec<f32> = (0..100).map(|i| (i as f32 / 50.0) - 1.0).collect();
        let float = decode(&encode(&samples, 24000, SampleFormat::Float32)).unwrap();
        assert_eq!(float.samples, samples);
        assert_eq!(float.sample_rate, 24000);
        let pcm = decode(&encode(&samples, 16000, SampleFormat::Pcm16)).unwrap();
        assert!(
            pcm.samples
                .iter()
                .zip(&samples)
                .all(|(a, b)| (a - b).abs() < 1e-4)
        );
        assert_eq!(
            pcm16(&samples),
            encode(&samples, 1, SampleFormat::Pcm16)[44..]
        );
    }

    #[test]
    fn stereo_24_bit_is_averaged_to_mono() {
        let mut bytes = encode(&[], 8000, SampleFormat::Pcm16);
        bytes[22] = 2; // channels
        bytes[34] = 24; // bits
        bytes[40..44].copy_from_slice(&12u32.to_le_bytes());
        let frames: [[i32; 2]; 2] = [[4_194_304, -4_194_304], [8_388_607, 8_388_607]];
        for [l, r] in frames {
            bytes.extend_from_slice(&l.to_le_bytes()[..3]);
            bytes.extend_from_slice(&r.to_le_bytes()[..3]);
        }
        let clip = decode(&bytes).unwrap();
        assert_eq!(clip.samples.len(), 2);
        assert!(clip.samples[0].abs() < 1e-6 && (clip.samples[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn hostile_bytes_are_errors() {
        assert_eq!(decode(b""), Err(WavError::NotWav));
        assert_eq!(
            decode(b"RIFF\0\0\0\0WAVE"),
            Err(WavError::Malformed("no data chunk"))
        );
        let mut truncated = encode(&[0.5; 10], 8000, SampleFormat::Pcm16);
        truncated.truncate(30);
        assert!(decode(&truncated).is_err());
        let mut odd = encode(&[0.5; 10], 8000, SampleFormat::Pcm16);
        odd[20] = 2; // ADPCM
        assert!(matches!(decode(&odd), Err(WavError::Unsupported { .. })));
        let mut zero_channels = encode(&[0.5; 10], 8000, SampleFormat::Pcm16);
        zero_channels[22] = 0;
        assert!(decode(&zero_channels).is_err());
        // A data size larger than the file is cut to the bytes present.
        let mut long = encode(&[0.25; 4], 8000, SampleFormat::Pcm16);
        long[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&long).unwrap().samples.len(), 4);
    }
}
