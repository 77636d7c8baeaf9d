//! VoiceEncoder against the reference (tools/parity/cases/voice_encoder.py). Budget: rel 1e-5
//! for the mel, the partial embeddings and the speaker embedding (reference f32-vs-f64 floor:
//! ~8e-8).

use candle_core::{DType, Device};
use chatterbox_worker::model::voice_encoder::voice_encoder::TRAINING_ONLY_KEYS;
use chatterbox_worker::model::voice_encoder::{VoiceEncConfig, VoiceEncoder};

use crate::fixture::{Fixture, assert_close};

#[test]
fn voice_encoder_matches_the_reference() {
    let hp = VoiceEncConfig::chatterbox();
    for f in Fixture::all("voice_encoder") {
        println!("{}", f.case);
        let ve = f
            .weights()
            .build(DType::F32, &Device::Cpu, TRAINING_ONLY_KEYS, |vb| {
                VoiceEncoder::load(vb, &hp)
            })
            .unwrap();
        let wav = f.input_f32s("wav16");
        let mel = ve.mel(&wav).unwrap();
        assert_close("mel", &mel, &f.output("mel"), 1e-5, 1e-3);
        let partials = ve.partial_embeds(&f.output("mel")).unwrap();
        assert_close(
            "partials",
            &partials,
            &f.output("partial_embeds"),
            1e-5,
            1e-5,
        );
        let embedding = ve.embeds_from_wav(&wav).unwrap();
        assert_close("embedding", &embedding, &f.output("embedding"), 1e-5, 1e-5);
    }
}
