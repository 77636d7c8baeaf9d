"""VoiceEncoder: seeded weights, real speech in, per-partial and speaker embeddings out."""

import numpy as np
import torch

from chatterbox.models.voice_encoder import VoiceEncoder
from chatterbox.models.voice_encoder.melspec import melspectrogram
from chatterbox.models.voice_encoder.config import VoiceEncConfig
import librosa

from common import noise, seed_module, speech, write_fixture


def case(out_dir, name, wav16: np.ndarray, seed: int):
    model = VoiceEncoder().eval()
    weights = seed_module(model, seed)
    partials = []
    hook = model.register_forward_hook(lambda _m, _i, out: partials.append(out.detach().clone()))
    embedding = model.embeds_from_wavs([wav16], sample_rate=16000)
    hook.remove()
    embedding = torch.from_numpy(embedding).mean(axis=0, keepdim=True)
    trimmed = librosa.effects.trim(wav16, top_db=20)[0]
    mel = melspectrogram(trimmed, VoiceEncConfig()).T.astype(np.float32)
    write_fixture(out_dir, f"voice_encoder_{name}", "voice_encoder", {}, weights,
                  inputs={"wav16": wav16},
                  outputs={"mel": mel, "partial_embeds": torch.cat(partials), "embedding": embedding})


def generate(out_dir, full: bool):
    if full:
        case(out_dir, "speech_10s", speech(10.0, 16000), seed=21)
        case(out_dir, "speech_15s", speech(15.0, 16000, voice="en-gb"), seed=22)
        return
    case(out_dir, "speech_3s", speech(3.0, 16000), seed=21)
    case(out_dir, "noise_short", noise(0.8, 16000, seed=3), seed=23)
