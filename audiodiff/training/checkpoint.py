"""Run directories and atomic checkpoints in the layout of DESIGN.md "Checkpoints".

```
run/config.yaml                      resolved config of the run
run/checkpoints/<step>/model.safetensors, ema.safetensors, mel.json, meta.json, train_state.pt
run/checkpoints/last                 text file naming the newest step (portable, unlike a symlink)
```
A checkpoint is written into a temporary directory and renamed into place, so a crash never leaves a
half-written `<step>/`. Loading never executes code: tensors come from safetensors, `train_state.pt`
is read with `torch.load(weights_only=True)`, configs are plain JSON/YAML values.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..mel import MelSpec

STEP_DIGITS = 9


class CheckpointError(ValueError):
    """A run or checkpoint directory is missing or incomplete; the message names it."""


def step_dir(run_dir, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{int(step):0{STEP_DIGITS}d}"


def _save_tensors(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    # safetensors refuses shared storage and non-contiguous views: store plain copies.
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}, str(path))


def save_checkpoint(run_dir, step: int, model: dict, ema: dict | None = None, train_state: dict | None = None,
                    mel: MelSpec | None = None, meta: dict | None = None, keep: int | None = None) -> Path:
    """Write checkpoint `step` atomically and point `checkpoints/last` at it.

    Args:
        run_dir: the run directory.
        step: optimisation step (the directory name).
        model, ema: state dicts of tensors (saved as safetensors).
        train_state: optimizer / scheduler / RNG / data position; only tensors, numbers, strings, lists,
            dicts (what `torch.load(weights_only=True)` reads back).
        mel: the model's MelSpec (mel models and vocoders).
        meta: JSON-serialisable description (network config, objective, vocabulary, sample rate, ...).
        keep: keep only the newest `keep` checkpoints (None keeps all).
    Returns:
        the checkpoint directory.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(run_dir, step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{step}-", dir=root))
    try:
        _save_tensors(model, tmp / "model.safetensors")
        if ema is not None:
            _save_tensors(ema, tmp / "ema.safetensors")
        if train_state is not None:
            torch.save(train_state, tmp / "train_state.pt")
        if mel is not None:
            mel.save(tmp / "mel.json")
        with open(tmp / "meta.json", "w") as f:
            json.dump({"step": int(step), **(meta or {})}, f, indent=2, default=_json_default)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_last(root, final.name)
    if keep is not None and keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _write_last(root: Path, name: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".last-", dir=root)
    with os.fdopen(fd, "w") as f:
        f.write(name + "\n")
    os.replace(tmp, root / "last")


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable in checkpoint meta: {type(o).__name__}")


def list_checkpoints(run_dir) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit() and (p / "model.safetensors").exists())


def resolve(path, step: int | None = None) -> Path:
    """Checkpoint directory for a run dir (newest, or `step`), a `checkpoints/` dir, or a checkpoint dir itself."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such run or checkpoint directory")
    if (p / "model.safetensors").exists() and step is None:
        return p
    root = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    if step is not None:
        d = step_dir(root.parent, step)
        if not (d / "model.safetensors").exists():
            have = [int(c.name) for c in list_checkpoints(root.parent)]
            raise CheckpointError(f"{p}: no checkpoint for step {step}; available steps: {have}")
        return d
    last = root / "last"
    if last.exists():
        d = root / last.read_text().strip()
        if (d / "model.safetensors").exists():
            return d
    ckpts = list_checkpoints(root.parent)
    if not ckpts:
        raise CheckpointError(f"{p}: holds no checkpoint (expected checkpoints/<step>/model.safetensors)")
    return ckpts[-1]


def load_checkpoint(path, step: int | None = None, map_location="cpu", train_state: bool = True) -> dict:
    """Read a checkpoint: `{"model", "ema", "train_state", "mel", "meta", "dir", "step"}` (missing parts are None)."""
    from safetensors.torch import load_file

    d = resolve(path, step)
    out = {"dir": d, "model": load_file(str(d / "model.safetensors"), device=str(map_location))}
    out["ema"] = load_file(str(d / "ema.safetensors"), device=str(map_location)) if (d / "ema.safetensors").exists() else None
    ts = d / "train_state.pt"
    out["train_state"] = torch.load(ts, map_location=map_location, weights_only=True) if train_state and ts.exists() else None
    out["mel"] = MelSpec.load(d / "mel.json") if (d / "mel.json").exists() else None
    meta_path = d / "meta.json"
    out["meta"] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    out["step"] = int(out["meta"].get("step", int(d.name) if d.name.isdigit() else 0))
    return out


def find_run_dir(ckpt_dir: Path) -> Path:
    """The run directory owning a checkpoint directory (`run/checkpoints/<step>` -> `run`)."""
    ckpt_dir = Path(ckpt_dir)
    return ckpt_dir.parent.parent if ckpt_dir.parent.name == "checkpoints" else ckpt_dir
