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
    let samples = if ENCODER_RATES.contains(&sample_rate) {
        samples
    } else {
        resampled = resample::resample(samples, sample_rate, GRANULE_RATE).map_err(error)?;
        resampled.as_slice()
    };
    let rate = if ENCODER_RATES.contains(&sample_rate) {
        sample_rate
    } else {
        GRANULE_RATE
    };
    let mut stream = OpusStream::new(rate, sample_rate)?;
    let mut out = stream.push(samples)?;
    out.extend(stream.finish()?);
    Ok(out)
}

/// One Ogg Opus file written as its audio arrives: the headers first, then a page of packets
/// per push, and at the end the last packet with the granule that trims the padding.
pub struct OpusStream {
    encoder: opus::Encoder,
    writer: PacketWriter<'static, Vec<u8>>,
    frame: usize,
    lookahead: usize,
    scale: u64,
    pre_skip: u64,
    /// Samples not yet filling a frame.
    pending: Vec<f32>,
    packets: u64,
    samples: u64,
}

impl OpusStream {
    /// `rate` must be one libopus encodes natively; `input_rate` is recorded in the header.
    pub fn new(rate: u32, input_rate: u32) -> Result<Self, OpusError> {
        if !ENCODER_RATES.contains(&rate) {
            return Err(OpusError(format!("Opus cannot encode at {rate} Hz")));
        }
        let mut encoder =
            opus::Encoder::new(rate, Channels::Mono, Application::Audio).map_err(error)?;
        encoder
            .set_bitrate(Bitrate::Bits(BITRATE_BPS))
            .map_err(error)?;
        let lookahead = usize::try_from(encoder.get_lookahead().map_err(error)?).map_err(error)?;
        let scale = u64::from(GRANULE_RATE / rate);
        let pre_skip = lookahead as u64 * scale;
        let mut writer = PacketWriter::new(Vec::new());
        let head = identification_header(pre_skip, input_rate).map_err(error)?;
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
        Ok(Self {
            encoder,
            writer,
            frame: (rate / FRAMES_PER_SECOND) as usize,
            lookahead,
            scale,
            pre_skip,
            pending: Vec::new(),
            packets: 0,
            samples: 0,
        })
    }

    /// The pages `samples` complete. The final packet always comes from `finish`, which
    /// flushes the encoder's lookahead (never zero), so it can carry the end-of-stream mark.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, OpusError> {
        self.samples += samples.len() as u64;
        self.pending
            .extend(samples.iter().map(|s| s.clamp(-1.0, 1.0)));
        let whole = self.pending.len() / self.frame * self.frame;
        let frames: Vec<f32> = self.pending.drain(..whole).collect();
        let count = frames.len() / self.frame;
        for (index, frame) in frames.chunks_exact(self.frame).enumerate() {
            let packet = self.encoder.encode_vec_float(frame, 4000).map_err(error)?;
            // The page is closed after the last packet, so what is encoded so far can be sent.
            let end = if index + 1 == count {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.write(packet, end)?;
        }
        Ok(std::mem::take(self.writer.inner_mut()))
    }

    /// The rest: the encoder's lookahead flushed with silence, and the last packet's granule
    /// set so decoders return exactly the samples pushed.
    pub fn finish(mut self) -> Result<Vec<u8>, OpusError> {
        // The encoder's lookahead delays everything: feed that much silence after the end.
        let total = self.pending.len() + self.lookahead;
        let mut tail = std::mem::take(&mut self.pending);
        let frames = total.div_ceil(self.frame).max(1);
        tail.resize(frames * self.frame, 0.0);
        let count = tail.len() / self.frame;
        for (index, frame) in tail.chunks_exact(self.frame).enumerate() {
            let packet = self.encoder.encode_vec_float(frame, 4000).map_err(error)?;
            let end = if index + 1 == count {
                PacketWriteEndInfo::EndStream
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.write(packet, end)?;
        }
        Ok(self.writer.into_inner())
    }

    fn write(&mut self, packet: Vec<u8>, end: PacketWriteEndInfo) -> Result<(), OpusError> {
        self.packets += 1;
        let granule = if matches!(end, PacketWriteEndInfo::EndStream) {
            // The last granule below the decoded length tells players to drop the padding.
            self.pre_skip + self.samples * self.scale
        } else {
            self.packets * self.frame as u64 * self.scale
        };
        self.writer
            .write_packet(packet, STREAM_SERIAL, end, granule)
            .map_err(error)
    }
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
