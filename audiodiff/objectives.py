"""The denoiser seam: a network plus its parameterisation, seen as `D(x, sigma) -> x0_hat`.

Every parameterisation is written as Karras et al. 2022 (EDM, Table 1) preconditioning
`D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))` on the
variance-exploding input `x = x0 + sigma * noise`:

| parameterisation | c_skip | c_out | c_in | network predicts |
|---|---|---|---|---|
| `eps` (DDPM, Ho et al. 2020) | 1 | -sigma | 1/sqrt(sigma^2+1) | the noise |
| `v` (Salimans & Ho 2022) | 1/(sigma^2+1) | -sigma/sqrt(sigma^2+1) | 1/sqrt(sigma^2+1) | v = alpha*eps - sigma_vp*x0 |
| `x0` | 0 | 1 | 1/sqrt(sigma^2+sd^2) | the clean signal |
| `edm` | sd^2/(sigma^2+sd^2) | sigma*sd/sqrt(sigma^2+sd^2) | 1/sqrt(sigma^2+sd^2) | EDM's F |

For `eps` and `v` the input `c_in * x` is exactly the VP-diffused sample `sqrt(abar) x0 + sqrt(1-abar) eps`.
The loss is the mean squared error between the network output `F` and its effective target
`(x0 - c_skip * x) / c_out` — which is the noise for `eps`, `v` for `v`, x0 for `x0` and EDM's
weighted loss for `edm` — so prediction types are converted here and nowhere else.
`min_snr_gamma` (Hang et al. 2023, "Min-SNR weighting") reweights that loss so that, read in x0 space, each
noise level counts `min(SNR, gamma)` with `SNR = 1 / sigma^2` (the VP signal-to-noise ratio
`alpha^2 / sigma_vp^2` of the same level): the F-space weight is `min(SNR, gamma) * c_out^2`, which is
`min(SNR, gamma) / SNR` for `eps`, `min(SNR, gamma) / (SNR + 1)` for `v` and `min(SNR, gamma)` for `x0`.
The network always receives `c_noise = log(sigma) / 4` (EDM's choice), which is continuous, so a
model trained on discrete VP timesteps is sampled with any schedule.
"""
from __future__ import annotations

import inspect
import numbers

import torch
from torch import nn

from . import schedules

PARAMETERIZATIONS = ("eps", "v", "x0", "edm")
NOISE_DISTRIBUTIONS = ("lognormal", "vp_linear", "vp_cosine")


class Denoiser(nn.Module):
    """Wrap a network `F(x, c_noise, **cond)` into an x0-estimator `D(x, sigma, **cond)` (EDM preconditioning).

    Args:
        net: module called as `net(x_in, c_noise (B,), **cond)`, returning a tensor shaped like `x_in`.
        parameterization: one of `eps`, `v`, `x0`, `edm`.
        sigma_data: standard deviation of the data (EDM; 0.5 suits audio in [-1, 1] and normalised mel).
        noise_dist: training noise-level distribution; default `lognormal` for `edm`/`x0`,
            `vp_linear` for `eps`, `vp_cosine` for `v` (a discrete VP timestep drawn uniformly).
        p_mean, p_std: log-normal parameters (EDM: -1.2, 1.2).
        num_train_steps: number of discrete timesteps of a VP training distribution.
        cond_drop_prob: probability that training drops all global conditions of an item (CFG).
        min_snr_gamma: None (the parameterisation's own weighting) or gamma > 0 of Min-SNR-gamma loss weighting
            (Hang et al. 2023; 5 in the paper): easy low-noise levels stop dominating the gradient.
    """

    def __init__(self, net: nn.Module, parameterization: str = "edm", sigma_data: float = 0.5,
                 noise_dist: str | None = None, p_mean: float = -1.2, p_std: float = 1.2,
                 num_train_steps: int = 1000, cond_drop_prob: float = 0.0, min_snr_gamma: float | None = None):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {parameterization!r}; allowed: {PARAMETERIZATIONS}")
        if noise_dist is None:
            noise_dist = {"edm": "lognormal", "x0": "lognormal", "eps": "vp_linear", "v": "vp_cosine"}[parameterization]
        if noise_dist not in NOISE_DISTRIBUTIONS:
            raise ValueError(f"unknown noise_dist {noise_dist!r}; allowed: {NOISE_DISTRIBUTIONS}")
        if sigma_data == "auto":  # resolved by train() from the training data before the Denoiser is built
            raise ValueError("sigma_data='auto' must be resolved to a number first (train() measures it with "
                             "audiodiff.data.stats.model_space_rms); got it unresolved")
        if isinstance(sigma_data, bool) or not isinstance(sigma_data, numbers.Real) or not sigma_data > 0:
            raise ValueError(f"sigma_data must be a number > 0 or auto; got {sigma_data!r}")
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1); got {cond_drop_prob}")
        if min_snr_gamma is not None and not min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be null or a number > 0; got {min_snr_gamma}")
        self.net = net
        self.parameterization = parameterization
        self.sigma_data = float(sigma_data)
        self.noise_dist = noise_dist
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self.num_train_steps = int(num_train_steps)
        self.cond_drop_prob = float(cond_drop_prob)
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)
        if noise_dist != "lognormal":
            betas = (schedules.betas_linear if noise_dist == "vp_linear" else schedules.betas_cosine)(num_train_steps)
            self.register_buffer("train_sigmas", schedules.sigmas_from_betas(betas).float(), persistent=False)
        else:
            self.train_sigmas = None

    # ------------------------------------------------------------------ preconditioning
    def scalings(self, sigma: torch.Tensor):
        """Return `(c_skip, c_out, c_in, c_noise)` for noise levels `sigma` (any shape), in float32."""
        s = sigma.float()
        p = self.parameterization
        if p == "eps":
            c_skip, c_out, c_in = torch.ones_like(s), -s, (s ** 2 + 1).rsqrt()
        elif p == "v":
            c_skip, c_out, c_in = 1 / (s ** 2 + 1), -s * (s ** 2 + 1).rsqrt(), (s ** 2 + 1).rsqrt()
        elif p == "x0":
            sd = self.sigma_data
            c_skip, c_out, c_in = torch.zeros_like(s), torch.ones_like(s), (s ** 2 + sd ** 2).rsqrt()
        else:  # edm
            sd = self.sigma_data
            c_skip = sd ** 2 / (s ** 2 + sd ** 2)
            c_out = s * sd * (s ** 2 + sd ** 2).rsqrt()
            c_in = (s ** 2 + sd ** 2).rsqrt()
        c_noise = s.clamp(min=1e-20).log() / 4
        return c_skip, c_out, c_in, c_noise

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """The per-item weight on the F-space squared error at noise levels `sigma` (ones without Min-SNR)."""
        s = sigma.float()
        if self.min_snr_gamma is None:
            return torch.ones_like(s)
        c_out = self.scalings(s)[1]
        return (s.pow(-2).clamp(max=self.min_snr_gamma) * c_out ** 2)

    def _expand(self, sigma, x: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
        if sigma.dim() == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be a scalar or shaped (B,) = ({x.shape[0]},); got {tuple(sigma.shape)}")
        return sigma

    def _bcast(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.reshape(-1, *([1] * (x.dim() - 1)))

    def raw(self, x: torch.Tensor, sigma, **cond):
        """Network output `F` and the scalings, for `x (B, ...)` at noise levels `sigma` (scalar or `(B,)`)."""
        sigma = self._expand(sigma, x)
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        f = self.net((x.float() * self._bcast(c_in, x)).to(x.dtype), c_noise, **cond)
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
        return self._bcast(c_skip, x) * x.float() + self._bcast(c_out, x) * f

    # ------------------------------------------------------------------ training
    def sample_sigma(self, batch: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `(batch,)` training noise levels from this objective's distribution.

        `lognormal`: `log(sigma) ~ N(p_mean, p_std^2)` (Karras et al. 2022, sec. 5). `vp_linear` / `vp_cosine`:
        a timestep `t` uniform over the `num_train_steps` DDPM steps, returned as its VE sigma (Ho et al. 2020).
        The draw happens on the generator's device (so a CPU generator reproduces on any device).
        """
        gen_device = generator.device if generator is not None else device
        if self.noise_dist == "lognormal":
            z = torch.randn(batch, generator=generator, device=gen_device)
            return (z * self.p_std + self.p_mean).exp().to(device)
        t = torch.randint(0, self.num_train_steps, (batch,), generator=generator, device=gen_device)
        return self.train_sigmas.to(device)[t.to(device)]

    def loss(self, x0: torch.Tensor, sigma: torch.Tensor | None = None, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None, reduce: bool = True, **cond) -> torch.Tensor:
        """Denoising loss: MSE between the network output and its effective target `(x0 - c_skip x) / c_out`.

        Args:
            x0: clean batch `(B, ...)`.
            sigma: `(B,)` noise levels; drawn with :meth:`sample_sigma` when None.
            noise: unit Gaussian like `x0`; drawn when None.
            reduce: return the batch mean (True) or per-item losses `(B,)`.
            **cond: network conditions; with `cond_drop_prob > 0` a random `drop` mask is added (CFG training).
        """
        B = x0.shape[0]
        if sigma is None:
            sigma = self.sample_sigma(B, x0.device, generator)
        sigma = self._expand(sigma, x0)
        if not bool((sigma > 0).all()) or not bool(torch.isfinite(sigma).all()):
            raise ValueError(f"loss needs finite noise levels sigma > 0; got min {float(sigma.min())}")
        if noise is None:
            gen_device = generator.device if generator is not None else x0.device
            noise = torch.randn(x0.shape, device=gen_device, dtype=x0.dtype, generator=generator).to(x0.device)
        if self.cond_drop_prob > 0 and "drop" not in cond and self.training:
            gen_device = generator.device if generator is not None else x0.device
            cond["drop"] = (torch.rand(B, device=gen_device, generator=generator) < self.cond_drop_prob).to(x0.device)
        x = x0 + self._bcast(sigma, x0) * noise
        f, c_skip, c_out = self.raw(x, sigma, **cond)
        target = (x0.float() - self._bcast(c_skip, x0) * x.float()) / self._bcast(c_out, x0)
        per_item = (f - target).pow(2).flatten(1).mean(1)
        if self.min_snr_gamma is not None:
            per_item = per_item * self.loss_weight(sigma)
        return per_item.mean() if reduce else per_item


def build(net: nn.Module, cfg: dict | None = None) -> Denoiser:
    """Denoiser from a config dict (`parameterization`, `sigma_data`, `noise_dist`, ...)."""
    cfg = dict(cfg or {})
    allowed = set(inspect.signature(Denoiser.__init__).parameters) - {"self", "net"}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(f"unknown objective settings {unknown}; allowed: {sorted(allowed)}")
    return Denoiser(net, **cfg)


__all__ = ["Denoiser", "build", "PARAMETERIZATIONS", "NOISE_DISTRIBUTIONS"]
