"""Audio front-ends: the S3Gen 80-band mel, the S3Tokenizer 128-band log-mel, the voice
encoder's 40-band mel, librosa's trim, and torchaudio's 24k->16k resampler."""

import numpy as np
import librosa
import torch
import torchaudio

from chatterbox.models.s3gen.utils.mel import mel_spectrogram
from chatterbox.models.s3tokenizer import S3Tokenizer
from chatterbox.models.voice_encoder.config import VoiceEncConfig
from chatterbox.models.voice_encoder.melspec import melspectrogram

from common import noise, speech, write_fixture


def with_silence(audio: np.ndarray, sr: int, lead: float, tail: float) -> np.ndarray:
    quiet = 1e-4 * np.random.default_rng(5).standard_normal(int((lead + tail) * sr)).astype(np.float32)
    cut = int(lead * sr)
    return np.concatenate([quiet[:cut], audio, quiet[cut:]]).astype(np.float32)


def case(out_dir, name, wav24: np.ndarray, tokenizer: S3Tokenizer):
    # The 16 kHz signal every 16 kHz front-end sees, as S3Gen.embed_ref makes it.
    wav16 = torchaudio.transforms.Resample(24000, 16000)(torch.from_numpy(wav24)[None])[0].numpy()
    _, trim_interval = librosa.effects.trim(wav16, top_db=20)
    outputs = {
        "wav16": wav16,
        "s3gen_mel": mel_spectrogram(torch.from_numpy(wav24))[0],
        "tokenizer_log_mel": tokenizer.log_mel_spectrogram(torch.from_numpy(wav16)),
        "voice_encoder_mel": melspectrogram(wav16, VoiceEncConfig()).astype(np.float32),
        "trim_interval": np.asarray(trim_interval, dtype=np.int64),
    }
    write_fixture(out_dir, f"frontends_{name}", "frontends", {}, {"seed": 0, "tensors": []},
                  inputs={"wav24": wav24}, outputs=outputs)


def generate(out_dir, full: bool):
    tokenizer = S3Tokenizer().eval()
    if full:
        case(out_dir, "speech_10s", speech(10.0, 24000), tokenizer)
        case(out_dir, "noise_10s", noise(10.0, 24000, seed=11), tokenizer)
        return
    case(out_dir, "speech_padded", with_silence(speech(3.0, 24000), 24000, 0.6, 0.9), tokenizer)
    case(out_dir, "noise", noise(1.02, 24000, seed=11), tokenizer)
