"""The mel spectrograms each trainer needs, computed once at preparation time.

- F5-TTS: upstream's own MelSpec (vocos variant: 24 kHz, 100 bins, n_fft 1024, hop 256, window 1024,
  magnitude, log of clamp(1e-5)), so the trainer sees exactly what upstream inference produces.
- StyleTTS2: the recipe of the LibriTTS pretrain: the clip padded with 5000 zero samples at each end, then
  80 bins, n_fft 2048, window 1200, hop 300, log(1e-5 + mel) normalised with mean -4 and std 4.
  torchaudio's default sample_rate of 16000 for the filter bank is kept on purpose: upstream builds it
  that way for its 24 kHz audio, and the pretrain learned those filters. The StyleTTS2 trainer pads the
  waveform the same way, so mel frame i starts at padded sample 300 * i.
"""
from __future__ import annotations

import functools

import torch

F5_MELS, F5_HOP, F5_RATE = 100, 256, 24_000
# f5-tts' MelSpec arguments: the prepared mels and the model's own front end (trainers.f5_model) use these.
F5_MEL_SPEC = {"n_fft": 1024, "hop_length": F5_HOP, "win_length": 1024, "n_mel_channels": F5_MELS,
               "target_sample_rate": F5_RATE, "mel_spec_type": "vocos"}
STYLETTS2_MELS, STYLETTS2_HOP, STYLETTS2_PAD = 80, 300, 5000


@functools.lru_cache(maxsize=4)
def _f5_module(device: str) -> torch.nn.Module:
    from patches import f5_core

    f5_core.install()
    from f5_tts.model.modules import MelSpec

    return MelSpec(**F5_MEL_SPEC).to(device)


@functools.lru_cache(maxsize=4)
def _styletts2_module(device: str) -> torch.nn.Module:
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(n_mels=STYLETTS2_MELS, n_fft=2048, win_length=1200,
                                                hop_length=STYLETTS2_HOP).to(device)


def f5_mel(wave: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """[n_mels=100, frames] float32 on the CPU."""
    with torch.no_grad():
        mel = _f5_module(device)(wave.to(device).unsqueeze(0))
    return mel.squeeze(0).float().cpu()


def styletts2_mel(wave: torch.Tensor, device: str = "cpu", pad: bool = True) -> torch.Tensor:
    """[n_mels=80, frames] float32 on the CPU, of the padded clip (training) or the clip as it is (a
    reference for the style encoders, as upstream's inference), normalised as the pretrain expects."""
    with torch.no_grad():
        padded = torch.nn.functional.pad(wave.to(device), (STYLETTS2_PAD, STYLETTS2_PAD) if pad else (0, 0))
        mel = _styletts2_module(device)(padded)
        mel = (torch.log(1e-5 + mel) - (-4)) / 4
    return mel.float().cpu()


MELS = {"f5": f5_mel, "styletts2": styletts2_mel}
