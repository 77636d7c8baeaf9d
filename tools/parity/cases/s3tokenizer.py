"""S3TokenizerV2 (s3tokenizer 0.3.0 model_v2.py): log-mel -> FSQ projection -> speech tokens.

Inputs are log-mels from chatterbox's `S3Tokenizer.log_mel_spectrogram` on espeak speech, or, for
the long committed case, a seeded uniform mel that tests/parity/s3tokenizer.rs regenerates from the
config (`mel`: seed, frames, low, high) so the fixture stays a few kB. Outputs: `projection`, the
`project_down` values before tanh and rounding, as (tokens, 8) after the reference's own
`merge_tokenized_segments`, and `tokens`.
"""

from types import SimpleNamespace

import librosa
import numpy as np
import torch
from s3tokenizer.model_v2 import ModelConfig, S3TokenizerV2
from s3tokenizer.utils import merge_tokenized_segments

from chatterbox.models.s3tokenizer.s3tokenizer import S3_SR, S3Tokenizer
from common import seed_module, speech, uniform, write_fixture

MODULE = "s3tokenizer"
FULL = dict(n_mels=128, n_audio_state=1280, n_audio_head=20, n_audio_layer=6)
# head_dim stays 64, which the reference's 64-wide RoPE table requires.
REDUCED = dict(n_mels=128, n_audio_state=128, n_audio_head=2, n_audio_layer=2)
# Mirrors _quantize_mixed_batch's 4 s overlap at 25 tokens/s.
OVERLAP_S, TOKEN_RATE = 4, 25


def log_mel(seconds: float) -> torch.Tensor:
    """chatterbox's S3Tokenizer.log_mel_spectrogram, called on just the buffers it reads so the
    full tokenizer need not be built."""
    front = SimpleNamespace(
        n_fft=400,
        device=torch.device("cpu"),
        window=torch.hann_window(400),
        _mel_filters=torch.FloatTensor(librosa.filters.mel(sr=S3_SR, n_fft=400, n_mels=128)),
    )
    wav = torch.from_numpy(speech(seconds, S3_SR))
    return S3Tokenizer.log_mel_spectrogram(front, wav)


def run(model: S3TokenizerV2, mel: torch.Tensor):
    """Tokens from the reference's `quantize`, and the project_down rows behind them, captured
    with hooks and merged exactly as the tokens are."""
    seen = {}
    hooks = [
        model.quantizer._codebook.project_down.register_forward_hook(
            lambda _m, _i, out: seen.__setitem__("proj", out.detach().clone())),
        model.encoder.register_forward_hook(
            lambda _m, _i, out: seen.__setitem__("lens", out[1].tolist())),
    ]
    try:
        codes, code_len = model.quantize(mel[None], torch.tensor([mel.shape[1]]))
    finally:
        for hook in hooks:
            hook.remove()
    lens = seen["lens"]
    rows = seen["proj"].reshape(len(lens), -1, 8)
    segments = [list(rows[i, :n]) for i, n in enumerate(lens)]
    if len(segments) > 1:
        merged = merge_tokenized_segments(segments, overlap=OVERLAP_S, token_rate=TOKEN_RATE)
    else:
        merged = segments[0]
    projection = torch.stack(merged)
    tokens = codes[0, : int(code_len[0])].to(torch.int64)
    assert projection.shape[0] == tokens.shape[0]
    return projection, tokens


def check_windows_run_alone(model: S3TokenizerV2, mel: torch.Tensor, projection: torch.Tensor):
    """The port runs each 3000-frame window unpadded; the reference pads the last one and masks.
    Prints how far apart the two are on this input."""
    frames = mel.shape[1]
    starts = list(range(0, frames, 3000 - OVERLAP_S * 100))
    segments = []
    for start in starts:
        alone, _ = run(model, mel[:, start:start + 3000])
        segments.append(list(alone))
    alone = torch.stack(merge_tokenized_segments(segments, overlap=OVERLAP_S, token_rate=TOKEN_RATE))
    print(f"  windows run alone vs padded batch: max abs {float((alone - projection).abs().max()):.2e}")


def case(out_dir, name, config, mel, seed, mel_spec=None, verify_windows=False):
    model = S3TokenizerV2("speech_tokenizer_v2_25hz", ModelConfig(**config)).eval()
    weights = seed_module(model, seed)
    projection, tokens = run(model, mel)
    if verify_windows:
        check_windows_run_alone(model, mel, projection)
    squashed = projection.tanh() * 0.9990000128746033
    near = int(((squashed.abs() - 0.5).abs() < 1e-4).any(dim=1).sum())
    print(f"  {name}: mel {tuple(mel.shape)} -> {tokens.shape[0]} tokens, "
          f"|proj| mean {float(projection.abs().mean()):.2f}, rows near a rounding edge {near}")
    meta = {"model": config}
    inputs = {}
    if mel_spec is None:
        inputs["mel"] = mel
    else:
        meta["mel"] = mel_spec
    write_fixture(out_dir, name, MODULE, meta, weights, inputs,
                  {"projection": projection, "tokens": tokens})


def seeded_mel(seed: int, frames: int, low: float, high: float):
    spec = {"seed": seed, "frames": frames, "low": low, "high": high}
    values = uniform(seed, "mel", [FULL["n_mels"], frames], low, high)
    return torch.from_numpy(values), spec


def forward_case(out_dir, name, seconds, max_len, seed):
    """chatterbox's S3Tokenizer.forward end to end: 16 kHz speech -> log mel (cut to max_len*4
    frames) -> tokens. Its mel buffers are computed, not seeded."""
    model = S3Tokenizer("speech_tokenizer_v2_25hz").eval()
    weights = seed_module(model, seed, skip=("_mel_filters", "window"))
    wav = speech(seconds, S3_SR)
    tokens, lens = model.forward([wav], max_len=max_len)
    write_fixture(out_dir, name, "s3tokenizer_forward", {"max_len": max_len}, weights,
                  {"wav16": wav}, {"tokens": tokens[0, : int(lens[0])]})


def generate(out_dir, full):
    if full:
        forward_case(out_dir, "s3tokenizer_forward_15s_prompt", 20.0, max_len=375, seed=23)
        case(out_dir, "s3tokenizer_full_12s", FULL, log_mel(12.0), seed=21)
        case(out_dir, "s3tokenizer_full_62s", FULL, log_mel(62.37), seed=22, verify_windows=True)
        return
    case(out_dir, "s3tokenizer_full_4s", FULL, log_mel(4.1), seed=11)
    forward_case(out_dir, "s3tokenizer_forward_2s_prompt", 3.0, max_len=50, seed=14)
    # Three windows (0, 2600, 5200) and an odd-length last one exercise the >30 s path.
    mel, spec = seeded_mel(seed=13, frames=5807, low=-1.0, high=1.5)
    case(out_dir, "s3tokenizer_reduced_58s", REDUCED, mel, seed=12, mel_spec=spec, verify_windows=True)
