"""audiodiff: audio diffusion with waveform and mel U-Nets, shared schedules, objectives and samplers.

Public API (re-exports only)::

    from audiodiff import Pipeline, MelSpec, Denoiser, sample, load, save, train

Errors: every exception audiodiff raises on purpose derives from `AudiodiffError`; bad arguments and settings
also from `UsageError` (a `ValueError`). The classes a caller usually catches are re-exported here::

    AudiodiffError, UsageError                  audiodiff.errors
    AudioError, MelContractError                reading/writing audio, mismatched mel contracts
    PipelineError, SaveError                    a bad generate/variation/... request; a failed save
    TrainingError, CheckpointError, DatasetError    training (settings, a busy run_dir), damaged checkpoints, bad data
    RunKindError                                a run of another kind (a vocoder run given to Pipeline, ...)

The last four are imported on first use, so `import audiodiff` stays light.
"""
from .audio import AudioError, load, save
from .errors import AudiodiffError, UsageError
from .mel import MelContractError, MelSpec
from .objectives import Denoiser
from .pipeline import Generated, Pipeline, PipelineError, SaveError
from .samplers import sample

__version__ = "0.1.0"


def train(cfg, hooks: dict | None = None):
    """Train a diffusion model from a config (dict or OmegaConf); see :func:`audiodiff.training.loop.train`.
    Every task (vocoders, the judge) by its config's `task`: :func:`audiodiff.training.tasks.train`."""
    from .training.loop import train as _train

    return _train(cfg, hooks=hooks)


# name -> module, imported on first access (PEP 562): training and data pull in more than `import audiodiff` needs
_LAZY = {"TrainingError": ".training.runtime", "CheckpointError": ".runs.meta", "DatasetError": ".data.check",
         "RunKindError": ".runs.meta"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["AudioError", "AudiodiffError", "CheckpointError", "DatasetError", "Denoiser", "Generated",
           "MelContractError", "MelSpec", "Pipeline", "PipelineError", "RunKindError", "SaveError", "TrainingError",
           "UsageError",
           "load", "sample", "save", "train", "__version__"]
