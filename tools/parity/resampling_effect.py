"""Measures what replacing librosa's soxr_hq 24k->16k (the reference's T3-prompt and voice-encoder
path) with torchaudio's sinc resampler (its S3Gen path, which the port uses everywhere) changes
in the front-end outputs. Prints the figures docs/parity.md records.

    python tools/parity/resampling_effect.py
"""

import sys
from pathlib import Path

import librosa
import numpy as np
import torch
import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chatterbox.models.s3tokenizer import S3Tokenizer  # noqa: E402
from chatterbox.models.voice_encoder.config import VoiceEncConfig  # noqa: E402
from chatterbox.models.voice_encoder.melspec import melspectrogram  # noqa: E402

from common import speech  # noqa: E402


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :n], b[..., :n]
    return np.linalg.norm(a - b) / np.linalg.norm(b), np.abs(a - b).max()


def main():
    tokenizer = S3Tokenizer().eval()
    for voice in ("en-us", "en-gb"):
        wav24 = speech(10.0, 24000, voice=voice)
        soxr = librosa.resample(wav24, orig_sr=24000, target_sr=16000, res_type="soxr_hq")
        for label, width, rolloff in (("torchaudio default", 6, 0.99), ("soxr_like", 64, 0.95)):
            sinc = torchaudio.functional.resample(torch.from_numpy(wav24)[None], 24000, 16000,
                                                  lowpass_filter_width=width, rolloff=rolloff)[0].numpy()
            print(f"{voice}, {label} vs soxr_hq:")
            r, m = rel(sinc, soxr)
            print(f"  16 kHz signal: rel L2 {r:.2e}, max abs {m:.2e}")
            r, m = rel(tokenizer.log_mel_spectrogram(torch.from_numpy(sinc)).numpy(),
                       tokenizer.log_mel_spectrogram(torch.from_numpy(soxr)).numpy())
            print(f"  tokenizer log mel: rel L2 {r:.2e}, max abs {m:.2e}")
            hp = VoiceEncConfig()
            r, m = rel(melspectrogram(sinc, hp), melspectrogram(soxr, hp))
            print(f"  voice-encoder mel: rel L2 {r:.2e}, max abs {m:.2e}")


if __name__ == "__main__":
    main()
