"""Diffusion vocoder: a mel-conditioned UNet1D denoiser sampled in a few steps (the DiffWave / WaveGrad idea).

Kong et al. 2021 (DiffWave) and Chen et al. 2021 (WaveGrad) generate the waveform by denoising, with the
mel spectrogram as a local condition upsampled to the sample rate. Here the network is the project's
patched :class:`~audiodiff.models.unet1d.UNet1D` built with `local_channels = n_mels`, wrapped by
:class:`~audiodiff.objectives.Denoiser` (EDM preconditioning by default; trained by :mod:`audiodiff.training.vocoder`
with the diffusion model's step, :class:`audiodiff.training.loop.DenoiserStep`, the mel as its `local` condition)
and sampled with :func:`audiodiff.samplers.sample` on a short Karras schedule (default 8 steps of DPM-Solver++(2M)).

Training pairs a segment of `frames * hop` samples with its first `frames` mel frames (the same relation
as at synthesis), so the condition is aligned identically in both.
"""
from __future__ import annotations

import torch

from .. import generation, samplers, schedules
from ..mel import MelSpec
from ..objectives import Denoiser
from .base import Vocoder

DEFAULT_NET = {"name": "unet1d", "patch": 8, "channels": [64, 128, 192], "factors": [1, 4, 4],
               "blocks": [1, 1, 1], "attention": [False, False, False]}
DEFAULT_OBJECTIVE = {"parameterization": "edm", "sigma_data": 0.1}


class DiffusionVocoder(Vocoder):
    """Mel-conditioned waveform diffusion (UNet1D + Denoiser), sampled with a few-step ODE solver.

    Args:
        mel: the mel contract (its `n_mels` is the net's `local_channels`).
        net: UNet1D settings (`models.build` dict; `name`, `in_channels` and `local_channels` are set here).
        objective: `objectives.Denoiser` settings (parameterization, sigma_data, noise_dist, p_mean, p_std).
        steps: sampling steps. sampler: a method of `samplers.sample` (e.g. `dpmpp_2m`, `heun`, `euler`).
        sigma_min, sigma_max, rho: the Karras et al. 2022 schedule.
        seed: seed of the initial noise (drawn on the CPU, so the output is reproducible on any device).
        autocast: sample in bfloat16 on CUDA.
    """

    name = "diffusion"

    def __init__(self, mel: MelSpec, net: dict | None = None, objective: dict | None = None, steps: int = 8,
                 sampler: str = "dpmpp_2m", sigma_min: float = 0.002, sigma_max: float = 5.0, rho: float = 7.0,
                 seed: int = 0, autocast: bool = True):
        super().__init__(mel)
        from .. import models, objectives

        if sampler not in samplers.SAMPLERS:
            raise ValueError(f"diffusion vocoder sampler {sampler!r} is not allowed; allowed: {sorted(samplers.SAMPLERS)}")
        net_cfg = {**DEFAULT_NET, **dict(net or {})}
        if net_cfg.get("name", "unet1d") != "unet1d":
            raise ValueError(f"diffusion vocoder net must be a unet1d; got {net_cfg.get('name')!r}")
        net_cfg.update(name="unet1d", in_channels=1, local_channels=mel.n_mels)
        self.net = models.build(net_cfg)
        self.objective_cfg = {**DEFAULT_OBJECTIVE, **dict(objective or {})}
        self.denoiser: Denoiser = objectives.build(self.net, self.objective_cfg)
        schedules.karras(int(steps), float(sigma_min), float(sigma_max), float(rho))  # validates the settings
        self.steps, self.sampler = int(steps), sampler
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        self.seed, self.autocast = int(seed), bool(autocast)

    def config(self) -> dict:
        net = dict(self.net.config)
        for k in ("in_channels", "local_channels"):
            net.pop(k, None)
        return {"net": net, "objective": dict(self.objective_cfg), "steps": self.steps, "sampler": self.sampler,
                "sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "rho": self.rho, "seed": self.seed,
                "autocast": self.autocast}

    def sigmas(self) -> torch.Tensor:
        """The sampling schedule `(steps + 1,)`, descending, ending in 0."""
        return schedules.karras(self.steps, self.sigma_min, self.sigma_max, self.rho)

    def synthesize(self, mel: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        B, _, frames = mel.shape
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        noise = samplers.randn((B, 1, frames * self.mel.hop_length), mel.device, generator=g)
        dtype = torch.bfloat16 if self.autocast and mel.is_cuda else None
        wav = generation.generate(self.denoiser, noise, self.sigmas(), self.sampler, cond={"local": mel.float()},
                                  dtype=dtype)
        return wav.float()
