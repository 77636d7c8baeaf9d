"""T3: seeded weights in the real key layout, the reference's own generation loops driven with
forced tokens (torch.multinomial patched), recording the logits of every step, the alignment
guard's decisions, and a greedy decoding (multinomial patched to argmax).

Tiny configs keep what the code hard-codes: 14 Llama layers and 16 heads, because the
multilingual alignment guard reads heads (12,15), (13,11), (9,2); the speech vocabularies and
special tokens of the real models. `--full` runs Llama-520M and GPT-2 medium."""

import functools
import json
from contextlib import contextmanager

import numpy as np
import torch

import chatterbox.models.t3.modules.cond_enc as cond_enc
from chatterbox.models.t3 import T3
from chatterbox.models.t3.llama_configs import GPT2_MEDIUM_CONFIG, LLAMA_520M_CONFIG_DICT, LLAMA_CONFIGS
from chatterbox.models.t3.modules.cond_enc import T3Cond
from chatterbox.models.t3.modules.perceiver import Perceiver
from chatterbox.models.t3.modules.t3_config import T3Config

from cases.t3_sampler import UNIFORM_STREAM, f32, inverse_cdf_probs
from common import seed_module, uniform, write_fixture

SAMPLING_SEED = 4321

TINY_LLAMA = dict(LLAMA_520M_CONFIG_DICT, hidden_size=128, intermediate_size=256, num_hidden_layers=14,
                  num_attention_heads=16, num_key_value_heads=16, head_dim=8)
TINY_GPT2 = dict(GPT2_MEDIUM_CONFIG, n_embd=64, hidden_size=64, n_layer=2, n_head=4)
LLAMA_CONFIGS["tiny_llama"] = TINY_LLAMA
LLAMA_CONFIGS["tiny_gpt2"] = TINY_GPT2
_ORIGINAL_PERCEIVER = cond_enc.Perceiver


def hparams(variant: str, backbone: str) -> T3Config:
    if variant == "turbo":
        hp = T3Config(text_tokens_dict_size=50276)
        hp.speech_tokens_dict_size = 6563
        hp.input_pos_emb = None
        hp.speech_cond_prompt_len = 375
        hp.use_perceiver_resampler = False
        hp.emotion_adv = False
    else:
        hp = T3Config.multilingual() if variant == "multilingual" else T3Config.english_only()
    hp.llama_config_name = backbone
    return hp


def rust_config(hp: T3Config) -> dict:
    """The same hyper-parameters in the shape of the Rust `T3Config`."""
    cfg = LLAMA_CONFIGS[hp.llama_config_name]
    if cfg.get("model_type") == "gpt2":
        backbone = {"model_type": "gpt2", "n_embd": cfg["n_embd"], "n_layer": cfg["n_layer"], "n_head": cfg["n_head"],
                    "n_positions": cfg["n_positions"], "layer_norm_epsilon": cfg["layer_norm_epsilon"]}
    else:
        rope = cfg["rope_scaling"]
        backbone = {"model_type": "llama", "hidden_size": cfg["hidden_size"],
                    "intermediate_size": cfg["intermediate_size"], "num_hidden_layers": cfg["num_hidden_layers"],
                    "num_attention_heads": cfg["num_attention_heads"],
                    "num_key_value_heads": cfg["num_key_value_heads"], "head_dim": cfg["head_dim"],
                    "rms_norm_eps": cfg["rms_norm_eps"], "rope_theta": cfg["rope_theta"],
                    "rope_scaling": {k: rope[k] for k in ("factor", "low_freq_factor", "high_freq_factor",
                                                         "original_max_position_embeddings")}}
    dim = cfg["hidden_size"]
    return {
        "start_text_token": hp.start_text_token, "stop_text_token": hp.stop_text_token,
        "text_tokens_dict_size": hp.text_tokens_dict_size, "max_text_tokens": hp.max_text_tokens,
        "start_speech_token": hp.start_speech_token, "stop_speech_token": hp.stop_speech_token,
        "speech_tokens_dict_size": hp.speech_tokens_dict_size, "max_speech_tokens": hp.max_speech_tokens,
        "backbone": backbone, "learned_pos_emb": hp.input_pos_emb == "learned",
        "speech_cond_prompt_len": hp.speech_cond_prompt_len, "speaker_embed_size": hp.speaker_embed_size,
        "perceiver": ({"pre_attention_query_token": 32, "pre_attention_query_size": dim, "embedding_dim": dim,
                       "num_attn_heads": 4} if hp.use_perceiver_resampler else None),
        "emotion_adv": hp.emotion_adv,
    }


def build(variant: str, backbone: str, seed: int):
    hp = hparams(variant, backbone)
    dim = LLAMA_CONFIGS[backbone]["hidden_size"]
    # The Perceiver hard-codes 1024 channels; the tiny models need their own width.
    cond_enc.Perceiver = functools.partial(_ORIGINAL_PERCEIVER, pre_attention_query_size=dim, embedding_dim=dim)
    try:
        t3 = T3(hp).eval()
    finally:
        cond_enc.Perceiver = _ORIGINAL_PERCEIVER
    return hp, t3, seed_module(t3, seed)


@contextmanager
def patched_multinomial(choose):
    """torch.multinomial replaced: `choose(step, probs)` names the token."""
    original = torch.multinomial
    step = [0]

    def fake(probs, num_samples=1, **_):
        token = choose(step[0], probs)
        step[0] += 1
        return torch.full((probs.shape[0], 1), int(token), dtype=torch.long)

    torch.multinomial = fake
    try:
        yield
    finally:
        torch.multinomial = original


def run(t3: T3, hp: T3Config, cond: T3Cond, text: torch.Tensor, choose, steps: int, cfg_weight: float,
        turbo: bool, sampling: dict):
    """Runs the reference loop; returns (logits of every forward (steps, rows, V), guard actions,
    tokens). Logits are read at the speech head, the guard's edits at the analyzer's output."""
    logits, actions = [], []
    hook = t3.speech_head.register_forward_hook(lambda _m, _i, out: logits.append(out[:, -1, :].detach().clone()))
    with patched_multinomial(choose):
        if turbo:
            tokens = t3.inference_turbo(cond, text, temperature=sampling["temperature"], top_k=sampling["top_k"],
                                        top_p=sampling["top_p"], repetition_penalty=sampling["repetition_penalty"],
                                        max_gen_len=steps - 1)
        else:
            original_init = None
            if hp.is_multilingual:
                from chatterbox.models.t3.inference import alignment_stream_analyzer as asa
                original_init = asa.AlignmentStreamAnalyzer.step

                def step(self, step_logits, next_token=None):
                    before = step_logits.clone()
                    after = original_init(self, step_logits, next_token=next_token)
                    eos = self.eos_idx
                    if after[0, eos] == 2 ** 15:
                        actions.append(2)
                    elif after[0, eos] == -(2 ** 15) and before[0, eos] != -(2 ** 15):
                        actions.append(1)
                    else:
                        actions.append(0)
                    return after

                asa.AlignmentStreamAnalyzer.step = step
            try:
                tokens = t3.inference(t3_cond=cond, text_tokens=text, max_new_tokens=steps, temperature=sampling["temperature"],
                                      cfg_weight=cfg_weight, repetition_penalty=sampling["repetition_penalty"],
                                      min_p=sampling["min_p"], top_p=sampling["top_p"])
            finally:
                if original_init is not None:
                    asa.AlignmentStreamAnalyzer.step = original_init
    hook.remove()
    return torch.stack(logits), actions, tokens.reshape(-1)


def case(out_dir, name, variant, backbone, seed, text_len, steps, cfg_weight=0.5, emotion=0.5):
    hp, t3, weights = build(variant, backbone, seed)
    turbo = variant == "turbo"
    rng = np.random.default_rng(seed)
    speaker = torch.from_numpy(uniform(seed, "input.speaker_emb", [1, 256], -1.0, 1.0))
    speaker = speaker / speaker.norm()
    prompt = torch.from_numpy(rng.integers(0, 6561, size=hp.speech_cond_prompt_len)).long()
    vocab = hp.text_tokens_dict_size
    body = rng.integers(1, min(vocab, 50000), size=text_len)
    text_ids = body if turbo else np.concatenate([[hp.start_text_token], body, [hp.stop_text_token]])
    text = torch.from_numpy(text_ids).long()[None]
    rows = 1 if turbo else 2
    batch_text = text.repeat(rows, 1)
    forced = rng.integers(0, 6561, size=steps)
    forced[steps // 2 + 1] = forced[steps // 2]  # an immediate repeat, which the guard answers
    # Parameters rounded to f32, as the port holds them, so both sides cut at the same values.
    sampling = ({"temperature": f32(0.8), "top_k": 1000, "top_p": f32(0.95), "repetition_penalty": f32(1.2),
                 "min_p": 0.0} if turbo
                else {"temperature": f32(0.8), "top_k": 0, "top_p": 1.0, "min_p": f32(0.05),
                      "repetition_penalty": f32(2.0 if variant == "multilingual" else 1.2)})

    def cond():
        return T3Cond(speaker_emb=speaker, cond_prompt_speech_tokens=prompt[None],
                      emotion_adv=emotion * torch.ones(1, 1, 1))

    cond_emb = t3.prepare_conditioning(cond())
    logits, actions, _ = run(t3, hp, cond(), batch_text, lambda i, _p: forced[i], steps, cfg_weight, turbo, sampling)
    if rows == 2:
        guided = logits[:, 0] + cfg_weight * (logits[:, 0] - logits[:, 1])
    else:
        guided = logits[:, 0].clone()
    greedy_logits, greedy_actions, greedy = run(t3, hp, cond(), batch_text, lambda _i, p: int(p[0].argmax()), steps,
                                                cfg_weight, turbo, sampling)
    greedy = greedy[greedy != hp.stop_speech_token]
    # Sampled decoding with the port's draw on the uniforms of `Uniforms::from_seed(SAMPLING_SEED)`.
    uniforms = uniform(SAMPLING_SEED, UNIFORM_STREAM, [steps], 0.0, 1.0)
    _, _, sampled = run(t3, hp, cond(), batch_text, lambda i, p: inverse_cdf_probs(p[0], uniforms[i]), steps,
                        cfg_weight, turbo, sampling)
    sampled = sampled[sampled != hp.stop_speech_token]
    config = {"t3": rust_config(hp), "variant": variant, "cfg_weight": cfg_weight, "emotion_adv": emotion,
              "sampling": sampling, "sampling_seed": SAMPLING_SEED}
    write_fixture(out_dir, f"t3_{name}", "t3", config, weights,
                  inputs={"speaker_emb": speaker, "prompt_tokens": prompt, "text_tokens": text[0],
                          "forced_tokens": torch.from_numpy(forced).long()},
                  outputs={"cond_emb": cond_emb, "prefill_logits": logits[0], "guided_logits": guided,
                           "guard_actions": torch.tensor(actions, dtype=torch.long),
                           "greedy_tokens": greedy.long(), "sampled_tokens": sampled.long(),
                           "greedy_guard_actions": torch.tensor(greedy_actions, dtype=torch.long)})


def generate(out_dir, full: bool):
    torch.manual_seed(0)
    if full:
        case(out_dir, "english_full", "english", "Llama_520M", seed=61, text_len=40, steps=24)
        case(out_dir, "multilingual_full", "multilingual", "Llama_520M", seed=62, text_len=40, steps=24, emotion=0.7)
        case(out_dir, "turbo_full", "turbo", "GPT2_medium", seed=63, text_len=30, steps=24)
        return
    case(out_dir, "english_tiny", "english", "tiny_llama", seed=61, text_len=30, steps=20)
    case(out_dir, "multilingual_tiny", "multilingual", "tiny_llama", seed=62, text_len=30, steps=20, emotion=0.7)
    case(out_dir, "multilingual_tiny_nocfg", "multilingual", "tiny_llama", seed=64, text_len=12, steps=20,
         cfg_weight=0.0)
    case(out_dir, "turbo_tiny", "turbo", "tiny_gpt2", seed=63, text_len=20, steps=20)
