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

`Denoiser` here is still today's object (the preconditioning *with* its objective attached, so that
`denoiser.loss(...)` and `denoiser.sample_sigma(...)` keep working) until the callers hold a TrainingObjective.
"""
from __future__ import annotations

import inspect

from torch import nn

from . import precond, training
from .precond import PARAMETERIZATIONS, Parameterization, get_parameterization
from .training import NOISE_DISTRIBUTIONS, NoiseDistribution, TrainingObjective, resolve_noise_dist


class Denoiser(precond.Denoiser):
    """EDM preconditioning with its training objective attached (Karras et al. 2022): today's one-object API.

    A :class:`precond.Denoiser` (so it samples exactly like one) that also carries a :class:`TrainingObjective` as
    `.objective` and delegates `loss`, `sample_sigma`, `loss_weight` and the training settings to it, with the
    numbers of the one-object Denoiser it replaces. Kept until the callers hold the two objects apart
    (Karras et al. 2024, EDM2); new code uses `precond.Denoiser` and `TrainingObjective`.

    Args:
        net, parameterization, sigma_data: as :class:`precond.Denoiser`.
        noise_dist, p_mean, p_std, num_train_steps, cond_drop_prob, min_snr_gamma: as :class:`TrainingObjective`.
    """

    def __init__(self, net: nn.Module, parameterization: str = "edm", sigma_data: float = 0.5,
                 noise_dist: str | None = None, p_mean: float = -1.2, p_std: float = 1.2,
                 num_train_steps: int = 1000, cond_drop_prob: float = 0.0, min_snr_gamma: float | None = None):
        # the checks in the one-object Denoiser's order: parameterization, noise_dist, sigma_data, the rest
        get_parameterization(parameterization)
        resolve_noise_dist(noise_dist, parameterization)
        super().__init__(net, parameterization, sigma_data)
        self.objective = TrainingObjective(noise_dist, p_mean, p_std, num_train_steps, cond_drop_prob,
                                           min_snr_gamma, parameterization=parameterization)

    # the training settings, read through to the objective
    noise_dist = property(lambda self: self.objective.noise_dist)
    p_mean = property(lambda self: self.objective.p_mean)
    p_std = property(lambda self: self.objective.p_std)
    num_train_steps = property(lambda self: self.objective.num_train_steps)
    cond_drop_prob = property(lambda self: self.objective.cond_drop_prob)
    min_snr_gamma = property(lambda self: self.objective.min_snr_gamma)
    train_sigmas = property(lambda self: self.objective.train_sigmas)

    def sample_sigma(self, batch: int, device=None, generator=None):
        """`self.objective.sample_sigma(batch, device, generator)`: training noise levels (Karras et al. 2022)."""
        return self.objective.sample_sigma(batch, device, generator)

    def loss_weight(self, sigma):
        """`self.objective.loss_weight(self, sigma)`: the Min-SNR weight (Hang et al. 2023), ones without it."""
        return self.objective.loss_weight(self, sigma)

    def loss(self, x0, sigma=None, noise=None, generator=None, reduce: bool = True, **cond):
        """`self.objective.loss(self, x0, ...)`: the denoising loss of this denoiser (Karras et al. 2022)."""
        return self.objective.loss(self, x0, sigma, noise, generator, reduce, **cond)


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


def build(net: nn.Module, cfg: dict | None = None) -> Denoiser:
    """The preconditioned denoiser (Karras et al. 2022) of a whole `objective` config section.

    Two builders read one section, because one section holds both kinds of settings (a run stores one
    `objective` in meta.json) while only training needs the second object (Karras et al. 2024 keep them apart):
    sampling callers (pipeline, sample logger, vocoder inference) call `build` alone; training calls `build` and
    :func:`build_objective` on the same section. Both refuse a key outside :func:`objective_keys`.
    Until the callers switch, the result also carries its :class:`TrainingObjective` (`.objective`, and
    `.loss` / `.sample_sigma` delegating to it with the one-object Denoiser's numbers).
    """
    pre, train = _split(cfg)
    return Denoiser(net, **pre, **train)


def build_objective(cfg: dict | None = None) -> TrainingObjective:
    """The training objective (noise levels, Min-SNR weighting, CFG dropout; Karras et al. 2022, Hang et al. 2023)
    of a whole `objective` config section; its `parameterization` picks the default `noise_dist` (see :func:`build`)."""
    pre, train = _split(cfg)
    return TrainingObjective(**train, parameterization=pre.get("parameterization", "edm"))


__all__ = ["Denoiser", "TrainingObjective", "Parameterization", "NoiseDistribution", "PARAMETERIZATIONS",
           "NOISE_DISTRIBUTIONS", "build", "build_objective", "objective_keys", "precond", "training"]
