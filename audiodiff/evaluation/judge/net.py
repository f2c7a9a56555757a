"""The judge's network and input: a VGG-style log-mel CNN (:class:`JudgeNet`), its mel (:func:`default_mel`), and
clips cropped or padded to its window (:func:`fit_length`)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiodiff.mel import MelSpec

from ...errors import AudiodiffError

__all__ = ["JudgeError", "JudgeNet", "default_mel", "fit_length"]


class JudgeError(AudiodiffError, ValueError):
    """A judge cannot be built, trained, loaded or applied as asked; the message says why."""


def default_mel(sample_rate: int) -> MelSpec:
    """Judge features: ~32 ms windows (power-of-two FFT), 10 ms hop, 64 mel bands from 20 Hz, log power."""
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise JudgeError(f"sample_rate must be a positive integer; got {sample_rate!r}")
    n_fft = 2 ** math.ceil(math.log2(0.032 * sample_rate))
    return MelSpec(sample_rate=sample_rate, n_fft=n_fft, hop_length=max(1, sample_rate // 100), n_mels=64,
                   f_min=20.0, power=2.0, norm_min=math.log(1e-5), norm_max=math.log(1e2))


class JudgeNet(nn.Module):
    """VGG-style log-mel classifier whose penultimate layer serves as an embedding.

    Args:
        n_mels: mel bands of the input `(B, 1, n_mels, frames)`.
        num_classes: K.
        channels: conv widths, one conv3x3-BN-ReLU block each, 2x2 max-pool after all but the last.
        hidden: width D of the feature (penultimate) layer.
        dropout: before the classifier, training only.
    """

    def __init__(self, n_mels: int, num_classes: int, channels: Sequence[int] = (16, 32, 64, 128),
                 hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        if num_classes < 2:
            raise JudgeError(f"a judge needs at least 2 classes; got {num_classes}")
        layers: list[nn.Module] = []
        c_in, freq = 1, n_mels
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
                freq //= 2
            c_in = c
        if freq < 1:
            raise JudgeError(f"n_mels={n_mels} is too small for {len(channels) - 1} poolings")
        self.convs = nn.Sequential(*layers)
        self.hidden = nn.Linear(c_in * freq, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features `(B, hidden)` of `mel (B, 1, n_mels, frames)`."""
        h = self.convs(mel).mean(dim=-1)  # (B, C, F'): mean over time
        return F.relu(self.hidden(h.flatten(1)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Class logits `(B, K)` of `mel (B, 1, n_mels, frames)`."""
        return self.classifier(self.dropout(self.features(mel)))


def fit_length(audio: torch.Tensor, num_samples: int, offset: torch.Tensor | None = None) -> torch.Tensor:
    """Crop or zero-pad `audio (B, 1, T)` to `(B, 1, num_samples)`.

    With `offset=None` the clip is centred (longer: middle cut; shorter: equal padding on both sides).
    `offset (B,)` in [0, 1] places each clip instead: 0 = start of the clip / window, 1 = its end.
    """
    b, _, t = audio.shape
    if offset is None:
        offset = torch.full((b,), 0.5)
    out = audio.new_zeros(b, 1, num_samples)
    for i in range(b):
        o = float(offset[i])
        if t >= num_samples:
            start = int(round(o * (t - num_samples)))
            out[i] = audio[i, :, start:start + num_samples]
        else:
            start = int(round(o * (num_samples - t)))
            out[i, :, start:start + t] = audio[i]
    return out

