"""The reference's T3 generation speed on the full-size parity weights, to set beside
`cargo bench --bench t3` (same fixture, same weights, prompt and text, each variant's default
sampling). Prints the prefill time and tokens per second.

    PY=~/.cache/chatterbox-parity/venv/bin/python
    $PY tools/parity/bench_t3.py [tokens]        # after generate.py --full --only t3
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases.t3 import build  # noqa: E402
from chatterbox.models.t3.modules.cond_enc import T3Cond  # noqa: E402

FULL = Path(os.environ.get("PARITY_CACHE", Path.home() / ".cache" / "chatterbox-parity")) / "full"
BACKBONES = {"english": "Llama_520M", "multilingual": "Llama_520M", "turbo": "GPT2_medium"}
SEEDS = {"english": 61, "multilingual": 62, "turbo": 63}


def main():
    tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    torch.set_num_threads(os.cpu_count() or 1)
    for variant in ("english", "turbo"):
        path = FULL / f"t3_{variant}_full.safetensors"
        with safe_open(str(path), "pt") as f:
            config = json.loads(f.metadata()["config"])
            inputs = {k.removeprefix("input."): f.get_tensor(k) for k in f.keys() if k.startswith("input.")}
        hp, t3, _ = build(variant, BACKBONES[variant], SEEDS[variant])
        cond = T3Cond(speaker_emb=inputs["speaker_emb"], cond_prompt_speech_tokens=inputs["prompt_tokens"][None],
                      emotion_adv=config["emotion_adv"] * torch.ones(1, 1, 1))
        text = inputs["text_tokens"][None]
        calls = []
        pre = t3.tfmr.register_forward_pre_hook(lambda *_: calls.append(time.perf_counter()))
        post = t3.tfmr.register_forward_hook(lambda *_: calls.append(time.perf_counter()))
        torch.manual_seed(1234)
        started = time.perf_counter()
        with torch.inference_mode():
            if variant == "turbo":
                out = t3.inference_turbo(cond, text, max_gen_len=tokens - 1)
            else:
                out = t3.inference(t3_cond=cond, text_tokens=text.repeat(2, 1), max_new_tokens=tokens,
                                   cfg_weight=config["cfg_weight"], temperature=0.8, top_p=1.0, min_p=0.05,
                                   repetition_penalty=1.2)  # tts.py's defaults
        total = time.perf_counter() - started
        pre.remove()
        post.remove()
        prefill = calls[1] - calls[0]
        n = out.shape[-1]
        print(f"{variant}: prefill {prefill:.3f} s; {n} tokens in {total:.2f} s = {n / total:.2f} tokens/s overall, "
              f"{n / (total - prefill):.2f} tokens/s after the prefill")


if __name__ == "__main__":
    main()
