"""Noise schedules: descending noise levels (sigmas) ending in 0, in the variance-exploding view.

Every function returns a 1-D float tensor `(n + 1,)`: `n` decreasing positive sigmas followed by a
final 0, the form every sampler in :mod:`audiodiff.samplers` takes. Variance-preserving (DDPM)
schedules are converted with `sigma = sqrt((1 - alpha_bar) / alpha_bar)` (Song et al. 2021;
Karras et al. 2022, Table 1).
"""
from __future__ import annotations

import math
import numbers

import torch

from .errors import UsageError

SCHEDULES = ("karras", "vp_linear", "vp_cosine", "exponential")


class ScheduleError(UsageError):
    """A schedule was asked for with values it cannot honour."""


def _check(n: int, sigma_min: float | None = None, sigma_max: float | None = None, what: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ScheduleError(f"{what} must be an integer >= 1; got {n!r}")
    if sigma_min is not None and sigma_max is not None:
        if not (0 < sigma_min < sigma_max < math.inf):
            raise ScheduleError(
                f"need finite 0 < sigma_min < sigma_max; got sigma_min={sigma_min}, sigma_max={sigma_max}"
            )


def _append_zero(s: torch.Tensor) -> torch.Tensor:
    return torch.cat([s, s.new_zeros(1)])


def karras(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022 (EDM, eq. 5) schedule: sigmas evenly spaced in sigma**(1/rho), then 0.

    Returns `(n + 1,)`: `sigma_max`, ..., `sigma_min` (both exact), 0. `n = 1` gives `[sigma_max, 0]`.
    """
    _check(n, sigma_min, sigma_max)
    if not 0 < rho < math.inf:
        raise ScheduleError(f"rho must be a positive finite number (EDM uses 7); got {rho}")
    if n == 1:
        return _append_zero(torch.tensor([sigma_max], dtype=torch.float64)).float()
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    s = (hi + ramp * (lo - hi)) ** rho
    s[0], s[-1] = sigma_max, sigma_min  # the power of a root is not always the number back
    return _append_zero(s).float()


def exponential(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """Sigmas evenly spaced in log(sigma) (the log-SNR-uniform schedule of DPM-Solver, Lu et al. 2022), then 0.

    Returns `(n + 1,)`: `sigma_max`, ..., `sigma_min` (both exact), 0. `n = 1` gives `[sigma_max, 0]`.
    """
    _check(n, sigma_min, sigma_max)
    s = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp()
    s[0] = sigma_max
    if n > 1:
        s[-1] = sigma_min
    return _append_zero(s).float()


# ---------------------------------------------------------------- variance-preserving (DDPM) schedules
def betas_linear(num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM (Ho et al. 2020) linear beta schedule `(num_train_steps,)`, float64."""
    _check(num_train_steps, what="num_train_steps")
    if not 0 < beta_start < beta_end < 1:
        raise ScheduleError(f"need 0 < beta_start < beta_end < 1; got {beta_start}, {beta_end}")
    return torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64)


def betas_cosine(num_train_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021 cosine schedule: betas from alpha_bar(t) = cos^2((t/T + s)/(1 + s) * pi/2).

    Returns `(num_train_steps,)` float64 betas, clipped at `max_beta` as in the paper (only the last few).
    """
    _check(num_train_steps, what="num_train_steps")
    if not s >= 0:
        raise ScheduleError(f"cosine offset s must be >= 0; got {s}")
    if not 0 < max_beta < 1:
        raise ScheduleError(f"max_beta must be in (0, 1); got {max_beta}")
    t = torch.arange(num_train_steps + 1, dtype=torch.float64) / num_train_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


def alpha_bar_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """Cumulative product of (1 - beta): alpha_bar_t, `(T,)`."""
    return torch.cumprod(1 - betas.double(), 0)


def betas_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`alpha_bar_from_betas`: beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} (alpha_bar_{-1} = 1)."""
    alpha_bar = alpha_bar.double()
    prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return 1 - alpha_bar / prev


def sigmas_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """VP -> VE: sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)."""
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def alpha_bar_from_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """VE -> VP: alpha_bar = 1 / (1 + sigma^2)."""
    return 1 / (1 + sigmas.double() ** 2)


def sigmas_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """VE sigmas `(T,)` ascending with training timestep, for a DDPM beta schedule."""
    return sigmas_from_alpha_bar(alpha_bar_from_betas(betas))


def _vp(train_sigmas: torch.Tensor, n: int) -> torch.Tensor:
    # DDIM-style "leading" spacing over the training timesteps, always including the last (noisiest) one.
    T = len(train_sigmas)
    if n > T:
        raise ScheduleError(f"asked for n={n} steps but the VP schedule has only {T} training timesteps; "
                            f"allowed: 1 <= n <= {T}")
    idx = torch.linspace(T - 1, 0, n, dtype=torch.float64).round().long()
    return _append_zero(train_sigmas[idx]).float()


def vp_linear(n: int, num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """`n` sigmas of the DDPM linear schedule (evenly spaced training timesteps, T-1 down to 0), then 0.

    `n` ranges over 1..num_train_steps; the sigmas are members of the training schedule
    (:func:`sigmas_from_betas`), so a VP-trained model sees only levels it was trained on.
    """
    _check(n)
    return _vp(sigmas_from_betas(betas_linear(num_train_steps, beta_start, beta_end)), n)


def vp_cosine(n: int, num_train_steps: int = 1000, s: float = 0.008) -> torch.Tensor:
    """`n` sigmas of the improved-DDPM cosine schedule (evenly spaced training timesteps, T-1 down to 0), then 0."""
    _check(n)
    return _vp(sigmas_from_betas(betas_cosine(num_train_steps, s)), n)


_BUILDERS = {"karras": karras, "vp_linear": vp_linear, "vp_cosine": vp_cosine, "exponential": exponential}


def build(name: str, n: int, **kwargs) -> torch.Tensor:
    """Schedule by name (`karras`, `vp_linear`, `vp_cosine`, `exponential`) with `n` steps."""
    if name not in _BUILDERS:
        raise ScheduleError(f"unknown schedule {name!r}; allowed: {sorted(_BUILDERS)}")
    return _BUILDERS[name](n, **kwargs)


def check_sigmas(sigmas: torch.Tensor) -> None:
    """Raise unless `sigmas` is 1-D, has >= 2 entries, is strictly descending and ends in 0."""
    if not isinstance(sigmas, torch.Tensor) or sigmas.dim() != 1:
        raise ScheduleError("sigmas must be a 1-D tensor of descending noise levels ending in 0")
    if len(sigmas) < 2:
        raise ScheduleError(f"sigmas must hold at least one step and the final 0 (>= 2 values); got {len(sigmas)}")
    if not torch.isfinite(sigmas).all():
        raise ScheduleError("sigmas contain NaN or inf")
    if float(sigmas[-1]) != 0.0:
        raise ScheduleError(f"sigmas must end in 0; the last value is {float(sigmas[-1])}")
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ScheduleError(f"sigmas must be strictly descending; got {sigmas.tolist()[:8]}...")
