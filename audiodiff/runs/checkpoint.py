"""Run directories and atomic checkpoints in the layout of DESIGN.md "Checkpoints" (the run format layer).

```
run/config.yaml                      resolved config of the run
run/checkpoints/<step>/model.safetensors, ema.safetensors, mel.json, meta.json, train_state.pt
run/checkpoints/last                 text file naming the newest step (portable, unlike a symlink)
```
A checkpoint is written into a temporary directory `checkpoints/.tmp-<step>-*` (each file fsynced, `meta.json`
last, recording every file's size) and renamed into place, so a crash never leaves a half-written `<step>/`:
after a crash the folder holds the old checkpoint or the new one, complete. A step that is written again moves
the old folder aside (`.old-<step>-*`) before the rename and deletes it after; pruned checkpoints are renamed to
`.trash-<step>-*` before they are deleted, so an interrupted delete never leaves a partial `<step>/` that looks
complete. :func:`clean_run_dir` (called by the trainer at start, under the run lock) removes what an interrupted
run left behind. Loading never executes code: tensors come from safetensors, `train_state.pt` is read with
`torch.load(weights_only=True)`, configs are plain JSON/YAML values; a damaged file raises
:class:`CheckpointError` naming it. Every `meta.json` names the kind of run and its format version
(:mod:`audiodiff.runs.meta`); `load_checkpoint(path, kind=...)` refuses another kind, naming the file.

This module sits below training and the pipeline: both read and write runs through it. It builds on
:mod:`.meta` (the run meta, :class:`CheckpointError` and the reading of a run's JSON files), which imports nothing
from here.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import secrets
import shutil
import tempfile
from pathlib import Path

import torch

from ..errors import UsageError
from ..jsonfile import short_reason as _short
from ..mel import MelContractError, MelSpec
from .meta import DAMAGED_HINT, META_FILE, CheckpointError, check_kind, folder_kind, read_json_file, read_kind

log = logging.getLogger("audiodiff.checkpoint")
STEP_DIGITS = 9
FILES_KEY = "files"  # meta.json: {file name: size in bytes} of the other files, written last

class RunNotFoundError(CheckpointError, UsageError):
    """A run path the user gave does not exist (a bad argument: exit 2); the message names it and the shipped bases."""


def step_dir(run_dir, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{int(step):0{STEP_DIGITS}d}"


# ---------------------------------------------------------------------------------------------- writing
def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort: some platforms cannot open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save_tensors(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    # safetensors refuses shared storage and non-contiguous views: store plain copies.
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}, str(path))


def _aside(path: Path, prefix: str) -> Path:
    """Rename `path` to a fresh hidden name `<prefix><name>-<random>` in the same folder; returns the new path."""
    new = path.parent / f"{prefix}{path.name}-{secrets.token_hex(4)}"
    os.rename(path, new)
    return new


def _discard(path: Path) -> None:
    """Delete a checkpoint folder: first renamed to `.trash-*`, so a half-done delete never looks like a step."""
    shutil.rmtree(_aside(path, ".trash-"), ignore_errors=True)


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
        keep: keep only the newest `keep` checkpoints (None or 0 keeps all).
    Returns:
        the checkpoint directory.
    Raises:
        CheckpointError: the write failed (disk full, permissions); the run's previous checkpoints are intact.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(run_dir, step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    old = None
    try:
        files = {}

        def put(name, write):
            write(tmp / name)
            _fsync_file(tmp / name)
            files[name] = (tmp / name).stat().st_size

        put("model.safetensors", lambda p: _save_tensors(model, p))
        if ema is not None:
            put("ema.safetensors", lambda p: _save_tensors(ema, p))
        if train_state is not None:
            put("train_state.pt", lambda p: torch.save(train_state, p))
        if mel is not None:
            put("mel.json", mel.save)
        with open(tmp / "meta.json", "w") as f:  # last: a folder with a meta.json is complete
            json.dump({"step": int(step), **(meta or {}), FILES_KEY: files}, f, indent=2, default=_json_default)
        _fsync_file(tmp / "meta.json")
        _fsync_dir(tmp)
        if final.exists():
            old = _aside(final, ".old-")
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old, final)  # put the previous checkpoint of this step back
            old = None
        if isinstance(e, OSError):
            raise CheckpointError(f"{final}: could not write the checkpoint ({e}); the run's earlier checkpoints "
                                  "are intact") from e
        raise
    _write_last(root, final.name)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if keep is not None and keep > 0:
        for d in list_checkpoints(run_dir)[:-keep]:
            _discard(d)
    return final


def _write_last(root: Path, name: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".last-", dir=root)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / "last")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(root)


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable in checkpoint meta: {type(o).__name__}")


# ---------------------------------------------------------------------------------------------- inspecting
def checkpoint_problem(d) -> tuple[str, str] | None:
    """What is wrong with checkpoint folder `d`: None when complete, else `(kind, reason)`.

    kind `partial`: what an interrupted write or delete leaves (empty, no `meta.json`, a listed file missing);
    kind `damaged`: a file changed after it was written (unreadable `meta.json`, a size that differs from the
    one `meta.json` records), which audiodiff's own writes never produce.
    """
    d = Path(d)
    if not d.is_dir():
        return "partial", "not a directory"
    names = {p.name for p in d.iterdir()}
    if not names:
        return "partial", "empty (an interrupted write or delete)"
    if "meta.json" not in names:
        return "partial", "has no meta.json (an interrupted write or delete)"
    try:
        meta = read_json_file(d / "meta.json")
    except CheckpointError as e:
        return "damaged", str(e)
    if "model.safetensors" not in names:
        return "partial", "has no model.safetensors (an interrupted write or delete)"
    files = meta.get(FILES_KEY)
    if isinstance(files, dict):
        missing = sorted(n for n in files if n not in names)
        if missing:
            return "partial", f"lacks {missing}, which meta.json lists (an interrupted write or delete)"
        for name, size in sorted(files.items()):
            actual = (d / name).stat().st_size
            if actual != size:
                return "damaged", (f"{d / name}: is {actual} bytes but meta.json records {size} (cut short or "
                                   "changed after it was written)")
    return None


def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.isdigit() and p.is_dir())


def scan_checkpoints(run_dir) -> list[tuple[Path, tuple[str, str] | None]]:
    """Every `checkpoints/<step>/` folder of a run, oldest first, with :func:`checkpoint_problem`'s verdict."""
    return _scan(Path(run_dir) / "checkpoints")


def _scan(root: Path) -> list[tuple[Path, tuple[str, str] | None]]:
    return [(d, checkpoint_problem(d)) for d in _step_dirs(root)]


def list_checkpoints(run_dir) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    return [d for d, problem in scan_checkpoints(run_dir) if problem is None]


def _read_last(root: Path) -> str | None:
    try:
        return (root / "last").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _point_last(root: Path, name: str | None) -> str | None:
    """Make `checkpoints/last` name `name` (None: remove it); returns what it named before when it changed."""
    before = _read_last(root)
    if before == name:
        return None
    try:
        if name is None:
            (root / "last").unlink(missing_ok=True)
        else:
            _write_last(root, name)
    except OSError as e:  # a read-only copy of a run still loads
        log.warning("%s names %r, not the newest complete checkpoint %r; could not rewrite it (%s)",
                    root / "last", before, name, e)
        return None
    log.info("%s named %r; it now names the newest complete checkpoint %r", root / "last", before, name)
    return before if before is not None else ""


def clean_run_dir(run_dir) -> list[str]:
    """Remove what an interrupted run left in `run_dir/checkpoints` and point `last` at the newest complete step.

    Removes temporary folders (`.tmp-*`, `.trash-*`), `.last-*` files and partial `<step>/` folders (see
    :func:`checkpoint_problem`); an `.old-<step>-*` folder (a step being rewritten) is put back when its step is
    missing, else removed. Damaged checkpoints are left alone (loading them raises). Each action is logged.
    Call it only while holding the run's lock (:mod:`audiodiff.training.lock`). Returns the actions, one line each.
    """
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = []
    for p in sorted(root.iterdir()):
        name = p.name
        if name.startswith((".tmp-", ".trash-")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            done.append(f"removed {p} (left by an interrupted checkpoint write or delete)")
        elif name.startswith(".last-"):
            p.unlink(missing_ok=True)
            done.append(f"removed {p} (left by an interrupted write of checkpoints/last)")
        elif name.startswith(".old-") and p.is_dir():
            target = root / name[len(".old-"):].split("-", 1)[0]
            if not target.exists() and checkpoint_problem(p) is None:
                os.replace(p, target)
                done.append(f"restored {target} from {p} (its rewrite was interrupted)")
            else:
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"removed {p} (the previous copy of a rewritten checkpoint)")
    for d, problem in scan_checkpoints(run_dir):
        if problem is not None and problem[0] == "partial":
            _discard(d)
            done.append(f"removed {d}: {problem[1]}")
    complete = list_checkpoints(run_dir)
    before = _point_last(root, complete[-1].name if complete else None)
    if before is not None:
        done.append(f"{root / 'last'} named {before!r}, now {complete[-1].name if complete else None!r}")
    for line in done:
        log.warning("%s", line)
    return done


def _run_path(path) -> Path:
    """`path` when it exists, else the shipped base of that name (:mod:`.bases`); else RunNotFoundError naming both."""
    from .bases import list_bases, resolve_run

    p = resolve_run(path)
    if p is None:
        names = list_bases()
        raise RunNotFoundError(f"{path}: no such run or checkpoint directory" +
                               (f"; shipped bases: {', '.join(names)}" if names else ""))
    return p


def resolve(path, step: int | None = None) -> Path:
    """Checkpoint directory for a run dir (newest complete, or `step`), a `checkpoints/` dir, or a checkpoint dir.

    From a run, the newest complete checkpoint wins: newer partial folders (an interrupted write) are skipped
    with a warning and `checkpoints/last` is rewritten when it names another step; a damaged newest checkpoint
    raises (naming the file) rather than falling back silently.
    """
    p = _run_path(path)
    if step is None and ((p / "model.safetensors").exists() or (p / "meta.json").exists()):
        _raise_if_incomplete(p)
        return p
    root = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    scanned = _scan(root)
    have = [int(d.name) for d, problem in scanned if problem is None]
    if step is not None:
        d = root / f"{int(step):0{STEP_DIGITS}d}"
        if not d.is_dir():
            raise CheckpointError(f"{p}: no checkpoint for step {step}; available steps: {have}")
        _raise_if_incomplete(d, f"; complete steps: {have}")
        return d
    for d, problem in reversed(scanned):
        if problem is None:
            _point_last(root, d.name)
            return d
        kind, reason = problem
        if kind == "damaged":
            raise CheckpointError(f"{d}: the newest checkpoint is damaged: {reason}; delete that folder to use the "
                                  f"one before it, or pass its step (complete steps: {have})")
        log.warning("skipping %s: %s", d, reason)
    skipped = f" ({len(scanned)} incomplete step folder(s))" if scanned else ""
    raise CheckpointError(f"{p}: holds no complete checkpoint{skipped} (expected checkpoints/<step>/model.safetensors "
                          "and meta.json)")


def _raise_if_incomplete(d: Path, extra: str = "") -> None:
    problem = checkpoint_problem(d)
    if problem is not None:
        reason = problem[1]
        raise CheckpointError((reason if reason.startswith(str(d)) else f"{d}: {reason}") + extra)


# ---------------------------------------------------------------------------------------------- reading
def read_tensors(path, device="cpu") -> dict:
    """A safetensors file as a state dict; CheckpointError naming the file when it cannot be read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: is not a readable safetensors file ({_short(e)}); {DAMAGED_HINT}") from None


def read_train_state(path, map_location="cpu") -> dict:
    """`train_state.pt` read with `weights_only=True`; CheckpointError naming the file when it cannot be read."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: holds Python objects other than tensors, numbers, strings, lists and dicts; "
                              "audiodiff never unpickles them (that could run code from the file): write the train "
                              "state with plain values, or start a new run") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: is not a readable torch file ({_short(e)}); {DAMAGED_HINT}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of training state, got {type(state).__name__}")
    return state


def read_mel(path) -> MelSpec:
    """The MelSpec in a `mel.json`; CheckpointError naming the file when it is unreadable or not a mel contract."""
    d = read_json_file(Path(path))
    try:
        return MelSpec.from_dict(d)
    except (MelContractError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a valid mel contract ({_short(e)})") from None


def load_checkpoint(path, step: int | None = None, map_location="cpu", train_state: bool = True,
                    kind: str | None = None) -> dict:
    """Read a checkpoint: `{"model", "ema", "train_state", "mel", "meta", "dir", "step", "kind", "format_version"}`
    (missing parts are None).

    Args:
        kind: the kind of run the caller reads (`diffusion`, `vocoder`, `judge`); None accepts any.
    Raises:
        RunKindError: the folder holds another kind of run (the message names the file and both kinds).
        CheckpointError: no complete checkpoint, a file that cannot be read, or a `meta.json` with an unknown
            kind or format version (the message names the file).
    """
    path = _run_path(path)  # a shipped base's name is its folder
    if kind is not None:  # a vocoder or judge folder is refused by its kind, before it is judged as a checkpoint
        found = folder_kind(path)
        if found is not None:
            check_kind(found[0], found[1], kind)
    d = resolve(path, step)
    meta_path = d / "meta.json"
    meta = read_json_file(meta_path) if meta_path.exists() else {}
    found_kind, version = read_kind(meta, meta_path)
    if kind is not None:
        check_kind(found_kind, meta_path, kind)
    out = {"dir": d, "model": read_tensors(d / "model.safetensors", map_location)}
    out["ema"] = read_tensors(d / "ema.safetensors", map_location) if (d / "ema.safetensors").exists() else None
    ts = d / "train_state.pt"
    out["train_state"] = read_train_state(ts, map_location) if train_state and ts.exists() else None
    out["mel"] = read_mel(d / "mel.json") if (d / "mel.json").exists() else None
    out["meta"] = {k: v for k, v in meta.items() if k != FILES_KEY}
    storage = out["meta"].get("storage")
    if storage is not None:  # a shipped base's int8 weights (runs/quant.py): read back as float32
        from .quant import STORAGE, dequantize_state

        if storage != STORAGE:
            raise CheckpointError(f"{meta_path}: storage {storage!r} is not supported; allowed: {STORAGE!r}")
        out["model"] = dequantize_state(out["model"])
        out["ema"] = dequantize_state(out["ema"]) if out["ema"] is not None else None
    try:
        out["step"] = int(out["meta"].get("step", int(d.name) if d.name.isdigit() else 0))
    except (TypeError, ValueError):
        raise CheckpointError(f"{meta_path}: 'step' must be an integer; got {out['meta'].get('step')!r}") from None
    out["kind"], out["format_version"] = found_kind, version
    return out


def kind_at(path) -> tuple[str, Path] | None:
    """Like :func:`~audiodiff.runs.meta.folder_kind`, and for a run directory the kind its newest complete
    checkpoint's `meta.json` says."""
    found = folder_kind(path)
    if found is None and (Path(path) / "checkpoints").is_dir():
        meta_path = resolve(path) / META_FILE
        found = read_kind(read_json_file(meta_path), meta_path)[0], meta_path
    return found


def find_run_dir(ckpt_dir: Path) -> Path:
    """The run directory owning a checkpoint directory (`run/checkpoints/<step>` -> `run`)."""
    ckpt_dir = Path(ckpt_dir)
    return ckpt_dir.parent.parent if ckpt_dir.parent.name == "checkpoints" else ckpt_dir
