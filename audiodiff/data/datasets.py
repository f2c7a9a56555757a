"""Map-style datasets over manifests: waveform crops and (cached) normalised log-mel spectrograms.

Items are dicts named like the network's condition keywords (CONTRIBUTING.md "Data"):
`{"audio": (C, T) float32, "labels": int, "pitch": float}` or `{"mel": (1, n_mels, frames), ...}`.
Every random choice (the crop) comes from a generator seeded by `(seed, epoch, index)`, so a run that
resumes at a given epoch and position sees the same crops.

Bad files are found before training: :func:`check_entries` (which `build_dataset` runs) decodes every
file once, leaves out the unreadable ones with one warning, and fails up front with one line (naming the
manifest, the count, the first files and the remedy) when more than `max_failure_fraction` are bad.
A file that still fails at read time is warned about once, counted in `dataset.failures`, and replaced by
the next readable item (deterministically); a training run never dies on one bad file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from audiodiff import audio as _audio
from audiodiff.data.manifest import ManifestError, label_fields_of, read_manifest

from ..errors import AudiodiffError, UsageError

__all__ = [
    "CONDITION_KEYS", "VocabularyError", "DatasetError", "Vocabulary", "WaveformDataset", "MelDataset",
    "EpochSampler", "check_entries", "collate", "batch_to_mel", "crop_rng",
]

log = logging.getLogger(__name__)

# Network condition keywords a dataset can fill (models' forward(..., labels=, pitch=)).
CONDITION_KEYS = ("labels", "pitch")


class VocabularyError(UsageError, KeyError):
    """A label value is not in the vocabulary; the message lists the allowed values."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


class DatasetError(AudiodiffError, RuntimeError):
    """Too many of a dataset's files cannot be read; the message names the manifest, the files and the remedy."""


def _too_many(failures: Mapping[str, str], n: int, frac: float) -> bool:
    """More failures than `max_failure_fraction` allows (one bad file is always tolerated unless frac is 0)."""
    limit = 0 if frac == 0 else max(1.0, frac * n)
    return len(failures) > limit


def _failure_message(failures: Mapping[str, str], n: int, frac: float, source) -> str:
    where = f"manifest {source}" if source is not None else "the dataset"
    first = "; ".join(f"{p}: {r}" for p, r in list(failures.items())[:3])
    more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
    remedy = (f"run `audiodiff prepare source=<your audio folder> out={source}` again to rebuild it from the "
              "readable files" if source is not None else "rebuild the manifest with `audiodiff prepare`")
    return (f"{where}: {len(failures)} of {n} files failed to load (> {frac:.0%} allowed by max_failure_fraction); "
            f"first: {first}{more}; {remedy}")


def check_entries(entries: Sequence[dict], source=None, max_failure_fraction: float = 0.1,
                  progress: bool | None = None) -> tuple[list[dict], dict[str, str]]:
    """Decode every entry's file once (before training) and leave out the ones that cannot be used.

    Each file goes through :func:`audiodiff.audio.load` (missing, empty, undecodable, truncated, NaN or
    infinite samples are refused). The bad files are logged in one warning.

    Args:
        entries: manifest entries (absolute `path`).
        source: the manifest they come from (named in messages).
        max_failure_fraction: fail when more than this fraction (and more than one file) is bad; 0 fails on any.
        progress: tqdm bar; None shows one for 200 or more files on a terminal.
    Returns:
        `(good entries in order, {path: reason} for the bad ones)`.
    Raises:
        DatasetError: too many bad files: one line naming the manifest, the count, the first files and the remedy.
    """
    from tqdm.auto import tqdm

    good, failures = [], {}
    bar = tqdm(entries, desc="checking audio files", unit="file", dynamic_ncols=True,
               disable=(len(entries) < 200 or None) if progress is None else not progress)
    for e in bar:
        try:
            _audio.load(e["path"], mono=False)
        except _audio.AudioError as err:
            failures[e["path"]] = err.problem
            continue
        good.append(e)
    if _too_many(failures, len(entries), max_failure_fraction) or (failures and not good):
        raise DatasetError(_failure_message(failures, len(entries), max_failure_fraction, source))
    if failures:
        first = "; ".join(f"{p}: {r}" for p, r in list(failures.items())[:3])
        log.warning("%s: leaving out %d of %d files that cannot be read (first: %s%s); run `audiodiff prepare` "
                    "again to drop them from the manifest", source or "dataset", len(failures), len(entries), first,
                    f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
    return good, failures


# --------------------------------------------------------------------------- vocabulary
class Vocabulary:
    """Maps label values to contiguous ids `0..len-1`: the sorted unique values (ints before strings).

    Args:
        values: label values (ints or strings, duplicates allowed).
        name: the manifest field the values come from (used in messages and saved with the vocabulary).
    """

    def __init__(self, values, name: str = "label"):
        uniq = set()
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise VocabularyError(f"vocabulary '{name}': values must be int or str; got {v!r} "
                                      f"({type(v).__name__})")
            uniq.add(v)
        if not uniq:
            raise VocabularyError(f"vocabulary '{name}': no values")
        self.name = name
        self.values = sorted(uniq, key=lambda v: (isinstance(v, str), v))
        self._ids = {v: i for i, v in enumerate(self.values)}

    @classmethod
    def ordered(cls, values: Sequence, name: str = "label") -> "Vocabulary":
        """A vocabulary whose ids follow `values` as given (a fine-tune keeps its base run's ids)."""
        vocab = cls(values, name=name)
        if len(vocab.values) != len(values):
            raise VocabularyError(f"vocabulary '{name}': values repeat in {list(values)}")
        vocab.values = list(values)
        vocab._ids = {v: i for i, v in enumerate(vocab.values)}
        return vocab

    @classmethod
    def from_entries(cls, entries: Sequence[dict], field: str) -> "Vocabulary":
        """Vocabulary of `field` over manifest entries; raises naming an entry that lacks the field."""
        missing = [e["path"] for e in entries if field not in e]
        if missing:
            raise VocabularyError(f"{len(missing)} manifest entries lack label field '{field}' "
                                  f"(e.g. {missing[0]}); fields present: {label_fields_of(entries)}")
        return cls((e[field] for e in entries), name=field)

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, value) -> bool:
        return value in self._ids and type(value) is type(self.values[self._ids[value]])

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.values == other.values and self.name == other.name

    def __repr__(self) -> str:
        return f"Vocabulary({self.name!r}, {self.values!r})"

    def encode(self, value) -> int:
        """Id of `value`; raises :class:`VocabularyError` listing the allowed values for an unknown one."""
        if value not in self:
            shown = self.values if len(self.values) <= 50 else self.values[:50] + ["..."]
            raise VocabularyError(f"unknown {self.name} {value!r}; allowed values: {shown}")
        return self._ids[value]

    def decode(self, index: int):
        """Label value of id `index` (0 <= index < len)."""
        if not 0 <= int(index) < len(self.values):
            raise VocabularyError(f"{self.name} id {index} out of range; allowed: 0..{len(self.values) - 1}")
        return self.values[int(index)]

    def to_dict(self) -> dict:
        return {"name": self.name, "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Vocabulary":
        if "values" not in d:
            raise VocabularyError(f"vocabulary JSON needs 'values' (and 'name'); got keys {sorted(d)}")
        return cls(d["values"], name=d.get("name", "label"))

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path) -> "Vocabulary":
        return cls.from_dict(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------- helpers
def crop_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator behind item `index`'s random choices in `epoch` (PCG64 seeded by the triple)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


def _split_index(idx) -> tuple[int, int | None]:
    """Accept `index` or `(epoch, index)` (what :class:`EpochSampler` yields with `with_epoch=True`)."""
    if isinstance(idx, (tuple, list)):
        epoch, index = idx
        return int(index), int(epoch)
    return int(idx), None


def _check_conditions(conditions: Mapping[str, str] | None) -> dict[str, str]:
    conditions = dict(conditions or {})
    bad = [k for k in conditions if k not in CONDITION_KEYS]
    if bad:
        raise ValueError(f"unknown condition key(s) {bad}; allowed: {list(CONDITION_KEYS)} "
                         f"(mapped to manifest fields, e.g. {{'labels': 'label', 'pitch': 'pitch'}})")
    return conditions


def _pitch_value(value, path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path}: pitch must be a finite MIDI number; got {value!r}")
    return float(value)


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
        self.conditions = _check_conditions(conditions)
        fields = label_fields_of(self.entries)
        for key, fld in self.conditions.items():
            missing = [e["path"] for e in self.entries if fld not in e]
            if missing:
                raise ManifestError(f"condition {key!r} reads field {fld!r}, missing in {len(missing)} entries "
                                    f"(e.g. {missing[0]}); fields present: {fields}")
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
            raise ValueError("vocab given but no 'labels' condition to use it; pass conditions={'labels': field}")
        if "pitch" in self.conditions:
            for e in self.entries:
                _pitch_value(e[self.conditions["pitch"]], e["path"])
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
        out = {}
        for key, fld in self.conditions.items():
            out[key] = self.vocab.encode(e[fld]) if key == "labels" else _pitch_value(e[fld], e["path"])
        return out

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


# --------------------------------------------------------------------------- waveform dataset
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


# --------------------------------------------------------------------------- mel dataset
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
            h.update(json.dumps([e["path"], stamp, e["duration"], e["sample_rate"]]).encode())
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


def batch_to_mel(batch: dict, mel, device=None) -> dict:
    """Replace `batch["audio"] (B, 1, T)` by `batch["mel"] (B, 1, n_mels, frames)` computed on `device`.

    For training a mel model straight from a :class:`WaveformDataset` (mels made on the GPU per batch).
    """
    if "audio" not in batch:
        raise KeyError(f"batch_to_mel needs an 'audio' entry; got keys {sorted(batch)}")
    audio = batch["audio"]
    if device is not None:
        audio = audio.to(device, non_blocking=True)
    with torch.no_grad():
        m = mel(audio)  # (B, 1, T) -> (B, n_mels, frames); MelSpec rejects multi-channel audio
    out = {k: v for k, v in batch.items() if k != "audio"}
    out["mel"] = m.unsqueeze(1)
    return out


# --------------------------------------------------------------------------- collate & sampling
def collate(items: Sequence[dict]) -> dict:
    """Stack a list of item dicts into a batch: tensors -> `(B, ...)`, ints -> long `(B,)`, floats -> `(B,)`.

    Raises:
        ValueError: items with different keys, or tensors of different shapes (names the key and shapes).
    """
    if not items:
        raise ValueError("collate got an empty list")
    keys = list(items[0])
    for it in items[1:]:
        if list(it) != keys:
            raise ValueError(f"collate: items have different keys: {keys} vs {list(it)}")
    out = {}
    for k in keys:
        vals = [it[k] for it in items]
        v0 = vals[0]
        if isinstance(v0, torch.Tensor):
            shapes = {tuple(v.shape) for v in vals}
            if len(shapes) > 1:
                raise ValueError(f"collate: '{k}' tensors differ in shape {sorted(shapes)}; "
                                 "set a segment length (segment_seconds) to batch them")
            out[k] = torch.stack(vals)
        elif isinstance(v0, (bool, np.bool_)):
            out[k] = torch.tensor(vals, dtype=torch.bool)
        elif isinstance(v0, (int, np.integer)):
            out[k] = torch.tensor(vals, dtype=torch.long)
        elif isinstance(v0, (float, np.floating)):
            out[k] = torch.tensor(vals, dtype=torch.float32)
        elif isinstance(v0, np.ndarray):
            out[k] = torch.from_numpy(np.stack(vals))
        else:
            out[k] = vals
    return out


class EpochSampler(Sampler):
    """Resumable, shardable sampler: a permutation per `(seed, epoch)`, started at any position.

    With `with_epoch=True` it yields `(epoch, index)` pairs, which the datasets here accept, so the crop
    seed reaches DataLoader workers even when they are persistent (where `dataset.set_epoch` would not).

    Args:
        n: dataset length. shuffle: permute (else 0..n-1). seed: permutation seed.
        num_replicas, rank: shard for DistributedDataParallel (every rank gets ceil(n / num_replicas)
            items; the permutation is padded by wrapping, as torch's DistributedSampler does).
    """

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 with_epoch: bool = True):
        if n <= 0:
            raise ValueError(f"EpochSampler needs n > 0; got {n}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}); got {rank}")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.num_replicas, self.rank, self.with_epoch = int(num_replicas), int(rank), bool(with_epoch)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch `epoch` from position `start` (items of this rank already consumed)."""
        self.epoch, self.start = int(epoch), int(start)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def load_state_dict(self, state: Mapping) -> None:
        self.seed = int(state.get("seed", self.seed))
        self.set_epoch(state["epoch"], state.get("start", 0))

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for `epoch` (before `start` is applied)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        per = math.ceil(self.n / self.num_replicas)
        total = per * self.num_replicas
        perm = (perm * math.ceil(total / self.n))[:total]
        return perm[self.rank:total:self.num_replicas]

    def __len__(self) -> int:
        return math.ceil(self.n / self.num_replicas) - self.start

    def __iter__(self) -> Iterator:
        for i in self.order(self.epoch)[self.start:]:
            yield (self.epoch, i) if self.with_epoch else i
