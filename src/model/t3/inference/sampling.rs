//! TEMPORARY stand-in (greedy only) until the sampler branch lands.

use candle_core::{DType, Device, Result, Tensor};

#[derive(Debug, Clone)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repetition_penalty: f32,
}

pub enum WarperOrder {
    Chatterbox,
    Turbo,
}

pub struct TokenHistory;

impl TokenHistory {
    pub fn new(_vocab: usize, _ids: &[u32], _device: &Device) -> Result<Self> {
        Ok(Self)
    }
    pub fn push(&mut self, _token: &Tensor) -> Result<()> {
        Ok(())
    }
}

pub struct Sampler;

impl Sampler {
    pub fn new(_p: SamplingParams, _o: WarperOrder, _v: usize, _d: &Device) -> Result<Self> {
        Ok(Self)
    }
    pub fn sample(&self, logits: &Tensor, _h: &TokenHistory, _u: &Tensor) -> Result<Tensor> {
        logits.argmax(0)?.to_dtype(DType::U32)?.reshape(1)
    }
}

pub struct Uniforms(Tensor);

impl Uniforms {
    pub fn from_values(v: &[f32], device: &Device) -> Result<Self> {
        Ok(Self(Tensor::new(v, device)?))
    }
    pub fn at(&self, step: usize) -> Result<Tensor> {
        self.0.get(step)
    }
}
