"""The training objective: noise levels, loss weighting, condition dropout and the denoising loss (Karras et al. 2022).

Kept apart from the preconditioning (:mod:`.precond`), as Karras et al. 2024 (EDM2) keep `Precond` and its loss
apart: sampling never needs anything here. :class:`TrainingObjective` takes any
:class:`~audiodiff.objectives.precond.Denoiser` and returns its loss.

The loss is the mean squared error between the network output `F` and its effective target
`(x0 - c_skip * x) / c_out` — which is the noise for `eps`, `v` for `v`, x0 for `x0` and EDM's weighted loss for
`edm` — so prediction types are converted by the preconditioning's scalings and nowhere else.
`min_snr_gamma` (Hang et al. 2023, "Min-SNR weighting") reweights that loss so that, read in x0 space, each noise
level counts `min(SNR, gamma)` with `SNR = 1 / sigma^2` (the VP signal-to-noise ratio `alpha^2 / sigma_vp^2` of the
same level): the F-space weight is `min(SNR, gamma) * c_out^2`, which is `min(SNR, gamma) / SNR` for `eps`,
`min(SNR, gamma) / (SNR + 1)` for `v` and `min(SNR, gamma)` for `x0`.

Training noise levels come from :data:`NOISE_DISTRIBUTIONS`, a registry: a new distribution is a new entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import schedules
from .precond import PARAMETERIZATIONS, bcast, expand_sigma, get_parameterization


@dataclass(frozen=True)
class NoiseDistribution:
    """One training noise-level distribution, a registry entry (log-normal: Karras et al. 2022; VP: Ho et al. 2020).

    Args:
        sample: `(objective, batch, device, generator) -> (batch,) float32 sigma on device`. It draws on the
            generator's device (so a CPU generator reproduces on any device) and may read the objective's
            `p_mean`, `p_std`, `num_train_steps` and `train_sigmas`.
        table: None, or `num_train_steps -> (T,)` the discrete training noise levels (a VP timestep
            distribution); the objective keeps them as its `train_sigmas` buffer.
    """

    sample: Callable
    table: Callable[[int], torch.Tensor] | None = None


def _gen_device(generator, device):
    return generator.device if generator is not None else device


def _lognormal(obj: "TrainingObjective", batch: int, device, generator):
    """`log(sigma) ~ N(p_mean, p_std^2)` (Karras et al. 2022, sec. 5)."""
    z = torch.randn(batch, generator=generator, device=_gen_device(generator, device))
    return (z * obj.p_std + obj.p_mean).exp().to(device)


def _vp_timestep(obj: "TrainingObjective", batch: int, device, generator):
    """A timestep `t` uniform over the `num_train_steps` DDPM steps, returned as its VE sigma (Ho et al. 2020)."""
    t = torch.randint(0, obj.num_train_steps, (batch,), generator=generator, device=_gen_device(generator, device))
    return obj.train_sigmas.to(device)[t.to(device)]


NOISE_DISTRIBUTIONS: dict[str, NoiseDistribution] = {
    "lognormal": NoiseDistribution(_lognormal),
    "vp_linear": NoiseDistribution(_vp_timestep, lambda n: schedules.sigmas_from_betas(schedules.betas_linear(n))),
    "vp_cosine": NoiseDistribution(_vp_timestep, lambda n: schedules.sigmas_from_betas(schedules.betas_cosine(n))),
}


def resolve_noise_dist(noise_dist, parameterization: str = "edm") -> str:
    """`noise_dist`, or `parameterization`'s published one when None (EDM: log-normal; DDPM: VP timesteps).

    Raises a one-line ValueError naming the allowed ones."""
    if noise_dist is None:
        noise_dist = get_parameterization(parameterization).noise_dist
    if noise_dist not in NOISE_DISTRIBUTIONS:
        raise ValueError(f"unknown noise_dist {noise_dist!r}; allowed: {tuple(NOISE_DISTRIBUTIONS)}")
    return noise_dist


class TrainingObjective(nn.Module):
    """The denoising loss of a preconditioned network: noise levels, weighting, CFG dropout (Karras et al. 2022).

    What only training needs, apart from the preconditioning as in Karras et al. 2024 (EDM2); Min-SNR-gamma
    weighting from Hang et al. 2023. A module only so that `.to(device)` moves the VP training sigmas; it has no
    parameters and nothing in a state dict.

    Args:
        noise_dist: a key of :data:`NOISE_DISTRIBUTIONS`; None: the parameterisation's own (`lognormal` for
            `edm`/`x0`, `vp_linear` for `eps`, `vp_cosine` for `v`: a discrete VP timestep drawn uniformly).
        p_mean, p_std: log-normal parameters (EDM: -1.2, 1.2).
        num_train_steps: number of discrete timesteps of a VP training distribution.
        cond_drop_prob: probability that training drops all global conditions of an item (CFG).
        min_snr_gamma: None (the parameterisation's own weighting) or gamma > 0 of Min-SNR-gamma loss weighting
            (Hang et al. 2023; 5 in the paper): easy low-noise levels stop dominating the gradient.
        parameterization: keyword only; the parameterisation whose default `noise_dist=None` resolves to, and
            nothing else (:func:`audiodiff.objectives.build_objective` passes the config's). With `noise_dist=None`
            :meth:`loss` refuses a denoiser of another parameterisation.
    """

    def __init__(self, noise_dist: str | None = None, p_mean: float = -1.2, p_std: float = 1.2,
                 num_train_steps: int = 1000, cond_drop_prob: float = 0.0, min_snr_gamma: float | None = None,
                 *, parameterization: str = "edm"):
        super().__init__()
        # the parameterisation whose default noise_dist this is (None: chosen explicitly)
        self._default_for = parameterization if noise_dist is None else None
        noise_dist = resolve_noise_dist(noise_dist, parameterization)
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1); got {cond_drop_prob}")
        if min_snr_gamma is not None and not min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be null or a number > 0; got {min_snr_gamma}")
        self.noise_dist = noise_dist
        self._dist = NOISE_DISTRIBUTIONS[noise_dist]
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self.num_train_steps = int(num_train_steps)
        self.cond_drop_prob = float(cond_drop_prob)
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)
        if self._dist.table is not None:
            self.register_buffer("train_sigmas", self._dist.table(self.num_train_steps).float(), persistent=False)
        else:
            self.train_sigmas = None

    def extra_repr(self) -> str:
        return (f"noise_dist={self.noise_dist!r}, p_mean={self.p_mean}, p_std={self.p_std}, "
                f"num_train_steps={self.num_train_steps}, cond_drop_prob={self.cond_drop_prob}, "
                f"min_snr_gamma={self.min_snr_gamma}")

    def sample_sigma(self, batch: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `(batch,)` training noise levels from this objective's distribution.

        `lognormal`: `log(sigma) ~ N(p_mean, p_std^2)` (Karras et al. 2022, sec. 5). `vp_linear` / `vp_cosine`:
        a timestep `t` uniform over the `num_train_steps` DDPM steps, returned as its VE sigma (Ho et al. 2020).
        The draw happens on the generator's device (so a CPU generator reproduces on any device).
        """
        return self._dist.sample(self, batch, device, generator)

    def loss_weight(self, denoiser, sigma: torch.Tensor) -> torch.Tensor:
        """The per-item weight on the F-space squared error at noise levels `sigma` (ones without Min-SNR).

        Min-SNR-gamma (Hang et al. 2023): `min(1 / sigma^2, gamma) * c_out^2`, with `c_out` the denoiser's.
        """
        s = sigma.float()
        if self.min_snr_gamma is None:
            return torch.ones_like(s)
        c_out = denoiser.scalings(s)[1]
        return (s.pow(-2).clamp(max=self.min_snr_gamma) * c_out ** 2)

    def loss(self, denoiser, x0: torch.Tensor, sigma: torch.Tensor | None = None, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None, reduce: bool = True, **cond) -> torch.Tensor:
        """Denoising loss (Karras et al. 2022): MSE of the network output and its target `(x0 - c_skip x) / c_out`.

        Args:
            denoiser: a :class:`~audiodiff.objectives.precond.Denoiser` (or a wrapper offering `raw`, `scalings`,
                `training` and `parameterization`).
            x0: clean batch `(B, ...)`.
            sigma: `(B,)` noise levels; drawn with :meth:`sample_sigma` when None.
            noise: unit Gaussian like `x0`; drawn when None.
            generator: draws sigma, then the noise, then the drop mask, in that order.
            reduce: return the batch mean (True) or per-item losses `(B,)`.
            **cond: network conditions; with `cond_drop_prob > 0` and the denoiser in training mode a random
                `drop` mask is added (CFG training).
        """
        if self._default_for is not None and denoiser.parameterization != self._default_for:
            raise ValueError(f"this TrainingObjective took noise_dist={self.noise_dist!r} as the default of "
                             f"parameterization {self._default_for!r} but the denoiser is "
                             f"{denoiser.parameterization!r}; build both from one config (objectives.build, "
                             "build_objective) or pass noise_dist")
        B = x0.shape[0]
        if sigma is None:
            sigma = self.sample_sigma(B, x0.device, generator)
        sigma = expand_sigma(sigma, x0)
        if not bool((sigma > 0).all()) or not bool(torch.isfinite(sigma).all()):
            raise ValueError(f"loss needs finite noise levels sigma > 0; got min {float(sigma.min())}")
        if noise is None:
            gen_device = generator.device if generator is not None else x0.device
            noise = torch.randn(x0.shape, device=gen_device, dtype=x0.dtype, generator=generator).to(x0.device)
        if self.cond_drop_prob > 0 and "drop" not in cond and denoiser.training:
            gen_device = generator.device if generator is not None else x0.device
            cond["drop"] = (torch.rand(B, device=gen_device, generator=generator) < self.cond_drop_prob).to(x0.device)
        x = x0 + bcast(sigma, x0) * noise
        f, c_skip, c_out = denoiser.raw(x, sigma, **cond)
        target = (x0.float() - bcast(c_skip, x0) * x.float()) / bcast(c_out, x0)
        per_item = (f - target).pow(2).flatten(1).mean(1)
        if self.min_snr_gamma is not None:
            per_item = per_item * self.loss_weight(denoiser, sigma)
        return per_item.mean() if reduce else per_item


__all__ = ["TrainingObjective", "NoiseDistribution", "NOISE_DISTRIBUTIONS", "resolve_noise_dist",
           "PARAMETERIZATIONS"]
