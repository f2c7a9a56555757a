"""One runtime for everything that is trained: the diffusion model, the GAN and diffusion vocoders, the judge.

A task (``training.loop.DiffusionTask``, ``training.vocoder.VocoderTask``, ``evaluation.judge.JudgeTask``) builds
its modules and supplies one step function, as audiocraft's solvers supply ``run_step``; :class:`Runtime` owns
everything around it, in one place:

- device and precision (:func:`pick_device`, :meth:`Runtime.autocast`), `torchrun` (gloo on CPU, NCCL on CUDA);
- the run directory: its lock (:mod:`.lock`), cleaning what a killed run left, refusing `resume=false` on a run
  that holds checkpoints (:class:`RunDirExistsError`), `config.yaml`;
- RNG: every global generator seeded with `seed + rank`, one task generator (:attr:`Runtime.generator`) for
  noise levels and noise, all of them saved in each checkpoint;
- the data order with its exact position (:class:`BatchOrder`, :func:`batches`): epoch e is a permutation seeded by
  `(seed, e)`; the checkpoint stores `(epoch, batch)` so a resumed run continues with the next batch;
- one learning-rate schedule (:func:`lr_at`) applied to every optimizer a task registers (:meth:`Runtime.schedule`);
- the NaN guard (:meth:`Runtime.update`: clip, check, step; `max_bad_steps` non-finite steps in a row stop the
  run) and the time budget (`max_seconds`, collective under `torchrun`, so all ranks stop at the same step);
- logging: a progress bar, `metrics.jsonl` (one row per step, fsynced before each checkpoint, trimmed to the
  resumed step), TensorBoard under `run_dir/tensorboard` (interval means every `log_every` steps);
- checkpoints: the task's weights plus `train_state.pt` holding the task's dict of stateful objects (optimizers,
  schedules, discriminators, counters, generators), the step, the data position and the RNG states; pruned to
  `keep_checkpoints`; a re-run resumes from the newest, so a run killed at any point reproduces the uninterrupted
  run's losses (`tests/training/test_runtime.py`).

The loop in :meth:`Runtime.fit` reads top to bottom, nanoGPT-style; `# host sync` marks each device-to-host read.

A task is any object with:

- ``dataset``, ``collate``: items are fetched as ``dataset[(epoch, index)]`` (crops seeded by them);
- ``stateful``: ``{name: object}`` saved in ``train_state.pt`` (``state_dict``/``load_state_dict``, a
  ``torch.Generator``, or an :class:`Attr`);
- ``step(batches) -> metrics | None``: one optimizer step over the ``accumulate`` micro-batches: forward,
  backward and each update through :meth:`Runtime.update`; returns the numbers to log (floats or 0-d tensors;
  ``audio_seconds`` is turned into a throughput), or None when an update was skipped;
- ``weights(final) -> (model, ema | None, meta)``: the state dicts and ``meta.json`` of a checkpoint; ``mel``:
  the mel contract a checkpoint stores (or None);
- ``load(ck) -> bool`` (optional): put a checkpoint's weights in place (False: the run is complete as it stands);
- ``begin(writer)``, ``after_step(step, final, writer)``, ``finish(step)`` (optional hooks, main process only).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import AudiodiffError, UsageError
from ..runs import checkpoint as ckpt_io
from . import distributed as dist_utils
from .lock import LockHeld, RunLock, describe_holder

log = logging.getLogger("audiodiff.train")

LR_SCHEDULES = ("cosine", "exponential", "constant")
PRECISIONS = ("auto", "bf16", "fp32")

HOOKS = ("loop_start", "loop_end")  # the moments a caller may hook (Runtime(hooks=...))

# The runtime's settings; each task maps its own config onto them (training/vocoder.py, evaluation/judge/train.py).
RUNTIME_DEFAULTS = {
    "steps": 1000, "batch_size": 16, "drop_last": True, "num_workers": 0, "seed": 0, "device": "auto",
    "precision": "auto", "lr": 2e-4, "warmup_steps": 0, "min_lr_ratio": 0.0, "lr_schedule": "cosine",
    "lr_gamma": 1.0, "grad_clip": None, "accumulate": 1, "max_bad_steps": 5, "max_seconds": None,
    "ckpt_every": 1000, "keep_checkpoints": 3, "log_every": 10, "resume": True, "progress": True,
}


class TrainingError(AudiodiffError, RuntimeError):
    """Training cannot go on (repeated non-finite losses, bad config); the message says why and what to do."""


class TrainingConfigError(TrainingError, UsageError):
    """A setting is unknown, of the wrong type or out of range, or does not fit the run being resumed.

    The message names the setting (`train.batch_size`) and the allowed values; the command line exits 2.
    """


class RunDirExistsError(TrainingConfigError):
    """`train.resume=false` on a run directory that already holds checkpoints (they are never overwritten)."""


class RunSettingsError(TrainingConfigError):
    """`train`/`finetune` into a run that was trained with other data or settings: nothing is resumed without asking."""


class RunDirBusyError(TrainingError):
    """Another live process is training into the same run directory; the message names it (pid, host, start)."""


# ---------------------------------------------------------------------------------------------- device
def pick_device(name: str) -> str:
    """`auto` -> `cuda` when available, else `cpu`; a device this machine lacks is a one-line
    :class:`~audiodiff.device.DeviceError` (exit 2) naming `train.device` and the devices it has."""
    from ..device import resolve_device

    return resolve_device(str(name), "train.device")


# ---------------------------------------------------------------------------------------------- learning rate
def lr_at(step: int, t: dict) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warm-up to `lr`, then the decay `lr_schedule` names.

    `cosine` (the default): to `lr * min_lr_ratio` at `steps` (Loshchilov & Hutter 2017); `exponential`:
    `lr * max(lr_gamma ** (step - warmup_steps), min_lr_ratio)`; `constant`: `lr`. Every decay starts after the
    warm-up. (The vocoder trainer's own schedule used to start its decay at step 0 under the warm-up; with
    `warmup_steps: 0`, as in every shipped vocoder config, both give the same numbers.)
    """
    kind = t.get("lr_schedule", "cosine")
    if t["warmup_steps"] > 0 and step < t["warmup_steps"]:
        return t["lr"] * (step + 1) / t["warmup_steps"]
    if kind == "constant":
        return t["lr"]
    if kind == "exponential":
        return t["lr"] * max(t["lr_gamma"] ** (step - t["warmup_steps"]), t["min_lr_ratio"])
    if kind != "cosine":
        raise TrainingConfigError(f"train.lr_schedule={kind!r} is not allowed; allowed: {list(LR_SCHEDULES)}")
    span = max(1, t["steps"] - t["warmup_steps"])
    progress = min(1.0, (step - t["warmup_steps"]) / span)
    return t["lr"] * (t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * progress)))


class LRSchedule:
    """:func:`lr_at` applied to one optimizer's parameter groups; the runtime applies it before every step.

    The rate is a function of the step, so resuming needs nothing from the saved state; it records the step, the
    rate and the settings, and a resume with other schedule settings is logged.
    """

    KEYS = ("lr", "warmup_steps", "steps", "min_lr_ratio", "lr_schedule", "lr_gamma")

    def __init__(self, optimizer: torch.optim.Optimizer, t: dict):
        self.optimizer, self.t = optimizer, t
        self.last_step, self.lr = None, lr_at(0, t)

    def apply(self, step: int) -> float:
        self.last_step, self.lr = step, lr_at(step, self.t)
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr
        return self.lr

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "lr": self.lr, "settings": {k: self.t[k] for k in self.KEYS}}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("settings") if isinstance(state, dict) else None
        now = {k: self.t[k] for k in self.KEYS}
        if saved is not None and saved != now:
            log.info("the learning-rate schedule differs from the checkpoint's (%s -> %s)", saved, now)


class Attr:
    """A plain attribute saved in `train_state.pt` under the task's name for it: `Attr(ema, "num_updates")`."""

    def __init__(self, obj, name: str):
        self.obj, self.name = obj, name

    def state_dict(self):
        return getattr(self.obj, self.name)

    def load_state_dict(self, value) -> None:
        setattr(self.obj, self.name, value)


# ---------------------------------------------------------------------------------------------- data order
class BatchOrder:
    """Deterministic, resumable batch order: epoch e is a permutation seeded by (seed, e), cut into batches.

    The permutation and its split across ranks are :class:`audiodiff.data.sampler.EpochSampler`'s (rank r takes
    every world-th item). `position` = (epoch, batch index) is stored in checkpoints so a resumed run continues
    with the next batch. `drop_last=False` keeps an epoch's last, shorter batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, drop_last: bool = True):
        from ..data.sampler import EpochSampler

        if n < batch_size * world:
            raise TrainingError(f"the dataset has {n} items, fewer than one global batch ({batch_size} x {world} ranks); "
                                "lower train.batch_size or add data")
        self.sampler = EpochSampler(n, shuffle=True, seed=seed, num_replicas=world, rank=rank)
        self.bs = batch_size
        per_rank = math.ceil(n / world)
        self.per_epoch = per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)

    def epoch_batches(self, epoch: int, start: int = 0):
        order = self.sampler.order(epoch)
        for b in range(start, self.per_epoch):
            yield order[b * self.bs:(b + 1) * self.bs]


class _EndlessBatches(torch.utils.data.Sampler):
    """Batches of `(epoch, index)` pairs from `(epoch, start)` on, forever.

    The datasets take `(epoch, index)` and seed their crops with it, so one DataLoader with persistent workers
    serves the whole run: no worker restart per epoch, which dominates on small datasets.
    """

    def __init__(self, order: BatchOrder, epoch: int, start: int):
        self.order, self.epoch, self.start = order, epoch, start

    def positions(self):
        epoch, start = self.epoch, self.start
        while True:
            for b, batch in enumerate(self.order.epoch_batches(epoch, start), start=start):
                yield epoch, b, batch
            epoch, start = epoch + 1, 0

    def __iter__(self):
        return ([(e, i) for i in batch] for e, _, batch in self.positions())


def batches(dataset, order: BatchOrder, epoch: int, start: int, num_workers: int, collate):
    """Yield `(epoch, batch_index, batch)` forever from `(epoch, start)`; item crops depend on (epoch, index).

    The loader draws its worker seed from a generator of its own, not from the global one: the global torch RNG
    belongs to the task (dropout), so a resumed run, which starts a new loader, continues it exactly.
    """
    sampler = _EndlessBatches(order, epoch, start)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(order.sampler.seed),
    )
    for (e, b, _), batch in zip(sampler.positions(), loader):
        yield e, b, batch


# ---------------------------------------------------------------------------------------------- RNG
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state(gen: torch.Generator) -> dict:
    """Python, NumPy, torch (and CUDA) global RNG states and the task generator `gen` (saved as `noise`)."""
    state = {"python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
             "numpy": np.random.get_state()[1].tolist(), "numpy_pos": int(np.random.get_state()[2]),
             "torch": torch.get_rng_state(), "noise": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    """Restore :func:`rng_state`'s `state` (or the older vocoder trainer's `{torch, python, cuda}`)."""
    if "python_pos" in state:
        random.setstate((3, tuple(state["python"]), state["python_pos"]))
        np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
        gen.set_state(state["noise"])
    else:  # vocoder checkpoints written before the runtime: python's state as nested lists, no numpy, no noise
        random.setstate(_tuplify(state["python"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def _gather_rng(state: dict, world: int):
    if world == 1:
        return state
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, state)
    return out


# ---------------------------------------------------------------------------------------------- run directory
def lock_run_dir(run_dir: Path, rank: int, device) -> RunLock | None:
    """Rank 0 locks `run_dir` for the whole run; every rank raises :class:`RunDirBusyError` when it cannot."""
    lock, failed = None, None
    if rank == 0:
        try:
            lock = RunLock(run_dir).acquire()
        except (LockHeld, OSError) as e:  # every rank must reach the collective below
            failed = e
    ok = dist_utils.all_reduce_mean(torch.tensor(0.0 if failed else 1.0, device=device))  # host sync, once
    if float(ok) == 1.0:
        return lock
    if lock is not None:
        lock.release()
    if isinstance(failed, LockHeld):
        raise RunDirBusyError(f"{run_dir}: another training process is writing this run "
                              f"({describe_holder(failed.holder)}; lock file {failed.path}): wait for it to finish "
                              "or stop it, or train into another run_dir") from None
    if failed is not None:
        raise TrainingError(f"{run_dir}: cannot create or lock the run directory ({failed}); choose a writable "
                            "run_dir") from None
    raise RunDirBusyError(f"{run_dir}: rank 0 could not lock it (another training process is writing this run, or "
                          "the run directory is not writable)")


def trim_metrics(path: Path, step: int) -> int:
    """Drop the rows of `metrics.jsonl` after `step` (trained again on resume) and any cut-off line; returns how many.

    The file is rewritten atomically (temp file, fsync, rename), so it never holds a step twice.
    """
    if not path.exists():
        return 0
    keep, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
                ok = line.endswith("\n") and isinstance(row, dict) and int(row["step"]) <= step
            except (ValueError, KeyError, TypeError):
                ok = False
            if ok:
                keep.append(line)
            else:
                dropped += 1
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            f.writelines(keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        log.info("%s: dropped %d row(s) after step %d (they are trained again from the checkpoint)", path, dropped,
                 step)
    return dropped


# Settings that change how a run is carried out, not what it learns: a resume may change them without asking.
# (`data.manifest` is compared by the content it lists, the data fingerprint, not by its path.)
RESUME_FREE = ("run_dir", "name", "data.manifest", "data.cache_dir", "train.device", "train.num_workers",
               "train.progress", "train.resume", "train.max_seconds", "train.compile", "train.log_every",
               "train.sample_every", "train.ckpt_every", "train.keep_checkpoints", "train.precision",
               "train.valid_every")
FINGERPRINT_FILE = "fingerprint.json"


def _flat(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _short_value(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def run_differences(run_dir: Path, config: dict | None, fingerprint: dict | None) -> list[str]:
    """What differs between the run in `run_dir` (its `config.yaml` and data fingerprint) and a new start.

    Keys in :data:`RESUME_FREE` may differ; a key only one side has (a setting added to the package since the run
    started) is not compared; `auto` matches the value it resolved to. Returns one `key: run X, now Y` per change.
    """
    import yaml

    diffs = []
    old_fp_path = run_dir / FINGERPRINT_FILE
    if fingerprint is not None and old_fp_path.is_file():
        try:
            old_fp = json.loads(old_fp_path.read_text())
        except (OSError, ValueError):
            old_fp = None
        if isinstance(old_fp, dict) and old_fp.get("data") and old_fp["data"] != fingerprint.get("data"):
            o, n = old_fp["data"], fingerprint.get("data") or {}
            diffs.append(f"data: the run was trained on {o.get('files', '?')} files of {o.get('source', '?')}, "
                         f"now {n.get('files', '?')} files of {n.get('source', '?')} (other recordings or labels)")
    cfg_path = run_dir / "config.yaml"
    if config is not None and cfg_path.is_file():
        try:
            old = yaml.safe_load(cfg_path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            old = {}
        a, b = _flat(old), _flat(config)
        for key in sorted(set(a) & set(b)):
            if any(key == f or key.startswith(f + ".") for f in RESUME_FREE):
                continue
            if a[key] != b[key] and b[key] != "auto" and a[key] != "auto":
                diffs.append(f"{key}: run {_short_value(a[key])}, now {_short_value(b[key])}")
    return diffs


def write_config(run_dir: Path, cfg: dict) -> None:
    """`run_dir/config.yaml`: the resolved config of this start (temporary name, then rename)."""
    import yaml

    tmp = run_dir / ".config.yaml.tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.replace(tmp, run_dir / "config.yaml")


def write_json_atomic(path: Path, data: dict) -> None:
    """`data` as JSON at `path` (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def tensorboard(run_dir: Path, purge_step: int | None = None):
    """A SummaryWriter on `run_dir/tensorboard`; on resume `purge_step` hides the events logged after the checkpoint."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # pragma: no cover
        log.warning("TensorBoard unavailable (%s); logging to metrics.jsonl only", e)
        return None
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)


def _state_of(obj):
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    return obj.state_dict()


def _load_state(obj, state) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    else:
        obj.load_state_dict(state)


# ---------------------------------------------------------------------------------------------- the runtime
class Runtime:
    """Device, RNG, run directory, data order, schedule, NaN guard, time budget, logging and checkpoints of a run.

    Use as a context manager around building the task (entering locks the run directory, cleans it, refuses
    `resume=false` on a run with checkpoints, and seeds every generator, so the task's modules are built from
    the seed), then :meth:`fit` the task::

        with Runtime(run_dir, settings, kind="vocoder", config=cfg) as rt:
            rt.fit(VocoderTask(cfg, rt))

    Args:
        run_dir: the run directory, or None for a run that writes nothing (no lock, checkpoints or logs).
        settings: keys of :data:`RUNTIME_DEFAULTS` (the rest take their defaults).
        kind: the run meta's kind (`diffusion`, `vocoder`, `judge`); a run directory of another kind is refused.
        distributed: take rank and world from `torchrun` (only the diffusion task shards its data).
        config: the resolved config written to `run_dir/config.yaml`.
        fingerprint: what identifies the run's data (e.g. `{"data": manifest_fingerprint(...)}`), written to
            `run_dir/fingerprint.json`; a resume whose config or fingerprint differs is refused (:func:`run_differences`)
            unless `resume` is `force`.
        hooks: `{name: function()}` called at the runtime's moments (:data:`HOOKS`): `loop_start` when the training
            clock starts (right before the first batch is drawn), `loop_end` when the loop has stopped; a benchmark
            times the loop with them instead of patching the runtime.
    """

    def __init__(self, run_dir, settings: dict, kind: str, distributed: bool = False, config: dict | None = None,
                 fingerprint: dict | None = None, hooks: dict | None = None):
        unknown = sorted(set(settings) - set(RUNTIME_DEFAULTS))
        if unknown:
            raise TrainingConfigError(f"unknown runtime settings {unknown}; allowed: {sorted(RUNTIME_DEFAULTS)}")
        self.t = {**RUNTIME_DEFAULTS, **settings}
        if self.t["lr_schedule"] not in LR_SCHEDULES:
            raise TrainingConfigError(f"train.lr_schedule={self.t['lr_schedule']!r} is not allowed; allowed: "
                                      f"{list(LR_SCHEDULES)}")
        if self.t["precision"] not in PRECISIONS:
            raise TrainingConfigError(f"train.precision={self.t['precision']!r} is not allowed; allowed: "
                                      f"{list(PRECISIONS)}")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.t["resume"] not in (True, False, "force"):
            raise TrainingConfigError(f"train.resume={self.t['resume']!r} is not allowed; allowed: true, false or force")
        self.kind, self.distributed, self.config, self.fingerprint = kind, distributed, config, fingerprint
        unknown_hooks = sorted(set(hooks or {}) - set(HOOKS))
        if unknown_hooks:
            raise TrainingConfigError(f"unknown runtime hooks {unknown_hooks}; allowed: {list(HOOKS)}")
        self.hooks = dict(hooks or {})
        self._created = False  # this start made run_dir (removed again if the start fails before a step)
        self._started = False
        self.schedules: list[LRSchedule] = []
        self.step, self.position = 0, (0, 0)
        self._lock = None
        self._skipped = None

    # ------------------------------------------------------------------ start and stop
    def __enter__(self) -> "Runtime":
        t = self.t
        device = pick_device(t["device"])
        rank, local_rank, world = dist_utils.setup(device) if self.distributed else (0, 0, 1)
        if device == "cuda":
            device = f"cuda:{local_rank}"
        self.device, self.rank, self.local_rank, self.world = device, rank, local_rank, world
        self.main = rank == 0
        try:
            if self.run_dir is not None:
                self._created = not self.run_dir.exists()
                self._lock = lock_run_dir(self.run_dir, rank, device)
                self._prepare_run_dir()
            seed_everything(t["seed"] + rank)
            # the task's generator: noise levels, noise, condition dropout, augmentation
            self.generator = torch.Generator(device=device).manual_seed(t["seed"] * 7919 + rank)
        except BaseException:
            self._discard_failed_start()
            self._close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self._started:
            self._discard_failed_start()
        self._close()

    def _discard_failed_start(self) -> None:
        """A start that failed before its first step leaves no empty run behind: the folder goes when this start
        made it and it holds no checkpoint (a run_dir that existed before is left as it was found)."""
        if self.run_dir is None or not self.main or self._lock is None or not self._created or self._held():
            return
        import shutil

        shutil.rmtree(self.run_dir, ignore_errors=True)
        log.info("%s: removed (the start failed before its first step)", self.run_dir)

    def _close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.distributed:
            dist_utils.cleanup()

    def _held(self) -> list[int]:
        return [int(d.name) for d, problem in ckpt_io.scan_checkpoints(self.run_dir)
                if problem is None or problem[0] == "damaged"]

    def _prepare_run_dir(self) -> None:
        """Under the lock: never overwrite a run, and clear what an interrupted run left."""
        held = self._held()
        if held and not self.t["resume"]:
            raise RunDirExistsError(
                f"{self.run_dir}: already holds checkpoints for steps {held} and train.resume=false would overwrite "
                f"them; train into a new run_dir, or set train.resume=true to continue from step {held[-1]}")
        if held and self.t["resume"] is True:
            self._check_kind(held[-1])  # a run of another trainer is named as such, before its settings are compared
            diffs = run_differences(self.run_dir, self.config, self.fingerprint)
            if diffs:
                raise RunSettingsError(
                    f"{self.run_dir}: holds a run (step {held[-1]}) trained with other data or settings ("
                    f"{'; '.join(diffs[:4])}{'; ...' if len(diffs) > 4 else ''}); train into a new run_dir=..., or "
                    "continue this run with the new settings with train.resume=force")
        if self.main:
            ckpt_io.clean_run_dir(self.run_dir)  # logs each removal
        dist_utils.barrier()

    def _hook(self, name: str) -> None:
        if name in self.hooks:
            self.hooks[name]()

    def _check_kind(self, step: int) -> None:
        from ..runs.meta import RunKindError, read_kind

        path = ckpt_io.step_dir(self.run_dir, step) / "meta.json"
        try:
            kind = read_kind(json.loads(path.read_text()), path)[0]
        except (OSError, ValueError):
            return  # a damaged meta.json is named when the checkpoint is loaded
        if kind != self.kind:
            raise RunKindError(f"{path}: holds a {kind!r} run, expected a {self.kind!r} run (this run_dir belongs to "
                               "another trainer); train into a new run_dir")

    # ------------------------------------------------------------------ what tasks call
    def schedule(self, optimizer: torch.optim.Optimizer) -> LRSchedule:
        """Register `optimizer` for :func:`lr_at` (applied before every step); returns its schedule (a stateful)."""
        s = LRSchedule(optimizer, self.t)
        s.apply(self.step)
        self.schedules.append(s)
        return s

    def autocast(self):
        """bf16 autocast on CUDA unless `precision` is fp32; a no-op context elsewhere."""
        if self.device.startswith("cuda") and self.t["precision"] in ("auto", "bf16"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def update(self, optimizer: torch.optim.Optimizer, params, loss):
        """The NaN guard around one optimizer update, after the task's `backward()`.

        Clips the gradients of `params` to `grad_clip`, averages `loss` (a float or a tensor) over ranks, and steps
        `optimizer` when the loss and the gradient norm are finite. Otherwise the gradients are dropped, the step is
        skipped (the runtime does not count it) and None is returned; `max_bad_steps` skipped steps in a row stop
        the run with :class:`TrainingError`.

        Returns:
            `(loss, grad_norm)`: the mean loss as a float and the gradient norm (a 0-d tensor), or None.
        """
        clip = self.t["grad_clip"]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
        loss_t = loss.detach().float() if isinstance(loss, torch.Tensor) else torch.tensor(loss, device=self.device)
        loss_val = float(dist_utils.all_reduce_mean(loss_t))  # host sync
        if not (math.isfinite(loss_val) and math.isfinite(float(grad_norm))):  # host sync
            optimizer.zero_grad(set_to_none=True)
            self._skipped = (loss_val, float(grad_norm))
            return None
        optimizer.step()
        return loss_val, grad_norm

    def say(self, message: str) -> None:
        """Print a line on the main process without breaking the progress bar."""
        if self.main:
            from tqdm.auto import tqdm

            tqdm.write(message)

    # ------------------------------------------------------------------ resume
    def _resume(self, task) -> bool:
        """Load the newest checkpoint into `task`; False when the task says the run is complete as it stands."""
        t = self.t
        if self.run_dir is None or not t["resume"] or not self._held():
            return True
        ck = ckpt_io.load_checkpoint(self.run_dir, map_location="cpu")
        if ck["kind"] != self.kind:  # a run of another trainer (format 0 vocoders wrote their kind as `task`)
            from ..runs.meta import RunKindError

            raise RunKindError(f"{ck['dir'] / 'meta.json'}: holds a {ck['kind']!r} run, expected a {self.kind!r} "
                               "run (this run_dir belongs to another trainer); train into a new run_dir")
        if hasattr(task, "load") and task.load(ck) is False:  # the task checks and loads its weights first
            return False
        ts = ck["train_state"]
        if ts is None or "step" not in ts:
            raise ckpt_io.CheckpointError(f"{ck['dir']}: lacks the training state to resume from (train_state.pt "
                                          "with the step); train into a new run_dir")
        for name, obj in task.stateful.items():
            if name in ts:
                _load_state(obj, ts[name])
            else:
                log.info("%s: train_state.pt has no %r (an older checkpoint); it starts afresh", ck["dir"], name)
        if "data_position" in ts:
            self.position = tuple(int(v) for v in ts["data_position"])
        else:
            log.warning("%s: an older checkpoint without the data position; the data order restarts at epoch 0 "
                        "(this resume is not exact)", ck["dir"])
        if "rng" in ts:
            set_rng_state(ts["rng"][self.rank] if isinstance(ts["rng"], list) else ts["rng"], self.generator)
        self.step = int(ts["step"])
        if self.main:
            log.info("resumed %s at step %d", ck["dir"], self.step)
        return True

    # ------------------------------------------------------------------ checkpoint
    def _checkpoint(self, task, metrics_file, writer) -> None:
        rngs = _gather_rng(rng_state(self.generator), self.world)  # collective
        if self.main:
            metrics_file.flush()  # rows up to a checkpoint survive a kill -9
            os.fsync(metrics_file.fileno())
            if writer is not None:
                writer.flush()
            model, ema, meta = task.weights(self.step == self.t["steps"])
            state = {name: _state_of(obj) for name, obj in task.stateful.items()}
            state.update(step=self.step, data_position=list(self.position), rng=rngs)
            ckpt_io.save_checkpoint(self.run_dir, self.step, model, ema, state, mel=getattr(task, "mel", None),
                                    meta=meta, keep=self.t["keep_checkpoints"])
        dist_utils.barrier()

    # ------------------------------------------------------------------ the loop
    def fit(self, task, stream=None) -> int:
        """Resume `task` from the run's newest checkpoint, train it to `steps` (or the time budget); returns the step.

        `stream`: a function like :func:`batches` that draws the data (default :func:`batches`); a caller that
        instruments the data stream passes its own.
        """
        t, main, run_dir = self.t, self.main, self.run_dir
        if not self._resume(task):
            return self.step
        if self.step >= t["steps"]:
            if main:
                log.info("%s already trained for %d steps", run_dir if run_dir is not None else self.kind, self.step)
                if hasattr(task, "finish"):
                    task.finish(self.step)
            return self.step
        files = main and run_dir is not None
        if files:
            run_dir.mkdir(parents=True, exist_ok=True)
            if self.config is not None:
                write_config(run_dir, self.config)
            if self.fingerprint is not None:
                write_json_atomic(run_dir / FINGERPRINT_FILE, self.fingerprint)
            trim_metrics(run_dir / "metrics.jsonl", self.step)
        writer = tensorboard(run_dir, purge_step=self.step + 1 if self.step else None) if files else None
        if writer is not None:
            log.info("losses, learning rate and samples: tensorboard --logdir %s (and %s, a row per step)",
                     run_dir / "tensorboard", run_dir / "metrics.jsonl")
        if main and hasattr(task, "begin"):
            task.begin(writer)

        order = BatchOrder(len(task.dataset), t["batch_size"], t["seed"], self.rank, self.world, t["drop_last"])
        workers = min(int(t["num_workers"]), os.cpu_count() or 1)
        if workers < t["num_workers"] and main:
            log.info("train.num_workers=%d lowered to %d (the CPU count)", t["num_workers"], workers)
        stream = (stream or batches)(task.dataset, order, *self.position, workers, task.collate)
        from tqdm.auto import tqdm

        name = run_dir.name if run_dir is not None else self.kind
        bar = tqdm(total=t["steps"], initial=self.step, disable=not (main and t["progress"]), desc=f"train {name}",
                   dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30)  # quiet in log files
        metrics_file = open(run_dir / "metrics.jsonl", "a") if files else None
        first_step, bad_steps, sums, n = self.step, 0, {}, 0
        t0 = t_log = time.perf_counter()
        audio_seconds = 0.0
        self._hook("loop_start")
        try:
            while self.step < t["steps"]:
                for s in self.schedules:
                    s.apply(self.step)
                micro = []
                for _ in range(t["accumulate"]):
                    epoch, b, batch = next(stream)
                    micro.append(batch)
                self.position = (epoch, b + 1)  # the position of the *next* batch
                self._skipped = None
                metrics = task.step(micro)
                if self._skipped is not None or metrics is None:  # the NaN guard dropped this step's update
                    bad_steps += 1
                    loss_val, grad_norm = self._skipped or (float("nan"), float("nan"))
                    log.warning("step %d: non-finite loss %.4g / grad norm %.4g; skipped (%d in a row)",
                                self.step, loss_val, grad_norm, bad_steps)
                    if bad_steps >= t["max_bad_steps"]:
                        where = run_dir / "checkpoints" if run_dir is not None else "memory (no run_dir)"
                        raise TrainingError(
                            f"{bad_steps} non-finite steps in a row at step {self.step}: training diverged. Lower "
                            f"train.lr (now {t['lr']}), keep train.grad_clip on, check the data for NaN/inf; the last "
                            f"good checkpoint is in {where}")
                    continue
                bad_steps = 0
                self.step += 1
                self._started = True
                bar.update(1)
                audio_seconds += float(metrics.pop("audio_seconds", 0.0))
                row = _floats(metrics)  # host sync: one read of every tensor the step returned
                if self.schedules:
                    row["lr"] = self.schedules[0].lr
                for k, v in row.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
                if main:
                    if metrics_file is not None:
                        metrics_file.write(json.dumps({"step": self.step, **row}) + "\n")
                    if self.step % t["log_every"] == 0 or self.step == t["steps"]:
                        now = time.perf_counter()
                        means = {k: v / n for k, v in sums.items()}
                        rate = audio_seconds / max(1e-9, now - t0)
                        post = {k.split("/")[-1]: f"{v:.4g}" for k, v in means.items() if k.startswith("loss")}
                        bar.set_postfix(**post, **({"audio_s_per_s": f"{rate:.1f}"} if audio_seconds else {}))
                        if metrics_file is not None:
                            metrics_file.flush()
                        if writer is not None:
                            for k, v in means.items():
                                writer.add_scalar(k if "/" in k else f"train/{k}", v, self.step)
                            writer.add_scalar("train/steps_per_second", n / max(1e-9, now - t_log), self.step)
                            if audio_seconds:
                                writer.add_scalar("train/audio_seconds_per_second", rate, self.step)
                        sums, n, t_log = {}, 0, now
                out_of_time = bool(t["max_seconds"]) and time.perf_counter() - t0 > t["max_seconds"]
                if t["max_seconds"] and self.world > 1:  # collective on every rank, so all stop at the same step
                    out_of_time = bool(dist_utils.all_reduce_mean(
                        torch.tensor(float(out_of_time), device=self.device)) > 0)
                final = self.step == t["steps"] or out_of_time
                if main and hasattr(task, "after_step"):
                    task.after_step(self.step, final, writer)
                if run_dir is not None and (self.step % t["ckpt_every"] == 0 or final):
                    self._checkpoint(task, metrics_file, writer)
                if out_of_time:
                    if main:
                        log.info("train.max_seconds=%s reached: stopped at step %d of %d (re-run to continue)",
                                 t["max_seconds"], self.step, t["steps"])
                    break
        finally:
            self._hook("loop_end")
            bar.close()
            if metrics_file is not None:
                metrics_file.close()
            if writer is not None:
                writer.close()
        took = time.perf_counter() - t0
        if main:
            log.info("%s: trained steps %d->%d in %.0f s (%.2f steps/s)", name, first_step, self.step, took,
                     (self.step - first_step) / max(took, 1e-9))
            if hasattr(task, "finish"):
                task.finish(self.step)
        return self.step


def _floats(metrics: dict) -> dict:
    """`{name: float}` of a step's metrics; the tensors among them are read from the device in one transfer."""
    names = [k for k, v in metrics.items() if isinstance(v, torch.Tensor)]
    values = []
    if names:
        device = metrics[names[0]].device
        values = torch.stack([metrics[k].detach().float().reshape(()).to(device) for k in names]).cpu().tolist()
    out = dict(zip(names, values))
    return {k: out[k] if k in out else float(v) for k, v in metrics.items()}
