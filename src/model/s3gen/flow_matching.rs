//! Port of chatterbox/models/s3gen/flow_matching.py: `CausalConditionalCFM.forward` at
//! inference, i.e. the Euler solvers that turn noise into a mel with the estimator
//! (decoder.rs): `solve_euler` with classifier-free guidance for the original and multilingual
//! models, `basic_euler` for Turbo's meanflow model. The training loss is not ported.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::decoder::{ConditionalDecoder, ConditionalDecoderConfig};
use super::estimator_ops::Kernels;

/// `CFM_PARAMS["inference_cfg_rate"]`: v = (1 + rate)·v_cond − rate·v_uncond.
const INFERENCE_CFG_RATE: f64 = 0.7;

pub struct CausalConditionalCFM {
    estimator: ConditionalDecoder,
}

impl CausalConditionalCFM {
    /// `vb` at the flow's decoder (`flow.decoder` in s3gen.safetensors); the estimator's keys
    /// are `estimator.*` below it.
    pub fn load(vb: VarBuilder, config: &ConditionalDecoderConfig) -> Result<Self> {
        Ok(Self {
            estimator: ConditionalDecoder::load(vb.pp("estimator"), config)?,
        })
    }

    /// [`Self::load`] with the estimator on the given kernels.
    pub fn load_with_kernels(
        vb: VarBuilder,
        config: &ConditionalDecoderConfig,
        kernels: Kernels,
    ) -> Result<Self> {
        Ok(Self {
            estimator: ConditionalDecoder::load_with_kernels(vb.pp("estimator"), config, kernels)?,
        })
    }

    pub fn estimator(&self) -> &ConditionalDecoder {
        &self.estimator
    }

    /// Integrates the flow from `noise` at t = 0 to the mel at t = 1 in `n_timesteps` Euler
    /// steps (the reference uses 10 for the original model, 2 for meanflow). The solver follows
    /// the estimator: without meanflow, a cosine t schedule and classifier-free guidance (the
    /// estimator runs on the batch [conditioned; unconditioned with mu = spks = cond = 0]); with
    /// meanflow, a linear schedule, no guidance, and the estimator given both ends (t, r) of
    /// each step.
    ///
    /// - `mu` (B, 80, T): the encoder's output, prompt frames first;
    /// - `spks` (B, 80): the projected speaker embedding;
    /// - `cond` (B, 80, T): the prompt's mel in its first frames, zeros after;
    /// - `noise` (B, 80, T): the initial state, i.i.d. N(0, 1). The reference draws it inside
    ///   (`z = randn_like(mu)`), and for meanflow then overwrites the frames after the prompt
    ///   with `noised_mels`, a second N(0, 1) draw made by s3gen.py: pass that final z.
    ///
    /// Every row is taken as unpadded (the reference's masks all ones). Returns the mel
    /// (B, 80, T), prompt frames included.
    pub fn forward(
        &self,
        mu: &Tensor,
        spks: &Tensor,
        cond: &Tensor,
        noise: &Tensor,
        n_timesteps: usize,
    ) -> Result<Tensor> {
        let dims = mu.dims();
        if cond.dims() != dims || noise.dims() != dims || spks.dims() != &dims[..2] {
            candle_core::bail!(
                "CausalConditionalCFM: mu {dims:?}, cond {:?} and noise {:?} must be equal and \
                 spks {:?} their first two",
                cond.dims(),
                noise.dims(),
                spks.dims()
            );
        }
        let dtype = self.estimator.dtype();
        let (mu, spks, cond) = (
            mu.to_dtype(dtype)?,
            spks.to_dtype(dtype)?,
            cond.to_dtype(dtype)?,
        );
        let noise = noise.to_dtype(dtype)?;
        if self.estimator.config().meanflow {
            self.basic_euler(&mu, &spks, &cond, noise, n_timesteps)
        } else {
            self.solve_euler(&mu, &spks, &cond, noise, n_timesteps)
        }
    }

    fn solve_euler(
        &self,
        mu: &Tensor,
        spks: &Tensor,
        cond: &Tensor,
        mut x: Tensor,
        n_timesteps: usize,
    ) -> Result<Tensor> {
        let t_span = t_span(n_timesteps, true)?;
        let unconditioned = |c: &Tensor| Tensor::cat(&[c, &c.zeros_like()?], 0);
        let conditioning = ConditionalDecoder::conditioning(
            &unconditioned(mu)?,
            &unconditioned(spks)?,
            &unconditioned(cond)?,
        )?;
        let times = self
            .estimator
            .time_embeddings(&t_span[..n_timesteps], None, x.device())?;
        let rows = x.dim(0)?;
        for (k, ends) in t_span.windows(2).enumerate() {
            let dxdt = self.estimator.forward(
                &Tensor::cat(&[&x, &x], 0)?,
                &conditioning,
                &times.narrow(0, k, 1)?,
            )?;
            let guided = ((dxdt.narrow(0, 0, rows)? * (1.0 + INFERENCE_CFG_RATE))?
                - (dxdt.narrow(0, rows, rows)? * INFERENCE_CFG_RATE)?)?;
            x = (x + (guided * f64::from(ends[1] - ends[0]))?)?;
        }
        Ok(x)
    }

    fn basic_euler(
        &self,
        mu: &Tensor,
        spks: &Tensor,
        cond: &Tensor,
        mut x: Tensor,
        n_timesteps: usize,
    ) -> Result<Tensor> {
        let t_span = t_span(n_timesteps, false)?;
        let conditioning = ConditionalDecoder::conditioning(mu, spks, cond)?;
        let times = self.estimator.time_embeddings(
            &t_span[..n_timesteps],
            Some(&t_span[1..]),
            x.device(),
        )?;
        for (k, ends) in t_span.windows(2).enumerate() {
            let dxdt = self
                .estimator
                .forward(&x, &conditioning, &times.narrow(0, k, 1)?)?;
            x = (x + (dxdt * f64::from(ends[1] - ends[0]))?)?;
        }
        Ok(x)
    }
}

/// The solver's n + 1 times in f32, as the reference computes them: `torch.linspace(0, 1,
/// n + 1)` (whose kernel fills the first half upwards from 0 and the rest downwards from 1),
/// then for the cosine schedule 1 − cos(t·0.5·π).
pub fn t_span(n_timesteps: usize, cosine: bool) -> Result<Vec<f32>> {
    if n_timesteps == 0 {
        candle_core::bail!("the flow needs at least one step");
    }
    let steps = n_timesteps + 1;
    let step = 1.0f32 / n_timesteps as f32;
    Ok((0..steps)
        .map(|i| {
            let t = if i < steps / 2 {
                step * i as f32
            } else {
                1.0 - step * (steps - 1 - i) as f32
            };
            if cosine {
                1.0 - f64::from(t * 0.5 * std::f32::consts::PI).cos() as f32
            } else {
                t
            }
        })
        .collect())
}
