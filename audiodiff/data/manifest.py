"""JSONL manifests: one JSON object per audio file (`path`, `duration` s, `sample_rate`, labels...).

A manifest is the only thing a dataset reads to know its files. `path` is stored relative to the
manifest's folder when the file lies inside it (so a dataset folder can be moved), absolute otherwise;
:func:`read_manifest` always returns absolute paths. :func:`build_manifest` decodes every file in full
(a progress bar on long lists), leaves out undecodable / empty / truncated / NaN-or-infinite / too-short /
silent files with the reason (so a bad file is caught here, not at training time), takes labels from
sub-folder names, file names or a labels table, and refuses a source where most files fail; its
:class:`ManifestReport` prints what was kept and why the rest was left out. :func:`split_manifest` makes a
deterministic train/valid split.
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
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from audiodiff import audio as _audio

from ..conditions import FILE_FIELDS, label_fields_of  # the probed fields, which are never labels
from ..errors import AudiodiffError, UsageError

__all__ = [
    "AUDIO_EXTENSIONS", "REQUIRED_FIELDS", "ManifestError", "ManifestUsageError", "ManifestReport",
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
MAX_CLASSES_SHOWN = 20  # the printed report lists at most this many values of a label field
LABEL_FROM_HELP = ("label_from={value!r} is neither 'folder', 'none' nor a regular expression with named groups "
                   "(?P<name>...); e.g. label_from=folder")


class ManifestError(AudiodiffError, ValueError):
    """A manifest (or the source it is built from) cannot be used; the message says where and why."""


class ManifestUsageError(ManifestError, UsageError):
    """A bad argument of the manifest functions (or a source path that does not exist): exit 2 on the command line."""


@dataclass
class ManifestReport:
    """What :func:`build_manifest` kept and what it left out (with reasons); `str()` is the printed summary.

    Attributes:
        entries: kept entries (absolute `path`, `duration`, `sample_rate`, `channels`, labels), sorted by path.
        skipped: `(path, reason)` for every candidate left out.
        path: where the manifest was written, or None.
        source: the folder / CSV / JSONL it was built from.
        rule: the rule files were left out by, in words.
        notes: lines the summary states (where the labels come from, or why there are none; table rows
            naming missing files).
    """

    entries: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    path: Path | None = None
    source: Path | None = None
    rule: str = ""
    notes: list[str] = field(default_factory=list)

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
        """One line: files kept (hours), skipped, of how many."""
        return (f"{len(self.entries)} files kept ({self.duration / 3600:.2f} h), "
                f"{len(self.skipped)} skipped of {self.total}")

    def skipped_by_reason(self) -> dict[str, list[tuple[str, str]]]:
        """The skipped `(path, reason)` grouped by the kind of reason (`is silent`, `cannot decode`, ...),
        the most frequent kind first."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for p, r in self.skipped:
            groups.setdefault(_reason_kind(r), []).append((p, r))
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))

    def describe(self) -> str:
        """The printed summary: kept and skipped files (every skipped file with its reason, grouped by reason),
        hours, duration min / median / max, sample rates, channels, formats, label fields with their classes,
        and where the manifest was written."""
        where = f"{self.source}: " if self.source is not None else ""
        lines = [where + self.summary()]
        if self.rule:
            lines.append(f"  rule: {self.rule}")
        if self.entries:
            d = [e["duration"] for e in self.entries]
            lines.append(f"  duration: total {self.duration / 3600:.2f} h ({self.duration:.1f} s); per file min "
                         f"{min(d):.3f} s, median {statistics.median(d):.3f} s, max {max(d):.3f} s")
            rates = collections.Counter(e["sample_rate"] for e in self.entries)
            lines.append("  sample rates: " + ", ".join(f"{r} Hz ({n})" for r, n in sorted(rates.items())))
            chans = collections.Counter(e.get("channels") for e in self.entries)
            lines.append("  channels: " + ", ".join(f"{_channels_name(c)} ({n})" for c, n in
                                                     sorted(chans.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))))
            exts = collections.Counter(os.path.splitext(e["path"])[1].lower() or "(none)" for e in self.entries)
            lines.append("  formats: " + ", ".join(f"{x} ({n})" for x, n in sorted(exts.items())))
        lines += [f"  {n}" for n in self.notes]
        for name in label_fields_of(self.entries):
            values = collections.Counter(_hashable(e[name]) for e in self.entries if name in e)
            shown = sorted(values.items(), key=lambda kv: _sort_key(kv[0]))
            text = ", ".join(f"{_show(v)} ({n})" for v, n in shown[:MAX_CLASSES_SHOWN])
            more = f", ... and {len(shown) - MAX_CLASSES_SHOWN} more" if len(shown) > MAX_CLASSES_SHOWN else ""
            lacking = len(self.entries) - sum(values.values())
            lines.append(f"  label field {name!r}: {len(values)} class{'es' if len(values) != 1 else ''}: {text}{more}"
                         + (f"; {lacking} files without it" if lacking else ""))
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file{'s' if len(self.skipped) != 1 else ''}, by reason:")
            for kind, items in self.skipped_by_reason().items():
                lines.append(f"    {kind} ({len(items)}):")
                lines += [f"      skipped {p}: {r}" for p, r in items]
        lines.append(f"  manifest: written to {self.path} ({len(self.entries)} entries)" if self.path is not None
                     else "  manifest: not written (no out= given)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


def _reason_kind(reason: str) -> str:
    """The kind of a skip reason: its text before the details (`is too short: 0.01 s < ...` -> `is too short`)."""
    head = re.split(r":\s| \(", reason, maxsplit=1)[0].strip()
    return re.sub(r"\s+\d+\b", "", head) or reason


def _channels_name(c) -> str:
    return {1: "mono", 2: "stereo", None: "unknown"}.get(c, f"{c} channels")


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        return json.dumps(v, sort_keys=True)


def _sort_key(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v, "")
    return (1, 0, str(v))


def _show(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


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
        raise ManifestUsageError(f"manifest {path} does not exist" + (
            f"; it is a folder: make its manifest with `audiodiff prepare source={path}`" if path.is_dir() else
            " (make one with `audiodiff prepare source=<folder of audio>`)"))
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
def probe(path, min_duration: float = 0.05, decode: bool = True, silence_db: float | None = -60.0) -> dict:
    """One file's `{"path", "duration", "sample_rate", "channels"}`, after decoding it in full.

    Args:
        min_duration: a file shorter than this (seconds) is refused as too short.
        decode: read every sample with :func:`audiodiff.audio.load` (which refuses truncated files and NaN or
            infinite samples); the duration is then the decoded sample count over the rate (an MP3's header
            count is only an estimate). False reads the header only (fast, but a damaged body or a silent
            file goes unnoticed, and the duration is the header's).
        silence_db: with `decode`, a file whose peak is below this many dBFS (an all-zero file included) is
            refused as silent; None keeps silent files.
    Raises:
        AudioError: missing, empty (0 bytes), undecodable, truncated, NaN / infinite samples, no samples,
            shorter than `min_duration` s, or silent.
    """
    i = _audio.info(path)
    if i.frames <= 0:
        raise _audio.AudioError(path, "contains no samples")
    frames = i.frames
    x = None
    if decode:
        x, _ = _audio.load(path, mono=False)
        frames = int(x.shape[-1])
    duration = frames / i.samplerate
    if duration < min_duration:
        raise _audio.AudioError(path, f"is too short: {duration:.4f} s < min_duration {min_duration} s")
    if x is not None and silence_db is not None:
        peak = float(x.abs().max())
        peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
        if peak_db < silence_db:
            raise _audio.AudioError(path, f"is silent (peak {peak_db:.1f} dBFS, below {silence_db:g} dBFS)")
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


# --------------------------------------------------------------------------- candidates
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
            raise ManifestUsageError(f"{path}: no '{path_column}' column; columns are {cols}; "
                                     "name the file column with path_column=<column>")
        if label_fields is not None:
            unknown = [c for c in label_fields if c not in cols]
            if unknown:
                raise ManifestUsageError(f"{path}: label field(s) {unknown} not in columns {cols}")
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


# --------------------------------------------------------------------------- labels
def _label_rule(label_from) -> tuple[str | None, re.Pattern | None]:
    """Check `label_from` up front: `(None, None)` when not given, `("folder" | "none", None)`, or
    `("regex", pattern)` for a regular expression with at least one named group."""
    if label_from is None:
        return None, None
    if label_from in ("folder", "none"):
        return label_from, None
    try:
        pattern = re.compile(label_from) if isinstance(label_from, str) else None
    except re.error:
        pattern = None
    if pattern is None or not pattern.groupindex:
        raise ManifestUsageError(LABEL_FROM_HELP.format(value=label_from))
    return "regex", pattern


def _first_folder(path: Path, root: Path) -> str | None:
    """The name of the first-level sub-folder of `root` that holds `path`; None for a file lying directly in
    `root` (or outside it)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return None
    return parts[0] if len(parts) >= 2 else None


class _LeftOut(Exception):
    """A candidate the label rule leaves out (not a damaged file); the message is the reason."""


def _labels_from_name(path: Path, mode: str, pattern: re.Pattern | None, root: Path) -> dict:
    if mode == "folder":
        name = _first_folder(path, root)
        if name is None:
            where = "directly in" if path.parent == root else "outside"
            raise _LeftOut(f"lies {where} {root}, not in a sub-folder naming its class (label_from=folder)")
        return {"label": name}  # a folder name stays a string: a folder "3" is the class "3"
    m = pattern.fullmatch(path.name)
    if m is None:
        raise _LeftOut(f"file name does not match label_from (pattern {pattern.pattern!r})")
    return {k: _parse_scalar(v) for k, v in m.groupdict().items() if v is not None}


def _label_value(table: Path, where: str, name: str, value):
    if value is None or isinstance(value, (str, int, float)):
        return value.strip() if isinstance(value, str) else value
    raise ManifestError(f"labels table {table}: {where}, field {name!r} holds a {type(value).__name__}; "
                        "allowed: a string or a number")


def _read_labels_table(table: Path, label_fields, path_column: str) -> tuple[list[tuple[str, str, dict]], list[str]]:
    """Rows `(where, file as written, labels)` of a labels table (CSV or JSON), and its label field names.

    CSV: a `path` / `file` column (or `path_column`) and label columns; cells stay strings, an empty cell is no
    label. JSON: `{"rel/path.wav": "yes", ...}` (field `label`; a value may also be an object of fields) or a
    list of objects each with `path` / `file` and label fields; numbers stay numbers, strings strings.
    """
    if not table.is_file():
        what = "is a folder" if table.is_dir() else "does not exist"
        raise ManifestUsageError(f"labels table {table} {what}; give labels=<table.csv|table.json> naming each "
                                 "file (path relative to the source folder) and its label")
    kind = table.suffix.lower()
    if kind not in (".csv", ".json"):
        raise ManifestUsageError(f"labels table {table}: expected a .csv or .json file, got {table.suffix!r}")
    path_keys = list(dict.fromkeys([path_column, "path", "file"]))
    rows: list[tuple[str, str, dict]] = []
    try:
        if kind == ".csv":
            with open(table, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                cols = reader.fieldnames or []
                pc = next((c for c in path_keys if c in cols), None)
                if pc is None:
                    raise ManifestUsageError(f"labels table {table} has no {' or '.join(map(repr, path_keys))} "
                                             f"column naming the files; columns are {cols}")
                fields = [c for c in cols if c not in path_keys and c not in FILE_FIELDS]
                for n, row in enumerate(reader, 2):
                    if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                        continue  # a blank line
                    name = (row.get(pc) or "").strip()
                    if not name:
                        raise ManifestError(f"labels table {table}, line {n}: the {pc!r} cell is empty")
                    rows.append((f"line {n}", name, {c: row[c].strip() for c in fields
                                                     if isinstance(row.get(c), str) and row[c].strip()}))
        else:
            with open(table, encoding="utf-8-sig") as f:
                data = json.load(f)
            fields_seen: dict[str, None] = {}
            if isinstance(data, dict):
                for name, value in data.items():
                    labels = value if isinstance(value, dict) else {"label": value}
                    rows.append((f"key {name!r}", name, labels))
            elif isinstance(data, list):
                for n, item in enumerate(data):
                    pc = next((c for c in path_keys if isinstance(item, dict) and c in item), None)
                    if pc is None or not isinstance(item[pc], str) or not item[pc].strip():
                        raise ManifestError(f"labels table {table}, item {n}: expected an object with a "
                                            f"{' or '.join(map(repr, path_keys))} string naming the file")
                    rows.append((f"item {n}", item[pc].strip(), {k: v for k, v in item.items() if k not in path_keys}))
            else:
                raise ManifestError(f"labels table {table}: expected an object {{file: label}} or a list of objects "
                                    f"with 'path' or 'file'; got a {type(data).__name__}")
            for where, _, labels in rows:
                for k in list(labels):
                    if k in FILE_FIELDS:
                        del labels[k]
                        continue
                    labels[k] = _label_value(table, where, k, labels[k])
                    fields_seen[k] = None
                for k in [k for k, v in labels.items() if v is None or v == ""]:
                    del labels[k]
            fields = list(fields_seen)
    except json.JSONDecodeError as e:
        raise ManifestError(f"labels table {table} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"labels table {table} cannot be read ({_one_line(e)})") from None
    if label_fields is not None:
        unknown = [c for c in label_fields if c not in fields]
        if unknown:
            raise ManifestUsageError(f"labels table {table}: label field(s) {unknown} not in it; "
                                     f"its fields are {fields}")
        fields = [c for c in fields if c in label_fields]
        rows = [(w, p, {k: v for k, v in labels.items() if k in fields}) for w, p, labels in rows]
    if not fields:
        raise ManifestUsageError(f"labels table {table} has no label field besides the file names")
    return rows, fields


def _match_table(table: Path, rows, candidates: list[Path], root: Path) -> tuple[dict[Path, dict], list[str]]:
    """Map each table row to a candidate: by its path relative to `root`, or by its file name when that is unique.
    Returns `(labels by candidate, rows naming no candidate)`."""
    by_rel = {p.relative_to(root).as_posix(): p for p in candidates}
    by_name: dict[str, list[Path]] = {}
    for p in candidates:
        by_name.setdefault(p.name, []).append(p)
    found: dict[Path, dict] = {}
    first_row: dict[Path, str] = {}
    missing = []
    for where, text, labels in rows:
        name = text.replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        if os.path.isabs(name):
            for base in (root, root.resolve()):
                try:
                    name = Path(name).relative_to(base).as_posix()
                    break
                except ValueError:
                    continue
        p = by_rel.get(name)
        if p is None and "/" not in name:
            same = by_name.get(name, [])
            if len(same) > 1:
                raise ManifestError(f"labels table {table}, {where}: {text!r} matches {len(same)} files "
                                    f"({', '.join(q.relative_to(root).as_posix() for q in same[:3])}); "
                                    f"give its path relative to {root}")
            p = same[0] if same else None
        if p is None:
            missing.append(text)
            continue
        if p in found and found[p] != labels:
            raise ManifestError(f"labels table {table} gives {p.relative_to(root).as_posix()} twice with different "
                                f"labels ({first_row[p]}: {found[p]}, {where}: {labels})")
        found[p], first_row[p] = labels, first_row.get(p, where)
    return found, missing


def _one_line(e) -> str:
    return " ".join(str(e).split())[:200]


# --------------------------------------------------------------------------- building
def _check_arguments(min_duration, silence_db, max_fail_fraction) -> None:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not number(min_duration) or min_duration < 0:
        raise ManifestUsageError(f"min_duration={min_duration!r} is not allowed; allowed: a number of seconds >= 0")
    if silence_db is not None and (not number(silence_db) or silence_db > 0):
        raise ManifestUsageError(f"silence_db={silence_db!r} is not allowed; allowed: a number of dBFS <= 0 "
                                 "(e.g. -60), or None to keep silent files")
    if not number(max_fail_fraction) or not 0 <= max_fail_fraction <= 1:
        raise ManifestUsageError(f"max_fail_fraction={max_fail_fraction!r} is not allowed; allowed: a number "
                                 "in [0, 1]")


def _rule(min_duration, silence_db, decode: bool) -> str:
    if not decode:
        return (f"headers only (decode=False): a file is left out when its header cannot be read, it holds no "
                f"samples or it is shorter than min_duration={min_duration} s")
    silent = (f" or is silent (peak below silence_db={silence_db:g} dBFS)" if silence_db is not None
              else " (silent files kept: silence_db=None)")
    return ("a file is left out when it cannot be decoded, is empty, truncated, holds NaN or infinite samples, "
            f"is shorter than min_duration={min_duration} s{silent}")


def build_manifest(source, out=None, min_duration: float = 0.05, label_fields: Sequence[str] | None = None,
                   label_from: str | None = None, path_column: str = "path",
                   extensions: Sequence[str] = AUDIO_EXTENSIONS, max_fail_fraction: float = 0.5,
                   decode: bool = True, progress: bool | None = None, silence_db: float | None = -60.0,
                   labels=None) -> ManifestReport:
    """Build a manifest from a folder (recursive), a CSV or a JSONL, decoding every file in full.

    A file is left out, with its reason in the report, when it cannot be decoded, is empty, truncated, holds NaN
    or infinite samples, is shorter than `min_duration` seconds, or is silent (its peak below `silence_db` dBFS,
    an all-zero file included); also when the label rule cannot name it (see `label_from`, `labels`). The log
    gets one warning counting the reasons; `str(report)` lists every skipped file, grouped by reason.

    Args:
        source: a folder (every file whose extension is in `extensions`, matched case-insensitively, in every
            sub-folder, sorted), a `.csv` (a `path_column` plus label columns; numeric cells become
            int/float), or a `.jsonl` manifest (re-probed; its label fields kept). Relative paths are relative
            to the CSV/JSONL's folder.
        out: write the manifest here (JSONL); None only returns it.
        min_duration: files shorter than this (seconds) are left out as "too short".
        label_fields: which CSV/JSONL columns (or labels-table fields) to keep as labels; None keeps all.
        label_from: where labels come from, checked before any file is read:
            `"folder"`: `{"label": <the first-level sub-folder of the source folder>}` as a string
            (`my_wavs/yes/session1/a.wav` -> "yes"; a file lying directly in the source is left out);
            `"none"`: no labels from names or folders;
            a regex with named groups matched against the whole file name (e.g. FSDD's
            `(?P<label>\\d)_(?P<speaker>\\w+)_\\d+\\.wav`; numbers become int/float); a name that does not
            match is left out with that reason.
            None (the default): for a folder source whose every file lies inside a first-level sub-folder, with
            at least 2 such sub-folders, labels come from the sub-folder names as with `"folder"`; otherwise none.
        labels: a labels table for a folder source, `.csv` (a `path` or `file` column: the path relative to
            the source folder, or the file name when it is unique; the other columns are label fields, kept
            as strings) or `.json` (`{"rel/path.wav": "yes", ...}`, field `label`, or a list of objects with
            `path` / `file` and label fields; numbers stay numbers). Files missing from the table are left out
            ("not in the labels table"); rows naming files that are not there get one warning.
        path_column: the CSV source's file column (also tried first in a labels table).
        max_fail_fraction: raise when more than this fraction of the candidates is unusable (files a labels
            table leaves out do not count).
        decode: decode every file (default), so that truncated, NaN / infinite and silent files are left out
            here with the reason; False checks headers only.
        progress: a tqdm progress bar; None shows one for 50 or more files on a terminal.
        silence_db: the silence threshold in dBFS (<= 0); None keeps silent files.
    Returns:
        :class:`ManifestReport` (entries sorted by path, skipped files with reasons, written path, summary).
    Raises:
        ManifestUsageError: a bad argument (`label_from`, `min_duration`, `silence_db`, `max_fail_fraction`,
            `labels` or `label_fields` naming what is not there) or a source that does not exist.
        ManifestError: no candidates, an unreadable labels table, no file kept, or too many failures (lists a
            few reasons).
    """
    source = Path(source)
    _check_arguments(min_duration, silence_db, max_fail_fraction)
    mode, pattern = _label_rule(label_from)
    if source.is_dir():
        kind = "folder"
    elif source.is_file() and source.suffix.lower() == ".csv":
        kind = "csv"
    elif source.is_file() and source.suffix.lower() in (".jsonl", ".json"):
        kind = "jsonl"
    elif not source.exists():
        raise ManifestUsageError(f"source {source} does not exist; give a folder of audio, a .csv or a .jsonl "
                                 "manifest")
    else:
        raise ManifestUsageError(f"source {source}: expected a folder, a .csv or a .jsonl file")
    table_rows = None
    if labels is not None:
        labels = Path(labels)
        if kind != "folder":
            raise ManifestUsageError(f"labels={labels} is for a folder source; {source} is a {kind.upper()} file: "
                                     "put the labels in its columns")
        table_rows, table_fields = _read_labels_table(labels, label_fields, path_column)
        name_fields = ["label"] if mode == "folder" else list(pattern.groupindex) if mode == "regex" else []
        both = [f for f in table_fields if f in name_fields]
        if both:
            raise ManifestUsageError(f"labels={labels} and label_from={label_from} both give the field(s) {both}; "
                                     "use one of them")
    if kind == "folder":
        candidates = _candidates_from_folder(source, extensions)
    elif kind == "csv":
        candidates = _candidates_from_csv(source, path_column, label_fields)
    else:
        candidates = _candidates_from_jsonl(source, label_fields)
    if not candidates:
        raise ManifestError(f"{source}: no audio files found (extensions {sorted(set(extensions))})")

    report = ManifestReport(source=source, rule=_rule(min_duration, silence_db, decode))
    root = source if kind == "folder" else source.resolve().parent
    labels_note = None
    if mode is None and kind == "folder" and table_rows is None:
        folders = collections.Counter(_first_folder(p, source) for p, _ in candidates)
        direct = folders.pop(None, 0)
        if len(folders) >= 2 and not direct:
            mode = "auto"
        elif len(folders) >= 2:
            they = "them" if direct != 1 else "it"
            labels_note = (f"no labels: {direct} file{'s lie' if direct != 1 else ' lies'} directly in {source} "
                           f"(the others in {len(folders)} sub-folders); move {they} into sub-folders for labels "
                           f"from the sub-folder names, or give label_from=folder to leave {they} out")
    left_out: list[tuple[Path, str]] = []  # chosen out by the labels table: not counted as failures
    if table_rows is not None:
        found, missing = _match_table(labels, table_rows, [p for p, _ in candidates], source)
        if missing:
            head = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            rows_name = "rows name files that are" if len(missing) != 1 else "row names a file that is"
            msg = f"labels table {labels}: {len(missing)} {rows_name} not audio files in {source}: {head}"
            log.warning("%s", msg)
            report.notes.append(msg)
        if not found:
            raise ManifestError(f"labels table {labels} names none of the {len(candidates)} audio files in {source} "
                                f"(e.g. {table_rows[0][1]!r}); give paths relative to {source}, or file names")
        kept = []
        for p, lab in candidates:
            if p in found:
                kept.append((p, {**lab, **found[p]}))
            else:
                left_out.append((p, f"not in the labels table {labels}"))
        candidates = kept

    from tqdm.auto import tqdm

    bar = tqdm(candidates, desc=f"prepare {source.name or source}", unit="file", dynamic_ncols=True,
               disable=(len(candidates) < 50 or None) if progress is None else not progress)
    for p, lab in bar:
        try:
            if mode in ("folder", "auto", "regex"):
                lab = {**lab, **_labels_from_name(p, "folder" if mode == "auto" else mode, pattern, root)}
            e = probe(p, min_duration, decode=decode, silence_db=silence_db)
        except _LeftOut as why:
            report.skipped.append((str(p), str(why)))
            continue
        except _audio.AudioError as err:
            report.skipped.append((str(p), err.problem))
            continue
        e.update(lab)
        report.entries.append(e)
    report.entries.sort(key=lambda e: e["path"])
    n_tried = len(report.skipped)
    report.skipped += [(str(p), r) for p, r in left_out]
    report.notes.insert(0, labels_note or _labels_note(mode, label_from, labels, kind, report.entries))
    fail = n_tried / len(candidates) if candidates else 0.0
    if fail > max_fail_fraction or not report.entries:
        head = "; ".join(f"{p}: {r}" for p, r in report.skipped[:5])
        raise ManifestError(
            f"{source}: {n_tried} of {len(candidates)} files are unusable "
            f"({'none kept' if not report.entries else f'> {max_fail_fraction:.0%}'}); first: {head}")
    if report.skipped:
        counts = ", ".join(f"{k} ({len(v)})" for k, v in report.skipped_by_reason().items())
        head = ", ".join(p for p, _ in report.skipped[:5]) + (", ..." if len(report.skipped) > 5 else "")
        log.warning("manifest %s: %d of %d files left out: %s; first: %s (the printed report lists each with its "
                    "reason)", source, len(report.skipped), report.total, counts, head)
    if out is not None:
        report.path = write_manifest(report.entries, out)
    return report


def _labels_note(mode, label_from, table, kind, entries) -> str:
    """The summary's line on where the labels come from."""
    if table is not None:
        names = label_fields_of(entries)
        return f"labels: from the table {table} (field{'s' if len(names) != 1 else ''} {', '.join(map(repr, names))})"
    if mode == "auto":
        n = len({e["label"] for e in entries})
        return (f"labels: from sub-folder names (field 'label'), {n} class{'es' if n != 1 else ''}; "
                "label_from=none to leave them out")
    if mode == "folder":
        n = len({e["label"] for e in entries})
        return f"labels: from sub-folder names (field 'label', label_from=folder), {n} class{'es' if n != 1 else ''}"
    if mode == "regex":
        fields = ", ".join(map(repr, re.compile(label_from).groupindex))
        return f"labels: from file names (label_from={label_from}), fields {fields}"
    if kind != "folder":
        names = label_fields_of(entries)
        return (f"labels: from the {kind.upper()} source's fields ({', '.join(map(repr, names))})" if names
                else f"labels: none (the {kind.upper()} source has no label fields)")
    if mode == "none":
        return "labels: none (label_from=none)"
    return ("labels: none (give label_from=folder, label_from=<regex with (?P<name>...)> or "
            "labels=<table.csv|table.json> to add them)")


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
        raise ManifestUsageError(f"valid_fraction must be in [0, 1); got {valid_fraction}")
    n = len(entries)
    if n == 0 or valid_fraction == 0:
        return list(entries), []
    if group_by is not None:
        missing = [e["path"] for e in entries if group_by not in e]
        if missing:
            raise ManifestUsageError(f"split_manifest: {len(missing)} entries lack group_by field {group_by!r}, "
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
