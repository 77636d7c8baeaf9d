"""The reference's whole `generate()` (tts_turbo.py) on the full-size seeded checkpoint, timed
per stage, to set beside `cargo bench --bench generate` (benches/generate.rs): same files, same
text, same number of speech tokens, default sampling, the built-in voice, the Perth watermark.

    PY=~/.cache/chatterbox-parity/venv/bin/python
    $PY tools/parity/full_checkpoint.py
    $PY tools/parity/bench_generate.py [checkpoint dir] [tokens] [rounds]
"""

import functools
import resource
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from chatterbox.tts_turbo import ChatterboxTurboTTS  # noqa: E402

from full_checkpoint import DEFAULT_OUT  # noqa: E402

TEXT = "Hello there, this is a serverless worker speaking with a borrowed voice."


def timed(stages: dict, name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        stages[name] = time.perf_counter() - started
        return out
    return wrapper


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    directory = Path(args[0]) if args else DEFAULT_OUT
    tokens = int(args[1]) if len(args) > 1 else 150
    rounds = int(args[2]) if len(args) > 2 else 3

    started = time.perf_counter()
    tts = ChatterboxTurboTTS.from_local(directory, "cpu")
    load_s = time.perf_counter() - started
    builtin = tts.conds
    started = time.perf_counter()
    tts.prepare_conditionals(str(directory / "reference.wav"))
    prepare_s = time.perf_counter() - started
    tts.conds = builtin
    print(f"load {load_s:.2f} s (watermark on), prepare_conditionals {prepare_s:.2f} s, "
          f"{torch.get_num_threads()} threads")

    stages = {}
    generated = {}
    real_t3 = functools.partial(tts.t3.inference_turbo, max_gen_len=tokens - 1)

    def t3(*args, **kwargs):
        out = real_t3(*args, **kwargs)
        generated["count"] = int((out < 6561).sum())
        return out

    tts.t3.inference_turbo = timed(stages, "t3", t3)
    tts.s3gen.inference = timed(stages, "s3gen", tts.s3gen.inference)
    tts.watermarker.apply_watermark = timed(stages, "watermark", tts.watermarker.apply_watermark)
    for seed in range(rounds):
        torch.manual_seed(seed)
        with torch.inference_mode():
            wav = tts.generate(TEXT)
        audio_s = wav.shape[-1] / tts.sr
        total = sum(stages.values())
        n = generated["count"]
        print(f"round {seed}: {n} tokens, {audio_s:.2f} s of audio in {total:.2f} s (RTF {total / audio_s:.3f}): "
              f"T3 {stages['t3']:.2f} s ({n / stages['t3']:.1f} tokens/s), S3Gen {stages['s3gen']:.2f} s, "
              f"watermark {stages['watermark']:.2f} s")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB")


if __name__ == "__main__":
    main()
