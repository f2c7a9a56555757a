"""Preconditioning: a network plus its parameterisation, seen as `D(x, sigma) -> x0_hat` (Karras et al. 2022, EDM).

This is what sampling needs and all it needs; what only training needs (noise levels, weighting, condition dropout,
the loss) is :mod:`.training`, kept apart as Karras et al. 2024 (EDM2) keep `Precond` and its loss apart.

Every parameterisation is written as EDM (Table 1) preconditioning
`D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))` on the
variance-exploding input `x = x0 + sigma * noise`. A parameterisation is one entry of :data:`PARAMETERIZATIONS`,
the function `(sigma, sigma_data) -> (c_skip, c_out, c_in)`:

| parameterisation | c_skip | c_out | c_in | network predicts |
|---|---|---|---|---|
| `eps` (DDPM, Ho et al. 2020) | 1 | -sigma | 1/sqrt(sigma^2+1) | the noise |
| `v` (Salimans & Ho 2022) | 1/(sigma^2+1) | -sigma/sqrt(sigma^2+1) | 1/sqrt(sigma^2+1) | v = alpha*eps - sigma_vp*x0 |
| `x0` | 0 | 1 | 1/sqrt(sigma^2+sd^2) | the clean signal |
| `edm` | sd^2/(sigma^2+sd^2) | sigma*sd/sqrt(sigma^2+sd^2) | 1/sqrt(sigma^2+sd^2) | EDM's F |
| `flow` (rectified flow, Liu et al. 2023; Lipman et al. 2023) | 1/(1+sigma) | -sigma/(1+sigma) | 1/(1+sigma) | velocity noise - x0 |

For `eps` and `v` the input `c_in * x` is exactly the VP-diffused sample `sqrt(abar) x0 + sqrt(1-abar) eps`.
Flow matching (`flow`): with `t = sigma / (1 + sigma)` the flow's straight interpolation `(1 - t) x0 + t noise` is
`x / (1 + sigma)`, so a network predicting the velocity `noise - x0` has `c_skip = c_in = 1/(1+sigma)`,
`c_out = -sigma/(1+sigma)`; an Euler step in sigma on `x` is then exactly the flow's Euler step in `t` on the
interpolation (tests/test_objectives.py). Its training noise levels are SD3's logit-normal timesteps (Esser et al.
2024): `logit(t) ~ N(m, s^2)` is `log(sigma) ~ N(m, s^2)`, the `lognormal` distribution with `p_mean = m`,
`p_std = s`, and SD3's timestep shift `t -> shift t / (1 + (shift - 1) t)` is `sigma -> shift * sigma`, i.e.
`p_mean = m + log(shift)` (configs/objective/flow.yaml). The network always receives
`c_noise = log(sigma) / 4` (EDM's choice), which is continuous, so a model trained on discrete VP timesteps is sampled
with any schedule.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

Scalings = Callable[[torch.Tensor, float], "tuple[torch.Tensor, torch.Tensor, torch.Tensor]"]


@dataclass(frozen=True)
class Parameterization:
    """One row of the preconditioning table (Karras et al. 2022, EDM Table 1): how a network's output becomes x0.

    Args:
        scalings: `(sigma, sigma_data) -> (c_skip, c_out, c_in)`; `sigma` is a float32 tensor of any shape and
            `sigma_data` a float; each result is a float32 tensor shaped like `sigma`.
        noise_dist: the training noise-level distribution the parameterisation was published with (a key of
            :data:`audiodiff.objectives.training.NOISE_DISTRIBUTIONS`); the training objective's default,
            read nowhere in sampling.
        predicts: what the network learns to output, in words (documentation).
    """

    scalings: Scalings
    noise_dist: str = "lognormal"
    predicts: str = ""


def _eps(s: torch.Tensor, sd: float):
    return torch.ones_like(s), -s, (s ** 2 + 1).rsqrt()


def _v(s: torch.Tensor, sd: float):
    return 1 / (s ** 2 + 1), -s * (s ** 2 + 1).rsqrt(), (s ** 2 + 1).rsqrt()


def _x0(s: torch.Tensor, sd: float):
    return torch.zeros_like(s), torch.ones_like(s), (s ** 2 + sd ** 2).rsqrt()


def _edm(s: torch.Tensor, sd: float):
    return sd ** 2 / (s ** 2 + sd ** 2), s * sd * (s ** 2 + sd ** 2).rsqrt(), (s ** 2 + sd ** 2).rsqrt()


def _flow(s: torch.Tensor, sd: float):
    c_in = 1 / (1 + s)
    return c_in, -s * c_in, c_in


# The registry: a new parameterisation is a new entry (PARAMETERIZATIONS["name"] = Parameterization(...)).
PARAMETERIZATIONS: dict[str, Parameterization] = {
    "eps": Parameterization(_eps, "vp_linear", "the noise (Ho et al. 2020)"),
    "v": Parameterization(_v, "vp_cosine", "v = alpha * eps - sigma_vp * x0 (Salimans & Ho 2022)"),
    "x0": Parameterization(_x0, "lognormal", "the clean signal"),
    "edm": Parameterization(_edm, "lognormal", "EDM's F (Karras et al. 2022)"),
    "flow": Parameterization(_flow, "lognormal", "the velocity noise - x0 of the straight path (rectified flow)"),
}


def get_parameterization(name) -> Parameterization:
    """The preconditioning table's row `name` (Karras et al. 2022, Table 1); a one-line ValueError names the others."""
    if name not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {name!r}; allowed: {tuple(PARAMETERIZATIONS)}")
    return PARAMETERIZATIONS[name]


def check_sigma_data(sigma_data) -> float:
    """EDM's `sigma_data` (Karras et al. 2022) as a float > 0, or a one-line ValueError (`auto`: resolve it first)."""
    if sigma_data == "auto":  # resolved by train() from the training data before the Denoiser is built
        raise ValueError("sigma_data='auto' must be resolved to a number first (train() measures it with "
                         "audiodiff.data.stats.model_space_rms); got it unresolved")
    if isinstance(sigma_data, bool) or not isinstance(sigma_data, numbers.Real) or not sigma_data > 0:
        raise ValueError(f"sigma_data must be a number > 0 or auto; got {sigma_data!r}")
    return float(sigma_data)


def expand_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """`sigma` (a scalar or `(B,)`) as a float32 `(B,)` tensor on `x`'s device, for a batch `x (B, ...)`."""
    sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
    if sigma.dim() == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or shaped (B,) = ({x.shape[0]},); got {tuple(sigma.shape)}")
    return sigma


def bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-item `(B,)` tensor reshaped to broadcast against `x (B, ...)`."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))


class Denoiser(nn.Module):
    """Wrap a network `F(x, c_noise, **cond)` into an x0-estimator `D(x, sigma, **cond)` (Karras et al. 2022, EDM).

    Preconditioning only (EDM2's `Precond`, Karras et al. 2024): the training side is
    :class:`audiodiff.objectives.training.TrainingObjective`.

    Args:
        net: module called as `net(x_in, c_noise (B,), **cond)`, returning a tensor shaped like `x_in`.
        parameterization: a key of :data:`PARAMETERIZATIONS` (`eps`, `v`, `x0`, `edm`, or a registered one).
        sigma_data: standard deviation of the data (EDM; 0.5 suits audio in [-1, 1] and normalised mel).
    """

    def __init__(self, net: nn.Module, parameterization: str = "edm", sigma_data: float = 0.5):
        super().__init__()
        self._param = get_parameterization(parameterization)
        self.sigma_data = check_sigma_data(sigma_data)
        self.net = net
        self.parameterization = parameterization

    def scalings(self, sigma: torch.Tensor):
        """Return `(c_skip, c_out, c_in, c_noise)` for noise levels `sigma` (any shape), in float32."""
        s = sigma.float()
        c_skip, c_out, c_in = self._param.scalings(s, self.sigma_data)
        c_noise = s.clamp(min=1e-20).log() / 4
        return c_skip, c_out, c_in, c_noise

    def _expand(self, sigma, x: torch.Tensor) -> torch.Tensor:
        return expand_sigma(sigma, x)

    def _bcast(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return bcast(v, x)

    def raw(self, x: torch.Tensor, sigma, **cond):
        """Network output `F` and the scalings, for `x (B, ...)` at noise levels `sigma` (scalar or `(B,)`).

        Returns `(F float32, c_skip (B,), c_out (B,))`: what a training objective needs for its target.
        """
        sigma = expand_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        f = self.net((x.float() * bcast(c_in, x)).to(x.dtype), c_noise, **cond)
        return f.float(), c_skip, c_out

    def forward(self, x: torch.Tensor, sigma, **cond) -> torch.Tensor:
        """Estimate x0 from `x = x0 + sigma * noise`.

        Args:
            x: noisy input `(B, C, T)` or `(B, 1, n_mels, frames)`.
            sigma: noise level, a scalar or `(B,)`; must be > 0.
            **cond: conditions passed to the network (labels, pitch, vector, local, drop).
        Returns:
            x0 estimate shaped like `x`, float32.
        """
        f, c_skip, c_out = self.raw(x, sigma, **cond)
        return bcast(c_skip, x) * x.float() + bcast(c_out, x) * f


__all__ = ["Denoiser", "Parameterization", "PARAMETERIZATIONS", "get_parameterization", "check_sigma_data",
           "expand_sigma", "bcast"]
