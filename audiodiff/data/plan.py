"""Data settings chosen from the data: every `auto` of a manifest's data section resolved, and the summary of a run.

`audiodiff train data.manifest=M` with no experiment (`configs/experiment/own.yaml`, data `configs/data/custom.yaml`)
leaves the settings that depend on the recordings as `auto`; :func:`plan_data` reads the manifest once and picks
them by the rules below, which follow what the recipes measured best on a 2-core CPU (recipes/fsdd: a mel
1-D U-Net + Griffin-Lim at 8 kHz; recipes/sax: the same at 16 kHz):

- `representation: auto`: the representation the network is made for (:func:`audiodiff.representations.for_model`:
  a mel for a mel network, `mel_bands` set or `unet2d`, else the waveform), so the data section never contradicts
  the model;
- `sample_rate: auto`: the most common rate of the files, capped at 16 kHz (CPU minutes grow with the rate), as the
  representation takes it (a mel model: the highest rate at or below it that has a mel contract in `configs/mel/`,
  8000, 16000 or 22050 Hz); files at another rate are resampled when read;
- the representation's own `auto` settings (a mel model's `mel: auto`: that rate's contract, so a mel model and its
  vocoder pair); another representation's `auto` settings are dropped;
- `segment_seconds: auto`: the 90th percentile of the durations rounded up to a quarter second, within
  [0.5, 2.0] s (longer clips are cropped, shorter ones zero-padded);
- `random_crop: auto`: true when the median file is more than 1.5 segments long (long recordings: crops anywhere),
  false otherwise (clips start at their onset, as the digit and note recipes train);
- `loudness_db: auto`: -20 dBFS (each file normalised, as the fsdd and sax recipes do);
- `conditions: auto`: class labels from the field `label` when every file has one and there are at least 2 and
  at most half as many classes as files (one file per class is not a class); pitch from a numeric field `pitch`.

:func:`describe_data` is the summary every manifest run logs before its first step: items, hours, durations, the
rates found and the one used, classes with their counts, the held-out split, and the representation, mel contract
and network chosen. Nothing here draws from a random generator.
"""
from __future__ import annotations

import collections
import math
import numbers
import statistics
from pathlib import Path
from typing import Sequence

from .. import representations
from ..conditions import label_fields_of
from ..errors import UsageError

AUTO = "auto"
CPU_MAX_RATE = 16000
SEGMENT_RANGE = (0.5, 2.0)
AUTO_KEYS = ("representation", "sample_rate", "segment_seconds", "random_crop", "loudness_db", "conditions")
LABEL_FIELD, PITCH_FIELD = "label", "pitch"

__all__ = ["AUTO", "AUTO_KEYS", "DataPlanError", "plan_data", "has_auto", "describe_data", "choose_rate"]


class DataPlanError(UsageError):
    """An `auto` data setting cannot be chosen from this manifest; the message names the setting and what to give."""


def _settings_keys() -> set:
    return set().union(*(cls.settings_keys for cls in representations.REPRESENTATIONS.values()))


def has_auto(data: dict) -> bool:
    """True when a data setting (of :data:`AUTO_KEYS` or a representation's) is `auto`: it must be resolved before
    the data is built."""
    return any(data.get(k) == AUTO for k in (*AUTO_KEYS, *_settings_keys()))


def choose_rate(rates: Sequence[int], representation: type) -> int:
    """The model rate for files at `rates`: the most common (ties: the higher), capped at :data:`CPU_MAX_RATE`, as
    `representation` (a class of :mod:`audiodiff.representations`) takes it."""
    counts = collections.Counter(int(r) for r in rates)
    top = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return representation.choose_rate(top, CPU_MAX_RATE)


def _segment(durations: list[float]) -> float:
    q = _quantile(durations, 0.9)
    lo, hi = SEGMENT_RANGE
    return float(min(hi, max(lo, math.ceil(q * 4 - 1e-9) / 4)))


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = q * (len(s) - 1)
    i = int(math.floor(pos))
    return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (pos - i)


def _auto_conditions(entries: list[dict]) -> tuple[dict, list[str]]:
    notes, conds = [], {}
    n = len(entries)
    if all(LABEL_FIELD in e for e in entries):
        classes = len({(type(e[LABEL_FIELD]).__name__, e[LABEL_FIELD]) for e in entries})
        if 2 <= classes <= n / 2:
            conds["labels"] = LABEL_FIELD
        else:
            notes.append(f"field {LABEL_FIELD!r} has {classes} value(s) over {n} files, so it is not used as a class "
                         "condition (needs at least 2, and at most half as many as files)")
    if all(isinstance(e.get(PITCH_FIELD), numbers.Real) and not isinstance(e.get(PITCH_FIELD), bool) for e in entries):
        conds["pitch"] = PITCH_FIELD
    others = [f for f in label_fields_of(entries) if f not in conds.values()]
    if others:
        notes.append(f"other fields {others} are not conditions (data.conditions={{labels:{others[0]}}} would "
                     "use one)")
    return conds, notes


def plan_data(data: dict, model: dict, entries: list[dict] | None = None) -> tuple[dict, list[str]]:
    """`(data, notes)`: a copy of the data section with every `auto` of :data:`AUTO_KEYS` chosen from the manifest.

    Args:
        data: a `kind: manifest` data section (values given are kept as they are).
        model: the model section (a mel network makes `representation: auto` a mel).
        entries: the manifest's entries when already read (else read from `data["manifest"]`).
    Returns:
        the resolved section and one line per choice made (for the run's summary).
    Raises:
        DataPlanError: `auto` on built-in notes, an empty manifest, or `mel: auto` at a rate with no contract.
    """
    data = dict(data)
    if not has_auto(data):
        return data, []
    if data.get("kind", "manifest") != "manifest":
        bad = [k for k in AUTO_KEYS if data.get(k) == AUTO]
        raise DataPlanError(f"data.{bad[0]}=auto is chosen from a manifest's recordings, but data.kind="
                            f"{data.get('kind')!r}; allowed: a value (see configs/data/)")
    if entries is None:
        from .manifest import read_manifest

        entries = read_manifest(data["manifest"])
    if not entries:
        raise DataPlanError(f"data.manifest={data['manifest']} lists no files; nothing to choose settings from")
    notes = []
    if data.get("representation") == AUTO:
        data["representation"] = representations.for_model(model).name
        notes.append(f"representation: {data['representation']} (what model {model.get('name')} is made for)")
    rep = representations.representation_class(data.get("representation", "waveform"))
    rates = [int(e["sample_rate"]) for e in entries]
    if data.get("sample_rate") == AUTO:
        data["sample_rate"] = choose_rate(rates, rep)
        top = collections.Counter(rates).most_common(1)[0][0]
        why = "the files' rate" if data["sample_rate"] == top else \
            f"most files are {top} Hz; at most {CPU_MAX_RATE} Hz on a CPU, as the {rep.name} representation takes it"
        notes.append(f"sample rate: {data['sample_rate']} Hz ({why}; data.sample_rate=<Hz> to choose)")
    try:
        notes += rep.plan(data)  # its own `auto` settings (a mel model's contract)
    except representations.RepresentationError as e:
        raise DataPlanError(str(e)) from None
    for key in _settings_keys() - set(rep.settings_keys):  # another representation's `auto`: not this run's
        if data.get(key) == AUTO:
            del data[key]
    durations = [float(e["duration"]) for e in entries]
    if data.get("segment_seconds") == AUTO:
        data["segment_seconds"] = _segment(durations)
        notes.append(f"segment: {data['segment_seconds']:g} s (90% of the files are at most "
                     f"{_quantile(durations, 0.9):.2f} s; within {SEGMENT_RANGE[0]:g}-{SEGMENT_RANGE[1]:g} s)")
    if data.get("random_crop") == AUTO:
        seg = float(data["segment_seconds"])
        data["random_crop"] = statistics.median(durations) > 1.5 * seg
        notes.append("crops: " + ("anywhere in the file (the median file is longer than 1.5 segments)"
                                  if data["random_crop"] else "from the start of each file (clips start at their "
                                  "onset; shorter ones are zero-padded)"))
    if data.get("loudness_db") == AUTO:
        data["loudness_db"] = -20.0
        notes.append("loudness: each file normalised to -20 dBFS (data.loudness_db=null keeps the recorded levels)")
    if data.get("conditions") == AUTO:
        data["conditions"], more = _auto_conditions(entries)
        notes.append(f"conditions: {data['conditions'] or 'none (unconditional)'}")
        notes += more
    return data, notes


def describe_data(entries: list[dict], data: dict, train: int, valid: int, model: dict | None = None,
                  parameters: int | None = None) -> list[str]:
    """The summary lines a manifest run logs before its first step (see the module docstring)."""
    n = len(entries)
    durations = [float(e["duration"]) for e in entries]
    rates = collections.Counter(int(e["sample_rate"]) for e in entries)
    hours = sum(durations) / 3600
    total = f"{hours:.2f} h" if hours >= 0.1 else f"{hours * 60:.1f} min"
    lines = [f"data: {data.get('manifest')}: {n} files, {total} (durations {min(durations):.2f}-"
             f"{max(durations):.2f} s, median {statistics.median(durations):.2f} s)"]
    found = ", ".join(f"{r} Hz x {c}" for r, c in sorted(rates.items()))
    lines.append(f"  sample rates found: {found}; model rate {data.get('sample_rate')} Hz"
                 + (" (others resampled when read)" if set(rates) != {data.get("sample_rate")} else ""))
    conds = data.get("conditions") or {}
    if "labels" in conds:
        fld = conds["labels"]
        counts = collections.Counter(str(e.get(fld)) for e in entries)
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())[:20])
        more = f", ... ({len(counts)} in all)" if len(counts) > 20 else ""
        lines.append(f"  classes ({fld}): {len(counts)}: {shown}{more}")
    if "pitch" in conds:
        ps = [float(e[conds["pitch"]]) for e in entries if conds["pitch"] in e]
        lines.append(f"  pitch ({conds['pitch']}): MIDI {min(ps):g}-{max(ps):g}")
    if not conds:
        lines.append("  conditions: none (an unconditional model)")
    lines.append(f"  split: {train} train / {valid} held out (data.valid_fraction={data.get('valid_fraction', 0.1)})")
    if data.get("pitch_shift"):
        lines.append(f"  pitch-shifted training copies: {list(data['pitch_shift'])} semitones, inside the recorded "
                     "range (data.pitch_shift)")
    try:
        what = f"  representation: {representations.from_data(data).describe()}"
    except Exception:  # a summary never stops a run: the data build names what is wrong
        what = f"  representation: {data.get('representation', 'waveform')}"
    what += f"; segment {float(data.get('segment_seconds', 0)):g} s; loudness " + \
            ("as recorded" if data.get("loudness_db") is None else f"{data['loudness_db']:g} dBFS")
    lines.append(what)
    if model is not None:
        size = f", {parameters / 1e6:.1f} M parameters" if parameters else ""
        lines.append(f"  model: {model.get('name')}{size}")
    return lines


def manifest_fingerprint(entries: list[dict], root: str | Path | None = None) -> dict:
    """`{"sha256", "files"}` of a manifest's content: every entry's path (relative to `root` when inside it),
    duration, rate and fields, in order. Two manifests that list the same recordings with the same labels share it."""
    import hashlib
    import json

    h = hashlib.sha256()
    base = Path(root).resolve() if root is not None else None
    for e in entries:
        p = Path(e["path"])
        if base is not None:
            try:
                p = p.resolve().relative_to(base)
            except ValueError:
                pass
        row = {**e, "path": p.as_posix()}
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return {"sha256": h.hexdigest(), "files": len(entries)}
