//! AAC-LC in ADTS frames through the Fraunhofer FDK AAC library (fdk-aac-sys builds it from
//! the sources it vendors): mono, constant bit rate, the engine's 24 kHz kept, as OpenAI serves
//! `aac`. ADTS has no field for the encoder's delay, so decoders return the audio after about
//! 2 048 samples of priming and padded to a whole frame (docs/audio.md).

use std::ffi::c_void;
use std::os::raw::c_int;

use fdk_aac_sys as fdk;

use super::resample;

/// 64 kbit/s mono: the rate the MP3 output uses, transparent for 24 kHz speech.
const BITRATE: u32 = 64_000;
/// The sampling rates AAC's ADTS header can name; others are resampled to 48 kHz first.
const ENCODER_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];
const FALLBACK_RATE: u32 = 48_000;
/// FDK's parameter values (aacenc_lib.h): AAC-LC, one channel, ADTS, constant bit rate.
const AOT_AAC_LC: u32 = 2;
const CHANNEL_MODE_MONO: u32 = 1;
const TRANSMUX_ADTS: u32 = 2;
const BITRATE_MODE_CBR: u32 = 0;

#[derive(Debug, thiserror::Error)]
#[error("AAC encoding failed: {0}")]
pub struct AacError(String);

fn check(call: &str, code: fdk::AACENC_ERROR) -> Result<(), AacError> {
    if code == fdk::AACENC_ERROR_AACENC_OK {
        Ok(())
    } else {
        Err(AacError(format!("{call} returned error {code:#x}")))
    }
}

/// `samples` in [-1, 1] at `sample_rate`, as one ADTS stream.
pub fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, AacError> {
    let resampled;
    let (samples, rate) = if ENCODER_RATES.contains(&sample_rate) {
        (samples, sample_rate)
    } else {
        resampled = resample::resample(samples, sample_rate, FALLBACK_RATE)
            .map_err(|e| AacError(e.to_string()))?;
        (resampled.as_slice(), FALLBACK_RATE)
    };
    let mut stream = AacStream::new(rate)?;
    let mut out = stream.push(samples)?;
    out.extend(stream.finish()?);
    Ok(out)
}

/// One ADTS stream written as its audio arrives: every frame is whole, so the bytes of each
/// push can be played at once.
pub struct AacStream {
    handle: fdk::HANDLE_AACENCODER,
    /// The largest frame the encoder may write.
    frame_bytes: usize,
}

// The handle is owned by this value alone and FDK keeps no thread-local state.
unsafe impl Send for AacStream {}

impl AacStream {
    /// An encoder at `sample_rate`, which must be one ADTS can name.
    pub fn new(sample_rate: u32) -> Result<Self, AacError> {
        if !ENCODER_RATES.contains(&sample_rate) {
            return Err(AacError(format!(
                "{sample_rate} Hz is not an AAC sampling rate"
            )));
        }
        let mut handle: fdk::HANDLE_AACENCODER = std::ptr::null_mut();
        // SAFETY: aacEncOpen writes a fresh handle (or leaves null on failure).
        check("aacEncOpen", unsafe { fdk::aacEncOpen(&mut handle, 0, 1) })?;
        // From here the handle is closed on drop, whatever fails next.
        let mut stream = Self {
            handle,
            frame_bytes: 0,
        };
        for (param, value) in [
            (fdk::AACENC_PARAM_AACENC_AOT, AOT_AAC_LC),
            (fdk::AACENC_PARAM_AACENC_SAMPLERATE, sample_rate),
            (fdk::AACENC_PARAM_AACENC_CHANNELMODE, CHANNEL_MODE_MONO),
            (fdk::AACENC_PARAM_AACENC_BITRATEMODE, BITRATE_MODE_CBR),
            (fdk::AACENC_PARAM_AACENC_BITRATE, BITRATE),
            (fdk::AACENC_PARAM_AACENC_TRANSMUX, TRANSMUX_ADTS),
            (fdk::AACENC_PARAM_AACENC_AFTERBURNER, 1),
        ] {
            // SAFETY: the handle is open; unknown values are refused with an error code.
            check("aacEncoder_SetParam", unsafe {
                fdk::aacEncoder_SetParam(stream.handle, param, value)
            })?;
        }
        // SAFETY: the documented initialisation call: all buffers null.
        check("aacEncEncode (initialisation)", unsafe {
            fdk::aacEncEncode(
                stream.handle,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        })?;
        let mut info = std::mem::MaybeUninit::<fdk::AACENC_InfoStruct>::zeroed();
        // SAFETY: aacEncInfo fills the struct it is given.
        check("aacEncInfo", unsafe {
            fdk::aacEncInfo(stream.handle, info.as_mut_ptr())
        })?;
        // SAFETY: zero-initialised and filled by aacEncInfo.
        stream.frame_bytes = unsafe { info.assume_init() }.maxOutBufBytes as usize;
        Ok(stream)
    }

    /// The frames completed by `samples`; possibly none.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AacError> {
        let pcm: Vec<i16> = samples
            .iter()
            .map(|s| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16)
            .collect();
        let mut out = Vec::new();
        let mut rest = pcm.as_slice();
        while !rest.is_empty() {
            let (consumed, _) = self.call(Some(rest), &mut out)?;
            if consumed == 0 {
                return Err(AacError("the encoder took no input".into()));
            }
            rest = rest.get(consumed..).unwrap_or_default();
        }
        Ok(out)
    }

    /// The frames still buffered, the last one padded.
    pub fn finish(mut self) -> Result<Vec<u8>, AacError> {
        let mut out = Vec::new();
        // Each flush call gives at most one frame; the delay line holds a few.
        for _ in 0..64 {
            let (_, ended) = self.call(None, &mut out)?;
            if ended {
                return Ok(out);
            }
        }
        Err(AacError("the encoder did not finish its stream".into()))
    }

    /// One aacEncEncode call on `input` (None: flush), appending the frame written to `out`;
    /// returns the samples consumed and whether the stream has ended.
    fn call(
        &mut self,
        input: Option<&[i16]>,
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), AacError> {
        let samples = input.unwrap_or_default();
        let mut in_ptr = samples.as_ptr() as *mut c_void;
        let mut in_id = fdk::AACENC_BufferIdentifier_IN_AUDIO_DATA as c_int;
        let mut in_size = c_int::try_from(std::mem::size_of_val(samples))
            .map_err(|_| AacError("too many samples in one piece".into()))?;
        let mut in_el_size = std::mem::size_of::<i16>() as c_int;
        let in_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut in_ptr,
            bufferIdentifiers: &mut in_id,
            bufSizes: &mut in_size,
            bufElSizes: &mut in_el_size,
        };
        let mut frame = vec![0u8; self.frame_bytes];
        let mut out_ptr = frame.as_mut_ptr() as *mut c_void;
        let mut out_id = fdk::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as c_int;
        let mut out_size = frame.len() as c_int;
        let mut out_el_size: c_int = 1;
        let out_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut out_ptr,
            bufferIdentifiers: &mut out_id,
            bufSizes: &mut out_size,
            bufElSizes: &mut out_el_size,
        };
        let in_args = fdk::AACENC_InArgs {
            // -1 asks for the buffered audio to be flushed.
            numInSamples: match input {
                Some(_) => samples.len() as c_int,
                None => -1,
            },
            numAncBytes: 0,
        };
        // SAFETY: zeroed is a valid value of the plain-data out-args struct.
        let mut out_args: fdk::AACENC_OutArgs = unsafe { std::mem::zeroed() };
        // SAFETY: every descriptor points at live buffers of the sizes it states, which
        // outlive the call; the encoder writes at most `frame_bytes` into `frame`.
        let code =
            unsafe { fdk::aacEncEncode(self.handle, &in_desc, &out_desc, &in_args, &mut out_args) };
        if code == fdk::AACENC_ERROR_AACENC_ENCODE_EOF {
            return Ok((0, true));
        }
        check("aacEncEncode", code)?;
        let written = usize::try_from(out_args.numOutBytes)
            .unwrap_or(0)
            .min(frame.len());
        out.extend_from_slice(&frame[..written]);
        Ok((usize::try_from(out_args.numInSamples).unwrap_or(0), false))
    }
}

impl Drop for AacStream {
    fn drop(&mut self) {
        // SAFETY: the handle came from aacEncOpen and is closed once, here.
        unsafe {
            fdk::aacEncClose(&mut self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::decode;

    /// ADTS frames: (sampling-rate index, channel configuration, frame length) of each; fails
    /// on anything between frames that is not one.
    fn adts_frames(bytes: &[u8]) -> Vec<(u8, u8, usize)> {
        let mut frames = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let header = &bytes[at..at + 7];
            assert_eq!(header[0], 0xFF, "sync at {at}");
            assert_eq!(header[1] & 0xF6, 0xF0, "sync, layer 0 at {at}");
            assert_eq!((header[2] >> 6) + 1, 2, "AAC-LC profile at {at}");
            let rate_index = (header[2] >> 2) & 0x0F;
            let channels = ((header[2] & 1) << 2) | (header[3] >> 6);
            let length = (usize::from(header[3] & 0x03) << 11)
                | (usize::from(header[4]) << 3)
                | usize::from(header[5] >> 5);
            assert!(length >= 7, "frame length {length} at {at}");
            frames.push((rate_index, channels, length));
            at += length;
        }
        assert_eq!(at, bytes.len(), "the last frame is whole");
        frames
    }

    fn tone(samples: usize, rate: u32) -> Vec<f32> {
        (0..samples)
            .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    /// Every length class (empty, under a frame, frame multiples and around them) at 24 kHz:
    /// whole mono ADTS frames at the 24 kHz index, one per 1 024 samples plus the priming, and
    /// a decode that holds the whole input.
    #[test]
    fn every_length_makes_whole_frames_that_decode() {
        for samples in [0, 1, 1_023, 1_024, 1_025, 4_800, 24_000, 48_001, 137_430] {
            let audio = tone(samples, 24_000);
            let bytes = encode(&audio, 24_000).unwrap();
            let frames = adts_frames(&bytes);
            assert!(frames.iter().all(|f| f.0 == 6 && f.1 == 1), "{samples}");
            let min_frames = samples.div_ceil(1_024);
            assert!(
                frames.len() >= min_frames && frames.len() <= min_frames + 3,
                "{samples}: {} frames",
                frames.len()
            );
            if samples >= 1_024 {
                let clip = decode(&bytes).unwrap();
                assert_eq!(clip.sample_rate, 24_000);
                assert!(clip.samples.len() >= samples, "{samples}");
            }
        }
    }

    /// Rates ADTS names are kept; others come out at 48 kHz.
    #[test]
    fn every_rate_is_encoded_at_a_rate_adts_names() {
        const INDEX: [(u32, u8); 9] = [
            (48_000, 3),
            (44_100, 4),
            (32_000, 5),
            (24_000, 6),
            (22_050, 7),
            (16_000, 8),
            (12_000, 9),
            (11_025, 10),
            (8_000, 11),
        ];
        for rate in [
            8_000, 11_025, 12_000, 16_000, 20_000, 22_050, 24_000, 32_000, 44_100, 48_000,
        ] {
            let bytes = encode(&tone(rate as usize / 2, rate), rate).unwrap();
            let expected = if ENCODER_RATES.contains(&rate) {
                rate
            } else {
                FALLBACK_RATE
            };
            let index = INDEX.iter().find(|(r, _)| *r == expected).unwrap().1;
            assert!(adts_frames(&bytes).iter().all(|f| f.0 == index), "{rate}");
            assert_eq!(decode(&bytes).unwrap().sample_rate, expected, "{rate}");
        }
        assert!(AacStream::new(20_000).is_err());
    }

    /// Pushed in uneven pieces, the stream is the same audio as one push: same frames.
    #[test]
    fn pushed_pieces_give_the_same_stream() {
        let audio = tone(30_011, 24_000);
        let whole = encode(&audio, 24_000).unwrap();
        let mut stream = AacStream::new(24_000).unwrap();
        let mut pieces = Vec::new();
        for piece in audio.chunks(3_001) {
            pieces.extend(stream.push(piece).unwrap());
        }
        pieces.extend(stream.finish().unwrap());
        assert_eq!(pieces, whole);
    }
}
