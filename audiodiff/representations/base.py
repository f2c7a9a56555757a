"""What every representation provides: audio in, model space out, and back; lengths; what the run stores.

A representation is what the denoiser sees (Karras et al. 2022's `x0`): the waveform itself, a normalised log-mel
spectrogram decoded by its vocoder, later the latents of an autoencoder (the encoders of EDM2's
`training/encoders.py`, Karras et al. 2024, play this role). Data, statistics, training, fine-tuning and the
pipeline ask the run's representation object; none of them branches on its name. A new representation is a
subclass registered in :data:`audiodiff.representations.REPRESENTATIONS` (CONTRIBUTING.md, "How to add").
"""
from __future__ import annotations

from typing import ClassVar

import torch

from ..errors import UsageError


class RepresentationError(UsageError):
    """A setting, request or input a representation cannot take; the message names it and the allowed values."""


class Representation:
    """Audio `(B, C, T)` at `sample_rate` <-> model space `(B, ...)` with a time axis last of `hop` samples a step.

    Subclasses set :attr:`name` (the registry key a run stores as `representation`) and implement
    :meth:`shape`, :meth:`encode`, :meth:`decode` and :meth:`from_settings`; the rest has defaults.
    """

    name: ClassVar[str] = ""
    # a dataset may compute every file's encoding once (data.precompute_mel) and hand them over under `item_key`
    precomputable: ClassVar[bool] = False
    item_key: ClassVar[str] = "audio"
    settings_keys: ClassVar[tuple] = ()  # data-section keys of its own (Mel: `mel`, its contract)
    unit: ClassVar[str] = "samples"  # what a model step is, in messages
    wants_vocoder: ClassVar[bool] = False  # decoding needs a vocoder (attached with `with_vocoder`)

    def __init__(self, sample_rate: int, channels: int = 1):
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
            raise RepresentationError(f"data.sample_rate={sample_rate!r} is not allowed; allowed: a positive integer")
        self.sample_rate, self.channels = int(sample_rate), int(channels)

    # ------------------------------------------------------------------ lengths
    @property
    def hop(self) -> int:
        """Audio samples per model step along the time axis."""
        return 1

    def length(self, seconds: float) -> int:
        """Model steps for `seconds` of audio (at least 1)."""
        return max(1, round(seconds * self.sample_rate / self.hop))

    def frames(self, samples: int) -> int:
        """Model steps of an encoding of `samples` audio samples."""
        return int(samples)

    def min_samples(self, length: int) -> int:
        """The shortest audio whose encoding is at least `length` model steps long."""
        return int(length)

    @property
    def pad_value(self) -> float:
        """Silence in model space (what a short clip is padded with)."""
        return 0.0

    # ------------------------------------------------------------------ model space
    def shape(self, n: int, length: int) -> tuple[int, ...]:
        """The model-space shape of `n` items `length` steps long."""
        raise NotImplementedError

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio `(B, C, T)` on any device -> model space `(B, ...)` on the same device."""
        raise NotImplementedError

    def encode_items(self, audio: torch.Tensor) -> torch.Tensor:
        """Mono audio `(B, T)` -> `(B, ..., frames)` as a dataset stores it (the encoding without the batch layout)."""
        return self.encode(audio.unsqueeze(1))[:, 0]

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model space `(B, ...)` -> audio `(B, C, T)` float32 (not clipped)."""
        raise NotImplementedError

    def target(self, batch: dict) -> torch.Tensor:
        """The diffusion target `x0` of a collated training batch: precomputed items, or the batch's audio encoded."""
        if self.item_key in batch and self.item_key != "audio":
            x = batch[self.item_key]
            return x if x.dim() == len(self.shape(1, 1)) else x.unsqueeze(1)
        return self.encode(batch["audio"])

    def with_vocoder(self, vocoder) -> "Representation":
        """Attach the decoder a representation that :attr:`wants_vocoder` decodes with; others take none."""
        return self

    def model_mask(self, mask: torch.Tensor, length: int) -> torch.Tensor:
        """A keep-mask over audio samples `(B, C, T)` as a mask over model space (a step is kept when all its
        samples are), broadcastable to `shape(B, length)`."""
        return mask

    def spectrogram(self, x: torch.Tensor):
        """The spectrogram the model made, for plots (`Generated.mel`), or None when the audio's own is drawn."""
        return None

    def shortest_decodable(self, length: int, device=None) -> int:
        """The first length from `length` on whose decoding runs (a vocoder may need more steps than the network)."""
        return length

    # ------------------------------------------------------------------ the network and the run
    def network_kwargs(self) -> dict:
        """What a network needs to take this representation (e.g. `mel_bands`), for `models.from_data`."""
        return {}

    @property
    def contract(self):
        """The contract a run stores beside its weights (`mel.json` for a mel model), or None."""
        return None

    def meta(self) -> dict:
        """The run meta's fields for this representation (read back by :meth:`from_meta`)."""
        return {"representation": self.name, "channels": self.channels}

    def data_settings(self) -> dict:
        """The data-section settings that make this representation again (a fine-tune adopts them)."""
        return {"representation": self.name, "sample_rate": self.sample_rate}

    def describe(self) -> str:
        """One line for a run's summary."""
        return f"{self.name} at {self.sample_rate} Hz"

    # ------------------------------------------------------------------ made from settings
    @classmethod
    def from_settings(cls, data: dict) -> "Representation":
        """The representation a data section describes (its `sample_rate`, and what the subclass reads)."""
        raise NotImplementedError

    @classmethod
    def from_meta(cls, meta: dict, contract=None) -> "Representation":
        """The representation a run stored (its meta and, for a mel model, its mel contract)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ chosen from the data (`auto`)
    @classmethod
    def takes(cls, model: dict) -> bool:
        """True when a network config is made for this representation (`representation: auto` picks it)."""
        return False

    @classmethod
    def choose_rate(cls, top_rate: int, cap: int) -> int:
        """The model rate for files mostly at `top_rate`, at most `cap` (CPU minutes grow with the rate)."""
        return min(int(top_rate), int(cap))

    @classmethod
    def plan(cls, data: dict) -> list[str]:
        """Resolve this representation's own `auto` settings in `data` (in place); one note per choice."""
        return []

