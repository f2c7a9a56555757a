"""Samplers: stateless functions that integrate the diffusion ODE/SDE over a denoiser `D(x, sigma) -> x0_hat`.

All work in the variance-exploding view of Karras et al. 2022 (EDM): `x = x0 + sigma * noise`, with a
descending `sigmas` schedule ending in 0 (see :mod:`audiodiff.schedules`). None branches on the
model's parameterisation: :class:`audiodiff.objectives.Denoiser` has already turned the network into an
x0-estimator.

Methods:
- `euler`: first-order ODE step (EDM Alg. 1 without the correction) == DDIM with eta = 0 (Song et al. 2021).
- `ddim`: DDIM with `eta` (default 0); in this view an Euler step to `sigma_down` plus fresh noise `sigma_up`.
- `ddpm`: ancestral DDPM (Ho et al. 2020) == DDIM with eta = 1 (the posterior variance).
- `heun`: EDM Alg. 2 (2nd order), with optional churn (`s_churn`, `s_tmin`, `s_tmax`, `s_noise`).
- `dpmpp_2m`: DPM-Solver++(2M), Lu et al. 2022, multistep 2nd order in log-sigma.
- `dpmpp_2m_sde`: DPM-Solver++(2M) SDE (midpoint), Lu et al. 2022 with `eta` (default 1).

`ddim`, `ddpm` and `euler` share one implementation (:func:`ddim`). Every method's last step to sigma = 0
returns the denoiser's x0 estimate exactly (so an inpainting wrapper's known region survives bit for bit).
Float64 noise is integrated in float64 (closed-form tests); any other dtype in float32.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Sequence

import torch

from .schedules import check_sigmas
from .errors import UsageError

GeneratorArg = torch.Generator | Sequence[torch.Generator] | None


class SamplerError(UsageError):
    """A sampler was called with a name or arguments it does not take."""


def randn(shape: Sequence[int], device, dtype=torch.float32, generator: GeneratorArg = None) -> torch.Tensor:
    """Unit Gaussian `(B, ...)`; with a list of generators item k is drawn from generator k alone.

    Each generator draws on its own device, so a CPU generator gives the same numbers whatever the
    target device is. That is what makes item k independent of the rest of the batch.
    """
    shape = tuple(shape)
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    gens = list(generator)
    if len(gens) != shape[0]:
        raise SamplerError(f"got {len(gens)} generators for a batch of {shape[0]}: give one per item")
    return torch.stack([torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype) for g in gens]).to(device)


def _steps(sigmas: torch.Tensor, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(range(len(sigmas) - 1), disable=not progress, desc=desc, leave=False)


def _denoise(denoiser, x, sigma, cond):
    return denoiser(x, sigma.expand(x.shape[0]), **cond)


def _cb(callback, i, x, sigma, sigma_next, denoised):
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})


def ddim(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, generator: GeneratorArg = None,
         callback=None, progress: bool = True, eta: float = 0.0, s_noise: float = 1.0, **cond) -> torch.Tensor:
    """DDIM (Song et al. 2021) with stochasticity `eta`, as an Euler step to sigma_down plus noise sigma_up.

    With `a = 1 / (1 + sigma^2)` DDIM's sigma_t(eta) becomes, in the VE view,
    `sigma_up = eta * sigma_next * sqrt(1 - sigma_next^2 / sigma^2)` and `sigma_down = sqrt(sigma_next^2 - sigma_up^2)`.
    eta = 0 is the deterministic Euler method; eta = 1 is ancestral DDPM sampling.

    Args:
        x: starting point `(B, ...)` at noise level `sigmas[0]` (noise already scaled).
        sigmas: descending noise levels ending in 0.
    """
    if not 0.0 <= eta <= 1.0:
        raise SamplerError(f"ddim eta must be in [0, 1]; got {eta}")
    for i in _steps(sigmas, progress, "ddim" if eta else "euler"):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = _denoise(denoiser, x, s, cond)
        _cb(callback, i, x, s, s_next, denoised)
        if eta > 0 and s_next > 0:
            s_up = min(float(s_next), eta * float(s_next) * math.sqrt(max(0.0, 1 - float(s_next) ** 2 / float(s) ** 2)))
            s_down = math.sqrt(max(0.0, float(s_next) ** 2 - s_up ** 2))
        else:
            s_up, s_down = 0.0, float(s_next)
        if s_down == 0:
            x = denoised  # the Euler step to 0 lands on the x0 estimate; skip the rounding of x + (D - x)
        else:
            d = (x - denoised) / s
            x = x + d * (s_down - s)
        if s_up > 0:
            x = x + randn(x.shape, x.device, x.dtype, generator) * (s_noise * s_up)
    return x


def euler(denoiser, x, sigmas, generator=None, callback=None, progress=True, **cond):
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Alg. 1 without correction) == DDIM eta=0."""
    return ddim(denoiser, x, sigmas, generator, callback, progress, eta=0.0, **cond)


def ddpm(denoiser, x, sigmas, generator=None, callback=None, progress=True, s_noise: float = 1.0, **cond):
    """Ancestral DDPM sampling (Ho et al. 2020) == DDIM with eta = 1."""
    return ddim(denoiser, x, sigmas, generator, callback, progress, eta=1.0, s_noise=s_noise, **cond)


def heun(denoiser, x, sigmas, generator=None, callback=None, progress=True, s_churn: float = 0.0,
         s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0, **cond) -> torch.Tensor:
    """Heun's 2nd-order method with optional churn (Karras et al. 2022, Alg. 2); the last step to 0 is Euler.

    Churn: where `s_tmin <= sigma <= s_tmax` the level is raised to `sigma * (1 + gamma)`,
    `gamma = min(s_churn / n, sqrt(2) - 1)`, by adding noise of std `s_noise * sqrt(sigma_hat^2 - sigma^2)`.
    """
    if s_churn < 0 or s_noise < 0 or s_tmin > s_tmax:
        raise SamplerError(f"heun needs s_churn >= 0, s_noise >= 0 and s_tmin <= s_tmax; got s_churn={s_churn}, "
                           f"s_noise={s_noise}, s_tmin={s_tmin}, s_tmax={s_tmax}")
    n = len(sigmas) - 1
    for i in _steps(sigmas, progress, "heun"):
        s, s_next = sigmas[i], sigmas[i + 1]
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= float(s) <= s_tmax else 0.0
        s_hat = s * (gamma + 1)
        if gamma > 0:
            x = x + randn(x.shape, x.device, x.dtype, generator) * s_noise * (s_hat ** 2 - s ** 2).sqrt()
        denoised = _denoise(denoiser, x, s_hat, cond)
        _cb(callback, i, x, s_hat, s_next, denoised)
        if s_next == 0:
            x = denoised  # the final Euler step to sigma = 0 is exactly the x0 estimate
            continue
        d = (x - denoised) / s_hat
        x_next = x + d * (s_next - s_hat)
        d2 = (x_next - _denoise(denoiser, x_next, s_next, cond)) / s_next
        x = x + (d + d2) / 2 * (s_next - s_hat)
    return x


def dpmpp_2m(denoiser, x, sigmas, generator=None, callback=None, progress=True, **cond) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): multistep 2nd-order solver in t = -log(sigma).

    It is the SDE solver below with eta = 0 (its data-prediction update is then exactly 2M's), so one
    implementation serves both.
    """
    return _dpmpp_2m(denoiser, x, sigmas, generator, callback, progress, 0.0, 1.0, "dpmpp_2m", cond)


def dpmpp_2m_sde(denoiser, x, sigmas, generator=None, callback=None, progress=True, eta: float = 1.0,
                 s_noise: float = 1.0, **cond) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022), midpoint variant; `eta = 0` is the ODE solver's data form."""
    if eta < 0:
        raise SamplerError(f"dpmpp_2m_sde eta must be >= 0; got {eta}")
    return _dpmpp_2m(denoiser, x, sigmas, generator, callback, progress, eta, s_noise, "dpmpp_2m_sde", cond)


def _dpmpp_2m(denoiser, x, sigmas, generator, callback, progress, eta, s_noise, desc, cond):
    old = None
    h_last = None
    for i in _steps(sigmas, progress, desc):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = _denoise(denoiser, x, s, cond)
        _cb(callback, i, x, s, s_next, denoised)
        if s_next == 0:
            x = denoised
            break
        h = torch.log(s) - torch.log(s_next)
        eta_h = eta * h
        x = (s_next / s) * torch.exp(-eta_h) * x + (-torch.expm1(-h - eta_h)) * denoised
        if old is not None:
            r = h_last / h
            x = x + 0.5 * (-torch.expm1(-h - eta_h)) * (1 / r) * (denoised - old)
        if eta > 0:
            x = x + randn(x.shape, x.device, x.dtype, generator) * (s_next * torch.sqrt(-torch.expm1(-2 * eta_h)) * s_noise)
        old, h_last = denoised, h
    return x


SAMPLERS: dict[str, Callable] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "euler": euler,
    "heun": heun,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
}


def sample(denoiser: Callable, noise: torch.Tensor, sigmas: torch.Tensor, method: str = "dpmpp_2m",
           generator: GeneratorArg = None, callback=None, progress: bool = True, options: dict | None = None,
           x_start: torch.Tensor | None = None, **cond) -> torch.Tensor:
    """Draw samples: scale unit `noise (B, ...)` by `sigmas[0]` and integrate to sigma = 0 with `method`.

    Args:
        denoiser: `denoiser(x (B, ...), sigma (B,), **cond) -> x0_hat (B, ...)`.
        noise: unit Gaussian `(B, ...)`.
        sigmas: 1-D descending noise levels ending in 0 (from :mod:`audiodiff.schedules`).
        method: one of `ddpm`, `ddim`, `euler`, `heun`, `dpmpp_2m`, `dpmpp_2m_sde`.
        generator: a `torch.Generator`, or a list with one per batch item, for the stochastic samplers.
        callback: called after each denoiser call with a dict (i, x, sigma, sigma_next, denoised).
        progress: show a tqdm bar.
        options: method settings (e.g. `{"eta": 0.5}` for ddim, `{"s_churn": 10}` for heun); see
            :func:`sampler_options`.
        x_start: `(B, ...)` clean signal to start from, `x = x_start + sigmas[0] * noise` (SDEdit, Meng et al.
            2022: variations with a schedule that starts at a lower sigma); None starts from pure noise.
        **cond: conditions passed to the denoiser (labels, pitch, vector, local, drop).
    Returns:
        samples `(B, ...)` at sigma = 0.
    """
    if method not in SAMPLERS:
        raise SamplerError(f"unknown sampler {method!r}; allowed: {sorted(SAMPLERS)}")
    check_sigmas(sigmas)
    options = dict(options or {})
    allowed = sampler_options(method)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SamplerError(f"sampler {method!r} takes no option(s) {unknown}; allowed: {sorted(allowed)}")
    clash = sorted(set(options) & set(cond))
    if clash:
        raise SamplerError(f"{clash} given both as sampler options and as conditions")
    # float64 noise keeps float64 (closed-form tests); everything else integrates in float32.
    dtype = torch.float64 if noise.dtype == torch.float64 else torch.float32
    sigmas = sigmas.to(device=noise.device, dtype=dtype)
    x = noise.to(dtype) * sigmas[0]
    if x_start is not None:
        if x_start.shape != noise.shape:
            raise SamplerError(f"x_start {tuple(x_start.shape)} must be shaped like noise {tuple(noise.shape)}")
        x = x + x_start.to(dtype)
    with torch.no_grad():
        return SAMPLERS[method](denoiser, x, sigmas, generator=generator, callback=callback, progress=progress,
                                **options, **cond)


_BASE_ARGS = {"denoiser", "x", "sigmas", "generator", "callback", "progress", "cond"}


def check_options(method: str, options: dict | None, where: str = "options") -> dict:
    """Check `method`'s settings before any sampling; return them as a plain dict.

    Names must be among :func:`sampler_options` (the one-line error lists them), values numbers; each method's
    own range checks (ddim's `0 <= eta <= 1`, ...) run on a one-element dry run with an exact denoiser, so a config
    or request is refused up front rather than at its first sample.

    Args:
        where: how the caller names the mapping in messages (`sampler.options`, `sampler_options`).
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise SamplerError(f"{where}={options!r} is not allowed; allowed: a mapping of {method} settings "
                           f"{sorted(sampler_options(method))}")
    allowed = sampler_options(method)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SamplerError(f"{where}: sampler {method!r} takes no option(s) {unknown}; allowed: "
                           f"{sorted(allowed) if allowed else 'none'}")
    for k, v in options.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise SamplerError(f"{where}.{k}={v!r} is not allowed; allowed: a number")
    try:  # the method itself, not `sample`: a check is not a sampling run (callers and tests watch `sample`)
        with torch.no_grad():
            SAMPLERS[method](lambda x, sigma: torch.zeros_like(x), torch.zeros(1, dtype=torch.float64),
                             torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64),
                             generator=torch.Generator().manual_seed(0), progress=False, **options)
    except SamplerError as e:
        raise SamplerError(f"{where}: {e}") from None
    return dict(options)


def sampler_options(method: str) -> dict:
    """Settings `method` takes beyond the common arguments, with their defaults (e.g. ddim: {"eta": 0.0, ...})."""
    if method not in SAMPLERS:
        raise SamplerError(f"unknown sampler {method!r}; allowed: {sorted(SAMPLERS)}")
    params = inspect.signature(SAMPLERS[method]).parameters
    return {k: p.default for k, p in params.items() if k not in _BASE_ARGS}
