"""The reference's Perth speed on 10 s of 24 kHz speech (the committed 1 s clip of
tests/fixtures/parity/perth_real_speech_1s.safetensors repeated), as tests/parity/perth.rs's
`perth_speed` times the port:

    python tools/parity/bench_perth.py [threads]
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from perth.perth_net.perth_net_implicit.perth_watermarker import PerthImplicitWatermarker

ROOT = Path(__file__).resolve().parents[2]


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    clip = load_file(str(ROOT / "tests/fixtures/parity/perth_real_speech_1s.safetensors"))["input.wav"]
    wav = np.tile(clip, 10)
    watermarker = PerthImplicitWatermarker()
    watermarker.apply_watermark(wav, sample_rate=24000)
    for _ in range(5):
        start = time.perf_counter()
        out = watermarker.apply_watermark(wav, sample_rate=24000)
        apply = time.perf_counter() - start
        start = time.perf_counter()
        confidence = watermarker.get_watermark(out, 24000, round=False)
        print(f"apply {apply:.3f} s, detect {time.perf_counter() - start:.3f} s (confidence {float(confidence):.3f})")


if __name__ == "__main__":
    main()
