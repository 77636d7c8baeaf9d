//! The output formats OpenAI's speech API names, each encoded for what it claims to be.

use std::str::FromStr;

use super::mp3::{self, Mp3Error};
use super::wav::{self, SampleFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Mp3,
    Wav,
    /// Raw 16-bit little-endian mono samples at the engine's rate, no header.
    Pcm,
    Opus,
    Aac,
    Flac,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("unknown audio format {0:?}; expected one of mp3, opus, aac, flac, wav, pcm")]
    Unknown(String),
    /// Never answered with another format in disguise.
    #[error("{0} output is not available in this worker yet; use mp3, wav or pcm")]
    NotAvailable(&'static str),
    #[error(transparent)]
    Mp3(#[from] Mp3Error),
}

impl FromStr for OutputFormat {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "mp3" => Self::Mp3,
            "wav" => Self::Wav,
            "pcm" => Self::Pcm,
            "opus" => Self::Opus,
            "aac" => Self::Aac,
            "flac" => Self::Flac,
            _ => return Err(FormatError::Unknown(s.to_string())),
        })
    }
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Wav => "wav",
            Self::Pcm => "pcm",
            Self::Opus => "opus",
            Self::Aac => "aac",
            Self::Flac => "flac",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
            Self::Opus => "audio/ogg",
            Self::Aac => "audio/aac",
            Self::Flac => "audio/flac",
        }
    }

    /// Fails before any work is done for a format this build cannot write.
    pub fn check_available(self) -> Result<Self, FormatError> {
        match self {
            Self::Mp3 | Self::Wav | Self::Pcm => Ok(self),
            Self::Opus | Self::Aac | Self::Flac => Err(FormatError::NotAvailable(self.name())),
        }
    }

    pub fn encode(self, samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, FormatError> {
        match self {
            Self::Mp3 => Ok(mp3::encode(samples, sample_rate)?),
            Self::Wav => Ok(wav::encode(samples, sample_rate, SampleFormat::Pcm16)),
            Self::Pcm => Ok(wav::pcm16(samples)),
            Self::Opus | Self::Aac | Self::Flac => Err(FormatError::NotAvailable(self.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MPEG-2 layer III frames (24 kHz): 576 samples each; returns their count.
    fn mpeg2_layer3_frames(bytes: &[u8]) -> usize {
        // MPEG-2 layer III bit rates in kbit/s by header index.
        const KBPS: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
        let (mut at, mut frames) = (0, 0);
        while at + 4 <= bytes.len() {
            let header = &bytes[at..at + 4];
            assert_eq!(
                (header[0], header[1] & 0xFE),
                (0xFF, 0xF2),
                "frame sync at {at}"
            );
            assert_eq!((header[2] >> 2) & 3, 1, "24 kHz");
            let kbps = KBPS[usize::from(header[2] >> 4)];
            let padding = usize::from((header[2] >> 1) & 1);
            at += 72 * kbps * 1000 / 24000 + padding;
            frames += 1;
        }
        assert_eq!(at, bytes.len(), "the stream ends on a frame boundary");
        frames
    }

    #[test]
    fn mp3_is_a_stream_of_24_khz_frames_as_long_as_the_input() {
        let tone: Vec<f32> = (0..24000 * 2)
            .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / 24000.0).sin())
            .collect();
        let mp3 = OutputFormat::Mp3.encode(&tone, 24000).unwrap();
        let seconds = mpeg2_layer3_frames(&mp3) as f64 * 576.0 / 24000.0;
        // LAME adds its encoder delay and pads the last frame: at most a few frames more.
        assert!((2.0..2.2).contains(&seconds), "{seconds} s");
    }

    #[test]
    fn formats_parse_name_their_content_type_and_refuse_what_is_missing() {
        let wav = OutputFormat::from_str("WAV").unwrap();
        assert_eq!((wav.name(), wav.content_type()), ("wav", "audio/wav"));
        assert_eq!(
            OutputFormat::Pcm.encode(&[0.5, -1.0], 24000).unwrap(),
            [0x00, 0x40, 0x01, 0x80]
        );
        let error = OutputFormat::from_str("ogg").unwrap_err().to_string();
        assert!(error.contains("mp3, opus, aac, flac, wav, pcm"), "{error}");
        let error = OutputFormat::Opus
            .encode(&[0.0], 24000)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not available") && error.contains("use mp3"),
            "{error}"
        );
    }
}
