//! Port of chatterbox/models/s3gen/hifigan.py: the HiFT vocoder (neural source filter +
//! iSTFTNet) that turns S3Gen's 80-bin mel (50 Hz) into a 24 kHz waveform. An f0 predictor
//! (f0_predictor.py) drives SineGen's harmonic source, whose STFT is fused into the upsampling
//! stack; the stack's last conv gives an STFT magnitude and phase, inverted with `torch.istft`.
//!
//! SineGen's randomness enters as [`SourceExcitation`]. The source, its STFT and the inverse
//! STFT run on the host in f32 (f64 sums), as the reference computes them on the CPU; the
//! convolutions run on the model's device.

mod conv;
mod cpu_conv;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub(super) use self::conv::{Activation, WeightNormConv1d};
use self::conv::{Snake, StridedConv1d, WeightNormConvTranspose1d};
use super::f0_predictor::ConvRNNF0Predictor;
use realfft::num_complex::Complex;

use crate::model::dsp::istft::Istft;
use crate::model::dsp::stft::{Stft, hann_periodic};

/// `HiFTGenerator.__init__`'s arguments (`istft_params` flattened).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiFTConfig {
    pub in_channels: usize,
    pub base_channels: usize,
    pub nb_harmonics: usize,
    pub sampling_rate: u32,
    /// SineGen's sine amplitude.
    pub nsf_alpha: f64,
    /// SineGen's noise std in voiced samples (unvoiced ones get nsf_alpha / 3).
    pub nsf_sigma: f64,
    /// f0 above this (Hz) is voiced.
    pub nsf_voiced_threshold: f64,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub istft_n_fft: usize,
    pub istft_hop_len: usize,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub source_resblock_kernel_sizes: Vec<usize>,
    pub source_resblock_dilation_sizes: Vec<Vec<usize>>,
    pub lrelu_slope: f64,
    pub audio_limit: f64,
    /// `ConvRNNF0Predictor(cond_channels=…)`, 512 in every checkpoint.
    #[serde(default = "default_f0_channels")]
    pub f0_predictor_channels: usize,
}

fn default_f0_channels() -> usize {
    512
}

impl HiFTConfig {
    /// `mel2wav` as S3Token2Wav builds it (s3gen.py).
    pub fn s3gen() -> Self {
        Self {
            in_channels: 80,
            base_channels: 512,
            nb_harmonics: 8,
            sampling_rate: 24_000,
            nsf_alpha: 0.1,
            nsf_sigma: 0.003,
            nsf_voiced_threshold: 10.0,
            upsample_rates: vec![8, 5, 3],
            upsample_kernel_sizes: vec![16, 11, 7],
            istft_n_fft: 16,
            istft_hop_len: 4,
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            source_resblock_kernel_sizes: vec![7, 7, 11],
            source_resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            lrelu_slope: 0.1,
            audio_limit: 0.99,
            f0_predictor_channels: default_f0_channels(),
        }
    }

    /// Waveform samples per mel frame: 480 for S3Gen (8·5·3 upsampling × hop 4).
    pub fn samples_per_frame(&self) -> usize {
        self.upsample_rates.iter().product::<usize>() * self.istft_hop_len
    }

    fn validate(&self) -> Result<()> {
        let stages = self.upsample_rates.len();
        let problem = if stages == 0 {
            Some("no upsampling stage".to_string())
        } else if [
            self.upsample_kernel_sizes.len(),
            self.source_resblock_kernel_sizes.len(),
            self.source_resblock_dilation_sizes.len(),
        ] != [stages; 3]
        {
            Some(format!(
                "{stages} upsample rates need as many upsample kernels, source resblock kernels \
                 and source resblock dilations"
            ))
        } else if self.resblock_kernel_sizes.is_empty()
            || self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len()
        {
            Some("resblock kernels and dilations must be non-empty and pair up".to_string())
        } else if !self.base_channels.is_multiple_of(1 << stages)
            || self.base_channels >> stages == 0
        {
            Some(format!(
                "base_channels {} does not halve {stages} times",
                self.base_channels
            ))
        } else if [
            &self.resblock_kernel_sizes,
            &self.source_resblock_kernel_sizes,
        ]
        .into_iter()
        .chain(&self.resblock_dilation_sizes)
        .chain(&self.source_resblock_dilation_sizes)
        .any(|sizes| sizes.contains(&0))
        {
            Some("resblock kernels and dilations must be non-zero".to_string())
        } else if self
            .upsample_rates
            .iter()
            .zip(&self.upsample_kernel_sizes)
            .any(|(u, k)| *u == 0 || k < u)
        {
            Some("each upsample kernel must be at least its (non-zero) rate".to_string())
        } else if self.istft_n_fft == 0
            || self.istft_hop_len == 0
            || !self.istft_n_fft.is_multiple_of(2)
        {
            Some("the iSTFT needs an even n_fft and a non-zero hop".to_string())
        } else if self.audio_limit.is_nan() || self.audio_limit < 0.0 {
            Some(format!(
                "audio_limit {} is not a non-negative limit",
                self.audio_limit
            ))
        } else {
            None
        };
        match problem {
            Some(p) => candle_core::bail!("HiFT config: {p}"),
            None => Ok(()),
        }
    }

    fn stage_channels(&self, stage: usize) -> usize {
        self.base_channels >> (stage + 1)
    }
}

/// SineGen's random draws for `inference`:
/// - `phases` (B, nb_harmonics + 1, 1): initial phases, U(−π, π). Entry 0 (the fundamental) is
///   ignored: the reference overwrites it with 0.
/// - `noise` (B, nb_harmonics + 1, L) with L = frames · samples_per_frame: N(0, 1), scaled by
///   `nsf_sigma` where voiced and `nsf_alpha / 3` where not.
///
/// Both may live on any device and dtype; they are read as f32.
pub struct SourceExcitation {
    pub phases: Tensor,
    pub noise: Tensor,
}

impl SourceExcitation {
    /// The shapes of `phases` and `noise` for `batch` mels of `frames` frames.
    pub fn shapes(config: &HiFTConfig, batch: usize, frames: usize) -> (Shape, Shape) {
        let harmonics = config.nb_harmonics + 1;
        (
            Shape::from((batch, harmonics, 1)),
            Shape::from((batch, harmonics, frames * config.samples_per_frame())),
        )
    }
}

/// hifigan.py's ResBlock: for each dilation d, x += conv2(snake2(conv1_d(snake1(x)))).
struct ResBlock {
    layers: Vec<ResLayer>,
}

struct ResLayer {
    snake1: Snake,
    conv1: WeightNormConv1d,
    snake2: Snake,
    conv2: WeightNormConv1d,
}

impl ResBlock {
    fn load(channels: usize, kernel: usize, dilations: &[usize], vb: VarBuilder) -> Result<Self> {
        let shape = (channels, channels, kernel);
        let same = |d: usize| (kernel * d - d) / 2;
        let layers = dilations
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                Ok(ResLayer {
                    snake1: Snake::load(channels, vb.pp(format!("activations1.{i}")))?,
                    conv1: WeightNormConv1d::load(shape, d, same(d), vb.pp(format!("convs1.{i}")))?,
                    snake2: Snake::load(channels, vb.pp(format!("activations2.{i}")))?,
                    conv2: WeightNormConv1d::load(shape, 1, same(1), vb.pp(format!("convs2.{i}")))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            let xt = layer
                .conv1
                .forward(&x, Activation::Snake(&layer.snake1), None)?;
            x = layer
                .conv2
                .forward(&xt, Activation::Snake(&layer.snake2), Some(&x))?;
        }
        Ok(x)
    }
}

/// SourceModuleHnNSF with its SineGen: the harmonic source merged by `l_linear` and tanh.
/// Computed on the host like the reference's CPU run: the phase is an f32 cumulative sum
/// accumulated in f64 (torch's CPU cumsum does that), wrapped to [0, 1) per sample.
struct SourceModuleHnNSF {
    weight: Vec<f32>,
    bias: f32,
    sampling_rate: f32,
    sine_amp: f32,
    voiced_noise_std: f32,
    unvoiced_noise_std: f32,
    voiced_threshold: f32,
}

impl SourceModuleHnNSF {
    fn load(config: &HiFTConfig, vb: VarBuilder) -> Result<Self> {
        let harmonics = config.nb_harmonics + 1;
        let linear = vb.pp("l_linear");
        let weight = linear.get((1, harmonics), "weight")?;
        let bias = linear.get(1, "bias")?;
        Ok(Self {
            weight: weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            bias: bias.to_dtype(DType::F32)?.to_vec1::<f32>()?[0],
            sampling_rate: config.sampling_rate as f32,
            sine_amp: config.nsf_alpha as f32,
            voiced_noise_std: config.nsf_sigma as f32,
            unvoiced_noise_std: (config.nsf_alpha / 3.0) as f32,
            voiced_threshold: config.nsf_voiced_threshold as f32,
        })
    }

    /// One item: `f0` per sample, `phases` (harmonics), `noise` (harmonics × len) → s (len).
    fn forward(&self, f0: &[f32], phases: &[f32], noise: &[f32]) -> Vec<f32> {
        const TWO_PI: f32 = std::f32::consts::TAU;
        let len = f0.len();
        let voiced: Vec<bool> = f0.iter().map(|f| *f > self.voiced_threshold).collect();
        let weighted: Vec<Vec<f32>> = (0..self.weight.len())
            .into_par_iter()
            .map(|h| {
                let multiple = (h + 1) as f32;
                let phase = if h == 0 { 0.0 } else { phases[h] };
                let noise = &noise[h * len..][..len];
                let mut cumulative = 0f64;
                f0.iter()
                    .zip(&voiced)
                    .zip(noise)
                    .map(|((f0, voiced), n)| {
                        cumulative += f64::from(f0 * multiple / self.sampling_rate);
                        let cycles = cumulative as f32;
                        let theta = TWO_PI * (cycles - cycles.floor());
                        let sine = self.sine_amp * (theta + phase).sin();
                        if *voiced {
                            sine + self.voiced_noise_std * n
                        } else {
                            self.unvoiced_noise_std * n
                        }
                    })
                    .collect()
            })
            .collect();
        (0..len)
            .map(|i| {
                let merged = self
                    .weight
                    .iter()
                    .zip(&weighted)
                    .fold(f64::from(self.bias), |acc, (w, h)| {
                        acc + f64::from(*w) * f64::from(h[i])
                    });
                (merged as f32).tanh()
            })
            .collect()
    }
}

/// HiFTGenerator in eval mode, weight norm folded.
pub struct HiFTGenerator {
    config: HiFTConfig,
    f0_predictor: ConvRNNF0Predictor,
    m_source: SourceModuleHnNSF,
    conv_pre: WeightNormConv1d,
    ups: Vec<WeightNormConvTranspose1d>,
    source_downs: Vec<StridedConv1d>,
    source_resblocks: Vec<ResBlock>,
    resblocks: Vec<ResBlock>,
    conv_post: WeightNormConv1d,
    stft: Stft,
    istft: Istft,
    device: Device,
    dtype: DType,
}

/// hifigan.py's final `F.leaky_relu(x)` has torch's default slope, not `lrelu_slope`.
const POST_LEAKY_RELU_SLOPE: f32 = 0.01;

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

impl HiFTGenerator {
    /// Loads `mel2wav` (with `mel2wav.f0_predictor`) from `vb` at that prefix.
    pub fn load(vb: VarBuilder, config: &HiFTConfig) -> Result<Self> {
        config.validate()?;
        let n_fft = config.istft_n_fft;
        let spectrum_channels = n_fft + 2;
        let base = config.base_channels;
        let stages = config.upsample_rates.len();

        let ups = (0..stages)
            .map(|i| {
                let (u, k) = (config.upsample_rates[i], config.upsample_kernel_sizes[i]);
                let channels = (base >> i, base >> (i + 1), k);
                WeightNormConvTranspose1d::load(channels, u, (k - u) / 2, vb.pp(format!("ups.{i}")))
            })
            .collect::<Result<_>>()?;
        // Stage i sees the source STFT downsampled by the product of the later stages' rates.
        let mut source_downs = Vec::with_capacity(stages);
        let mut source_resblocks = Vec::with_capacity(stages);
        for i in 0..stages {
            let rate: usize = config.upsample_rates[i + 1..].iter().product();
            let channels = config.stage_channels(i);
            // A 1×1 conv where there is nothing to downsample.
            let (kernel, padding) = if rate == 1 {
                (1, 0)
            } else {
                (2 * rate, rate / 2)
            };
            source_downs.push(StridedConv1d::load(
                (spectrum_channels, channels, kernel),
                rate,
                padding,
                vb.pp(format!("source_downs.{i}")),
            )?);
            source_resblocks.push(ResBlock::load(
                channels,
                config.source_resblock_kernel_sizes[i],
                &config.source_resblock_dilation_sizes[i],
                vb.pp(format!("source_resblocks.{i}")),
            )?);
        }
        let mut resblocks = Vec::new();
        for i in 0..stages {
            for (k, d) in config
                .resblock_kernel_sizes
                .iter()
                .zip(&config.resblock_dilation_sizes)
            {
                let index = resblocks.len();
                resblocks.push(ResBlock::load(
                    config.stage_channels(i),
                    *k,
                    d,
                    vb.pp(format!("resblocks.{index}")),
                )?);
            }
        }
        let window = hann_periodic(n_fft);
        Ok(Self {
            f0_predictor: ConvRNNF0Predictor::load(
                config.in_channels,
                config.f0_predictor_channels,
                vb.pp("f0_predictor"),
            )?,
            m_source: SourceModuleHnNSF::load(config, vb.pp("m_source"))?,
            conv_pre: WeightNormConv1d::load(
                (config.in_channels, base, 7),
                1,
                3,
                vb.pp("conv_pre"),
            )?,
            ups,
            source_downs,
            source_resblocks,
            resblocks,
            conv_post: WeightNormConv1d::load(
                (config.stage_channels(stages - 1), spectrum_channels, 7),
                1,
                3,
                vb.pp("conv_post"),
            )?,
            stft: Stft::new(n_fft, config.istft_hop_len, &window),
            istft: Istft::new(n_fft, config.istft_hop_len, &window),
            device: vb.device().clone(),
            dtype: vb.dtype(),
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &HiFTConfig {
        &self.config
    }

    /// The waveform for `speech_feat` (B, in_channels, T), a mel at 50 Hz: (B, T ·
    /// samples_per_frame), before S3Gen's trim and fade.
    pub fn inference(&self, speech_feat: &Tensor, excitation: &SourceExcitation) -> Result<Tensor> {
        let f0 = self.predict_f0(speech_feat)?;
        let source = self.source(&f0, excitation)?;
        self.decode(speech_feat, &source)
    }

    /// f0 in Hz per mel frame: (B, in_channels, T) → (B, T).
    pub fn predict_f0(&self, speech_feat: &Tensor) -> Result<Tensor> {
        self.f0_predictor.forward(speech_feat)
    }

    /// The excitation s (B, 1, T · samples_per_frame) for f0 (B, T): f0 upsampled by
    /// repetition, then SineGen and the source module's merge.
    pub fn source(&self, f0: &Tensor, excitation: &SourceExcitation) -> Result<Tensor> {
        let (batch, frames) = f0.dims2()?;
        let (phases_shape, noise_shape) = SourceExcitation::shapes(&self.config, batch, frames);
        for (name, tensor, shape) in [
            ("phases", &excitation.phases, &phases_shape),
            ("noise", &excitation.noise, &noise_shape),
        ] {
            if tensor.shape() != shape {
                candle_core::bail!(
                    "HiFT source: {name} has shape {:?}, {frames} frames need {:?}",
                    tensor.dims(),
                    shape.dims()
                );
            }
        }
        let len = noise_shape.dims()[2];
        let harmonics = self.config.nb_harmonics + 1;
        let (f0, phases, noise) = (
            host_f32(f0)?,
            host_f32(&excitation.phases)?,
            host_f32(&excitation.noise)?,
        );
        // nn.Upsample(scale_factor=480, mode="nearest") picks input frame
        // floor(i · f32(1/480)) in f32, which equals i / 480 up to 2^24 samples.
        let scale = (1.0 / self.config.samples_per_frame() as f64) as f32;
        let mut s = Vec::with_capacity(batch * len);
        for b in 0..batch {
            let frames_f0 = &f0[b * frames..][..frames];
            let upsampled: Vec<f32> = (0..len)
                .map(|i| frames_f0[((i as f32 * scale).floor() as usize).min(frames - 1)])
                .collect();
            s.extend(self.m_source.forward(
                &upsampled,
                &phases[b * harmonics..][..harmonics],
                &noise[b * harmonics * len..][..harmonics * len],
            ));
        }
        Tensor::from_vec(s, (batch, 1, len), &self.device)?.to_dtype(self.dtype)
    }

    /// The waveform (B, T · samples_per_frame) for a mel (B, in_channels, T) and a source
    /// (B, 1, T · samples_per_frame), clamped to ±audio_limit.
    pub fn decode(&self, speech_feat: &Tensor, source: &Tensor) -> Result<Tensor> {
        let (batch, _, frames) = speech_feat.dims3()?;
        let expected = (batch, 1, frames * self.config.samples_per_frame());
        if source.dims3()? != expected {
            candle_core::bail!(
                "HiFT decode: source {:?} for a mel of {frames} frames, expected {expected:?}",
                source.dims()
            );
        }
        let s_stft = self.source_stft(source)?;
        let kernels = self.config.resblock_kernel_sizes.len();
        let stages = self.ups.len();
        let mut x = self
            .conv_pre
            .forward(speech_feat, Activation::Identity, None)?;
        for (i, up) in self.ups.iter().enumerate() {
            x = up.forward(&x, Activation::LeakyRelu(self.config.lrelu_slope as f32))?;
            if i == stages - 1 {
                // ReflectionPad1d((1, 0)).
                x = Tensor::cat(&[&x.narrow(2, 1, 1)?, &x], 2)?;
            }
            let si = self.source_downs[i].forward(&s_stft)?;
            x = (x + self.source_resblocks[i].forward(&si)?)?;
            let mut xs = self.resblocks[i * kernels].forward(&x)?;
            for block in &self.resblocks[i * kernels + 1..(i + 1) * kernels] {
                xs = (xs + block.forward(&x)?)?;
            }
            x = (xs / kernels as f64)?;
        }
        let x = self
            .conv_post
            .forward(&x, Activation::LeakyRelu(POST_LEAKY_RELU_SLOPE), None)?;
        self.spectrum_to_waveform(&x)
    }

    /// `_stft` of the source: (B, 1, L) → (B, n_fft + 2, L / hop + 1), real parts then
    /// imaginary parts of the one-sided bins.
    fn source_stft(&self, source: &Tensor) -> Result<Tensor> {
        let (batch, _, len) = source.dims3()?;
        let samples = host_f32(source)?;
        let frames = self.stft.frames(len, true);
        let bins = self.stft.bins();
        let mut out = Vec::with_capacity(batch * 2 * bins * frames);
        for item in samples.chunks_exact(len.max(1)) {
            let real = self.stft.spectrum(item, true, |c| c.re as f32);
            let imag = self.stft.spectrum(item, true, |c| c.im as f32);
            for part in [real, imag] {
                out.extend((0..bins * frames).map(|i| part[(i % frames) * bins + i / frames]));
            }
        }
        Tensor::from_vec(out, (batch, 2 * bins, frames), &self.device)?.to_dtype(self.dtype)
    }

    /// conv_post's output (B, n_fft + 2, F) as log-magnitudes and phases → `_istft` → clamp.
    fn spectrum_to_waveform(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, _, frames) = x.dims3()?;
        let values = host_f32(x)?;
        let bins = self.istft.bins();
        let limit = self.config.audio_limit as f32;
        let len = self.config.istft_hop_len * frames.saturating_sub(1);
        let mut out = Vec::with_capacity(batch * len);
        let mut spectrum = vec![Complex::new(0.0, 0.0); bins * frames];
        for item in values.chunks_exact(2 * bins * frames) {
            let (log_magnitude, phase) = item.split_at(bins * frames);
            for (i, (m, p)) in log_magnitude.iter().zip(phase).enumerate() {
                // The reference's phase is sin(x) ("actually, sin is redundancy").
                let magnitude = m.exp().min(1e2);
                let phase = p.sin();
                let (bin, frame) = (i / frames, i % frames);
                spectrum[frame * bins + bin] = Complex::new(
                    f64::from(magnitude * phase.cos()),
                    f64::from(magnitude * phase.sin()),
                );
            }
            let wave = self.istft.process(&spectrum, true, None)?;
            out.extend(wave.into_iter().map(|v| v.clamp(-limit, limit)));
        }
        Tensor::from_vec(out, (batch, len), &self.device)?.to_dtype(self.dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3gen_config_is_valid_and_gives_480_samples_per_frame() {
        let config = HiFTConfig::s3gen();
        config.validate().unwrap();
        assert_eq!(config.samples_per_frame(), 480);
        let (phases, noise) = SourceExcitation::shapes(&config, 1, 200);
        assert_eq!(
            (phases.dims(), noise.dims()),
            (&[1, 9, 1][..], &[1, 9, 96_000][..])
        );
    }

    #[test]
    fn a_config_the_stack_cannot_build_is_refused_by_name() {
        let mut config = HiFTConfig::s3gen();
        config.base_channels = 12;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("base_channels 12"), "{err}");
        let mut config = HiFTConfig::s3gen();
        config.source_resblock_kernel_sizes.pop();
        assert!(config.validate().is_err());
    }
}
