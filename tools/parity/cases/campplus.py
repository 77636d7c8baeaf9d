"""CAMPPlus speaker encoder (chatterbox/models/s3gen/xvector.py) with its Kaldi fbank front-end:
`inference` on 16 kHz audio, as S3Gen.embed_ref calls it."""

from pathlib import Path

import numpy as np
import torch
from chatterbox.models.s3gen.xvector import CAMPPlus, extract_feature

from common import noise, seed_module, speech, write_fixture

SR = 16000
SEED = 0xCA3


def _unit_variance_ranges(model: torch.nn.Module) -> dict:
    """Conv weights uniform in ±sqrt(3/fan_in) (variance 1/fan_in). The harness default
    (±1/sqrt(fan_in)) shrinks activations about 6x per conv+ReLU, so after 50 layers the
    embedding is the final BatchNorm's constant and barely depends on the input."""
    ranges = {}
    for name, tensor in model.state_dict().items():
        if tensor.dim() > 1:
            bound = float(np.sqrt(3.0 / np.prod(tensor.shape[1:])))
            ranges[name] = (-bound, bound)
    return ranges


def _build() -> tuple[CAMPPlus, dict]:
    model = CAMPPlus(memory_efficient=False).eval()
    manifest = seed_module(model, SEED, ranges=_unit_variance_ranges(model))
    return model, manifest


def _case(out_dir: Path, case: str, model: CAMPPlus, manifest: dict, wav: np.ndarray):
    audio = torch.from_numpy(wav)
    features, _, _ = extract_feature([audio])
    # torchaudio's f32 rounding moves near-silent bands by up to ~5e-4 in the log; the same
    # reference run in float64 shows whether the port itself is exact.
    features_f64, _, _ = extract_feature([audio.double()])
    embedding = model.inference([audio])
    assert torch.isfinite(embedding).all(), f"{case}: non-finite embedding"
    write_fixture(out_dir, case, "campplus", {"sample_rate": SR}, manifest,
                  inputs={"wav": audio},
                  outputs={"fbank": features[0], "fbank_float64": features_f64[0].float(),
                           "embedding": embedding})
    return embedding[0]


def generate(out_dir: Path, full: bool):
    model, manifest = _build()
    if full:
        _case(out_dir, "campplus_speech_10s", model, manifest, speech(10.0, SR))
        return
    speech_embedding = _case(out_dir, "campplus_speech_3s", model, manifest, speech(3.0, SR))
    noise_embedding = _case(out_dir, "campplus_noise_1p5s", model, manifest, noise(1.5, SR, seed=3))
    # Seeded weights must leave the embedding input-dependent, or the test proves nothing.
    distance = float((speech_embedding - noise_embedding).norm() / speech_embedding.norm())
    print(f"  relative distance between the speech and noise embeddings: {distance:.2f}")
    assert distance > 0.1, "embeddings barely depend on the input; revisit the weight ranges"
