"""`MelDataset`: normalised log-mel segments of a manifest, computed once in batches and cached on disk."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from audiodiff import audio as _audio

from ..conditions import Vocabulary
from .base import _ConditionedEntries, _crop_or_pad, crop_rng
from .waveform import WaveformDataset

__all__ = ["MelDataset"]

log = logging.getLogger(__name__)

_CACHE_VERSION = 1


class MelDataset(_ConditionedEntries, Dataset):
    """Normalised log-mel segments (MelSpec) of a manifest, computed once in batches on `device`.

    Whole-file mels are computed up front (files of equal length batched together, so every mel equals
    the one computed alone) and optionally cached on disk under a key made of `MelSpec.fingerprint()`,
    the manifest (path, size, mtime, duration, rate per file) and the loudness / channel settings.
    Items crop `segment_frames` frames (random start from `(seed, epoch, index)`) or pad with the
    normalised value of silence (the log floor).

    Args:
        entries: manifest entries or a manifest path.
        mel: the :class:`audiodiff.mel.MelSpec`; audio is resampled to `mel.sample_rate`.
        segment_seconds / segment_frames: crop length (at most one; seconds -> `mel.frames(samples)`);
            neither = whole files.
        random_crop, loudness_db, conditions, vocab, seed: as :class:`WaveformDataset`.
        device: where mels are computed (`"cuda"` for speed); stored on CPU.
        cache_dir: folder for the on-disk cache (None = compute every time).
        batch_size: files per MelSpec call.
        max_failure_fraction, source: as :class:`WaveformDataset`; every file is decoded here, so too many bad
            files fail the construction (before any training step), each bad file warned about once.
    Returns items:
        `{"mel": (1, n_mels, frames) float32, "labels": int, "pitch": float}`.
    """

    def __init__(self, entries, mel, segment_seconds: float | None = None, segment_frames: int | None = None,
                 random_crop: bool = True, loudness_db: float | None = None,
                 conditions: Mapping[str, str] | None = None, vocab: Vocabulary | None = None, seed: int = 0,
                 device="cpu", cache_dir=None, batch_size: int = 32, max_failure_fraction: float = 0.1,
                 source=None):
        if segment_seconds is not None and segment_frames is not None:
            raise ValueError("give segment_seconds or segment_frames, not both")
        if segment_seconds is not None:
            if segment_seconds <= 0:
                raise ValueError(f"segment_seconds must be > 0; got {segment_seconds}")
            segment_frames = mel.frames(int(round(segment_seconds * mel.sample_rate)))
        if segment_frames is not None and int(segment_frames) <= 0:
            raise ValueError(f"segment_frames must be > 0; got {segment_frames}")
        self._init_entries(entries, conditions, vocab, seed, max_failure_fraction, source)
        self.mel = mel
        self.segment_frames = None if segment_frames is None else int(segment_frames)
        self.random_crop = bool(random_crop)
        self.loudness_db = loudness_db
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.pad_value = float(mel.normalize(torch.tensor(math.log(mel.log_floor))))
        self.cache_path = None
        self.cache_hit = False
        if cache_dir is not None:
            self.cache_path = Path(cache_dir) / f"mel-{mel.fingerprint()}-{self.cache_key()}.pt"
        self._load_or_compute()

    def cache_key(self) -> str:
        """Hash of the manifest (path, size, mtime, duration, rate) and the audio settings (not the MelSpec)."""
        h = hashlib.sha1()
        h.update(json.dumps({"v": _CACHE_VERSION, "loudness_db": self.loudness_db, "mono": True}).encode())
        for e in self.entries:
            try:
                st = os.stat(e["path"])
                stamp = (st.st_size, st.st_mtime_ns)
            except OSError:
                stamp = (-1, -1)
            shift = e.get("pitch_shift")  # a shifted copy is other audio (only written when set: old keys hold)
            h.update(json.dumps([e["path"], stamp, e["duration"], e["sample_rate"]] + ([shift] if shift else []))
                     .encode())
        return h.hexdigest()[:16]

    def _load_or_compute(self) -> None:
        if self.cache_path is not None and self.cache_path.is_file():
            blob = torch.load(self.cache_path, map_location="cpu", weights_only=True)
            self._data, self._offsets = blob["data"], blob["offsets"]
            for i, reason in zip(blob["failed_index"].tolist(), blob["failed_reason"]):
                self._bad.add(i)
                self.failures[self.entries[i]["path"]] = reason
            self.cache_hit = True
            log.info("mel cache hit: %s", self.cache_path)
            self._check_failures()
            return
        mels = self._compute_all()
        lengths = [0 if m is None else m.shape[-1] for m in mels]
        self._offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.long)
        present = [m for m in mels if m is not None]
        self._data = torch.cat(present, dim=-1) if present else torch.zeros(self.mel.n_mels, 0)
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            bad = sorted(self._bad)
            tmp = self.cache_path.with_name(self.cache_path.name + f".tmp{os.getpid()}")
            torch.save({"data": self._data, "offsets": self._offsets,
                        "failed_index": torch.tensor(bad, dtype=torch.long),
                        "failed_reason": [self.failures[self.entries[i]["path"]] for i in bad],
                        "mel": json.dumps(self.mel.to_dict())}, tmp)
            os.replace(tmp, self.cache_path)
            log.info("mel cache written: %s", self.cache_path)

    def _compute_all(self) -> list[torch.Tensor | None]:
        loader = WaveformDataset(self.entries, self.mel.sample_rate, loudness_db=self.loudness_db, mono=True,
                                 max_failure_fraction=self.max_failure_fraction, source=self.source)
        waves: list[torch.Tensor | None] = []
        for i in range(len(self.entries)):
            try:
                waves.append(loader.load_full(i)[0])
            except _audio.AudioError as err:
                waves.append(None)
                self._record_failure(i, err, check=False)
        self._check_failures()  # every file was tried: fail now, with the full count, not at training step 1
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            if w is not None:
                by_len.setdefault(w.shape[-1], []).append(i)
        mels: list[torch.Tensor | None] = [None] * len(waves)
        with torch.no_grad():
            for idx in by_len.values():
                for s in range(0, len(idx), self.batch_size):
                    chunk = idx[s:s + self.batch_size]
                    batch = torch.stack([waves[i] for i in chunk]).to(self.device)
                    out = self.mel(batch).float().cpu()
                    for i, m in zip(chunk, out):
                        mels[i] = m.clone()
        return mels

    def full_mel(self, index: int) -> torch.Tensor:
        """Whole-file normalised log-mel `(n_mels, frames)` of entry `index` (raises if it failed)."""
        if index in self._bad:
            path = self.entries[index]["path"]
            raise _audio.AudioError(path, self.failures[path])
        a, b = int(self._offsets[index]), int(self._offsets[index + 1])
        return self._data[:, a:b]

    def _make(self, index: int, epoch: int) -> dict:
        m = self.full_mel(index)
        if self.segment_frames is not None:
            rng = crop_rng(self.seed, epoch, index) if self.random_crop else None
            m = _crop_or_pad(m, self.segment_frames, rng, self.pad_value)
        return {"mel": m.unsqueeze(0).contiguous(), **self._conditions_of(self.entries[index])}

    def __getitem__(self, idx) -> dict:
        return self._get_with_fallback(idx, self._make)

