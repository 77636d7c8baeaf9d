//! The T3 speech-token sampler: a port of the Hugging Face logits processors
//! (transformers 5.2.0 `RepetitionPenaltyLogitsProcessor`, `TemperatureLogitsWarper`,
//! `TopKLogitsWarper`, `TopPLogitsWarper`, `MinPLogitsWarper`) in the two orders
//! chatterbox-tts 0.1.7 uses them in models/t3/t3.py: `T3.inference` (English and
//! multilingual) and `T3.inference_turbo`.
//!
//! Every step runs as Candle ops on the logits' device, so the token loop copies nothing between
//! host and device except the sampled id, which the caller reads (on CUDA, a vocabulary too wide
//! for candle's sort is sampled on the host instead: [`Sampler::device_for`]). `torch.multinomial` is replaced
//! by an inverse CDF on injected uniforms (see [`Sampler::sample`]), which the parity harness
//! (tools/parity/cases/t3_sampler.py) reproduces exactly.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::ops::softmax_last_dim;

use crate::model::random_weights::uniform;

/// Below this temperature the sampler is greedy: the reference would divide by zero.
pub const GREEDY_TEMPERATURE: f32 = 1e-5;

/// candle 0.11.1's CUDA `arg_sort_last_dim` pads a row to the next power of two and keeps it in
/// shared memory; above CUDA's default 48 KiB per block the kernel cannot launch.
const CUDA_SORT_MAX_COLUMNS: usize = 48 * 1024 / 4;

/// Whether top-k or top-p make the warp sort the logits.
fn needs_sort(params: &SamplingParams, vocab: usize) -> bool {
    (params.top_k > 1 && params.top_k < vocab) || params.top_p < 1.0
}

/// Whether candle's CUDA kernels can run the warp for `vocab` ids.
fn cuda_can_sort(params: &SamplingParams, vocab: usize) -> bool {
    !needs_sort(params, vocab) || vocab.next_power_of_two() <= CUDA_SORT_MAX_COLUMNS
}

/// Whether `device` can run the warp's sort for `vocab` ids (any width on the CPU).
fn sorts_on(device: &Device, params: &SamplingParams, vocab: usize) -> bool {
    !device.is_cuda() || cuda_can_sort(params, vocab)
}

/// The name under which [`Uniforms::from_seed`] draws from `random_weights::uniform`.
const UNIFORM_STREAM: &str = "t3.sampler";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// ≤ [`GREEDY_TEMPERATURE`] means greedy argmax (an extension).
    pub temperature: f32,
    /// 0 = off. In the Chatterbox order top-k is an extension the reference lacks.
    pub top_k: usize,
    pub top_p: f32,
    /// Part of the Chatterbox order only; `inference_turbo` ignores it, and so does Turbo here.
    pub min_p: f32,
    pub repetition_penalty: f32,
}

impl SamplingParams {
    /// tts.py's `generate` defaults.
    pub fn english() -> Self {
        Self {
            temperature: 0.8,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.05,
            repetition_penalty: 1.2,
        }
    }

    /// mtl_tts.py's `generate` defaults.
    pub fn multilingual() -> Self {
        Self {
            repetition_penalty: 2.0,
            ..Self::english()
        }
    }

    /// tts_turbo.py's `generate` defaults.
    pub fn turbo() -> Self {
        Self {
            temperature: 0.8,
            top_k: 1000,
            top_p: 0.95,
            min_p: 0.0,
            repetition_penalty: 1.2,
        }
    }

    /// Greedy decoding: temperature at or below [`GREEDY_TEMPERATURE`], or top-k 1, which would
    /// otherwise still draw among exact ties of the maximum.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= GREEDY_TEMPERATURE || self.top_k == 1
    }

    /// The ranges the HF constructors accept, plus finiteness: this module must be safe even
    /// when request validation elsewhere is bypassed.
    fn validate(&self) -> Result<()> {
        check(
            "temperature",
            self.temperature,
            f32::is_finite,
            "must be finite",
        )?;
        check(
            "top_p",
            self.top_p,
            |v| (0.0..=1.0).contains(&v),
            "must lie in [0, 1]",
        )?;
        check(
            "min_p",
            self.min_p,
            |v| (0.0..=1.0).contains(&v),
            "must lie in [0, 1]",
        )?;
        check(
            "repetition_penalty",
            self.repetition_penalty,
            |v| v.is_finite() && v > 0.0,
            "must be finite and > 0",
        )
    }
}

fn check(name: &str, value: f32, ok: impl Fn(f32) -> bool, rule: &str) -> Result<()> {
    if !ok(value) {
        candle_core::bail!("sampling parameter {name} = {value} {rule}");
    }
    Ok(())
}

/// Which of the reference's two processor orders to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarperOrder {
    /// `T3.inference`: repetition penalty → temperature → min-p → [top-k] → top-p.
    Chatterbox,
    /// `T3.inference_turbo`: temperature → top-k → top-p → repetition penalty.
    Turbo,
}

/// The ids the repetition penalty applies to, as a (V,) u8 mask on the logits' device so that
/// recording a sampled token never leaves the device.
#[derive(Debug, Clone)]
pub struct TokenHistory {
    mask: Tensor,
    ids: Tensor,
}

impl TokenHistory {
    pub fn new(vocab: usize, ids: &[u32], device: &Device) -> Result<Self> {
        let mut mask = vec![0u8; vocab];
        for &id in ids {
            let slot = mask.get_mut(id as usize).ok_or_else(|| {
                candle_core::Error::Msg(format!("history id {id} is outside the {vocab} ids"))
            })?;
            *slot = 1;
        }
        Ok(Self {
            mask: Tensor::from_vec(mask, vocab, device)?,
            ids: Tensor::arange(0u32, vocab as u32, device)?,
        })
    }

    /// Adds a sampled token, a u32 (1,) tensor on the device. The "no token" id (= V) matches
    /// nothing, so it is harmless.
    pub fn push(&mut self, token: &Tensor) -> Result<()> {
        let token = token.reshape(1)?.broadcast_as(self.ids.shape())?;
        self.mask = self.mask.maximum(&self.ids.eq(&token)?)?;
        Ok(())
    }

    pub fn clear(&mut self) -> Result<()> {
        self.mask = self.mask.zeros_like()?;
        Ok(())
    }
}

/// The injectable randomness: one uniform in [0, 1) per step, moved to the device once per
/// generation so the loop only narrows into it.
#[derive(Debug, Clone)]
pub struct Uniforms {
    values: Tensor,
}

impl Uniforms {
    /// `random_weights::uniform(seed, "t3.sampler", steps, 0, 1)`: 24-bit values, so they are
    /// exact in f32 and strictly below 1. tools/parity/common.py derives the same stream.
    pub fn from_seed(seed: u64, steps: usize, device: &Device) -> Result<Self> {
        Self::from_values(&uniform(seed, UNIFORM_STREAM, steps, 0.0, 1.0), device)
    }

    pub fn from_values(values: &[f32], device: &Device) -> Result<Self> {
        if let Some(bad) = values.iter().find(|u| !(0.0..1.0).contains(*u)) {
            candle_core::bail!("uniform {bad} is outside [0, 1)");
        }
        Ok(Self {
            values: Tensor::from_slice(values, values.len(), device)?,
        })
    }

    pub fn len(&self) -> usize {
        self.values.elem_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (1,) uniform of `step`.
    pub fn at(&self, step: usize) -> Result<Tensor> {
        if step >= self.len() {
            candle_core::bail!("step {step} is beyond the {} uniforms drawn", self.len());
        }
        self.values.narrow(0, step, 1)
    }
}

/// Inclusive prefix sums over a (V,) vector in two small matmuls. candle's `cumsum` multiplies by
/// a V×V triangle (268 MB for V = 8194), so the vector is folded into ≈√V × √V blocks: a C×C
/// triangle gives the sums within each row, an R×R one the offsets of the rows. On CUDA this needs
/// full-precision f32 GEMM: TF32 (`set_gemm_reduced_precision_f32`) would move the CDF by ~1e-3.
#[derive(Debug, Clone)]
struct PrefixSum {
    len: usize,
    rows: usize,
    cols: usize,
    within_rows: Tensor,
    row_offsets: Tensor,
}

impl PrefixSum {
    fn new(len: usize, device: &Device) -> Result<Self> {
        let cols = len.isqrt().max(1) + usize::from(len.isqrt().pow(2) < len);
        let rows = len.div_ceil(cols);
        Ok(Self {
            len,
            rows,
            cols,
            within_rows: triangle(cols, |i, j| i <= j, device)?,
            row_offsets: triangle(rows, |i, j| j < i, device)?,
        })
    }

    fn apply(&self, values: &Tensor) -> Result<Tensor> {
        let blocks = values
            .pad_with_zeros(0, 0, self.rows * self.cols - self.len)?
            .reshape((self.rows, self.cols))?;
        let within = blocks.matmul(&self.within_rows)?;
        let totals = within.narrow(1, self.cols - 1, 1)?.contiguous()?;
        let offsets = self.row_offsets.matmul(&totals)?;
        within
            .broadcast_add(&offsets)?
            .flatten_all()?
            .narrow(0, 0, self.len)
    }
}

fn triangle(n: usize, keep: impl Fn(usize, usize) -> bool, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..n * n)
        .map(|k| f32::from(u8::from(keep(k / n, k % n))))
        .collect();
    Tensor::from_vec(values, (n, n), device)
}

/// Constants the warpers combine with, made on the device once per sampler: scalars as (1,)
/// tensors, because candle turns a plain scalar operand into a fresh host-to-device copy.
#[derive(Debug, Clone)]
struct Constants {
    zero: Tensor,
    neg_inf: Tensor,
    vocab: Tensor,
    temperature: Tensor,
    penalty: Tensor,
    min_p: Tensor,
    /// `1 - top_p`, what TopP compares cumulative probabilities with.
    top_p_cut: Tensor,
    /// 1 except at the last position: TopP always keeps the largest token.
    all_but_last: Tensor,
    /// Index + 1 as f32, exact for any vocabulary below 2^24.
    positions: Tensor,
    neg_inf_row: Tensor,
    inf_row: Tensor,
}

impl Constants {
    fn new(params: &SamplingParams, vocab: usize, device: &Device) -> Result<Self> {
        let scalar = |v: f32| Tensor::from_slice(&[v], 1, device);
        let mut all_but_last = vec![1u8; vocab];
        all_but_last[vocab - 1] = 0;
        Ok(Self {
            zero: scalar(0.0)?,
            neg_inf: scalar(f32::NEG_INFINITY)?,
            vocab: scalar(vocab as f32)?,
            temperature: scalar(params.temperature)?,
            penalty: scalar(params.repetition_penalty)?,
            min_p: scalar(params.min_p)?,
            top_p_cut: scalar((1.0 - f64::from(params.top_p)) as f32)?,
            all_but_last: Tensor::from_vec(all_but_last, vocab, device)?,
            positions: Tensor::arange(1u32, vocab as u32 + 1, device)?.to_dtype(DType::F32)?,
            neg_inf_row: Tensor::full(f32::NEG_INFINITY, vocab, device)?,
            inf_row: Tensor::full(f32::INFINITY, vocab, device)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    order: WarperOrder,
    vocab: usize,
    constants: Constants,
    prefix: PrefixSum,
}

impl Sampler {
    /// Refuses parameters outside the HF constructors' ranges (naming the parameter) and, on
    /// CUDA, vocabularies too wide for candle's sort when top-k or top-p < 1 needs one.
    pub fn new(
        params: SamplingParams,
        order: WarperOrder,
        vocab: usize,
        device: &Device,
    ) -> Result<Self> {
        params.validate()?;
        if vocab == 0 || vocab >= 1 << 24 {
            candle_core::bail!("sampler vocabulary of {vocab} ids is outside 1..2^24");
        }
        let sampler = Self {
            params,
            order,
            vocab,
            constants: Constants::new(&params, vocab, device)?,
            prefix: PrefixSum::new(vocab, device)?,
        };
        if !sorts_on(device, &params, vocab) {
            candle_core::bail!(
                "top_k {} / top_p {} over {vocab} ids needs a sort that candle's CUDA arg_sort \
                 cannot launch above {CUDA_SORT_MAX_COLUMNS} columns",
                params.top_k,
                params.top_p
            );
        }
        Ok(sampler)
    }

    /// Where a sampler for a model on `model_device` runs: there, unless its warp needs a sort
    /// wider than candle's CUDA `arg_sort` launches (English and multilingual's 8194 ids with
    /// top-p < 1); then on the host, which costs one copy of the V logits per token.
    pub fn device_for(params: &SamplingParams, vocab: usize, model_device: &Device) -> Device {
        if sorts_on(model_device, params, vocab) {
            model_device.clone()
        } else {
            Device::Cpu
        }
    }

    /// The id [`Sampler::sample`] returns when no token is possible (every processed logit is
    /// −inf, as after NaN logits); `inference_turbo` stops generating then.
    pub fn no_token(&self) -> u32 {
        self.vocab as u32
    }

    /// A history holding only the start-of-speech token, as both orders begin.
    pub fn start_history(&self, start_token: u32) -> Result<TokenHistory> {
        TokenHistory::new(self.vocab, &[start_token], self.constants.zero.device())
    }

    /// Records the token sampled at `step` (0 = the first generated token). The Turbo loop
    /// penalises `[start]` at step 0 and only generated tokens afterwards, so its first record
    /// drops the start token; `T3.inference` keeps it for the whole generation.
    pub fn record(&self, history: &mut TokenHistory, token: &Tensor, step: usize) -> Result<()> {
        if self.order == WarperOrder::Turbo && step == 0 {
            history.clear()?;
        }
        history.push(token)
    }

    /// The processed logits (filtered entries −inf), in the order's sequence. Greedy skips the
    /// temperature, which cannot change the argmax. NaN logits count as filtered.
    pub fn warp(&self, logits: &Tensor, history: &TokenHistory) -> Result<Tensor> {
        if logits.dims() != [self.vocab] || logits.dtype() != DType::F32 {
            candle_core::bail!(
                "sampler expects ({},) f32 logits, got {:?} {:?}",
                self.vocab,
                logits.dims(),
                logits.dtype()
            );
        }
        let scores = logits
            .eq(logits)?
            .where_cond(logits, &self.constants.neg_inf_row)?;
        match self.order {
            WarperOrder::Chatterbox => self.warp_chatterbox(scores, history),
            WarperOrder::Turbo => self.warp_turbo(scores, history),
        }
    }

    fn warp_chatterbox(&self, mut scores: Tensor, history: &TokenHistory) -> Result<Tensor> {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            scores = self.repetition_penalty(&scores, history)?;
        }
        if p.temperature != 1.0 && !p.is_greedy() {
            scores = scores.broadcast_div(&self.constants.temperature)?;
        }
        if p.min_p > 0.0 {
            scores = self.min_p(&scores)?;
        }
        if p.top_k > 0 {
            scores = self.top_k(&scores)?;
        }
        if p.top_p < 1.0 {
            self.top_p(&scores)
        } else if p.min_p >= f32::EPSILON {
            // TopP(1.0) removes exactly the zero-probability tokens, and a min-p of at least
            // EPSILON has already removed those (its cut, min_p·max(p) ≥ EPSILON/V, is far above
            // f32's underflow), so the sort is skipped then.
            Ok(scores)
        } else {
            self.zero_probability(&scores)
        }
    }

    fn warp_turbo(&self, mut scores: Tensor, history: &TokenHistory) -> Result<Tensor> {
        let p = &self.params;
        if p.temperature > 0.0 && p.temperature != 1.0 && !p.is_greedy() {
            scores = scores.broadcast_div(&self.constants.temperature)?;
        }
        if p.top_k > 0 {
            scores = self.top_k(&scores)?;
        }
        if p.top_p < 1.0 {
            scores = self.top_p(&scores)?;
        }
        if p.repetition_penalty != 1.0 {
            scores = self.repetition_penalty(&scores, history)?;
        }
        Ok(scores)
    }

    /// HF gathers the history's scores and scatters them back penalised, so an id repeated in
    /// the history is penalised once: a mask does the same.
    fn repetition_penalty(&self, scores: &Tensor, history: &TokenHistory) -> Result<Tensor> {
        let c = &self.constants;
        let penalised = scores.broadcast_lt(&c.zero)?.where_cond(
            &scores.broadcast_mul(&c.penalty)?,
            &scores.broadcast_div(&c.penalty)?,
        )?;
        history.mask.where_cond(&penalised, scores)
    }

    /// HF keeps at least one token by re-admitting the most probable; with min_p ≤ 1 that token
    /// never falls below min_p·max(p), so no extra step is needed.
    fn min_p(&self, scores: &Tensor) -> Result<Tensor> {
        let probs = softmax_last_dim(scores)?;
        let cut = probs.max_keepdim(0)?.mul(&self.constants.min_p)?;
        self.remove(scores, &probs.broadcast_lt(&cut)?)
    }

    /// TopKLogitsWarper: removes `scores < kth largest`, so ties of the k-th value stay.
    fn top_k(&self, scores: &Tensor) -> Result<Tensor> {
        let k = self.params.top_k.min(self.vocab);
        if k == self.vocab {
            return Ok(scores.clone());
        }
        let kth = if k == 1 {
            scores.max_keepdim(0)?
        } else {
            let (sorted, _) = scores.contiguous()?.sort_last_dim(false)?;
            sorted.narrow(0, k - 1, 1)?
        };
        self.remove(scores, &scores.broadcast_lt(&kth)?)
    }

    /// TopPLogitsWarper: ascending sort, cumulative softmax, remove `cum ≤ 1 − top_p`, keep the
    /// largest, scatter the decision back to vocabulary order.
    fn top_p(&self, scores: &Tensor) -> Result<Tensor> {
        let c = &self.constants;
        let (sorted, order) = scores.contiguous()?.sort_last_dim(true)?;
        let cumulative = self.prefix.apply(&softmax_last_dim(&sorted)?)?;
        let sorted_remove = cumulative
            .broadcast_le(&c.top_p_cut)?
            .mul(&c.all_but_last)?;
        let remove = sorted_remove.scatter(&order, &sorted_remove, 0)?;
        self.remove(scores, &remove)
    }

    fn zero_probability(&self, scores: &Tensor) -> Result<Tensor> {
        let probs = softmax_last_dim(scores)?;
        self.remove(scores, &probs.broadcast_le(&self.constants.zero)?)
    }

    fn remove(&self, scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
        mask.where_cond(&self.constants.neg_inf_row, scores)
    }

    /// Warps `logits` (V,) f32 and picks a token: a u32 (1,) tensor on the device, or
    /// [`Sampler::no_token`] when every processed logit is −inf.
    ///
    /// Sampling replaces `torch.multinomial` by an inverse CDF on `uniform` (a (1,) f32 in
    /// [0, 1)): with p = softmax(processed) and c its inclusive cumulative sum, the token is the
    /// first index with p > 0 and c ≥ u·c[V−1]; if rounding leaves none, the last index with
    /// p > 0. Greedy parameters take the first argmax instead and ignore `uniform`.
    pub fn sample(
        &self,
        logits: &Tensor,
        history: &TokenHistory,
        uniform: &Tensor,
    ) -> Result<Tensor> {
        let processed = self.warp(logits, history)?;
        if self.params.is_greedy() {
            self.argmax(&processed)
        } else {
            self.inverse_cdf(&processed, &uniform.reshape(1)?)
        }
    }

    fn argmax(&self, processed: &Tensor) -> Result<Tensor> {
        let c = &self.constants;
        let best = processed.argmax_keepdim(0)?.to_dtype(DType::F32)?;
        let possible = processed.max_keepdim(0)?.broadcast_gt(&c.neg_inf)?;
        possible.where_cond(&best, &c.vocab)?.to_dtype(DType::U32)
    }

    fn inverse_cdf(&self, processed: &Tensor, uniform: &Tensor) -> Result<Tensor> {
        let c = &self.constants;
        let probs = softmax_last_dim(processed)?;
        let cumulative = self.prefix.apply(&probs)?;
        let target = cumulative.narrow(0, self.vocab - 1, 1)?.mul(uniform)?;
        let positive = probs.broadcast_gt(&c.zero)?;
        let reached = positive.mul(&cumulative.broadcast_ge(&target)?)?;
        // Positions are index + 1, so a reduction over no index (±inf) never passes for one.
        let last = positive
            .where_cond(&c.positions, &c.neg_inf_row)?
            .max_keepdim(0)?;
        let first = reached
            .where_cond(&c.positions, &c.inf_row)?
            .min_keepdim(0)?
            .minimum(&last)?;
        last.broadcast_gt(&c.zero)?
            .where_cond(&first.affine(1.0, -1.0)?, &c.vocab)?
            .to_dtype(DType::U32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: Device = Device::Cpu;

    fn params(
        temperature: f32,
        top_k: usize,
        top_p: f32,
        min_p: f32,
        penalty: f32,
    ) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p,
            repetition_penalty: penalty,
        }
    }

    fn sampler(p: SamplingParams, order: WarperOrder, vocab: usize) -> Sampler {
        Sampler::new(p, order, vocab, &CPU).unwrap()
    }

    fn row(values: &[f32]) -> Tensor {
        Tensor::new(values, &CPU).unwrap()
    }

    fn pick(s: &Sampler, logits: &[f32], history: &[u32], u: f32) -> u32 {
        let history = TokenHistory::new(logits.len(), history, &CPU).unwrap();
        let u = Uniforms::from_values(&[u], &CPU).unwrap().at(0).unwrap();
        let token = s.sample(&row(logits), &history, &u).unwrap();
        token.to_vec1::<u32>().unwrap()[0]
    }

    fn warped(s: &Sampler, logits: &[f32], history: &[u32]) -> Vec<f32> {
        let history = TokenHistory::new(logits.len(), history, &CPU).unwrap();
        s.warp(&row(logits), &history).unwrap().to_vec1().unwrap()
    }

    const ORDERS: [WarperOrder; 2] = [WarperOrder::Chatterbox, WarperOrder::Turbo];

    #[test]
    fn blocked_prefix_sum_matches_a_running_sum() {
        for len in [1, 2, 3, 7, 16, 17, 6563, 8194] {
            let values: Vec<f32> = uniform(3, "prefix", len, 0.0, 1.0);
            let prefix = PrefixSum::new(len, &CPU).unwrap();
            let ours: Vec<f32> = prefix.apply(&row(&values)).unwrap().to_vec1().unwrap();
            let mut running = 0.0f64;
            for (i, (v, o)) in values.iter().zip(&ours).enumerate() {
                running += f64::from(*v);
                assert!(
                    (f64::from(*o) - running).abs() <= 1e-6 * running,
                    "len {len} at {i}"
                );
            }
        }
    }

    #[test]
    fn zero_temperature_and_top_k_one_take_the_first_argmax() {
        let logits = [0.5, 3.0, -1.0, 3.0, 2.9];
        for order in ORDERS {
            for p in [
                params(0.0, 0, 1.0, 0.0, 1.0),
                params(-1.0, 0, 1.0, 0.05, 1.0),
            ] {
                assert_eq!(pick(&sampler(p, order, 5), &logits, &[], 0.99), 1);
            }
            let top_k_one = sampler(params(0.8, 1, 0.9, 0.0, 1.0), order, 5);
            for u in [0.0, 0.5, 0.999] {
                assert_eq!(pick(&top_k_one, &logits, &[], u), 1);
            }
            // The penalty still applies before the argmax: 3.0 / 2 loses to 2.9.
            let penalised = sampler(params(0.0, 0, 1.0, 0.0, 2.0), order, 5);
            assert_eq!(pick(&penalised, &logits, &[1, 3], 0.5), 4);
        }
    }

    #[test]
    fn inverse_cdf_covers_the_interval_in_index_order() {
        // Probabilities 0.25 / 0 / 0.5 / 0.25 (a zero is never picked, not even at its edge).
        let logits = [0.0, f32::NEG_INFINITY, 2f32.ln(), 0.0];
        let s = sampler(params(1.0, 0, 1.0, 0.0, 1.0), WarperOrder::Turbo, 4);
        let picks: Vec<u32> = [0.0, 0.2, 0.25, 0.3, 0.74, 0.76, 0.999_999_9]
            .iter()
            .map(|&u| pick(&s, &logits, &[], u))
            .collect();
        assert_eq!(picks, [0, 0, 0, 2, 2, 3, 3]);
    }

    #[test]
    fn nan_and_all_filtered_logits_give_no_token() {
        let nan = [f32::NAN; 6];
        let inf = [f32::NEG_INFINITY; 6];
        for order in ORDERS {
            for p in [
                SamplingParams::english(),
                SamplingParams::turbo(),
                params(0.0, 2, 0.5, 0.1, 1.3),
            ] {
                let s = sampler(p, order, 6);
                for logits in [nan, inf] {
                    assert_eq!(pick(&s, &logits, &[1], 0.3), s.no_token());
                }
                // A single NaN is filtered; the rest still sample.
                let some = [1.0, f32::NAN, 0.5, 4.0, f32::NAN, 0.0];
                assert!(warped(&s, &some, &[])[1] == f32::NEG_INFINITY);
                assert_eq!(pick(&s, &some, &[], 0.99), 3);
            }
        }
    }

    #[test]
    fn extreme_filters_keep_at_least_the_best_token() {
        let logits = [1.0, 5.0, 2.0, 5.0, -3.0];
        for order in ORDERS {
            let huge_k = sampler(params(1.0, 1000, 1.0, 0.0, 1.0), order, 5);
            assert_eq!(warped(&huge_k, &logits, &[]), logits);
            let top_p_zero = sampler(params(1.0, 0, 0.0, 0.0, 1.0), order, 5);
            let kept = warped(&top_p_zero, &logits, &[]);
            assert_eq!(kept.iter().filter(|v| v.is_finite()).count(), 1);
            assert!(kept[1] == 5.0 || kept[3] == 5.0);
        }
        // min_p 1 keeps exactly the ties of the maximum.
        let min_p_one = sampler(params(1.0, 0, 1.0, 1.0, 1.0), WarperOrder::Chatterbox, 5);
        let ninf = f32::NEG_INFINITY;
        assert_eq!(
            warped(&min_p_one, &logits, &[]),
            [ninf, 5.0, ninf, 5.0, ninf]
        );
    }

    #[test]
    fn a_penalty_below_one_boosts_the_history() {
        let s = sampler(params(1.0, 0, 1.0, 0.0, 0.5), WarperOrder::Chatterbox, 4);
        assert_eq!(
            warped(&s, &[2.0, -2.0, 2.0, -2.0], &[0, 1, 1]),
            [4.0, -1.0, 2.0, -2.0]
        );
    }

    #[test]
    fn turbo_forgets_the_start_token_after_its_first_step() {
        let logits = [2.0, 2.0, 2.0];
        for (order, expected) in [(WarperOrder::Chatterbox, 1.0), (WarperOrder::Turbo, 2.0)] {
            let s = sampler(params(1.0, 0, 1.0, 0.0, 2.0), order, 3);
            let mut history = s.start_history(2).unwrap();
            let token = Tensor::new(&[0u32], &CPU).unwrap();
            s.record(&mut history, &token, 0).unwrap();
            let out: Vec<f32> = s.warp(&row(&logits), &history).unwrap().to_vec1().unwrap();
            assert_eq!(out, [1.0, 2.0, expected], "{order:?}");
            // The no-token id marks nothing.
            let none = Tensor::new(&[s.no_token()], &CPU).unwrap();
            s.record(&mut history, &none, 1).unwrap();
            let again: Vec<f32> = s.warp(&row(&logits), &history).unwrap().to_vec1().unwrap();
            assert_eq!(again, out);
        }
    }

    #[test]
    fn invalid_parameters_are_refused_by_name() {
        let base = SamplingParams::english();
        let cases = [
            (
                "temperature",
                SamplingParams {
                    temperature: f32::NAN,
                    ..base
                },
            ),
            (
                "temperature",
                SamplingParams {
                    temperature: f32::INFINITY,
                    ..base
                },
            ),
            (
                "top_p",
                SamplingParams {
                    top_p: -0.1,
                    ..base
                },
            ),
            ("top_p", SamplingParams { top_p: 1.5, ..base }),
            (
                "top_p",
                SamplingParams {
                    top_p: f32::NAN,
                    ..base
                },
            ),
            (
                "min_p",
                SamplingParams {
                    min_p: f32::NAN,
                    ..base
                },
            ),
            (
                "min_p",
                SamplingParams {
                    min_p: -1.0,
                    ..base
                },
            ),
            (
                "repetition_penalty",
                SamplingParams {
                    repetition_penalty: 0.0,
                    ..base
                },
            ),
            (
                "repetition_penalty",
                SamplingParams {
                    repetition_penalty: f32::INFINITY,
                    ..base
                },
            ),
        ];
        for (name, p) in cases {
            let err = Sampler::new(p, WarperOrder::Chatterbox, 8, &CPU).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
        assert!(Sampler::new(base, WarperOrder::Turbo, 0, &CPU).is_err());
    }

    #[test]
    fn only_sorts_wider_than_cudas_leave_the_device() {
        let english = SamplingParams::english();
        let nucleus = SamplingParams {
            top_p: 0.9,
            ..english
        };
        let top_k = SamplingParams {
            top_k: 50,
            ..english
        };
        // English and multilingual's 8194 ids pad to 16384 columns, Turbo's 6563 to 8192.
        for p in [nucleus, top_k, SamplingParams::turbo()] {
            assert!(!cuda_can_sort(&p, 8194));
            assert!(cuda_can_sort(&p, 6563));
            assert!(cuda_can_sort(&p, 8192));
        }
        // Their defaults (min-p) and greedy decoding sort nothing.
        assert!(cuda_can_sort(&english, 8194));
        assert!(cuda_can_sort(&SamplingParams { top_k: 1, ..top_k }, 8194));
        assert!(Sampler::device_for(&nucleus, 8194, &CPU).is_cpu());
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let s = sampler(SamplingParams::english(), WarperOrder::Chatterbox, 4);
        let history = TokenHistory::new(4, &[], &CPU).unwrap();
        assert!(s.warp(&row(&[1.0, 2.0, 3.0]), &history).is_err());
        assert!(TokenHistory::new(4, &[4], &CPU).is_err());
        assert!(Uniforms::from_values(&[1.0], &CPU).is_err());
        assert!(Uniforms::from_values(&[f32::NAN], &CPU).is_err());
        let uniforms = Uniforms::from_seed(9, 3, &CPU).unwrap();
        assert!(uniforms.at(3).is_err());
        let drawn: Vec<f32> = (0..3)
            .map(|i| uniforms.at(i).unwrap().to_vec1::<f32>().unwrap()[0])
            .collect();
        assert_eq!(drawn, uniform(9, UNIFORM_STREAM, 3, 0.0, 1.0));
    }
}
