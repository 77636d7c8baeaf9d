"""S3Gen as a whole (s3gen.py): `embed_ref` on real speech, then `inference` from fixed speech
tokens to the trimmed and faded 24 kHz waveform, for both the 10-step guided flow (s3gen) and
Turbo's 2-step mean flow (s3gen_meanflow). Every random draw (flow noise, Turbo's noised mels,
SineGen's phases and noise) is injected and stored, so the Rust pipeline is handed the same.

Committed fixtures use the reduced S3Gen of tools/parity/tiny_checkpoint.py with seeded weights;
`--full` builds the real sizes (264 M parameters) and a 100-token utterance."""

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from chatterbox.models.s3gen import hifigan
from chatterbox.models.s3gen.s3gen import S3Token2Wav

from cases.hift import _InjectedUniform, _ranges as hift_ranges
from common import seed_module, speech, write_fixture

SEED = 0x53E7
SR = 24000


@contextmanager
def injected(randn_like_draws: list, randn_draws: list, phases: torch.Tensor):
    """torch.randn_like and torch.randn return the given tensors in order (the reference draws
    the flow's z, SineGen's noise, then the source module's unused noise, which gets zeros);
    SineGen's Uniform returns `phases`."""
    real = torch.randn_like, torch.randn, hifigan.Uniform
    like_queue, plain_queue = list(randn_like_draws), list(randn_draws)

    def randn_like(like, **_):
        value = like_queue.pop(0) if like_queue else torch.zeros_like(like)
        assert value.shape == like.shape, (value.shape, like.shape)
        return value.clone()

    def randn(*shape, **_):
        value = plain_queue.pop(0)
        assert tuple(value.shape) == tuple(shape if len(shape) > 1 else shape[0]), (value.shape, shape)
        return value.clone()

    _InjectedUniform.phases = phases
    torch.randn_like, torch.randn, hifigan.Uniform = randn_like, randn, _InjectedUniform
    try:
        yield
    finally:
        torch.randn_like, torch.randn, hifigan.Uniform = real
    assert not like_queue and not plain_queue, "the reference drew less noise than expected"


def build(meanflow: bool, full: bool):
    if full:
        model = S3Token2Wav(meanflow=meanflow).eval()
    else:
        from tiny_checkpoint import build_s3gen
        model = build_s3gen(meanflow, SEED)
    ranges = {f"mel2wav.{k}": v for k, v in hift_ranges(model.mel2wav).items()}
    manifest = seed_module(model, SEED, skip=("tokenizer._mel_filters", "tokenizer.window"), ranges=ranges)
    return model, manifest


def case(out_dir: Path, name: str, meanflow: bool, full: bool, config: dict):
    model, manifest = build(meanflow, full)
    reference = torch.from_numpy(speech(2.0 if not full else 10.0, SR))
    ref = model.embed_ref(reference, SR)
    rng = np.random.default_rng(7)
    count = 100 if full else 12
    tokens = torch.from_numpy(rng.integers(0, 6561, count)).long()
    total = 2 * (ref["prompt_token"].shape[1] + count)
    generated = 2 * count
    flow_z = torch.from_numpy(rng.standard_normal((1, 80, total)).astype(np.float32))
    noised = torch.from_numpy(rng.standard_normal((1, 80, generated)).astype(np.float32))
    harmonics = model.mel2wav.nb_harmonics + 1
    phases = torch.from_numpy(rng.uniform(-np.pi, np.pi, (1, harmonics, 1)).astype(np.float32))
    sine = torch.from_numpy(rng.standard_normal((1, harmonics, generated * 480)).astype(np.float32))
    with injected([flow_z, sine], [noised] if meanflow else [], phases):
        wav, _ = model.inference(tokens, ref_dict=ref)
    z = flow_z.clone()
    if meanflow:
        z[..., total - generated:] = noised
    assert torch.isfinite(wav).all()
    print(f"  {name}: {count} tokens, prompt {ref['prompt_token'].shape[1]} tokens, "
          f"wav {wav.shape[1]} samples, std {float(wav.std()):.3f}")
    write_fixture(out_dir, name, "s3gen_pipeline", dict(config, meanflow=meanflow, full=full), manifest,
                  inputs={"reference": reference, "tokens": tokens.int()},
                  outputs={"prompt_token": ref["prompt_token"].int(), "prompt_feat": ref["prompt_feat"],
                           "embedding": ref["embedding"], "wav": wav},
                  noise={"flow_z": z, "phases": phases, "sine": sine})


def generate(out_dir: Path, full: bool):
    if full:
        case(out_dir, "s3gen_pipeline_full_meanflow", True, True, {})
        case(out_dir, "s3gen_pipeline_full_cfg", False, True, {})
        return
    from tiny_checkpoint import s3gen_rust_config
    for meanflow in (True, False):
        case(out_dir, f"s3gen_pipeline_{'meanflow' if meanflow else 'cfg'}", meanflow, False,
             {"s3gen": s3gen_rust_config(meanflow)})
