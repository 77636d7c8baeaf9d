"""pyloudnorm's integrated loudness and tts_turbo.py's norm_loudness (−27 LUFS), which Turbo
applies to every reference clip."""

from pathlib import Path

import numpy as np
import pyloudnorm as ln
import torch

from common import noise, speech, write_fixture

SR = 24000


def _case(out_dir: Path, case: str, wav: np.ndarray):
    loudness = ln.Meter(SR).integrated_loudness(wav)
    gain = 10.0 ** ((-27 - loudness) / 20.0)
    normalised = wav * gain if np.isfinite(gain) and gain > 0 else wav
    write_fixture(out_dir, case, "loudness", {"sample_rate": SR}, {"seed": 0, "tensors": []},
                  inputs={"wav": torch.from_numpy(wav)},
                  outputs={"loudness": torch.tensor([loudness], dtype=torch.float64),
                           "normalised": torch.from_numpy(normalised.astype(np.float32))})


def generate(out_dir: Path, full: bool):
    if full:
        return
    _case(out_dir, "loudness_speech_2s", speech(2.0, SR))
    _case(out_dir, "loudness_quiet_noise_1s", noise(1.0, SR, seed=11, amplitude=0.003))
