"""What the datasets share: their entries and conditions, crops seeded by `(seed, epoch, index)`, bad-file fallback.

Items are dicts named like the network's condition keywords (CONTRIBUTING.md "Data"):
`{"audio": (C, T) float32, "labels": int, "pitch": float}` or `{"mel": (1, n_mels, frames), ...}`.
Every random choice (the crop) comes from a generator seeded by `(seed, epoch, index)`, so a run that
resumes at a given epoch and position sees the same crops.

A file that fails at read time is warned about once, counted in `dataset.failures`, and replaced by
the next readable item (deterministically); a training run never dies on one bad file.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch

from audiodiff import audio as _audio
from audiodiff.data.manifest import ManifestError, read_manifest

from ..conditions import ConditionError, Vocabulary, VocabularyError, check_fields, item_conditions, pitch_value, require_fields
from .check import DatasetError, _failure_message, _too_many

__all__ = ["crop_rng"]

log = logging.getLogger(__name__)


def crop_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator behind item `index`'s random choices in `epoch` (PCG64 seeded by the triple)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


def _split_index(idx) -> tuple[int, int | None]:
    """Accept `index` or `(epoch, index)` (what :class:`EpochSampler` yields with `with_epoch=True`)."""
    if isinstance(idx, (tuple, list)):
        epoch, index = idx
        return int(index), int(epoch)
    return int(idx), None


class _ConditionedEntries:
    """Shared by the datasets: entries, their conditions, the label vocabulary, failures and epochs."""

    def _init_entries(self, entries, conditions, vocab, seed, max_failure_fraction, source=None):
        self.source = source
        if isinstance(entries, (str, os.PathLike)):
            self.source = entries if source is None else source
            entries = read_manifest(entries)
        self.entries = list(entries)
        if not self.entries:
            raise ManifestError("dataset has no entries")
        self.conditions = check_fields(conditions)
        require_fields(self.entries, self.conditions)
        self.vocab = None
        if "labels" in self.conditions:
            fld = self.conditions["labels"]
            self.vocab = vocab if vocab is not None else Vocabulary.from_entries(self.entries, fld)
            for e in self.entries:  # fail now, not in epoch 7
                try:
                    self.vocab.encode(e[fld])
                except VocabularyError as err:
                    raise VocabularyError(f"{e['path']}: {err}") from None
        elif vocab is not None:
            raise ConditionError("vocab given but no 'labels' condition to use it; pass conditions={'labels': field}")
        if "pitch" in self.conditions:
            for e in self.entries:
                pitch_value(e[self.conditions["pitch"]], e["path"])
        self.seed = int(seed)
        self.epoch = 0
        self.failures: dict[str, str] = {}
        self._bad: set[int] = set()
        self.max_failure_fraction = max_failure_fraction

    def set_epoch(self, epoch: int) -> None:
        """Use `epoch` in the crop generator `(seed, epoch, index)` (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries)

    def _conditions_of(self, e: dict) -> dict[str, Any]:
        return item_conditions(self.conditions, self.vocab, e, e["path"])

    def _record_failure(self, index: int, err: Exception, check: bool = True) -> None:
        """Note that entry `index` cannot be read (warned once: it is never tried again in this process)."""
        path = self.entries[index]["path"]
        self._bad.add(index)
        self.failures[path] = getattr(err, "problem", str(err))
        log.warning("dataset: skipping unreadable file (%d so far; it is not read again): %s",
                    len(self.failures), err)
        if check:
            self._check_failures()

    def _check_failures(self) -> None:
        """Raise DatasetError (one line: manifest, count, first files, remedy) when too many files failed."""
        if _too_many(self.failures, len(self.entries), self.max_failure_fraction):
            raise DatasetError(_failure_message(self.failures, len(self.entries), self.max_failure_fraction,
                                                self.source))

    def _get_with_fallback(self, idx, make):
        """`make(index, epoch)` for `idx`, or for the next readable index when that file fails."""
        index, epoch = _split_index(idx)
        n = len(self.entries)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of {n}")
        index %= n
        epoch = self.epoch if epoch is None else epoch
        for j in range(n):
            k = (index + j) % n
            if k in self._bad:
                continue
            try:
                return make(k, epoch)
            except _audio.AudioError as err:
                self._record_failure(k, err)
        raise DatasetError(_failure_message(self.failures, n, self.max_failure_fraction, self.source))


def _crop_or_pad(x: torch.Tensor, length: int, rng: np.random.Generator | None, pad_value: float = 0.0):
    """Crop `(..., T)` to `length` (random start from `rng`, or 0 when None) or pad at the end."""
    t = x.shape[-1]
    if t > length:
        start = int(rng.integers(0, t - length + 1)) if rng is not None else 0
        return x[..., start:start + length]
    if t < length:
        return torch.nn.functional.pad(x, (0, length - t), value=pad_value)
    return x


