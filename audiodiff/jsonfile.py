"""The JSON files a run or a folder holds (`meta.json`, `mel.json`, `vocoder.json`, ...) read with one-line errors.

An interrupted copy leaves a file empty or cut short; the error names the file, says which of those it is and what
to do (`hint`), in the reader's own error class (`CheckpointError`, `VocoderError`, ...).
"""
from __future__ import annotations

import json
from pathlib import Path


def short_reason(e: BaseException) -> str:
    """A library error cut to one short line (never torch's advice about `weights_only`)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if not text or "weights_only" in text:
        return type(e).__name__
    return text[:160]


def read_json(path, error: type[Exception], hint: str, obj: bool = True):
    """The JSON value in `path`; raises `error` naming the file when it cannot be read, is empty, is not valid JSON
    or (with `obj`) is not a JSON object; `hint` (what to do about a damaged file) ends the message."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot be read ({short_reason(e)})") from None
    if not text.strip():
        raise error(f"{path}: is empty; {hint}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); {hint}") from None
    if obj and not isinstance(value, dict):
        raise error(f"{path}: expected a JSON object, got {type(value).__name__}; {hint}")
    return value
