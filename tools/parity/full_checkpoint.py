"""A full-size ResembleAI/chatterbox-turbo checkpoint with seeded random weights: the real file
names, state_dict keys and sizes (T3 on GPT-2 medium, S3Gen with the mean-flow estimator, the
voice encoder), float32, the real Turbo tokenizer files, and a conds.pt made by the reference's
own prepare_conditionals on 12 s of espeak-ng speech. Real weights cannot be downloaded here;
this stands in for them in the end-to-end parity case and the generate() benchmark.

    $PY tools/parity/full_checkpoint.py   # -> ~/.cache/chatterbox-parity/full/checkpoint/chatterbox-turbo

Written once; delete the directory to rebuild it."""

import os
import shutil
import sys
from pathlib import Path

import soundfile
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from chatterbox.models.voice_encoder import VoiceEncoder  # noqa: E402
from chatterbox.models.voice_encoder.config import VoiceEncConfig  # noqa: E402
from chatterbox.tts_turbo import ChatterboxTurboTTS  # noqa: E402

from cases import s3gen_pipeline, t3 as t3_case  # noqa: E402
from common import seed_module, speech  # noqa: E402

SEED = 0xF011
TOKENIZER_FILES = HERE.parents[1] / "tests" / "fixtures" / "tokenizers" / "turbo"
DEFAULT_OUT = Path(os.environ.get("PARITY_CACHE", Path.home() / ".cache" / "chatterbox-parity")) / "full" \
    / "checkpoint" / "chatterbox-turbo"


def save(module: torch.nn.Module, path: Path):
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(path))
    print(f"  {path}: {path.stat().st_size / 1e6:.0f} MB")


def turbo_checkpoint(out: Path = DEFAULT_OUT) -> Path:
    if (out / "conds.pt").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        _, t3, _ = t3_case.build("turbo", "GPT2_medium", SEED)
        ve = VoiceEncoder(VoiceEncConfig()).eval()
        seed_module(ve, SEED + 1)
        s3gen, _ = s3gen_pipeline.build(meanflow=True, full=True)
        save(t3, out / "t3_turbo_v1.safetensors")
        save(s3gen, out / "s3gen_meanflow.safetensors")
        save(ve, out / "ve.safetensors")
    for name in ("vocab.json", "merges.txt", "added_tokens.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER_FILES / name, out / name)
    tts = ChatterboxTurboTTS.from_local(out, "cpu")
    reference = out / "reference.wav"
    soundfile.write(str(reference), speech(12.0, 24000), 24000)
    tts.prepare_conditionals(str(reference))
    tts.conds.save(out / "conds.pt")
    return out


if __name__ == "__main__":
    print(turbo_checkpoint())
