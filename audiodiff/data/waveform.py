"""`WaveformDataset`: fixed-length waveform segments of a manifest (resample, mono, loudness, seeded crop or pad)."""
from __future__ import annotations

from typing import Mapping

import torch
from torch.utils.data import Dataset

from audiodiff import audio as _audio

from ..conditions import Vocabulary
from .base import _ConditionedEntries, _crop_or_pad, crop_rng

__all__ = ["WaveformDataset"]


class WaveformDataset(_ConditionedEntries, Dataset):
    """Fixed-length waveform segments from a manifest: resample, mono, loudness, random crop or pad.

    Args:
        entries: manifest entries (:func:`read_manifest`) or a manifest path.
        sample_rate: the model's rate; files at other rates are resampled (torchaudio windowed sinc).
        segment_seconds / segment_samples: segment length (give at most one); neither = whole files
            (then only batch size 1 or a padding collate works).
        random_crop: start at a random sample (generator `(seed, epoch, index)`); False starts at 0.
            Shorter files are zero-padded at the end.
        loudness_db: scale each whole file to this RMS in dBFS (peak kept <= 0.99) before cropping; None = off.
        mono: average channels to `(1, T)`; False keeps the file's channels.
        conditions: network keyword -> manifest field, e.g. `{"labels": "label", "pitch": "pitch"}`.
        vocab: :class:`Vocabulary` for `labels` (None builds one from the entries).
        seed: crop seed.
        max_failure_fraction: raise when more than this fraction of files (and more than one) failed to
            decode; 0 raises on the first failure.
        source: the manifest the entries come from (named in messages; set when `entries` is a path).
    Returns items:
        `{"audio": (C, T) float32, "labels": int, "pitch": float}` (conditions as configured).
    """

    def __init__(self, entries, sample_rate: int, segment_seconds: float | None = None,
                 segment_samples: int | None = None, random_crop: bool = True, loudness_db: float | None = None,
                 mono: bool = True, conditions: Mapping[str, str] | None = None, vocab: Vocabulary | None = None,
                 seed: int = 0, max_failure_fraction: float = 0.1, source=None):
        if sample_rate is None or int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be a positive integer; got {sample_rate!r}")
        if segment_seconds is not None and segment_samples is not None:
            raise ValueError("give segment_seconds or segment_samples, not both")
        if segment_seconds is not None:
            if segment_seconds <= 0:
                raise ValueError(f"segment_seconds must be > 0; got {segment_seconds}")
            segment_samples = int(round(segment_seconds * sample_rate))
        if segment_samples is not None and int(segment_samples) <= 0:
            raise ValueError(f"segment_samples must be > 0; got {segment_samples}")
        self._init_entries(entries, conditions, vocab, seed, max_failure_fraction, source)
        self.sample_rate = int(sample_rate)
        self.segment_samples = None if segment_samples is None else int(segment_samples)
        self.random_crop = bool(random_crop)
        self.loudness_db = loudness_db
        self.mono = bool(mono)

    def load_full(self, index: int) -> torch.Tensor:
        """Whole file `index` as `(C, T)` at the model rate, loudness-normalised; raises AudioError."""
        e = self.entries[index]
        wav, _ = _audio.load(e["path"], sample_rate=self.sample_rate, mono=self.mono)
        shift = float(e.get("pitch_shift") or 0)
        if shift:  # read as if recorded at rate * 2^(shift/12): every frequency moves by `shift` semitones
            import torchaudio
            from fractions import Fraction

            # the ratio as a fraction with a small denominator (< 1 cent off): sinc resampling costs grow with it
            r = Fraction(2 ** (shift / 12)).limit_denominator(1000)
            wav = torchaudio.functional.resample(wav, r.numerator, r.denominator)
        if self.loudness_db is not None:
            wav = _audio.loudness_normalize(wav, float(self.loudness_db))
        return wav

    def _make(self, index: int, epoch: int) -> dict:
        wav = self.load_full(index)
        if self.segment_samples is not None:
            rng = crop_rng(self.seed, epoch, index) if self.random_crop else None
            wav = _crop_or_pad(wav, self.segment_samples, rng)
        return {"audio": wav.contiguous(), **self._conditions_of(self.entries[index])}

    def __getitem__(self, idx) -> dict:
        return self._get_with_fallback(idx, self._make)

    @property
    def segment_seconds(self) -> float | None:
        return None if self.segment_samples is None else self.segment_samples / self.sample_rate

