//! Front-ends against librosa/torch/torchaudio (tools/parity/cases/frontends.py). Budgets: the
//! mels within 1e-5 relative; the log mels, whose logs amplify f32 rounding of tiny energies,
//! within 1e-5 relative and 1e-3 absolute; trim and resampling lengths exact.

use candle_core::{Device, Tensor};
use chatterbox_worker::model::dsp::resample::Resampler;
use chatterbox_worker::model::dsp::trim::trim_range;
use chatterbox_worker::model::s3gen::utils::mel::mel_spectrogram;
use chatterbox_worker::model::s3tokenizer::s3tokenizer::log_mel_spectrogram;
use chatterbox_worker::model::voice_encoder::VoiceEncConfig;
use chatterbox_worker::model::voice_encoder::melspec::melspectrogram;

use crate::fixture::{Fixture, assert_close};

#[test]
fn front_ends_match_the_reference() {
    let cpu = Device::Cpu;
    for f in Fixture::all("frontends") {
        println!("{}", f.case);
        let wav24 = f.input_f32s("wav24");
        let wav16 = Resampler::new(24000, 16000).process(&wav24);
        let expected16 = f.output("wav16");
        let ours16 = Tensor::new(wav16.as_slice(), &cpu).unwrap();
        assert_close("resample 24k->16k", &ours16, &expected16, 1e-5, 1e-5);
        // Later stages start from the reference's 16 kHz signal so each stage is judged alone.
        let wav16: Vec<f32> = expected16.to_vec1().unwrap();

        let mel = mel_spectrogram(&wav24, &cpu).unwrap();
        assert_close("s3gen mel", &mel, &f.output("s3gen_mel"), 1e-5, 1e-3);

        let log_mel = log_mel_spectrogram(&wav16, &cpu).unwrap();
        assert_close(
            "tokenizer log mel",
            &log_mel,
            &f.output("tokenizer_log_mel"),
            1e-5,
            1e-3,
        );

        let ve_mel = melspectrogram(&wav16, &VoiceEncConfig::chatterbox(), &cpu).unwrap();
        assert_close(
            "voice encoder mel",
            &ve_mel,
            &f.output("voice_encoder_mel"),
            1e-5,
            1e-3,
        );

        let range = trim_range(&wav16, 20.0);
        let expected: Vec<i64> = f.output("trim_interval").to_vec1().unwrap();
        assert_eq!(
            [range.start as i64, range.end as i64],
            [expected[0], expected[1]],
            "trim"
        );
    }
}
