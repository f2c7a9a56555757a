"""The denoiser seam: preconditioning (:mod:`.precond`) and its training objective (:mod:`.training`) from config.

Karras et al. 2022 (EDM) preconditioning turns a network into `D(x, sigma) -> x0_hat`; the training objective (noise
levels, Min-SNR weighting after Hang et al. 2023, condition dropout, the loss) is a separate object, as Karras et
al. 2024 (EDM2) keep `Precond` and its loss apart. Both are tables: a parameterisation is an entry of
:data:`PARAMETERIZATIONS`, a training noise-level distribution an entry of :data:`NOISE_DISTRIBUTIONS`.

- :class:`precond.Denoiser` `(net, parameterization, sigma_data)`: `forward`, `raw`, `scalings`. All sampling needs.
- :class:`TrainingObjective` `(noise_dist, p_mean, p_std, num_train_steps, cond_drop_prob, min_snr_gamma)`:
  `loss(denoiser, x0, ...)`, `sample_sigma(batch, device, generator)`, `loss_weight(denoiser, sigma)`.
- :func:`build` `(net, cfg)` and :func:`build_objective` `(cfg)` read the same `objective` config section;
  :func:`objective_keys` lists its keys.

`Denoiser` is :class:`precond.Denoiser`, re-exported: the preconditioning alone, with no loss and no training
settings; training holds the :class:`TrainingObjective` of :func:`build_objective` beside it and calls
`objective.loss(denoiser, x0, ...)`.
"""
from __future__ import annotations

import inspect

from torch import nn

from . import precond, training
from .precond import PARAMETERIZATIONS, Parameterization, get_parameterization
from .training import NOISE_DISTRIBUTIONS, NoiseDistribution, TrainingObjective, resolve_noise_dist


Denoiser = precond.Denoiser  # the one Denoiser: preconditioning only (Karras et al. 2024 keep the loss apart)


def _args(fn, skip=("self", "net")) -> list[str]:
    return [a for a, p in inspect.signature(fn).parameters.items()
            if a not in skip and p.kind is p.POSITIONAL_OR_KEYWORD]


def objective_keys() -> tuple[str, ...]:
    """The keys an `objective` config section may hold (Karras et al. 2022 / 2024 split): the union of
    :class:`precond.Denoiser`'s arguments (`parameterization`, `sigma_data`) and :class:`TrainingObjective`'s."""
    keys = _args(precond.Denoiser.__init__) + _args(TrainingObjective.__init__)
    return tuple(dict.fromkeys(keys))


def _split(cfg: dict | None) -> tuple[dict, dict]:
    cfg = dict(cfg or {})
    allowed = objective_keys()
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown objective settings {unknown}; allowed: {sorted(allowed)}")
    pre = set(_args(precond.Denoiser.__init__))
    return {k: v for k, v in cfg.items() if k in pre}, {k: v for k, v in cfg.items() if k not in pre}


def build(net: nn.Module, cfg: dict | None = None) -> precond.Denoiser:
    """The preconditioned denoiser (Karras et al. 2022) of a whole `objective` config section.

    Two builders read one section, because one section holds both kinds of settings (a run stores one
    `objective` in meta.json) while only training needs the second object (Karras et al. 2024 keep them apart):
    sampling callers (pipeline, sample logger, vocoder inference) call `build` alone; training calls `build` and
    :func:`build_objective` on the same section. Both refuse a key outside :func:`objective_keys`, and `build`
    checks the training keys too (a section that cannot train is refused here as well), with one-line errors in
    this order: unknown key, parameterization, noise_dist, sigma_data, cond_drop_prob, min_snr_gamma.
    The result is a :class:`precond.Denoiser` and nothing more.
    """
    pre, train = _split(cfg)
    parameterization = pre.get("parameterization", "edm")
    get_parameterization(parameterization)
    resolve_noise_dist(train.get("noise_dist"), parameterization)
    denoiser = precond.Denoiser(net, **pre)
    TrainingObjective(**train, parameterization=parameterization)  # checks the rest; sampling does not keep it
    return denoiser


def build_objective(cfg: dict | None = None) -> TrainingObjective:
    """The training objective (noise levels, Min-SNR weighting, CFG dropout; Karras et al. 2022, Hang et al. 2023)
    of a whole `objective` config section; its `parameterization` picks the default `noise_dist` (see :func:`build`)."""
    pre, train = _split(cfg)
    return TrainingObjective(**train, parameterization=pre.get("parameterization", "edm"))


__all__ = ["Denoiser", "TrainingObjective", "Parameterization", "NoiseDistribution", "PARAMETERIZATIONS",
           "NOISE_DISTRIBUTIONS", "build", "build_objective", "objective_keys", "precond", "training"]
