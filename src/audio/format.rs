//! The output formats: OpenAI's six names plus float WAV for the custom jobs, each encoded as
//! exactly what it claims to be, never another format in disguise.

use std::str::FromStr;

#[cfg(feature = "aac")]
use super::aac::{self, AacError};
use super::flac::{self, FlacError};
use super::mp3::{self, Mp3Error};
use super::opus::{self, OpusError};
use super::wav::{self, SampleFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Mp3,
    /// 16-bit PCM WAV.
    Wav,
    /// 32-bit float WAV: the custom jobs' `wav_float`, for editing without requantising.
    WavFloat,
    /// Raw 16-bit little-endian mono samples at the output rate, no header.
    Pcm,
    /// Ogg Opus.
    Opus,
    /// AAC-LC in ADTS frames.
    Aac,
    Flac,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("unknown audio format {0:?}; expected one of mp3, opus, aac, flac, wav, pcm")]
    Unknown(String),
    #[cfg(not(feature = "aac"))]
    #[error(
        "aac output is not supported: this worker was built without its AAC encoder (the \
         `aac` feature); use mp3, opus, flac, wav or pcm"
    )]
    AacNotSupported,
    #[cfg(feature = "aac")]
    #[error(transparent)]
    Aac(#[from] AacError),
    #[error(transparent)]
    Mp3(#[from] Mp3Error),
    #[error(transparent)]
    Opus(#[from] OpusError),
    #[error(transparent)]
    Flac(#[from] FlacError),
}

/// OpenAI's names only.
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
    /// The custom jobs' `export_formats` names: OpenAI's and `wav_float`.
    pub fn from_export_name(name: &str) -> Result<Self, FormatError> {
        if name.trim().eq_ignore_ascii_case("wav_float") {
            return Ok(Self::WavFloat);
        }
        name.parse()
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Wav => "wav",
            Self::WavFloat => "wav_float",
            Self::Pcm => "pcm",
            Self::Opus => "opus",
            Self::Aac => "aac",
            Self::Flac => "flac",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::WavFloat => "wav",
            Self::Opus => "ogg",
            other => other.name(),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Wav | Self::WavFloat => "audio/wav",
            Self::Pcm => "audio/pcm",
            Self::Opus => "audio/ogg",
            Self::Aac => "audio/aac",
            Self::Flac => "audio/flac",
        }
    }

    /// Fails before any work is done for a format this build cannot write.
    pub fn check_available(self) -> Result<Self, FormatError> {
        match self {
            #[cfg(not(feature = "aac"))]
            Self::Aac => Err(FormatError::AacNotSupported),
            other => Ok(other),
        }
    }

    pub fn encode(self, samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, FormatError> {
        match self {
            Self::Mp3 => Ok(mp3::encode(samples, sample_rate)?),
            Self::Wav => Ok(wav::encode(samples, sample_rate, SampleFormat::Pcm16)),
            Self::WavFloat => Ok(wav::encode(samples, sample_rate, SampleFormat::Float32)),
            Self::Pcm => Ok(wav::pcm16(samples)),
            Self::Opus => Ok(opus::encode(samples, sample_rate)?),
            Self::Flac => Ok(flac::encode(samples, sample_rate)?),
            #[cfg(feature = "aac")]
            Self::Aac => Ok(aac::encode(samples, sample_rate)?),
            #[cfg(not(feature = "aac"))]
            Self::Aac => Err(FormatError::AacNotSupported),
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
        assert_eq!(OutputFormat::Aac.content_type(), "audio/aac");
        #[cfg(not(feature = "aac"))]
        {
            let error = OutputFormat::Aac
                .encode(&[0.0], 24000)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("not supported") && error.contains("use mp3"),
                "{error}"
            );
            assert!(OutputFormat::Aac.check_available().is_err());
        }
        assert!(OutputFormat::from_str("wav_float").is_err());
        assert_eq!(
            OutputFormat::from_export_name("WAV_float").unwrap(),
            OutputFormat::WavFloat
        );
    }
}
