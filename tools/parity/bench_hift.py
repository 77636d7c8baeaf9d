"""The reference HiFT vocoder's speed on the full-size parity fixture (4 s of audio), to set beside
the port's `hift_speed` test (same seeded weights, mel, source and SineGen noise). Prints the median
(and range) of `inference` and of `decode(mel, s)` over the rounds.

    PY=~/.cache/chatterbox-parity/venv/bin/python
    $PY tools/parity/bench_hift.py [rounds]        # after generate.py --full --only hift
    THREADS=1 $PY tools/parity/bench_hift.py       # torch on one thread (default: all cores)
"""

import os
import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases.hift import build, injected_randomness  # noqa: E402

FULL = Path(os.environ.get("PARITY_CACHE", Path.home() / ".cache" / "chatterbox-parity")) / "full"


def _timed(rounds: int, run) -> str:
    """Median wall time (range), and the process CPU time per round: the machine is shared, and
    CPU time shows the work done when other jobs stretch the wall clock."""
    run()
    times = []
    cpu_started = time.process_time()
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_started) / rounds
    return (f"{statistics.median(times) * 1e3:.0f} ms ({min(times) * 1e3:.0f}-{max(times) * 1e3:.0f}), "
            f"CPU {cpu * 1e3:.0f} ms")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count() or 1)))
    with safe_open(str(FULL / "hift_full_200f.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model, _, _ = build(512)
    mel, source = tensors["input.mel"], tensors["output.source"]
    phases, noise = tensors["noise.phases"], tensors["noise.sine"]
    with torch.inference_mode():
        def inference():
            with injected_randomness(phases, noise):
                model.inference(mel)

        print(f"hift_full_200f ({torch.get_num_threads()} threads): inference", _timed(rounds, inference))
        print(f"hift_full_200f ({torch.get_num_threads()} threads): decode",
              _timed(rounds, lambda: model.decode(mel, source)))


if __name__ == "__main__":
    main()
