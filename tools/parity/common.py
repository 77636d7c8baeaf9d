"""Shared pieces of the parity harness: seeded weights both sides can derive, test audio, and the
fixture writer. The format is documented in tools/parity/README.md; the Rust side reads it in
tests/parity/fixture.rs and src/model/random_weights.rs."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

REFERENCE = "chatterbox-tts 0.1.7, s3tokenizer 0.3.0, torch 2.6.0, torchaudio 2.6.0, librosa 0.11.0"

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def fnv1a64(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def uniform(seed: int, name: str, shape, low: float, high: float) -> np.ndarray:
    """Counter-based splitmix64: element i of tensor `name` depends only on (seed, name, i)."""
    count = int(np.prod(shape)) if len(shape) else 1
    base = np.uint64((seed ^ fnv1a64(name)) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = base + np.arange(1, count + 1, dtype=np.uint64) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return (low + (high - low) * u).astype(np.float32).reshape(shape)


def default_range(name: str, shape):
    """Ranges that keep random deep stacks numerically alive: norms near 1, small biases,
    positive variances, weights at 1/sqrt(fan_in)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5, 1.5
    if leaf == "running_mean":
        return -0.1, 0.1
    if len(shape) == 1:
        if leaf == "bias" or leaf.startswith("bias_"):
            return -0.1, 0.1
        return 0.8, 1.2
    fan_in = int(np.prod(shape[1:]))
    bound = 1.0 / np.sqrt(max(fan_in, 1))
    return -bound, bound


def seed_module(module: torch.nn.Module, seed: int, skip=(), ranges=None):
    """Overwrites every float parameter and buffer of `module` (state_dict order and names) with
    seeded values and returns the manifest the fixture records. `skip` names keys left as built
    (deterministic buffers such as mel filters); `ranges` overrides (low, high) per key."""
    ranges = ranges or {}
    manifest = []
    state = module.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if name in skip or not tensor.is_floating_point():
                continue
            shape = list(tensor.shape)
            low, high = ranges.get(name) or default_range(name, shape)
            values = uniform(seed, name, shape, low, high)
            tensor.copy_(torch.from_numpy(values).to(tensor.dtype))
            manifest.append([name, shape, float(low), float(high)])
    return {"seed": seed, "tensors": manifest}


def _contiguous(tensors: dict, prefix: str) -> dict:
    out = {}
    for key, value in tensors.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        out[f"{prefix}.{key}"] = value.detach().cpu().contiguous()
    return out


def write_fixture(directory: Path, case: str, module: str, config: dict, weights: dict,
                  inputs: dict, outputs: dict, noise=None, literal_weights=None):
    """One safetensors file per case: `input.*`, `output.*`, `noise.*` and `weight.*` tensors,
    with the case, module, reference versions, config and weight manifest as JSON metadata."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    tensors.update(_contiguous(inputs, "input"))
    tensors.update(_contiguous(outputs, "output"))
    tensors.update(_contiguous(noise or {}, "noise"))
    tensors.update(_contiguous(literal_weights or {}, "weight"))
    metadata = {
        "case": case,
        "module": module,
        "reference": REFERENCE,
        "config": json.dumps(config),
        "weights": json.dumps(weights),
    }
    path = directory / f"{case}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    print(f"  wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return path


SPEECH_TEXT = (
    "The quick brown fox jumps over the lazy dog. A serverless worker turns text into speech, "
    "and every reference clip becomes a voice. Numbers like 1,234 and dates like May 5th are "
    "read aloud. She sells sea shells by the sea shore, while the wind carries the sound away."
)


def speech(seconds: float, sr: int, voice: str = "en-us") -> np.ndarray:
    """Real speech from espeak-ng (repeated to length), resampled to `sr` with librosa's soxr_hq
    as librosa.load does. Cached under the harness cache directory."""
    import librosa
    import soundfile

    cache = Path(os.environ.get("PARITY_CACHE", Path.home() / ".cache" / "chatterbox-parity"))
    wav_path = cache / f"espeak-{voice}.wav"
    if not wav_path.exists():
        if shutil.which("espeak-ng") is None:
            raise SystemExit("espeak-ng is needed for real-speech inputs: apt-get install espeak-ng")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "speech.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(out), SPEECH_TEXT], check=True)
            shutil.move(out, wav_path)
    audio, native_sr = soundfile.read(str(wav_path), dtype="float32")
    audio = librosa.resample(audio, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    need = int(round(seconds * sr))
    reps = int(np.ceil(need / len(audio)))
    return np.tile(audio, reps)[:need].astype(np.float32)


def noise(seconds: float, sr: int, seed: int, amplitude: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(round(seconds * sr)))).clip(-1, 1).astype(np.float32)
