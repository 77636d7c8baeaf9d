"""HiFTGenerator (chatterbox/models/s3gen/hifigan.py) with its ConvRNNF0Predictor
(f0_predictor.py), built as S3Token2Wav builds `mel2wav`: `inference` on a real-speech mel, with
SineGen's random phases and noise injected and stored as `noise.*`.

Every fixture holds the mel, the predicted f0, the source `s` and the waveform (before S3Gen's
trim/fade). `decode(mel, s)` against the waveform is the precise check; the stored noise lets the
Rust side rebuild `s` from the reference f0 and run the whole `inference`."""

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from chatterbox.models.s3gen import hifigan
from chatterbox.models.s3gen.f0_predictor import ConvRNNF0Predictor
from chatterbox.models.s3gen.hifigan import HiFTGenerator
from chatterbox.models.s3gen.utils.mel import mel_spectrogram

from common import seed_module, speech, write_fixture

SR = 24000
SEED = 0x41F7
SAMPLES_PER_FRAME = 480

# S3Token2Wav's arguments; the rest are HiFTGenerator's defaults.
S3GEN = dict(
    in_channels=80, base_channels=512, nb_harmonics=8, sampling_rate=SR, nsf_alpha=0.1, nsf_sigma=0.003,
    nsf_voiced_threshold=10, upsample_rates=[8, 5, 3], upsample_kernel_sizes=[16, 11, 7],
    istft_params={"n_fft": 16, "hop_len": 4}, resblock_kernel_sizes=[3, 7, 11],
    resblock_dilation_sizes=[[1, 3, 5]] * 3, source_resblock_kernel_sizes=[7, 7, 11],
    source_resblock_dilation_sizes=[[1, 3, 5]] * 3, lrelu_slope=0.1, audio_limit=0.99,
)


def _ranges(model: torch.nn.Module) -> dict:
    """The weight-norm magnitudes g (`original0`) set each folded conv's per-channel weight norm:
    0.6, about the norm of a ±1/sqrt(fan_in) direction (so w ≈ v), keeps the residual stacks from
    growing; conv_post gets 1.0 so exp(magnitude) spans about 0.5-2, short of the 100 clip, and
    the waveform stays inside the 0.99 clamp. The f0 head's weights (±120) and bias (60) make
    |f0| span ~3-200 Hz on speech, so both voiced and unvoiced (< 10 Hz) frames occur."""
    ranges = {}
    for name in model.state_dict():
        if name.endswith("parametrizations.weight.original0"):
            g = 1.0 if name.startswith("conv_post.") else 0.6
            ranges[name] = (0.8 * g, 1.2 * g)
    ranges["f0_predictor.classifier.weight"] = (-120.0, 120.0)
    ranges["f0_predictor.classifier.bias"] = (60.0, 60.0)
    return ranges


def build(base_channels: int) -> tuple[HiFTGenerator, dict, dict]:
    args = dict(S3GEN, base_channels=base_channels)
    model = HiFTGenerator(**args, f0_predictor=ConvRNNF0Predictor()).eval()
    manifest = seed_module(model, SEED, ranges=_ranges(model))
    config = {k: v for k, v in args.items() if k != "istft_params"}
    config.update(istft_n_fft=args["istft_params"]["n_fft"], istft_hop_len=args["istft_params"]["hop_len"])
    return model, manifest, config


class _InjectedUniform:
    """Stands in for torch.distributions.Uniform inside SineGen: `sample` returns the stored phases."""
    phases = None

    def __init__(self, low, high):
        assert (low, high) == (-np.pi, np.pi)

    def sample(self, sample_shape):
        assert tuple(sample_shape) == tuple(self.phases.shape)
        return self.phases.clone()


@contextmanager
def injected_randomness(phases: torch.Tensor, sine_noise: torch.Tensor):
    """Within the block, SineGen's U(-π, π) phases and N(0, 1) noise are the given tensors (once).
    The source module draws a second randn_like (its unused noise branch); it gets zeros."""
    draws = [sine_noise]
    real_uniform, real_randn_like = hifigan.Uniform, torch.randn_like

    def randn_like(like):
        value = draws.pop(0) if draws else torch.zeros_like(like)
        assert value.shape == like.shape, (value.shape, like.shape)
        return value.clone()

    _InjectedUniform.phases = phases
    hifigan.Uniform, torch.randn_like = _InjectedUniform, randn_like
    try:
        yield
    finally:
        hifigan.Uniform, torch.randn_like = real_uniform, real_randn_like
    assert not draws, "SineGen did not draw its noise"


def _case(out_dir: Path, case: str, model: HiFTGenerator, manifest: dict, config: dict, frames: int,
          store_noise: bool, noise_seed: int):
    wav24 = speech(frames * SAMPLES_PER_FRAME / SR + 0.1, SR)
    mel = mel_spectrogram(torch.from_numpy(wav24))[:, :, :frames].contiguous()
    assert mel.shape == (1, 80, frames), mel.shape
    rng = np.random.default_rng(noise_seed)
    harmonics = config["nb_harmonics"] + 1
    phases = torch.from_numpy(rng.uniform(-np.pi, np.pi, (1, harmonics, 1)).astype(np.float32))
    sine_noise = torch.from_numpy(rng.standard_normal((1, harmonics, frames * SAMPLES_PER_FRAME)).astype(np.float32))
    with injected_randomness(phases, sine_noise):
        wav, source = model.inference(mel)
    f0 = model.f0_predictor(mel)
    threshold = config["nsf_voiced_threshold"]
    margin = float((f0 - threshold).abs().min())
    assert margin > 1e-3, f"an f0 of {threshold} ± {margin} makes the voicing decision fragile"
    clamped = float((wav.abs() >= config["audio_limit"]).float().mean())
    print(f"  {case}: voiced {float((f0 > threshold).float().mean()):.2f}, f0 {float(f0.min()):.1f}-"
          f"{float(f0.max()):.1f} Hz, wav std {float(wav.std()):.3f}, clamped {clamped:.3f}")
    noise = {"phases": phases, "sine": sine_noise} if store_noise else {}
    write_fixture(out_dir, case, "hift", dict(config, frames=frames, stores_noise=store_noise), manifest,
                  inputs={"mel": mel}, outputs={"f0": f0, "source": source, "wav": wav}, noise=noise)


def generate(out_dir: Path, full: bool):
    if full:
        model, manifest, config = build(512)
        _case(out_dir, "hift_full_200f", model, manifest, config, 200, store_noise=True, noise_seed=11)
        _case(out_dir, "hift_full_50f", model, manifest, config, 50, store_noise=True, noise_seed=12)
        return
    model, manifest, config = build(64)
    # The noise (9 × 480 floats per frame) would dominate a committed fixture, so only the short
    # case stores it; the longer one checks the f0 predictor and decode(mel, s).
    _case(out_dir, "hift_reduced_40f", model, manifest, config, 40, store_noise=False, noise_seed=13)
    _case(out_dir, "hift_reduced_12f", model, manifest, config, 12, store_noise=True, noise_seed=14)
