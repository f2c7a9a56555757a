"""The task registry: every trained thing is a registered task of the one runtime, dispatched in one place.

Audiocraft keeps its solvers in one registry (`audiocraft/solvers/builders.py`); here a config's `task` names an
entry of :data:`TASKS`, and :func:`train` is the one dispatch that `audiodiff train`, `audiodiff.train(cfg)` and
the recipes reach. A task entry declares the protocol every trainer follows:

- `name`: the config's `task`; `kind`: what its runs' `meta.json` says (`runs.meta.KINDS`);
- `resolve(cfg) -> dict`: the plain config with its defaults filled and its settings checked (one place each);
- `train(cfg, hooks=None) -> Path`: resolve, build the task's modules on :class:`~.runtime.Runtime` and fit;
  `hooks` are the runtime's (:data:`.runtime.HOOKS`).

Inside, each trainer is a task object for the runtime (`DiffusionTask`, `VocoderTask`, `JudgeTask`: its
`dataset`, `stateful`, `step`, `weights`, ...; runtime.py's docstring). The diffusion model and the vocoders are
registered here, and the distilled student (`distill`, training/distill.py); the judge registers itself from
`audiodiff.evaluation.judge.train` (evaluation builds on training, never the other way), so :func:`get` names it
once that module is imported (`audiodiff evaluate train-judge` does).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UsageError

__all__ = ["TaskEntry", "TASKS", "register", "get", "train", "resolve"]


@dataclass(frozen=True)
class TaskEntry:
    """One trained thing: its config's `task` name, its runs' kind, and how to resolve and train its config."""

    name: str
    kind: str
    resolve: Callable[[dict], dict]
    train: Callable[..., Path]
    about: str = ""


TASKS: dict[str, TaskEntry] = {}


def register(entry: TaskEntry) -> TaskEntry:
    """Add (or replace) a task under its name."""
    TASKS[entry.name] = entry
    return entry


def get(name) -> TaskEntry:
    """The task registered as `name`; an unknown one names the tasks there are."""
    if name not in TASKS:
        raise UsageError(f"task={name!r} is not a task; allowed: {sorted(TASKS)}")
    return TASKS[name]


def _plain(cfg):
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return cfg


def resolve(cfg) -> dict:
    """The checked plain config of `cfg`'s task (default `diffusion`)."""
    cfg = _plain(cfg)
    return get(cfg.get("task", "diffusion") if isinstance(cfg, dict) else "diffusion").resolve(cfg)


def train(cfg, hooks: dict | None = None) -> Path:
    """Train what `cfg` describes (dict or OmegaConf; its `task`, default `diffusion`); returns the run directory."""
    cfg = _plain(cfg)
    name = cfg.get("task", "diffusion") if isinstance(cfg, dict) else "diffusion"
    return get(name).train(cfg, hooks=hooks)


def _diffusion_train(cfg, hooks=None):
    from .loop import train as run

    return run(cfg, hooks=hooks)


def _diffusion_resolve(cfg):
    from .loop import resolve_config

    return resolve_config(cfg)


def _vocoder_train(cfg, hooks=None):
    from .vocoder import train_vocoder

    return train_vocoder(cfg, hooks=hooks)


def _vocoder_resolve(cfg):
    from .vocoder import resolve_config

    return resolve_config(cfg)


def _distill_train(cfg, hooks=None):
    from .distill import train_distill

    return train_distill(cfg, hooks=hooks)


def _distill_resolve(cfg):
    from .distill import resolve_config

    return resolve_config(cfg)


register(TaskEntry("diffusion", "diffusion", _diffusion_resolve, _diffusion_train,
                   "a waveform or mel diffusion model (training/loop.py)"))
register(TaskEntry("vocoder", "vocoder", _vocoder_resolve, _vocoder_train,
                   "a neural (GAN) or diffusion vocoder (training/vocoder.py)"))
register(TaskEntry("distill", "diffusion", _distill_resolve, _distill_train,
                   "a few-step student of a teacher run, guidance distilled into it (training/distill.py)"))
