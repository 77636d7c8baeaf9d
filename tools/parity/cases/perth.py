"""Perth implicit watermarker (resemble-perth 1.0.1, perth/perth_net/perth_net_implicit):
`apply_watermark` and `get_watermark` as chatterbox calls them, with every stage recorded.

Seeded cases (module "perth") build PerthNet with seeded weights: a scaled-down configuration
(8 kHz model rate fed 6 kHz audio, the same 4:3 ratio as 32k:24k, n_fft 512, hop 80, 32
watermark bins, width 64) on speech, and the real configuration on a short noise burst; both
have a gap of digital silence, which the energy mask excludes. Real-weight cases (module
"perth_real") run the checkpoint shipped in the package and store only inputs and outputs (no
weights): a 1 s committed one, and with --full 10 s of speech and of noise with intermediates."""

from pathlib import Path

import librosa
import numpy as np
import torch
from perth.perth_net import PREPACKAGED_MODELS_DIR
from perth.perth_net.perth_net_implicit.config import PerthConfig
from perth.perth_net.perth_net_implicit.model.perth_net import PerthNet
from perth.perth_net.perth_net_implicit.perth_watermarker import PerthImplicitWatermarker
from perth.perth_net.perth_net_implicit.utils import cx_to_magphase

from common import noise, seed_module, speech, write_fixture

SEED = 0x9E27
PERTH = "resemble-perth 1.0.1"
CHECKPOINT = Path(PREPACKAGED_MODELS_DIR) / "implicit" / "perth_net_250000.pth.tar"
CONFIG_FIELDS = ("sample_rate", "n_fft", "hop_size", "window_size", "stft_magnitude_min",
                 "max_wmark_freq", "hidden_size")
COMPUTED_BUFFERS = ("ap.spectrogram.window", "ap.inv_spectrogram.window", "ap.stretch.phase_advance")


def _hp(**overrides) -> PerthConfig:
    hp = PerthConfig(use_wandb=False, batch_size=16, sample_rate=32000, n_fft=2048, hop_size=320,
                     window_size=2048, use_lr_scheduler=False, stft_magnitude_min=1e-9, min_lr=1e-5,
                     max_lr=1e-4, window_fn="hann", max_wmark_freq=2000, hidden_size=256,
                     loss_type="psychoacoustic")
    return hp._replace(**overrides)


def _config(hp: PerthConfig) -> dict:
    config = {field: getattr(hp, field) for field in CONFIG_FIELDS}
    config["max_wmark_freq"] = float(config["max_wmark_freq"])
    return {"hp": config, "perth": PERTH}


def _magspec_float64(hp: PerthConfig, signal: np.ndarray) -> torch.Tensor:
    """`signal_to_magphase`'s magnitudes computed in float64 (the module casts to f32): torch's
    f32 FFT leaves noise ~110 dB below a frame's spectrum, which the log magnifies on deep bins
    (above the original Nyquist, near digital silence); this shows whether the port is exact."""
    window = torch.hann_window(hp.window_size, dtype=torch.float64)
    spec = torch.stft(torch.from_numpy(signal).double(), hp.n_fft, hp.hop_size, hp.window_size, window,
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    return cx_to_magphase(hp, spec)[0].float()


def _run(watermarker: PerthImplicitWatermarker, wav: np.ndarray, sr: int, intermediates: bool) -> dict:
    """apply_watermark and get_watermark, plus the stages of apply_watermark recomputed with the
    same calls (checked equal to its output)."""
    net = watermarker.perth_net
    rate = net.hp.sample_rate
    watermarked = watermarker.apply_watermark(wav, sample_rate=sr)
    assert np.array_equal(watermarked, watermarker.apply_watermark(wav, sample_rate=sr)), "not deterministic"

    wav_model_rate = librosa.resample(wav, orig_sr=sr, target_sr=rate)
    magspec, phase = net.ap.signal_to_magphase(torch.from_numpy(wav_model_rate))
    layers_out = []
    hook = net.encoder.layers.register_forward_hook(lambda _m, _i, out: layers_out.append(out))
    wm_magspec, mask = net.encoder(magspec[None])
    hook.remove()
    watermarked_model_rate = net.ap.magphase_to_signal(wm_magspec[0], phase).numpy()
    again = librosa.resample(watermarked_model_rate, orig_sr=rate, target_sr=sr)
    assert np.array_equal(again, watermarked), "stage recomputation differs from apply_watermark"

    detect_model_rate = librosa.resample(watermarked, orig_sr=sr, target_sr=rate, res_type="polyphase")
    detect_magspec, _ = net.ap.signal_to_magphase(torch.from_numpy(detect_model_rate))
    outputs = {
        "wav_model_rate": wav_model_rate,
        "watermarked_model_rate": watermarked_model_rate,
        "watermarked": watermarked,
        "decoder_watermarked": net.decoder(detect_magspec[None]),
        "confidence_watermarked": np.float32(watermarker.get_watermark(watermarked, sr, round=False)).reshape(1),
        "confidence_clean": np.float32(watermarker.get_watermark(wav, sr, round=False)).reshape(1),
    }
    if intermediates:
        outputs.update({
            "detect_model_rate": detect_model_rate,
            "magspec": magspec,
            "magspec_float64": _magspec_float64(net.hp, wav_model_rate),
            "mask": mask[0, 0],
            "residual": (layers_out[0] * mask)[0],
        })
    snr = 10 * np.log10(np.sum(wav.astype(np.float64) ** 2) / np.sum((wav[:len(watermarked)] - watermarked) ** 2))
    print(f"  SNR of the watermarked signal {snr:.1f} dB, confidence watermarked "
          f"{float(outputs['confidence_watermarked'][0]):.3f} / clean {float(outputs['confidence_clean'][0]):.3f}")
    return outputs


def _seeded_case(out_dir: Path, case: str, hp: PerthConfig, wav: np.ndarray, sr: int):
    net = PerthNet(hp).eval()
    manifest = seed_module(net, SEED, skip=COMPUTED_BUFFERS)
    watermarker = PerthImplicitWatermarker(run_name=None, perth_net=net)
    outputs = _run(watermarker, wav, sr, intermediates=True)
    residual = outputs["residual"]
    share = float(residual.norm() / outputs["magspec"][: residual.shape[0]].norm())
    print(f"  residual / sub-band magnitude: {share:.3f}; mask keeps {int(outputs['mask'].sum())} of "
          f"{outputs['mask'].numel()} frames")
    assert 0.01 < share < 1.0, "the seeded encoder's residual is negligible or swamps the signal"
    write_fixture(out_dir, case, "perth", {**_config(hp), "sample_rate": sr, "intermediates": True}, manifest,
                  inputs={"wav": wav}, outputs=outputs)


def _real_case(out_dir: Path, case: str, wav: np.ndarray, intermediates: bool):
    watermarker = PerthImplicitWatermarker()
    outputs = _run(watermarker, wav, 24000, intermediates)
    config = {**_config(watermarker.perth_net.hp), "sample_rate": 24000, "intermediates": intermediates}
    write_fixture(out_dir, case, "perth_real", config,
                  {"seed": 0, "tensors": []}, inputs={"wav": wav}, outputs=outputs)


def _with_gap(wav: np.ndarray, sr: int, gap: tuple) -> np.ndarray:
    """Digital silence: only frames of exact zeros (below -180 dB) fail the energy mask."""
    wav = wav.copy()
    wav[int(gap[0] * sr):int(gap[1] * sr)] = 0.0
    return wav


def generate(out_dir: Path, full: bool):
    if full:
        _seeded_case(out_dir, "perth_seeded_speech_10s", _hp(), speech(10.0, 24000), 24000)
        _real_case(out_dir, "perth_real_speech_10s", speech(10.0, 24000), intermediates=True)
        _real_case(out_dir, "perth_real_noise_10s", _with_gap(noise(10.0, 24000, seed=29), 24000, (4.0, 5.0)),
                   intermediates=True)
        return
    small = _hp(sample_rate=8000, n_fft=512, hop_size=80, window_size=512, max_wmark_freq=500, hidden_size=64)
    _seeded_case(out_dir, "perth_small_speech_1s", small, _with_gap(speech(1.0, 6000), 6000, (0.4, 0.7)), 6000)
    _seeded_case(out_dir, "perth_noise_0p3s", _hp(), _with_gap(noise(0.3, 24000, seed=29), 24000, (0.08, 0.24)),
                 24000)
    # 1 s is 25 chatterbox tokens (960 samples each), so the length is kept.
    _real_case(out_dir, "perth_real_speech_1s", speech(1.0, 24000), intermediates=False)
