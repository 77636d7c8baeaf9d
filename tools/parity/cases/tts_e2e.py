"""Turbo text to speech end to end (tts_turbo.py `generate`): the reference loads a checkpoint
directory with its own `from_local`, uses the checkpoint's built-in voice (conds.pt), decodes
greedily (top_k = 1) for a fixed number of speech tokens, and vocodes with injected noise. The
fixture records the speech tokens handed to S3Gen and the waveform before the watermark.

Committed: the tiny Turbo checkpoint of tests/fixtures/checkpoints/tiny (its reduced sizes are
rebuilt here from the same seeds, since the reference's `from_local` hard-codes full sizes).
`--full`: a full-size seeded checkpoint in the real layout, written once to
<out>/checkpoint/chatterbox-turbo by `full_checkpoint` and also used by bench_generate.py."""

import functools
from pathlib import Path

import numpy as np
import torch
from chatterbox.models.s3gen import S3GEN_SR
from chatterbox.tts_turbo import ChatterboxTurboTTS, Conditionals
from transformers import AutoTokenizer

from cases.s3gen_pipeline import injected, phases_for
from common import speech, write_fixture

TEXT = "Hello there, this is a serverless worker speaking with a borrowed voice."
ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "tests" / "fixtures" / "checkpoints" / "tiny" / "chatterbox-turbo"


def tiny_turbo() -> ChatterboxTurboTTS:
    import tiny_checkpoint as tc
    from cases import t3 as t3_case
    from chatterbox.models.voice_encoder import VoiceEncoder

    _, t3, _ = t3_case.build("turbo", "tiny_gpt2_16", tc.TURBO_SEED)
    ve = VoiceEncoder(tc.ve_config()).eval()
    tc.seed_module(ve, tc.TURBO_SEED + 1)
    s3gen = tc.build_s3gen(True, tc.TURBO_SEED + 2)
    for module in (t3, ve, s3gen):
        tc.as_stored(module)
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    conds = Conditionals.load(TINY / "conds.pt", map_location="cpu")
    return ChatterboxTurboTTS(t3, s3gen, ve, tokenizer, "cpu", conds=conds)


def run(tts: ChatterboxTurboTTS, tokens: int, seed: int):
    """generate() with top_k = 1 and `tokens` speech tokens (max_gen_len = tokens - 1 after the
    prefill's token); returns the S3Gen tokens, the waveform before the watermark and the noise."""
    tts.t3.inference_turbo = functools.partial(tts.t3.inference_turbo, max_gen_len=tokens - 1)
    recorded = {}
    real_inference = tts.s3gen.inference
    rng = np.random.default_rng(seed)

    def inference(speech_tokens, ref_dict, **kwargs):
        phases = phases_for(tts.s3gen, rng)
        with injected(rng, phases) as noise:
            out = real_inference(speech_tokens=speech_tokens, ref_dict=ref_dict, **kwargs)
        recorded.update(noise, tokens=speech_tokens.clone(), phases=phases)
        return out

    tts.s3gen.inference = inference
    tts.watermarker.apply_watermark = lambda wav, sample_rate: recorded.setdefault("wav", wav.copy())
    tts.generate(TEXT, top_k=1)
    generated = recorded["tokens"].shape[-1] - 3
    assert generated == tokens, f"the reference stopped after {generated} tokens; pick another seed"
    return recorded


def case(out_dir: Path, name: str, tts: ChatterboxTurboTTS, checkpoint: str, tokens: int,
         reference_seconds: float = 0.0):
    """With `reference_seconds`, S3Gen's half of the built-in voice is replaced by `embed_ref` of
    that much 24 kHz speech (T3's half stays, so the case needs no 16 kHz resampling, which the
    port does differently), for a prompt whose mel and tokens disagree."""
    inputs = {}
    if reference_seconds:
        reference = torch.from_numpy(speech(reference_seconds, S3GEN_SR))
        tts.conds.gen = tts.s3gen.embed_ref(reference, S3GEN_SR)
        inputs["reference"] = reference
        gen = tts.conds.gen
        print(f"  {name}: prompt {gen['prompt_token'].shape[1]} tokens, {gen['prompt_feat'].shape[1]} mel frames")
    recorded = run(tts, tokens, seed=0xE2E)
    wav = torch.from_numpy(recorded["wav"])
    print(f"  {name}: {tokens} greedy tokens, wav {wav.shape[0]} samples, std {float(wav.std()):.3f}")
    write_fixture(out_dir, name, "tts_e2e", {"checkpoint": checkpoint, "text": TEXT, "tokens": tokens}, {},
                  inputs=inputs, outputs={"speech_tokens": recorded["tokens"].int(), "wav": wav},
                  noise={k: recorded[k] for k in ("flow_z", "phases", "sine")})


def generate(out_dir: Path, full: bool):
    if full:
        from full_checkpoint import turbo_checkpoint
        directory = turbo_checkpoint(out_dir / "checkpoint" / "chatterbox-turbo")
        tts = ChatterboxTurboTTS.from_local(directory, "cpu")
        case(out_dir, "tts_e2e_turbo_full", tts, str(directory), tokens=150)
        return
    case(out_dir, "tts_e2e_turbo_tiny", tiny_turbo(), str(TINY.relative_to(ROOT)), tokens=12)
    # 6.23 s: 149 520 samples at 24 kHz, 311 mel frames against 156 tokens (cut to 155).
    case(out_dir, "tts_e2e_turbo_tiny_odd_clip", tiny_turbo(), str(TINY.relative_to(ROOT)), tokens=12,
         reference_seconds=6.23)
