"""Denoiser wrappers for sampling: classifier-free guidance and inpainting / continuation masks.

Each wrapper is itself a denoiser `D(x, sigma, **cond) -> x0_hat`, so every sampler takes it unchanged.
"""
from __future__ import annotations

import torch


class CFG(torch.nn.Module):
    """Classifier-free guidance (Ho & Salimans 2022) on the x0 estimate, both branches in one batched call.

    `D_cfg = D_uncond + scale * (D_cond - D_uncond)`; scale 1 is the conditional model, 0 the
    unconditional one. Because every parameterisation's prediction is affine in x0 at a fixed sigma,
    guiding x0 equals guiding eps or v. The unconditional branch sets `drop=True` for every item, which
    the networks map to their learned null embeddings; local conditioning (a vocoder's mel) is kept.
    """

    def __init__(self, denoiser, scale: float):
        super().__init__()
        if scale < 0:
            raise ValueError(f"guidance scale must be >= 0; got {scale}")
        self.denoiser = denoiser
        self.scale = float(scale)

    def forward(self, x: torch.Tensor, sigma, **cond) -> torch.Tensor:
        """Guided x0 estimate for `x (B, ...)` at `sigma` (scalar or `(B,)`)."""
        B = x.shape[0]
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
        if sigma.dim() == 0:
            sigma = sigma.expand(B)
        drop = cond.pop("drop", None)
        if drop is None:
            drop = torch.zeros(B, dtype=torch.bool, device=x.device)
        both = {}
        for k, v in cond.items():
            if isinstance(v, torch.Tensor):
                if v.dim() == 0 or v.shape[0] != B:
                    raise ValueError(f"CFG: condition {k!r} must be batched like x, (B={B}, ...); got {tuple(v.shape)}")
                both[k] = torch.cat([v, v])
            elif v is None:
                both[k] = None
            else:
                raise ValueError(f"CFG: condition {k!r} must be a tensor or None; got {type(v).__name__}")
        both["drop"] = torch.cat([drop, torch.ones_like(drop)])
        out = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), **both)
        c, u = out[:B], out[B:]
        return u + self.scale * (c - u)


def cfg(denoiser, scale: float | None):
    """Wrap `denoiser` with classifier-free guidance of `scale`; None or 1 returns it unchanged."""
    if scale is None or float(scale) == 1.0:
        return denoiser
    return CFG(denoiser, scale)


class Inpaint(torch.nn.Module):
    """Inpainting / continuation by replacement of the known region in the x0 estimate.

    Where `mask` is 1 the result is `known`; where it is 0 the model fills in. Replacing the known part
    of every x0 estimate pulls the sampler's trajectory to agree with it (the "replacement" method of
    Song et al. 2021, applied to the denoiser output, so it works with every sampler).

    Args:
        denoiser: the wrapped `D(x, sigma, **cond)`.
        known: `(B, ...)` clean signal (waveform or normalised mel) shaped like the samples.
        mask: `(B, ...)` or broadcastable, 1 = keep `known`, 0 = generate.
    """

    def __init__(self, denoiser, known: torch.Tensor, mask: torch.Tensor):
        super().__init__()
        mask = torch.as_tensor(mask)
        try:
            torch.broadcast_shapes(mask.shape, known.shape)
        except RuntimeError:
            raise ValueError(f"Inpaint: mask {tuple(mask.shape)} does not broadcast to known {tuple(known.shape)}") from None
        if mask.numel() and (float(mask.min()) < 0 or float(mask.max()) > 1):
            raise ValueError("Inpaint: mask values must lie in [0, 1] (1 = keep known, 0 = generate)")
        self.denoiser = denoiser
        self.known = known
        self.mask = mask.to(device=known.device, dtype=known.dtype)

    def forward(self, x, sigma, **cond):
        """x0 estimate with the known region replaced; `x (B, ...)` shaped like `known`."""
        if x.shape != self.known.shape:
            raise ValueError(f"Inpaint: x {tuple(x.shape)} must be shaped like known {tuple(self.known.shape)}")
        x0 = self.denoiser(x, sigma, **cond)
        known = self.known.to(x0.dtype)
        return torch.where(self.mask == 1, known, self.mask * known + (1 - self.mask) * x0)


def continuation_mask(shape, keep: int, dim: int = -1, device=None) -> torch.Tensor:
    """Mask of `shape` that is 1 on the first `keep` positions along `dim` and 0 after (for continuation)."""
    mask = torch.zeros(shape, device=device)
    idx = [slice(None)] * len(shape)
    idx[dim] = slice(0, keep)
    mask[tuple(idx)] = 1.0
    return mask
