//! Any common audio file to mono f32 at the file's own rate: WAV, AIFF, FLAC, MP3, Ogg Vorbis,
//! M4A/AAC and ADTS AAC through symphonia, Ogg Opus through libopus (symphonia has no Opus
//! decoder). The format is found from the bytes, never from a file name.

use std::io::Cursor;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use super::{Clip, downmix, opus};

/// Decoded inputs longer than this are refused: a few kilobytes of compressed silence could
/// otherwise expand to gigabytes of samples.
pub const MAX_DECODED_SECONDS: u32 = 15 * 60;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error(
        "not a recognised audio file (WAV, AIFF, FLAC, MP3, Ogg Vorbis, Ogg Opus, M4A/AAC are read)"
    )]
    NotAudio,
    #[error("the file has no audio track")]
    NoAudioTrack,
    #[error("the audio codec is not supported: {0}")]
    Unsupported(String),
    #[error("the audio file is malformed: {0}")]
    Malformed(String),
    #[error("the audio file contains no samples")]
    Empty,
    #[error("the audio is longer than {} minutes", MAX_DECODED_SECONDS / 60)]
    TooLong,
}

/// Decodes a whole file to mono (channels averaged).
pub fn decode(bytes: &[u8]) -> Result<Clip, DecodeError> {
    // Demuxers are large parsers of hostile input: should one panic on a crafted file, that
    // file is refused like any other malformed one instead of failing the job as a crash.
    let decoded = std::panic::catch_unwind(|| {
        if opus::is_ogg_opus(bytes) {
            opus::decode(bytes)
        } else {
            decode_with_symphonia(bytes)
        }
    });
    let mut clip =
        decoded.map_err(|_| DecodeError::Malformed("the decoder gave up on it".into()))??;
    if clip.samples.is_empty() {
        return Err(DecodeError::Empty);
    }
    // A float file may carry NaN or infinity; downstream arithmetic must never see them.
    for sample in clip.samples.iter_mut().filter(|s| !s.is_finite()) {
        *sample = 0.0;
    }
    Ok(clip)
}

/// Fails once `samples` mono samples at `sample_rate` pass the decoded-length cap.
pub fn check_length(samples: usize, sample_rate: u32) -> Result<(), DecodeError> {
    if samples as u64 > u64::from(MAX_DECODED_SECONDS) * u64::from(sample_rate) {
        return Err(DecodeError::TooLong);
    }
    Ok(())
}

fn decode_with_symphonia(bytes: &[u8]) -> Result<Clip, DecodeError> {
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut format = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|_| DecodeError::NotAudio)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or(DecodeError::NoAudioTrack)?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|params| params.audio())
        .ok_or(DecodeError::NoAudioTrack)?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| DecodeError::Unsupported(e.to_string()))?;

    let mut samples = Vec::new();
    let mut sample_rate = params.sample_rate;
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            // A chained stream's next link or a cut-off file: what was decoded stands.
            Ok(None) | Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::IoError(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof && !samples.is_empty() =>
            {
                break;
            }
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // One damaged packet is skipped, as players do; the rest still decodes.
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_)) => continue,
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        };
        let rate = buffer.spec().rate();
        if rate == 0 {
            return Err(DecodeError::Malformed("a sample rate of zero".into()));
        }
        sample_rate.get_or_insert(rate);
        buffer.copy_to_vec_interleaved(&mut interleaved);
        samples.extend(downmix(&interleaved, buffer.spec().channels().count()));
        check_length(samples.len(), rate)?;
    }
    let sample_rate = sample_rate
        .filter(|rate| *rate > 0)
        .ok_or_else(|| DecodeError::Malformed("no sample rate".into()))?;
    Ok(Clip {
        samples,
        sample_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::wav::{SampleFormat, encode};

    fn ramp() -> Vec<f32> {
        (0..100).map(|i| (i as f32 / 50.0) - 1.0).collect()
    }

    #[test]
    fn wav_round_trips_in_both_sample_formats() {
        let samples = ramp();
        let float = decode(&encode(&samples, 24000, SampleFormat::Float32)).unwrap();
        assert_eq!(
            (float.samples.as_slice(), float.sample_rate),
            (&samples[..], 24000)
        );
        let pcm = decode(&encode(&samples, 16000, SampleFormat::Pcm16)).unwrap();
        assert_eq!(pcm.sample_rate, 16000);
        assert!(
            pcm.samples
                .iter()
                .zip(&samples)
                .all(|(a, b)| (a - b).abs() < 1e-4)
        );
    }

    #[test]
    fn non_finite_float_samples_become_silence() {
        let wav = encode(
            &[0.5, f32::NAN, f32::INFINITY, -0.25],
            8000,
            SampleFormat::Float32,
        );
        assert_eq!(decode(&wav).unwrap().samples, [0.5, 0.0, 0.0, -0.25]);
    }

    #[test]
    fn stereo_24_bit_is_averaged_to_mono() {
        let mut bytes = encode(&[], 8000, SampleFormat::Pcm16);
        bytes[22] = 2; // channels
        bytes[32] = 6; // block align
        bytes[34] = 24; // bits
        bytes[28..32].copy_from_slice(&(8000u32 * 6).to_le_bytes());
        bytes[40..44].copy_from_slice(&12u32.to_le_bytes());
        bytes[4..8].copy_from_slice(&48u32.to_le_bytes());
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
    fn hostile_bytes_are_errors_not_panics() {
        assert_eq!(decode(b""), Err(DecodeError::NotAudio));
        assert_eq!(
            decode(b"%PDF-1.7 not audio at all"),
            Err(DecodeError::NotAudio)
        );
        assert!(decode(b"RIFF\0\0\0\0WAVE").is_err());
        let mut truncated = encode(&[0.5; 10], 8000, SampleFormat::Pcm16);
        truncated.truncate(30);
        assert!(decode(&truncated).is_err());
        let mut zero_channels = encode(&[0.5; 10], 8000, SampleFormat::Pcm16);
        zero_channels[22] = 0;
        assert!(decode(&zero_channels).is_err());
        assert_eq!(
            decode(&encode(&[], 8000, SampleFormat::Pcm16)),
            Err(DecodeError::Empty)
        );
        // Every prefix of a valid file is an error or a shorter clip, never a panic.
        let whole = encode(&ramp(), 8000, SampleFormat::Pcm16);
        for cut in 0..whole.len() {
            let _ = decode(&whole[..cut]);
        }
    }
}
