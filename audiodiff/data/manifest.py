"""JSONL manifests: one JSON object per audio file (`path`, `duration` s, `sample_rate`, labels...).

A manifest is the only thing a dataset reads to know its files. `path` is stored relative to the
manifest's folder when the file lies inside it (so a dataset folder can be moved), absolute otherwise;
:func:`read_manifest` always returns absolute paths. :func:`build_manifest` decodes every file in full
(a progress bar on long lists), leaves out undecodable / empty / truncated / NaN-or-infinite / too-short
files with the reason (so a bad file is caught here, not at training time), and refuses a source where
most files fail. :func:`split_manifest` makes a deterministic train/valid split.
"""
from __future__ import annotations

import collections
import csv
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from audiodiff import audio as _audio

from ..conditions import FILE_FIELDS, label_fields_of  # the probed fields, which are never labels
from ..errors import AudiodiffError

__all__ = [
    "AUDIO_EXTENSIONS", "REQUIRED_FIELDS", "ManifestError", "ManifestReport",
    "read_manifest", "write_manifest", "build_manifest", "split_manifest", "probe", "label_fields_of",
]

log = logging.getLogger(__name__)

# Extensions libsndfile (>= 1.1, with MP3 and Opus) decodes; matched case-insensitively.
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
    ".caf", ".w64", ".rf64", ".sd2", ".voc", ".paf", ".ircam", ".sf", ".htk", ".avr", ".xi", ".svx",
    ".iff", ".nist", ".sph", ".mat", ".pvf", ".wve", ".sds", ".mpc",
)
REQUIRED_FIELDS = ("path", "duration", "sample_rate")


class ManifestError(AudiodiffError, ValueError):
    """A manifest (or the source it is built from) cannot be used; the message says where and why."""


@dataclass
class ManifestReport:
    """What :func:`build_manifest` kept and what it left out (with reasons).

    Attributes:
        entries: kept entries (absolute `path`, `duration`, `sample_rate`, `channels`, labels), sorted by path.
        skipped: `(path, reason)` for every candidate left out.
        path: where the manifest was written, or None.
    """

    entries: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    path: Path | None = None

    @property
    def total(self) -> int:
        return len(self.entries) + len(self.skipped)

    @property
    def fail_fraction(self) -> float:
        return len(self.skipped) / self.total if self.total else 0.0

    @property
    def duration(self) -> float:
        """Total kept audio in seconds."""
        return float(sum(e["duration"] for e in self.entries))

    def summary(self) -> str:
        return (f"{len(self.entries)} files kept ({self.duration / 3600:.2f} h), "
                f"{len(self.skipped)} skipped of {self.total}")

    def __str__(self) -> str:
        lines = [self.summary() + (f" -> {self.path}" if self.path else "")]
        lines += [f"  skipped {p}: {r}" for p, r in self.skipped]
        return "\n".join(lines)


# --------------------------------------------------------------------------- JSONL I/O
def iter_jsonl(path):
    """Yield `(where, object)` for each non-empty line of a JSONL file (`where` = "file:line").

    Raises :class:`ManifestError` naming the file and line for invalid JSON or a line that is not an object.
    """
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            where = f"{path}:{lineno}"
            try:
                e = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(e, dict):
                raise ManifestError(f"{where}: expected a JSON object, got {type(e).__name__}")
            yield where, e


def read_manifest(path) -> list[dict]:
    """Read a JSONL manifest; return its entries with `path` resolved to an absolute string.

    Relative paths are taken relative to the manifest's folder. Blank lines are ignored.

    Raises:
        ManifestError: missing file, a line that is not a JSON object, a missing required field
            (`path`, `duration`, `sample_rate`) or one of the wrong type; the message names file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    root = path.resolve().parent
    entries = []
    for where, e in iter_jsonl(path):
        _check_entry(e, where)
        p = Path(e["path"])
        e["path"] = str(p if p.is_absolute() else (root / p))
        entries.append(e)
    dups = [p for p, c in collections.Counter(e["path"] for e in entries).items() if c > 1]
    if dups:
        log.warning("manifest %s lists %d file(s) more than once (e.g. %s); each line is kept as an item",
                    path, len(dups), dups[0])
    return entries


def write_manifest(entries: Iterable[dict], path) -> Path:
    """Write `entries` as JSONL (atomically: temp file then rename).

    Paths inside the manifest's folder are written relative to it (POSIX separators); others absolute
    (a relative input path is taken relative to the current directory).
    Keys are ordered `path, duration, sample_rate`, then the rest as given.

    Raises:
        ManifestError: an entry lacks a required field or has one of the wrong type.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.resolve().parent
    lines = []
    for i, e in enumerate(entries):
        _check_entry(e, f"entry {i} for {path}")
        p = Path(e["path"])
        p = p if p.is_absolute() else Path(os.path.abspath(p))
        try:
            stored = p.relative_to(root).as_posix()
        except ValueError:
            stored = str(p)
        out = {"path": stored, "duration": e["duration"], "sample_rate": e["sample_rate"]}
        out.update({k: v for k, v in e.items() if k not in out})
        lines.append(json.dumps(out, ensure_ascii=False))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    os.replace(tmp, path)
    return path


def _check_entry(e: dict, where: str) -> None:
    missing = [k for k in REQUIRED_FIELDS if k not in e]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {missing}; every entry needs {list(REQUIRED_FIELDS)}")
    if not isinstance(e["path"], (str, os.PathLike)) or not str(e["path"]):
        raise ManifestError(f"{where}: 'path' must be a non-empty string, got {e['path']!r}")
    d = e["duration"]
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
        raise ManifestError(f"{where}: 'duration' must be a non-negative number of seconds, got {d!r}")
    sr = e["sample_rate"]
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise ManifestError(f"{where}: 'sample_rate' must be a positive integer, got {sr!r}")


# --------------------------------------------------------------------------- probing
def probe(path, min_duration: float = 0.05, decode: bool = True) -> dict:
    """One file's `{"path", "duration", "sample_rate", "channels"}` from its header, after decoding it in full.

    Args:
        decode: read every sample with :func:`audiodiff.audio.load` (which refuses truncated files and NaN or
            infinite samples); False reads the header only (fast, but a damaged body goes unnoticed).
    Raises:
        AudioError: missing, empty (0 bytes), undecodable, truncated, NaN / infinite samples, no samples, or
            shorter than `min_duration` s.
    """
    i = _audio.info(path)
    if i.frames <= 0:
        raise _audio.AudioError(path, "contains no samples")
    duration = i.frames / i.samplerate
    if duration < min_duration:
        raise _audio.AudioError(path, f"is too short: {duration:.4f} s < min_duration {min_duration} s")
    if decode:
        _audio.load(path, mono=False)
    return {"path": str(Path(path).resolve()), "duration": round(duration, 6),
            "sample_rate": int(i.samplerate), "channels": int(i.channels)}


def _parse_scalar(text: str):
    """CSV / filename text -> int, float or str (so '60' compares equal to a JSON 60)."""
    t = text.strip()
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", t):
        return float(t)
    return t


# --------------------------------------------------------------------------- building
def _candidates_from_folder(folder: Path, extensions) -> list[tuple[Path, dict]]:
    exts = {x.lower() if x.startswith(".") else "." + x.lower() for x in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts:
                found.append((Path(dirpath) / name, {}))
    return found


def _candidates_from_csv(path: Path, path_column: str, label_fields) -> list[tuple[Path, dict]]:
    root = path.resolve().parent
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if path_column not in cols:
            raise ManifestError(f"{path}: no '{path_column}' column; columns are {cols}")
        if label_fields is not None:
            unknown = [c for c in label_fields if c not in cols]
            if unknown:
                raise ManifestError(f"{path}: label field(s) {unknown} not in columns {cols}")
        keep = [c for c in cols if c != path_column and c not in ("duration", "sample_rate", "channels")]
        if label_fields is not None:
            keep = [c for c in keep if c in label_fields]
        out = []
        for row in reader:
            p = Path(row[path_column])
            labels = {c: _parse_scalar(row[c]) for c in keep if row.get(c) not in (None, "")}
            out.append((p if p.is_absolute() else root / p, labels))
    return out


def _candidates_from_jsonl(path: Path, label_fields) -> list[tuple[Path, dict]]:
    out = []
    for e in read_manifest(path):
        labels = {k: v for k, v in e.items() if k not in FILE_FIELDS}
        if label_fields is not None:
            labels = {k: v for k, v in labels.items() if k in label_fields}
        out.append((Path(e["path"]), labels))
    return out


def _labels_from_name(path: Path, pattern: re.Pattern | str) -> dict:
    if pattern == "folder":
        return {"label": path.parent.name}
    m = pattern.fullmatch(path.name)
    if m is None:
        raise _audio.AudioError(path, f"file name does not match label_from pattern {pattern.pattern!r}")
    groups = m.groupdict()
    if not groups:
        raise ManifestError(f"label_from pattern {pattern.pattern!r} has no named groups (?P<name>...)")
    return {k: _parse_scalar(v) for k, v in groups.items() if v is not None}


def build_manifest(source, out=None, min_duration: float = 0.05, label_fields: Sequence[str] | None = None,
                   label_from: str | None = None, path_column: str = "path",
                   extensions: Sequence[str] = AUDIO_EXTENSIONS, max_fail_fraction: float = 0.5,
                   decode: bool = True, progress: bool | None = None) -> ManifestReport:
    """Build a manifest from a folder (recursive), a CSV or a JSONL, decoding every file in full.

    Args:
        source: a folder (every file whose extension is in `extensions`, recursively, sorted), a `.csv`
            (a `path_column` plus label columns; numeric cells become int/float), or a `.jsonl` manifest
            (re-probed; its label fields kept). Relative paths are relative to the CSV/JSONL's folder.
        out: write the manifest here (JSONL); None only returns it.
        min_duration: files shorter than this (seconds) are left out as "too short".
        label_fields: which CSV/JSONL columns to keep as labels; None keeps all.
        label_from: labels from the file name: a regex with named groups matched against the whole file
            name (e.g. FSDD's `(?P<label>\\d)_(?P<speaker>\\w+)_\\d+\\.wav`), or `"folder"` for
            `{"label": parent folder name}`. A name that does not match is left out with that reason.
        max_fail_fraction: raise when more than this fraction of candidates is left out.
        decode: decode every file (default), so that truncated files and files holding NaN or infinite
            samples are left out here with the reason; False checks headers only.
        progress: a tqdm progress bar; None shows one for 50 or more files on a terminal.
    Returns:
        :class:`ManifestReport` (entries sorted by path, skipped files with reasons, written path).
    Raises:
        ManifestError: unknown source kind, no candidates, or too many failures (lists a few reasons).
    """
    source = Path(source)
    if min_duration < 0:
        raise ManifestError(f"min_duration must be >= 0 seconds; got {min_duration}")
    if source.is_dir():
        candidates = _candidates_from_folder(source, extensions)
    elif source.is_file() and source.suffix.lower() == ".csv":
        candidates = _candidates_from_csv(source, path_column, label_fields)
    elif source.is_file() and source.suffix.lower() in (".jsonl", ".json"):
        candidates = _candidates_from_jsonl(source, label_fields)
    elif not source.exists():
        raise ManifestError(f"manifest source {source} does not exist")
    else:
        raise ManifestError(f"manifest source {source}: expected a folder, a .csv or a .jsonl file")
    if not candidates:
        raise ManifestError(f"{source}: no audio files found (extensions {sorted(set(extensions))})")
    pattern = None
    if label_from is not None:
        pattern = "folder" if label_from == "folder" else re.compile(label_from)

    report = ManifestReport()
    from tqdm.auto import tqdm

    bar = tqdm(candidates, desc=f"prepare {source.name or source}", unit="file", dynamic_ncols=True,
               disable=(len(candidates) < 50 or None) if progress is None else not progress)
    for p, labels in bar:
        try:
            e = probe(p, min_duration, decode=decode)
            if pattern is not None:
                labels = {**labels, **_labels_from_name(p, pattern)}
        except _audio.AudioError as err:
            report.skipped.append((str(p), err.problem))
            log.warning("manifest: skipping %s", err)
            continue
        e.update(labels)
        report.entries.append(e)
    report.entries.sort(key=lambda e: e["path"])
    if report.fail_fraction > max_fail_fraction:
        head = "; ".join(f"{p}: {r}" for p, r in report.skipped[:5])
        raise ManifestError(
            f"{source}: {len(report.skipped)} of {report.total} files are unusable "
            f"(> {max_fail_fraction:.0%}); first: {head}")
    if report.skipped:
        log.warning("manifest %s: %s", source, report.summary())
    if out is not None:
        report.path = write_manifest(report.entries, out)
    return report


# --------------------------------------------------------------------------- splitting
def _hash01(seed: int, key: str) -> float:
    h = hashlib.sha1(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def split_manifest(entries: Sequence[dict], valid_fraction: float = 0.1, seed: int = 0,
                   group_by: str | None = None) -> tuple[list[dict], list[dict]]:
    """Deterministic train/valid split: rank items (or groups) by `sha1(seed, key)`, take the first as valid.

    The key is each entry's path relative to the entries' common folder (so the split does not depend on
    where the dataset lives), or its `group_by` field (e.g. `"speaker"`: no speaker in both sets).
    `round(valid_fraction * n)` items go to valid (at least one when the fraction > 0 and n >= 2; with
    groups, whole groups in hash order, skipping any that would overshoot the count by more than they
    fill). Order within each part follows `entries`.

    Returns:
        `(train, valid)`, disjoint, together all entries.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ManifestError(f"valid_fraction must be in [0, 1); got {valid_fraction}")
    n = len(entries)
    if n == 0 or valid_fraction == 0:
        return list(entries), []
    if group_by is not None:
        missing = [e["path"] for e in entries if group_by not in e]
        if missing:
            raise ManifestError(f"split_manifest: {len(missing)} entries lack group_by field {group_by!r}, "
                                f"e.g. {missing[0]}; fields present: {label_fields_of(entries)}")
        keys = [str(e[group_by]) for e in entries]
    else:
        paths = [os.path.abspath(e["path"]) for e in entries]
        root = os.path.commonpath(paths) if n > 1 else os.path.dirname(paths[0])
        if root in paths:  # a single repeated file
            root = os.path.dirname(root)
        keys = [Path(p).relative_to(root).as_posix() for p in paths]
    target = max(1, round(valid_fraction * n)) if n >= 2 else 0
    order = sorted(set(keys), key=lambda k: (_hash01(seed, k), k))
    valid_keys, count = set(), 0
    sizes: dict[str, int] = {}
    for k in keys:
        sizes[k] = sizes.get(k, 0) + 1
    for k in order:
        if count >= target:
            break
        if count + sizes[k] >= n:  # keep at least one item for training
            continue
        if count + sizes[k] - target > target - count:  # a group that overshoots more than it fills
            continue
        valid_keys.add(k)
        count += sizes[k]
    if not valid_keys and target > 0:  # every group was too big: take the first that leaves training data
        for k in order:
            if sizes[k] < n:
                valid_keys.add(k)
                break
    train = [e for e, k in zip(entries, keys) if k not in valid_keys]
    valid = [e for e, k in zip(entries, keys) if k in valid_keys]
    return train, valid
