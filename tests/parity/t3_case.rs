//! A T3 parity fixture loaded as the parity tests and the T3 benchmark use it: the case
//! configuration, the model built from the seeded weights, its conditioning and text.

use candle_core::{DType, Device, Tensor};
use chatterbox_worker::model::t3::t3::UNUSED_KEYS;
use chatterbox_worker::model::t3::{T3, T3Cond, T3Config};
use serde::Deserialize;

use crate::fixture::Fixture;

#[derive(Deserialize)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repetition_penalty: f32,
}

#[derive(Deserialize)]
pub struct Case {
    pub t3: T3Config,
    pub variant: String,
    pub cfg_weight: f32,
    pub emotion_adv: f32,
    pub sampling: Sampling,
    pub sampling_seed: u64,
}

pub fn ids(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::U32).unwrap().to_vec1().unwrap()
}

pub struct Loaded {
    pub case: Case,
    pub t3: T3,
    pub cond: T3Cond,
    pub text: Vec<u32>,
}

pub fn load(f: &Fixture) -> Loaded {
    let case: Case = f.config();
    let t3 = f
        .weights()
        .build(DType::F32, &Device::Cpu, UNUSED_KEYS, |vb| {
            T3::load(vb, &case.t3)
        })
        .unwrap();
    let prompt = f.input("prompt_tokens").to_dtype(DType::U32).unwrap();
    let cond = T3Cond {
        speaker_emb: f.input("speaker_emb"),
        cond_prompt_speech_tokens: Some(prompt.unsqueeze(0).unwrap()),
        emotion_adv: case.emotion_adv,
    };
    let text = ids(&f.input("text_tokens"));
    Loaded {
        case,
        t3,
        cond,
        text,
    }
}
