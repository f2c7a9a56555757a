"""The mel contract shared by mel datasets, mel denoisers and vocoders.

A :class:`MelSpec` fixes every setting that changes what a mel spectrogram *means* (STFT, filterbank,
compression, normalisation). Models and vocoders store theirs; the pipeline refuses to pair two
whose contracts differ (:meth:`MelSpec.check_compatible`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from .errors import AudiodiffError

MEL_SCALES = ("slaney", "htk")
NORMS = ("slaney", None)
POWERS = (1.0, 2.0)
PAD_MODES = ("reflect", "constant")


class MelContractError(AudiodiffError, ValueError):
    """Two mel contracts differ, or a mel tensor does not fit its contract."""


@dataclass(frozen=True)
class MelSpec:
    """Log-mel spectrogram contract (STFT -> mel filterbank -> log -> affine map to [-1, 1]).

    The filterbank is librosa's (`librosa.filters.mel`, slaney or htk scale), so the power mel equals
    `librosa.feature.melspectrogram` with the same settings. Log compression is
    `log(clamp(mel, min=log_floor))`; normalisation maps `[norm_min, norm_max]` (in log units) linearly
    to `[-1, 1]` without clamping, so `denormalize(normalize(x)) == x`.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int | None = None
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    power: float = 1.0
    center: bool = True
    pad_mode: str = "reflect"
    log_floor: float = 1e-5
    norm_min: float = -11.5129  # log(1e-5)
    norm_max: float = 2.5

    def __post_init__(self):
        def bad(field, value, allowed):
            raise MelContractError(f"MelSpec.{field}={value!r} is not allowed; allowed: {allowed}")

        # Canonical types, so that equal contracts (e.g. f_min=0 from YAML and 0.0 from JSON) compare and
        # fingerprint equal. Values are never changed: a non-integral integer field raises.
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if value is None and name == "win_length":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                bad(name, value, "an integer" + (" or None" if name == "win_length" else ""))
            object.__setattr__(self, name, int(value))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is None and name == "f_max":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                bad(name, value, "a finite number" + (" or None" if name == "f_max" else ""))
            object.__setattr__(self, name, float(value))
        if not isinstance(self.center, bool):
            bad("center", self.center, "True or False")

        if self.sample_rate <= 0:
            bad("sample_rate", self.sample_rate, "a positive integer")
        if self.n_fft <= 0:
            bad("n_fft", self.n_fft, "a positive integer")
        win = self.win_length if self.win_length is not None else self.n_fft
        if not 0 < win <= self.n_fft:
            bad("win_length", self.win_length, f"1..n_fft ({self.n_fft}) or None")
        if not 0 < self.hop_length:
            bad("hop_length", self.hop_length, "a positive integer")
        if self.n_mels <= 0:
            bad("n_mels", self.n_mels, "a positive integer")
        nyquist = self.sample_rate / 2
        if not 0 <= self.f_min < nyquist:
            bad("f_min", self.f_min, f"0 <= f_min < Nyquist ({nyquist} Hz)")
        if self.f_max is not None and not self.f_min < self.f_max <= nyquist:
            bad("f_max", self.f_max, f"f_min < f_max <= Nyquist ({nyquist} Hz), or None for Nyquist")
        if self.mel_scale not in MEL_SCALES:
            bad("mel_scale", self.mel_scale, MEL_SCALES)
        if self.norm not in NORMS:
            bad("norm", self.norm, NORMS)
        if self.power not in POWERS:
            bad("power", self.power, POWERS)
        if self.pad_mode not in PAD_MODES:
            bad("pad_mode", self.pad_mode, PAD_MODES)
        if not self.log_floor > 0:
            bad("log_floor", self.log_floor, "a positive float")
        if not self.norm_max > self.norm_min:
            bad("norm_max", self.norm_max, f"a value above norm_min ({self.norm_min})")

    # ------------------------------------------------------------------ derived
    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def window_length(self) -> int:
        return self.win_length if self.win_length is not None else self.n_fft

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def frames(self, num_samples: int) -> int:
        """Number of frames :meth:`__call__` returns for `num_samples` samples (librosa's framing)."""
        if self.center:
            return num_samples // self.hop_length + 1
        return max(0, (num_samples - self.n_fft) // self.hop_length + 1)

    def filterbank(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """Mel filterbank `(n_mels, n_fft // 2 + 1)`, librosa's for these settings (cached per device)."""
        key = (str(device), dtype)
        cache = _FB_CACHE.setdefault(self.fingerprint(), {})
        if key not in cache:
            import librosa

            fb = librosa.filters.mel(
                sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.f_min,
                fmax=self.f_max, htk=self.mel_scale == "htk", norm=self.norm,
            )
            # a normal tensor even when first asked for under torch.inference_mode (an evaluation), so that a later
            # training step may save it for backward
            with torch.inference_mode(False):
                cache[key] = torch.as_tensor(fb, dtype=dtype, device=device)
        return cache[key]

    def window(self, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.hann_window(self.window_length, periodic=True, device=device, dtype=dtype)

    # ------------------------------------------------------------------ compute
    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """Complex STFT `(B, n_fft // 2 + 1, frames)` of `wav (B, T)` on its device."""
        if wav.dim() != 2:
            raise MelContractError(f"MelSpec expects a waveform batch (B, T); got shape {tuple(wav.shape)}")
        T = wav.shape[-1]
        if not self.center and T < self.n_fft:
            raise MelContractError(f"with center=False the waveform needs >= n_fft ({self.n_fft}) samples; got {T}")
        if self.center and self.pad_mode == "reflect" and T <= self.n_fft // 2:
            raise MelContractError(
                f"with center=True and pad_mode='reflect' the waveform needs > n_fft // 2 ({self.n_fft // 2}) "
                f"samples; got {T}"
            )
        return torch.stft(
            wav.float(), n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.window_length,
            window=self.window(wav.device), center=self.center, pad_mode=self.pad_mode,
            return_complex=True,
        )

    def power_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Mel spectrogram `(B, n_mels, frames)` of magnitude**power (librosa's melspectrogram)."""
        mag = self.stft(wav).abs()
        if self.power == 2.0:
            mag = mag.pow(2)
        return torch.matmul(self.filterbank(wav.device), mag)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Natural-log mel `(B, n_mels, frames)`, floored at `log_floor`."""
        return torch.log(torch.clamp(self.power_mel(wav), min=self.log_floor))

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel `(B, n_mels, frames)` in roughly [-1, 1] of `wav (B, T)` (or `(B, 1, T)`)."""
        if wav.dim() == 3:
            if wav.shape[1] != 1:
                raise MelContractError(f"MelSpec takes mono audio; got {wav.shape[1]} channels")
            wav = wav[:, 0]
        return self.normalize(self.log_mel(wav))

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Map natural-log mel to the model range: `norm_min -> -1`, `norm_max -> 1` (no clamping)."""
        return (log_mel - self.norm_min) / (self.norm_max - self.norm_min) * 2 - 1

    def denormalize(self, mel: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: model range back to natural-log mel."""
        return (mel + 1) / 2 * (self.norm_max - self.norm_min) + self.norm_min

    def check_mel(self, mel: torch.Tensor, who: str = "mel") -> None:
        """Raise if `mel` is not `(B, n_mels, frames)` for this contract."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise MelContractError(
                f"{who}: expected a mel batch (B, {self.n_mels}, frames); got shape {tuple(mel.shape)}"
            )

    # ------------------------------------------------------------------ contract
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MelSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise MelContractError(f"unknown MelSpec fields {unknown}; allowed: {sorted(names)}")
        return cls(**d)

    def save(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path) -> "MelSpec":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def fingerprint(self) -> str:
        """Short stable hash of every field (used for caches and compatibility checks)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=float)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def differences(self, other: "MelSpec") -> dict[str, tuple[Any, Any]]:
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def check_compatible(self, other: "MelSpec", what: str = "mel contracts") -> None:
        """Raise :class:`MelContractError` listing every field where the two contracts differ."""
        diff = self.differences(other)
        if diff:
            fields = ", ".join(f"{k}: {a!r} != {b!r}" for k, (a, b) in diff.items())
            raise MelContractError(f"{what} differ in {len(diff)} field(s): {fields}")


_FB_CACHE: dict[str, dict] = {}
_INT_FIELDS = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels")
_FLOAT_FIELDS = ("f_min", "f_max", "power", "log_floor", "norm_min", "norm_max")
