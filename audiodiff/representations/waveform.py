"""`Waveform`: the network denoises the audio samples themselves (the 1-D U-Net's representation)."""
from __future__ import annotations

import torch

from .base import Representation, RepresentationError


class Waveform(Representation):
    """Audio as it is: `(B, channels, T)` at `sample_rate`, one model step per sample.

    Args:
        sample_rate: the model's rate (files are resampled to it).
        channels: channels the model makes; audio with more is mixed to mono for a mono model.
    """

    name = "waveform"

    def shape(self, n: int, length: int) -> tuple[int, ...]:
        return (n, self.channels, length)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[1] != self.channels:
            if self.channels == 1:
                return audio.mean(1, keepdim=True)
            raise RepresentationError(f"the model makes {self.channels}-channel audio; got {audio.shape[1]} channels")
        return audio

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def target(self, batch: dict) -> torch.Tensor:
        return batch["audio"]  # the dataset's audio is already the model's (rate, channels, loudness)

    @classmethod
    def from_settings(cls, data: dict) -> "Waveform":
        return cls(int(data["sample_rate"]), int(data.get("channels", 1)))

    @classmethod
    def from_meta(cls, meta: dict, contract=None) -> "Waveform":
        return cls(int(meta["sample_rate"]), int(meta.get("channels", 1)))

    @classmethod
    def takes(cls, model: dict) -> bool:
        return not _mel_network(model)


def _mel_network(model: dict) -> bool:
    """A network config made for mel spectrograms: `unet2d`, or `unet1d` with `mel_bands` set."""
    return model.get("name") == "unet2d" or model.get("mel_bands") not in (None, 0)
