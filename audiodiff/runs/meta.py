"""The run meta: which kind of model a run holds and in which format, written once and checked on every load.

Every checkpoint's `meta.json` (diffusion and vocoder runs) and every judge folder's `meta.json` holds
`"kind"` (one of :data:`KINDS`) and `"format_version"` (:data:`FORMAT_VERSION`). A reader names the kind it
expects and gets a :class:`RunKindError` that names the file, the kind found and the kind expected, instead of
a `KeyError` deep in the loader.

Older runs still load. `format_version` missing means 0, the format before this field: a diffusion checkpoint
may lack `kind` (it is a diffusion model), a vocoder checkpoint names its kind in `task`, a judge folder has only
`judge.json`, and a folder written by `Vocoder.save` only `vocoder.json`.

This module is the bottom of the run format: it also holds the error every reader of a run raises
(:class:`CheckpointError`) and the reading of a run's JSON files; :mod:`.checkpoint` (run directories, checkpoint
I/O) builds on it, and it imports nothing of the run format itself.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import AudiodiffError, UsageError
from ..jsonfile import read_json

KINDS = ("diffusion", "vocoder", "judge")
FORMAT_VERSION = 1
META_FILE = "meta.json"
# folders that predate meta.json, recognised by the file their writer puts there
_OLD_FOLDER_FILES = (("vocoder.json", "vocoder"), ("judge.json", "judge"))

_WHAT_READS = {
    "diffusion": "Pipeline.from_pretrained, train.init_from and a resumed diffusion run take a diffusion run",
    "vocoder": "load_vocoder takes a vocoder folder (Vocoder.save) or a vocoder training run",
    "judge": "Judge.load takes a folder written by `audiodiff evaluate train-judge`",
}


DAMAGED_HINT = "the file is damaged or was cut short (an interrupted copy?): copy the run again or load another step"


class CheckpointError(AudiodiffError, ValueError):
    """A run or checkpoint directory is missing or incomplete; the message names it."""


class RunKindError(UsageError, CheckpointError):
    """A run, checkpoint or folder holds another kind of model than the reader takes; names the file and both kinds."""


# The data settings that define what a diffusion model means (its representation, rate, segment, loudness policy,
# crops and conditions; with the representation's own settings, e.g. a mel model's contract `mel`): a fine-tune
# adopts them from its base (training/finetune.py), and a shipped base stores them in its meta.json
# (runs/export.py), having no config.yaml of its own.
ADOPTED_DATA_KEYS = ("representation", "precompute_mel", "sample_rate", "segment_seconds", "loudness_db",
                     "random_crop", "conditions")


def read_json_file(path: Path):
    """A JSON object from a run's file (`meta.json`, `mel.json`, ...); CheckpointError naming the file when it is
    empty, not JSON or not an object."""
    return read_json(path, CheckpointError, DAMAGED_HINT)


def header(kind: str) -> dict:
    """The fields every `meta.json` starts with: `{"kind": kind, "format_version": FORMAT_VERSION}`."""
    if kind not in KINDS:
        raise CheckpointError(f"meta.json: kind {kind!r} is not allowed; allowed: {list(KINDS)}")
    return {"kind": kind, "format_version": FORMAT_VERSION}


def read_kind(meta: dict, path) -> tuple[str, int]:
    """`(kind, format_version)` of a parsed `meta.json` at `path` (format 0: kind from `task`, else diffusion).

    Raises:
        CheckpointError: a format version this code does not read, or a kind outside :data:`KINDS` (names `path`).
    """
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version!r} is not supported; allowed: an integer 0.."
                              f"{FORMAT_VERSION} (a run written by a newer audiodiff needs that version)")
    kind = meta.get("kind")
    if kind is None and "task" in meta:  # vocoder runs of format 0 wrote their kind as `task`
        kind = meta["task"]
    if kind is None:
        if version > 0:
            raise CheckpointError(f"{path}: has format_version {version} but no 'kind'; allowed kinds: {list(KINDS)}")
        kind = "diffusion"  # diffusion checkpoints of format 0 may lack `kind`
    if kind not in KINDS:
        raise CheckpointError(f"{path}: kind {kind!r} is not allowed; allowed: {list(KINDS)}")
    return kind, version


def check_kind(found: str, path, expected: str) -> None:
    """Raise :class:`RunKindError` naming `path` unless the kind `found` there is `expected`."""
    if found != expected:
        raise RunKindError(f"{path}: holds a {found!r} run, expected a {expected!r} run ({_WHAT_READS[expected]})")


def folder_kind(path) -> tuple[str, Path] | None:
    """`(kind, file that says so)` for a folder holding `meta.json`, or an older vocoder / judge folder; else None.

    A run directory (its meta lives in `checkpoints/<step>/`) gives None: :func:`~audiodiff.runs.checkpoint.kind_at`
    reads the kind of its newest complete checkpoint.
    """
    d = Path(path)
    if not d.is_dir():
        return None
    meta_path = d / META_FILE
    if meta_path.is_file():
        return read_kind(read_json_file(meta_path), meta_path)[0], meta_path
    for name, kind in _OLD_FOLDER_FILES:
        if (d / name).is_file():
            return kind, d / name
    return None


def write_meta(directory, kind: str, **fields) -> Path:
    """Write `directory/meta.json` with :func:`header` and `fields` (temporary name, then rename); returns its path."""
    path = Path(directory) / META_FILE
    tmp = path.with_name(f".{META_FILE}.tmp")
    tmp.write_text(json.dumps({**header(kind), **fields}, indent=2))
    tmp.replace(path)
    return path
