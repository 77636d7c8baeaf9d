//! One output file written while its audio is still being made, for responses that stream:
//! the bytes of every push, then of `finish`, put together are one valid file of the format.
//! WAV, PCM, MP3, Opus and AAC are written as they come; FLAC's header needs the whole audio, so it
//! comes out whole at the end.

#[cfg(feature = "aac")]
use super::aac::AacStream;
use super::format::{FormatError, OutputFormat};
use super::mp3::Mp3Stream;
use super::opus::OpusStream;
use super::wav::{self, SampleFormat};

pub struct StreamEncoder(Writer);

enum Writer {
    /// Raw samples after an optional header (sent with the first push).
    Plain {
        header: Option<Vec<u8>>,
        format: SampleFormat,
    },
    Mp3(Mp3Stream),
    Opus(OpusStream),
    #[cfg(feature = "aac")]
    Aac(AacStream),
    Whole {
        format: OutputFormat,
        sample_rate: u32,
        samples: Vec<f32>,
    },
}

impl StreamEncoder {
    pub fn new(format: OutputFormat, sample_rate: u32) -> Result<Self, FormatError> {
        let plain = |format, header| Writer::Plain { header, format };
        Ok(Self(match format {
            OutputFormat::Pcm => plain(SampleFormat::Pcm16, None),
            OutputFormat::Wav => plain(
                SampleFormat::Pcm16,
                Some(wav::header(sample_rate, SampleFormat::Pcm16, None)),
            ),
            OutputFormat::WavFloat => plain(
                SampleFormat::Float32,
                Some(wav::header(sample_rate, SampleFormat::Float32, None)),
            ),
            OutputFormat::Mp3 => Writer::Mp3(Mp3Stream::new(sample_rate)?),
            OutputFormat::Opus => Writer::Opus(OpusStream::new(sample_rate, sample_rate)?),
            #[cfg(feature = "aac")]
            OutputFormat::Aac => Writer::Aac(AacStream::new(sample_rate)?),
            #[cfg(not(feature = "aac"))]
            OutputFormat::Aac => return Err(FormatError::AacNotSupported),
            OutputFormat::Flac => Writer::Whole {
                format,
                sample_rate,
                samples: Vec::new(),
            },
        }))
    }

    /// The bytes ready after `samples`; possibly none.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, FormatError> {
        Ok(match &mut self.0 {
            Writer::Plain { header, format } => {
                let mut out = header.take().unwrap_or_default();
                out.extend(wav::data(samples, *format));
                out
            }
            Writer::Mp3(stream) => stream.push(samples)?,
            Writer::Opus(stream) => stream.push(samples)?,
            #[cfg(feature = "aac")]
            Writer::Aac(stream) => stream.push(samples)?,
            Writer::Whole { samples: all, .. } => {
                all.extend_from_slice(samples);
                Vec::new()
            }
        })
    }

    /// The file's last bytes.
    pub fn finish(self) -> Result<Vec<u8>, FormatError> {
        Ok(match self.0 {
            // A file with no audio still gets its header.
            Writer::Plain { header, .. } => header.unwrap_or_default(),
            Writer::Mp3(stream) => stream.finish()?,
            Writer::Opus(stream) => stream.finish()?,
            #[cfg(feature = "aac")]
            Writer::Aac(stream) => stream.finish()?,
            Writer::Whole {
                format,
                sample_rate,
                samples,
            } => format.encode(&samples, sample_rate)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::decode;

    fn tone(seconds: f32, rate: u32) -> Vec<f32> {
        (0..(seconds * rate as f32) as usize)
            .map(|i| 0.3 * (i as f32 * 300.0 * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    /// Pushed in uneven pieces, every format decodes to the audio's rate and length.
    #[test]
    fn pushed_pieces_make_one_valid_file() {
        let rate = 24_000;
        let audio = tone(1.3, rate);
        for format in [
            OutputFormat::Pcm,
            OutputFormat::Wav,
            OutputFormat::WavFloat,
            OutputFormat::Mp3,
            OutputFormat::Opus,
            OutputFormat::Flac,
            #[cfg(feature = "aac")]
            OutputFormat::Aac,
        ] {
            let mut encoder = StreamEncoder::new(format, rate).unwrap();
            let mut file = Vec::new();
            for piece in audio.chunks(7_001) {
                file.extend(encoder.push(piece).unwrap());
            }
            file.extend(encoder.finish().unwrap());
            if format == OutputFormat::Pcm {
                assert_eq!(file, wav::pcm16(&audio));
                continue;
            }
            let clip = decode(&file).unwrap();
            let expected = if format == OutputFormat::Opus {
                48_000
            } else {
                rate
            };
            assert_eq!(clip.sample_rate, expected, "{format:?}");
            let seconds = clip.duration_seconds();
            // MP3 without its tag keeps LAME's delay and padding: at most two frames more;
            // ADTS keeps AAC's priming and pads to whole frames of 1 024.
            let slack = match format {
                OutputFormat::Mp3 => 2.0 * 576.0 / 24_000.0 + 0.06,
                OutputFormat::Aac => 3.0 * 1024.0 / 24_000.0,
                _ => 1e-3,
            };
            assert!(
                seconds >= 1.3 - 1e-3 && seconds <= 1.3 + slack,
                "{format:?}: {seconds}"
            );
        }
        #[cfg(not(feature = "aac"))]
        assert!(StreamEncoder::new(OutputFormat::Aac, rate).is_err());
    }
}
