"""T3 speech-token sampler: transformers' logits processors in the orders of models/t3/t3.py
(`T3.inference` for English and multilingual, `T3.inference_turbo`), run over a few generation
steps whose history grows with the chosen tokens.

Logits are derived from the seed on both sides (an f32 sum of four seeded uniforms, scaled, then a
few "dominant" ids set to stored values, with exact ties and ids from the history), so the fixture
stores only the dominant ids, the processed logits where finite and the chosen tokens.
`torch.multinomial` is replaced by the inverse CDF that src/model/t3/inference/sampling.rs defines:
p = softmax(processed), c = cumsum(p); the token is the first index with p > 0 and
c >= u * c[-1], else the last index with p > 0, else V (no token)."""

import numpy as np
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from common import uniform, write_fixture

START = 6561
STOP = 6562
ENGLISH_VOCAB = 8194
TURBO_VOCAB = 6563
UNIFORM_STREAM = "t3.sampler"


def f32(value: float) -> float:
    """The parameter as the Rust side holds it (f32), handed to HF as a Python float."""
    return float(np.float32(value))


def chatterbox_chain(p: dict):
    """T3.inference: penalty over the history (start token included) -> /temperature (if != 1)
    -> MinP -> [TopK, our extension, only when asked] -> TopP."""
    penalty = RepetitionPenaltyLogitsProcessor(penalty=f32(p["repetition_penalty"]))
    min_p = MinPLogitsWarper(min_p=f32(p["min_p"]))
    top_p = TopPLogitsWarper(top_p=f32(p["top_p"]))
    top_k = TopKLogitsWarper(p["top_k"]) if p["top_k"] > 0 else None
    temperature = f32(p["temperature"])

    def run(ids, scores):
        scores = penalty(ids, scores)
        if temperature != 1.0:
            scores = scores / temperature
        scores = min_p(ids, scores)
        if top_k is not None:
            scores = top_k(ids, scores)
        return top_p(ids, scores)

    return run


def turbo_chain(p: dict):
    """T3.inference_turbo's LogitsProcessorList, built under the same conditions."""
    processors = LogitsProcessorList()
    if p["temperature"] > 0 and p["temperature"] != 1.0:
        processors.append(TemperatureLogitsWarper(f32(p["temperature"])))
    if p["top_k"] > 0:
        processors.append(TopKLogitsWarper(p["top_k"]))
    if p["top_p"] < 1.0:
        processors.append(TopPLogitsWarper(f32(p["top_p"])))
    if p["repetition_penalty"] != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(f32(p["repetition_penalty"])))
    return processors


def inverse_cdf(processed: torch.Tensor, u: np.float32) -> int:
    return inverse_cdf_probs(torch.softmax(processed[0], dim=-1), u)


def inverse_cdf_probs(probs: torch.Tensor, u: np.float32) -> int:
    """The sampler's draw from a (V,) distribution with uniform u (src/model/t3/inference/sampling.rs)."""
    cdf = torch.cumsum(probs, dim=0)
    target = cdf[-1] * torch.tensor(u, dtype=torch.float32)
    positive = probs > 0
    reached = torch.nonzero(positive & (cdf >= target)).flatten()
    if len(reached):
        return int(reached[0])
    last = torch.nonzero(positive).flatten()
    return int(last[-1]) if len(last) else probs.shape[-1]


def base_logits(seed: int, case: str, step: int, vocab: int, scale: float) -> np.ndarray:
    """Irwin-Hall(4) noise, summed left to right in f32 exactly as the Rust test does."""
    parts = [uniform(seed, f"{case}.logits.{step}.{k}", [vocab], -1.0, 1.0) for k in range(4)]
    return (((parts[0] + parts[1]) + parts[2]) + parts[3]) * np.float32(scale)


def dominant(rng, history: list, vocab: int, top: float, extra=()):
    """Eight boosted ids: two exact ties at the top, two ids from the history (so the penalty
    matters), four more spread below; `extra` appends (id, value) pairs such as -150 logits
    whose probability underflows to exactly 0."""
    free = rng.choice(vocab, size=12, replace=False)
    picked = [i for i in free if i not in history][:6]
    repeated = [history[-1], history[len(history) // 2]]
    ids = [picked[0], picked[1], repeated[0], repeated[1], *picked[2:6]]
    values = [top, top, top - 0.4, top - 1.5, top - 0.9, top - 2.0, top - 3.0, top - 3.0]
    for i, v in extra:
        ids.append(i)
        values.append(v)
    seen = {}
    for i, v in zip(ids, values):
        seen.setdefault(int(i), np.float32(v))
    return np.array(list(seen.keys()), dtype=np.int64), np.array(list(seen.values()), dtype=np.float32)


def case(out_dir, name: str, order: str, vocab: int, params: dict, steps: int, scale: float,
         top: float, prior=(), extra=()):
    seed = sum(name.encode())
    rng = np.random.default_rng(seed)
    turbo = order == "turbo"
    chain = turbo_chain(params) if turbo else chatterbox_chain(params)
    # Turbo penalises [start] at its first step and only generated tokens afterwards.
    history = list(prior) if (turbo and prior) else [START, *prior]
    config = {"order": order, "vocab": vocab, **params, "seed": seed, "scale": scale,
              "steps": steps, "history": [int(i) for i in history], "first_step": len(prior)}
    uniforms = uniform(seed, UNIFORM_STREAM, [steps], 0.0, 1.0)

    width = len(extra) + 8
    dom_ids = np.full((steps, width), -1, dtype=np.int64)
    dom_values = np.zeros((steps, width), dtype=np.float32)
    kept_bits, kept_values, tokens = [], [], []
    for step in range(steps):
        ids, values = dominant(rng, history, vocab, top, extra)
        dom_ids[step, :len(ids)] = ids
        dom_values[step, :len(values)] = values
        row = base_logits(seed, name, step, vocab, scale)
        row[ids] = values
        processed = chain(torch.tensor([history], dtype=torch.long), torch.from_numpy(row)[None])
        finite = processed[0] != -float("inf")
        kept_bits.append(np.packbits(finite.numpy()))
        kept_values.append(processed[0][finite].numpy())
        token = inverse_cdf(processed, uniforms[step])
        tokens.append(token)
        if turbo and len(prior) + step == 0:
            history = [token]
        else:
            history.append(token)
    outputs = {
        "kept_bits": np.stack(kept_bits),
        "kept_values": np.concatenate(kept_values).astype(np.float32),
        "tokens": np.array(tokens, dtype=np.int64),
    }
    kept = [int(np.unpackbits(b)[:vocab].sum()) for b in kept_bits]
    print(f"  {name}: tokens {tokens}, kept {kept}")
    write_fixture(out_dir, f"t3_sampler_{name}", "t3_sampler", config, {"seed": 0, "tensors": []},
                  inputs={"dominant_ids": dom_ids, "dominant_values": dom_values,
                          "uniforms": uniforms},
                  outputs=outputs)


def params(temperature, top_k, top_p, min_p, repetition_penalty):
    return {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
            "repetition_penalty": repetition_penalty}


def generate(out_dir, full: bool):
    steps = 12 if full else 4
    prior = [4218, 311, 4218, 6000, 17]
    # The start token is boosted too: T3.inference penalises it throughout, Turbo only at step 0.
    case(out_dir, "english_default", "chatterbox", ENGLISH_VOCAB, params(0.8, 0, 1.0, 0.05, 1.2),
         steps, 2.5, 7.5, prior=prior, extra=[(START, 6.5)])
    case(out_dir, "multilingual_default", "chatterbox", ENGLISH_VOCAB,
         params(0.8, 0, 1.0, 0.05, 2.0), steps, 2.5, 7.5, prior=prior)
    case(out_dir, "turbo_default", "turbo", TURBO_VOCAB, params(0.8, 1000, 0.95, 0.0, 1.2),
         steps, 2.5, 9.0, extra=[(START, 8.0)])
    case(out_dir, "english_top_p_0p8", "chatterbox", ENGLISH_VOCAB, params(0.8, 0, 0.8, 0.0, 1.2),
         steps, 2.0, 8.0, prior=prior)
    case(out_dir, "english_top_k_extension", "chatterbox", ENGLISH_VOCAB,
         params(0.9, 20, 0.9, 0.02, 1.3), steps, 2.5, 7.0, prior=prior)
    case(out_dir, "turbo_top_k_7_tie_t1", "turbo", TURBO_VOCAB, params(1.0, 7, 1.0, 0.0, 1.3),
         steps, 2.0, 12.0, prior=[12, 6000, 12])
    case(out_dir, "english_plain_zero_probability", "chatterbox", ENGLISH_VOCAB,
         params(1.0, 0, 1.0, 0.0, 1.0), 2, 2.5, 12.0, prior=prior,
         extra=[(100, -150.0), (8000, -150.0), (STOP, -140.0)])
