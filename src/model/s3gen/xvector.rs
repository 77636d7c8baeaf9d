//! Port of chatterbox/models/s3gen/xvector.py: CAMPPlus, the 192-dimensional speaker embedding
//! (x-vector) S3Gen conditions on, with its Kaldi fbank front-end. Only the eval path with
//! segment-level output exists here, which is all chatterbox uses.

use candle_core::{D, Device, Module, ModuleT, Result, Tensor};
use candle_nn::{
    BatchNorm, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, VarBuilder,
};

use crate::model::dsp::kaldi::{self, KaldiFbank, NUM_MEL_BINS};
use serde::{Deserialize, Serialize};

const HEAD_CHANNELS: usize = 32;
/// (layers, dilation) of the three CAM dense blocks; every layer has kernel size 3.
const DENSE_BLOCKS: [(usize, usize); 3] = [(12, 1), (24, 2), (16, 2)];
const CAM_KERNEL_SIZE: usize = 3;
const TDNN_KERNEL_SIZE: usize = 5;
const CAM_SEGMENT_LEN: usize = 100;
/// Fewer fbank frames leave a single frame after the stride-2 TDNN, whose unbiased standard
/// deviation in the statistics pooling is NaN.
const MIN_FRAMES: usize = 3;

/// PyTorch BatchNorm's default eps; `affine: false` is `BatchNorm1d(affine=False)`.
fn batch_norm(channels: usize, affine: bool, vb: VarBuilder) -> Result<BatchNorm> {
    let config = BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine,
        momentum: 0.1,
    };
    candle_nn::batch_norm(channels, config, vb)
}

/// A 3×3 or 1×1 `Conv2d` without bias and stride (`freq_stride`, 1). Candle's Conv2d takes one
/// stride for both axes, so it runs at stride 1 and keeps every `freq_stride`-th frequency row,
/// which is exactly the strided output since the padding is symmetric.
struct FreqStridedConv2d {
    conv: Conv2d,
    freq_stride: usize,
}

impl FreqStridedConv2d {
    fn load(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        freq_stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let config = Conv2dConfig {
            padding: kernel_size / 2,
            ..Default::default()
        };
        let conv = candle_nn::conv2d_no_bias(in_channels, out_channels, kernel_size, config, vb)?;
        Ok(Self { conv, freq_stride })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        if self.freq_stride == 1 {
            return Ok(y);
        }
        let rows: Vec<u32> = (0..y.dim(2)? as u32).step_by(self.freq_stride).collect();
        let rows = Tensor::new(rows.as_slice(), y.device())?;
        y.index_select(&rows, 2)
    }
}

struct BasicResBlock {
    conv1: FreqStridedConv2d,
    bn1: BatchNorm,
    conv2: FreqStridedConv2d,
    bn2: BatchNorm,
    shortcut: Option<(FreqStridedConv2d, BatchNorm)>,
}

impl BasicResBlock {
    fn load(channels: usize, freq_stride: usize, vb: VarBuilder) -> Result<Self> {
        // Every block keeps the channel count, so only a strided block needs a projection.
        let shortcut = if freq_stride == 1 {
            None
        } else {
            Some((
                FreqStridedConv2d::load(channels, channels, 1, freq_stride, vb.pp("shortcut.0"))?,
                batch_norm(channels, true, vb.pp("shortcut.1"))?,
            ))
        };
        Ok(Self {
            conv1: FreqStridedConv2d::load(channels, channels, 3, freq_stride, vb.pp("conv1"))?,
            bn1: batch_norm(channels, true, vb.pp("bn1"))?,
            conv2: FreqStridedConv2d::load(channels, channels, 3, 1, vb.pp("conv2"))?,
            bn2: batch_norm(channels, true, vb.pp("bn2"))?,
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.bn1.forward_t(&self.conv1.forward(x)?, false)?.relu()?;
        let out = self.bn2.forward_t(&self.conv2.forward(&out)?, false)?;
        let residual = match &self.shortcut {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, false)?,
            None => x.clone(),
        };
        (out + residual)?.relu()
    }
}

/// The 2-D convolutional front (FCM): treats the (80 × T) fbank as an image, reduces frequency
/// 8-fold and flattens channels × frequency into 320 features per frame.
struct Fcm {
    conv1: FreqStridedConv2d,
    bn1: BatchNorm,
    blocks: Vec<BasicResBlock>,
    conv2: FreqStridedConv2d,
    bn2: BatchNorm,
}

impl Fcm {
    fn load(vb: VarBuilder) -> Result<Self> {
        let mut blocks = Vec::with_capacity(4);
        for layer in ["layer1", "layer2"] {
            blocks.push(BasicResBlock::load(HEAD_CHANNELS, 2, vb.pp(layer).pp("0"))?);
            blocks.push(BasicResBlock::load(HEAD_CHANNELS, 1, vb.pp(layer).pp("1"))?);
        }
        Ok(Self {
            conv1: FreqStridedConv2d::load(1, HEAD_CHANNELS, 3, 1, vb.pp("conv1"))?,
            bn1: batch_norm(HEAD_CHANNELS, true, vb.pp("bn1"))?,
            blocks,
            conv2: FreqStridedConv2d::load(HEAD_CHANNELS, HEAD_CHANNELS, 3, 2, vb.pp("conv2"))?,
            bn2: batch_norm(HEAD_CHANNELS, true, vb.pp("bn2"))?,
        })
    }

    /// (B, F, T) → (B, 32·F/8, T).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.unsqueeze(1)?;
        let mut out = self
            .bn1
            .forward_t(&self.conv1.forward(&x)?, false)?
            .relu()?;
        for block in &self.blocks {
            out = block.forward(&out)?;
        }
        let out = self
            .bn2
            .forward_t(&self.conv2.forward(&out)?, false)?
            .relu()?;
        let (batch, channels, freq, time) = out.dims4()?;
        out.reshape((batch, channels * freq, time))
    }
}

/// `get_nonlinear("batchnorm-relu")`: a Sequential whose BatchNorm is named `batchnorm`.
struct BatchNormRelu(BatchNorm);

impl BatchNormRelu {
    fn load(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self(batch_norm(channels, true, vb.pp("batchnorm"))?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward_t(x, false)?.relu()
    }
}

/// Context-aware masking: a local convolution gated per channel by a sigmoid of a two-layer
/// projection of the utterance mean plus the mean of the surrounding 100-frame segment.
struct CamLayer {
    linear_local: Conv1d,
    linear1: Conv1d,
    linear2: Conv1d,
}

impl CamLayer {
    fn load(config: &CampPlusConfig, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let (bottleneck, growth) = (config.bottleneck_channels(), config.growth_rate);
        let local = Conv1dConfig {
            padding: (CAM_KERNEL_SIZE - 1) / 2 * dilation,
            dilation,
            ..Default::default()
        };
        let reduced = bottleneck / 2;
        Ok(Self {
            linear_local: candle_nn::conv1d_no_bias(
                bottleneck,
                growth,
                CAM_KERNEL_SIZE,
                local,
                vb.pp("linear_local"),
            )?,
            linear1: candle_nn::conv1d(
                bottleneck,
                reduced,
                1,
                Default::default(),
                vb.pp("linear1"),
            )?,
            linear2: candle_nn::conv1d(reduced, growth, 1, Default::default(), vb.pp("linear2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.linear_local.forward(x)?;
        let context = x
            .mean_keepdim(D::Minus1)?
            .broadcast_add(&segment_means(x, CAM_SEGMENT_LEN)?)?;
        let context = self.linear1.forward(&context)?.relu()?;
        let mask = candle_nn::ops::sigmoid(&self.linear2.forward(&context)?)?;
        y * mask
    }
}

/// `seg_pooling`: each frame gets the mean of its `segment_len`-frame segment.
/// `avg_pool1d(ceil_mode=True)` averages the last, partial segment over the frames it has.
fn segment_means(x: &Tensor, segment_len: usize) -> Result<Tensor> {
    let (batch, channels, time) = x.dims3()?;
    let segments = time.div_ceil(segment_len);
    let padded = x.pad_with_zeros(2, 0, segments * segment_len - time)?;
    let sums = padded
        .reshape((batch, channels, segments, segment_len))?
        .sum_keepdim(3)?;
    let counts: Vec<f32> = (0..segments)
        .map(|s| (time - s * segment_len).min(segment_len) as f32)
        .collect();
    let counts = Tensor::from_vec(counts, (1, 1, segments, 1), x.device())?.to_dtype(x.dtype())?;
    sums.broadcast_div(&counts)?
        .broadcast_as((batch, channels, segments, segment_len))?
        .reshape((batch, channels, segments * segment_len))?
        .narrow(2, 0, time)
}

struct CamDenseTdnnLayer {
    nonlinear1: BatchNormRelu,
    linear1: Conv1d,
    nonlinear2: BatchNormRelu,
    cam_layer: CamLayer,
}

impl CamDenseTdnnLayer {
    fn load(
        config: &CampPlusConfig,
        in_channels: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let bottleneck = config.bottleneck_channels();
        Ok(Self {
            nonlinear1: BatchNormRelu::load(in_channels, vb.pp("nonlinear1"))?,
            linear1: candle_nn::conv1d_no_bias(
                in_channels,
                bottleneck,
                1,
                Default::default(),
                vb.pp("linear1"),
            )?,
            nonlinear2: BatchNormRelu::load(bottleneck, vb.pp("nonlinear2"))?,
            cam_layer: CamLayer::load(config, dilation, vb.pp("cam_layer"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.linear1.forward(&self.nonlinear1.forward(x)?)?;
        self.cam_layer.forward(&self.nonlinear2.forward(&x)?)
    }
}

/// A dense block followed by its transit layer, which halves the channels.
struct DenseStage {
    layers: Vec<CamDenseTdnnLayer>,
    transit_nonlinear: BatchNormRelu,
    transit_linear: Conv1d,
}

impl DenseStage {
    fn load(
        config: &CampPlusConfig,
        in_channels: usize,
        num_layers: usize,
        dilation: usize,
        block: VarBuilder,
        transit: VarBuilder,
    ) -> Result<Self> {
        let layers = (0..num_layers)
            .map(|i| {
                CamDenseTdnnLayer::load(
                    config,
                    in_channels + i * config.growth_rate,
                    dilation,
                    block.pp(format!("tdnnd{}", i + 1)),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let out_channels = in_channels + num_layers * config.growth_rate;
        Ok(Self {
            layers,
            transit_nonlinear: BatchNormRelu::load(out_channels, transit.pp("nonlinear"))?,
            transit_linear: candle_nn::conv1d_no_bias(
                out_channels,
                out_channels / 2,
                1,
                Default::default(),
                transit.pp("linear"),
            )?,
        })
    }

    fn out_channels(&self) -> usize {
        self.transit_linear.weight().dims()[0]
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            let grown = layer.forward(&x)?;
            x = Tensor::cat(&[&x, &grown], 1)?;
        }
        self.transit_linear
            .forward(&self.transit_nonlinear.forward(&x)?)
    }
}

/// `CAMPPlus`'s constructor arguments (the dense block depths are fixed in the reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampPlusConfig {
    pub embedding_size: usize,
    pub growth_rate: usize,
    pub bn_size: usize,
    pub init_channels: usize,
}

impl CampPlusConfig {
    /// `CAMPPlus(memory_efficient=False)` as S3Gen builds it.
    pub fn s3gen() -> Self {
        Self {
            embedding_size: 192,
            growth_rate: 32,
            bn_size: 4,
            init_channels: 128,
        }
    }

    fn bottleneck_channels(&self) -> usize {
        self.bn_size * self.growth_rate
    }
}

pub struct CampPlus {
    head: Fcm,
    tdnn_linear: Conv1d,
    tdnn_nonlinear: BatchNormRelu,
    stages: Vec<DenseStage>,
    out_nonlinear: BatchNormRelu,
    dense_linear: Conv1d,
    dense_norm: BatchNorm,
    fbank: KaldiFbank,
}

impl CampPlus {
    pub fn load(vb: VarBuilder, config: &CampPlusConfig) -> Result<Self> {
        let init_channels = config.init_channels;
        let head_channels = HEAD_CHANNELS * (NUM_MEL_BINS / 8);
        let xvector = vb.pp("xvector");
        let tdnn = xvector.pp("tdnn");
        let tdnn_config = Conv1dConfig {
            padding: TDNN_KERNEL_SIZE / 2,
            stride: 2,
            ..Default::default()
        };
        let tdnn_linear = candle_nn::conv1d_no_bias(
            head_channels,
            init_channels,
            TDNN_KERNEL_SIZE,
            tdnn_config,
            tdnn.pp("linear"),
        )?;
        let mut channels = init_channels;
        let mut stages = Vec::with_capacity(DENSE_BLOCKS.len());
        for (i, (num_layers, dilation)) in DENSE_BLOCKS.into_iter().enumerate() {
            let stage = DenseStage::load(
                config,
                channels,
                num_layers,
                dilation,
                xvector.pp(format!("block{}", i + 1)),
                xvector.pp(format!("transit{}", i + 1)),
            )?;
            channels = stage.out_channels();
            stages.push(stage);
        }
        let dense = xvector.pp("dense");
        Ok(Self {
            head: Fcm::load(vb.pp("head"))?,
            tdnn_linear,
            tdnn_nonlinear: BatchNormRelu::load(init_channels, tdnn.pp("nonlinear"))?,
            stages,
            out_nonlinear: BatchNormRelu::load(channels, xvector.pp("out_nonlinear"))?,
            dense_linear: candle_nn::conv1d_no_bias(
                2 * channels,
                config.embedding_size,
                1,
                Default::default(),
                dense.pp("linear"),
            )?,
            dense_norm: batch_norm(
                config.embedding_size,
                false,
                dense.pp("nonlinear.batchnorm"),
            )?,
            fbank: KaldiFbank::new(),
        })
    }

    /// Mean-normalised fbank features (B, T, 80) → embeddings (B, 192).
    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        let x = self
            .head
            .forward(&features.transpose(1, 2)?.contiguous()?)?;
        let mut x = self
            .tdnn_nonlinear
            .forward(&self.tdnn_linear.forward(&x)?)?;
        for stage in &self.stages {
            x = stage.forward(&x)?;
        }
        let x = self.out_nonlinear.forward(&x)?;
        // Statistics pooling: mean and unbiased standard deviation over time.
        let stats = Tensor::cat(&[x.mean(D::Minus1)?, x.var(D::Minus1)?.sqrt()?], 1)?;
        let embedding = self
            .dense_linear
            .forward(&stats.unsqueeze(2)?)?
            .squeeze(2)?;
        self.dense_norm.forward_t(&embedding, false)
    }

    /// The fbank features `inference` feeds to `forward`, (1, T, 80): Kaldi fbank minus its
    /// mean over time (`extract_feature`).
    pub fn features(&self, wav_16k: &[f32], device: &Device) -> Result<Tensor> {
        let frames = kaldi::num_frames(wav_16k.len());
        if frames < MIN_FRAMES {
            candle_core::bail!(
                "CAMPPlus needs at least {MIN_FRAMES} fbank frames, {} samples at 16 kHz give {frames}",
                wav_16k.len()
            );
        }
        let fbank = Tensor::from_vec(self.fbank.compute(wav_16k), (frames, NUM_MEL_BINS), device)?;
        fbank.broadcast_sub(&fbank.mean_keepdim(0)?)?.unsqueeze(0)
    }

    /// `CAMPPlus.inference` on one 16 kHz waveform: (1, 192).
    pub fn inference(&self, wav_16k: &[f32], device: &Device) -> Result<Tensor> {
        let features = self.features(wav_16k, device)?;
        self.forward(&features.to_dtype(self.dense_linear.weight().dtype())?)
    }
}
