//! Ogg Opus (RFC 7845), what OpenAI serves as `opus`: libopus for the codec, the `ogg` crate
//! for pages, the identification and comment headers written here.

use std::io::Cursor;

use ogg::{PacketReader, PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels};

use super::decode::{DecodeError, check_length};
use super::{Clip, downmix, resample};

/// Speech at 24 kHz is transparent well below this; OpenAI's own opus files sit near it.
const BITRATE_BPS: i32 = 32_000;
/// Granule positions always count 48 kHz samples, whatever the encoder ran at.
const GRANULE_RATE: u32 = 48_000;
/// The rates libopus encodes natively; others are resampled to 48 kHz first.
const ENCODER_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
const FRAMES_PER_SECOND: u32 = 50;
/// One logical stream per file, so any serial does; a fixed one keeps output reproducible.
const STREAM_SERIAL: u32 = 0x4342_5731;
/// The largest Opus packet decodes to 120 ms.
const MAX_PACKET_SAMPLES: usize = 5_760;

#[derive(Debug, thiserror::Error)]
#[error("Opus encoding failed: {0}")]
pub struct OpusError(String);

fn error(e: impl std::fmt::Display) -> OpusError {
    OpusError(e.to_string())
}

/// Encodes mono `samples` as an Ogg Opus file that decodes to exactly as many samples.
pub fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, OpusError> {
    let resampled;
    let (samples, encoder_rate) = if ENCODER_RATES.contains(&sample_rate) {
        (samples, sample_rate)
    } else {
        resampled = resample::resample(samples, sample_rate, GRANULE_RATE).map_err(error)?;
        (resampled.as_slice(), GRANULE_RATE)
    };
    let mut encoder =
        opus::Encoder::new(encoder_rate, Channels::Mono, Application::Audio).map_err(error)?;
    encoder
        .set_bitrate(Bitrate::Bits(BITRATE_BPS))
        .map_err(error)?;
    let lookahead = usize::try_from(encoder.get_lookahead().map_err(error)?).map_err(error)?;
    let scale = (GRANULE_RATE / encoder_rate) as u64;
    let pre_skip = lookahead as u64 * scale;

    let mut writer = PacketWriter::new(Vec::new());
    let head = identification_header(pre_skip, sample_rate).map_err(error)?;
    writer
        .write_packet(head, STREAM_SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(error)?;
    writer
        .write_packet(
            comment_header(),
            STREAM_SERIAL,
            PacketWriteEndInfo::EndPage,
            0,
        )
        .map_err(error)?;

    // The encoder's lookahead delays everything: feed that much silence after the end.
    let frame = (encoder_rate / FRAMES_PER_SECOND) as usize;
    let mut padded = samples
        .iter()
        .map(|s| s.clamp(-1.0, 1.0))
        .collect::<Vec<_>>();
    let frames = (samples.len() + lookahead).div_ceil(frame).max(1);
    padded.resize(frames * frame, 0.0);
    let end_granule = pre_skip + samples.len() as u64 * scale;
    for (index, chunk) in padded.chunks_exact(frame).enumerate() {
        let packet = encoder.encode_vec_float(chunk, 4000).map_err(error)?;
        let last = index + 1 == frames;
        let (end, granule) = if last {
            // The last granule below the decoded length tells players to drop the padding.
            (PacketWriteEndInfo::EndStream, end_granule)
        } else {
            let decoded = ((index + 1) * frame) as u64 * scale;
            (PacketWriteEndInfo::NormalPacket, decoded)
        };
        writer
            .write_packet(packet, STREAM_SERIAL, end, granule)
            .map_err(error)?;
    }
    Ok(writer.into_inner())
}

fn identification_header(pre_skip: u64, input_rate: u32) -> Result<Vec<u8>, String> {
    let pre_skip = u16::try_from(pre_skip).map_err(|_| "pre-skip too long".to_string())?;
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono/stereo
    Ok(head)
}

fn comment_header() -> Vec<u8> {
    let vendor = concat!("chatterbox-worker ", env!("CARGO_PKG_VERSION"));
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor.as_bytes());
    tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
    tags
}

/// Whether the bytes open an Ogg stream whose first packet is an Opus identification header.
pub fn is_ogg_opus(bytes: &[u8]) -> bool {
    let Some(&segments) = bytes.get(26) else {
        return false;
    };
    let body = 27 + usize::from(segments);
    bytes.starts_with(b"OggS") && bytes.get(body..body + 8) == Some(b"OpusHead")
}

/// Decodes an Ogg Opus file at 48 kHz to mono, pre-skip and end padding removed.
pub fn decode(bytes: &[u8]) -> Result<Clip, DecodeError> {
    let malformed = |e: &dyn std::fmt::Display| DecodeError::Malformed(e.to_string());
    let mut reader = PacketReader::new(Cursor::new(bytes));
    let head = reader
        .read_packet()
        .map_err(|e| malformed(&e))?
        .ok_or(DecodeError::NotAudio)?;
    let serial = head.stream_serial();
    let head = head.data;
    if head.len() < 19 || !head.starts_with(b"OpusHead") {
        return Err(DecodeError::Malformed("short Opus header".into()));
    }
    let channels = match head[9] {
        1 => Channels::Mono,
        2 if head[18] == 0 => Channels::Stereo,
        n => return Err(DecodeError::Unsupported(format!("Opus with {n} channels"))),
    };
    let pre_skip = usize::from(u16::from_le_bytes([head[10], head[11]]));
    let gain_q8 = i16::from_le_bytes([head[16], head[17]]);
    let gain = 10f32.powf(f32::from(gain_q8) / (20.0 * 256.0));
    let count = channels as usize;

    let mut decoder = opus::Decoder::new(GRANULE_RATE, channels).map_err(|e| malformed(&e))?;
    let mut buffer = vec![0f32; MAX_PACKET_SAMPLES * count];
    let mut samples = Vec::new();
    let mut end_granule = None;
    let mut packets = 0usize;
    while let Some(packet) = reader.read_packet().map_err(|e| malformed(&e))? {
        if packet.stream_serial() != serial {
            continue;
        }
        packets += 1;
        if packets == 1 {
            continue; // the comment header
        }
        let Ok(decoded) = decoder.decode_float(&packet.data, &mut buffer, false) else {
            continue;
        };
        samples.extend(downmix(&buffer[..decoded * count], count));
        check_length(samples.len(), GRANULE_RATE)?;
        if packet.last_in_page() {
            end_granule = Some(packet.absgp_page());
        }
    }
    let mut samples: Vec<f32> = samples.split_off(pre_skip.min(samples.len()));
    if let Some(end) = end_granule.and_then(|g| usize::try_from(g).ok()) {
        samples.truncate(end.saturating_sub(pre_skip));
    }
    samples.iter_mut().for_each(|s| *s *= gain);
    Ok(Clip {
        samples,
        sample_rate: GRANULE_RATE,
    })
}
