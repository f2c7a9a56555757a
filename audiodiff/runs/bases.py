"""Trained bases that ship inside the package, loadable by name wherever a run folder is accepted.

A base is a checkpoint folder under `audiodiff/bases/<name>/`: `model.safetensors` (the EMA weights of the run it
was exported from, stored as int8 per output channel to stay small: :mod:`.quant`), `meta.json` (the run's meta,
its data settings under `data` for fine-tunes to adopt, and `base`: its name and where it came from), `mel.json`
for mel models, and `README.md`, its model card (data and license, the command that trained it, minutes and
hardware, measured quality with the command that measured it).

`Pipeline.from_pretrained("digits")`, `audiodiff generate run=digits`, `audiodiff finetune train.init_from=digits`
and `audiodiff serve run=digits` all reach it through :func:`resolve_run`, which every run loader calls: a path that
exists is that path (a folder of yours named like a base wins, and the log says so); otherwise a base's name is
its folder; anything else is a :class:`~audiodiff.runs.checkpoint.RunNotFoundError` naming the bases. This module
reads no checkpoint: it only maps names to folders.

:func:`audiodiff.runs.export.export_base` writes a base from a trained run (recipes/bases/run.sh calls it).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("audiodiff.runs")

BASES_DIR = Path(__file__).resolve().parents[1] / "bases"
CARD = "README.md"

__all__ = ["BASES_DIR", "CARD", "list_bases", "base_dir", "resolve_run", "describe"]


def list_bases() -> list[str]:
    """The names of the bases this installation ships (folders of `audiodiff/bases/` holding a `meta.json`)."""
    if not BASES_DIR.is_dir():
        return []
    return sorted(p.name for p in BASES_DIR.iterdir() if (p / "meta.json").is_file())


def base_dir(name: str) -> Path | None:
    """The folder of the shipped base `name`, or None when there is none by that name."""
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
        return None
    d = BASES_DIR / name
    return d if (d / "meta.json").is_file() else None


def resolve_run(path) -> Path | None:
    """`path` when it exists, else the shipped base of that name, else None (the caller says what is missing)."""
    p = Path(path)
    d = base_dir(str(path))
    if p.exists():
        if d is not None and p.resolve() != d.resolve():
            log.info("%s: a folder of yours; the shipped base of that name is %s", p, d)
        return p
    return d


def describe(name: str) -> dict:
    """A base's meta (`meta.json`) as a dict; KeyError when there is no base by that name."""
    d = base_dir(name)
    if d is None:
        raise KeyError(name)
    return json.loads((d / "meta.json").read_text())
