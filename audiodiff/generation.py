"""One generation function: initial noise through a sampler over a noise schedule, with guidance, to model space.

Karras et al. 2022 (EDM) sampling as every caller uses it: the noise levels of a schedule
(:func:`audiodiff.schedules.build`), classifier-free guidance as one batched call (:func:`audiodiff.guidance.cfg`,
Ho & Salimans 2022), an optional wrapper of the denoiser (inpainting), optional autocast, and one of the
stateless samplers of :mod:`audiodiff.samplers`. The pipeline (`Pipeline.generate` / `variation` / `inpaint` /
`continue_`), the training-time audio samples (`training.loop.sample_logger`) and the diffusion vocoder all
generate through :func:`generate`, and the sampler defaults live here and nowhere else:
:data:`DEFAULT_METHOD` (DPM-Solver++(2M), Lu et al. 2022), :data:`DEFAULT_STEPS` and :data:`DEFAULT_SCHEDULE`.
A run's own `sampler` / `schedule` sections (its meta) override them through :func:`run_sampler` and
:func:`noise_levels`.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from . import guidance as guidance_mod
from . import samplers, schedules

DEFAULT_METHOD = "dpmpp_2m"
DEFAULT_STEPS = 25
DEFAULT_SCHEDULE = {"name": "karras"}

__all__ = ["DEFAULT_METHOD", "DEFAULT_STEPS", "DEFAULT_SCHEDULE", "run_sampler", "noise_levels", "generate"]


def run_sampler(sampler: dict | None) -> tuple[str, int, dict]:
    """`(method, steps, options)` of a run's `sampler` section (its meta or config), the defaults where it is silent."""
    s = dict(sampler or {})
    return s.get("method", DEFAULT_METHOD), s.get("steps", DEFAULT_STEPS), dict(s.get("options") or {})


def noise_levels(schedule: dict | None, steps: int, device=None) -> torch.Tensor:
    """The `(steps + 1,)` descending noise levels of a run's `schedule` section (default Karras et al. 2022's)."""
    sched = dict(schedule or DEFAULT_SCHEDULE)
    name = sched.pop("name", DEFAULT_SCHEDULE["name"])
    return schedules.build(name, steps, **sched).to(device)


@torch.no_grad()
def generate(denoiser, noise: torch.Tensor, sigmas: torch.Tensor, method: str = DEFAULT_METHOD,
             options: dict | None = None, generator=None, cond: dict | None = None, guidance: float | None = None,
             wrap=None, x_start: torch.Tensor | None = None, progress: bool = False, dtype=None) -> torch.Tensor:
    """Sample `denoiser` from unit Gaussian `noise` over `sigmas` with `method`; returns model-space `(B, ...)`.

    Args:
        denoiser: `D(x, sigma, **cond) -> x0_hat` (the one seam, :class:`audiodiff.objectives.Denoiser`).
        noise: `(B, ...)` unit Gaussian (scaled inside by `sigmas[0]`, and added to `x_start` for SDEdit).
        sigmas: `(steps + 1,)` descending noise levels ending in 0 (:func:`noise_levels`).
        method, options: a sampler of :data:`audiodiff.samplers.SAMPLERS` and its settings (eta, s_churn, ...).
        generator: what stochastic samplers draw from: one `torch.Generator` or one per batch item.
        cond: network conditions (labels, pitch, local, ...); guidance applies only when there are some.
        guidance: classifier-free guidance scale (None or 1: plain conditional sampling).
        wrap: a function wrapping the (guided) denoiser, e.g. inpainting's `lambda d: Inpaint(d, known, mask)`.
        x_start: SDEdit's clean start (variation); None starts from pure noise.
        dtype: autocast dtype on the noise's device (e.g. `torch.bfloat16` on CUDA); None runs in float32.
    """
    cond = dict(cond or {})
    den = guidance_mod.cfg(denoiser, guidance) if cond else denoiser
    if wrap is not None:
        den = wrap(den)
    ctx = torch.autocast(noise.device.type, dtype=dtype) if dtype is not None else nullcontext()
    with ctx:
        return samplers.sample(den, noise, sigmas, method, generator=generator, progress=progress, x_start=x_start,
                               options=options, **cond)
