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
def injected(rng: np.random.Generator, phases: torch.Tensor):
    """Every draw of S3Gen's inference comes from `rng` with the shape the reference asks for, so
    the fixture records the lengths it really uses (a prompt whose mel has more frames than twice
    its tokens makes the generated mel shorter than twice the tokens). torch.randn gives Turbo's
    noised mels, the first torch.randn_like the flow's z, the second SineGen's noise, later ones
    (the source module's unused noise) zeros; SineGen's Uniform returns `phases`. The yielded
    dict holds afterwards `flow_z`, with the noised mels in its last frames as the solver uses
    them, and `sine`."""
    real = torch.randn_like, torch.randn, hifigan.Uniform
    like_draws, plain_draws = [], []

    def normal(shape):
        return torch.from_numpy(rng.standard_normal(tuple(shape)).astype(np.float32))

    def randn_like(like, **_):
        value = normal(like.shape) if len(like_draws) < 2 else torch.zeros_like(like)
        like_draws.append(value)
        return value.clone()

    def randn(*shape, **_):
        value = normal(shape[0] if len(shape) == 1 else shape)
        plain_draws.append(value)
        return value.clone()

    _InjectedUniform.phases = phases
    torch.randn_like, torch.randn, hifigan.Uniform = randn_like, randn, _InjectedUniform
    recorded = {}
    try:
        yield recorded
    finally:
        torch.randn_like, torch.randn, hifigan.Uniform = real
    assert len(like_draws) >= 2 and len(plain_draws) <= 1, "the reference drew other noise than expected"
    z = like_draws[0].clone()
    for noised in plain_draws:
        z[..., z.shape[-1] - noised.shape[-1]:] = noised
    recorded.update(flow_z=z, sine=like_draws[1])


def phases_for(model, rng: np.random.Generator) -> torch.Tensor:
    harmonics = model.mel2wav.nb_harmonics + 1
    return torch.from_numpy(rng.uniform(-np.pi, np.pi, (1, harmonics, 1)).astype(np.float32))


def build(meanflow: bool, full: bool):
    if full:
        model = S3Token2Wav(meanflow=meanflow).eval()
    else:
        from tiny_checkpoint import build_s3gen
        model = build_s3gen(meanflow, SEED)
    ranges = {f"mel2wav.{k}": v for k, v in hift_ranges(model.mel2wav).items()}
    manifest = seed_module(model, SEED, skip=("tokenizer._mel_filters", "tokenizer.window"), ranges=ranges)
    return model, manifest


def case(out_dir: Path, name: str, meanflow: bool, full: bool, config: dict, trim_samples: int = 0):
    """`trim_samples` cut from the reference make its 24 kHz length fall between two tokens."""
    model, manifest = build(meanflow, full)
    reference = speech(2.0 if not full else 10.0, SR)
    reference = torch.from_numpy(reference[:len(reference) - trim_samples])
    ref = model.embed_ref(reference, SR)
    rng = np.random.default_rng(7)
    count = 100 if full else 12
    tokens = torch.from_numpy(rng.integers(0, 6561, count)).long()
    phases = phases_for(model, rng)
    with injected(rng, phases) as noise:
        wav, _ = model.inference(tokens, ref_dict=ref)
    assert torch.isfinite(wav).all()
    print(f"  {name}: {count} tokens, prompt {ref['prompt_token'].shape[1]} tokens and "
          f"{ref['prompt_feat'].shape[1]} mel frames, wav {wav.shape[1]} samples, std {float(wav.std()):.3f}")
    write_fixture(out_dir, name, "s3gen_pipeline", dict(config, meanflow=meanflow, full=full), manifest,
                  inputs={"reference": reference, "tokens": tokens.int()},
                  outputs={"prompt_token": ref["prompt_token"].int(), "prompt_feat": ref["prompt_feat"],
                           "embedding": ref["embedding"], "wav": wav},
                  noise={"flow_z": noise["flow_z"], "phases": phases, "sine": noise["sine"]})


def generate(out_dir: Path, full: bool):
    if full:
        case(out_dir, "s3gen_pipeline_full_meanflow", True, True, {})
        case(out_dir, "s3gen_pipeline_full_cfg", False, True, {})
        return
    from tiny_checkpoint import s3gen_rust_config
    for meanflow in (True, False):
        case(out_dir, f"s3gen_pipeline_{'meanflow' if meanflow else 'cfg'}", meanflow, False,
             {"s3gen": s3gen_rust_config(meanflow)})
        # 47 700 samples: 99 mel frames against 50 tokens, cut to 49, so the generated mel is 23
        # frames for 12 tokens.
        case(out_dir, f"s3gen_pipeline_{'meanflow' if meanflow else 'cfg'}_odd_prompt", meanflow, False,
             {"s3gen": s3gen_rust_config(meanflow)}, trim_samples=300)
