"""audiodiff: audio diffusion with waveform and mel U-Nets, shared schedules, objectives and samplers.

Public API (re-exports only)::

    from audiodiff import Pipeline, MelSpec, Denoiser, sample, load, save, train
"""
from .audio import AudioError, load, save
from .mel import MelContractError, MelSpec
from .objectives import Denoiser
from .pipeline import Generated, Pipeline, PipelineError
from .samplers import sample

__version__ = "0.1.0"


def train(cfg):
    """Train a model from a config (dict or OmegaConf); see :func:`audiodiff.training.loop.train`."""
    from .training.loop import train as _train

    return _train(cfg)


__all__ = ["AudioError", "Denoiser", "Generated", "MelContractError", "MelSpec", "Pipeline", "PipelineError",
           "load", "sample", "save", "train", "__version__"]
