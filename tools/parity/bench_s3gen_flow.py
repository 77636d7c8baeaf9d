"""The reference's S3Gen flow-matching speed at full size (T = 700 frames: a 250-token prompt and
100 generated tokens), on the same seeded weights and inputs as the full-size `s3gen_flow`
fixtures: one estimator call (the CFG batch of two for the original model, one row for meanflow)
and the whole solve (10 guided steps / 2 meanflow steps). Best and median of the rounds.

    PY=~/.cache/chatterbox-parity/venv/bin/python
    $PY tools/parity/bench_s3gen_flow.py [rounds] [cfg|meanflow]   # after generate.py --full --only s3gen_flow
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

from cases.s3gen_flow import build, config, injected_noise  # noqa: E402

FULL = Path(os.environ.get("PARITY_CACHE", Path.home() / ".cache" / "chatterbox-parity")) / "full"


def timed(rounds: int, run) -> str:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return f"best {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s"


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = sys.argv[2:]
    torch.set_num_threads(os.cpu_count() or 1)
    for name, meanflow in (("cfg", False), ("meanflow", True)):
        if only and name not in only:
            continue
        with safe_open(str(FULL / f"s3gen_flow_{name}_full.safetensors"), "pt") as f:
            data = {k.removeprefix("input."): f.get_tensor(k) for k in f.keys() if k.startswith("input.")}
            z = f.get_tensor("noise.z")
        cfm, _ = build(config(meanflow, full=True))
        mask = torch.ones(1, 1, z.shape[-1])
        rows = 1 if meanflow else 2
        repeat = lambda t: t.repeat(rows, *([1] * (t.dim() - 1)))  # noqa: E731
        unconditioned = lambda t: torch.cat([t, torch.zeros_like(t)]) if rows == 2 else t  # noqa: E731
        call_inputs = dict(x=repeat(z), mask=repeat(mask), mu=unconditioned(data["mu"]), t=torch.zeros(rows),
                           spks=unconditioned(data["spks"]), cond=unconditioned(data["cond"]),
                           r=torch.full((rows,), 0.5) if meanflow else None)
        steps = 2 if meanflow else 10
        with torch.inference_mode(), injected_noise(z):
            call = timed(rounds, lambda: cfm.estimator(**call_inputs))
            solve = timed(rounds, lambda: cfm(data["mu"], mask, n_timesteps=steps, spks=data["spks"],
                                              cond=data["cond"], meanflow=meanflow))
        print(f"{name}: {torch.get_num_threads()} threads, estimator call ({rows} rows) {call}; "
              f"{steps}-step solve {solve}")


if __name__ == "__main__":
    main()
