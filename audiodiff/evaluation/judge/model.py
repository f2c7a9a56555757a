"""`Judge`: a trained judge (network + mel contract + label vocabulary + clip length) that scores audio, and its
folder: `judge.safetensors` + `judge.json` + `meta.json` (:mod:`audiodiff.runs.meta`, `kind: judge`)."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from audiodiff.mel import MelSpec

from ...conditions import Vocabulary
from ...runs.checkpoint import kind_at
from ...runs.meta import check_kind, write_meta
from .net import JudgeError, JudgeNet, fit_length

__all__ = ["Judge", "WEIGHTS_NAME", "CONFIG_NAME", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

WEIGHTS_NAME = "judge.safetensors"
CONFIG_NAME = "judge.json"
FORMAT_VERSION = 1

class Judge:
    """A trained judge: network + mel contract + label vocabulary + clip length.

    Args:
        net: :class:`JudgeNet`. mel: its :class:`MelSpec` (fixes the sample rate).
        labels: class vocabulary; index k of the output is `labels[k]`.
        label_field: the manifest field the labels came from. seconds: clip length the net sees.
        net_config: the kwargs that rebuild `net` (`n_mels`, `num_classes`, `channels`, `hidden`, `dropout`).
        temperature: logits are divided by it (calibration; 1 = raw network).
    """

    def __init__(self, net: JudgeNet, mel: MelSpec, labels: Sequence, label_field: str, seconds: float,
                 net_config: dict[str, Any], temperature: float = 1.0):
        self.net = net.eval()
        self.mel = mel
        self.labels = list(labels)
        self.label_field = label_field
        self.seconds = float(seconds)
        self.net_config = dict(net_config)
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise JudgeError(f"temperature must be a positive finite number; got {temperature!r}")
        self.temperature = float(temperature)
        self.vocab = Vocabulary.ordered(self.labels, name=label_field)  # index k of the output is labels[k]

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def num_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def feature_dim(self) -> int:
        return self.net.hidden.out_features

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device) -> "Judge":
        self.net.to(device)
        return self

    def label_index(self, values: Sequence) -> list[int]:
        """Class indices of label values; an unknown value raises naming the vocabulary."""
        for v in values:
            if v not in self.vocab:
                raise JudgeError(f"label {v!r} is not in the judge's vocabulary for field "
                                 f"{self.label_field!r}: {self.labels}")
        return [self.vocab.encode(v) for v in values]

    # ------------------------------------------------------------------ inference
    def mel_input(self, audio: torch.Tensor) -> torch.Tensor:
        """Network input `(B, 1, n_mels, frames)` from `audio (B, 1, num_samples)`."""
        return self.mel(audio.to(self.device)).unsqueeze(1)

    def _prepare(self, audio: torch.Tensor, sample_rate: int | None) -> torch.Tensor:
        if not isinstance(audio, torch.Tensor) or audio.dim() != 3 or audio.shape[1] != 1:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise JudgeError(f"judge input must be a mono batch (B, 1, T); got {shape}")
        if audio.shape[0] == 0 or audio.shape[-1] == 0:
            raise JudgeError(f"judge input is empty: shape {tuple(audio.shape)}")
        if not torch.isfinite(audio).all():
            raise JudgeError("judge input contains NaN or infinite samples")
        audio = audio.float()
        if sample_rate is not None and sample_rate != self.sample_rate:
            from audiodiff.audio import resample

            log.info("judge: resampling input from %d Hz to %d Hz", sample_rate, self.sample_rate)
            audio = resample(audio, sample_rate, self.sample_rate)
        return fit_length(audio.cpu(), self.num_samples)

    @torch.no_grad()
    def _run(self, audio, sample_rate, batch_size, what):
        audio = self._prepare(audio, sample_rate)
        self.net.eval()
        outs = []
        for i in range(0, audio.shape[0], batch_size):
            x = self.mel_input(audio[i:i + batch_size])
            outs.append((self.net.features(x) if what == "features" else self.net(x) / self.temperature)
                        .float().cpu())
        return torch.cat(outs)

    def logits(self, audio: torch.Tensor, sample_rate: int | None = None, batch_size: int = 128) -> torch.Tensor:
        """Calibrated class logits `(B, K)` (network logits / temperature) of `audio (B, 1, T)`.

        Audio is centre-cropped / zero-padded to `seconds`.

        `sample_rate`: the input's rate; resampled to the judge's when it differs (None: already the judge's).
        """
        return self._run(audio, sample_rate, batch_size, "logits")

    def predict_proba(self, audio: torch.Tensor, sample_rate: int | None = None,
                      batch_size: int = 128) -> torch.Tensor:
        """Class probabilities `(B, K)` of `audio (B, 1, T)`; column k is `labels[k]`."""
        return self.logits(audio, sample_rate, batch_size).softmax(dim=-1)

    def features(self, audio: torch.Tensor, sample_rate: int | None = None, batch_size: int = 128) -> torch.Tensor:
        """Penultimate-layer features `(B, D)` of `audio (B, 1, T)` (for Frechet distances)."""
        return self._run(audio, sample_rate, batch_size, "features")

    def predict(self, audio: torch.Tensor, sample_rate: int | None = None) -> list:
        """Most probable label value per item of `audio (B, 1, T)`."""
        return [self.labels[i] for i in self.logits(audio, sample_rate).argmax(dim=-1).tolist()]

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "label_field": self.label_field, "labels": self.labels,
                "seconds": self.seconds, "temperature": self.temperature, "mel": self.mel.to_dict(),
                "net": self.net_config}

    def save(self, directory) -> Path:
        """Write `judge.safetensors` and `judge.json` into `directory` (created); returns the folder."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        tmp = d / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "audiodiff-judge", "version": str(FORMAT_VERSION)})
        tmp.replace(d / WEIGHTS_NAME)
        tmp = d / (CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(self.config(), indent=2))
        tmp.replace(d / CONFIG_NAME)
        write_meta(d, "judge")  # last, as in a checkpoint
        return d

    @classmethod
    def load(cls, directory, device=None) -> "Judge":
        """Rebuild a judge saved by :meth:`save` (safetensors + JSON only; no pickle)."""
        from safetensors.torch import load_file

        d = Path(directory)
        found = kind_at(d)  # a judge folder's meta.json (older folders: judge.json), or a diffusion / vocoder run
        if found is not None:
            check_kind(*found, "judge")
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (d / name).is_file():
                raise JudgeError(f"{d} is not a judge folder: {name} is missing (train one with "
                                 f"`audiodiff evaluate train-judge data=<manifest> label=<field> out={d}`)")
        try:
            cfg = json.loads((d / CONFIG_NAME).read_text())
        except json.JSONDecodeError as e:
            raise JudgeError(f"{d / CONFIG_NAME}: not valid JSON ({e.msg})") from None
        version = cfg.get("format_version")
        if version != FORMAT_VERSION:
            raise JudgeError(f"{d / CONFIG_NAME}: format_version {version!r} is not supported "
                             f"(this code reads {FORMAT_VERSION})")
        missing = [k for k in ("label_field", "labels", "seconds", "mel", "net") if k not in cfg]
        if missing:
            raise JudgeError(f"{d / CONFIG_NAME}: missing field(s) {missing}")
        mel = MelSpec.from_dict(cfg["mel"])
        net_cfg = dict(cfg["net"])
        net_cfg["channels"] = tuple(net_cfg.get("channels", (16, 32, 64, 128)))
        net = JudgeNet(**net_cfg)
        state = load_file(str(d / WEIGHTS_NAME))
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise JudgeError(f"{d / WEIGHTS_NAME} does not match {d / CONFIG_NAME}: {e}") from None
        judge = cls(net, mel, cfg["labels"], cfg["label_field"], cfg["seconds"], net_cfg,
                    temperature=cfg.get("temperature", 1.0))
        if device is not None:
            judge.to(device)
        return judge

