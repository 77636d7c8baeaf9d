//! The audio module's speed beside ffmpeg, the usual tool for the same work: encoding a minute of
//! 24 kHz mono to every format, decoding it back, resampling it to 16 kHz, and a whole concat
//! of ten clips (decode, resample, trim, level, crossfade, WAV + MP3). ffmpeg runs as a process
//! per operation (its start-up, ~30 ms, is timed too and reported on its own).
//!
//!     cargo bench --bench audio -- [rounds]
//!
//! Each figure is the best of `rounds` (default 5), in milliseconds and times real time.

use std::process::{Command, Stdio};
use std::time::Instant;

use chatterbox_worker::audio::format::OutputFormat;
use chatterbox_worker::audio::join::{self, Part};
use chatterbox_worker::audio::{self, resample, trim, wav};

const RATE: u32 = 24_000;
const SECONDS: f64 = 60.0;

/// Speech-like test audio: a gliding harmonic tone with syllable-rate bursts and pauses.
fn signal(seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let pitch = 140.0 + 30.0 * (t * 0.7).sin();
            let phase = std::f64::consts::TAU * pitch * t;
            let voice = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
            let syllables = (t * 4.0 * std::f64::consts::TAU).sin().max(0.0);
            let pause = if (t % 3.0) > 2.6 { 0.0 } else { 1.0 };
            (0.2 * voice * syllables * pause) as f32
        })
        .collect()
}

fn best_ms(rounds: usize, mut run: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::INFINITY, f64::min)
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {args:?}");
}

fn report(what: &str, ours: f64, theirs: Option<f64>, audio_seconds: f64) {
    let speed = |ms: f64| audio_seconds * 1000.0 / ms;
    match theirs {
        Some(theirs) => println!(
            "{what:<28} ours {ours:>8.1} ms ({:>6.0}x)   ffmpeg {theirs:>8.1} ms ({:>6.0}x)",
            speed(ours),
            speed(theirs)
        ),
        None => println!("{what:<28} ours {ours:>8.1} ms ({:>6.0}x)", speed(ours)),
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let samples = signal(SECONDS);
    let source = path("source.wav");
    std::fs::write(
        &source,
        wav::encode(&samples, RATE, wav::SampleFormat::Pcm16),
    )
    .unwrap();
    let startup = best_ms(rounds, || ffmpeg(&["-version"]));
    println!("{SECONDS} s of 24 kHz mono, best of {rounds}; ffmpeg start-up alone {startup:.1} ms");

    let formats = [
        (OutputFormat::Wav, "wav", &["-c:a", "pcm_s16le"][..]),
        (OutputFormat::Flac, "flac", &["-c:a", "flac"][..]),
        (
            OutputFormat::Mp3,
            "mp3",
            &["-c:a", "libmp3lame", "-b:a", "64k"][..],
        ),
        (
            OutputFormat::Opus,
            "ogg",
            &["-c:a", "libopus", "-b:a", "32k"][..],
        ),
    ];
    for (format, extension, codec) in formats {
        let ours = best_ms(rounds, || {
            format.encode(&samples, RATE).unwrap();
        });
        let target = path(&format!("ffmpeg.{extension}"));
        let theirs = best_ms(rounds, || {
            let mut args = vec!["-i", source.as_str()];
            args.extend_from_slice(codec);
            args.push(target.as_str());
            ffmpeg(&args);
        });
        report(
            &format!("encode {}", format.name()),
            ours,
            Some(theirs),
            SECONDS,
        );

        let encoded = format.encode(&samples, RATE).unwrap();
        let file = path(&format!("ours.{extension}"));
        std::fs::write(&file, &encoded).unwrap();
        let ours = best_ms(rounds, || {
            audio::decode(&encoded).unwrap();
        });
        let theirs = best_ms(rounds, || ffmpeg(&["-i", &file, "-f", "f32le", "-"]));
        report(
            &format!("decode {}", format.name()),
            ours,
            Some(theirs),
            SECONDS,
        );
    }

    let ours = best_ms(rounds, || {
        resample::resample(&samples, RATE, 16_000).unwrap();
    });
    let target = path("16k.wav");
    let theirs = best_ms(rounds, || {
        ffmpeg(&[
            "-i",
            &source,
            "-af",
            "aresample=resampler=soxr",
            "-ar",
            "16000",
            &target,
        ]);
    });
    report("resample 24 -> 16 kHz", ours, Some(theirs), SECONDS);

    // A concat job's audio work on ten 6 s clips, each with silence around it, at 16 kHz in.
    let clips: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            let clip = signal(6.0 + i as f64 * 0.1);
            let padded = [vec![0.0; 8_000], clip, vec![0.0; 8_000]].concat();
            let at_16k = resample::resample(&padded, RATE, 16_000).unwrap();
            wav::encode(&at_16k, 16_000, wav::SampleFormat::Pcm16)
        })
        .collect();
    let mut joined_seconds = 0.0;
    let ours = best_ms(rounds, || {
        let mut decoded: Vec<Vec<f32>> = clips
            .iter()
            .map(|bytes| {
                let clip = audio::decode(bytes).unwrap();
                let samples = resample::resample(&clip.samples, clip.sample_rate, RATE).unwrap();
                trim::trim(&samples, RATE, 200).0
            })
            .collect();
        join::level(&mut decoded, RATE);
        let parts: Vec<Part> = decoded.into_iter().map(Part::Audio).collect();
        let (joined, _) = join::assemble(&parts, 2_400);
        joined_seconds = joined.len() as f64 / f64::from(RATE);
        OutputFormat::Wav.encode(&joined, RATE).unwrap();
        OutputFormat::Mp3.encode(&joined, RATE).unwrap();
    });
    report("concat 10 clips (wav+mp3)", ours, None, joined_seconds);
}
