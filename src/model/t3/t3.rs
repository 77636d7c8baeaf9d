//! Port of chatterbox/models/t3/t3.py: the text-to-speech-token transformer. It embeds the
//! conditioning, the text and the speech tokens itself and runs a backbone on the embeddings;
//! `inference` is the English/multilingual loop (classifier-free guidance, alignment guard) and
//! `inference_turbo` Turbo's.

use std::sync::Arc;

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};

use super::backbone::Backbone;
use super::backbone::kv_cache::KvCache;
use super::backbone::linear_rows::RowsLinear;
use super::inference::alignment_stream_analyzer::{
    AlignmentStreamAnalyzer, LLAMA_ALIGNED_HEADS, LogitsAction,
};
use super::inference::sampling::{Sampler, SamplingParams, Uniforms, WarperOrder};
use super::modules::cond_enc::{T3Cond, T3CondEnc};
use super::modules::learned_pos_emb::LearnedPositionEmbeddings;
use super::modules::t3_config::T3Config;

/// Checkpoint keys inference never reads: the backbones' own token tables (Llama's 8-row dummy,
/// GPT-2's `wte`, which the reference deletes after loading), the text head (training only) and
/// GPT-2's causal-mask buffers, which older transformers saved.
pub const UNUSED_KEYS: &[&str] = &[
    "tfmr.embed_tokens.weight",
    "tfmr.wte.weight",
    "text_head.weight",
    "attn.bias",
    "attn.masked_bias",
];

/// The logit the alignment guard writes (±2¹⁵, as the reference).
const FORCED_LOGIT: f32 = 32768.0;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub sampling: SamplingParams,
    /// Classifier-free guidance weight (Llama variants); 0 runs a single row.
    pub cfg_weight: f32,
    /// Most speech tokens generated, the stop token included.
    pub max_new_tokens: usize,
    /// Asked before each token whether the generation is still wanted.
    pub stop: StopSignal,
}

/// Whether a generation's caller has gone: the engine answers it from the request's reply
/// channel, so a client that hangs up ends its generation at the next token, not the next text
/// chunk. The default never stops.
#[derive(Clone, Default)]
pub struct StopSignal(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl StopSignal {
    pub fn new(stopped: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(stopped)))
    }

    pub fn requested(&self) -> bool {
        self.0.as_ref().is_some_and(|stopped| stopped())
    }
}

impl std::fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StopSignal"
        } else {
            "StopSignal(never)"
        })
    }
}

impl GenerateOptions {
    /// `ChatterboxTTS.generate`'s defaults.
    pub fn english() -> Self {
        Self {
            sampling: SamplingParams::english(),
            cfg_weight: 0.5,
            max_new_tokens: 1000,
            stop: StopSignal::default(),
        }
    }

    /// `ChatterboxMultilingualTTS.generate`'s defaults (0.1.7).
    pub fn multilingual() -> Self {
        Self {
            sampling: SamplingParams::multilingual(),
            ..Self::english()
        }
    }

    /// `ChatterboxTurboTTS.generate`'s defaults: no guidance, one token from the prefill plus
    /// `max_gen_len` 1000.
    pub fn turbo() -> Self {
        Self {
            sampling: SamplingParams::turbo(),
            cfg_weight: 0.0,
            max_new_tokens: 1001,
            stop: StopSignal::default(),
        }
    }
}

pub struct T3 {
    pub hp: T3Config,
    backbone: Backbone,
    cond_enc: T3CondEnc,
    text_emb: Embedding,
    speech_emb: Embedding,
    text_pos_emb: Option<LearnedPositionEmbeddings>,
    speech_pos_emb: Option<LearnedPositionEmbeddings>,
    speech_head: RowsLinear,
    device: Device,
    dtype: DType,
}

impl T3 {
    /// Keeps the backbone's projections and the speech head in `dtype` (bf16: half the bytes
    /// each CPU decode step reads, at the cost of rounding the weights). CPU f32 models only:
    /// elsewhere the model's own dtype is the way to store it compactly.
    pub fn store_decode_weights_as(&mut self, dtype: DType) -> Result<()> {
        if !self.device.is_cpu() || self.dtype != DType::F32 {
            candle_core::bail!(
                "compact decode weights apply to f32 models on the CPU (this one is {:?} on {:?})",
                self.dtype,
                self.device
            );
        }
        self.backbone.store_linears_as(dtype)?;
        self.speech_head.store_as(dtype)
    }

    pub fn load(vb: VarBuilder, hp: &T3Config) -> Result<Self> {
        let dim = hp.n_channels();
        let (text_pos_emb, speech_pos_emb) = if hp.learned_pos_emb {
            (
                Some(LearnedPositionEmbeddings::load(
                    vb.pp("text_pos_emb"),
                    hp.max_text_tokens + 2,
                    dim,
                )?),
                Some(LearnedPositionEmbeddings::load(
                    vb.pp("speech_pos_emb"),
                    hp.max_speech_tokens + 4,
                    dim,
                )?),
            )
        } else {
            (None, None)
        };
        // Only GPT-2's head has a bias (`bias=self.is_gpt`).
        let speech_head = RowsLinear::load(
            vb.pp("speech_head"),
            dim,
            hp.speech_tokens_dict_size,
            hp.is_gpt(),
        )?;
        Ok(Self {
            hp: hp.clone(),
            backbone: Backbone::load(vb.pp("tfmr"), &hp.backbone, max_positions(hp))?,
            cond_enc: T3CondEnc::load(vb.pp("cond_enc"), hp)?,
            text_emb: candle_nn::embedding(hp.text_tokens_dict_size, dim, vb.pp("text_emb"))?,
            speech_emb: candle_nn::embedding(hp.speech_tokens_dict_size, dim, vb.pp("speech_emb"))?,
            text_pos_emb,
            speech_pos_emb,
            speech_head,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// `prepare_conditioning`: (1, len_cond, dim).
    pub fn prepare_conditioning(&self, cond: &T3Cond) -> Result<Tensor> {
        let prompt = match &cond.cond_prompt_speech_tokens {
            Some(tokens) => {
                let tokens: Vec<u32> = tokens.flatten_all()?.to_dtype(DType::U32)?.to_vec1()?;
                // An empty prompt would leave the Perceiver's attention nothing to attend to.
                if tokens.is_empty() {
                    candle_core::bail!("the prompt speech tokens are empty");
                }
                let ids = self.ids(
                    &tokens,
                    "prompt speech token",
                    self.hp.speech_tokens_dict_size,
                )?;
                let mut emb = self.speech_emb.forward(&ids)?;
                if let Some(pos) = &self.speech_pos_emb {
                    emb = (emb + pos.range(0, tokens.len())?)?;
                }
                Some(emb.unsqueeze(0)?)
            }
            None => None,
        };
        let speaker = cond
            .speaker_emb
            .to_device(&self.device)?
            .to_dtype(self.dtype)?;
        self.cond_enc
            .forward(&speaker, prompt.as_ref(), cond.emotion_adv)
    }

    /// Runs the conditioning prefix [speaker | prompt speech | emotion] through the backbone.
    /// The result depends only on the voice (and the exaggeration), so a caller can keep it per
    /// voice and start every text from it; the prefix is the longest part of Turbo's prefill.
    pub fn prefill_conditioning(&self, cond: &T3Cond) -> Result<ConditioningPrefix> {
        let embeds = self.prepare_conditioning(cond)?;
        let len = embeds.dim(1)?;
        let mut cache = self.backbone.new_cache(1, len, self.dtype, &self.device)?;
        self.backbone.forward(&embeds, &mut cache, &[])?;
        Ok(ConditioningPrefix { cache, len })
    }

    /// The rest of `prepare_input_embeds` after the conditioning: [text (+ positions) | start
    /// token (+ position 0)] for `rows` rows; with two rows the second is the unconditional
    /// one of classifier-free guidance, its text embeddings zeroed before the positions are
    /// added (Llama variants). The Llama variants follow `inference`, which appends the start
    /// token a second time, also at speech position 0; Turbo follows `inference_turbo`.
    fn embed_text_and_start(&self, text_tokens: &[u32], rows: usize) -> Result<Tensor> {
        let text_ids = self.ids(text_tokens, "text token", self.hp.text_tokens_dict_size)?;
        let start_ids = self.ids(
            &[self.hp.start_speech_token],
            "speech token",
            self.hp.speech_tokens_dict_size,
        )?;
        let text_emb = self.text_emb.forward(&text_ids)?;
        let start = self.embed_speech_token(&start_ids, 0)?.squeeze(0)?;
        let start = if self.hp.is_gpt() {
            start
        } else {
            Tensor::cat(&[&start, &start], 0)?
        };
        let text_pos = match &self.text_pos_emb {
            Some(pos) => Some(pos.range(0, text_tokens.len())?),
            None => None,
        };
        let row = |text: Tensor| -> Result<Tensor> {
            let text = match &text_pos {
                Some(p) => (text + p)?,
                None => text,
            };
            Tensor::cat(&[&text, &start], 0)
        };
        let mut batch = vec![row(text_emb.clone())?];
        if rows == 2 {
            batch.push(row(if self.hp.is_gpt() {
                text_emb
            } else {
                text_emb.zeros_like()?
            })?);
        }
        Tensor::stack(&batch, 0)
    }

    /// Starts a generation from a conditioning prefix: prefills the text and start tokens for
    /// `rows` rows (2 for classifier-free guidance) with room for `max_new_tokens`.
    pub fn start(
        &self,
        prefix: &ConditioningPrefix,
        text_tokens: &[u32],
        rows: usize,
        max_new_tokens: usize,
        watch: &[(usize, usize)],
    ) -> Result<Decoding<'_>> {
        let embeds = self.embed_text_and_start(text_tokens, rows)?;
        let prompt = prefix.len + embeds.dim(1)?;
        // Checked before the cache is sized by it: a request's token budget must not turn into
        // an allocation the machine cannot make.
        let room = self.max_generated(prompt);
        if max_new_tokens > room {
            candle_core::bail!(
                "{max_new_tokens} new speech tokens do not fit after a {prompt}-position prompt; \
                 this model has room for {room}"
            );
        }
        let capacity = prompt + max_new_tokens + 1;
        let mut cache = prefix.cache.fork(rows, capacity)?;
        let (logits, attention) = self.run(&embeds, &mut cache, watch)?;
        let len_cond = prefix.len;
        Ok(Decoding {
            t3: self,
            cache,
            rows,
            generated: 0,
            logits,
            attention,
            watch: watch.to_vec(),
            text_slice: (len_cond, len_cond + text_tokens.len()),
        })
    }

    /// The English/multilingual generation loop of `T3.inference`, with classifier-free guidance
    /// as a batch of two (one row when `cfg_weight` is 0, where the reference crashes) and, for
    /// the multilingual model, the alignment guard. Returns the speech tokens before the stop
    /// token.
    pub fn inference(
        &self,
        prefix: &ConditioningPrefix,
        text_tokens: &[u32],
        opts: &GenerateOptions,
        uniforms: &Uniforms,
    ) -> Result<Vec<u32>> {
        let rows = if opts.cfg_weight > 0.0 { 2 } else { 1 };
        let watch: &[(usize, usize)] = if self.hp.is_multilingual() {
            &LLAMA_ALIGNED_HEADS
        } else {
            &[]
        };
        let decoding = self.start(prefix, text_tokens, rows, opts.max_new_tokens, watch)?;
        self.generate(decoding, WarperOrder::Chatterbox, opts, uniforms)
    }

    /// Turbo's loop (`inference_turbo`): one row, the first token sampled from the prefill with
    /// the start token as the repetition history, later steps with the generated tokens only
    /// (the sampler's Turbo order keeps that rule). Returns the speech tokens before the stop
    /// token.
    pub fn inference_turbo(
        &self,
        prefix: &ConditioningPrefix,
        text_tokens: &[u32],
        opts: &GenerateOptions,
        uniforms: &Uniforms,
    ) -> Result<Vec<u32>> {
        let decoding = self.start(prefix, text_tokens, 1, opts.max_new_tokens, &[])?;
        self.generate(decoding, WarperOrder::Turbo, opts, uniforms)
    }

    /// Samples until the stop token or `max_new_tokens`. The only device-to-host copy per step
    /// is the sampled id (plus, for the alignment guard, its attention rows, and the logits
    /// where the sampler must run on the host: [`Sampler::device_for`]).
    fn generate(
        &self,
        mut decoding: Decoding<'_>,
        order: WarperOrder,
        opts: &GenerateOptions,
        uniforms: &Uniforms,
    ) -> Result<Vec<u32>> {
        let vocab = self.hp.speech_tokens_dict_size;
        let sampling_device = Sampler::device_for(&opts.sampling, vocab, &self.device);
        let sampler = Sampler::new(opts.sampling, order, vocab, &sampling_device)?;
        let mut history = sampler.start_history(self.hp.start_speech_token)?;
        let mut guard = if decoding.watch.is_empty() {
            None
        } else {
            let edits = GuardLogits::new(vocab, self.hp.stop_speech_token, &self.device)?;
            Some((AlignmentStreamAnalyzer::new(decoding.text_len()), edits))
        };
        let mut tokens: Vec<u32> = Vec::new();
        for step in 0..opts.max_new_tokens {
            if opts.stop.requested() {
                break;
            }
            let mut logits = decoding.guided_logits(opts.cfg_weight)?;
            if let Some((analyzer, edits)) = guard.as_mut() {
                let chunk = decoding.aligned_text_attention()?;
                let last_token = tokens.last().copied().unwrap_or(self.hp.start_speech_token);
                logits = edits.apply(analyzer.step(&chunk, last_token), &logits)?;
            }
            let uniform = uniforms.at(step)?.to_device(&sampling_device)?;
            let next = sampler.sample(&logits.to_device(&sampling_device)?, &history, &uniform)?;
            let id = token_id(&next)?;
            // `no_token`: nothing could be drawn (the reference's "all logits are -inf" stop).
            if id == self.hp.stop_speech_token || id == sampler.no_token() {
                break;
            }
            tokens.push(id);
            sampler.record(&mut history, &next, step)?;
            decoding.step(&next.to_device(&self.device)?)?;
        }
        Ok(tokens)
    }

    /// The most speech tokens a generation can produce after a `prompt`-position prompt: the
    /// backbone's positions, and for the Llama variants the learned speech positions (the
    /// start token holds position 0).
    fn max_generated(&self, prompt: usize) -> usize {
        let room = self.backbone.max_positions().saturating_sub(prompt + 1);
        match &self.speech_pos_emb {
            Some(pos) => room.min(pos.positions().saturating_sub(1)),
            None => room,
        }
    }

    fn run(
        &self,
        embeds: &Tensor,
        cache: &mut KvCache,
        watch: &[(usize, usize)],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (hidden, attention) = self.backbone.forward(embeds, cache, watch)?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?.squeeze(1)?;
        // The sampler and the guard work in f32 whatever dtype the weights run in.
        let logits = self.speech_head.forward(&last)?.to_dtype(DType::F32)?;
        Ok((logits, attention))
    }

    /// A speech token's embedding at speech position `position` (positions only where the
    /// model has learned them): (1, 1, dim).
    fn embed_speech_token(&self, token: &Tensor, position: usize) -> Result<Tensor> {
        let mut emb = self.speech_emb.forward(token)?;
        if let Some(pos) = &self.speech_pos_emb {
            emb = (emb + pos.range(position, 1)?)?;
        }
        emb.unsqueeze(0)
    }

    fn ids(&self, ids: &[u32], what: &str, vocab: usize) -> Result<Tensor> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            candle_core::bail!("{what} {bad} is outside the vocabulary of {vocab}");
        }
        Tensor::new(ids, &self.device)
    }
}

/// Every position a T3 sequence can reach: conditioning, text and speech at their maxima.
fn max_positions(hp: &T3Config) -> usize {
    let cond = 2 + hp.speech_cond_prompt_len.max(
        hp.perceiver
            .as_ref()
            .map_or(0, |p| p.pre_attention_query_token),
    );
    cond + hp.max_text_tokens + 2 + hp.max_speech_tokens + 4
}

fn token_id(token: &Tensor) -> Result<u32> {
    token.flatten_all()?.get(0)?.to_scalar::<u32>()
}

/// The backbone's cache after the conditioning prefix (one row), from `prefill_conditioning`.
pub struct ConditioningPrefix {
    cache: KvCache,
    len: usize,
}

/// One generation in progress: the cache, the logits of the last position and, when asked for,
/// the attention of the watched heads.
pub struct Decoding<'a> {
    t3: &'a T3,
    cache: KvCache,
    rows: usize,
    generated: usize,
    logits: Tensor,
    attention: Vec<Tensor>,
    watch: Vec<(usize, usize)>,
    text_slice: (usize, usize),
}

impl Decoding<'_> {
    fn text_len(&self) -> usize {
        self.text_slice.1 - self.text_slice.0
    }

    /// Logits of the last position, (rows, V), f32.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// `cond + w·(cond − uncond)` with two rows, the row itself with one: (V,).
    pub fn guided_logits(&self, cfg_weight: f32) -> Result<Tensor> {
        let cond = self.logits.get(0)?;
        if self.rows == 1 {
            return Ok(cond);
        }
        let uncond = self.logits.get(1)?;
        &cond + ((&cond - uncond)? * f64::from(cfg_weight))?
    }

    /// Feeds the sampled token (u32, one element, on the model's device) for every row.
    pub fn step(&mut self, token: &Tensor) -> Result<()> {
        self.generated += 1;
        let emb = self
            .t3
            .embed_speech_token(&token.flatten_all()?, self.generated)?
            .repeat((self.rows, 1, 1))?;
        let (logits, attention) = self.t3.run(&emb, &mut self.cache, &self.watch)?;
        self.logits = logits;
        self.attention = attention;
        Ok(())
    }

    /// The mean of the watched heads' attention from the newest speech rows onto the text, on
    /// the host (rows × text length): the alignment guard's one copy per step. The prefill's
    /// rows start at the text, so its speech rows (the two start tokens) follow the text's.
    pub fn aligned_text_attention(&self) -> Result<Vec<f32>> {
        let (i, j) = self.text_slice;
        let mean = (Tensor::stack(&self.attention, 0)?.sum(0)? / self.attention.len() as f64)?;
        let rows = mean.dim(0)?;
        let first_row = if self.generated == 0 { j - i } else { 0 };
        if first_row >= rows {
            candle_core::bail!("the prefill has no speech rows after the text");
        }
        mean.narrow(0, first_row, rows - first_row)?
            .narrow(D::Minus1, i, j - i)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()
    }
}

/// The alignment guard's logit edits as device tensors, made once per generation.
struct GuardLogits {
    is_eos: Tensor,
    suppressed: Tensor,
    eos_forced: Tensor,
}

impl GuardLogits {
    fn new(vocab: usize, eos: u32, device: &Device) -> Result<Self> {
        let is_eos: Vec<u8> = (0..vocab).map(|i| u8::from(i == eos as usize)).collect();
        let is_eos = Tensor::from_vec(is_eos, vocab, device)?;
        let low = Tensor::full(-FORCED_LOGIT, vocab, device)?;
        let high = Tensor::full(FORCED_LOGIT, vocab, device)?;
        Ok(Self {
            eos_forced: is_eos.where_cond(&high, &low)?,
            suppressed: low,
            is_eos,
        })
    }

    fn apply(&self, action: LogitsAction, logits: &Tensor) -> Result<Tensor> {
        match action {
            LogitsAction::Keep => Ok(logits.clone()),
            LogitsAction::SuppressEos => self.is_eos.where_cond(&self.suppressed, logits),
            LogitsAction::ForceEos => Ok(self.eos_forced.clone()),
        }
    }
}
