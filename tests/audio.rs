//! The audio module against independent tools: every output format decoded by our decoder
//! and by ffmpeg, every input format made by ffmpeg decoded by ours, and trimming on real
//! (espeak-ng) speech. ffmpeg comes from Debian's packages; `.ci/run` installs it, and under
//! CI a missing ffmpeg fails these tests instead of skipping them.

use std::path::Path;
use std::process::Command;

use chatterbox_worker::audio::format::OutputFormat;
use chatterbox_worker::audio::{self, Clip, trim, wav};

fn tone(hz: f32, rate: u32, seconds: f32, amplitude: f32) -> Vec<f32> {
    (0..(rate as f32 * seconds) as usize)
        .map(|i| amplitude * (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin())
        .collect()
}

/// Dominant frequency by zero crossings.
fn frequency(samples: &[f32], rate: u32) -> f32 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f32 * rate as f32 / samples.len() as f32 / 2.0
}

/// Whether ffmpeg can be used; under CI its absence is a failure.
fn ffmpeg_available() -> bool {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must have ffmpeg (.ci/run installs it)"
    );
    if !found {
        eprintln!("ffmpeg is not installed: the independent-decoder checks are skipped");
    }
    found
}

/// ffmpeg's view of a file: codec, container, sample rate, and its samples as mono f32 at the
/// file's rate.
struct Probe {
    codec: String,
    container: String,
    sample_rate: u32,
    samples: Vec<f32>,
}

fn ffmpeg_decode(path: &Path) -> Probe {
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate",
        ])
        .args(["-show_entries", "format=format_name", "-of", "default=nw=1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(probe.status.success(), "ffprobe {}", path.display());
    let text = String::from_utf8(probe.stdout).unwrap();
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("ffprobe gave no {key}: {text}"))
            .to_string()
    };
    let sample_rate: u32 = field("sample_rate").parse().unwrap();
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-ac", "1", "-f", "f32le", "-"])
        .output()
        .unwrap();
    assert!(decoded.status.success(), "ffmpeg {}", path.display());
    Probe {
        codec: field("codec_name"),
        container: field("format_name"),
        sample_rate,
        samples: decoded
            .stdout
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
    }
}

#[test]
fn every_format_round_trips_through_our_decoder_and_ffmpeg() {
    let rate = 24_000;
    let input = tone(440.0, rate, 2.0, 0.5);
    let pcm16: Vec<f32> = input
        .iter()
        .map(|&s| f32::from(wav::to_i16(s)) / 32768.0)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ffmpeg = ffmpeg_available();
    let formats = [
        (OutputFormat::Wav, "pcm_s16le", "wav"),
        (OutputFormat::WavFloat, "pcm_f32le", "wav"),
        (OutputFormat::Flac, "flac", "flac"),
        (OutputFormat::Mp3, "mp3", "mp3"),
        (OutputFormat::Opus, "opus", "ogg"),
    ];
    for (format, codec, container) in formats {
        let bytes = format.encode(&input, rate).unwrap();
        let ours = audio::decode(&bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        // Opus always decodes at 48 kHz; the rest keep the rate they were written at.
        let decoded_rate = if format == OutputFormat::Opus {
            48_000
        } else {
            rate
        };
        assert_eq!(ours.sample_rate, decoded_rate, "{format:?}");
        let expected = input.len() * (decoded_rate / rate) as usize;
        // Exactly the input's length, lossy formats too: MP3 through its LAME tag (encoder
        // delay and padding), Opus through its pre-skip and end granule.
        assert_eq!(ours.samples.len(), expected, "{format:?}");
        let hz = frequency(&ours.samples, decoded_rate);
        assert!((hz - 440.0).abs() < 440.0 * 0.02, "{format:?}: {hz} Hz");
        match format {
            OutputFormat::Wav | OutputFormat::Flac => assert_eq!(ours.samples, pcm16, "{format:?}"),
            OutputFormat::WavFloat => assert_eq!(ours.samples, input),
            _ => {}
        }

        if !ffmpeg {
            continue;
        }
        let path = dir.path().join(format!("tone.{}", format.extension()));
        std::fs::write(&path, &bytes).unwrap();
        let probe = ffmpeg_decode(&path);
        assert_eq!(probe.codec, codec, "{format:?}");
        assert!(
            probe.container.contains(container),
            "{format:?}: {}",
            probe.container
        );
        // ffmpeg reports Opus at 48 kHz as well.
        assert_eq!(probe.sample_rate, decoded_rate, "{format:?}");
        assert_eq!(probe.samples.len(), expected, "{format:?}: ffmpeg");
        let hz = frequency(&probe.samples, decoded_rate);
        assert!(
            (hz - 440.0).abs() < 440.0 * 0.02,
            "{format:?}: ffmpeg {hz} Hz"
        );
        if matches!(format, OutputFormat::Wav | OutputFormat::Flac) {
            assert_eq!(probe.samples, pcm16, "{format:?}: ffmpeg disagrees");
        }
    }
    // pcm: the 16-bit samples and nothing else.
    let raw = OutputFormat::Pcm.encode(&input, rate).unwrap();
    assert_eq!(raw.len(), input.len() * 2);
    assert_eq!(
        raw,
        wav::encode(&input, rate, wav::SampleFormat::Pcm16)[44..]
    );
}

/// AAC in ADTS: ours and ffmpeg decode it at its rate, holding the whole input after the
/// encoder's priming (which ADTS cannot signal) and at most a few frames more, pitch kept.
#[test]
fn aac_decodes_with_ffmpeg_and_ours_at_every_rate() {
    let dir = tempfile::tempdir().unwrap();
    let ffmpeg = ffmpeg_available();
    for rate in [16_000, 22_050, 24_000, 44_100, 48_000] {
        let input = tone(440.0, rate, 2.0, 0.5);
        let bytes = OutputFormat::Aac.encode(&input, rate).unwrap();
        let mut decoders = vec![("ours", audio::decode(&bytes).unwrap())];
        if ffmpeg {
            let path = dir.path().join(format!("tone_{rate}.aac"));
            std::fs::write(&path, &bytes).unwrap();
            let probe = ffmpeg_decode(&path);
            assert_eq!(
                (probe.codec.as_str(), probe.container.as_str()),
                ("aac", "aac")
            );
            decoders.push((
                "ffmpeg",
                Clip {
                    samples: probe.samples,
                    sample_rate: probe.sample_rate,
                },
            ));
        }
        for (decoder, clip) in decoders {
            assert_eq!(clip.sample_rate, rate, "{decoder} at {rate}");
            let extra = clip.samples.len() as i64 - input.len() as i64;
            assert!(
                (0..=3 * 1024).contains(&extra),
                "{decoder} at {rate}: {extra} more"
            );
            // Measured past the priming and before the padding, which are silence.
            let tone = &clip.samples[4096..input.len()];
            let hz = frequency(tone, rate);
            assert!(
                (hz - 440.0).abs() < 440.0 * 0.02,
                "{decoder} at {rate}: {hz} Hz"
            );
        }
    }
}

#[test]
fn opus_at_rates_libopus_lacks_is_resampled_and_still_exact_in_length() {
    let input = tone(300.0, 44_100, 1.0, 0.4);
    let bytes = OutputFormat::Opus.encode(&input, 44_100).unwrap();
    let decoded = audio::decode(&bytes).unwrap();
    assert_eq!(decoded.sample_rate, 48_000);
    assert!(
        decoded.samples.len().abs_diff(48_000) <= 1,
        "{}",
        decoded.samples.len()
    );
    assert!((frequency(&decoded.samples, 48_000) - 300.0).abs() < 6.0);
}

#[test]
fn inputs_in_every_common_format_decode_to_mono_at_their_rate() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A stereo 44.1 kHz source: 440 Hz left, 440 Hz right at half level.
    let source = dir.path().join("source.wav");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=1.5",
        ])
        .args(["-af", "pan=stereo|c0=c0|c1=0.5*c0", "-c:a", "pcm_s24le"])
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
    let variants: [(&str, &[&str]); 8] = [
        ("s24.wav", &["-c:a", "pcm_s24le"]),
        ("u8.wav", &["-c:a", "pcm_u8"]),
        ("f64.wav", &["-c:a", "pcm_f64le"]),
        ("aiff.aiff", &["-c:a", "pcm_s16be"]),
        ("flac.flac", &["-c:a", "flac"]),
        ("mp3.mp3", &["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("vorbis.ogg", &["-c:a", "libvorbis"]),
        ("aac.m4a", &["-c:a", "aac", "-b:a", "96k"]),
    ];
    for (name, codec) in variants {
        let path = dir.path().join(name);
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&source)
            .args(codec)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg made no {name}");
        let clip: Clip =
            audio::decode(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(clip.sample_rate, 44_100, "{name}");
        // Compressed formats carry encoder delay and padding: within 3 frames of 1.5 s.
        let seconds = clip.duration_seconds();
        assert!((seconds - 1.5).abs() < 0.08, "{name}: {seconds} s");
        assert!(
            (frequency(&clip.samples, 44_100) - 440.0).abs() < 9.0,
            "{name}"
        );
        // Down-mixed: the mean of full and half level, 0.75 of the sine's 0.125 amplitude.
        let middle = &clip.samples[10_000..50_000];
        let peak = middle.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.75 * 0.125).abs() < 0.01, "{name}: peak {peak}");
    }
    // Ogg Opus from ffmpeg's libopus, not only our own muxer.
    let path = dir.path().join("opus.ogg");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&source)
        .args(["-c:a", "libopus"])
        .arg(&path)
        .status()
        .unwrap();
    if status.success() {
        let clip = audio::decode(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(clip.sample_rate, 48_000);
        assert!(
            (clip.duration_seconds() - 1.5).abs() < 0.03,
            "{}",
            clip.duration_seconds()
        );
    }
}

fn speech() -> Clip {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/speech.flac");
    audio::decode(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn trimming_real_speech_cuts_padding_and_never_the_words() {
    let speech = speech();
    let rate = speech.sample_rate;
    assert_eq!(rate, 24_000);
    // espeak-ng's own file, as it comes: nothing long enough to cut inside or around it.
    let (kept, info) = trim::trim(&speech.samples, rate, 1000);
    assert!(!info.trimmed, "{info:?}");
    assert_eq!(kept.len(), speech.samples.len());

    // Padded with 700 ms before and 900 ms after: both pads go, down to a short guard.
    let pad = |ms: usize| vec![0.0f32; rate as usize * ms / 1000];
    let padded: Vec<f32> = [pad(700), speech.samples.clone(), pad(900)].concat();
    let (kept, info) = trim::trim(&padded, rate, trim::DEFAULT_THRESHOLD_MS);
    assert!(info.trimmed);
    assert!(info.leading_silence_removed_ms >= 600.0, "{info:?}");
    assert!(info.trailing_silence_removed_ms >= 800.0, "{info:?}");
    let energy = |s: &[f32]| s.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
    assert!(
        energy(&kept) >= energy(&speech.samples) * 0.9999,
        "trimming removed speech"
    );
}

/// A tiny deterministic generator, so a failing mutation can be replayed.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn damaged_files_of_every_format_are_errors_or_audio_never_panics() {
    let input = tone(440.0, 24_000, 0.5, 0.5);
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    for format in [
        OutputFormat::Wav,
        OutputFormat::Flac,
        OutputFormat::Mp3,
        OutputFormat::Opus,
        OutputFormat::Aac,
    ] {
        let valid = format.encode(&input, 24_000).unwrap();
        for round in 0..150 {
            let mut damaged = valid.clone();
            match round % 3 {
                // Flip a few bytes anywhere, headers included.
                0 | 1 => {
                    for _ in 0..1 + round % 8 {
                        let at = xorshift(&mut state) as usize % damaged.len();
                        damaged[at] ^= (xorshift(&mut state) % 255 + 1) as u8;
                    }
                }
                // Cut it short.
                _ => damaged.truncate(xorshift(&mut state) as usize % damaged.len()),
            }
            let result = std::panic::catch_unwind(|| audio::decode(&damaged));
            let Ok(result) = result else {
                panic!("{format:?} round {round}: a panic escaped the decoder");
            };
            if let Ok(clip) = result {
                assert!(clip.sample_rate > 0);
                assert!(
                    clip.samples.iter().all(|s| s.is_finite()),
                    "{format:?} round {round}"
                );
            }
        }
    }
}
