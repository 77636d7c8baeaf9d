"""Writes the tiny random checkpoints committed under tests/fixtures/checkpoints/tiny: the real
Hugging Face file names and state_dict keys (ResembleAI/chatterbox-turbo and
ResembleAI/chatterbox), reduced sizes, seeded weights stored in float16, and a conds.pt made by
the reference's own prepare_conditionals on real speech. The reductions the code cannot infer
from the weights are recorded in chatterbox-worker.json, which the worker reads next to them.

    python tools/parity/tiny_checkpoint.py [turbo|english|multilingual]   # -> tests/fixtures/checkpoints/tiny

They exist so the whole pipeline (text -> WAV, voice conversion) runs in CI and from the CLI
without downloads. They produce noise-like audio: parity is checked elsewhere."""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import chatterbox.models.s3gen.transformer.upsample_encoder as upsample_encoder  # noqa: E402
from chatterbox.models.s3gen.configs import CFM_PARAMS  # noqa: E402
from chatterbox.models.s3gen.decoder import ConditionalDecoder  # noqa: E402
from chatterbox.models.s3gen.f0_predictor import ConvRNNF0Predictor  # noqa: E402
from chatterbox.models.s3gen.flow import CausalMaskedDiffWithXvec  # noqa: E402
from chatterbox.models.s3gen.flow_matching import CausalConditionalCFM  # noqa: E402
from chatterbox.models.s3gen.hifigan import HiFTGenerator  # noqa: E402
from chatterbox.models.s3gen.s3gen import S3Token2Wav  # noqa: E402
from chatterbox.models.s3gen.utils.mel import mel_spectrogram  # noqa: E402
from chatterbox.models.s3gen.xvector import CAMPPlus  # noqa: E402
from chatterbox.models.s3tokenizer import S3Tokenizer  # noqa: E402
from chatterbox.models.voice_encoder import VoiceEncoder  # noqa: E402
from chatterbox.models.voice_encoder.config import VoiceEncConfig  # noqa: E402
from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS  # noqa: E402
from chatterbox.mtl_tts import ChatterboxMultilingualTTS  # noqa: E402
from chatterbox.tts import ChatterboxTTS  # noqa: E402
from chatterbox.tts_turbo import ChatterboxTurboTTS  # noqa: E402
from s3tokenizer.model_v2 import ModelConfig, S3TokenizerV2  # noqa: E402

from cases import t3 as t3_case  # noqa: E402
from common import seed_module, speech  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "checkpoints" / "tiny"
TOKENIZERS = ROOT / "tests" / "fixtures" / "tokenizers"

LLAMA_CONFIGS["tiny_llama_32"] = dict(t3_case.TINY_LLAMA, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                       head_dim=8)
# 14 layers of 16 heads, as the multilingual alignment guard reads heads of layers 9, 12, 13.
LLAMA_CONFIGS["tiny_llama_14x64"] = dict(t3_case.TINY_LLAMA, hidden_size=64, intermediate_size=128, head_dim=4)
LLAMA_CONFIGS["tiny_gpt2_16"] = dict(t3_case.TINY_GPT2, n_embd=16, hidden_size=16, n_layer=2, n_head=2)

WIDTH = 64
TOKENIZER = dict(n_mels=128, n_audio_state=128, n_audio_head=2, n_audio_layer=1)
CAMPPLUS = dict(embedding_size=192, growth_rate=8, bn_size=2, init_channels=32)
ENCODER = dict(input_size=WIDTH, output_size=WIDTH, attention_heads=2, linear_units=128, num_blocks=1,
               num_up_blocks=1)
HIFT = dict(base_channels=16, f0_channels=16)
TURBO_SEED = 0x7E57
ENGLISH_SEED = 0xE1
MULTILINGUAL_SEED = 0x3717


def estimator_config(meanflow: bool) -> dict:
    return {"in_channels": 320, "out_channels": 80, "channels": 32, "attention_head_dim": 16,
            "n_blocks": 1, "num_mid_blocks": 1, "num_heads": 2, "meanflow": meanflow}


def reduced_tokenizer() -> S3Tokenizer:
    """chatterbox's S3Tokenizer passes no config to S3TokenizerV2, so the reduced one is built
    with the parent's default swapped for the call."""
    original = S3TokenizerV2.__init__
    S3TokenizerV2.__init__ = lambda self, name, config=None: original(self, name, ModelConfig(**TOKENIZER))
    try:
        return S3Tokenizer("speech_tokenizer_v2_25hz")
    finally:
        S3TokenizerV2.__init__ = original


def build_s3gen(meanflow: bool, seed: int) -> S3Token2Wav:
    """An S3Token2Wav whose parts are reduced but keep their attribute names, so state_dict()
    has the real key layout."""
    model = S3Token2Wav.__new__(S3Token2Wav)
    torch.nn.Module.__init__(model)
    model.tokenizer = reduced_tokenizer()
    model.mel_extractor = mel_spectrogram
    model.speaker_encoder = CAMPPlus(memory_efficient=False, **CAMPPLUS)
    model.meanflow = meanflow
    # The reference hard-codes 512 channels in these two layers.
    originals = upsample_encoder.PreLookaheadLayer, upsample_encoder.Upsample1D
    upsample_encoder.PreLookaheadLayer = lambda **kw: originals[0](**dict(kw, channels=WIDTH))
    upsample_encoder.Upsample1D = lambda **kw: originals[1](**dict(kw, channels=WIDTH, out_channels=WIDTH))
    try:
        encoder = upsample_encoder.UpsampleConformerEncoder(
            output_size=WIDTH, attention_heads=ENCODER["attention_heads"],
            linear_units=ENCODER["linear_units"], num_blocks=ENCODER["num_blocks"], dropout_rate=0.0,
            positional_dropout_rate=0.0, attention_dropout_rate=0.0, normalize_before=True,
            input_layer="linear", pos_enc_layer_type="rel_pos_espnet", selfattention_layer_type="rel_selfattn",
            input_size=WIDTH, use_cnn_module=False, macaron_style=False)
    finally:
        upsample_encoder.PreLookaheadLayer, upsample_encoder.Upsample1D = originals
    encoder.up_encoders = encoder.up_encoders[:ENCODER["num_up_blocks"]]
    est = estimator_config(meanflow)
    estimator = ConditionalDecoder(
        in_channels=est["in_channels"], out_channels=est["out_channels"], causal=True,
        channels=[est["channels"]], dropout=0.0, attention_head_dim=est["attention_head_dim"],
        n_blocks=est["n_blocks"], num_mid_blocks=est["num_mid_blocks"], num_heads=est["num_heads"],
        act_fn="gelu", meanflow=meanflow)
    decoder = CausalConditionalCFM(spk_emb_dim=80, cfm_params=CFM_PARAMS, estimator=estimator)
    model.flow = CausalMaskedDiffWithXvec(input_size=WIDTH, encoder=encoder, decoder=decoder)
    model.mel2wav = HiFTGenerator(
        sampling_rate=24000, base_channels=HIFT["base_channels"], upsample_rates=[8, 5, 3],
        upsample_kernel_sizes=[16, 11, 7], source_resblock_kernel_sizes=[7, 7, 11],
        source_resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        f0_predictor=ConvRNNF0Predictor(cond_channels=HIFT["f0_channels"]))
    n_trim = 24000 // 50
    trim_fade = torch.zeros(2 * n_trim)
    trim_fade[n_trim:] = (torch.cos(torch.linspace(torch.pi, 0, n_trim)) + 1) / 2
    model.register_buffer("trim_fade", trim_fade, persistent=False)
    model.resamplers = {}
    model.estimator_dtype = "fp32"
    model.eval()
    seed_module(model, seed, skip=("tokenizer._mel_filters", "tokenizer.window"))
    return model


def s3gen_rust_config(meanflow: bool) -> dict:
    est = estimator_config(meanflow)
    return {
        "tokenizer": {k: TOKENIZER[k] for k in ("n_mels", "n_audio_state", "n_audio_head", "n_audio_layer")},
        "speaker_encoder": CAMPPLUS,
        "flow": {"input_size": WIDTH, "output_size": 80, "spk_embed_dim": 192, "vocab_size": 6561,
                 "token_mel_ratio": 2, "encoder": ENCODER, "decoder": est},
        "hift": hift_rust_config(),
        "n_cfm_timesteps": 2 if meanflow else 10,
    }


def hift_rust_config() -> dict:
    """HiFTConfig (src/model/s3gen/hifigan.rs) for the reduced vocoder."""
    return {"in_channels": 80, "base_channels": HIFT["base_channels"], "nb_harmonics": 8, "sampling_rate": 24000,
            "nsf_alpha": 0.1, "nsf_sigma": 0.003, "nsf_voiced_threshold": 10.0, "upsample_rates": [8, 5, 3],
            "upsample_kernel_sizes": [16, 11, 7], "istft_n_fft": 16, "istft_hop_len": 4,
            "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
            "source_resblock_kernel_sizes": [7, 7, 11], "source_resblock_dilation_sizes": [[1, 3, 5]] * 3,
            "lrelu_slope": 0.1, "audio_limit": 0.99, "f0_predictor_channels": HIFT["f0_channels"]}


def ve_config() -> VoiceEncConfig:
    hp = VoiceEncConfig()
    hp.ve_hidden_size = 32
    return hp


def ve_rust_config(hp: VoiceEncConfig) -> dict:
    return {k: getattr(hp, k) for k in ("num_mels", "sample_rate", "speaker_embed_size", "ve_hidden_size",
                                        "n_fft", "hop_size", "win_size", "fmin", "fmax", "ve_partial_frames",
                                        "ve_final_relu")}


def save(module: torch.nn.Module, path: Path, skip=()):
    """safetensors, or a torch state_dict pickle for the multilingual files named `.pt`."""
    state = {k: v.detach().to(torch.float16 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in module.state_dict().items() if k not in skip}
    if path.suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    print(f"  {path.relative_to(ROOT)}: {path.stat().st_size / 1e6:.2f} MB")


def as_stored(module: torch.nn.Module):
    """The module with its weights rounded to float16 and back, as the worker will read them, so
    conds.pt is what these weights compute."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return module


def write(out: Path, variant: str, backbone: str, seed: int, tts_class, reference_seconds: float):
    out.mkdir(parents=True, exist_ok=True)
    hp, t3, _ = t3_case.build(variant, backbone, seed)
    ve_hp = ve_config()
    ve = VoiceEncoder(ve_hp).eval()
    seed_module(ve, seed + 1)
    meanflow = variant == "turbo"
    s3gen = build_s3gen(meanflow, seed + 2)
    for module in (t3, ve, s3gen):
        as_stored(module)
    names = {"turbo": ("t3_turbo_v1.safetensors", "s3gen_meanflow.safetensors", "ve.safetensors"),
             "english": ("t3_cfg.safetensors", "s3gen.safetensors", "ve.safetensors"),
             "multilingual": ("t3_mtl23ls_v2.safetensors", "s3gen.pt", "ve.pt")}[variant]
    save(t3, out / names[0])
    save(s3gen, out / names[1], skip=("tokenizer._mel_filters", "tokenizer.window"))
    save(ve, out / names[2])
    if variant == "english":
        shutil.copy(TOKENIZERS / "en" / "tokenizer.json", out / "tokenizer.json")
    elif variant == "multilingual":
        shutil.copy(TOKENIZERS / "mtl" / "mtl_tokenizer.json", out / "grapheme_mtl_merged_expanded_v1.json")
        shutil.copy(TOKENIZERS / "mtl" / "Cangjie5_TC.json", out / "Cangjie5_TC.json")
    else:
        for name in ("vocab.json", "merges.txt", "added_tokens.json", "tokenizer_config.json"):
            shutil.copy(TOKENIZERS / "turbo" / name, out / name)
    tokenizer = None
    tts = tts_class(t3, s3gen, ve, tokenizer, "cpu")
    wav_path = out.parent / f".reference-{variant}.wav"
    import soundfile
    soundfile.write(str(wav_path), speech(reference_seconds, 24000), 24000)
    try:
        tts.prepare_conditionals(str(wav_path), exaggeration=0.5)
    finally:
        wav_path.unlink()
    tts.conds.save(out / "conds.pt")
    print(f"  {(out / 'conds.pt').relative_to(ROOT)}: {(out / 'conds.pt').stat().st_size / 1e6:.2f} MB")
    config = {"t3": t3_case.rust_config(hp), "s3gen": s3gen_rust_config(meanflow), "ve": ve_rust_config(ve_hp)}
    (out / "chatterbox-worker.json").write_text(json.dumps(config, indent=1) + "\n")


def main():
    only = sys.argv[1:]
    checkpoints = {
        # (directory, variant, backbone, seed, class)
        "turbo": ("chatterbox-turbo", "turbo", "tiny_gpt2_16", TURBO_SEED, ChatterboxTurboTTS),
        "english": ("chatterbox", "english", "tiny_llama_32", ENGLISH_SEED, ChatterboxTTS),
        "multilingual": ("chatterbox-multilingual", "multilingual", "tiny_llama_14x64", MULTILINGUAL_SEED,
                         ChatterboxMultilingualTTS),
    }
    torch.manual_seed(0)
    with torch.no_grad():
        for name, (directory, variant, backbone, seed, tts_class) in checkpoints.items():
            if not only or name in only:
                write(OUT / directory, variant, backbone, seed, tts_class, 6.0)


if __name__ == "__main__":
    main()
