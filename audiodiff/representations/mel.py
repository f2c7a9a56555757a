"""`Mel`: the network denoises a normalised log-mel spectrogram (its `MelSpec`), decoded by the run's vocoder."""
from __future__ import annotations

import math

import torch

from ..config import group_file
from ..mel import MelSpec
from .base import Representation, RepresentationError
from .waveform import _mel_network

# the mel contracts of configs/mel/ by sample rate: the contract `mel: auto` picks (and the recipes' contracts)
MEL_CONTRACTS = {8000: "fsdd", 16000: "notes16k_80", 22050: "ljspeech"}


class Mel(Representation):
    """Normalised log-mel `(B, 1, n_mels, frames)` of mono audio (:class:`audiodiff.mel.MelSpec`, computed on the
    audio's device), turned back into audio by a vocoder whose mel contract is the same.

    Args:
        mel: the mel contract (its `sample_rate` is the model's).
        vocoder: a vocoder (`vocoder(mel (B, n_mels, frames)) -> (B, 1, T)`, with `.mel` equal to `mel`), or None
            until :meth:`with_vocoder` attaches one (training needs none; decoding does).
    """

    name = "mel"
    precomputable = True
    item_key = "mel"
    settings_keys = ("mel",)
    unit = "mel frames"
    wants_vocoder = True

    def __init__(self, mel: MelSpec, vocoder=None):
        if not isinstance(mel, MelSpec):
            raise RepresentationError("a mel model needs its MelSpec (mel.json in the checkpoint)")
        super().__init__(mel.sample_rate, 1)
        self.mel = mel
        self.vocoder = None
        if vocoder is not None:
            self.with_vocoder(vocoder)

    def with_vocoder(self, vocoder) -> "Mel":
        """Attach `vocoder` after checking that its mel contract is this model's (the fields that differ are named)."""
        check = getattr(vocoder, "mel", None)
        if check is None:
            raise RepresentationError(f"vocoder {type(vocoder).__name__} has no MelSpec (.mel)")
        self.mel.check_compatible(check, "the mel model's and the vocoder's mel contracts")
        self.vocoder = vocoder
        return self

    # ------------------------------------------------------------------ lengths
    @property
    def hop(self) -> int:
        return self.mel.hop_length

    def frames(self, samples: int) -> int:
        return self.mel.frames(samples)

    def min_samples(self, length: int) -> int:
        mel = self.mel
        if not mel.center:
            return mel.n_fft + (length - 1) * mel.hop_length
        low = mel.n_fft // 2 + 1 if mel.pad_mode == "reflect" else 1
        return max(low, (length - 1) * mel.hop_length)

    @property
    def pad_value(self) -> float:
        return float(self.mel.normalize(torch.tensor(math.log(self.mel.log_floor))))

    # ------------------------------------------------------------------ model space
    def shape(self, n: int, length: int) -> tuple[int, ...]:
        return (n, 1, self.mel.n_mels, length)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mel(audio.mean(1)).unsqueeze(1)

    def encode_items(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mel(audio)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        if self.vocoder is None:
            raise RepresentationError("this mel representation has no vocoder to decode with; attach one "
                                      "(with_vocoder, or the run's `vocoder` setting)")
        return self.vocoder(x[:, 0].float())

    def target(self, batch: dict) -> torch.Tensor:
        if self.item_key in batch:  # precomputed (MelDataset)
            x0 = batch[self.item_key]
            return x0 if x0.dim() == 4 else x0.unsqueeze(1)
        return self.mel(batch["audio"][:, 0]).unsqueeze(1)  # computed here, on the batch's device

    def model_mask(self, mask: torch.Tensor, length: int) -> torch.Tensor:
        hop = self.mel.hop_length
        pad = length * hop - mask.shape[-1]
        mask = torch.nn.functional.pad(mask, (0, max(0, pad)), value=0)[..., :length * hop]
        return mask.reshape(*mask.shape[:-1], length, hop).amin(-1).unsqueeze(-2)  # (B, 1, 1, frames)

    def spectrogram(self, x: torch.Tensor):
        return x

    def shortest_decodable(self, length: int, device=None) -> int:
        if self.vocoder is None:
            return length
        for frames in range(length, length + self.mel.n_fft // self.mel.hop_length + 3):
            try:
                self.vocoder(torch.zeros(1, self.mel.n_mels, frames, device=device))
            except (RuntimeError, ValueError):
                continue
            return frames
        return length

    # ------------------------------------------------------------------ the network and the run
    def network_kwargs(self) -> dict:
        return {"mel_bands": int(self.mel.n_mels)}

    @property
    def contract(self) -> MelSpec:
        return self.mel

    def data_settings(self) -> dict:
        return {**super().data_settings(), "mel": self.mel.to_dict()}

    def describe(self) -> str:
        name = next((v for k, v in MEL_CONTRACTS.items() if _same(self.mel, v)), "custom")
        return f"mel (mel contract {name}: {self.mel.n_mels} bands, hop {self.mel.hop_length}, {self.sample_rate} Hz)"

    @classmethod
    def from_settings(cls, data: dict) -> "Mel":
        if not isinstance(data.get("mel"), dict):
            raise RepresentationError(f"data.representation=mel needs its mel contract data.mel (a mapping of MelSpec "
                                      f"fields, e.g. +mel@data.mel=fsdd); got {data.get('mel')!r}")
        mel = MelSpec(**data["mel"])
        sr = int(data.get("sample_rate", mel.sample_rate))
        if mel.sample_rate != sr:
            raise RepresentationError(f"data.mel.sample_rate ({mel.sample_rate}) must equal data.sample_rate ({sr})")
        return cls(mel)

    @classmethod
    def from_meta(cls, meta: dict, contract=None) -> "Mel":
        return cls(contract)

    # ------------------------------------------------------------------ chosen from the data (`auto`)
    @classmethod
    def takes(cls, model: dict) -> bool:
        return _mel_network(model)

    @classmethod
    def choose_rate(cls, top_rate: int, cap: int) -> int:
        rate = min(int(top_rate), int(cap))
        below = [r for r in sorted(MEL_CONTRACTS) if r <= rate]
        return below[-1] if below else min(MEL_CONTRACTS)

    @classmethod
    def plan(cls, data: dict) -> list[str]:
        if data.get("mel") != "auto":
            return []
        sr = data["sample_rate"]
        if sr not in MEL_CONTRACTS:
            raise RepresentationError(f"data.mel=auto has no mel contract for data.sample_rate={sr}; allowed rates: "
                                      f"{sorted(MEL_CONTRACTS)} (or give a contract: +mel@data.mel=<name of "
                                      "configs/mel/>)")
        data["mel"] = group_file("mel", MEL_CONTRACTS[sr])
        return [f"mel contract: {MEL_CONTRACTS[sr]} (configs/mel/{MEL_CONTRACTS[sr]}.yaml, {data['mel']['n_mels']} "
                f"bands, hop {data['mel']['hop_length']})"]


def _same(mel: MelSpec, name: str) -> bool:
    try:
        ref = group_file("mel", name)
    except Exception:  # a config folder without that contract
        return False
    return all(getattr(mel, k) == v for k, v in ref.items())
